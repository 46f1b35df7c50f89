"""SageMaker endpoint look-ups and the one bounded status-polling loop.

botocore's `endpoint_in_service` waiter is not used for deploys: it accepts any InService, so an
update that SageMaker rolled back (InService on the *old* config) would count as a success, and it
polls at a fixed 30 s. `wait_for_endpoint` instead backs off from a few seconds to 30, stops at a
deadline, lets the caller say what "done" means (e.g. InService on the new config), and treats
throttling that outlived botocore's own retries as a reason to wait longer, never to fail.
`sleep` and `clock` are parameters so tests run without real waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore import exceptions as bce

from utils.aws_errors import error_code, error_message

BUSY_STATUSES = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
TERMINAL_STATUSES = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")
NOT_FOUND = "NotFound"
FIRST_POLL_SECONDS = 5.0
MAX_POLL_SECONDS = 30.0
_BACKOFF_FACTOR = 1.5
_TRANSIENT_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException",
                    "RequestLimitExceeded", "ServiceUnavailable", "InternalFailure",
                    "InternalServerError"}


def console_url(region: str, endpoint_name: str, sagemaker: Any = None) -> str | None:
    """The endpoint's page in the AWS console; None when `sagemaker` talks to an endpoint
    override (AWS_ENDPOINT_URL: an emulator has no console, and the real page would not be it)."""
    if sagemaker is not None:
        from utils.boto_session import endpoint_override

        if endpoint_override(sagemaker):
            return None
    return (f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}"
            f"#/endpoints/{endpoint_name}")


def is_not_found(exc: BaseException) -> bool:
    """SageMaker answers a missing endpoint/config/model with a ValidationException."""
    code = error_code(exc)
    if code in {"ResourceNotFound", "ResourceNotFoundException"}:
        return True
    message = error_message(exc).lower()
    return code == "ValidationException" and ("could not find" in message
                                              or "does not exist" in message
                                              or "not found" in message)


def is_transient(exc: BaseException) -> bool:
    """Worth another try later: throttling, 5xx, or the network."""
    if isinstance(exc, (bce.EndpointConnectionError, bce.ConnectionClosedError,
                        bce.ReadTimeoutError, bce.ConnectTimeoutError)):
        return True
    return error_code(exc) in _TRANSIENT_CODES


def describe_endpoint(sagemaker: Any, endpoint_name: str) -> dict | None:
    """DescribeEndpoint's answer, or None when there is no such endpoint."""
    try:
        answer = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except bce.ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    answer.pop("ResponseMetadata", None)
    return answer


def check_endpoint_status(sagemaker: Any, endpoint_name: str) -> str | None:
    """The endpoint's status, or None when it does not exist."""
    description = describe_endpoint(sagemaker, endpoint_name)
    return description["EndpointStatus"] if description else None


def endpoint_exists(sagemaker: Any, endpoint_name: str) -> bool:
    return describe_endpoint(sagemaker, endpoint_name) is not None


def get_endpoint_info(sagemaker: Any, endpoint_name: str) -> dict | None:
    """The facts a person asks about an endpoint, in plain types; None when it does not exist."""
    description = describe_endpoint(sagemaker, endpoint_name)
    if description is None:
        return None
    variants = [{
        "variant_name": variant.get("VariantName"),
        "current_instance_count": variant.get("CurrentInstanceCount"),
        "desired_instance_count": variant.get("DesiredInstanceCount"),
        "current_weight": variant.get("CurrentWeight"),
    } for variant in description.get("ProductionVariants", [])]
    return {
        "endpoint_name": description["EndpointName"],
        "endpoint_arn": description.get("EndpointArn"),
        "status": description["EndpointStatus"],
        "endpoint_config_name": description.get("EndpointConfigName"),
        "failure_reason": description.get("FailureReason"),
        "creation_time": str(description.get("CreationTime", "")),
        "last_modified_time": str(description.get("LastModifiedTime", "")),
        "variants": variants,
    }


def list_endpoints(sagemaker: Any, name_contains: str | None = None,
                   status: str | None = None) -> list[dict]:
    """Every endpoint (all pages), newest first, optionally filtered by name and status."""
    params: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
    if name_contains:
        params["NameContains"] = name_contains
    if status:
        params["StatusEquals"] = status
    endpoints: list[dict] = []
    for page in sagemaker.get_paginator("list_endpoints").paginate(**params):
        endpoints.extend(page.get("Endpoints", []))
    return endpoints


def poll_delays(poll_interval: float | None = None) -> Iterator[float]:
    """A fixed interval if given, else back off from a few seconds up to 30."""
    delay = poll_interval or FIRST_POLL_SECONDS
    while True:
        yield delay
        if poll_interval is None:
            delay = min(delay * _BACKOFF_FACTOR, MAX_POLL_SECONDS)


@dataclass
class WaitResult:
    status: str
    description: dict | None
    elapsed: float
    timed_out: bool = False


def default_done(target_status: str) -> Callable[[dict | None], bool]:
    def done(description: dict | None) -> bool:
        if description is None:
            return True
        status = description["EndpointStatus"]
        return status == target_status or status in TERMINAL_STATUSES
    return done


def wait_for_endpoint(sagemaker: Any, endpoint_name: str, *, target_status: str = "InService",
                      timeout: float = 1800.0, poll_interval: float | None = None,
                      is_done: Callable[[dict | None], bool] | None = None,
                      on_status: Callable[[str, float], None] | None = None,
                      on_transient: Callable[[BaseException], None] | None = None,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> WaitResult:
    """Poll until `is_done` (default: target or a terminal status) or the deadline passes.

    `on_status(status, elapsed)` is called on every status change; a vanished endpoint reports
    status NotFound.
    """
    done = is_done or default_done(target_status)
    start = clock()
    delays = poll_delays(poll_interval)
    last_status: str | None = None
    description: dict | None = None
    while True:
        try:
            description = describe_endpoint(sagemaker, endpoint_name)
        except bce.ClientError as exc:
            if not is_transient(exc):
                raise
            if on_transient:
                on_transient(exc)
        except (bce.EndpointConnectionError, bce.ConnectionClosedError, bce.ReadTimeoutError,
                bce.ConnectTimeoutError) as exc:
            if on_transient:
                on_transient(exc)
        else:
            status = description["EndpointStatus"] if description else NOT_FOUND
            if status != last_status:
                last_status = status
                if on_status:
                    on_status(status, clock() - start)
            if done(description):
                return WaitResult(status, description, clock() - start)
        remaining = timeout - (clock() - start)
        if remaining <= 0:
            return WaitResult(last_status or "Unknown", description, clock() - start,
                              timed_out=True)
        sleep(min(next(delays), remaining))
