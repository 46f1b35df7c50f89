"""Turn botocore's exceptions into our typed errors with a hint of what to do."""

from __future__ import annotations

from botocore import exceptions as bce

from utils.errors import AwsError, DeployModelError, ValidationError

_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
ACCESS_DENIED_CODES = frozenset(_ACCESS_DENIED)
# The key itself is wrong (unknown key id, wrong secret): no policy change would help.
_BAD_CREDENTIALS = {"UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch",
                    "InvalidAccessKeyId"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, else ''."""
    if isinstance(exc, bce.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, bce.ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


def translate_botocore_error(exc: BaseException) -> DeployModelError | None:
    if isinstance(exc, bce.ClientError):
        return _from_client_error(exc)
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return AwsError("No AWS credentials found", details=[str(exc)], hint=[
            "Set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an "
            "IAM role is attached.",
            "Check with: aws sts get-caller-identity"])
    if isinstance(exc, bce.ProfileNotFound):
        return ValidationError(f"AWS profile not found: {exc}",
                               hint="Check --profile / AWS_PROFILE against `aws configure list-profiles`.")
    if isinstance(exc, (bce.EndpointConnectionError, bce.ConnectTimeoutError,
                        bce.ReadTimeoutError)):
        return AwsError(f"Could not reach AWS: {exc}", hint=[
            "Check the network, the region and AWS_ENDPOINT_URL if you set one."])
    if isinstance(exc, bce.BotoCoreError):
        return AwsError(f"AWS client error: {exc}")
    return None


def _from_client_error(exc: bce.ClientError) -> AwsError:
    code = error_code(exc)
    operation = getattr(exc, "operation_name", "request")
    if _is_html_5xx(exc):
        return _html_5xx_error(exc, operation)
    message = f"{operation} failed: {code}: {error_message(exc)}"
    if code in _ACCESS_DENIED:
        return AwsError(message, hint=[
            "Your credentials lack a permission: see the IAM policy in the README.",
            "Check which identity you are using: aws sts get-caller-identity"])
    if code in _BAD_CREDENTIALS:
        return AwsError(message, hint=[
            "AWS does not accept these credentials: check AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they belong to this partition.",
            "Check which identity you are using: aws sts get-caller-identity"])
    if code in _EXPIRED:
        return AwsError(message, hint="Your session has expired: refresh your credentials "
                                      "(e.g. aws sso login) and run again.")
    return AwsError(message)


def _is_html_5xx(exc: bce.ClientError) -> bool:
    metadata = exc.response.get("ResponseMetadata", {})
    content_type = str(metadata.get("HTTPHeaders", {}).get("content-type", "")).lower()
    message = error_message(exc).lstrip().lower()
    return int(metadata.get("HTTPStatusCode") or 0) >= 500 and (
        "html" in content_type or message.startswith(("<!doctype html", "<html")))


def _html_5xx_error(exc: bce.ClientError, operation: str) -> AwsError:
    """An HTML error page is not an AWS answer: one line instead of the page's markup."""
    status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
    return AwsError(f"{operation} failed: HTTP {status} with an HTML page instead of an AWS "
                    "answer", hint=[
                        f"With AWS_ENDPOINT_URL set, the endpoint it names may not implement "
                        f"{operation} (moto does not implement UpdateEndpoint, for one).",
                        "Against AWS itself, try again later: it was a server-side failure."])
