"""utils/cli.py: flag > env var > default, env-value checking, the exception boundary."""

from __future__ import annotations

import argparse
import json
import os
import signal

import pytest

from utils import output
from utils.cli import EnvArgumentParser, add_common_flags, environ, positive_float, positive_int, run
from utils.errors import AwsError, DeployModelError, ExitCode, ValidationError


@pytest.fixture(autouse=True)
def plain_output():
    output.configure_output(json_mode=False, env={"NO_COLOR": "1"})
    yield
    output.configure_output(json_mode=False)


def parser() -> EnvArgumentParser:
    p = EnvArgumentParser(prog="tool")
    p.add_env_argument("-n", "--name", env="NAME", default="dflt", help="a name")
    p.add_env_argument("--count", env="COUNT", default=3, type=positive_int, help="how many")
    p.add_env_argument("--flag", env="FLAG", action="store_true", help="a switch")
    p.add_env_argument("--tag", env="TAG", action="append", help="repeatable")
    p.add_env_argument("--mode", env="MODE", default="a", choices=["a", "b"], help="mode")
    add_common_flags(p)
    return p


def test_flag_beats_env_beats_default():
    assert parser().parse_with_env([], {}).name == "dflt"
    assert parser().parse_with_env([], {"NAME": "env"}).name == "env"
    assert parser().parse_with_env(["-n", "flag"], {"NAME": "env"}).name == "flag"
    assert parser().parse_with_env(["--count", "7"], {"COUNT": "5"}).count == 7
    assert parser().parse_with_env([], {"COUNT": "5"}).count == 5


def test_empty_env_value_counts_as_unset():
    assert parser().parse_with_env([], {"NAME": ""}).name == "dflt"


def test_value_sources_are_recorded():
    p = parser()
    p.parse_with_env(["-n", "x"], {"COUNT": "2"})
    assert p.value_sources["name"] == "flag"
    assert p.value_sources["count"] == "env"
    assert p.value_sources["mode"] == "default"


@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), ("YES", True),
                                           ("on", True), ("0", False), ("false", False),
                                           ("", False)])
def test_boolean_env_values(raw, expected):
    assert parser().parse_with_env([], {"FLAG": raw}).flag is expected


def test_boolean_flag_and_default():
    assert parser().parse_with_env([], {}).flag is False
    assert parser().parse_with_env(["--flag"], {"FLAG": "0"}).flag is True


def test_list_env_values_are_split_and_stripped():
    assert parser().parse_with_env([], {"TAG": "a, b,,c "}).tag == ["a", "b", "c"]
    assert parser().parse_with_env(["--tag", "x", "--tag", "y"], {"TAG": "a"}).tag == ["x", "y"]


@pytest.mark.parametrize("env, message", [
    ({"COUNT": "0"}, "environment variable COUNT='0' is invalid: must be a whole number"),
    ({"COUNT": "many"}, "environment variable COUNT='many' is invalid"),
    ({"FLAG": "maybe"}, "environment variable FLAG='maybe' is invalid"),
    ({"MODE": "c"}, "environment variable MODE='c' is invalid: choose from 'a', 'b'"),
])
def test_invalid_env_values_are_usage_errors(env, message, capsys):
    with pytest.raises(SystemExit) as caught:
        parser().parse_with_env([], env)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_choices_from_env_pass_when_valid():
    assert parser().parse_with_env([], {"MODE": "b"}).mode == "b"


def test_argparse_errors_in_json_mode_print_one_json_document(capsys):
    with pytest.raises(SystemExit) as caught:
        parser().parse_with_env(["--json", "--count"], {})
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": "argument --count: expected one argument",
                                        "exit_code": 2}
    assert "usage:" in captured.err


def test_help_shows_env_vars_defaults_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as caught:
        parser().parse_with_env(["--help"], {})
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "[env: NAME; default: dflt]" in out and "[env: FLAG=1]" in out
    assert "exit codes:" in out and "143" in out


@pytest.mark.parametrize("function, good, bad", [
    (positive_int, ("5", 5), ["0", "-1"]),
    (positive_float, ("0.5", 0.5), ["0", "-2", "x"]),
])
def test_positive_numbers(function, good, bad):
    assert function(good[0]) == good[1]
    for raw in bad:
        with pytest.raises((argparse.ArgumentTypeError, ValueError)):
            function(raw)


def test_environ_defaults_to_os_environ():
    assert environ(None) is os.environ
    assert environ({"A": "1"}) == {"A": "1"}


def test_run_returns_the_bodys_code():
    assert run(lambda: 0) == 0


@pytest.mark.parametrize("error, code", [(ValidationError("bad input"), 2),
                                         (AwsError("aws said no"), 3)])
def test_run_turns_errors_into_messages_and_codes(error, code, capsys):
    error.details, error.hints = ["detail line"], ["do this"]

    def body():
        raise error

    assert run(body) == code
    err = capsys.readouterr().err
    assert f"ERROR: {error.message}" in err and "  detail line" in err and "  - do this" in err
    assert "Traceback" not in err


def test_run_in_json_mode_prints_the_error_document(capsys):
    output.configure_output(json_mode=True, env={})

    def body():
        raise ValidationError("bad", details=["d"], hint="h")

    assert run(body) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": "bad", "exit_code": 2, "details": ["d"],
                                        "hints": ["h"]}


def test_unexpected_errors_are_internal_and_traceback_only_with_debug(capsys):
    def body():
        raise KeyError("oops")

    assert run(body) == 1
    err = capsys.readouterr().err
    assert "Unexpected internal error: KeyError" in err and "Traceback" not in err
    assert run(body, debug=True) == 1
    assert "Traceback" in capsys.readouterr().err


def test_botocore_errors_are_translated(capsys):
    from botocore.exceptions import ClientError

    def body():
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                          "DescribeEndpoint")

    assert run(body) == 3
    assert "DescribeEndpoint failed: ThrottlingException: slow down" in capsys.readouterr().err


def test_ctrl_c_is_130_and_finally_blocks_run(capsys):
    cleaned = []

    def body():
        try:
            raise KeyboardInterrupt
        finally:
            cleaned.append(True)

    assert run(body) == 130 and cleaned == [True]
    assert "Interrupted" in capsys.readouterr().err


def test_sigterm_is_143_after_finally_blocks(capsys):
    cleaned = []

    def body():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler raises at the next bytecode boundary
                pass
            return 0
        finally:
            cleaned.append(True)

    before = signal.getsignal(signal.SIGTERM)
    assert run(body) == 143 and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is restored


def test_deploy_model_error_carries_its_code():
    error = DeployModelError("x")
    assert error.exit_code == ExitCode.INTERNAL and error.to_dict() == {"error": "x",
                                                                         "exit_code": 1}
