"""Command-line plumbing shared by every entry script.

- `EnvArgumentParser`: every option has a long flag and an environment variable; precedence is flag,
  then env var, then default, and `--help` shows all three.
- `run`: the one boundary that turns exceptions into a message and an exit code (the httpie
  `raw_main` pattern), prints the JSON error document in `--json` mode, and maps Ctrl-C to 130 and
  SIGTERM to 143 after `finally` blocks (rollbacks) have run.

Nothing here imports boto3 or botocore at module level: it is on the argument-error path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

from utils import output
from utils.errors import (
    EXIT_CODES_HELP,
    DeployModelError,
    ExitCode,
    Terminated,
    missing_dependency,
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class _EnvOption(NamedTuple):  # not a dataclass: see utils/output.py's _State
    dest: str
    env: str
    default: Any
    convert: Callable[[str], Any]
    is_list: bool = False
    choices: Sequence[Any] | None = None


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")


class EnvArgumentParser(argparse.ArgumentParser):
    """argparse with environment-variable fallbacks and the exit-code table in the epilog."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        epilog = kwargs.pop("epilog", None)
        kwargs["epilog"] = f"{epilog}\n\n{EXIT_CODES_HELP}" if epilog else EXIT_CODES_HELP
        super().__init__(*args, **kwargs)
        self._env_options: list[_EnvOption] = []

    def add_env_argument(self, *flags: str, env: str, default: Any = None,
                         type: Callable[[str], Any] = str, help: str = "",
                         **kwargs: Any) -> argparse.Action:
        """An option read from the flag, else from `env`, else `default`."""
        shown = "none" if default is None else default
        action_name = kwargs.get("action")
        if action_name == "store_true":
            convert: Callable[[str], Any] = _parse_bool
            help_text = f"{help} [env: {env}=1]"
            action = self.add_argument(*flags, default=None, help=help_text, **kwargs)
        else:
            convert = type
            help_text = f"{help} [env: {env}; default: {shown}]"
            action = self.add_argument(*flags, default=None, type=type, help=help_text, **kwargs)
        is_list = action_name == "append"
        if action_name == "store_true" and default is None:
            default = False
        self._env_options.append(_EnvOption(action.dest, env, default, convert, is_list,
                                            action.choices))
        return action

    def parse_with_env(self, argv: Sequence[str] | None,
                       env: Mapping[str, str]) -> argparse.Namespace:
        argv = list(sys.argv[1:] if argv is None else argv)
        self._json_requested = "--json" in argv
        args = self.parse_args(argv)
        # Where each env-backed value came from ("flag", "env" or "default"), for options whose
        # precedence depends on it (e.g. two options that exclude each other).
        self.value_sources: dict[str, str] = {}
        for option in self._env_options:
            if getattr(args, option.dest) is not None:
                self.value_sources[option.dest] = "flag"
                continue
            has_env = env.get(option.env) not in (None, "")
            self.value_sources[option.dest] = "env" if has_env else "default"
            setattr(args, option.dest, self._value_from_env(option, env))
        return args

    def error(self, message: str) -> NoReturn:
        """argparse's usage error (exit 2); with --json, also the one JSON document on stdout."""
        if getattr(self, "_json_requested", False):
            sys.stdout.write(json.dumps({"error": message, "exit_code": int(ExitCode.USAGE)}) + "\n")
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {message}\n")

    def _value_from_env(self, option: _EnvOption, env: Mapping[str, str]) -> Any:
        raw = env.get(option.env)
        if raw is None or (raw == "" and option.convert is not _parse_bool):
            return option.default
        try:
            if option.is_list:
                values = [option.convert(item.strip()) for item in raw.split(",") if item.strip()]
            else:
                values = [option.convert(raw)]
        except (ValueError, argparse.ArgumentTypeError) as exc:
            self.error(f"environment variable {option.env}={raw!r} is invalid: {exc}")
        # argparse checks `choices` only for values given as flags; env values need it too.
        wrong = [v for v in values if option.choices is not None and v not in option.choices]
        if wrong:
            shown = ", ".join(map(repr, option.choices))
            self.error(f"environment variable {option.env}={raw!r} is invalid: "
                       f"choose from {shown}")
        return values if option.is_list else values[0]


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {raw}")
    return value


def positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {raw!r}") from None
    if not math.isfinite(value):  # nan passes every comparison, so it would never time out
        raise argparse.ArgumentTypeError(f"must be a finite number, got {raw}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {raw}")
    return value


MAX_WAIT_SECONDS = 7 * 24 * 3600  # a week: beyond any deploy, and deadlines and sleeps stay finite
MIN_POLL_SECONDS = 0.01  # what the tests and the emulator use; AWS itself deserves 5 s or more
MAX_POLL_SECONDS = 300


def wait_seconds(raw: str) -> float:
    """A timeout: finite, above 0, at most a week (1e26 would overflow a sleep or a deadline)."""
    value = positive_float(raw)
    if value > MAX_WAIT_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_WAIT_SECONDS} seconds (a week), "
                                         f"got {raw}")
    return value


def poll_seconds(raw: str) -> float:
    """A poll interval: 1e-9 would poll as fast as the loop spins."""
    value = positive_float(raw)
    if not MIN_POLL_SECONDS <= value <= MAX_POLL_SECONDS:
        raise argparse.ArgumentTypeError(f"must be between {MIN_POLL_SECONDS} and "
                                         f"{MAX_POLL_SECONDS} seconds, got {raw}")
    return value


def add_common_flags(parser: EnvArgumentParser) -> None:
    """The flags every script shares, as the AWS CLI and SAM CLI spell them."""
    parser.add_argument("--region", metavar="REGION", default=None,
                        help="AWS region [env: AWS_REGION, then AWS_DEFAULT_REGION; default: the "
                             "profile's region in the AWS config file]")
    parser.add_argument("--profile", metavar="NAME", default=None,
                        help="AWS CLI profile for credentials (and region) [env: AWS_PROFILE; "
                             "default: boto3's default credential chain]")
    parser.add_argument("--json", action="store_true",
                        help="print exactly one JSON document on stdout (progress on stderr)")
    parser.add_argument("--debug", action="store_true",
                        help="show a traceback for unexpected errors")
    parser.add_argument("--version", action=_VersionAction)


class _VersionAction(argparse.Action):
    """`--version`: the tool's version and the Python and boto3 it runs on (AWS CLI style)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> NoReturn:
        sys.stdout.write(version_text(parser.prog) + "\n")  # stdout, as argparse's own action
        parser.exit(0)


def version_text(prog: str) -> str:
    from importlib import metadata

    from utils.version import TOOL_NAME, TOOL_VERSION

    try:
        boto3_version = metadata.version("boto3")
    except metadata.PackageNotFoundError:
        boto3_version = "not installed"
    python = ".".join(map(str, sys.version_info[:3]))
    return f"{prog} ({TOOL_NAME}) {TOOL_VERSION}, Python {python}, boto3 {boto3_version}"


def aws_env(args: argparse.Namespace, env: Mapping[str, str]) -> Mapping[str, str]:
    """The environment as the rest of the run sees it: --region and --profile win over
    AWS_REGION and AWS_PROFILE. (Without any region variable, `get_env_var` falls back to the
    profile's configured region, lazily: reading the config file needs botocore.)"""
    overrides = {}
    if getattr(args, "region", None):
        overrides["AWS_REGION"] = args.region
    if getattr(args, "profile", None):
        overrides["AWS_PROFILE"] = args.profile
    return {**env, **overrides} if overrides else env


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _aws_error_from_botocore(exc: BaseException) -> DeployModelError | None:
    """Translate botocore's exceptions without importing botocore on the fast path."""
    if "botocore" not in sys.modules:
        return None
    from utils.aws_errors import translate_botocore_error

    return translate_botocore_error(exc)


def _report(error: DeployModelError) -> int:
    if output.is_json_mode():
        output.print_json_result(error.to_dict())
    output.print_error(error.message, details=error.details, hints=error.hints,
                       title="ERROR" if error.title == "Error" else error.title)
    return int(error.exit_code)


def run(body: Callable[[], int], *, debug: bool = False) -> int:
    """Run `body`, turning every failure into a message and an exit code."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return body()
    except BrokenPipeError:
        return _reader_went_away()
    except DeployModelError as error:
        return _report(error)
    except KeyboardInterrupt:
        return _report(_interrupted("Interrupted (Ctrl-C)", ExitCode.INTERRUPTED))
    except Terminated:
        return _report(_interrupted("Terminated (SIGTERM)", ExitCode.TERMINATED))
    except Exception as exc:  # noqa: BLE001 - this is the one boundary
        if isinstance(exc, ModuleNotFoundError) and missing_dependency(exc) is not None:
            return _report(missing_dependency(exc))  # run outside the project's venv
        translated = _aws_error_from_botocore(exc)
        if translated is not None:
            return _report(translated)
        if debug:
            output.print_traceback(traceback.format_exc())
        return _report(DeployModelError(
            f"Unexpected internal error: {type(exc).__name__}: {exc}",
            hint="Re-run with --debug for a traceback and report it as a bug."))
    finally:
        signal.signal(signal.SIGTERM, previous)


EXIT_BROKEN_PIPE = int(ExitCode.BROKEN_PIPE)  # 128 + SIGPIPE, what a shell reports for `| head`


def _reader_went_away() -> int:
    """stdout was piped into e.g. `head`, which exited: stop quietly, as `cat` would. stdout is
    pointed at /dev/null so the interpreter's final flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture)
        pass
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def _interrupted(message: str, code: ExitCode) -> DeployModelError:
    error = DeployModelError(message)
    error.exit_code = code
    return error


def environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    """The environment, read once at the edge (tests pass their own mapping)."""
    return os.environ if env is None else env
