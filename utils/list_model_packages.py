#!/usr/bin/env python3
"""List model package groups and their packages (Approved ones unless --all-statuses).

Reads every page, shows packages newest first as a table, or as one JSON document with --json.
Finding nothing is not an error: it says so and exits 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, never installed

from utils import output  # noqa: E402
from utils.cli import EnvArgumentParser, add_common_flags, aws_env, environ, run  # noqa: E402

EXAMPLES = """\
examples:
  python utils/list_model_packages.py
  python utils/list_model_packages.py --filter PLMSCWInference
  python utils/list_model_packages.py --filter PLMS --all-statuses --json

environment: AWS_REGION (required), AWS_PROFILE (optional)"""


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(prog="list_model_packages.py", epilog=EXAMPLES,
                               description="List model package groups and their packages.")
    parser.add_env_argument("--filter", env="MODEL_PACKAGE_FILTER", metavar="TEXT",
                            help="only groups whose name contains TEXT (case-insensitive)")
    parser.add_env_argument("--all-statuses", env="MODEL_PACKAGE_ALL_STATUSES",
                            action="store_true",
                            help="show pending and rejected packages too (default: Approved only)")
    add_common_flags(parser)
    return parser


def _execute(args, env) -> int:
    from utils.env_validation import get_env_var, validate_env_vars

    region = validate_env_vars(["AWS_REGION"], env)["AWS_REGION"]
    from modules.list_packages import list_model_packages, print_listing
    from utils.boto_session import create_clients, get_boto_session

    output.print_header("SageMaker Model Packages")
    session = get_boto_session(region, get_env_var("AWS_PROFILE", env))
    (sagemaker,) = create_clients(session, "sagemaker")
    listing = list_model_packages(sagemaker, args.filter or None, args.all_statuses)
    if output.is_json_mode():
        output.print_json_result({"region": region, **listing.to_dict()})
    else:
        print_listing(listing)
    return 0


def main(argv=None, env=None) -> int:
    env = environ(env)
    args = build_parser().parse_with_env(argv, env)
    output.configure_output(json_mode=args.json, env=env)
    return run(lambda: _execute(args, aws_env(args, env)), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
