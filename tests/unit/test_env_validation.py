"""utils/env_validation.py: every problem at once, format checks, secrets masked."""

from __future__ import annotations

import pytest

from tests.conftest import ACCOUNT_ENV
from utils import env_validation, output
from utils.env_validation import get_env_var, is_secret, mask_value, print_env_summary, validate_env_vars
from utils.errors import ValidationError

REQUIRED = ("AWS_REGION", "AWS_ACCOUNT", "DATA_BUCKET", "AI_INPUT_QUEUE_URL",
            "SAGEMAKER_EXECUTION_ROLE_ARN")


def test_valid_values_are_returned():
    assert validate_env_vars(REQUIRED, ACCOUNT_ENV) == ACCOUNT_ENV


def test_every_missing_variable_is_named_with_its_description():
    with pytest.raises(ValidationError) as caught:
        validate_env_vars(REQUIRED, {})
    assert caught.value.message == "Missing Required Environment Variables"
    for name in REQUIRED:
        description = env_validation.ENV_VARS[name].description
        assert f"  - {name}: {description}" in caught.value.details
    assert caught.value.exit_code == 2


def test_missing_and_malformed_together():
    env = {**ACCOUNT_ENV, "AWS_ACCOUNT": "abc"}
    del env["DATA_BUCKET"]
    with pytest.raises(ValidationError) as caught:
        validate_env_vars(REQUIRED, env)
    assert caught.value.message == "Missing or Invalid Environment Variables"
    assert "Missing:" in caught.value.details and "Malformed:" in caught.value.details


@pytest.mark.parametrize("name, value", [
    ("AWS_REGION", "canada"), ("AWS_REGION", "xx-nowhere-9"),
    ("AWS_ACCOUNT", "12345678901"), ("AWS_ACCOUNT", "1234567890123"),
    ("DATA_BUCKET", "Upper"), ("DATA_BUCKET", "ab"), ("DATA_BUCKET", "a..b"),
    ("DATA_BUCKET", "192.168.1.1"), ("DATA_BUCKET", "-leading"),
    ("AI_INPUT_QUEUE_URL", "http://127.0.0.1:5000/123456789012/ai-queue"),
    ("AI_INPUT_QUEUE_URL", "https://sqs.ca-central-1.amazonaws.com/ai-queue"),
    ("SAGEMAKER_EXECUTION_ROLE_ARN", "arn:aws:iam::123456789012:user/alice"),
    ("SAGEMAKER_EXECUTION_ROLE_ARN", "SageMakerExecutionRole"),
])
def test_malformed_values(name, value):
    with pytest.raises(ValidationError) as caught:
        validate_env_vars([name], {name: value})
    assert caught.value.message == "Invalid Environment Variables"
    assert any(line.strip().startswith(f"- {name}={value!r}") for line in caught.value.details)


@pytest.mark.parametrize("name, value", [
    ("AWS_REGION", "us-gov-west-1"), ("AWS_REGION", "eu-central-1"),
    ("DATA_BUCKET", "my.bucket-1"),
    ("AI_INPUT_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo"),
    ("SAGEMAKER_EXECUTION_ROLE_ARN",
     "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-2024"),
    ("SAGEMAKER_EXECUTION_ROLE_ARN", "arn:aws-cn:iam::123456789012:role/R"),
])
def test_well_formed_values(name, value):
    assert validate_env_vars([name], {name: value}) == {name: value}


def test_region_falls_back_to_aws_default_region():
    assert get_env_var("AWS_REGION", {"AWS_DEFAULT_REGION": "ca-central-1"}) == "ca-central-1"
    assert get_env_var("AWS_REGION", {"AWS_REGION": "eu-west-1",
                                      "AWS_DEFAULT_REGION": "ca-central-1"}) == "eu-west-1"


def test_values_are_stripped_and_empty_means_unset():
    assert get_env_var("X", {"X": "  v  "}) == "v"
    assert get_env_var("X", {"X": "   "}, default="d") == "d"
    assert get_env_var("X", {}) is None


def test_sagemaker_regions_come_from_botocore_and_are_cached():
    regions = env_validation.sagemaker_regions()
    assert "ca-central-1" in regions and "us-east-1" in regions
    assert env_validation.sagemaker_regions() is regions


@pytest.mark.parametrize("name, secret", [
    ("AWS_SECRET_ACCESS_KEY", True), ("AWS_SESSION_TOKEN", True), ("AWS_ACCESS_KEY_ID", True),
    ("DB_PASSWORD", True), ("DB_PASSWD", True), ("OPENAI_API_KEY", True),
    ("GITHUB_TOKEN", True), ("PRIVATE_KEY_PEM", True),
    ("AWS_REGION", False), ("DATA_BUCKET", False), ("AWS_PROFILE", False),
])
def test_is_secret(name, secret):
    assert is_secret(name) is secret


def test_mask_value_hides_secrets_completely():
    assert mask_value("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI") == "****"
    assert mask_value("AWS_REGION", "ca-central-1") == "ca-central-1"
    assert mask_value("AWS_PROFILE", None) == "(not set)"


def test_malformed_secret_values_are_never_echoed(monkeypatch):
    monkeypatch.setitem(env_validation.ENV_VARS, "SERVICE_API_KEY",
                        env_validation.EnvVarSpec("an API key", lambda v: "is too short"))
    with pytest.raises(ValidationError) as caught:
        validate_env_vars(["SERVICE_API_KEY"], {"SERVICE_API_KEY": "sk-live-123"})
    text = "\n".join(caught.value.details)
    assert "sk-live-123" not in text and "SERVICE_API_KEY='****' is too short" in text


def test_env_summary_masks_secrets(capsys):
    output.configure_output(json_mode=False, env={"NO_COLOR": "1"})
    print_env_summary({"AWS_REGION": "ca-central-1", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
                       "AWS_SESSION_TOKEN": "FwoGZXIvYXdz", "AWS_PROFILE": None})
    out = capsys.readouterr().out
    assert "wJalrXUtnFEMI" not in out and "FwoGZXIvYXdz" not in out
    assert "AWS_SECRET_ACCESS_KEY : ****" in out and "AWS_PROFILE           : (not set)" in out
    assert "ca-central-1" in out
