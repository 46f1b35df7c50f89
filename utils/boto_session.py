"""The ONLY place AWS sessions and clients are made.

One botocore `Config` serves every client: standard retries with enough attempts to ride out
SageMaker's throttling (DescribeEndpoint is rate-limited), bounded connect/read timeouts, fewer
attempts and a time budget for connection failures (each retry announced), and a
user-agent suffix so our calls are recognisable in CloudTrail. boto3 itself honours
`AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, which the tests and the demo use to point at moto.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.credentials import RefreshableCredentials

from utils import output, redaction
from utils.errors import AwsError, ValidationError
from utils.version import TOOL_NAME, TOOL_VERSION

__all__ = ["CLIENT_CONFIG", "TOOL_NAME", "TOOL_VERSION", "create_clients", "endpoint_override",
           "get_boto_session"]

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    connect_timeout=5,
    read_timeout=70,  # an invocation may take up to 60 s inside the container
    user_agent_extra=f"{TOOL_NAME}/{TOOL_VERSION}",
)
# Ten retries ride out throttling, but against an endpoint that refuses connections or never
# answers they cost up to ~12 minutes (10 x 70 s read timeouts) with nothing shown. Connection
# failures and timeouts therefore get at most this many attempts, and no new attempt once this
# long has passed since the first failure: at most ~18 s against a black hole (3 x 5 s connect
# timeouts), ~141 s against a silent server (2 x 70 s). Each retry is announced.
CONNECTION_ATTEMPTS = 3
CONNECTION_RETRY_SECONDS = 60.0

_SOURCES = {
    "env": "environment variables (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "shared credentials file",
    "config-file": "AWS config file",
    "sso": "AWS SSO",
    "assume-role": "assumed role (profile)",
    "assume-role-with-web-identity": "web identity (OIDC) role",
    "iam-role": "instance IAM role",
    "container-role": "container IAM role",
    "custom-process": "credential_process",
}


def get_boto_session(region: str, profile: str | None = None, *, quiet: bool = False) -> boto3.Session:
    """A session for `region`: the named profile if given, else boto3's default chain."""
    session = boto3.Session(profile_name=profile or None, region_name=region)
    credentials = session.get_credentials()
    if credentials is None:
        raise AwsError("No AWS credentials found", hint=[
            "Set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(plus AWS_SESSION_TOKEN for temporary keys), or run where an IAM role is attached.",
            "Check with: aws sts get-caller-identity"])
    check_credentials(credentials)
    if not quiet:
        output.print_info(f"AWS credentials: {describe_credential_source(credentials, profile)}; "
                          f"region {region}")
    return session


_CREDENTIAL_FIELDS = (("access_key", "AWS_ACCESS_KEY_ID", "access key ID"),
                      ("secret_key", "AWS_SECRET_ACCESS_KEY", "secret access key"),
                      ("token", "AWS_SESSION_TOKEN", "session token"))
_HEADER_SAFE = re.compile(r"[!-~]+")  # printable ASCII, no space: what AWS keys and tokens use


def check_credentials(credentials: Any) -> None:
    """Refuse keys that no request can carry (a stray '\\r' from a Windows-edited file, a trailing
    newline), naming the variable but never its value; mask the keys in all output from now on.

    Refreshable credentials (roles, SSO) are left alone: reading them would call AWS, and they
    come from AWS, not from a user's shell."""
    if isinstance(credentials, RefreshableCredentials):
        return
    values = {attr: getattr(credentials, attr, None) for attr, _, _ in _CREDENTIAL_FIELDS}
    redaction.remember_secrets(values.values())
    for attr, variable, what in _CREDENTIAL_FIELDS:
        value = values[attr]
        if value and not _HEADER_SAFE.fullmatch(value):
            raise ValidationError(_bad_credential_message(credentials, variable, what, value),
                                  hint=_BAD_CREDENTIAL_HINT)


_BAD_CREDENTIAL_HINT = [
    "Copy the value again without surrounding spaces or line ends; for a variable, e.g.: "
    "export AWS_SESSION_TOKEN=\"$(printf %s \"$AWS_SESSION_TOKEN\" | tr -d '\\r\\n ')\"",
    "Check with: aws sts get-caller-identity"]


def _bad_credential_message(credentials: Any, variable: str, what: str, value: str) -> str:
    position, char = next((i, c) for i, c in enumerate(value) if not _HEADER_SAFE.fullmatch(c))
    source = getattr(credentials, "method", "") or "unknown"
    name = variable if source == "env" else f"The {what} from {_SOURCES.get(source, source)}"
    return (f"{name} holds a character that no AWS request can carry: {char!r} at position "
            f"{position + 1} of {len(value)} (the value is not shown)")


def describe_credential_source(credentials: Any, profile: str | None) -> str:
    """Where the credentials came from, never the credentials themselves."""
    method = getattr(credentials, "method", "") or "unknown"
    source = _SOURCES.get(method, method)
    if method == "env" and getattr(credentials, "token", None):
        source = "environment variables (session token)"
    return f"profile '{profile}' ({source})" if profile else source


def create_clients(session: boto3.Session, *names: str, quiet: bool = False) -> tuple[Any, ...]:
    """One client per service name, all sharing CLIENT_CONFIG; says which of them an endpoint
    override (AWS_ENDPOINT_URL*, or endpoint_url in the config file) points away from AWS."""
    clients = tuple(session.client(name, config=CLIENT_CONFIG) for name in names)
    for client in clients:
        # Same event name as botocore's retry handler, registered first: so it is asked first.
        event = f"needs-retry.{client.meta.service_model.service_id.hyphenize()}"
        client.meta.events.register_first(event, _no_retry_for_html_500,
                                          unique_id="deploy-model-no-retry-html-500")
        client.meta.events.register_first(event, _bounded_connection_retries,
                                          unique_id="deploy-model-bounded-connection-retries")
    if not quiet:
        _report_endpoint_overrides(clients)
    return clients


def is_html_answer(http_response: Any) -> bool:
    """An HTML page where an AWS API answers in JSON or XML: not the service's own error."""
    content_type = (http_response.headers.get("content-type") or "").lower()
    start = (http_response.content or b"")[:64].lstrip().lower()
    return "html" in content_type or start.startswith((b"<!doctype html", b"<html"))


def _no_retry_for_html_500(response: Any = None, **_: Any) -> bool | None:
    """A 500 whose body is an HTML page (a web framework's error page: e.g. an emulator that lacks
    the operation) came from outside the API; retrying it ten times only delays the error by
    ~17 s. False stops botocore's retries; None leaves the decision to its standard handler, so
    AWS's own 500s (JSON or XML bodies) and every 502/503/504 are still retried."""
    if response is None:
        return None
    http_response = response[0]
    if http_response.status_code == 500 and is_html_answer(http_response):
        return False
    return None


def _bounded_connection_retries(caught_exception: BaseException | None = None, attempts: int = 0,
                                request_dict: dict | None = None, operation: Any = None,
                                **_: Any) -> bool | None:
    """Stop retrying a connection failure or timeout after CONNECTION_ATTEMPTS attempts or
    CONNECTION_RETRY_SECONDS (False ends botocore's retries); announce each retry. Returns None
    otherwise, so botocore's standard handler still chooses the backoff and handles throttling."""
    from botocore.exceptions import ConnectionError as BotocoreConnectionError
    from botocore.exceptions import HTTPClientError

    if not isinstance(caught_exception, (BotocoreConnectionError, HTTPClientError)):
        return None
    context = (request_dict or {}).setdefault("context", {})
    first_failure = context.setdefault("deploy_model_first_failure", time.monotonic())
    waited = time.monotonic() - first_failure
    what = f"{operation.service_model.service_name} {operation.name}" if operation else "AWS"
    if attempts >= CONNECTION_ATTEMPTS or waited >= CONNECTION_RETRY_SECONDS:
        output.print_warning(f"{what}: no answer after {attempts} attempt(s) "
                             f"({output.format_duration(waited)} since the first failure); "
                             "giving up")
        return False
    output.print_warning(f"{what}: {caught_exception}; retrying (attempt {attempts + 1} of "
                         f"{CONNECTION_ATTEMPTS})")
    return None


# Hosts of AWS's own endpoints in every partition (botocore's endpoint data has no simpler test).
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".c2s.ic.gov",
                      ".sc2s.sgov.gov", ".cloud.adc-e.uk", ".csp.hci.ic.gov",
                      ".amazonwebservices.com.cn")


def endpoint_override(client: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """Where this client's endpoint was overridden (an environment variable's name, or the
    config file), or None when it talks to AWS's own endpoint. boto3 itself reads os.environ."""
    environ = os.environ if environ is None else environ
    url = (client.meta.endpoint_url or "").rstrip("/")
    service = client.meta.service_model.service_id.hyphenize().replace("-", "_").upper()
    for name in (f"AWS_ENDPOINT_URL_{service}", "AWS_ENDPOINT_URL"):
        if (environ.get(name) or "").strip().rstrip("/") == url:
            return name
    host = urlparse(url).hostname or ""
    if not host.endswith(_AWS_HOST_SUFFIXES):
        return "endpoint_url in the AWS config file"
    return None


def _report_endpoint_overrides(clients: tuple[Any, ...]) -> None:
    by_target: dict[tuple[str, str], list[str]] = {}
    for client in clients:
        source = endpoint_override(client)
        if source:
            by_target.setdefault((client.meta.endpoint_url, source), []).append(
                client.meta.service_model.service_name)
    for (url, source), services in by_target.items():
        output.print_info(f"Endpoint override ({source}): {', '.join(services)} "
                             f"{'goes' if len(services) == 1 else 'go'} to {url}, "
                             "not AWS's own endpoint")
