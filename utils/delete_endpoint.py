#!/usr/bin/env python3
"""Delete an endpoint with its endpoint config and model, or stop a local endpoint.

A local endpoint of that name (started with `deploy-model.py -t local`) is stopped first;
otherwise the autoscaling of its variants is deregistered (policies, then scalable targets), the
SageMaker endpoint is deleted (waiting until it is gone, also while it is still Creating), then
its current config and that config's models, then its kept releases' configs and models (each only
while it still carries its release's run id). Asks nothing; prints what it
removed, or with `--json` one document listing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, never installed

from utils import output  # noqa: E402
from utils.cli import EnvArgumentParser, add_common_flags, aws_env, environ, poll_seconds, run, wait_seconds  # noqa: E402
from utils.errors import AwsError, DeployModelError, ExitCode, ValidationError  # noqa: E402

_EPILOG = """\
examples:
  python utils/delete_endpoint.py -e qc-endpoint-20260115-093000
  python utils/delete_endpoint.py -e qc-local --json
  python utils/delete_endpoint.py -e "$(cat endpoint_name.txt)" --if-exists   # CI teardown
  python utils/delete_endpoint.py -e qc-endpoint-20260115-093000 --dry-run

required environment for SageMaker endpoints: AWS_REGION (AWS_PROFILE optional)."""


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(prog="delete_endpoint.py", description=__doc__.split("\n\n")[0],
                               epilog=_EPILOG)
    parser.add_env_argument("-e", "--endpoint-name", env="ENDPOINT_NAME", metavar="NAME",
                            help="endpoint to delete (required)")
    parser.add_env_argument("--timeout", env="DELETE_TIMEOUT", default=900.0, type=wait_seconds,
                            metavar="SECONDS", help="how long to wait for the endpoint to go")
    parser.add_env_argument("--poll-interval", env="DEPLOY_POLL_INTERVAL", type=poll_seconds,
                            metavar="SECONDS",
                            help="seconds between status checks (default: back off from 5 to 30)")
    parser.add_env_argument("--if-exists", env="DELETE_IF_EXISTS", action="store_true",
                            help="an endpoint that does not exist is not an error (exit 0): "
                                 "for CI teardown steps")
    parser.add_env_argument("--dry-run", env="DRY_RUN", action="store_true",
                            help="show what would be stopped or deleted; change nothing")
    add_common_flags(parser)
    return parser


def _execute(args, env) -> int:
    from modules.deploy_validation import validate_endpoint_name

    if not args.endpoint_name:
        raise ValidationError("No endpoint given: pass -e/--endpoint-name (env ENDPOINT_NAME)")
    name = validate_endpoint_name(args.endpoint_name)
    if args.dry_run:
        result = _plan_local(name, env) or _plan_sagemaker(name, env, args.if_exists)
    else:
        result = _stop_local(name, env) or _delete_sagemaker(
            name, env, args.timeout, args.poll_interval, args.if_exists)
    if output.is_json_mode():
        output.print_json_result(result)
    return int(ExitCode.OK)


def _stop_local(name: str, env) -> dict | None:
    from modules.local_endpoint import stop_local_endpoint
    from utils.local_endpoints import state_dir_from_env

    stopped = stop_local_endpoint(name, state_dir_from_env(env))
    if stopped is None:
        return None
    output.print_success(f"Stopped local endpoint {name}")
    # Same keys as a SageMaker delete, so a CI step reads one shape whatever the endpoint was.
    return {**stopped, "endpoint_name": name, "local": True,
            "removed": [f"local endpoint {name}"], "left_behind": [], "cleanup_commands": []}


def _plan_local(name: str, env) -> dict | None:
    from utils.local_endpoints import find_endpoint, state_dir_from_env

    endpoint = find_endpoint(state_dir_from_env(env), name)
    if endpoint is None or not endpoint.record:
        return None
    running = f"its server, pid {endpoint.pid}" if endpoint.is_running() else "not running"
    return _report_plan(name, [f"local endpoint {name} ({running}) and {endpoint.directory}"],
                        {"local": True})


def _plan_sagemaker(name: str, env, if_exists: bool) -> dict:
    from modules.deploy_resources import endpoint_resources

    region, sagemaker, autoscaling = _sagemaker_client(name, env, "Dry run: deleting endpoint")
    resources = endpoint_resources(sagemaker, name)
    if resources is None:
        return _absent(name, region, if_exists, dry_run=True)
    listed = [str(r) for r in resources]
    return _report_plan(name, _scaled_targets(sagemaker, autoscaling, name) + listed
                        + _kept_releases(sagemaker, name, set(listed)),
                        {"local": False, "region": region})


def _kept_releases(sagemaker, name: str, listed: set[str]) -> list[str]:
    from modules.deploy_releases import kept_release_resources

    return [str(r) for run_id, resources in kept_release_resources(sagemaker, name)
            if run_id is not None for r in resources if str(r) not in listed]


def _variant_names(sagemaker, name: str) -> list[str]:
    from utils.endpoint_operations import describe_endpoint

    current = describe_endpoint(sagemaker, name) or {}
    return [v["VariantName"] for v in current.get("ProductionVariants") or []]


def _scaled_targets(sagemaker, autoscaling, name: str) -> list[str]:
    from modules.deploy_scaling import read_scaling, resource_id

    return [f"scalable target {resource_id(name, variant)}"
            for variant in _variant_names(sagemaker, name)
            if read_scaling(autoscaling, name, variant) is not None]


def _report_plan(name: str, would_remove: list[str], facts: dict) -> dict:
    output.print_success(f"Dry run: nothing was stopped or deleted; a real run would remove "
                         f"{', '.join(would_remove)}")
    return {"endpoint_name": name, **facts, "dry_run": True, "would_remove": would_remove,
            "removed": [], "left_behind": [], "cleanup_commands": []}


def _sagemaker_client(name: str, env, title: str):
    from utils.boto_session import create_clients, get_boto_session
    from utils.env_validation import get_env_var, validate_env_vars

    region = validate_env_vars(["AWS_REGION"], env)["AWS_REGION"]
    output.print_header(f"{title} {name}")
    session = get_boto_session(region, get_env_var("AWS_PROFILE", env))
    sagemaker, autoscaling = create_clients(session, "sagemaker", "application-autoscaling")
    return region, sagemaker, autoscaling


def _absent(name: str, region: str, if_exists: bool, *, dry_run: bool = False) -> dict:
    """No such endpoint: an error, or with --if-exists a success that says so."""
    if not if_exists:
        raise AwsError(f"No endpoint named {name} in {region} (and no local endpoint)", hint=[
            f"List endpoints: aws sagemaker list-endpoints --region {region}",
            "Check AWS_REGION (or --region): endpoints live in one region.",
            "In a teardown step, --if-exists makes a missing endpoint exit 0."])
    output.print_success(f"No endpoint named {name} in {region} (and no local endpoint): "
                         "nothing to delete (--if-exists)")
    result = {"endpoint_name": name, "local": False, "region": region, "existed": False,
              "removed": [], "left_behind": [], "cleanup_commands": []}
    return {**result, "dry_run": True, "would_remove": []} if dry_run else result


def _delete_sagemaker(name: str, env, timeout: float, poll_interval: float | None,
                      if_exists: bool = False) -> dict:
    from modules.deploy_releases import delete_kept_releases
    from modules.deploy_resources import Waiting, delete_endpoint_with_resources
    from modules.deploy_scaling import deregister_variants

    region, sagemaker, autoscaling = _sagemaker_client(name, env, "Deleting endpoint")
    # Before the endpoint goes: a scalable target of a deleted endpoint stays behind otherwise.
    deregistered = deregister_variants(autoscaling, name, _variant_names(sagemaker, name))
    report = delete_endpoint_with_resources(
        sagemaker, name, wait=Waiting(timeout, poll_interval))
    if report is None:
        return _absent(name, region, if_exists)
    if not report.unfinished:  # the endpoint is gone: its kept releases go too (proven ours)
        report.absorb(delete_kept_releases(sagemaker, name,
                                           skip={str(r) for r in report.removed},
                                           wait=Waiting(timeout, poll_interval)))
    result = {"endpoint_name": name, "local": False, "region": region,
              "removed": deregistered + [str(r) for r in report.removed],
              "left_behind": [str(r) for r in report.unfinished],
              "cleanup_commands": report.commands(region)}
    if report.unfinished:
        raise DeleteIncomplete(name, report, result)
    output.print_success(f"Removed {', '.join(result['removed'])}")
    return result


class DeleteIncomplete(DeployModelError):
    """Something could not be removed (or Ctrl-C stopped the wait): say what is left and how to
    remove it; the JSON document lists it too."""

    def __init__(self, name: str, report, result: dict) -> None:
        super().__init__(f"Could not remove everything of endpoint {name}",
                         details=report.lines(result["region"]))
        self.result = result
        self.exit_code = ExitCode.AWS
        if report.interrupted is not None:
            from modules.deploy_report import interrupt_code

            self.exit_code = interrupt_code(report.interrupted)

    def to_dict(self) -> dict:
        return {**self.result, **super().to_dict()}


def main(argv=None, env=None) -> int:
    env = environ(env)
    args = build_parser().parse_with_env(argv, env)
    output.configure_output(json_mode=args.json, env=env)
    return run(lambda: _execute(args, aws_env(args, env)), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
