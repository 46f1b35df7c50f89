"""utils/boto_session.py: credential source reported (never the secret), one client config."""

from __future__ import annotations

import types

import pytest

from utils import output
from utils.boto_session import CLIENT_CONFIG, create_clients, describe_credential_source, get_boto_session
from utils.errors import AwsError

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(autouse=True)
def plain_output():
    output.configure_output(json_mode=False, env={"NO_COLOR": "1"})


def test_environment_keys_are_reported_by_source_not_value(monkeypatch, capsys):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    session = get_boto_session("ca-central-1")
    assert session.region_name == "ca-central-1"
    out = capsys.readouterr().out
    assert "environment variables (AWS_ACCESS_KEY_ID)" in out and "region ca-central-1" in out
    assert SECRET not in out


def test_session_token_is_named_as_such(monkeypatch, capsys):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN")
    get_boto_session("ca-central-1")
    out = capsys.readouterr().out
    assert "environment variables (session token)" in out and "FwoGZXIv" not in out


def test_named_profile_is_used(monkeypatch, tmp_path, capsys):
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = {SECRET}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    session = get_boto_session("ca-central-1", "dev")
    assert session.get_credentials().access_key == "AKIADEV"
    out = capsys.readouterr().out
    assert "profile 'dev' (shared credentials file)" in out and SECRET not in out


def test_unknown_profile_raises_botocores_error_for_the_boundary():
    from botocore.exceptions import ProfileNotFound

    from utils.aws_errors import translate_botocore_error

    with pytest.raises(ProfileNotFound) as caught:
        get_boto_session("ca-central-1", "nope")
    translated = translate_botocore_error(caught.value)
    assert translated.exit_code == 2 and "aws configure list-profiles" in translated.hints[0]


def test_no_credentials_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AwsError) as caught:
        get_boto_session("ca-central-1")
    assert caught.value.message == "No AWS credentials found"
    assert any("AWS_PROFILE" in hint for hint in caught.value.hints)


def test_quiet_session_prints_nothing(capsys):
    get_boto_session("ca-central-1", quiet=True)
    assert capsys.readouterr().out == ""


def test_clients_share_one_config_and_honour_endpoint_overrides(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:6000")
    session = get_boto_session("ca-central-1", quiet=True)
    sagemaker, s3 = create_clients(session, "sagemaker", "s3")
    assert sagemaker.meta.endpoint_url == "http://127.0.0.1:5999"
    assert s3.meta.endpoint_url == "http://127.0.0.1:6000"
    for client in (sagemaker, s3):
        config = client.meta.config
        assert config.retries["mode"] == "standard"
        # botocore's max_attempts counts retries: 10 retries after the first try.
        assert config.retries == {"mode": "standard", "total_max_attempts": 11}
        assert config.connect_timeout == CLIENT_CONFIG.connect_timeout
        assert config.read_timeout == CLIENT_CONFIG.read_timeout >= 60
        assert "deploy-model/" in config.user_agent_extra
        assert client.meta.region_name == "ca-central-1"


@pytest.mark.parametrize("method, token, profile, text", [
    ("env", None, None, "environment variables (AWS_ACCESS_KEY_ID)"),
    ("iam-role", None, None, "instance IAM role"),
    ("sso", None, "corp", "profile 'corp' (AWS SSO)"),
    ("something-new", None, None, "something-new"),
    (None, None, None, "unknown"),
])
def test_describe_credential_source(method, token, profile, text):
    credentials = types.SimpleNamespace(method=method, token=token)
    assert describe_credential_source(credentials, profile) == text
