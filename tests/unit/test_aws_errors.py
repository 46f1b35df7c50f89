"""utils/aws_errors.py: botocore's exceptions become our typed errors with what to do."""

from __future__ import annotations

import pytest
from botocore import exceptions as bce

from utils.aws_errors import error_code, error_message, translate_botocore_error
from utils.errors import AwsError, ValidationError


def client_error(code: str, message: str = "msg", operation: str = "CreateModelPackage"):
    return bce.ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_code_and_message_of_client_errors():
    error = client_error("ValidationException", "bad name")
    assert error_code(error) == "ValidationException" and error_message(error) == "bad name"
    assert error_code(ValueError("x")) == "" and error_message(ValueError("x")) == "x"


def test_message_falls_back_to_the_exception_text():
    error = bce.ClientError({"Error": {"Code": "X"}}, "Op")
    assert "An error occurred (X)" in error_message(error)


def test_plain_client_error():
    translated = translate_botocore_error(client_error("ValidationException", "bad"))
    assert isinstance(translated, AwsError) and translated.exit_code == 3
    assert translated.message == "CreateModelPackage failed: ValidationException: bad"


@pytest.mark.parametrize("code", ["AccessDenied", "AccessDeniedException",
                                  "UnauthorizedOperation"])
def test_access_denied_points_at_permissions(code):
    translated = translate_botocore_error(client_error(code))
    assert "lack a permission" in translated.hints[0]
    assert "sts get-caller-identity" in translated.hints[1]


@pytest.mark.parametrize("code", ["UnrecognizedClientException", "InvalidClientTokenId",
                                  "SignatureDoesNotMatch", "InvalidAccessKeyId"])
def test_invalid_credentials_point_at_the_keys_not_at_permissions(code):
    translated = translate_botocore_error(client_error(code))
    assert "does not accept these credentials" in translated.hints[0]
    assert "lack a permission" not in " ".join(translated.hints)


@pytest.mark.parametrize("code", ["ExpiredToken", "ExpiredTokenException", "RequestExpired"])
def test_expired_sessions(code):
    assert "expired" in translate_botocore_error(client_error(code)).hints[0]


def test_no_credentials():
    translated = translate_botocore_error(bce.NoCredentialsError())
    assert translated.message == "No AWS credentials found" and translated.exit_code == 3
    partial = translate_botocore_error(bce.PartialCredentialsError(provider="env",
                                                                   cred_var="AWS_SECRET"))
    assert partial.message == "No AWS credentials found"


def test_unknown_profile_is_a_usage_error():
    translated = translate_botocore_error(bce.ProfileNotFound(profile="ghost"))
    assert isinstance(translated, ValidationError) and "ghost" in translated.message


@pytest.mark.parametrize("error", [
    bce.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    bce.ConnectTimeoutError(endpoint_url="http://x"),
    bce.ReadTimeoutError(endpoint_url="http://x"),
])
def test_unreachable_aws(error):
    translated = translate_botocore_error(error)
    assert translated.message.startswith("Could not reach AWS")
    assert "AWS_ENDPOINT_URL" in translated.hints[0]


def test_other_botocore_errors_and_foreign_exceptions():
    translated = translate_botocore_error(bce.NoRegionError())
    assert isinstance(translated, AwsError) and "AWS client error" in translated.message
    assert translate_botocore_error(KeyError("x")) is None
