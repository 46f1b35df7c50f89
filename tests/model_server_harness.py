"""Start the real model server (artifacts/serve) as a process on a free loopback port, for tests.

`start_server` runs `python artifacts/serve --host 127.0.0.1 --port P --model-dir DIR` in its own
process group, with stdout and stderr in a log file; `wait_until_healthy` polls GET /ping within a
deadline; `stop_server` sends SIGTERM, waits, and kills the whole group if it must, so no test
leaves a process behind. `http_request` is a tiny http.client wrapper returning (status, headers,
body); `import_artifact` imports a module of artifacts/ for unit tests, as the server would.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import _ISOLATED_VARS, REPO_ROOT

SERVE = REPO_ROOT / "artifacts" / "serve"
START_DEADLINE = 30.0
STOP_DEADLINE = 15.0


@dataclass
class RunningServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_once(self, pattern: str, deadline: float = 5.0) -> str:
        """The log once `pattern` shows in it: request lines are written in batches, within a
        second of the last request (model_server.RequestLog)."""
        until = time.monotonic() + deadline
        while not re.search(pattern, log := self.log):
            if time.monotonic() > until:
                raise AssertionError(f"{pattern!r} not in the log within {deadline} s:\n{log}")
            time.sleep(0.05)
        return log

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return http_request(self.port, method, path, body, headers)


def import_artifact(name: str):
    """Import artifacts/<name>.py as the top-level module `name`, as the server does.

    It is registered in sys.modules (dataclasses and pickles need that) and artifacts/ goes on
    sys.path so its own imports (model_server -> handler_loader) resolve as in the container.
    """
    if name in sys.modules:
        return sys.modules[name]
    directory = str(REPO_ROOT / "artifacts")
    if directory not in sys.path:
        sys.path.append(directory)  # appended: nothing in artifacts/ shadows an installed module
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "artifacts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bundle_model_dir(target: Path, model_file: Path | None = None,
                     inference_file: Path | None = None) -> Path:
    """A model directory in the container's layout: model.joblib + code/inference.py."""
    (target / "code").mkdir(parents=True)
    shutil.copy(model_file or REPO_ROOT / "artifacts" / "model.joblib", target / "model.joblib")
    shutil.copy(inference_file or REPO_ROOT / "artifacts" / "inference.py",
                target / "code" / "inference.py")
    return target


def server_env(model_dir: Path, workers: int = 2, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _ISOLATED_VARS}
    env.update({"SAGEMAKER_SUBMIT_DIRECTORY": str(model_dir / "code"),
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def start_server(model_dir: Path, log_path: Path, env: dict[str, str],
                 port: int | None = None) -> RunningServer:
    port = port or free_port()
    command = [sys.executable, str(SERVE), "--host", "127.0.0.1", "--port", str(port),
               "--model-dir", str(model_dir)]
    with open(log_path, "ab") as log:  # appending, as local mode opens it (the log cap needs it)
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return RunningServer(process, port, log_path)


def wait_until_healthy(server: RunningServer, deadline: float = START_DEADLINE) -> float:
    """Seconds until GET /ping answered 200; raises with the log if the server died or hung."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}:\n{server.log}")
        try:
            if http_request(server.port, "GET", "/ping", timeout=1)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    stop_server(server)
    raise RuntimeError(f"the server did not answer /ping within {deadline} s:\n{server.log}")


def stop_server(server: RunningServer, deadline: float = STOP_DEADLINE) -> int | None:
    """SIGTERM and wait; SIGKILL the process group if that fails. Returns the exit code."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(deadline)
        except subprocess.TimeoutExpired:
            pass
    if group_alive(server.process.pid):
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(5)
    return server.process.returncode


def group_alive(pgid: int) -> bool:
    """Whether any process of the group (the server and its workers) still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a reused id owned by someone else
        return True
    return _has_live_member(pgid)


def _live_processes() -> Iterator[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live process, from /proc; zombies skipped."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces or parentheses: the fields follow the last ')'.
            state, ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if state != "Z":
            yield int(stat.parent.name), int(ppid), int(pgrp)


def _has_live_member(pgid: int) -> bool:
    # killpg(0) also succeeds for zombies; a reaped group has no /proc entries left.
    return any(pgrp == pgid for _, _, pgrp in _live_processes())


def child_pids(pid: int) -> list[int]:
    """The live child processes of `pid` (gunicorn's workers), read from /proc."""
    return [child for child, ppid, _ in _live_processes() if ppid == pid]


def wait_for_children(pid: int, count: int, deadline: float = START_DEADLINE) -> list[int]:
    """The worker pids once `count` of them run (workers boot after the first answers /ping)."""
    started = time.monotonic()
    while len(children := child_pids(pid)) < count and time.monotonic() - started < deadline:
        time.sleep(0.05)
    return children


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None,
                 timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()
