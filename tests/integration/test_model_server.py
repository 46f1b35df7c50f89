"""The real model server (artifacts/serve) as a process on a loopback port: contract, content types,
every error status, health after bad requests, workers, SIGTERM, and broken start-ups.

One server (2 workers, bundle layout: model.joblib + code/inference.py) is shared by the module;
the tests that need their own process start and always stop it.
"""

from __future__ import annotations

import io
import json
import re
import select
import socket
import time

import joblib
import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.model_server_harness import (
    bundle_model_dir,
    child_pids,
    group_alive,
    server_env,
    start_server,
    stop_server,
    wait_for_children,
    wait_until_healthy,
)
from utils.contract import response_problems

pytestmark = pytest.mark.integration

SAMPLE_ROWS = json.loads((REPO_ROOT / "sample-data.json").read_text())["data"]
LABELS = ["qc_pass", "qc_fail"]
JSON_HEADERS = {"Content-Type": "application/json"}
FAIL_DEADLINE = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    model_dir = bundle_model_dir(root / "model")
    running = start_server(model_dir, root / "server.log", server_env(model_dir, workers=2))
    try:
        wait_until_healthy(running)
        yield running
    finally:
        stop_server(running)


@pytest.fixture(scope="module")
def reference_model():
    return joblib.load(REPO_ROOT / "artifacts" / "model.joblib")


def _invoke(server, body: bytes, content_type: str = "application/json", **headers):
    status, response_headers, payload = server.request(
        "POST", "/invocations", body, {"Content-Type": content_type, **headers})
    return status, response_headers, payload


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float64), allow_pickle=False)
    return buffer.getvalue()


# --- the contract -----------------------------------------------------------------------------

def test_ping_is_healthy(server):
    status, _, body = server.request("GET", "/ping")
    assert status == 200 and json.loads(body) == {"status": "healthy"}


@pytest.mark.parametrize("content_type, body", [
    ("application/json", json.dumps({"data": SAMPLE_ROWS}).encode()),
    ("text/csv", "\n".join(",".join(map(str, row)) for row in SAMPLE_ROWS).encode()),
    ("application/x-npy", _npy(SAMPLE_ROWS)),
], ids=["json", "csv", "npy"])
def test_every_content_type_answers_the_contract_with_the_models_probabilities(
        server, reference_model, content_type, body):
    status, headers, payload = _invoke(server, body, content_type)
    assert status == 200, payload
    assert headers["content-type"] == "application/json"
    answer = json.loads(payload)
    assert response_problems(answer, len(SAMPLE_ROWS), LABELS) == []
    expected = reference_model.predict_proba(np.asarray(SAMPLE_ROWS))
    assert np.allclose(answer["probabilities"], expected, rtol=1e-9, atol=1e-12)
    assert answer["predictions"] == [LABELS[i] for i in expected.argmax(axis=1)]


def test_the_sagemaker_sdks_bare_array_gets_the_same_answer(server):
    """The SDK's default JSONSerializer sends [[...]] without the 'data' key."""
    bare = _invoke(server, json.dumps(SAMPLE_ROWS).encode())
    wrapped = _invoke(server, json.dumps({"data": SAMPLE_ROWS}).encode())
    assert bare[0] == wrapped[0] == 200
    assert json.loads(bare[2]) == json.loads(wrapped[2])


def test_a_thousand_rows(server, reference_model):
    rows = np.random.default_rng(3).normal([2.5, 180, 101.3, 0.2], [0.1, 8, 4, 0.08], (1000, 4))
    status, _, payload = _invoke(server, json.dumps({"data": rows.tolist()}).encode())
    assert status == 200
    assert np.allclose(json.loads(payload)["probabilities"], reference_model.predict_proba(rows))


def test_execution_parameters_report_the_workers(server):
    status, _, body = server.request("GET", "/execution-parameters")
    assert status == 200 and json.loads(body)["MaxConcurrentTransforms"] == 2


# --- errors -----------------------------------------------------------------------------------

ERROR_CASES = [
    ("malformed-json", b'{"data": [[1, 2,', {}, 400, r"Malformed JSON: .* at line 1, column \d+"),
    ("missing-data", b'{"rows": [[1, 2, 3, 4]]}', {}, 400, "Missing the 'data' key"),
    ("wrong-feature-count", b'{"data": [[1, 2, 3]]}', {}, 400, "must have 4 features"),
    ("non-numeric", b'{"data": [[1, "x", 3, 4]]}', {}, 400, "not a number"),
    ("empty-data", b'{"data": []}', {}, 400, "'data' is empty"),
    ("empty-body", b"", {}, 400, "Empty request body"),
    ("ragged", b'{"data": [[1, 2, 3, 4], [1]]}', {}, 400, "row 1 has 1 values but row 0 has 4"),
    ("csv-header", b"a,b,c,d\n1,2,3,4\n", {"Content-Type": "text/csv"}, 400, "not a number"),
    ("unsupported-content-type", b"1 2 3 4", {"Content-Type": "text/plain"}, 415,
     "Unsupported Content-Type 'text/plain'"),
    ("unsupported-accept", json.dumps({"data": SAMPLE_ROWS}).encode(), {"Accept": "text/html"},
     406, "Unsupported Accept 'text/html'"),
]


@pytest.mark.parametrize("body, headers, status, message",
                         [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES])
def test_bad_requests_get_a_json_error_with_the_right_status(server, body, headers, status,
                                                             message):
    got_status, response_headers, payload = _invoke(server, body, **{
        "content_type": headers.pop("Content-Type", "application/json"), **headers})
    assert got_status == status, payload
    assert response_headers["content-type"] == "application/json"
    assert re.search(message, json.loads(payload)["error"])


def test_a_body_over_6_mb_is_refused_from_its_content_length(server):
    """413 without the body being sent: the server judges Content-Length before reading."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(b"POST /invocations HTTP/1.1\r\nHost: test\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 6291457\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = connection.recv(4096)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "over the limit of 6,291,456 bytes" in json.loads(body)["error"]


def test_a_body_at_the_limit_is_read(server):
    padding = 6_291_456 - len(b'{"data": [[2.5, 180, 101.3, 0.2]]}')
    body = b'{"data": [[2.5, 180, 101.3, 0.2]]}' + b" " * padding
    assert len(body) == 6_291_456
    assert _invoke(server, body)[0] == 200


@pytest.mark.parametrize("method, path, status", [("GET", "/invocations", 405),
                                                  ("POST", "/ping", 405),
                                                  ("GET", "/models", 404)])
def test_unknown_routes_and_methods(server, method, path, status):
    assert server.request(method, path)[0] == status


def test_server_is_healthy_after_every_bad_request(server):
    for _, body, headers, _, _ in ERROR_CASES:
        _invoke(server, body, content_type=headers.get("Content-Type", "application/json"),
                **{k: v for k, v in headers.items() if k != "Content-Type"})
    assert server.request("GET", "/ping")[0] == 200
    assert _invoke(server, json.dumps({"data": SAMPLE_ROWS[:1]}).encode())[0] == 200
    log = server.log
    # No worker died or was replaced: exactly the two booted at start-up.
    assert len(re.findall(r"worker started \(pid \d+\)", log)) == 2, log
    assert "Traceback" not in log and " 500 " not in log


# --- logs, workers, SIGTERM -------------------------------------------------------------------

def test_logs_a_start_up_line_and_one_line_per_request(server):
    # Its own requests: under pytest-xdist this module's other tests may run on another server.
    assert _invoke(server, json.dumps({"data": SAMPLE_ROWS[:1]}).encode())[0] == 200
    assert _invoke(server, b"1 2 3 4", content_type="text/plain")[0] == 415
    assert server.request("GET", "/ping")[0] == 200
    # The watchdog's tick writes a quiet worker's pending lines (each of the 2 workers its own):
    # within a second once traffic stops.
    for line in (r"POST /invocations 200 \d+\.\d\d ms",
                 r"POST /invocations 415 \d+\.\d\d ms - Unsupported Content-Type",
                 r"GET /ping 200 \d+\.\d\d ms"):
        log = server.log_once(line, deadline=3.0)
    assert re.search(r"model server ready: StandardScaler -> LogisticRegression, 4 features "
                     r"from .*model, handlers .*code/inference.py .*2 worker\(s\) on "
                     r"http://127.0.0.1:\d+, timeout 60 s", log), log


def test_worker_count_is_honoured(server):
    assert len(wait_for_children(server.process.pid, 2)) == 2
    time.sleep(0.3)  # and no more than that appear
    assert len(child_pids(server.process.pid)) == 2


def test_sigterm_stops_promptly_with_code_0_and_leaves_no_process(tmp_path):
    model_dir = bundle_model_dir(tmp_path / "model")
    running = start_server(model_dir, tmp_path / "server.log", server_env(model_dir, workers=3))
    try:
        wait_until_healthy(running)
        assert len(wait_for_children(running.process.pid, 3)) == 3
        assert _invoke(running, json.dumps({"data": SAMPLE_ROWS}).encode())[0] == 200
        started = time.monotonic()  # at once: its request line is still waiting to be written
        running.process.terminate()
        code = running.process.wait(timeout=25)
        elapsed = time.monotonic() - started
    finally:
        stop_server(running)
    assert code == 0, running.log
    assert elapsed < 25  # SageMaker kills at 30 s; the measured figure is ~1 s
    assert not group_alive(running.process.pid)
    assert "model server stopped (exit code 0)" in running.log
    assert re.search(r"POST /invocations 200 \d+\.\d\d ms", running.log)  # written at exit


def test_a_capped_log_file_stays_under_its_limit_across_workers(tmp_path):
    model_dir = bundle_model_dir(tmp_path / "model")
    running = start_server(model_dir, tmp_path / "server.log",
                           server_env(model_dir, workers=2, MODEL_SERVER_LOG_MAX_BYTES="4096"))
    try:
        wait_until_healthy(running)
        sizes = []
        for _ in range(120):  # ~90 bytes a line: the log passes 4096 bytes several times
            assert _invoke(running, json.dumps({"data": SAMPLE_ROWS[:1]}).encode())[0] == 200
            sizes.append(running.log_path.stat().st_size)
    finally:
        stop_server(running)
    # a batch of request lines (at most PIPE_BUF bytes) may pass the limit before it is emptied
    assert max(sizes) < 4096 + select.PIPE_BUF, sizes
    log = running.log
    assert "log emptied at" in log and "model server ready:" in log
    assert "\0" not in log  # no hole of zeros: every writer appends


def test_default_handlers_serve_a_module_with_only_model_fn(tmp_path):
    """Like AWS's container: JSON array in, model.predict, JSON array out."""
    model_dir = bundle_model_dir(tmp_path / "model")
    (model_dir / "code" / "inference.py").write_text(
        "import os, joblib\n\ndef model_fn(model_dir):\n"
        "    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n")
    running = start_server(model_dir, tmp_path / "server.log", server_env(model_dir, workers=1))
    try:
        wait_until_healthy(running)
        status, _, body = _invoke(running, json.dumps(SAMPLE_ROWS).encode())
        unsupported = _invoke(running, b"x", "text/plain")[0]
    finally:
        stop_server(running)
    assert status == 200 and json.loads(body) == [0, 1, 0, 1]
    assert unsupported == 415


USER_HANDLERS = """
import json, os, joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    rows = json.loads(body)  # AWS's container hands application/json over as text
    if not isinstance(rows, list):
        raise TypeError(f"expected a list of rows, got {type(rows).__name__}")
    if any(len(row) != 4 for row in rows):
        raise ValueError("every row needs 4 features")
    return rows

def predict_fn(data, model):
    if data == [[0, 0, 0, 0]]:
        raise RuntimeError("the model store is unreachable")
    return model.predict_proba(data)

def output_fn(prediction, accept):
    return json.dumps(prediction.tolist()), "application/json"
"""


def test_a_users_handlers_errors_are_answers_and_the_worker_survives(tmp_path):
    """ValueError/TypeError from a user's input_fn: 400; anything else: 500; no worker dies."""
    model_dir = bundle_model_dir(tmp_path / "model")
    (model_dir / "code" / "inference.py").write_text(USER_HANDLERS)
    running = start_server(model_dir, tmp_path / "server.log", server_env(model_dir, workers=1))
    try:
        wait_until_healthy(running)
        answers = [_invoke(running, json.dumps(body).encode())
                   for body in ({"data": 1}, [[1, 2]], [[0, 0, 0, 0]], SAMPLE_ROWS)]
        ping = running.request("GET", "/ping")[0]
    finally:
        stop_server(running)
    statuses = [status for status, _, _ in answers]
    messages = [json.loads(body) for _, _, body in answers]
    assert statuses == [400, 400, 500, 200], messages
    assert messages[0]["error"] == "expected a list of rows, got dict"
    assert messages[1]["error"] == "every row needs 4 features"
    assert "RuntimeError: the model store is unreachable" in messages[2]["error"]
    assert len(messages[3]) == len(SAMPLE_ROWS) and ping == 200
    assert running.log.count("worker started (pid") == 1, running.log
    assert "handler fault:" in running.log  # the 500's traceback is logged, the 400s' are not
    assert running.log.count("Traceback") == 1


# --- broken start-ups -------------------------------------------------------------------------

def _write_corrupt_model(model_dir):
    (model_dir / "model.joblib").write_bytes(b"this is not a pickle")


def _remove_model(model_dir):
    (model_dir / "model.joblib").unlink()


def _remove_model_fn(model_dir):
    (model_dir / "code" / "inference.py").write_text("def input_fn(body, content_type):\n"
                                                     "    return body\n")


def _mislabel(model_dir):
    return {"CLASS_LABELS": "only_one"}


BROKEN = {
    "missing-model": (_remove_model, r"could not load the model .*model.joblib not found"),
    "corrupt-model": (_write_corrupt_model, r"could not load the model from .*model.joblib could "
                                            r"not be unpickled \(\w+Error: .*\): is it a model "
                                            r"written by joblib.dump"),
    "no-model_fn": (_remove_model_fn, r"inference.py defines no model_fn"),
    "bad-class-labels": (_mislabel, r"CLASS_LABELS='only_one' names 1 label\(s\) but the model "
                                    r"has 2 classes"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_model_fails_at_start_up_with_a_clear_message(tmp_path, name):
    breaker, message = BROKEN[name]
    model_dir = bundle_model_dir(tmp_path / "model")
    extra_env = breaker(model_dir) or {}
    running = start_server(model_dir, tmp_path / "server.log", server_env(model_dir, **extra_env))
    try:
        code = running.process.wait(timeout=FAIL_DEADLINE)
    finally:
        stop_server(running)
    assert code == 1
    assert re.search(r"model server: cannot start: .*" + message, running.log), running.log
    assert "Traceback" not in running.log
    assert "worker started" not in running.log  # it never got as far as forking
    assert not group_alive(running.process.pid)


def test_a_port_in_use_fails_at_once(tmp_path):
    model_dir = bundle_model_dir(tmp_path / "model")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = start_server(model_dir, tmp_path / "server.log", server_env(model_dir),
                               port=port)
        try:
            code = running.process.wait(timeout=FAIL_DEADLINE)
        finally:
            stop_server(running)
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in running.log
    assert "Address already in use" in running.log
