#!/usr/bin/env python3
"""Package a scikit-learn linear model for SageMaker (steps 1-5 of the workflow).

Checks the artifacts (pre-flight and a smoke run of the handlers), bundles them into a
deterministic model.tar.gz, uploads it to S3 under a content-addressed key, registers it in a
model package group with its serving environment, approves it and prints the model package ARN
(optionally into --output-file, for deploy-model.py). Re-packaging unchanged artifacts re-uses the
existing package.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, never installed

from utils import output  # noqa: E402
from utils.cli import EnvArgumentParser, add_common_flags, aws_env, environ, run, wait_seconds  # noqa: E402
from utils.names import DEFAULT_STACK  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = """\
examples:
  python utils/package-model.py --output-file model_arn.txt
  python utils/package-model.py -s plmscw -g MyModelGroup --repo-name prod \\
      --import-branch-name inference-v2 -t ml.c5.xlarge -o model_arn.txt
  python utils/package-model.py --artifacts-dir ./my-model --sample-data sample-data.json --json
  python utils/package-model.py --dry-run      # every check, then what it would do; changes nothing

required environment variables:
  AWS_REGION, AWS_ACCOUNT, DATA_BUCKET, AI_INPUT_QUEUE_URL, SAGEMAKER_EXECUTION_ROLE_ARN
  (AWS_PROFILE optional: otherwise boto3's default credential chain)"""


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(
        prog="package-model.py", epilog=EXAMPLES,
        description="Bundle, upload, register and approve a model package (steps 1-5).")
    add = parser.add_env_argument
    add("-s", "--stack", env="STACK", default=DEFAULT_STACK, help="main stack name")
    add("-t", "--instance-type", env="INSTANCE_TYPE", default="ml.c5.2xlarge",
        help="real-time instance type the package supports ('local' is ignored)")
    add("-g", "--model-package-group-name", env="MODEL_PACKAGE_GROUP_NAME",
        default="PLMSCWInferenceModelGroup", help="model package group (created if missing)")
    add("--repo-name", env="REPO_NAME", default="dev", help="repository/environment name")
    add("--import-branch-name", env="IMPORT_BRANCH_NAME", default="inference-data",
        help="import branch name")
    add("-o", "--output-file", env="MODEL_ARN_FILE", metavar="FILE",
        help="write the model package ARN (alone) to FILE")
    add("--artifacts-dir", env="ARTIFACTS_DIR", default=str(REPO_ROOT / "artifacts"),
        metavar="DIR", help="directory with model.joblib, inference.py, requirements.txt")
    add("--image-uri", env="IMAGE_URI", metavar="URI",
        help="serving image (default: <account>.dkr.ecr.<region>.amazonaws.com/"
             "<stack>-inference:latest)")
    add("--sklearn-image-version", env="SKLEARN_IMAGE_VERSION", metavar="VERSION",
        help="use AWS's prebuilt scikit-learn image of this framework version, e.g. 1.9-0; "
             "it must run the scikit-learn series the model was saved with (excludes --image-uri)")
    add("--sample-data", env="SAMPLE_DATA", metavar="FILE",
        help='JSON {"data": [[...]]} for the smoke run (default: generated rows)')
    add("--class-labels", env="CLASS_LABELS", metavar="LABELS",
        help="comma-separated labels, one per class (default: inference.py's qc_pass,qc_fail)")
    add("--dry-run", env="DRY_RUN", action="store_true",
        help="make every check (artifacts, image, bucket, existing packages) and show what a run "
             "would do; upload, register and write nothing")
    add("--preflight-timeout", env="PREFLIGHT_TIMEOUT", default=60.0, type=wait_seconds,
        metavar="SECONDS", help="limit for loading the model and the smoke run")
    add_common_flags(parser)
    return parser


def _execute(args, env, sources) -> int:
    from modules.package_settings import print_settings, settings_from_args

    settings = settings_from_args(args, env, sources)
    output.print_header("SageMaker Model Packaging")
    print_settings(settings, env)

    from modules import package_workflow as workflow
    from utils.boto_session import create_clients, get_boto_session

    with tempfile.TemporaryDirectory(prefix="deploy-model-bundle-") as workdir:
        prepared = workflow.prepare_package(settings, env, Path(workdir))
        output.print_section("Checking AWS resources")
        session = get_boto_session(settings.region, settings.profile)
        sagemaker, s3, ecr = create_clients(session, "sagemaker", "s3", "ecr")
        if settings.dry_run:
            workflow.report_plan(workflow.plan_package(prepared, sagemaker=sagemaker, s3=s3,
                                                       ecr=ecr))
            return 0
        result = workflow.publish_package(prepared, sagemaker=sagemaker, s3=s3, ecr=ecr)
    workflow.report_result(result, settings)
    return 0


def main(argv=None, env=None) -> int:
    env = environ(env)
    parser = build_parser()
    args = parser.parse_with_env(argv, env)
    output.configure_output(json_mode=args.json, env=env)
    return run(lambda: _execute(args, aws_env(args, env), parser.value_sources), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
