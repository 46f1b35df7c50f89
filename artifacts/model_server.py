"""The model server: SageMaker's hosting contract on granian (a Rust HTTP core) and a small app.

`serve` (next to this file) calls `main()`. It loads the handler module (SAGEMAKER_SUBMIT_DIRECTORY
/ SAGEMAKER_PROGRAM, see handler_loader.py), checks `model.joblib` against the sha256 registered
with the package (MODEL_JOBLIB_SHA256) and loads the model ONCE, checks that the port is free, and
only then lets granian fork the workers, which inherit the loaded model. So a broken or tampered
model or handler, or a port in use, stops the start-up with one clear line on stderr and exit
code 1, before any worker runs.

Why this stack (measured on a 2-core machine with wrk on loopback, `make bench`): granian parses
HTTP and holds every connection in Rust, so keep-alive costs nothing, slow or hostile clients
(headers or bodies trickling in) wait in Rust, not in a Python worker, and a worker's Python runs
only the routing and the handlers. Its RSGI interface hands the body over as an awaitable: a body
that trickles in holds no thread (its WSGI interface reads the body in a blocking thread, so a
few slow uploads stopped every worker). The app answers from the event loop of each worker.

Routes: GET /ping (200 once the model is loaded, which is before the port accepts anything),
POST /invocations, GET /execution-parameters (batch transform). Errors are JSON {"error": ...}:
400 bad input, 404/405 unknown route or method, 406 unsupported Accept, 408 body not received in
time, 413 body over 6 MB (judged from Content-Length before a byte is read), 415 unsupported
Content-Type, 500 only for real faults, 504 for a request over the timeout. Requests that are
not HTTP at all (an unparseable request line or header) never reach the app: granian answers
them with an empty 400 (431 for headers over its buffer) and closes the connection.
One line per request on stdout: method, path, status, latency in ms (written in batches: a line
shows within a second).

Settings: flags --host/--port/--model-dir (env SAGEMAKER_BIND_TO_PORT, SM_MODEL_DIR), env
SAGEMAKER_MODEL_SERVER_WORKERS (default: the CPUs this process may use), SAGEMAKER_MODEL_SERVER_TIMEOUT
(60 s per request: reading the body and the handlers together), SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT
(application/json), MODEL_JOBLIB_SHA256 (the expected digest of model.joblib). A handler still
busy past the timeout gets its request a 504 and its worker replaced (Python cannot stop a
running function; gunicorn's sync workers behaved the same). A worker that dies is replaced.
SIGTERM: the server stops accepting, lets running requests finish (at most GRACEFUL_TIMEOUT s,
well inside the 30 s SageMaker waits before SIGKILL) and exits 0.

MODEL_SERVER_LOG_MAX_BYTES (not a SageMaker variable; local mode sets it) caps a log FILE that
stdout appends to: past that size the file is emptied and starts again with a note and the
start-up line (`LogCap`). In the container stdout is a pipe to CloudWatch and the cap does nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hashlib
import importlib.util
import multiprocessing
import os
import re
import select
import socket
import stat
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import handler_loader
from handler_loader import HandlerError, HandlerFault, Handlers

try:  # orjson for the server's own small JSON answers too; the stdlib is the fallback
    import orjson

    def _json(value: Any) -> bytes:
        return orjson.dumps(value)
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    import json

    def _json(value: Any) -> bytes:
        return json.dumps(value).encode("utf-8")

MAX_BODY_BYTES = 6_291_456  # SageMaker's limit for a real-time invocation body
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8080
DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PROGRAM = "inference.py"
DEFAULT_TIMEOUT = 60
GRACEFUL_TIMEOUT = 20  # SageMaker sends SIGKILL 30 s after SIGTERM
HEADER_READ_TIMEOUT = 15  # seconds for a client to send its request line and headers
LOG_MAX_BYTES_VAR = "MODEL_SERVER_LOG_MAX_BYTES"
MODEL_SHA256_VAR = "MODEL_JOBLIB_SHA256"
MODEL_FILE = "model.joblib"
MIN_LOG_MAX_BYTES = 4096  # room for the start-up line and a traceback
JSON_TYPE = "application/json"
BUILTIN_HANDLERS_DIR = Path(__file__).resolve().parent  # the image's own inference.py
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StartupError(Exception):
    """The server cannot start; the message says why and what to fix."""


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    model_dir: Path
    submit_dir: Path
    program: str
    workers: int
    timeout: int
    default_accept: str
    log_max_bytes: int = 0  # 0: no cap
    model_sha256: str | None = None  # None: not registered, not checked


# --- settings ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serve", description="Serve a model over SageMaker's hosting contract "
        "(GET /ping, POST /invocations).",
        epilog="Environment: SAGEMAKER_SUBMIT_DIRECTORY and SAGEMAKER_PROGRAM locate the handler "
               "module (default: <model-dir>/code/inference.py if present, else the image's own "
               "inference.py); SAGEMAKER_MODEL_SERVER_WORKERS (default: CPU count); "
               "SAGEMAKER_MODEL_SERVER_TIMEOUT (default: 60 s); CLASS_LABELS for inference.py; "
               f"{MODEL_SHA256_VAR} (refuse to start unless model.joblib has this sha256); "
               f"{LOG_MAX_BYTES_VAR} (empty a log file stdout appends to past this size; "
               "default: no cap).")
    parser.add_argument("--host", help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help="TCP port (env SAGEMAKER_BIND_TO_PORT; "
                                                 f"default: {DEFAULT_PORT})")
    parser.add_argument("--model-dir", help=f"directory holding the model files (env SM_MODEL_DIR; "
                                            f"default: {DEFAULT_MODEL_DIR})")
    parser.add_argument("--workers", type=int, help="worker processes (env "
                                                    "SAGEMAKER_MODEL_SERVER_WORKERS; default: CPUs)")
    return parser


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    model_dir = Path(args.model_dir or env.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR)
    return Settings(
        host=args.host or DEFAULT_HOST,
        port=_int_setting("--port / SAGEMAKER_BIND_TO_PORT",
                          args.port or env.get("SAGEMAKER_BIND_TO_PORT"), DEFAULT_PORT, 1, 65535),
        model_dir=model_dir,
        submit_dir=_submit_dir(env, model_dir),
        program=env.get("SAGEMAKER_PROGRAM") or DEFAULT_PROGRAM,
        workers=_int_setting("--workers / SAGEMAKER_MODEL_SERVER_WORKERS",
                             args.workers or env.get("SAGEMAKER_MODEL_SERVER_WORKERS"),
                             _cpu_count(), 1, 256),
        timeout=_int_setting("SAGEMAKER_MODEL_SERVER_TIMEOUT",
                             env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT"), DEFAULT_TIMEOUT, 1, 3600),
        default_accept=env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or JSON_TYPE,
        log_max_bytes=_int_setting(LOG_MAX_BYTES_VAR, env.get(LOG_MAX_BYTES_VAR), 0,
                                   MIN_LOG_MAX_BYTES, 2**50, allow_zero=True),
        model_sha256=_sha256_setting(env.get(MODEL_SHA256_VAR)))


def _int_setting(name: str, raw: Any, default: int, low: int, high: int,
                 allow_zero: bool = False) -> int:
    if raw is None or raw == "":
        return default
    allowed = f"{'0 (off) or ' if allow_zero else ''}from {low} to {high}"
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise StartupError(f"{name} must be a whole number {allowed}, got {raw!r}") from None
    if not (low <= value <= high or (allow_zero and value == 0)):
        raise StartupError(f"{name} must be {allowed}, got {value}")
    return value


def _sha256_setting(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if not _SHA256.fullmatch(value):
        raise StartupError(f"{MODEL_SHA256_VAR} must be 64 hex digits (a sha256), got {raw!r}")
    return value


def _submit_dir(env: Mapping[str, str], model_dir: Path) -> Path:
    configured = env.get("SAGEMAKER_SUBMIT_DIRECTORY")
    if configured:
        if "://" in configured:  # training jobs may point at S3; serving needs the files here
            raise StartupError(f"SAGEMAKER_SUBMIT_DIRECTORY={configured} is not a local "
                               "directory: put the handler code in the model archive's code/")
        return Path(configured)
    bundled = model_dir / "code"
    return bundled if bundled.is_dir() else BUILTIN_HANDLERS_DIR


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU limits set on the container
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --- start-up ---------------------------------------------------------------------------------

def verify_model_file(model_dir: Path, expected: str | None) -> str:
    """Refuse a model.joblib whose sha256 is not the registered one: unpickling runs code."""
    if expected is None:
        return f"not checked ({MODEL_SHA256_VAR} not set)"
    path = model_dir / MODEL_FILE
    try:
        with open(path, "rb") as handle:
            actual = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise StartupError(f"cannot check {path} against {MODEL_SHA256_VAR}: {exc}") from None
    if actual != expected:
        raise StartupError(f"{path} has sha256 {actual}, not the {expected} registered in "
                           f"{MODEL_SHA256_VAR}: the model file was changed or replaced; "
                           "refusing to unpickle it")
    return "sha256 verified"


def load_model(handlers: Handlers, model_dir: Path) -> Any:
    if not model_dir.is_dir():
        raise StartupError(f"the model directory {model_dir} does not exist")
    try:
        return handlers.model_fn(str(model_dir))
    except Exception as exc:
        raise StartupError(f"model_fn in {handlers.source} could not load the model from "
                           f"{model_dir}: {handler_loader.describe_exception(exc)}") from exc


def check_port_free(host: str, port: int) -> None:
    """Fail at once, with one line, when the port is taken (granian would log a traceback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc}") from None


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_native_threads(env: Mapping[str, str]) -> str:
    """One BLAS/OpenMP thread per worker, unless the environment says otherwise.

    Workers are processes, one per CPU by default: a BLAS thread pool per worker (OpenBLAS
    starts one thread per CPU) would put CPUs x CPUs spinning threads on CPUs-many cores once a
    model is large enough for BLAS to go parallel. The usual setting for pre-fork servers; it is
    set in the master before fork, so every worker inherits it.
    """
    configured = [f"{name}={env[name]}" for name in _THREAD_VARS if env.get(name)]
    if configured:
        return ", ".join(configured)
    try:
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency
    except ImportError:  # pragma: no cover - scikit-learn always brings it
        return "default"
    threadpool_limits(limits=1)
    return "1"


def describe_model(model: Any) -> str:
    estimator = getattr(model, "estimator", model)  # inference.py wraps the estimator
    steps = getattr(estimator, "steps", None)
    name = " -> ".join(type(step).__name__ for _, step in steps) if steps else \
        type(estimator).__name__
    n_features = getattr(estimator, "n_features_in_", None)
    return f"{name}, {n_features} features" if n_features is not None else name


# --- logging ----------------------------------------------------------------------------------

_stamp_cache: tuple[int, str] = (0, "")


def _stamp(when: float | None = None) -> str:
    """The log time stamp of `when` (default: now), formatted once per second, not per line."""
    global _stamp_cache
    now = int(time.time() if when is None else when)
    if _stamp_cache[0] != now:
        _stamp_cache = (now, time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(now)))
    return _stamp_cache[1]


_pid = os.getpid()  # read once per process: os.getpid() is a system call


def _remember_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_remember_pid)  # granian forks the workers


def log_line(text: str, stream: int = 1) -> None:
    """One unbuffered write per line, after the request lines still waiting (RequestLog)."""
    REQUEST_LOG.flush()
    if _log_cap is not None:  # before the write, so the newest line (a traceback?) always stays
        _log_cap.enforce()
    _write_line(stream, text)


def _write_line(fd: int, text: str) -> None:
    os.write(fd, _line(text))


def _line(text: str, when: float | None = None) -> bytes:
    return f"[{_stamp(when)}] [{_pid}] {text}\n".encode("utf-8", "replace")


class RequestLog:
    """The one line per request, kept as a tuple and written a batch of lines at a time.

    Why not a line written per request: measured with one pinned worker at 1 row, formatting the
    line cost ~5% of the requests answered and writing it ~4% (in the write the worker lets go of
    the GIL, and granian's I/O threads, waiting for it, take it); formatted in a batch and written
    in a few writes, the lines cost a fraction of that. A write holds whole lines, at most PIPE_BUF
    bytes (unless one line is longer), so that it is atomic on the pipe stdout is in the container:
    lines of several workers never interleave.

    Only the worker's event loop thread touches `pending` (a lock per request cost another ~3%,
    measured), so lines wait at most BATCH requests or one tick of the watchdog thread (1 s at
    most), which asks the loop to write what is pending; log_line writes them before its own line,
    and a worker before it exits (__rsgi_del__, or the watchdog before it ends a stuck worker,
    whose loop thread is stuck in a handler, not here).
    """

    BATCH = 32  # lines: ~2-3 KB of usual lines

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        # (perf_counter at start, at the answer, method, path, status, error detail)
        self.pending: list[tuple[float, float, str, str, int, str | None]] = []

    def add(self, started: float, method: str, path: str, status: int,
            detail: str | None) -> None:
        pending = self.pending
        pending.append((started, time.perf_counter(), method, path, status, detail))
        if len(pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        wall_clock = time.time() - time.perf_counter()  # turns perf_counter readings into times
        lines = [_line(f"{method} {path} {status} {(answered - started) * 1000:.2f} ms"
                       f"{f' - {detail}' if detail else ''}", wall_clock + answered)
                 for started, answered, method, path, status, detail in self.pending]
        self.pending.clear()
        if _log_cap is not None:
            _log_cap.enforce()
        for batch in _batches(lines, select.PIPE_BUF):
            os.write(self.fd, batch)


def _batches(lines: list[bytes], limit: int) -> list[bytes]:
    """The lines joined into as few pieces as possible of at most `limit` bytes (or one line)."""
    batches, current, size = [], [], 0
    for line in lines:
        if current and size + len(line) > limit:
            batches.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        batches.append(b"".join(current))
    return batches


REQUEST_LOG = RequestLog()


class LogCap:
    """Keeps the log file that `fd` appends to under `max_bytes` (a local server runs for days).

    Past the limit the file is emptied, then gets a note and the start-up line again. Emptying is
    safe only because every process writes with O_APPEND (each write lands at the current end, so
    nobody leaves a hole), and `lockf` (a per-process lock, unlike flock, which the forked workers
    would share) stops two workers from emptying it twice. Keeping the tail instead would need
    the file's path and a copy; emptying keeps the cost at one fstat per line.
    """

    def __init__(self, fd: int, max_bytes: int, first_line: str = "") -> None:
        self.fd = fd
        self.max_bytes = max_bytes
        self.first_line = first_line

    @classmethod
    def for_fd(cls, fd: int, max_bytes: int) -> LogCap | None:
        """A cap when `fd` is a regular file opened for appending; None for pipes and the like."""
        if max_bytes <= 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            return None  # truncating under a writer's own offset would leave a hole of zeros
        return cls(fd, max_bytes)

    def enforce(self) -> None:
        if os.fstat(self.fd).st_size <= self.max_bytes:
            return
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(self.fd).st_size
            if size > self.max_bytes:  # not already emptied by another worker
                os.ftruncate(self.fd, 0)
                _write_line(self.fd, f"log emptied at {size:,} bytes ({LOG_MAX_BYTES_VAR}="
                                     f"{self.max_bytes}); earlier lines were dropped")
                if self.first_line:
                    _write_line(self.fd, self.first_line)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)


_log_cap: LogCap | None = None  # set in the master before fork: every worker inherits it


def _cap_stdout(max_bytes: int, first_line: str) -> None:
    global _log_cap
    _log_cap = LogCap.for_fd(1, max_bytes)
    if _log_cap is not None:
        _log_cap.first_line = first_line
    elif max_bytes:
        log_line(f"{LOG_MAX_BYTES_VAR} ignored: stdout is not a file opened for appending")


# --- main -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args, env)
        handlers = handler_loader.load_handlers(settings.submit_dir, settings.program)
        integrity = verify_model_file(settings.model_dir, settings.model_sha256)
        model = load_model(handlers, settings.model_dir)
        blas_threads = limit_native_threads(env)
        check_port_free(settings.host, settings.port)
    except (StartupError, HandlerError) as exc:
        log_line(f"model server: cannot start: {exc}", stream=2)
        return 1
    app = InferenceApp(handlers, model, settings.default_accept, workers=settings.workers,
                       timeout=settings.timeout)
    ready = (f"model server ready: {describe_model(model)} from {settings.model_dir}, handlers "
             f"{handlers.source} ({', '.join(handlers.provided)}), {settings.workers} worker(s) "
             f"on http://{settings.host}:{settings.port}, timeout {settings.timeout} s, "
             f"{blas_threads} native thread(s) per worker, {MODEL_FILE} {integrity}")
    _cap_stdout(settings.log_max_bytes, ready)
    log_line(ready)
    code = GranianServer(app, settings).run()
    log_line(f"model server stopped (exit code {code})")
    return code


# --- the app ----------------------------------------------------------------------------------

# Request and Answer are built per request: plain slotted dataclasses, not frozen ones, whose
# __init__ goes through object.__setattr__ per field (measured: 770 vs 170 ns each). Only
# read_body sets a field (the body, once read).
@dataclass(slots=True)
class Request:
    """What the app needs of an HTTP request; `body` only once it was read."""

    method: str
    path: str
    content_type: str = JSON_TYPE
    accept: str = ""
    content_length: str = ""  # as sent; "" when absent (chunked)
    body: bytes = b""


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    detail: str | None = None  # the error message, for the request log
    allow: str | None = None  # for 405

    def headers(self) -> list[tuple[str, str]]:
        if self.content_type == JSON_TYPE and not self.allow:
            return _JSON_HEADERS  # the usual answer: granian only reads the list
        headers = [("content-type", self.content_type)]
        if self.allow:
            headers.append(("allow", self.allow))
        return headers


_JSON_HEADERS = [("content-type", JSON_TYPE)]


def error_answer(status: int, message: str, allow: str | None = None) -> Answer:
    return Answer(status, _json({"error": message}), detail=message, allow=allow)


_PING = Answer(200, _json({"status": "healthy"}))
_ROUTES = {"/ping": "GET", "/invocations": "POST", "/execution-parameters": "GET"}


class InferenceApp:
    """Routes, size limit, the handlers, errors as JSON answers, request log; granian's RSGI app.

    `refuse` and `respond` are plain functions of a `Request` (tests call them directly);
    `__rsgi__` only reads the request off the connection and writes the answer back.
    """

    def __init__(self, handlers: Handlers, model: Any, default_accept: str = JSON_TYPE,
                 max_body_bytes: int = MAX_BODY_BYTES, workers: int = 1,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.handlers = handlers
        self.model = model
        self.default_accept = default_accept
        self.max_body_bytes = max_body_bytes
        self.workers = workers
        self.timeout = timeout
        # Built here, started in each worker (a thread does not survive fork). Until it runs
        # (in-process tests) it only records, and nothing times out.
        self.watchdog = Watchdog(timeout)
        self.loop: Any = None  # the worker's event loop, once granian hands it over

    # granian's hooks: once per worker process at start and at exit, and once per request
    def __rsgi_init__(self, loop: Any) -> None:
        self.loop = loop
        self.watchdog.loop = loop
        self.watchdog.start()
        log_line(f"worker started (pid {os.getpid()})")

    def __rsgi_del__(self, _loop: Any) -> None:
        REQUEST_LOG.flush()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        started = time.perf_counter()
        request = request_from_scope(scope)
        answer = self.refuse(request)
        if answer is None:
            answer = await self.read_body(request, protocol)
        if isinstance(answer, Request):
            watchdog = self.watchdog  # inline, not a context manager: this runs per request
            watchdog.protocol = protocol
            watchdog.busy_since = time.monotonic()
            try:
                answer = self.respond(answer)
            finally:
                watchdog.busy_since = None
                watchdog.protocol = None
        try:
            protocol.response_bytes(answer.status, answer.headers(), answer.body)
        except RuntimeError:  # the watchdog answered 504 already, or the client left
            return
        self.log(request, answer, started)

    def log(self, request: Request, answer: Answer, started: float) -> None:
        REQUEST_LOG.add(started, request.method, request.path, answer.status, answer.detail)

    def refuse(self, request: Request) -> Answer | None:
        """The answer for a request refused before its body is read; None to go on."""
        allowed = _ROUTES.get(request.path)
        if allowed is None:
            return error_answer(404, f"No route {request.path}: use GET /ping or POST "
                                     "/invocations")
        if request.method != allowed and not (request.method == "HEAD" and allowed == "GET"):
            return error_answer(405, f"{request.path} accepts {allowed}, not {request.method}",
                                allow=allowed)
        if not request.content_length:
            return None
        try:
            length = int(request.content_length)
        except ValueError:
            return error_answer(400, f"Content-Length {request.content_length!r} is not a number")
        return self.too_large(length) if length > self.max_body_bytes else None

    async def read_body(self, request: Request, protocol: Any) -> Request | Answer:
        """The request with its body, or 413/408: never more than the limit, never past timeout.

        The watchdog cancels a read past its deadline. Not `asyncio.timeout`: its timer handle
        on the loop cost about as much as the rest of the RSGI path at 1 row (measured); a
        deadline in a dict costs under a microsecond.
        """
        if request.method != "POST":
            return request
        task = asyncio.current_task(self.loop)  # with the loop: no getpid() system call
        reading = self.watchdog.reading
        reading[task] = time.monotonic() + self.timeout
        try:
            if request.content_length:  # granian stops at Content-Length, checked above
                body = await protocol()
            else:  # chunked: count as it arrives, stop one byte past the limit
                body = await self._read_chunked(protocol)
        except asyncio.CancelledError:
            if not self.watchdog.took_back(task):
                raise  # not ours: the server is stopping
            return error_answer(408, f"The request body did not arrive within {self.timeout} s "
                                     "(SAGEMAKER_MODEL_SERVER_TIMEOUT)")
        finally:
            reading.pop(task, None)
        if body is None:
            return self.too_large(None)
        request.body = body
        return request

    async def _read_chunked(self, protocol: Any) -> bytes | None:
        chunks, size = [], 0
        async for chunk in protocol:
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def respond(self, request: Request) -> Answer:
        """The answer to a routed request whose body has been read; never raises."""
        try:
            if request.path == "/invocations":
                return self.invoke(request)
            if request.path == "/ping":
                return _PING
            return self.execution_parameters()
        except Exception as exc:  # a bug of ours must still be a JSON answer
            return self.handler_error(HandlerFault(f"{type(exc).__name__}: {exc}"), exc)

    def execution_parameters(self) -> Answer:
        """The handler module's execution_parameters_fn (as AWS's container), else ours."""
        if self.handlers.execution_parameters is None:
            return Answer(200, _json({"MaxConcurrentTransforms": self.workers,
                                      "BatchStrategy": "MULTI_RECORD",
                                      "MaxPayloadInMB": self.max_body_bytes // (1024 * 1024)}))
        try:
            result = self.handlers.execution_parameters()
            status, payload, payload_type = handler_loader.normalize_output(result, JSON_TYPE)
        except Exception as exc:  # a broken execution_parameters_fn is a fault, not bad input
            return self.handler_error(HandlerFault(f"execution_parameters_fn failed: "
                                                   f"{type(exc).__name__}: {exc}"), exc)
        return Answer(status, payload, payload_type)

    def invoke(self, request: Request) -> Answer:
        accept = request.accept.strip()
        if not accept or accept == "*/*":
            accept = self.default_accept
        content = handler_loader.request_content(request.body, request.content_type)
        try:
            result = self.handlers.transform(self.model, content, request.content_type, accept)
            status, payload, payload_type = handler_loader.normalize_output(result, accept)
        except Exception as exc:  # every handler error becomes an answer; the worker lives on
            return self.handler_error(exc)
        return Answer(status, payload, payload_type)

    def too_large(self, length: int | None) -> Answer:
        size = "larger" if length is None else f"{length:,} bytes"
        return error_answer(413, f"The request body is {size}, over the limit of "
                                 f"{self.max_body_bytes:,} bytes (6 MB): send fewer rows per "
                                 "request")

    def handler_error(self, exc: Exception, logged: BaseException | None = None) -> Answer:
        status = handler_loader.status_for(exc)
        if status < 500:
            return error_answer(status, str(exc) or type(exc).__name__)
        log_line("handler fault:\n" + "".join(traceback.format_exception(logged or exc)).rstrip(),
                 stream=2)
        cause = str(exc) if isinstance(exc, HandlerFault) else f"{type(exc).__name__}: {exc}"
        return error_answer(status, f"Internal error while handling the request: {cause}")


def request_from_scope(scope: Any) -> Request:
    headers = scope.headers
    # As AWS's container: the `ContentType` header (sent by some AWS services) wins over
    # `Content-Type`; JSON when neither is set.
    return Request(method=scope.method, path=scope.path or "/",
                   content_type=headers.get("contenttype") or headers.get("content-type")
                   or JSON_TYPE,
                   accept=headers.get("accept") or "",
                   content_length=headers.get("content-length") or "")


class Watchdog(threading.Thread):
    """The per-request timeout, enforced from outside the worker's event loop.

    Body reads: each records its deadline in `reading` (task -> time.monotonic() deadline); one
    past it is cancelled on its own loop and answered 408. Handlers: a worker runs one at a time
    (on its event loop), so one slot (`busy_since`, `protocol`) is enough; a handler busy past
    the timeout gets its request a 504, then the worker exits (Python cannot interrupt the stuck
    function) and granian starts a fresh one from the master's preloaded model. Per request this
    costs a few attribute and dict writes; the thread wakes every min(1 s, timeout / 4), and then
    also writes the request lines still waiting (RequestLog).
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(name="request-timeout-watchdog", daemon=True)
        self.timeout = timeout
        self.busy_since: float | None = None
        self.protocol: Any = None
        self.reading: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()  # cancelled by us, not yet answered 408
        self.loop: Any = None  # the worker's event loop, once it runs
        self.stopped = threading.Event()

    def run(self) -> None:
        tick = min(1.0, self.timeout / 4)
        while not self.stopped.wait(tick):
            if REQUEST_LOG.pending and self.loop is not None:  # lines of a quiet moment: on
                self.loop.call_soon_threadsafe(REQUEST_LOG.flush)  # the loop, their one writer
            now = time.monotonic()
            since, protocol = self.busy_since, self.protocol
            if since is not None and now - since > self.timeout:
                self.expire(protocol)
            overdue = [task for task, deadline in self.reading.copy().items() if deadline < now]
            for task in overdue:  # the loop is free (no handler over time): it runs this soon
                task.get_loop().call_soon_threadsafe(self.cancel_read, task)

    def cancel_read(self, task: asyncio.Task[Any]) -> None:
        """On the task's loop: cancel its body read, unless it has finished meanwhile."""
        if self.reading.pop(task, None) is not None:
            self.expired.add(task)
            task.cancel()

    def took_back(self, task: asyncio.Task[Any]) -> bool:
        """True when this cancellation was the watchdog's (a 408), not the server's."""
        if task not in self.expired:
            return False
        self.expired.discard(task)
        task.uncancel()
        return True

    def expire(self, protocol: Any) -> None:
        stop_listening()  # new connections go to the other workers from now on
        message = (f"The request took longer than {self.timeout} s "
                   "(SAGEMAKER_MODEL_SERVER_TIMEOUT); its worker is being replaced")
        try:
            protocol.response_bytes(504, [("content-type", JSON_TYPE)], _json({"error": message}))
        except RuntimeError:  # the handler answered after all, or the client left
            pass
        log_line(f"request timeout: a handler ran over {self.timeout} s; worker pid "
                 f"{os.getpid()} exits and a new one starts", stream=2)
        time.sleep(0.2)  # let the Rust side write the 504 before the process goes
        os._exit(1)


def stop_listening() -> None:
    """Shut this worker's listening sockets, so that the kernel stops queueing connections here.

    Each worker listens on its own SO_REUSEPORT socket: connections queued on a worker that exits
    are reset (unless net.ipv4.tcp_migrate_req is set, which a container cannot count on).
    granian does not expose the socket, so it is found among the process's descriptors.
    """
    for name in os.listdir("/proc/self/fd"):
        try:
            copy = os.dup(int(name))
        except OSError:  # closed since the listing
            continue
        try:
            probe = socket.socket(fileno=copy)
        except OSError:  # not a socket
            os.close(copy)
            continue
        try:
            if probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                probe.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            probe.close()


# --- granian ----------------------------------------------------------------------------------

_GRANIAN_LOG = {
    "formatters": {"generic": {"()": "logging.Formatter",
                               "fmt": "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
                               "datefmt": "%Y-%m-%d %H:%M:%S %z"},
                   "access": {"()": "logging.Formatter", "fmt": "%(message)s"}},
    "handlers": {"console": {"formatter": "generic", "class": "logging.StreamHandler",
                             "stream": "ext://sys.stderr"},
                 "access": {"formatter": "access", "class": "logging.StreamHandler",
                            "stream": "ext://sys.stderr"}},
}


def event_loop() -> Any:
    """uvloop when installed (artifacts/requirements.txt pins it), else asyncio's own loop.

    Measured with `make bench` (2 workers, wrk -c8, 1 row): uvloop runs the RSGI path's
    callbacks, the body futures and the loop's wake-ups from granian's Rust threads for less.
    """
    from granian.constants import Loops

    return Loops.uvloop if importlib.util.find_spec("uvloop") is not None else Loops.asyncio


class GranianServer:
    """granian's process manager and RSGI workers around an app that is already loaded."""

    def __init__(self, app: InferenceApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def run(self) -> int:
        from granian.constants import HTTPModes, Interfaces, RuntimeModes
        from granian.http import HTTP1Settings
        from granian.server.mp import MPServer

        settings = self.settings
        server = MPServer(
            target="model_server:InferenceApp",  # a label only: the loader below returns the app
            address=settings.host, port=settings.port, interface=Interfaces.RSGI,
            workers=settings.workers, loop=event_loop(), http=HTTPModes.http1,
            runtime_mode=RuntimeModes.mt,  # I/O on its own thread: a 504 leaves a stuck worker
            http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT * 1000,
                                         keep_alive=True),
            respawn_failed_workers=True, workers_kill_timeout=GRACEFUL_TIMEOUT,
            log_access=False,  # InferenceApp writes its own line, with the latency in ms
            log_dictconfig=_GRANIAN_LOG, websockets=False)
        app = self.app
        # Workers are forked, so the loader below runs in each worker and returns the app the
        # master built, model included (Python 3.14 would otherwise pick forkserver).
        multiprocessing.set_start_method("fork", force=True)
        try:
            server.serve(target_loader=lambda: app, wrap_loader=False)
        except SystemExit as stop:  # granian exits 1 when it gives up on crashing workers
            return stop.code if isinstance(stop.code, int) else 1
        return 0
