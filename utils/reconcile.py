#!/usr/bin/env python3
"""Find what deploy-model created that nothing uses any more (orphans of killed runs); remove it
with --apply.

SageMaker: models and endpoint configs tagged ManagedBy=deploy-model that no endpoint uses, that
are no kept release of an existing endpoint, and older than the grace period; autoscaling that
deploy-model registered for an endpoint that no longer exists. Local mode: model
servers under the state directory that no record names, and records whose server is gone.
Anything else (untagged, in use, kept releases, younger than the grace period) is never touched.
By default a dry run: it lists what --apply would remove.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, never installed

from utils import output  # noqa: E402
from utils.cli import EnvArgumentParser, add_common_flags, aws_env, environ, positive_int, run  # noqa: E402
from utils.errors import DeployModelError, ExitCode  # noqa: E402

DEFAULT_GRACE_MINUTES = 60.0
DEFAULT_LIMIT = 100
SCOPES = ("all", "sagemaker", "local")

_EPILOG = """\
examples:
  python utils/reconcile.py                          # dry run: what would be removed, and why
  python utils/reconcile.py --apply --json           # remove it; one JSON document
  python utils/reconcile.py --scope local --apply    # local servers and records only, no AWS
  python utils/reconcile.py --grace-period 0         # also what is only minutes old

required environment for the SageMaker scope: AWS_REGION (AWS_PROFILE optional)."""


def grace_minutes(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of minutes, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more minutes, got {raw}")
    return value


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(prog="reconcile.py", description=__doc__.split("\n\n")[0],
                               epilog=_EPILOG)
    parser.add_argument("--dry-run", dest="apply", action="store_false", default=None,
                        help="show what would be removed; change nothing (the default; wins "
                             "over RECONCILE_APPLY)")
    parser.add_env_argument("--apply", env="RECONCILE_APPLY", action="store_true",
                            help="remove the orphans found")
    parser.add_env_argument("--grace-period", env="RECONCILE_GRACE_PERIOD",
                            default=DEFAULT_GRACE_MINUTES, type=grace_minutes,
                            metavar="MINUTES",
                            help="leave resources younger than this alone (a deploy in "
                                 "progress creates its model and config before its endpoint "
                                 "uses them)")
    parser.add_env_argument("--limit", env="RECONCILE_LIMIT", default=DEFAULT_LIMIT,
                            type=positive_int, metavar="N",
                            help="remove at most N resources in one run")
    parser.add_env_argument("--scope", env="RECONCILE_SCOPE", default="all", choices=SCOPES,
                            help="what to look at: SageMaker resources, local endpoints, or both")
    add_common_flags(parser)
    return parser


def _parse(argv, env) -> argparse.Namespace:
    parser = build_parser()
    given = sys.argv[1:] if argv is None else list(argv)
    if "--apply" in given and "--dry-run" in given:
        parser.error("--apply and --dry-run exclude each other")
    return parser.parse_with_env(given, env)


def _execute(args, env) -> int:
    from modules.local_endpoint import stop_server
    from modules.reconcile import ReconcileSettings, reconcile
    from utils.local_endpoints import state_dir_from_env

    region = sagemaker = autoscaling = None
    if args.scope in ("all", "sagemaker"):
        region, sagemaker, autoscaling = _clients(env)
    settings = ReconcileSettings(
        apply=bool(args.apply), grace_seconds=args.grace_period * 60, limit=args.limit,
        sagemaker=sagemaker is not None, local=args.scope in ("all", "local"),
        state_dir=state_dir_from_env(env), region=region)
    output.print_header("Reconcile" + ("" if settings.apply else " (dry run)"))
    result = reconcile(settings, sagemaker, autoscaling, stop_server)
    _report(result)
    if result.left or result.problem or result.interrupted is not None:
        raise ReconcileIncomplete(result)
    if output.is_json_mode():
        output.print_json_result(result.to_dict())
    return int(ExitCode.OK)


def _clients(env):
    from utils.boto_session import create_clients, get_boto_session
    from utils.env_validation import get_env_var, validate_env_vars

    region = validate_env_vars(["AWS_REGION"], env)["AWS_REGION"]
    session = get_boto_session(region, get_env_var("AWS_PROFILE", env))
    sagemaker, autoscaling = create_clients(session, "sagemaker", "application-autoscaling")
    return region, sagemaker, autoscaling


def _report(result) -> None:
    for orphan in result.orphans:
        output.print_info(f"Orphan: {orphan} ({orphan.reason})")
    if result.survey is not None:
        kept = ", ".join(f"{len(names)} {why.replace('_', ' ')}"
                         for why, names in result.survey.kept.items())
        output.print_info(f"Kept (deploy-model's): {kept}; not deploy-model's (never touched): "
                          f"{result.survey.not_ours}")
    if not result.orphans:
        output.print_success("Nothing to reconcile: no orphans found")
    elif not result.settings.apply:
        output.print_success(f"Dry run: nothing was removed; --apply would remove "
                             f"{', '.join(map(str, result.orphans))}")
    elif result.removed:
        output.print_success(f"Removed {', '.join(result.removed)}")


class ReconcileIncomplete(DeployModelError):
    """Something found could not be removed: say what is left; the JSON document lists it."""

    def __init__(self, result) -> None:
        details = [f"Left: {', '.join(result.left)}"] if result.left else []
        if result.problem:
            details.append(result.problem)
        super().__init__("Reconcile could not remove everything it found", details=details,
                         hint="Re-run utils/reconcile.py --apply; what is gone is not listed "
                              "again.")
        self.result = result
        self.exit_code = ExitCode.AWS
        if result.interrupted is not None:
            from modules.deploy_report import interrupt_code

            self.exit_code = interrupt_code(result.interrupted)

    def to_dict(self) -> dict:
        return {**self.result.to_dict(), **super().to_dict()}


def main(argv=None, env=None) -> int:
    env = environ(env)
    args = _parse(argv, env)
    output.configure_output(json_mode=args.json, env=env)
    return run(lambda: _execute(args, aws_env(args, env)), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
