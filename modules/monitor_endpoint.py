"""Watch an endpoint come up (status + CloudWatch logs in parallel) and delete one safely.

`monitor_and_tail` polls the endpoint's status in the calling thread (so Ctrl-C lands there) while
a daemon thread tails `/aws/sagemaker/Endpoints/<name>`: it waits for the log group, which
SageMaker creates a minute or two into a deploy and which may never appear, gives it a 1-day
retention if it has none, prints each event once, and reads once more after the final status so
the container's last words (usually the reason it failed) are not lost.

`delete_endpoint` copes with an endpoint that is still Creating and refuses deletion: it waits,
bounded and saying so, then deletes and waits until the endpoint is gone.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore import exceptions as bce

from utils import output
from utils.aws_errors import error_code, error_message
from utils.endpoint_operations import (
    NOT_FOUND,
    TERMINAL_STATUSES,
    WaitResult,
    describe_endpoint,
    is_not_found,
    is_transient,
    poll_delays,
    wait_for_endpoint,
)

LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
LOG_RETENTION_DAYS = 1
LOG_POLL_SECONDS = 5.0
LOG_GROUP_WAIT_SECONDS = 600.0
# Start reading a little before the deploy started: clocks differ and the first lines matter.
_LOG_LOOKBACK_MS = 10_000
# Each pass reads from this far before the newest event seen, not from the deploy's start (an
# update of a busy endpoint would re-read every invocation log line every few seconds). Events
# can arrive late and out of order across streams; the event IDs drop the overlap.
_LATE_EVENT_MS = 120_000
_MAX_ERROR_LINES = 12
_UNDELETABLE = ("Creating", "Updating", "SystemUpdating", "RollingBack")
_ERROR_LINE_RE = re.compile(
    r"(^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(:|$))"
    r"|(\b(ERROR|CRITICAL|FATAL)\b)"
    r"|(\bNo module named\b)|(\bcannot import name\b)|(\bWorker failed to boot\b)",
)


def log_group_name(endpoint_name: str) -> str:
    return f"{LOG_GROUP_PREFIX}{endpoint_name}"


def wait_for_log_group(logs: Any, group_name: str, *,
                       timeout: float | None = LOG_GROUP_WAIT_SECONDS,
                       interval: float = LOG_POLL_SECONDS,
                       stop: threading.Event | None = None) -> dict | None:
    """The log group's description once it exists; None if it did not appear in time or `stop`
    was set. SageMaker creates it when the first container starts, so it may never appear.
    `timeout=None` waits until `stop` is set."""
    stop = stop or threading.Event()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        group = _find_log_group(logs, group_name)
        if group is not None:
            return group
        if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
            return None
        remaining = interval if deadline is None else deadline - time.monotonic()
        stop.wait(min(interval, max(0.0, remaining)))


def _find_log_group(logs: Any, group_name: str) -> dict | None:
    answer = logs.describe_log_groups(logGroupNamePrefix=group_name)
    for group in answer.get("logGroups", []):
        if group.get("logGroupName") == group_name:
            return group
    return None


def ensure_retention(logs: Any, group: dict) -> bool:
    """Give a log group without any retention a 1-day one (never-expiring logs cost money).
    A retention someone chose on purpose is left alone."""
    if group.get("retentionInDays"):
        return False
    logs.put_retention_policy(logGroupName=group["logGroupName"],
                              retentionInDays=LOG_RETENTION_DAYS)
    return True


@dataclass
class LogCursor:
    """Which events of a group were already printed (event IDs de-duplicate the overlap)."""

    group_name: str
    start_ms: int
    seen: set[str] = field(default_factory=set)
    messages: list[str] = field(default_factory=list)
    newest_ms: int = 0

    def read_from_ms(self) -> int:
        return max(self.start_ms, self.newest_ms - _LATE_EVENT_MS)


def tail_logs(logs: Any, cursor: LogCursor, emit: Callable[[str], None]) -> int:
    """Print the group's events not printed before; returns how many were new. One pass."""
    new = 0
    paginator = logs.get_paginator("filter_log_events")
    for page in paginator.paginate(logGroupName=cursor.group_name,
                                   startTime=cursor.read_from_ms()):
        for event in page.get("events", []):
            timestamp = int(event.get("timestamp") or 0)
            event_id = event.get("eventId") or f"{event.get('logStreamName')}/{timestamp}"
            if event_id in cursor.seen:
                continue
            cursor.seen.add(event_id)
            cursor.newest_ms = max(cursor.newest_ms, timestamp)
            message = event.get("message", "").rstrip("\n")
            cursor.messages.append(message)
            emit(message)
            new += 1
    return new


class LogTail:
    """The background half of `monitor_and_tail`: follows one endpoint's log group for as long
    as the watch lasts (a large instance can take over ten minutes to start its container)."""

    def __init__(self, logs: Any, endpoint_name: str, *, start_ms: int,
                 poll_seconds: float = LOG_POLL_SECONDS) -> None:
        self._logs = logs
        self._poll = poll_seconds
        self.cursor = LogCursor(log_group_name(endpoint_name), start_ms - _LOG_LOOKBACK_MS)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the final read and the thread never read at once
        self._thread = threading.Thread(target=self._run, name="log-tail", daemon=True)
        self.group_found = False
        self.disabled_reason: str | None = None
        self._warned_transient = False

    def start(self) -> None:
        output.print_info(f"Waiting for CloudWatch log group {self.cursor.group_name} "
                          "(SageMaker creates it once the container starts)...")
        self._thread.start()

    def stop(self, final_read: bool = True) -> list[str]:
        """Stop the thread, read once more so nothing is missed, return every message seen."""
        self._stop.set()
        self._thread.join(timeout=self._poll + 10)
        if final_read and self.disabled_reason is None:
            self._guarded(self._final_read)
        return list(self.cursor.messages)

    def _run(self) -> None:
        self._guarded(self._follow)

    def _follow(self) -> None:
        group = None
        while group is None and not self._stop.is_set():
            group = self._this_pass(lambda: wait_for_log_group(
                self._logs, self.cursor.group_name, timeout=None, interval=self._poll,
                stop=self._stop))
            if group is None:
                self._stop.wait(self._poll)  # after throttling; or stopped
        if group is None:
            return
        self._found(group)
        while not self._stop.is_set():
            with self._lock:
                self._this_pass(lambda: tail_logs(self._logs, self.cursor, _print_log_line))
            self._stop.wait(self._poll)

    def _found(self, group: dict) -> None:
        self.group_found = True
        output.print_info(f"Log group {self.cursor.group_name} is available; streaming events:")
        if ensure_retention(self._logs, group):
            output.print_info(f"Set log retention to {LOG_RETENTION_DAYS} day")

    def _final_read(self) -> None:
        if not self.group_found:
            group = _find_log_group(self._logs, self.cursor.group_name)
            if group is None:
                output.print_info("No CloudWatch logs were written for this endpoint yet.")
                return
            self._found(group)
        with self._lock:
            tail_logs(self._logs, self.cursor, _print_log_line)

    def _this_pass(self, step: Callable[[], Any]) -> Any:
        """Throttling past botocore's retries, or the network, costs this pass, not the tail."""
        try:
            return step()
        except (bce.ClientError, bce.BotoCoreError) as exc:
            if not is_transient(exc):
                raise
            if not self._warned_transient:
                self._warned_transient = True
                reason = error_code(exc) or type(exc).__name__
                output.print_warning(f"CloudWatch Logs did not answer ({reason}); log lines "
                                     "may show late")
            return None

    def _guarded(self, step: Callable[[], None]) -> None:
        """Trouble with the logs (no permission, a bug) costs the logs, never the deploy. In the
        thread an uncaught exception would only print a traceback and end the tail silently."""
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - see above
            if isinstance(exc, bce.ClientError | bce.BotoCoreError) and is_transient(exc):
                reason = error_code(exc) or type(exc).__name__
                output.print_warning(f"CloudWatch Logs did not answer ({reason}); the last log "
                                     "lines may be missing")
                return
            code = error_code(exc) if isinstance(exc, bce.ClientError) else type(exc).__name__
            self.disabled_reason = f"{code}: {error_message(exc)}"
            output.print_warning(f"Cannot read CloudWatch logs ({self.disabled_reason}); "
                                 "continuing without them")


def _print_log_line(message: str) -> None:
    output.print_line(f"  | {message}")


def container_error_lines(messages: list[str]) -> list[str]:
    """The lines of the container's output that say what went wrong: a traceback's final line
    (the exception), and lines that name an error. De-duplicated, in order, at most a dozen."""
    found: list[str] = []
    in_traceback = False
    for message in messages:
        for line in message.splitlines():
            text = line.strip()
            if not text:
                continue
            if text.startswith("Traceback (most recent call last)"):
                in_traceback = True
                continue
            if in_traceback and line[:1] in (" ", "\t"):
                continue  # a frame of the traceback; its last unindented line is the error
            in_traceback = False
            if _ERROR_LINE_RE.search(text) and text not in found:
                found.append(text)
    return found[-_MAX_ERROR_LINES:]


@dataclass
class MonitorResult:
    status: str
    description: dict | None
    elapsed: float
    timed_out: bool
    log_messages: list[str]
    error_lines: list[str]

    @property
    def config_name(self) -> str | None:
        return (self.description or {}).get("EndpointConfigName")

    @property
    def failure_reason(self) -> str | None:
        return (self.description or {}).get("FailureReason")


def update_settled(expected_config: str, baseline_failure: str | None
                   ) -> Callable[[dict | None], bool]:
    """When to stop watching: a terminal status that belongs to *this* deploy.

    Right after UpdateEndpoint an InService on the old config may still be the state from before
    it; it counts only once the endpoint moved (seen busy), switched to the new config, or carries
    a new FailureReason (SageMaker rolled the update back).
    """
    seen_busy = False

    def settled(description: dict | None) -> bool:
        nonlocal seen_busy
        if description is None:
            return True
        status = description["EndpointStatus"]
        if status not in TERMINAL_STATUSES:
            seen_busy = True
            return False
        if status != "InService" or description.get("EndpointConfigName") == expected_config:
            return True
        reason = description.get("FailureReason")
        return seen_busy or bool(reason and reason != baseline_failure)
    return settled


def monitor_and_tail(sagemaker: Any, logs: Any | None, endpoint_name: str, *,
                     expected_config: str, timeout: float, poll_interval: float | None = None,
                     baseline_failure: str | None = None, log_poll_seconds: float = LOG_POLL_SECONDS,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic,
                     wall_clock: Callable[[], float] = time.time) -> MonitorResult:
    """Watch the endpoint until it settles or `timeout` passes, tailing its logs meanwhile.

    Returns what was seen; deciding success (InService on `expected_config`) is the caller's.
    Ctrl-C and SIGTERM propagate from here after the log thread is stopped.
    """
    tail = None
    if logs is not None:
        tail = LogTail(logs, endpoint_name, start_ms=int(wall_clock() * 1000),
                       poll_seconds=log_poll_seconds)
        tail.start()
    result: WaitResult | None = None
    try:
        result = wait_for_endpoint(
            sagemaker, endpoint_name, timeout=timeout, poll_interval=poll_interval,
            is_done=update_settled(expected_config, baseline_failure), on_status=_show_status,
            on_transient=_show_transient, sleep=sleep, clock=clock)
    finally:
        # After an interrupt, skip the final read: the user wants control back now.
        messages = tail.stop(final_read=result is not None) if tail else []
    return MonitorResult(result.status, result.description, result.elapsed, result.timed_out,
                         messages, container_error_lines(messages))


def _show_status(status: str, elapsed: float) -> None:
    output.print_info(f"[{output.format_duration(elapsed):>8}] Endpoint status: {status}")


def _show_transient(exc: BaseException) -> None:
    output.print_warning(f"DescribeEndpoint did not answer ({error_code(exc) or type(exc).__name__}"
                         f"); still waiting")


def delete_endpoint(sagemaker: Any, endpoint_name: str, *, timeout: float = 900.0,
                    poll_interval: float | None = None,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> bool:
    """Delete the endpoint and wait until it is gone. False if it did not exist.

    An endpoint still Creating may refuse DeleteEndpoint: wait (bounded by `timeout`, saying so)
    until it can be deleted. Raises `TimeoutError` if it is still there after `timeout`.
    """
    start = clock()
    delays = poll_delays(poll_interval)
    told = retried = False
    while True:
        try:
            sagemaker.delete_endpoint(EndpointName=endpoint_name)
            break
        except bce.ClientError as exc:
            if is_not_found(exc):
                return False
            refusal = _why_refused(sagemaker, endpoint_name, exc)
            if refusal == "deleting":
                break  # someone else deleted it a moment ago: wait until it is gone
            if refusal == "changed" and not retried:
                retried = True  # it left Creating between the two calls: try again at once
                continue
            if refusal != "busy":
                raise
        if not told:
            output.print_info(f"Endpoint {endpoint_name} cannot be deleted while it is still "
                              f"being created; waiting up to {output.format_duration(timeout)} "
                              "for it to finish (Ctrl-C to stop waiting)")
            told = True
        _sleep_or_time_out(sleep, clock, start, timeout, delays, endpoint_name)
    _wait_until_gone(sagemaker, endpoint_name, start=start, timeout=timeout, delays=delays,
                     sleep=sleep, clock=clock)
    return True


def _why_refused(sagemaker: Any, endpoint_name: str, exc: bce.ClientError) -> str:
    """Why DeleteEndpoint was refused: "busy" (still Creating or Updating: wait), "deleting"
    (already going), "changed" (no longer busy, or gone: try again) or "other" (a real error)."""
    if error_code(exc) not in {"ValidationException", "ResourceInUse", "ConflictException"}:
        return "other"
    description = describe_endpoint(sagemaker, endpoint_name)
    if description is None:
        return "changed"
    status = description["EndpointStatus"]
    if status == "Deleting":
        return "deleting"
    return "busy" if status in _UNDELETABLE else "changed"


def _wait_until_gone(sagemaker: Any, endpoint_name: str, *, start: float, timeout: float,
                     delays: Any, sleep: Callable[[float], None],
                     clock: Callable[[], float]) -> None:
    while True:
        try:
            if describe_endpoint(sagemaker, endpoint_name) is None:
                return
        except bce.ClientError as exc:
            if not is_transient(exc):
                raise
        _sleep_or_time_out(sleep, clock, start, timeout, delays, endpoint_name)


def _sleep_or_time_out(sleep: Callable[[float], None], clock: Callable[[], float], start: float,
                       timeout: float, delays: Any, endpoint_name: str) -> None:
    remaining = timeout - (clock() - start)
    if remaining <= 0:
        raise TimeoutError(f"endpoint {endpoint_name} was still not deleted after "
                           f"{output.format_duration(timeout)}")
    sleep(min(next(delays), remaining))


__all__ = ["LogTail", "MonitorResult", "NOT_FOUND", "container_error_lines", "delete_endpoint",
           "ensure_retention", "log_group_name", "monitor_and_tail", "tail_logs",
           "wait_for_log_group"]
