"""Issue 9: an unreachable or silent AWS endpoint costs a bounded number of attempts and time,
and every retry says what is being retried."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from botocore.config import Config

import test_endpoint
from tests.model_server_harness import free_port
from utils import boto_session

DATA = '{"data": [[2.5, 180.0, 101.3, 0.2]]}'


@pytest.fixture
def silent_server():
    """Accepts connections and never answers (a hung proxy, a blackholed load balancer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    accepted = {"count": 0}
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            held.append(connection)
            accepted["count"] += 1
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=5)
    for connection in held:
        connection.close()
    listener.close()


def _invoke(capsys, monkeypatch, url):
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    started = time.monotonic()
    code = test_endpoint.main(["-e", "qc-missing", "-d", DATA, "--region", "ca-central-1"],
                              {"NO_COLOR": "1"})
    return code, capsys.readouterr().err, time.monotonic() - started


def test_a_refused_connection_is_tried_three_times_and_each_retry_is_said(capsys, monkeypatch):
    code, err, elapsed = _invoke(capsys, monkeypatch, f"http://127.0.0.1:{free_port()}")
    assert code == 3 and "Could not reach AWS" in err
    assert err.count("sagemaker-runtime InvokeEndpoint: Could not connect") == 2
    assert "retrying (attempt 2 of 3)" in err and "retrying (attempt 3 of 3)" in err
    assert "no answer after 3 attempt(s)" in err and "giving up" in err
    assert elapsed < 30


def test_a_silent_endpoint_is_bounded_by_attempts(capsys, monkeypatch, silent_server):
    port, accepted = silent_server
    monkeypatch.setattr(boto_session, "CLIENT_CONFIG",
                        boto_session.CLIENT_CONFIG.merge(Config(read_timeout=0.3)))
    code, err, elapsed = _invoke(capsys, monkeypatch, f"http://127.0.0.1:{port}")
    assert code == 3 and "Read timeout" in err
    assert accepted["count"] == boto_session.CONNECTION_ATTEMPTS == 3  # not botocore's 11
    assert "retrying (attempt 2 of 3)" in err
    assert elapsed < 30


def test_no_new_attempt_once_the_time_budget_is_spent(capsys, monkeypatch, silent_server):
    port, accepted = silent_server
    monkeypatch.setattr(boto_session, "CLIENT_CONFIG",
                        boto_session.CLIENT_CONFIG.merge(Config(read_timeout=0.5)))
    monkeypatch.setattr(boto_session, "CONNECTION_ATTEMPTS", 50)
    monkeypatch.setattr(boto_session, "CONNECTION_RETRY_SECONDS", 0.4)
    code, err, elapsed = _invoke(capsys, monkeypatch, f"http://127.0.0.1:{port}")
    assert code == 3 and "giving up" in err
    assert 2 <= accepted["count"] <= 3
    assert elapsed < 30
