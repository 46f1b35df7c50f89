"""The real model server against what production throws at it: keep-alive, slow and hostile
clients, a handler that hangs, a worker that dies, a tampered model file.

Every server here runs on a free loopback port and is always stopped; every slow client is
bounded (a few seconds, 50 connections). Nothing asserts a duration beyond generous deadlines
that say "it answered at all" (performance lives in `make bench`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from tests.conftest import REPO_ROOT
from tests.model_server_harness import (
    bundle_model_dir,
    child_pids,
    http_request,
    server_env,
    start_server,
    stop_server,
    wait_for_children,
    wait_until_healthy,
)

pytestmark = pytest.mark.integration

ONE_ROW = json.dumps({"data": [[2.5, 180, 101.3, 0.2]]}).encode()
JSON_HEADERS = {"Content-Type": "application/json"}
SLOW_CLIENTS = 50
TRICKLE_SECONDS = 4.0
ANSWER_DEADLINE = 5.0  # "it answered": far above the few ms an answer takes

HANGING_HANDLERS = """
import os, sys, time
sys.path.insert(0, os.path.dirname(__file__))
from inference_base import model_fn, input_fn, output_fn, predict_fn as _predict

def predict_fn(data, model):
    if data[0][0] == 0:  # the row [0, 0, 0, 0] hangs, as a stuck model call would
        time.sleep(600)
    return _predict(data, model)
"""


@pytest.fixture
def served(tmp_path):
    """A 2-worker server on the shipped handlers; yields it, always stops it."""
    servers = []

    def start(model_dir=None, **env):
        model_dir = model_dir or bundle_model_dir(tmp_path / f"model{len(servers)}")
        running = start_server(model_dir, tmp_path / f"server{len(servers)}.log",
                               server_env(model_dir, workers=2, **env))
        servers.append(running)
        return running

    yield start
    for running in servers:
        stop_server(running)


def _post_one_row(port: int, timeout: float = ANSWER_DEADLINE) -> int:
    return http_request(port, "POST", "/invocations", ONE_ROW, JSON_HEADERS, timeout=timeout)[0]


def _ping(port: int, timeout: float = ANSWER_DEADLINE) -> int:
    return http_request(port, "GET", "/ping", timeout=timeout)[0]


# --- keep-alive -------------------------------------------------------------------------------

def test_one_keep_alive_connection_serves_many_requests(served):
    server = served()
    wait_until_healthy(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=ANSWER_DEADLINE)
    try:
        statuses = []
        for _ in range(20):
            connection.request("POST", "/invocations", body=ONE_ROW, headers=JSON_HEADERS)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            assert not response.will_close
        local_port = connection.sock.getsockname()[1]
        connection.request("GET", "/ping")
        response = connection.getresponse()
        response.read()
        assert connection.sock.getsockname()[1] == local_port  # still the same TCP connection
    finally:
        connection.close()
    assert statuses == [200] * 20 and response.status == 200


# --- slow and hostile clients -----------------------------------------------------------------

def _open_slow_clients(port: int, first_bytes: bytes) -> list[socket.socket]:
    clients = []
    for _ in range(SLOW_CLIENTS):
        client = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_DEADLINE)
        client.sendall(first_bytes)
        clients.append(client)
    return clients


def _trickle(clients: list[socket.socket], piece: bytes, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        for client in clients:
            try:
                client.sendall(piece)
            except OSError:
                pass  # the server may close a client that took too long: that is allowed


def _answers_while_trickling(port: int, first_bytes: bytes, piece: bytes) -> list[tuple]:
    clients = _open_slow_clients(port, first_bytes)
    stop = threading.Event()
    trickler = threading.Thread(target=_trickle, args=(clients, piece, stop), daemon=True)
    trickler.start()
    answers = []
    try:
        deadline = time.monotonic() + TRICKLE_SECONDS
        while time.monotonic() < deadline:
            answers.append((_ping(port), _post_one_row(port)))
            time.sleep(0.2)
    finally:
        stop.set()
        trickler.join(5)
        for client in clients:
            client.close()
    return answers


def test_fifty_clients_trickling_headers_do_not_stop_ping_or_invocations(served):
    server = served()
    wait_until_healthy(server)
    answers = _answers_while_trickling(server.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\n",
                                       b"X-Slow: 1\r\n")
    assert len(answers) >= 5 and set(answers) == {(200, 200)}, answers


def test_fifty_clients_trickling_bodies_do_not_stop_ping_or_invocations(served):
    """Each declares 6 MB and sends a byte now and then (the attack that held a gunicorn worker)."""
    server = served()
    wait_until_healthy(server)
    head = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 6000000\r\n\r\n{\"data\": ")
    answers = _answers_while_trickling(server.port, head, b" ")
    assert len(answers) >= 5 and set(answers) == {(200, 200)}, answers


def test_a_body_that_stops_arriving_gets_a_json_408_at_the_timeout(served):
    server = served(SAGEMAKER_MODEL_SERVER_TIMEOUT="2")
    wait_until_healthy(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                       b"\r\nContent-Length: 100\r\n\r\n{\"data\": [[")
        reply = _read_reply(client)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply
    assert b"content-type: application/json" in head.lower()
    assert "did not arrive within 2 s" in json.loads(body)["error"]
    assert _ping(server.port) == 200


def test_a_request_that_is_not_http_gets_the_http_cores_bodiless_400_and_the_server_lives(served):
    """The documented exception to JSON errors (artifacts/README.md): hyper, inside granian,
    answers a request it cannot parse before granian or the app sees it."""
    server = served()
    wait_until_healthy(server)
    for garbage in (b"GARBAGE\r\n\r\n", b"GET /ping HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as client:
            client.sendall(garbage)
            reply = _read_reply(client).lower()
        assert reply.startswith(b"http/1.1 400 bad request\r\n"), reply
        assert b"content-length: 0\r\n" in reply and b"server: granian" not in reply, reply
    assert _ping(server.port) == 200


def _read_reply(client: socket.socket) -> bytes:
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = client.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply


# --- a hanging handler, a dying worker --------------------------------------------------------

def _hanging_model_dir(root):
    model_dir = bundle_model_dir(root)
    code = model_dir / "code"
    (code / "inference.py").rename(code / "inference_base.py")
    (code / "inference.py").write_text(HANGING_HANDLERS)
    return model_dir


def test_a_request_over_the_timeout_gets_a_json_504_and_its_worker_is_replaced(served, tmp_path):
    server = served(_hanging_model_dir(tmp_path / "hanging"), SAGEMAKER_MODEL_SERVER_TIMEOUT="2")
    wait_until_healthy(server)
    workers_before = set(wait_for_children(server.process.pid, 2))
    status, headers, body = http_request(server.port, "POST", "/invocations",
                                         json.dumps({"data": [[0, 0, 0, 0]]}).encode(),
                                         JSON_HEADERS, timeout=20)
    assert status == 504 and headers["content-type"] == "application/json"
    assert "took longer than 2 s" in json.loads(body)["error"]
    assert _ping(server.port) == 200 and _post_one_row(server.port) == 200
    replaced = _wait_for_replacement(server, workers_before)
    assert len(replaced) == 2 and len(replaced - workers_before) == 1, (workers_before, replaced)
    assert "request timeout: a handler ran over 2 s" in server.log
    assert server.process.poll() is None


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(served):
    server = served()
    wait_until_healthy(server)
    workers_before = set(wait_for_children(server.process.pid, 2))
    victim = min(workers_before)
    os.kill(victim, signal.SIGKILL)
    replaced = _wait_for_replacement(server, workers_before)
    assert victim not in replaced and len(replaced) == 2, (workers_before, replaced)
    for _ in range(10):  # both workers answer, whichever gets the connection
        assert _ping(server.port) == 200 and _post_one_row(server.port) == 200
    assert len(re.findall(r"worker started \(pid \d+\)", server.log)) == 3, server.log


def _wait_for_replacement(server, before: set[int], deadline: float = 20.0) -> set[int]:
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        current = set(child_pids(server.process.pid))
        if len(current) == len(before) and current != before:
            return current
        time.sleep(0.1)
    return set(child_pids(server.process.pid))


# --- integrity --------------------------------------------------------------------------------

def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_model_file_with_the_registered_sha256_is_served(served, tmp_path):
    model_dir = bundle_model_dir(tmp_path / "model")
    server = served(model_dir, MODEL_JOBLIB_SHA256=_sha256(model_dir / "model.joblib"))
    wait_until_healthy(server)
    assert _post_one_row(server.port) == 200
    assert "model.joblib sha256 verified" in server.log


def test_a_model_file_that_differs_from_the_registered_sha256_is_never_unpickled(served,
                                                                                  tmp_path):
    model_dir = bundle_model_dir(tmp_path / "model")
    registered = _sha256(REPO_ROOT / "artifacts" / "model.joblib")
    marker = tmp_path / "unpickled"
    # A pickle that would create `marker` if it were ever loaded.
    (model_dir / "model.joblib").write_bytes(
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    server = served(model_dir, MODEL_JOBLIB_SHA256=registered)
    code = server.process.wait(timeout=30)
    assert code == 1
    assert re.search(r"model server: cannot start: .*model.joblib has sha256 [0-9a-f]{64}, not "
                     rf"the {registered} registered in MODEL_JOBLIB_SHA256", server.log), server.log
    assert not marker.exists()
    assert "Traceback" not in server.log and "worker started" not in server.log
