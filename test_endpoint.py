#!/usr/bin/env python3
"""Send test rows to an endpoint and check its answer against the inference contract.

The endpoint is looked up among the local endpoints on this machine first (`deploy-model.py
--instance-type local`), else invoked on SageMaker; the output says which. The input (a JSON file or
a JSON string, `{"data": [[...], ...]}`) is checked before anything is sent; the answer is checked
after, and its predictions are shown as a table with the round-trip latency. Exit 2 for bad input,
3 when the endpoint is missing or answers with an error (the container's message is shown), 4 when
the answer breaks the contract.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script, never installed

from utils import output  # noqa: E402
from utils.cli import EnvArgumentParser, add_common_flags, aws_env, environ, run  # noqa: E402

DEFAULT_REGION = "ca-central-1"


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(
        prog="test_endpoint.py",
        description="Invoke an endpoint (local or SageMaker) with test rows and validate the answer.",
        epilog="examples:\n"
               "  python test_endpoint.py -e my-endpoint -d sample-data.json\n"
               "  python test_endpoint.py -e my-endpoint -d '{\"data\": [[0.5, 1.2, -0.3, 2.0]]}' "
               "--content-type csv --json\n"
               "  python test_endpoint.py -e my-endpoint -d sample-data.json --target-variant "
               "challenger")
    parser.add_env_argument("-e", "--endpoint-name", env="ENDPOINT_NAME",
                            help="endpoint to test (required)")
    parser.add_env_argument("-d", "--input-data", env="INPUT_DATA",
                            help="a JSON file path, or a JSON string {\"data\": [[...], ...]} "
                                 "(required)")
    parser.add_env_argument("--content-type", env="CONTENT_TYPE", default="json",
                            choices=["json", "csv"],
                            help="send the rows as application/json or as text/csv")
    parser.add_env_argument("--target-variant", env="TARGET_VARIANT", metavar="VARIANT",
                            help="send to this production variant of a SageMaker endpoint "
                                 "(TargetVariant), e.g. a challenger; the output names the "
                                 "variant that answered either way")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the raw response (and every row of the table)")
    add_common_flags(parser)
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = environ(env)
    parser = build_parser()
    args = parser.parse_with_env(argv, env)
    for dest, flag, var in (("endpoint_name", "-e/--endpoint-name", "ENDPOINT_NAME"),
                            ("input_data", "-d/--input-data", "INPUT_DATA")):
        if not getattr(args, dest):
            parser.error(f"the following argument is required: {flag} (or set {var})")
    output.configure_output(json_mode=args.json, env=env)
    return run(lambda: _execute(args, aws_env(args, env)), debug=args.debug)


def _execute(args, env: Mapping[str, str]) -> int:
    from modules.deploy_validation import validate_endpoint_name
    from modules.invoke_endpoint import EndpointTest, run_endpoint_test, validate_variant_name
    from utils.env_validation import get_env_var
    from utils.local_endpoints import state_dir_from_env

    test = EndpointTest(
        endpoint_name=validate_endpoint_name(args.endpoint_name), input_data=args.input_data,
        content_type=args.content_type,
        region=get_env_var("AWS_REGION", env, DEFAULT_REGION),
        profile=get_env_var("AWS_PROFILE", env), state_dir=state_dir_from_env(env),
        verbose=args.verbose, target_variant=validate_variant_name(args.target_variant))
    document = run_endpoint_test(test)
    if args.json:
        output.print_json_result(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
