"""Account-level settings read from the environment, checked all at once.

`validate_env_vars` reports every missing or malformed variable in one message, each with its
description, so a user fixes their shell once rather than once per run. Values are passed in as a
mapping (the environment is read once, at the edge).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from utils import output
from utils.errors import ValidationError
from utils.redaction import MASK, is_secret


@dataclass(frozen=True)
class EnvVarSpec:
    description: str
    check: Callable[[str], str | None] | None = None  # returns a problem, or None when valid


def _account(value: str) -> str | None:
    return None if re.fullmatch(r"\d{12}", value, re.ASCII) else "must be a 12-digit AWS account ID"


def _role_arn(value: str) -> str | None:
    if re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", value, re.ASCII):
        return None
    return "must be an IAM role ARN like arn:aws:iam::123456789012:role/SageMakerExecutionRole"


def _queue_url(value: str) -> str | None:
    if re.fullmatch(r"https://sqs\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/\d{12}/[\w-]{1,80}(\.fifo)?",
                    value, re.ASCII):
        return None
    return ("must be an SQS queue URL like "
            "https://sqs.<region>.amazonaws.com/<12-digit account>/<queue name>")


def _bucket(value: str) -> str | None:
    valid = (re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value)
             and ".." not in value and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value, re.ASCII))
    return None if valid else ("must be an S3 bucket name: 3-63 lower-case letters, digits, "
                               "dots or hyphens, starting and ending with a letter or digit")


@functools.lru_cache(maxsize=1)
def sagemaker_regions() -> frozenset[str]:
    """Regions where SageMaker exists, from botocore's endpoint data (no network).

    Cached: loading the endpoint data costs ~0.1-0.2 s and it cannot change within a process."""
    import botocore.session

    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("sagemaker", partition_name=partition))
    return frozenset(regions)


def profile_region(env: Mapping[str, str]) -> str | None:
    """The `region` of the profile (AWS_PROFILE, else `default`) in the AWS config file
    (AWS_CONFIG_FILE, else ~/.aws/config), as botocore reads it; None when it sets none.
    Raises botocore's ProfileNotFound for a named profile that is in neither file."""
    import os.path

    files = {variable: os.path.expanduser(env.get(name) or default)
             for variable, name, default in (
                 ("config_file", "AWS_CONFIG_FILE", "~/.aws/config"),
                 ("credentials_file", "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"))}
    profile = (env.get("AWS_PROFILE") or "").strip()
    if not profile and not any(os.path.isfile(path) for path in files.values()):
        return None  # nothing to read: keep botocore off the usage-error path
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session()
    for variable, path in files.items():
        session.set_config_variable(variable, path)
    profiles = session.full_config.get("profiles", {})
    if profile and profile not in profiles:
        raise botocore.exceptions.ProfileNotFound(profile=profile)
    region = profiles.get(profile or "default", {}).get("region")
    return region.strip() or None if isinstance(region, str) else None


def _region(value: str) -> str | None:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", value, re.ASCII):
        return "must be an AWS region code like ca-central-1"
    if value not in sagemaker_regions():
        return "is not a region where SageMaker is available"
    return None


ENV_VARS: dict[str, EnvVarSpec] = {
    "AWS_REGION": EnvVarSpec("AWS region for SageMaker deployment, e.g. ca-central-1 (or pass --region, "
                             "or set region in your AWS profile)", _region),
    "AWS_ACCOUNT": EnvVarSpec("AWS account ID (12 digits)", _account),
    "DATA_BUCKET": EnvVarSpec("S3 bucket for model artifacts", _bucket),
    "AI_INPUT_QUEUE_URL": EnvVarSpec("SQS queue URL for AI processing", _queue_url),
    "SAGEMAKER_EXECUTION_ROLE_ARN": EnvVarSpec("IAM role ARN that SageMaker assumes", _role_arn),
    "AWS_PROFILE": EnvVarSpec("AWS CLI profile for authentication (optional)"),
}

def get_env_var(name: str, env: Mapping[str, str], default: str | None = None) -> str | None:
    """A variable's value, stripped; empty counts as unset. AWS_REGION falls back to
    AWS_DEFAULT_REGION, then to the AWS profile's region (as the AWS CLI does)."""
    value = (env.get(name) or "").strip()
    if not value and name == "AWS_REGION":
        value = (env.get("AWS_DEFAULT_REGION") or "").strip() or profile_region(env) or ""
    return value or default


def validate_env_vars(names: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    """The values of `names`; raises one ValidationError naming every missing or bad one."""
    values: dict[str, str] = {}
    missing: list[str] = []
    malformed: list[str] = []
    for name in names:
        spec = ENV_VARS.get(name, EnvVarSpec(name))
        value = get_env_var(name, env)
        if value is None:
            missing.append(f"{name}: {spec.description}")
            continue
        problem = spec.check(value) if spec.check else None
        if problem:
            malformed.append(f"{name}={mask_value(name, value)!r} {problem}")
        values[name] = value
    if missing or malformed:
        raise _env_error(missing, malformed)
    return values


def _env_error(missing: list[str], malformed: list[str]) -> ValidationError:
    details: list[str] = []
    if missing:
        details.append("Missing:")
        details += [f"  - {line}" for line in missing]
    if malformed:
        details.append("Malformed:")
        details += [f"  - {line}" for line in malformed]
    title = "Missing Required Environment Variables" if missing else "Invalid Environment Variables"
    if missing and malformed:
        title = "Missing or Invalid Environment Variables"
    return ValidationError(title, details=details,
                           hint="Export the variables above (see 'Environment Setup' in the README) "
                                "and run again.")


def mask_value(name: str, value: str | None) -> str:
    if value is None:
        return "(not set)"
    return MASK if is_secret(name) else value


def print_env_summary(values: Mapping[str, str | None]) -> None:
    """Show the configuration; secret values are masked completely, not partially."""
    output.print_section("Configuration")
    output.print_key_values({name: mask_value(name, value) for name, value in values.items()})
