#!/usr/bin/env python3
"""Deploy a registered model package to a SageMaker real-time endpoint, safely.

Validates everything it can before the first AWS call (a bad ARN is refused before boto3 is even
imported), creates the endpoint or updates it in place (blue/green), watches its status and
CloudWatch logs, and counts it a success only when the endpoint is InService on the new config.
Anything this run created is rolled back when the deploy fails, times out or is interrupted.
`--instance-type local` serves the package on this machine instead.
"""

from __future__ import annotations

import os
import sys

# Run as a script, never installed. os.path rather than pathlib: pathlib costs ~10 ms of imports,
# a fifth of the time budget for refusing a bad ARN (about 4x a bare Python start).
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from modules.deploy_validation import (  # noqa: E402
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_KEEP_RELEASES,
    DEFAULT_TIMEOUT,
    STRATEGIES,
)
from modules.scaling_settings import (  # noqa: E402
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TARGET_INVOCATIONS,
    parse_range,
)
from modules.traffic_settings import (  # noqa: E402
    DEFAULT_CAPTURE_PERCENT,
    DEFAULT_SHADOW_SAMPLING,
    parse_weights,
)
from utils import output  # noqa: E402
from utils.cli import (  # noqa: E402
    EnvArgumentParser,
    add_common_flags,
    aws_env,
    environ,
    poll_seconds,
    positive_int,
    run,
    wait_seconds,
)
from utils.names import DEFAULT_STACK  # noqa: E402

_EPILOG = """\
examples:
  python deploy-model.py --model-package-arn "$(cat model_arn.txt)"
  python deploy-model.py -a arn:aws:sagemaker:ca-central-1:123456789012:model-package/qc/3 \\
      -e qc-prod -t ml.c5.xlarge --instance-count 2 --deployment-strategy canary \\
      --rollback-alarm qc-prod-5xx --smoke-test-data sample-data.json --json
  python deploy-model.py --model-package-group PLMSCWInferenceModelGroup --dry-run
  python deploy-model.py -a "$(cat model_arn.txt)" -t local -e qc-local
  python deploy-model.py -a "$(cat model_arn.txt)" -e qc-prod --instance-count 2 --autoscale 2-6
  python deploy-model.py -e qc-prod --history
  python deploy-model.py -e qc-prod --rollback --dry-run
  python deploy-model.py -a "$(cat model_arn.txt)" -e qc-dev --serverless-memory 2048 \\
      --max-concurrency 10
  python deploy-model.py -a "$(cat model_arn.txt)" -e qc-prod --add-variant challenger \\
      --weight 10
  python deploy-model.py -e qc-prod --set-weights AllTraffic=50,challenger=50
  python deploy-model.py -e qc-prod --promote challenger
  python deploy-model.py -a "$(cat model_arn.txt)" -e qc-prod --shadow --shadow-sampling 20
  python deploy-model.py -a "$(cat model_arn.txt)" -e qc-prod \\
      --data-capture s3://my-bucket/capture/qc-prod --capture-percent 20

required environment: AWS_REGION, SAGEMAKER_EXECUTION_ROLE_ARN (not needed with -t local);
optional: AWS_PROFILE."""


def _percent(raw: str) -> int:
    return positive_int(raw.rstrip("%"))


def _seconds(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _tag(raw: str) -> tuple[str, str]:
    from modules.deploy_validation import parse_tag

    return parse_tag(raw)


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(prog="deploy-model.py", description=__doc__.split("\n\n")[0],
                               epilog=_EPILOG)
    parser.add_env_argument("-a", "--model-package-arn", env="MODEL_PACKAGE_ARN", metavar="ARN",
                            help="ARN of an Approved model package version")
    parser.add_env_argument("--model-package-group", env="MODEL_PACKAGE_GROUP", metavar="GROUP",
                            help="deploy this group's latest Approved version instead")
    parser.add_env_argument("-e", "--endpoint-name", env="ENDPOINT_NAME", metavar="NAME",
                            help="endpoint to create, or to update if it exists; when unset a new "
                                 "one is named <stack>-endpoint-YYYYMMDD-HHMMSS")
    parser.add_env_argument("-t", "--instance-type", env="INSTANCE_TYPE", default=DEFAULT_INSTANCE_TYPE,
                            metavar="TYPE",
                            help="SageMaker instance type (ml.c5.2xlarge and ml.c5.xlarge suit "
                                 "linear models; ml.t2.medium for tests), or 'local'")
    parser.add_env_argument("--instance-count", env="INSTANCE_COUNT", default=1, type=positive_int,
                            metavar="N",
                            help="number of instances")
    parser.add_env_argument("--serverless-memory", env="SERVERLESS_MEMORY", type=positive_int,
                            metavar="MB",
                            help="a serverless endpoint with this much memory (1024-6144 in "
                                 "1024 steps) instead of instances: cheapest at low traffic")
    parser.add_env_argument("--max-concurrency", env="MAX_CONCURRENCY",
                            default=DEFAULT_MAX_CONCURRENCY, type=positive_int, metavar="N",
                            help="serverless: concurrent invocations at most (1-200)")
    parser.add_env_argument("--provisioned-concurrency", env="PROVISIONED_CONCURRENCY",
                            type=positive_int, metavar="N",
                            help="serverless: concurrency kept warm (no cold starts), at most "
                                 "--max-concurrency")
    parser.add_env_argument("--autoscale", env="AUTOSCALE", type=parse_range, metavar="MIN-MAX",
                            help="scale the instances between MIN and MAX (Application Auto "
                                 "Scaling, target tracking on invocations per instance)")
    parser.add_env_argument("--target-invocations", env="TARGET_INVOCATIONS",
                            default=DEFAULT_TARGET_INVOCATIONS, type=positive_int, metavar="N",
                            help="autoscale: invocations per instance per minute to aim for")
    parser.add_env_argument("--scale-in-cooldown", env="SCALE_IN_COOLDOWN", type=_seconds,
                            metavar="SECONDS",
                            help="autoscale: seconds after a scale-in before the next one "
                                 "(default: Application Auto Scaling's)")
    parser.add_env_argument("--scale-out-cooldown", env="SCALE_OUT_COOLDOWN", type=_seconds,
                            metavar="SECONDS",
                            help="autoscale: seconds after a scale-out before the next one "
                                 "(default: Application Auto Scaling's)")
    parser.add_env_argument("--data-capture", env="DATA_CAPTURE", metavar="S3_URI",
                            help="capture requests and answers to this S3 prefix "
                                 "(s3://bucket/prefix); later updates keep the live capture")
    parser.add_env_argument("--capture-percent", env="CAPTURE_PERCENT",
                            default=DEFAULT_CAPTURE_PERCENT, type=int, metavar="PERCENT",
                            help="data capture: percent of the invocations captured (1-100)")
    parser.add_env_argument("--no-data-capture", env="NO_DATA_CAPTURE", action="store_true",
                            help="drop the live data capture on this update (otherwise kept)")
    parser.add_env_argument("--add-variant", env="ADD_VARIANT", metavar="NAME",
                            help="deploy the package as a new variant beside the live one(s) "
                                 "(A/B test), with --weight")
    parser.add_env_argument("--weight", env="VARIANT_WEIGHT", type=float, metavar="W",
                            help="--add-variant: its weight, relative to the live variants' "
                                 "(0: deployed, no traffic)")
    parser.add_env_argument("--set-weights", env="SET_WEIGHTS", type=parse_weights,
                            metavar="VARIANT=W,...",
                            help="shift traffic between live variants, e.g. "
                                 "champion=90,challenger=10 (no new fleet, no package needed)")
    parser.add_env_argument("--promote", env="PROMOTE_VARIANT", metavar="VARIANT",
                            help="make this variant the endpoint's only one (no package needed)")
    parser.add_env_argument("--remove-variant", env="REMOVE_VARIANT", metavar="VARIANT",
                            help="remove this variant from the endpoint (no package needed)")
    parser.add_env_argument("--shadow", env="SHADOW", action="store_true",
                            help="deploy the package as a shadow variant beside the live one: it "
                                 "gets a copy of the requests, its answers go nowhere but logs "
                                 "and data capture")
    parser.add_env_argument("--shadow-sampling", env="SHADOW_SAMPLING",
                            default=DEFAULT_SHADOW_SAMPLING, type=int, metavar="PERCENT",
                            help="--shadow: percent of the requests copied to it (1-100)")
    parser.add_env_argument("-s", "--stack", env="STACK", default=DEFAULT_STACK, metavar="NAME",
                            help="stack name: tags every resource, prefixes generated names")
    parser.add_env_argument("--tag", env="TAG", type=_tag, action="append",
                            metavar="KEY=VALUE",
                            help="KEY=VALUE tag for the model, config and endpoint; repeatable "
                                 "(env: comma-separated)")
    parser.add_env_argument("--deployment-strategy", env="DEPLOYMENT_STRATEGY",
                            default=STRATEGIES[0], choices=STRATEGIES,
                            help="blue/green traffic shifting; canary and linear need "
                                 "--instance-count >= 2")
    parser.add_env_argument("--step-size", env="DEPLOY_STEP_SIZE", default=50, type=_percent,
                            metavar="PERCENT",
                            help="percent of instances per canary/linear step (10-50)")
    parser.add_env_argument("--step-wait", env="DEPLOY_STEP_WAIT", default=300, type=_seconds,
                            metavar="SECONDS",
                            help="seconds between steps; with --rollback-alarm also how long the "
                                 "old fleet is kept after the shift (0-3600)")
    parser.add_env_argument("--rollback-alarm", env="ROLLBACK_ALARM", action="append",
                            metavar="ALARM",
                            help="CloudWatch alarm that makes SageMaker roll an update back; "
                                 "repeatable (env: comma-separated)")
    parser.add_env_argument("--keep-previous", env="KEEP_PREVIOUS", action="store_true",
                            help="keep the config and model an update replaced")
    parser.add_env_argument("--keep-releases", env="KEEP_RELEASES",
                            default=DEFAULT_KEEP_RELEASES, type=positive_int, metavar="N",
                            help="keep the configs and models of the endpoint's last N releases "
                                 "(for --rollback); older ones deploy-model made are deleted")
    releases = parser.add_argument_group("releases (no package needed; -e names the endpoint)")
    releases.add_argument("--rollback", action="store_true",
                          help="switch the endpoint back to its previous release (blue/green, "
                               "watched and verified like a deploy)")
    releases.add_argument("--to-release", type=positive_int, metavar="K",
                          help="with --rollback: switch to release K (see --history)")
    releases.add_argument("--history", action="store_true",
                          help="list the endpoint's releases (live, previous) and failed attempts")
    parser.add_env_argument("--no-monitor", env="NO_MONITOR", action="store_true",
                            help="return once SageMaker accepts the deploy (no logs, no rollback)")
    parser.add_env_argument("--skip-rollback", env="SKIP_ROLLBACK", action="store_true",
                            help="on failure keep everything for debugging and print the "
                                 "cleanup commands")
    parser.add_env_argument("--timeout", env="DEPLOY_TIMEOUT", default=DEFAULT_TIMEOUT, type=wait_seconds,
                            metavar="SECONDS",
                            help="seconds to wait for InService")
    parser.add_env_argument("--poll-interval", env="DEPLOY_POLL_INTERVAL", type=poll_seconds,
                            metavar="SECONDS",
                            help="seconds between status checks (default: back off from 5 to 30)")
    parser.add_env_argument("--smoke-test-data", env="SMOKE_TEST_DATA", metavar="FILE",
                            help="JSON request file sent once InService; an answer that breaks "
                                 "the contract fails (and rolls back) the deploy")
    parser.add_env_argument("--dry-run", env="DRY_RUN", action="store_true",
                            help="validate, resolve the package and show the plan; change nothing")
    parser.add_env_argument("--output-file", env="ENDPOINT_NAME_FILE", metavar="FILE",
                            help="write the endpoint name to this file on success")
    add_common_flags(parser)
    return parser


def _execute(args, env, sources) -> int:
    from modules.deploy_validation import settings_from_args

    settings = settings_from_args(args, env, sources=sources)
    from modules.deploy_endpoint import run_deploy  # boto3 only once the input is valid

    return run_deploy(settings)


def main(argv=None, env=None) -> int:
    env = environ(env)
    parser = build_parser()
    args = parser.parse_with_env(argv, env)
    output.configure_output(json_mode=args.json, env=env)
    return run(lambda: _execute(args, aws_env(args, env), parser.value_sources),
               debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
