"""Issue 9: no secret is printed, whatever the error path; unusable credentials are refused with
exit 2, named but never shown."""

from __future__ import annotations

import json

import pytest

import test_endpoint
from utils import cli, output, redaction
from utils.errors import AwsError

TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKEN0123456789abcdefghij/+=="
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
DATA = '{"data": [[2.5, 180.0, 101.3, 0.2]]}'


def _invoke_sagemaker(capsys, *extra):
    code = test_endpoint.main(["-e", "qc-missing", "-d", DATA, "--region", "ca-central-1", *extra],
                              {"NO_COLOR": "1"})
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("variable, value", [
    ("AWS_SESSION_TOKEN", TOKEN + "\r"),
    ("AWS_SESSION_TOKEN", TOKEN + "\n"),
    ("AWS_SESSION_TOKEN", TOKEN + "\r\n"),
    ("AWS_SESSION_TOKEN", " " + TOKEN),
    ("AWS_SECRET_ACCESS_KEY", SECRET + "\n"),
    ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE\t"),
    ("AWS_SESSION_TOKEN", TOKEN[:10] + "\x1b" + TOKEN[10:]),
    ("AWS_SESSION_TOKEN", TOKEN[:10] + "é" + TOKEN[10:]),
])
@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_a_credential_no_request_can_carry_is_refused_unshown(capsys, monkeypatch, variable,
                                                              value, json_flag):
    monkeypatch.setenv(variable, value)
    code, text = _invoke_sagemaker(capsys, *json_flag)
    assert code == 2, text
    assert f"{variable} holds a character that no AWS request can carry" in text
    for fragment in (value.strip(), value.strip()[:16], value.strip()[-16:]):
        assert fragment not in text
    if json_flag:
        document = json.loads(text[:text.index("\n}") + 2])
        assert document["exit_code"] == 2 and variable in document["error"]


@pytest.mark.parametrize("json_mode", [False, True])
@pytest.mark.parametrize("debug", [False, True])
def test_a_secret_inside_an_unexpected_error_is_masked(capsys, monkeypatch, json_mode, debug):
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    output.configure_output(json_mode=json_mode, env={"AWS_SECRET_ACCESS_KEY": SECRET})

    def body():
        raise ValueError(f"Invalid header value {(TOKEN + chr(13)).encode()!r} and {SECRET!r}")
    assert cli.run(body, debug=debug) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Invalid header value" in text and redaction.MASK in text
    assert TOKEN not in text and SECRET not in text
    if json_mode:
        assert TOKEN not in json.loads(captured.out)["error"]
    if debug:
        assert "Traceback (most recent call last)" in captured.err


def test_a_secret_inside_an_aws_error_is_masked(capsys, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    output.configure_output(json_mode=True, env={})

    def body():
        raise AwsError("refused", details=[f"signature for {SECRET}"], hint=f"key {SECRET}")
    assert cli.run(body) == 3
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert json.loads(captured.out)["details"] == ["signature for ****"]


def test_repr_escaped_and_short_values():
    redaction.forget_secrets()
    redaction.remember_secrets(["abc\\def-0123456789xyz", "testing", None])
    assert redaction.redact(repr("abc\\def-0123456789xyz")) == "'****'"
    assert redaction.redact("testing testing") == "testing testing"  # too short to mask
    redaction.forget_secrets()
    assert redaction.redact("abc\\def-0123456789xyz") == "abc\\def-0123456789xyz"
