"""Issue 9: deploy-model.py, package-model.py and delete_endpoint.py refuse with exit 2 what used
to pass as valid or crash with exit 1: Unicode digits and newlines, spaces around 'local', an
unvalidated --stack, ENDPOINT_NAME='', and non-finite or unbounded durations."""

from __future__ import annotations

import argparse

import pytest

from modules import deploy_validation as v
from tests.conftest import ACCOUNT_ENV, load_script
from utils import cli
from utils.errors import ValidationError

GOOD = "arn:aws:sagemaker:ca-central-1:123456789012:model-package/qc-group/3"
DEPLOY = load_script("deploy-model.py")
PACKAGE = load_script("utils/package-model.py")
DELETE = load_script("utils/delete_endpoint.py")


@pytest.mark.parametrize("arn, problem", [
    (GOOD.replace("/3", "/²"), "version '²'"),
    (GOOD.replace("/3", "/٣"), "version '٣'"),
    (GOOD.replace("123456789012", "１２３４５６７８９０１２"), "12-digit"),
    (GOOD.replace("123456789012", "123456789012\n"), "12-digit"),
    (GOOD.replace("ca-central-1", "ca-central-1\n"), "region"),
    (GOOD.replace("ca-central-1", "ca-central-١"), "region"),
    (GOOD.replace("qc-group", "qc-group\n"), "group name"),
])
def test_unicode_digits_and_newlines_in_an_arn_are_refused(arn, problem):
    with pytest.raises(ValidationError) as caught:
        v.parse_model_package_arn(arn)
    assert problem in caught.value.message


@pytest.mark.parametrize("instance_type", [" local", "local ", "\tlocal", "ml.c5.xlarge\n"])
def test_spaces_around_an_instance_type_are_refused(instance_type):
    with pytest.raises(ValidationError, match="has spaces around it") as caught:
        v.validate_instance_type(instance_type, known=["ml.c5.xlarge"])
    assert caught.value.hints == [f"Did you mean {instance_type.strip()!r}?"]


@pytest.mark.parametrize("tag", ["team=ml\nx", "te\tam=ml", "team=m\rl"])
def test_control_characters_in_tags_are_refused(tag):
    with pytest.raises(argparse.ArgumentTypeError):
        v.parse_tag(tag)
    assert v.parse_tag("équipe=données ML") == ("équipe", "données ML")  # AWS allows Unicode


@pytest.mark.parametrize("stack", ["Bad", "a b", "-x", "x-", "x" * 64, "x\n", "ｘ", ""])
def test_a_bad_stack_is_refused_by_deploy(stack, capsys):
    assert DEPLOY.main(["-a", GOOD, "-e", "qc", f"--stack={stack}", "--dry-run"], ACCOUNT_ENV) == 2
    assert "Invalid stack" in capsys.readouterr().err


def test_an_empty_endpoint_name_variable_is_refused_like_an_empty_flag(capsys):
    assert DEPLOY.main(["-a", GOOD, "--dry-run"], {**ACCOUNT_ENV, "ENDPOINT_NAME": ""}) == 2
    assert "Invalid endpoint name: it is empty" in capsys.readouterr().err


@pytest.mark.parametrize("convert, raw", [
    (cli.wait_seconds, "nan"), (cli.wait_seconds, "inf"), (cli.wait_seconds, "-inf"),
    (cli.wait_seconds, "1e26"), (cli.wait_seconds, str(cli.MAX_WAIT_SECONDS + 1)),
    (cli.poll_seconds, "nan"), (cli.poll_seconds, "1e-9"), (cli.poll_seconds, "1e26"),
    (cli.positive_float, "nan"), (cli.positive_float, "inf"),
])
def test_non_finite_and_unbounded_durations_are_refused(convert, raw):
    with pytest.raises(argparse.ArgumentTypeError):
        convert(raw)


def test_bounded_durations_accept_the_usual_values():
    assert cli.wait_seconds("1800") == 1800.0 and cli.wait_seconds("0.5") == 0.5
    assert cli.poll_seconds("0.01") == 0.01 and cli.poll_seconds("30") == 30.0


@pytest.mark.parametrize("script, argv", [
    (DEPLOY, ["-a", GOOD, "--timeout", "nan"]),
    (DEPLOY, ["-a", GOOD, "--timeout", "1e26"]),
    (DEPLOY, ["-a", GOOD, "--poll-interval", "nan"]),
    (DEPLOY, ["-a", GOOD, "--poll-interval", "1e-9"]),
    (PACKAGE, ["--preflight-timeout", "inf"]),
    (PACKAGE, ["--preflight-timeout", "nan"]),
    (PACKAGE, ["--preflight-timeout", "1e26"]),
    (DELETE, ["-e", "qc", "--timeout", "nan"]),
    (DELETE, ["-e", "qc", "--poll-interval", "1e-9"]),
])
def test_scripts_refuse_bad_durations_with_exit_2(script, argv, capsys):
    with pytest.raises(SystemExit) as caught:
        script.main(argv, ACCOUNT_ENV)
    assert caught.value.code == 2


@pytest.mark.parametrize("name, value", [("DEPLOY_TIMEOUT", "nan"),
                                         ("DEPLOY_POLL_INTERVAL", "inf")])
def test_bad_durations_from_the_environment_are_refused(name, value, capsys):
    with pytest.raises(SystemExit) as caught:
        DEPLOY.main(["-a", GOOD], {**ACCOUNT_ENV, name: value})
    assert caught.value.code == 2
    assert f"environment variable {name}={value!r} is invalid" in capsys.readouterr().err


def test_a_state_dir_that_is_a_file_is_refused_before_any_aws_call(capsys, tmp_path):
    import sys

    plain = tmp_path / "state"
    plain.write_text("")
    env = {**ACCOUNT_ENV, "DEPLOY_MODEL_STATE_DIR": str(plain / "deploy_model")}
    loaded_before = "boto3" in sys.modules
    assert DEPLOY.main(["-a", GOOD, "-e", "qc", "-t", "local"], env) == 2
    err = capsys.readouterr().err
    assert f"Cannot keep local endpoints in {plain / 'deploy_model'}: {plain} is not a directory" \
        in err and "DEPLOY_MODEL_STATE_DIR" in err
    assert loaded_before or "boto3" not in sys.modules
