"""modules/monitor_endpoint.py and utils/endpoint_operations.py against moto and the test double."""

from __future__ import annotations

import pytest
from moto import mock_aws

from modules import monitor_endpoint as monitor
from tests.conftest import ACCOUNT
from tests.deploy_support import FakeClock, client
from tests.sagemaker_double import SageMakerDouble
from utils import endpoint_operations as ops
from utils import output


@pytest.fixture
def aws():
    output.configure_output()  # human mode on stdout, whatever an earlier test in this process set
    with mock_aws(), SageMakerDouble() as double:
        double.sagemaker = client("sagemaker")
        double.logs = client("logs")
        yield double


def make_endpoint(aws, name: str = "qc-mon", config: str = "qc-mon-c1") -> None:
    sm = aws.sagemaker
    sm.create_model(ModelName=config, ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/R",
                    Containers=[{"Image": "image"}])
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": config, "InitialInstanceCount": 1,
        "InstanceType": "ml.c5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=config)


def watch(aws, name="qc-mon", config="qc-mon-c1", timeout=600.0, clock=None, **kwargs):
    clock = clock or FakeClock()
    return monitor.monitor_and_tail(aws.sagemaker, aws.logs, name, expected_config=config,
                                    timeout=timeout, log_poll_seconds=0.01, sleep=clock.sleep,
                                    clock=clock.clock, **kwargs)


def test_logs_appearing_during_creating_are_printed_once_with_retention_set(aws, capsys):
    aws.create_takes(6)
    aws.log_at("qc-mon", 2, ["Starting the model server", "Listening at: http://0.0.0.0:8080"])
    aws.log_at("qc-mon", 5, ["Booting worker with pid: 9"])
    make_endpoint(aws)
    result = watch(aws)
    out = capsys.readouterr().out
    assert result.status == "InService" and not result.timed_out
    assert result.config_name == "qc-mon-c1"
    for line in ("Starting the model server", "Booting worker with pid: 9"):
        assert out.count(line) == 1  # read during the wait and once more after: printed once
    assert result.log_messages == ["Starting the model server",
                                   "Listening at: http://0.0.0.0:8080",
                                   "Booting worker with pid: 9"]
    group = aws.logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/Endpoints/qc-mon")
    assert group["logGroups"][0]["retentionInDays"] == 1
    assert "Endpoint status: Creating" in out and "Endpoint status: InService" in out


def test_a_retention_someone_chose_is_left_alone(aws):
    aws.logs.create_log_group(logGroupName="/aws/sagemaker/Endpoints/qc-mon")
    aws.logs.put_retention_policy(logGroupName="/aws/sagemaker/Endpoints/qc-mon",
                                  retentionInDays=30)
    make_endpoint(aws)
    watch(aws)
    group = aws.logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/Endpoints/qc-mon")
    assert group["logGroups"][0]["retentionInDays"] == 30


def test_a_log_group_that_never_appears_is_not_an_error(aws, capsys):
    aws.create_takes(3, outcome="Failed", failure_reason="no capacity")
    make_endpoint(aws)
    result = watch(aws)
    assert result.status == "Failed" and result.failure_reason == "no capacity"
    assert result.log_messages == [] and result.error_lines == []
    assert "No CloudWatch logs were written" in capsys.readouterr().out


def test_the_last_lines_are_read_after_the_final_status(aws):
    aws.create_takes(1, outcome="Failed", failure_reason="ping")
    aws.log_at("qc-mon", 2, ["Traceback (most recent call last):", '  File "x.py", line 1',
                             "    load()", "FileNotFoundError: /opt/ml/model/model.joblib"])
    make_endpoint(aws)
    result = watch(aws)
    assert result.error_lines == ["FileNotFoundError: /opt/ml/model/model.joblib"]


def test_update_success_needs_the_new_config(aws):
    make_endpoint(aws)
    make_endpoint(aws, name="unused", config="qc-mon-c2")  # a second config to update to
    aws.update_takes(2, outcome="RolledBack", failure_reason="health check failed")
    aws.sagemaker.update_endpoint(EndpointName="qc-mon", EndpointConfigName="qc-mon-c2")
    result = watch(aws, config="qc-mon-c2")
    assert result.status == "InService" and result.config_name == "qc-mon-c1"
    assert result.failure_reason == "health check failed"


def test_a_stale_inservice_before_the_update_starts_is_not_taken_as_the_outcome():
    settled = monitor.update_settled("new", baseline_failure="an old failure")
    old = {"EndpointStatus": "InService", "EndpointConfigName": "old",
           "FailureReason": "an old failure"}
    assert not settled(old)  # nothing moved yet
    assert not settled({**old, "EndpointStatus": "Updating"})
    assert settled(old)  # back on old after Updating: rolled back
    fresh = monitor.update_settled("new", baseline_failure=None)
    assert fresh({"EndpointStatus": "InService", "EndpointConfigName": "new"})
    assert fresh({"EndpointStatus": "Failed", "EndpointConfigName": "new"})
    assert fresh({**old, "FailureReason": "a new failure"})
    assert fresh(None)


def test_wait_for_endpoint_times_out_at_the_deadline(aws):
    aws.create_takes(10_000)
    make_endpoint(aws)
    clock = FakeClock()
    result = ops.wait_for_endpoint(aws.sagemaker, "qc-mon", timeout=100, sleep=clock.sleep,
                                   clock=clock.clock)
    assert result.timed_out and result.status == "Creating"
    assert sum(clock.sleeps) == pytest.approx(100)
    assert clock.sleeps[:4] == [5.0, 7.5, 11.25, 16.875]


def test_wait_for_endpoint_fixed_interval_and_status_callback(aws):
    aws.create_takes(2)
    make_endpoint(aws)
    clock, seen = FakeClock(), []
    result = ops.wait_for_endpoint(aws.sagemaker, "qc-mon", poll_interval=2, sleep=clock.sleep,
                                   clock=clock.clock, on_status=lambda s, t: seen.append((s, t)))
    assert result.status == "InService" and clock.sleeps == [2, 2]
    assert seen == [("Creating", 0), ("InService", 4)]


def test_endpoint_look_ups(aws):
    assert ops.check_endpoint_status(aws.sagemaker, "qc-mon") is None
    assert not ops.endpoint_exists(aws.sagemaker, "qc-mon")
    assert ops.get_endpoint_info(aws.sagemaker, "qc-mon") is None
    make_endpoint(aws)
    assert ops.check_endpoint_status(aws.sagemaker, "qc-mon") == "InService"
    assert ops.endpoint_exists(aws.sagemaker, "qc-mon")
    info = ops.get_endpoint_info(aws.sagemaker, "qc-mon")
    assert info["endpoint_config_name"] == "qc-mon-c1"
    assert info["variants"][0]["variant_name"] == "AllTraffic"
    make_endpoint(aws, name="other", config="other-c1")
    assert {e["EndpointName"] for e in ops.list_endpoints(aws.sagemaker)} == {"qc-mon", "other"}
    assert [e["EndpointName"] for e in ops.list_endpoints(aws.sagemaker, name_contains="qc")] == [
        "qc-mon"]


def test_delete_endpoint_waits_while_creating_refuses_deletion(aws, capsys):
    aws.create_takes(4)
    aws.refuse_delete_while_creating()
    make_endpoint(aws)
    clock = FakeClock()
    assert monitor.delete_endpoint(aws.sagemaker, "qc-mon", sleep=clock.sleep, clock=clock.clock)
    assert ops.check_endpoint_status(aws.sagemaker, "qc-mon") is None
    assert "cannot be deleted while it is still being created" in capsys.readouterr().out
    assert not monitor.delete_endpoint(aws.sagemaker, "qc-mon")  # already gone


def test_delete_endpoint_gives_up_at_its_deadline(aws):
    aws.create_takes(10_000)
    aws.refuse_delete_while_creating()
    make_endpoint(aws)
    clock = FakeClock()
    with pytest.raises(TimeoutError):
        monitor.delete_endpoint(aws.sagemaker, "qc-mon", timeout=60, sleep=clock.sleep,
                                clock=clock.clock)
    assert sum(clock.sleeps) == pytest.approx(60)


def test_double_plays_update_over_moto_http_server():
    """The same double works with moto's ThreadedMotoServer (over HTTP, in this process)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        sm = boto3.client("sagemaker", region_name="ca-central-1",
                          endpoint_url=f"http://{host}:{port}")
        with SageMakerDouble() as double:
            double.sagemaker = sm
            double.create_takes(1)
            make_endpoint(double)
            make_endpoint(double, name="spare", config="qc-mon-c2")
            assert ops.check_endpoint_status(sm, "qc-mon") == "Creating"
            assert ops.check_endpoint_status(sm, "qc-mon") == "InService"
            double.update_takes(1)
            sm.update_endpoint(EndpointName="qc-mon", EndpointConfigName="qc-mon-c2")
            assert ops.check_endpoint_status(sm, "qc-mon") == "Updating"
            described = sm.describe_endpoint(EndpointName="qc-mon")
            assert described["EndpointConfigName"] == "qc-mon-c2"
    finally:
        import urllib.request

        reset = urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()  # leave no state for later tests
        server.stop()


class _ThrottledLogs:
    """The real (moto) logs client, but the first `throttles` FilterLogEvents pages are refused
    with ThrottlingException, as after botocore's own retries ran out. Records each startTime."""

    def __init__(self, logs, throttles: int = 0):
        self._logs = logs
        self.throttles = throttles
        self.start_times: list[int] = []

    def __getattr__(self, name):
        return getattr(self._logs, name)

    def get_paginator(self, name):
        paginator = self._logs.get_paginator(name)
        outer = self

        class Paginator:
            def paginate(self, **kwargs):
                outer.start_times.append(kwargs["startTime"])
                if outer.throttles:
                    outer.throttles -= 1
                    from botocore.exceptions import ClientError

                    raise ClientError({"Error": {"Code": "ThrottlingException",
                                                 "Message": "Rate exceeded"}}, "FilterLogEvents")
                return paginator.paginate(**kwargs)
        return Paginator()


def _put_events(logs, group, messages, timestamp_ms):
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="AllTraffic/i-1")
    logs.put_log_events(logGroupName=group, logStreamName="AllTraffic/i-1", logEvents=[
        {"timestamp": timestamp_ms + i, "message": m} for i, m in enumerate(messages)])


def _wait_until(condition, seconds=10.0):
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting in the test"
        time.sleep(0.01)


def test_a_throttled_log_read_only_delays_the_live_tail(aws, capsys):
    import time

    group = "/aws/sagemaker/Endpoints/qc-mon"
    now_ms = int(time.time() * 1000)
    _put_events(aws.logs, group, ["Starting the model server"], now_ms)
    logs = _ThrottledLogs(aws.logs, throttles=1)
    tail = monitor.LogTail(logs, "qc-mon", start_ms=now_ms, poll_seconds=0.01)
    tail.start()
    try:
        _wait_until(lambda: "Starting the model server" in tail.cursor.messages)
    finally:
        messages = tail.stop(final_read=False)  # what the live tail saw, no final read
    assert messages == ["Starting the model server"]
    assert "CloudWatch Logs did not answer (ThrottlingException)" in capsys.readouterr().err


def test_the_tail_reads_from_its_newest_event_not_from_the_start_every_time(aws):
    import time

    group = "/aws/sagemaker/Endpoints/qc-mon"
    start_ms = int(time.time() * 1000) - 3_600_000  # an update of an endpoint an hour old
    _put_events(aws.logs, group, ["old line"], start_ms)
    _put_events(aws.logs, group, ["an hour later"], start_ms + 3_600_000)
    logs = _ThrottledLogs(aws.logs)
    cursor = monitor.LogCursor(group, start_ms)
    printed: list[str] = []
    monitor.tail_logs(logs, cursor, printed.append)
    monitor.tail_logs(logs, cursor, printed.append)
    assert printed == ["old line", "an hour later"]  # each once
    assert logs.start_times[0] == start_ms
    # The second pass starts shortly before the newest event seen, not an hour back.
    assert start_ms + 3_000_000 < logs.start_times[1] <= start_ms + 3_600_000


def test_an_unexpected_error_in_the_log_thread_is_a_warning_not_a_traceback(aws, capsys):
    class Broken:
        def describe_log_groups(self, **kwargs):
            raise RuntimeError("boom")

    import threading

    hooked: list = []
    previous, threading.excepthook = threading.excepthook, hooked.append
    try:
        tail = monitor.LogTail(Broken(), "qc-mon", start_ms=0, poll_seconds=0.01)
        tail.start()
        tail.stop(final_read=False)
    finally:
        threading.excepthook = previous
    assert hooked == []
    assert "Cannot read CloudWatch logs (RuntimeError: boom)" in capsys.readouterr().err


def test_an_endpoint_already_being_deleted_is_waited_for_not_an_error():
    from botocore.exceptions import ClientError

    class DeletingElsewhere:
        """Someone else (another CI job, the console) started deleting it a moment ago."""

        describes = 0

        def delete_endpoint(self, EndpointName):
            raise ClientError({"Error": {"Code": "ValidationException", "Message":
                               f"Cannot delete endpoint {EndpointName} while it is Deleting"}},
                              "DeleteEndpoint")

        def describe_endpoint(self, EndpointName):
            self.describes += 1
            if self.describes <= 3:
                return {"EndpointName": EndpointName, "EndpointStatus": "Deleting"}
            raise ClientError({"Error": {"Code": "ValidationException",
                                         "Message": f"Could not find endpoint {EndpointName}."}},
                              "DescribeEndpoint")

    clock, sagemaker = FakeClock(), DeletingElsewhere()
    assert monitor.delete_endpoint(sagemaker, "qc-mon", sleep=clock.sleep, clock=clock.clock)
    assert sagemaker.describes == 4 and len(clock.sleeps) == 2
