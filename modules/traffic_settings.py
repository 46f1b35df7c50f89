"""Traffic settings of a deploy: data capture (and, with modules/deploy_traffic.py, variants).

Validated with the other deploy inputs (modules/deploy_validation.py calls `capture_from_args`),
before any AWS call, against the rules SageMaker applies to a DataCaptureConfig:

- `--data-capture s3://bucket/prefix`: an S3 URI (SageMaker also takes https://, but a
  destination in another form is a typo here), a valid bucket name, at most 512 characters.
- `--capture-percent N`: InitialSamplingPercentage, 1-100 (0 would capture nothing: that is
  `--no-data-capture`).
- `--no-data-capture`: drop the live capture on this update; without it an update keeps it.

Nothing here imports boto3 or botocore: it is on the path that refuses a typo quickly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from utils.errors import ValidationError

DEFAULT_CAPTURE_PERCENT = 100
MAX_S3_URI_LENGTH = 512  # DestinationS3Uri's limit in SageMaker's API
# S3 bucket naming rules: 3-63 characters, lower-case letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
_BUCKET_RE = re.compile(r"\A[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z", re.ASCII)
_IP_LIKE_RE = re.compile(r"\A\d+\.\d+\.\d+\.\d+\Z", re.ASCII)
# Capture both the request and the answer (SageMaker's CaptureMode values Input and Output).
CAPTURE_MODES = ("Input", "Output")
JSON_CONTENT_TYPES = ("application/json",)


@dataclass(frozen=True)
class DataCapture:
    """Capture requests and answers of a share of the invocations to S3."""

    destination: str
    percent: int = DEFAULT_CAPTURE_PERCENT

    def config(self) -> dict[str, Any]:
        """The DataCaptureConfig of CreateEndpointConfig."""
        return {"EnableCapture": True, "InitialSamplingPercentage": self.percent,
                "DestinationS3Uri": self.destination,
                "CaptureOptions": [{"CaptureMode": mode} for mode in CAPTURE_MODES],
                "CaptureContentTypeHeader": {"JsonContentTypes": list(JSON_CONTENT_TYPES)}}


def describe_capture(config: Mapping[str, Any] | None) -> str:
    """`s3://bucket/prefix (20 %, input and output)` for a DataCaptureConfig; `none` without."""
    if not config or not config.get("EnableCapture", True):
        return "none"
    modes = " and ".join(o.get("CaptureMode", "?").lower() for o in config.get("CaptureOptions")
                         or [])
    return (f"{config.get('DestinationS3Uri')} ({config.get('InitialSamplingPercentage')} %"
            + (f", {modes})" if modes else ")"))


def capture_summary(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The DataCaptureConfig as --json shows it."""
    if not config or not config.get("EnableCapture", True):
        return None
    return {"destination": config.get("DestinationS3Uri"),
            "percent": config.get("InitialSamplingPercentage"),
            "modes": [o.get("CaptureMode") for o in config.get("CaptureOptions") or []]}


def s3_uri_problem(uri: str) -> str | None:
    """Why `uri` is not an S3 destination SageMaker would take, or None."""
    if not uri.startswith("s3://"):
        return f"{uri!r} is not an S3 URI (expected s3://bucket/prefix)"
    if len(uri) > MAX_S3_URI_LENGTH:
        return f"it is {len(uri)} characters long; SageMaker takes at most {MAX_S3_URI_LENGTH}"
    if not uri.isascii() or any(c.isspace() or not c.isprintable() for c in uri):
        return f"{uri!r} contains spaces, control or non-ASCII characters"
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        return f"{uri!r} names no bucket (expected s3://bucket/prefix)"
    if not _BUCKET_RE.match(bucket) or ".." in bucket or _IP_LIKE_RE.match(bucket):
        return (f"{bucket!r} is not a valid S3 bucket name (3-63 lower-case letters, digits, "
                "dots and hyphens, starting and ending with a letter or digit)")
    if "//" in prefix:
        return f"{uri!r} has an empty path segment ('//')"
    return None


def capture_from_args(args: Any, sources: Mapping[str, str]) -> tuple[DataCapture | None, bool]:
    """(the capture to set, whether to drop the live one), or a ValidationError."""
    destination, drop = args.data_capture, bool(args.no_data_capture)
    percent_given = sources.get("capture_percent") in ("flag", "env")
    if drop and destination:
        raise ValidationError("--data-capture and --no-data-capture exclude each other",
                              hint="Give --data-capture to set the capture, --no-data-capture "
                                   "to drop the live one.")
    if destination is None:
        if percent_given:
            raise ValidationError("--capture-percent needs --data-capture s3://bucket/prefix",
                                  hint="Add --data-capture (env DATA_CAPTURE), or drop "
                                       "--capture-percent.")
        return None, drop
    problem = s3_uri_problem(destination)
    if problem:
        raise ValidationError(f"Invalid --data-capture: {problem}",
                              hint="Pass the S3 prefix to capture to, e.g. --data-capture "
                                   "s3://my-bucket/capture/qc-prod")
    percent = args.capture_percent
    if not 1 <= percent <= 100:
        raise ValidationError(f"Invalid --capture-percent: {percent}; SageMaker samples 1-100 % "
                              "of the invocations", hint="Use --capture-percent between 1 and "
                                                         "100 (or --no-data-capture for none).")
    return DataCapture(destination, percent), False
