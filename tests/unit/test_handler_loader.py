"""The model server's handler loading, status mapping and routing (its RSGI entry), without a process."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import select
import sys
import textwrap
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.model_server_harness import import_artifact

handler_loader = import_artifact("handler_loader")
model_server = import_artifact("model_server")


@pytest.fixture(autouse=True)
def _restore_import_state(tmp_path):
    """Loading handlers edits sys.path and sys.modules, as in the server; undo it per test."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def _module(tmp_path: Path, source: str, name: str = "handlers_under_test") -> Path:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return tmp_path


# --- loading ----------------------------------------------------------------------------------

def test_loads_the_shipped_handlers():
    handlers = handler_loader.load_handlers(REPO_ROOT / "artifacts", "inference.py")
    assert handlers.provided == ("model_fn", "input_fn", "predict_fn", "output_fn",
                                 "execution_parameters_fn")
    assert handlers.execution_parameters is not None


def test_missing_module_names_the_path(tmp_path):
    with pytest.raises(handler_loader.HandlerError, match="nothere.py does not exist"):
        handler_loader.load_handlers(tmp_path, "nothere.py")


def test_model_fn_is_required(tmp_path):
    _module(tmp_path, "def input_fn(body, content_type):\n    return body\n", "no_model_fn")
    with pytest.raises(handler_loader.HandlerError, match="defines no model_fn"):
        handler_loader.load_handlers(tmp_path, "no_model_fn.py")


def test_transform_fn_cannot_be_mixed_with_the_other_handlers(tmp_path):
    _module(tmp_path, """
        def model_fn(model_dir): return None
        def input_fn(body, content_type): return body
        def transform_fn(model, body, content_type, accept): return body
    """, "mixed")
    with pytest.raises(handler_loader.HandlerError, match="transform_fn together with"):
        handler_loader.load_handlers(tmp_path, "mixed")


def test_an_import_error_says_where(tmp_path):
    _module(tmp_path, "x = 1\nraise RuntimeError('boom')\n", "broken_import")
    with pytest.raises(handler_loader.HandlerError,
                       match=r"RuntimeError: boom \(at broken_import.py line 2\)"):
        handler_loader.load_handlers(tmp_path, "broken_import.py")


def test_the_module_can_import_its_neighbours(tmp_path):
    (tmp_path / "neighbour_helper.py").write_text("SCALE = 3\n")
    _module(tmp_path, """
        import neighbour_helper
        def model_fn(model_dir): return neighbour_helper.SCALE
        def transform_fn(model, body, content_type, accept):
            return (str(model * int(body)), "text/plain")
    """, "with_neighbour")
    handlers = handler_loader.load_handlers(tmp_path, "with_neighbour.py")
    assert handlers.transform(handlers.model_fn("x"), b"2", "text/plain", "*/*") == ("6", "text/plain")


def test_missing_handlers_default_like_the_aws_container(tmp_path):
    class Doubler:
        def predict(self, data):
            return data * 2

    _module(tmp_path, "def model_fn(model_dir): return None\n", "model_fn_only")
    handlers = handler_loader.load_handlers(tmp_path, "model_fn_only.py")
    assert handlers.provided == ("model_fn",)
    result = handlers.transform(Doubler(), b"[[1, 2]]", "application/json", "application/json")
    assert json.loads(result[0]) == [[2.0, 4.0]]
    csv_result = handlers.transform(Doubler(), b"1,2\n3,4\n", "text/csv", "text/csv")
    assert csv_result == (b"2.0,4.0\r\n6.0,8.0\r\n", "text/csv")
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.5]]))
    npy_body, npy_type = handlers.transform(Doubler(), buffer.getvalue(), "application/x-npy",
                                            "application/x-npy")
    assert npy_type == "application/x-npy" and np.load(io.BytesIO(npy_body)).tolist() == [[3.0]]


@pytest.mark.parametrize("call, status", [
    (lambda: handler_loader.default_input_fn(b"x", "text/plain"), 415),
    (lambda: handler_loader.default_output_fn([1], "text/html"), 406),
])
def test_default_handlers_refuse_unknown_formats_with_the_right_status(call, status):
    with pytest.raises(ValueError) as caught:
        call()
    assert handler_loader.status_for(caught.value) == status


# --- status and output conventions ------------------------------------------------------------

class _WithStatus(Exception):
    def __init__(self, code):
        super().__init__("x")
        self.status_code = code


@pytest.mark.parametrize("exc, status", [
    (ValueError("bad"), 400),
    (TypeError("bad"), 400),
    (json.JSONDecodeError("bad", "doc", 0), 400),
    (KeyError("data"), 500),
    (RuntimeError("bug"), 500),
    (_WithStatus(415), 415),
    (_WithStatus(503), 503),
    (_WithStatus(200), 500),  # not an error status: ignored
    (_WithStatus("400"), 500),  # not an int: ignored
])
def test_status_for(exc, status):
    assert handler_loader.status_for(exc) == status


class _FlaskLikeResponse:
    status_code = 201
    mimetype = "text/plain"

    def get_data(self):
        return b"made"


@pytest.mark.parametrize("result, expected", [
    ((b"{}", "application/json"), (200, b"{}", "application/json")),
    (("text", None), (200, b"text", "application/json")),
    (b"raw", (200, b"raw", "application/json")),
    ("é", (200, "é".encode(), "application/json")),
    ({"a": 1}, (200, b'{"a": 1}', "application/json")),
    (_FlaskLikeResponse(), (201, b"made", "text/plain")),
])
def test_normalize_output(result, expected):
    assert handler_loader.normalize_output(result, "application/json") == expected


@pytest.mark.parametrize("result, message", [
    (1.5, "output_fn returned a float"),
    ({"a": np.float32(1)}, "not JSON serialisable"),
])
def test_normalize_output_refuses_what_it_cannot_send_as_a_server_fault(result, message):
    with pytest.raises(handler_loader.HandlerFault, match=message) as caught:
        handler_loader.normalize_output(result, "application/json")
    assert handler_loader.status_for(caught.value) == 500


# --- settings ---------------------------------------------------------------------------------

def _settings(argv=(), **env):
    return model_server.settings_from(model_server.build_parser().parse_args(list(argv)), env)


def test_settings_defaults_follow_the_container_contract(tmp_path):
    settings = _settings()
    assert (settings.host, settings.port, settings.model_dir, settings.timeout) == \
        ("0.0.0.0", 8080, Path("/opt/ml/model"), 60)
    assert settings.workers >= 1 and settings.program == "inference.py"


def test_settings_from_env_and_flags(tmp_path):
    (tmp_path / "code").mkdir()
    settings = _settings(["--port", "9001"], SM_MODEL_DIR=str(tmp_path),
                         SAGEMAKER_BIND_TO_PORT="9000", SAGEMAKER_MODEL_SERVER_WORKERS="3",
                         SAGEMAKER_MODEL_SERVER_TIMEOUT="5")
    assert (settings.port, settings.workers, settings.timeout) == (9001, 3, 5)
    assert settings.submit_dir == tmp_path / "code"  # the bundle's code/ when present


@pytest.mark.parametrize("env, message", [
    ({"SAGEMAKER_MODEL_SERVER_WORKERS": "two"}, "must be a whole number"),
    ({"SAGEMAKER_MODEL_SERVER_WORKERS": "0"}, "must be from 1"),
    ({"SAGEMAKER_BIND_TO_PORT": "70000"}, "must be from 1 to 65535"),
    ({"SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/code.tar.gz"}, "not a local directory"),
    ({"MODEL_SERVER_LOG_MAX_BYTES": "100"}, "must be 0 \\(off\\) or from 4096"),
])
def test_bad_settings_stop_the_start(env, message):
    with pytest.raises(model_server.StartupError, match=message):
        _settings(**env)


# --- the app, in process -----------------------------------------------------------------

@pytest.fixture(scope="module")
def app():
    handlers = handler_loader.load_handlers(REPO_ROOT / "artifacts", "inference.py")
    model = model_server.load_model(handlers, REPO_ROOT / "artifacts")
    return model_server.InferenceApp(handlers, model, max_body_bytes=1000)


class _Headers(dict):
    """granian's RSGIHeaders: lower-case names, `get`."""


@dataclass
class _Scope:
    method: str
    path: str
    headers: _Headers


class _Protocol:
    """granian's RSGIHTTPProtocol as the app uses it: the body awaited, or iterated when chunked."""

    def __init__(self, body: bytes, chunks: list[bytes] | None = None, delay: float = 0) -> None:
        self.body, self.chunks, self.delay = body, chunks, delay
        self.sent: tuple[int, dict[str, str], bytes] | None = None
        self.read = False

    async def __call__(self) -> bytes:
        self.read = True
        await asyncio.sleep(self.delay)
        return self.body

    async def __aiter__(self):
        self.read = True
        for chunk in self.chunks or []:
            await asyncio.sleep(self.delay)
            yield chunk

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.sent = (status, {k.title(): v for k, v in headers}, body)


_HEADER_NAMES = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length",
                 "HTTP_CONTENTTYPE": "contenttype", "HTTP_ACCEPT": "accept"}


def _call(app, method, path, body=b"", headers=None, protocol=None):
    """Drive the app's RSGI entry as granian does; (status line, headers, body) as sent."""
    sent_headers = _Headers({"content-length": str(len(body))} if body else {})
    sent_headers.update({_HEADER_NAMES[key]: value for key, value in (headers or {}).items()})
    protocol = protocol or _Protocol(body)
    asyncio.run(app.__rsgi__(_Scope(method, path, sent_headers), protocol))
    status, response_headers, payload = protocol.sent
    return f"{status} {HTTPStatus(status).phrase}", response_headers, payload


def test_app_routes_and_errors(app, capfd):
    assert _call(app, "GET", "/ping")[0] == "200 OK"
    status, headers, body = _call(app, "POST", "/invocations", b'{"data": [[2.5, 180, 101.3, 0.2]]}',
                                  {"CONTENT_TYPE": "application/json"})
    assert status == "200 OK" and json.loads(body)["predictions"] == ["qc_pass"]
    assert _call(app, "GET", "/nowhere")[0] == "404 Not Found"
    status, headers, _ = _call(app, "GET", "/invocations")
    assert status == "405 Method Not Allowed" and headers["Allow"] == "POST"
    assert _call(app, "POST", "/invocations", b"x" * 1001)[0] == "413 Request Entity Too Large"
    assert _call(app, "POST", "/invocations", b"{}", {"CONTENT_LENGTH": "lots"})[0] == \
        "400 Bad Request"
    model_server.REQUEST_LOG.flush()  # request lines wait for a batch (or the watchdog's tick)
    log = capfd.readouterr().out
    assert "POST /invocations 200" in log and " ms" in log
    assert "POST /invocations 413" in log and "over the limit of 1,000 bytes" in log


def test_an_oversized_body_is_refused_from_its_content_length_without_reading_it(app):
    protocol = _Protocol(b"")
    status, _, body = _call(app, "POST", "/invocations", headers={"CONTENT_LENGTH": "1001"},
                            protocol=protocol)
    assert status == "413 Request Entity Too Large" and "over the limit" in json.loads(body)["error"]
    assert not protocol.read


def test_a_chunked_body_is_read_only_up_to_the_limit(app):
    ok = _Protocol(b"", chunks=[b'{"data": ', b"[[2.5, 180, 101.3, 0.2]]}"])
    assert _call(app, "POST", "/invocations", protocol=ok)[0] == "200 OK"
    too_big = _Protocol(b"", chunks=[b" " * 600, b" " * 600, b"never read"])
    status, _, body = _call(app, "POST", "/invocations", protocol=too_big)
    assert status == "413 Request Entity Too Large"
    assert "The request body is larger" in json.loads(body)["error"]


def test_a_body_that_does_not_arrive_in_time_is_a_408(app):
    quick = model_server.InferenceApp(app.handlers, app.model, timeout=0.05)
    quick.watchdog.start()  # what __rsgi_init__ does in each worker
    try:
        slow = _Protocol(b'{"data": [[1, 2, 3, 4]]}', delay=5)
        started = time.monotonic()
        status, headers, body = _call(quick, "POST", "/invocations",
                                      headers={"CONTENT_LENGTH": "24"}, protocol=slow)
        assert time.monotonic() - started < 2
        assert status == "408 Request Timeout" and headers["Content-Type"] == "application/json"
        assert "did not arrive within 0.05 s" in json.loads(body)["error"]
        assert not quick.watchdog.reading and not quick.watchdog.expired
    finally:
        quick.watchdog.stopped.set()


def test_a_cancellation_that_is_not_the_timeout_still_cancels(app):
    slow = _Protocol(b'{"data": [[1, 2, 3, 4]]}', delay=5)

    async def cancelled_by_the_server():
        task = asyncio.ensure_future(app.__rsgi__(
            _Scope("POST", "/invocations", _Headers({"content-length": "24"})), slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_by_the_server())
    assert slow.sent is None and not app.watchdog.reading


def test_a_fault_outside_the_handlers_is_still_a_json_500(app, monkeypatch, capfd):
    monkeypatch.setattr(app, "invoke", lambda request: 1 / 0)
    status, _, body = _call(app, "POST", "/invocations", b"{}")
    assert status == "500 Internal Server Error"
    assert "ZeroDivisionError" in json.loads(body)["error"]
    assert "Traceback" in capfd.readouterr().err


def test_execution_parameters_come_from_the_shipped_execution_parameters_fn(app, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3")
    status, headers, body = _call(app, "GET", "/execution-parameters")
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD",
                                "MaxPayloadInMB": 6}


def test_without_execution_parameters_fn_the_server_answers_from_its_settings(tmp_path):
    app = _app_for(tmp_path, """
        def model_fn(model_dir): return None
    """, "no_parameters")
    status, _, body = _call(app, "GET", "/execution-parameters")
    assert status == "200 OK"
    assert json.loads(body) == {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD",
                                "MaxPayloadInMB": 6}


def test_a_failing_execution_parameters_fn_is_a_json_500(tmp_path, capfd):
    app = _app_for(tmp_path, """
        def model_fn(model_dir): return None
        def execution_parameters_fn(): raise KeyError("no settings")
    """, "broken_parameters")
    status, _, body = _call(app, "GET", "/execution-parameters")
    assert status == "500 Internal Server Error"
    assert "execution_parameters_fn failed: KeyError" in json.loads(body)["error"]
    assert "Traceback" in capfd.readouterr().err


def test_a_handler_fault_is_a_500_and_logs_the_traceback(app, capfd, monkeypatch):
    def broken(*_args):
        raise KeyError("oops")

    monkeypatch.setattr(app, "handlers", handler_loader.Handlers(
        app.handlers.source, app.handlers.model_fn, broken, ("model_fn", "transform_fn")))
    status, _, body = _call(app, "POST", "/invocations", b"{}")
    assert status == "500 Internal Server Error"
    assert json.loads(body)["error"].startswith("Internal error while handling the request: KeyError")
    assert "Traceback" in capfd.readouterr().err


# --- native threads ---------------------------------------------------------------------------

def test_native_threads_default_to_one_per_worker():
    from threadpoolctl import threadpool_info, threadpool_limits

    original = {info["user_api"]: info["num_threads"] for info in threadpool_info()}
    try:
        assert model_server.limit_native_threads({}) == "1"
        assert all(info["num_threads"] == 1 for info in threadpool_info())
    finally:
        for api, threads in original.items():
            threadpool_limits(limits=threads, user_api=api)


def test_native_threads_follow_the_environment_when_set():
    assert model_server.limit_native_threads({"OMP_NUM_THREADS": "4"}) == "OMP_NUM_THREADS=4"


# --- user handlers behind the app ----------------------------------------------------------

def _app_for(tmp_path: Path, source: str, name: str) -> model_server.InferenceApp:
    handlers = handler_loader.load_handlers(_module(tmp_path, source, name), name)
    return model_server.InferenceApp(handlers, handlers.model_fn(str(tmp_path)))


def test_handlers_get_the_body_as_text_exactly_when_aws_container_gives_text(tmp_path):
    """AWS decodes application/json and text/csv (the whole header) to str, nothing else."""
    app = _app_for(tmp_path, """
        def model_fn(model_dir): return None
        def transform_fn(model, body, content_type, accept):
            return (f"{type(body).__name__} {content_type}", "text/plain")
    """, "body_kind")
    cases = [({"CONTENT_TYPE": "application/json"}, "str application/json"),
             ({"CONTENT_TYPE": "text/csv"}, "str text/csv"),
             ({"CONTENT_TYPE": "application/json; charset=utf-8"},
              "bytes application/json; charset=utf-8"),
             ({"CONTENT_TYPE": "application/x-npy"}, "bytes application/x-npy"),
             ({}, "str application/json"),  # no Content-Type: JSON, as AWS assumes
             ({"CONTENT_TYPE": "text/plain", "HTTP_CONTENTTYPE": "text/csv"}, "str text/csv")]
    for headers, expected in cases:
        status, _, body = _call(app, "POST", "/invocations", b"1,2\n\xff", headers)
        assert (status, body.decode()) == ("200 OK", expected), headers


def test_an_aws_style_input_fn_that_splits_text_works(tmp_path):
    app = _app_for(tmp_path, """
        def model_fn(model_dir): return None
        def input_fn(body, content_type):
            return [line.split(",") for line in body.split("\\n") if line]
        def predict_fn(data, model): return len(data)
        def output_fn(prediction, accept): return (str(prediction), "text/plain")
    """, "aws_style")
    status, _, body = _call(app, "POST", "/invocations", b"1,2\n3,4\n",
                            {"CONTENT_TYPE": "text/csv"})
    assert (status, body) == ("200 OK", b"2")


@pytest.mark.parametrize("trigger, status, message", [
    (b"value", "400 Bad Request", "row 3 is not a number"),
    (b"type", "400 Bad Request", "expected a list"),
    (b"runtime", "500 Internal Server Error", "RuntimeError: lost the model"),
    (b"output", "500 Internal Server Error", "output_fn failed: TypeError: cannot encode"),
    (b"float", "500 Internal Server Error", "output_fn returned a float"),
    (b"ok", "200 OK", None),
])
def test_input_errors_are_400_and_only_faults_are_500(tmp_path, trigger, status, message):
    app = _app_for(tmp_path, """
        def model_fn(model_dir): return None
        def input_fn(body, content_type):
            if body == "value": raise ValueError("row 3 is not a number")
            if body == "type": raise TypeError("expected a list")
            return body
        def predict_fn(data, model):
            if data == "runtime": raise RuntimeError("lost the model")
            return data
        def output_fn(prediction, accept):
            if prediction == "output": raise TypeError("cannot encode")
            return 1.5 if prediction == "float" else (b"{}", "application/json")
    """, "faults")
    got, _, body = _call(app, "POST", "/invocations", trigger, {"CONTENT_TYPE": "application/json"})
    assert got == status
    if message:
        assert message in json.loads(body)["error"]


# --- the request log --------------------------------------------------------------------------

@pytest.fixture
def writes(monkeypatch):
    """Every os.write of model_server, as (fd, bytes), instead of writing."""
    recorded = []
    monkeypatch.setattr(model_server.os, "write",
                        lambda fd, data: recorded.append((fd, bytes(data))) or len(data))
    return recorded


def _request(log, number: int, detail: str | None = None) -> None:
    started = time.perf_counter() - 0.0015
    log.add(started, "POST", "/invocations", 200 if detail is None else 400, detail)


def test_request_lines_wait_for_a_batch_then_go_out_whole_and_in_order(writes):
    log = model_server.RequestLog(fd=7)
    for number in range(log.BATCH - 1):
        _request(log, number, detail=f"bad row {number}" if number % 3 else None)
    assert writes == []  # nothing written per request

    _request(log, log.BATCH - 1)

    assert writes and all(fd == 7 and len(data) <= select.PIPE_BUF for fd, data in writes)
    lines = b"".join(data for _, data in writes).decode().splitlines()
    assert len(lines) == log.BATCH and not log.pending
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] POST /invocations 200 "
                        r"1\.\d\d ms", lines[0]), lines[0]
    assert [line.rsplit(" - ", 1)[-1] for line in lines[1:3]] == ["bad row 1", "bad row 2"]
    assert all(" ms" in line and "/invocations" in line for line in lines)


def test_a_request_line_longer_than_pipe_buf_is_written_alone(writes):
    log = model_server.RequestLog(fd=7)
    _request(log, 0)
    _request(log, 1, detail="x" * select.PIPE_BUF)
    _request(log, 2)

    log.flush()

    assert [data.count(b"\n") for _, data in writes] == [1, 1, 1]
    assert len(writes[1][1]) > select.PIPE_BUF and writes[1][1].endswith(b"x\n")


def test_batches_are_whole_lines_of_at_most_the_limit():
    lines = [b"a" * 30 + b"\n", b"b" * 60 + b"\n", b"c" * 10 + b"\n", b"d" * 200 + b"\n"]

    batches = model_server._batches(lines, 100)

    assert batches == [lines[0] + lines[1], lines[2], lines[3]]
    assert model_server._batches([], 100) == []


def test_a_server_line_comes_after_the_request_lines_before_it(writes):
    _request(model_server.REQUEST_LOG, 0)

    model_server.log_line("handler fault: something broke", stream=2)

    assert [fd for fd, _ in writes] == [1, 2]
    assert b"POST /invocations 200" in writes[0][1] and b"handler fault" in writes[1][1]


# --- the log cap ------------------------------------------------------------------------------

def _append_fd(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)


def test_log_cap_empties_the_file_past_the_limit_and_keeps_the_start_up_line(tmp_path):
    path = tmp_path / "server.log"
    fd = _append_fd(path)
    try:
        cap = model_server.LogCap.for_fd(fd, 4096)
        cap.first_line = "model server ready: test"
        for number in range(200):  # as log_line does: make room, then write
            cap.enforce()
            os.write(fd, f"POST /invocations 200 0.{number:03d} ms\n".encode())
            assert path.stat().st_size <= 4096 + 64
    finally:
        os.close(fd)
    lines = path.read_text().splitlines()
    assert "log emptied at" in lines[0] and "MODEL_SERVER_LOG_MAX_BYTES=4096" in lines[0]
    assert lines[1].endswith("model server ready: test")
    assert lines[-1] == "POST /invocations 200 0.199 ms"


def test_log_cap_applies_only_to_a_file_opened_for_appending(tmp_path):
    path = tmp_path / "server.log"
    plain = os.open(path, os.O_WRONLY | os.O_CREAT)
    reader, writer = os.pipe()
    appending = _append_fd(path)
    try:
        assert model_server.LogCap.for_fd(plain, 4096) is None
        assert model_server.LogCap.for_fd(writer, 4096) is None
        assert model_server.LogCap.for_fd(appending, 0) is None
        assert model_server.LogCap.for_fd(appending, 4096) is not None
    finally:
        for fd in (plain, reader, writer, appending):
            os.close(fd)
