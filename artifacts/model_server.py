"""The model server: SageMaker's hosting contract on gunicorn sync workers and a plain WSGI app.

`serve` (next to this file) calls `main()`. It loads the handler module (SAGEMAKER_SUBMIT_DIRECTORY
/ SAGEMAKER_PROGRAM, see handler_loader.py) and the model ONCE, opens the listening socket, and only
then lets gunicorn fork the workers, which inherit both. So a broken model or handler, or a port
in use, stops the start-up with one clear line on stderr and exit code 1, before any worker runs.

Why this stack (measured on a 2-core machine): gunicorn sync workers around
a plain WSGI callable with orjson answered ~3x the requests of nginx + gevent + Flask (AWS's
container) and ~6x those of MLflow's scoring server, with a p99 under 5 ms for one row. Sync
workers close each connection after the answer and gunicorn sets TCP_NODELAY, so there is no
keep-alive Nagle stall (the 44 ms one seen with multi-worker uvicorn).

Routes: GET /ping (200 once the model is loaded, which is before the socket accepts anything),
POST /invocations, GET /execution-parameters (batch transform). Errors are JSON {"error": ...}:
400 bad input, 406 unsupported Accept, 413 body over 6 MB (judged from Content-Length before
reading), 415 unsupported Content-Type, 500 only for real faults; a worker survives them all.
One line per request on stdout: method, path, status, latency in ms.

Settings: flags --host/--port/--model-dir (env SAGEMAKER_BIND_TO_PORT, SM_MODEL_DIR), env
SAGEMAKER_MODEL_SERVER_WORKERS (default: the CPUs this process may use), SAGEMAKER_MODEL_SERVER_TIMEOUT
(60 s per request), SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (application/json). SIGTERM: gunicorn
stops accepting, lets running requests finish (at most GRACEFUL_TIMEOUT s, well inside the 30 s
SageMaker waits before SIGKILL) and exits 0.

MODEL_SERVER_LOG_MAX_BYTES (not a SageMaker variable; local mode sets it) caps a log FILE that
stdout appends to: past that size the file is emptied and starts again with a note and the
start-up line (`LogCap`). In the container stdout is a pipe to CloudWatch and the cap does nothing.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import socket
import stat
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
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
LOG_MAX_BYTES_VAR = "MODEL_SERVER_LOG_MAX_BYTES"
MIN_LOG_MAX_BYTES = 4096  # room for the start-up line and a traceback
JSON_TYPE = "application/json"
BUILTIN_HANDLERS_DIR = Path(__file__).resolve().parent  # the image's own inference.py


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


# --- settings ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serve", description="Serve a model over SageMaker's hosting contract "
        "(GET /ping, POST /invocations).",
        epilog="Environment: SAGEMAKER_SUBMIT_DIRECTORY and SAGEMAKER_PROGRAM locate the handler "
               "module (default: <model-dir>/code/inference.py if present, else the image's own "
               "inference.py); SAGEMAKER_MODEL_SERVER_WORKERS (default: CPU count); "
               "SAGEMAKER_MODEL_SERVER_TIMEOUT (default: 60 s); CLASS_LABELS for inference.py; "
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
                                   MIN_LOG_MAX_BYTES, 2**50, allow_zero=True))


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

def load_model(handlers: Handlers, model_dir: Path) -> Any:
    if not model_dir.is_dir():
        raise StartupError(f"the model directory {model_dir} does not exist")
    try:
        return handlers.model_fn(str(model_dir))
    except Exception as exc:
        raise StartupError(f"model_fn in {handlers.source} could not load the model from "
                           f"{model_dir}: {handler_loader.describe_exception(exc)}") from exc


def open_listener(host: str, port: int) -> socket.socket:
    """Bind before forking so that a port in use fails at once (gunicorn would retry for 5 s)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from None
    return listener


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


def log_line(text: str, stream: int = 1) -> None:
    """One unbuffered write per line: lines from several workers never interleave."""
    if _log_cap is not None:  # before the write, so the newest line (a traceback?) always stays
        _log_cap.enforce()
    _write_line(stream, text)


def _write_line(fd: int, text: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
    os.write(fd, f"[{stamp}] [{os.getpid()}] {text}\n".encode("utf-8", "replace"))


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


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args, env)
        handlers = handler_loader.load_handlers(settings.submit_dir, settings.program)
        model = load_model(handlers, settings.model_dir)
        blas_threads = limit_native_threads(env)
        listener = open_listener(settings.host, settings.port)
    except (StartupError, HandlerError) as exc:
        log_line(f"model server: cannot start: {exc}", stream=2)
        return 1
    app = InferenceApp(handlers, model, settings.default_accept, workers=settings.workers)
    ready = (f"model server ready: {describe_model(model)} from {settings.model_dir}, handlers "
             f"{handlers.source} ({', '.join(handlers.provided)}), {settings.workers} sync "
             f"worker(s) on http://{settings.host}:{settings.port}, timeout {settings.timeout} s, "
             f"{blas_threads} native thread(s) per worker")
    _cap_stdout(settings.log_max_bytes, ready)
    GunicornServer(app, settings, listener, ready).run()  # exits the process when stopped
    return 0


def _cap_stdout(max_bytes: int, first_line: str) -> None:
    global _log_cap
    _log_cap = LogCap.for_fd(1, max_bytes)
    if _log_cap is not None:
        _log_cap.first_line = first_line
    elif max_bytes:
        log_line(f"{LOG_MAX_BYTES_VAR} ignored: stdout is not a file opened for appending")


# --- the WSGI app -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    detail: str | None = None  # the error message, for the request log
    allow: str | None = None  # for 405


def error_answer(status: int, message: str) -> Answer:
    return Answer(status, _json({"error": message}), detail=message)


_PING = Answer(200, _json({"status": "healthy"}))
_ROUTES = {"/ping": "GET", "/invocations": "POST", "/execution-parameters": "GET"}


class InferenceApp:
    """The WSGI callable: routes, size limit, the handlers, errors as JSON answers, request log."""

    def __init__(self, handlers: Handlers, model: Any, default_accept: str = JSON_TYPE,
                 max_body_bytes: int = MAX_BODY_BYTES, workers: int = 1) -> None:
        self.handlers = handlers
        self.model = model
        self.default_accept = default_accept
        self.max_body_bytes = max_body_bytes
        self.workers = workers

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        answer = self.route(method, path, environ)
        headers = [("Content-Type", answer.content_type), ("Content-Length", str(len(answer.body)))]
        if answer.allow:
            headers.append(("Allow", answer.allow))
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", headers)
        elapsed_ms = (time.perf_counter() - started) * 1000
        note = f" - {answer.detail}" if answer.detail else ""
        log_line(f"{method} {path} {answer.status} {elapsed_ms:.2f} ms{note}")
        return [answer.body]

    def route(self, method: str, path: str, environ: dict) -> Answer:
        allowed = _ROUTES.get(path)
        if allowed is None:
            return error_answer(404, f"No route {path}: use GET /ping or POST /invocations")
        if method != allowed and not (method == "HEAD" and allowed == "GET"):
            answer = error_answer(405, f"{path} accepts {allowed}, not {method}")
            return Answer(answer.status, answer.body, detail=answer.detail, allow=allowed)
        if path == "/invocations":
            return self.invoke(environ)
        if path == "/ping":
            return _PING
        return Answer(200, _json({"MaxConcurrentTransforms": self.workers,
                                  "BatchStrategy": "MULTI_RECORD",
                                  "MaxPayloadInMB": self.max_body_bytes // (1024 * 1024)}))

    def invoke(self, environ: dict) -> Answer:
        body = self.read_body(environ)
        if isinstance(body, Answer):
            return body
        # As AWS's container: the `ContentType` header (sent by some AWS services) wins over
        # `Content-Type`; JSON when neither is set.
        content_type = environ.get("HTTP_CONTENTTYPE") or environ.get("CONTENT_TYPE") or JSON_TYPE
        accept = environ.get("HTTP_ACCEPT", "").strip()
        if not accept or accept == "*/*":
            accept = self.default_accept
        content = handler_loader.request_content(body, content_type)
        try:
            result = self.handlers.transform(self.model, content, content_type, accept)
            status, payload, payload_type = handler_loader.normalize_output(result, accept)
        except Exception as exc:  # every handler error becomes an answer; the worker lives on
            return self.handler_error(exc)
        return Answer(status, payload, payload_type)

    def read_body(self, environ: dict) -> bytes | Answer:
        raw_length = environ.get("CONTENT_LENGTH") or ""
        if raw_length:
            try:
                length = int(raw_length)
            except ValueError:
                return error_answer(400, f"Content-Length {raw_length!r} is not a number")
            if length > self.max_body_bytes:  # refused before a byte of the body is read
                return self.too_large(length)
            return environ["wsgi.input"].read(length)
        body = environ["wsgi.input"].read(self.max_body_bytes + 1)  # chunked: read one past
        return self.too_large(None) if len(body) > self.max_body_bytes else body

    def too_large(self, length: int | None) -> Answer:
        size = "larger" if length is None else f"{length:,} bytes"
        return error_answer(413, f"The request body is {size}, over the limit of "
                                 f"{self.max_body_bytes:,} bytes (6 MB): send fewer rows per "
                                 "request")

    def handler_error(self, exc: Exception) -> Answer:
        status = handler_loader.status_for(exc)
        if status < 500:
            return error_answer(status, str(exc) or type(exc).__name__)
        log_line("handler fault:\n" + "".join(traceback.format_exception(exc)).rstrip(), stream=2)
        cause = str(exc) if isinstance(exc, HandlerFault) else f"{type(exc).__name__}: {exc}"
        return error_answer(status, f"Internal error while handling the request: {cause}")


# --- gunicorn ---------------------------------------------------------------------------------

def _gunicorn_base() -> type:
    from gunicorn.app.base import BaseApplication

    return BaseApplication


class GunicornServer:
    """gunicorn's arbiter and sync workers around an app that is already loaded."""

    def __init__(self, app: InferenceApp, settings: Settings, listener: socket.socket,
                 ready_line: str) -> None:
        self.app = app
        self.options = {
            "bind": [f"fd://{listener.detach()}"],  # gunicorn adopts the socket opened above
            "workers": settings.workers,
            "worker_class": "sync",
            "timeout": settings.timeout,
            "graceful_timeout": min(GRACEFUL_TIMEOUT, settings.timeout),
            "preload_app": True,  # the model is loaded once, in the master, before fork
            "control_socket_disable": True,  # gunicorn >= 25 would share a socket under $HOME
            "accesslog": None,  # InferenceApp writes its own line, with the latency in ms
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "model-server",
            "when_ready": lambda _arbiter: log_line(ready_line),
        }
        if os.path.isdir("/dev/shm"):  # workers' heartbeat files in memory, not on a slow disk
            self.options["worker_tmp_dir"] = "/dev/shm"

    def run(self) -> None:
        app, options = self.app, self.options

        class _Application(_gunicorn_base()):
            def load_config(self) -> None:
                for key, value in options.items():
                    self.cfg.set(key, value)

            def load(self) -> InferenceApp:
                return app

        _Application().run()
