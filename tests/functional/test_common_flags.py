"""Flags every script shares, as AWS CLI users expect them: --region, --profile, --version, and
the profile's own region when no region variable is set; endpoint overrides are named."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from tests.conftest import ACCOUNT_ENV, REPO_ROOT, load_script
from utils import output
from utils.boto_session import create_clients, endpoint_override
from utils.cli import aws_env
from utils.env_validation import get_env_var
from utils.version import TOOL_VERSION

SCRIPTS = ["deploy-model.py", "test_endpoint.py", "utils/package-model.py",
           "utils/list_model_packages.py", "utils/delete_endpoint.py"]
LIST = load_script("utils/list_model_packages.py")


@pytest.fixture(autouse=True)
def plain_output():
    output.configure_output(json_mode=False, env={"NO_COLOR": "1"})


@pytest.fixture
def aws_config(tmp_path, monkeypatch):
    """An AWS config file with a default and a named profile, each with its own region."""
    path = tmp_path / "aws-config"
    path.write_text("[default]\nregion = eu-west-1\n\n"
                    "[profile dev]\nregion = us-west-2\n"
                    "aws_access_key_id = testing\naws_secret_access_key = testing\n\n"
                    "[profile noregion]\noutput = json\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))  # boto3 reads os.environ itself
    return str(path)


def _ns(region=None, profile=None):
    return argparse.Namespace(region=region, profile=profile)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_region_profile_and_version(script):
    parser = load_script(script).build_parser()
    help_text = parser.format_help()
    assert "--region REGION" in help_text and "--profile NAME" in help_text
    assert "--version" in help_text
    args = parser.parse_args(["--region", "us-east-2", "--profile", "dev"])
    assert (args.region, args.profile) == ("us-east-2", "dev")


def test_version_prints_the_tool_version_without_aws():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "deploy-model.py"), "--version"],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"deploy-model.py (deploy-model) {TOOL_VERSION}, Python 3.")
    assert "boto3 1." in done.stdout


def test_flags_win_over_environment_variables():
    env = aws_env(_ns("us-east-2", "dev"), {"AWS_REGION": "ca-central-1", "AWS_PROFILE": "prod"})
    assert env["AWS_REGION"] == "us-east-2" and env["AWS_PROFILE"] == "dev"
    untouched = aws_env(_ns(), {"AWS_REGION": "ca-central-1", "AWS_PROFILE": "prod"})
    assert untouched == {"AWS_REGION": "ca-central-1", "AWS_PROFILE": "prod"}


def _region(args, env):
    return get_env_var("AWS_REGION", aws_env(args, env))


def test_profile_region_applies_only_without_region_variables(aws_config):
    base = {"AWS_CONFIG_FILE": aws_config}
    assert _region(_ns(), base) == "eu-west-1"  # the default profile
    assert _region(_ns(profile="dev"), base) == "us-west-2"
    assert _region(_ns(), {**base, "AWS_PROFILE": "dev"}) == "us-west-2"
    assert _region(_ns(profile="dev"), {**base, "AWS_DEFAULT_REGION": "ap-south-1"}) == "ap-south-1"
    assert _region(_ns("ca-central-1", "dev"), base) == "ca-central-1"
    assert _region(_ns(profile="noregion"), base) is None
    assert _region(_ns(), {"AWS_CONFIG_FILE": aws_config + ".missing"}) is None


def test_list_uses_the_profiles_region_when_aws_region_is_unset(aws_config, capsys):
    env = {k: v for k, v in ACCOUNT_ENV.items() if k != "AWS_REGION"}
    with mock_aws():
        boto3.client("sagemaker", region_name="us-west-2").create_model_package_group(
            ModelPackageGroupName="in-us-west-2")
        code = LIST.main(["--profile", "dev", "--json"], {**env, "AWS_CONFIG_FILE": aws_config})
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(captured.out)
    assert document["region"] == "us-west-2"
    assert [g["name"] for g in document["groups"]] == ["in-us-west-2"]
    assert "profile 'dev' (AWS config file); region us-west-2" in captured.err


def test_region_flag_beats_aws_region(capsys):
    with mock_aws():
        code = LIST.main(["--region", "us-east-2", "--json"], dict(ACCOUNT_ENV))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["region"] == "us-east-2"


def test_no_region_anywhere_names_every_way_to_set_one(capsys):
    env = {k: v for k, v in ACCOUNT_ENV.items() if k != "AWS_REGION"}
    code = LIST.main([], env)
    err = capsys.readouterr().err
    assert code == 2
    assert "AWS_REGION" in err and "--region" in err and "AWS profile" in err


def test_unknown_profile_is_a_usage_error(aws_config, capsys):
    code = LIST.main(["--profile", "nope"], {"AWS_CONFIG_FILE": aws_config})
    err = capsys.readouterr().err
    assert code == 2
    assert "AWS profile not found" in err and "--profile" in err and "Traceback" not in err


def test_endpoint_overrides_are_named(monkeypatch, capsys):
    session = boto3.Session(region_name="ca-central-1")
    (plain,) = create_clients(session, "sagemaker")
    assert endpoint_override(plain) is None
    assert "Endpoint override" not in capsys.readouterr().out
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:6000")
    sagemaker, s3, runtime = create_clients(session, "sagemaker", "s3", "sagemaker-runtime")
    assert endpoint_override(sagemaker) == "AWS_ENDPOINT_URL"
    assert endpoint_override(runtime) == "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"
    out = capsys.readouterr().out
    assert "Endpoint override (AWS_ENDPOINT_URL): sagemaker, s3 go to http://127.0.0.1:5000" in out
    assert ("Endpoint override (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME): sagemaker-runtime goes to "
            "http://127.0.0.1:6000") in out


def test_endpoint_url_from_the_config_file_is_named(tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.write_text("[default]\nendpoint_url = http://127.0.0.1:7000\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    (sagemaker,) = create_clients(boto3.Session(region_name="ca-central-1"), "sagemaker",
                                  quiet=True)
    assert endpoint_override(sagemaker) == "endpoint_url in the AWS config file"
