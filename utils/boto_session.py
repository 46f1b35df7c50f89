"""The ONLY place AWS sessions and clients are made.

One botocore `Config` serves every client: standard retries with enough attempts to ride out
SageMaker's throttling (DescribeEndpoint is rate-limited), bounded connect/read timeouts, and a
user-agent suffix so our calls are recognisable in CloudTrail. boto3 itself honours
`AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, which the tests and the demo use to point at moto.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from utils import output
from utils.errors import AwsError

TOOL_NAME = "deploy-model"
TOOL_VERSION = "1.0.0"

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    connect_timeout=10,
    read_timeout=70,  # an invocation may take up to 60 s inside the container
    user_agent_extra=f"{TOOL_NAME}/{TOOL_VERSION}",
)

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
    if not quiet:
        output.print_info(f"AWS credentials: {describe_credential_source(credentials, profile)}; "
                          f"region {region}")
    return session


def describe_credential_source(credentials: Any, profile: str | None) -> str:
    """Where the credentials came from, never the credentials themselves."""
    method = getattr(credentials, "method", "") or "unknown"
    source = _SOURCES.get(method, method)
    if method == "env" and getattr(credentials, "token", None):
        source = "environment variables (session token)"
    return f"profile '{profile}' ({source})" if profile else source


def create_clients(session: boto3.Session, *names: str) -> tuple[Any, ...]:
    """One client per service name, all sharing CLIENT_CONFIG."""
    return tuple(session.client(name, config=CLIENT_CONFIG) for name in names)
