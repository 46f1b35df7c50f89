"""`make demo` as a newcomer runs it: the whole workflow offline, and nothing left running after."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import REPO_ROOT
from utils import local_endpoints

pytestmark = pytest.mark.integration

DEMO = REPO_ROOT / "demo" / "run.sh"
OPEN = ("01", "02", "03")  # /proc/net/tcp states ESTABLISHED, SYN_SENT, SYN_RECV
MOTO_LINE = re.compile(r"AWS_ENDPOINT_URL=http://127\.0\.0\.1:(\d+) \(moto, pid (\d+)\)")


def _demo_env(tmp_path) -> dict[str, str]:
    # A hostile shell: real-looking AWS settings that the demo must ignore, not use.
    return {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path), "NO_COLOR": "1",
            "AWS_PROFILE": "production", "AWS_ENDPOINT_URL": "https://sagemaker.example.com",
            "NO_MONITOR": "1", "INSTANCE_TYPE": "ml.p4d.24xlarge"}


def _our_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker` (the demo's private temp dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if marker in cmdline or marker.encode() in environ:
            found.append(cmdline)
    return found


def _wait_until_gone(marker: str, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _our_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@dataclass
class _Server:
    pids: list[int]
    port: int

    def signal(self, signum: int) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def stopped(self) -> bool:
        return all((_stat(pid) or ["gone"])[0] in ("T", "t", "gone") for pid in self.pids)


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, ..."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _demo_servers(tmp_path, seen: list[str]) -> list[_Server]:
    """moto (it shares the demo's process group: itself alone) and the local model server (a
    process group of its own: all of it, workers too)."""
    [(moto_port, moto_pid)] = [m.groups() for line in seen if (m := MOTO_LINE.search(line))]
    [state] = tmp_path.glob("deploy-model-demo.*/state")
    record = local_endpoints.read_record(local_endpoints.endpoint_dir(state, "qc-demo-local"))
    group = [int(pid) for pid in os.listdir("/proc")
             if pid.isdigit() and (stat := _stat(int(pid))) and int(stat[2]) == record["pid"]]
    return [_Server([int(moto_pid)], int(moto_port)), _Server(group, record["port"])]


def _tcp_rows(port: int) -> list[tuple[bool, str, int]]:
    """(server side?, state, bytes received and not yet read) of each TCP socket of a
    connection to 127.0.0.1:`port`, from the kernel's tables."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            for row in handle.read().splitlines()[1:]:
                _, local, remote, state, queues, *_ = row.split()
                if int(local.rsplit(":", 1)[1], 16) == port and state != "0A":  # 0A: LISTEN
                    rows.append((True, state, int(queues.split(":")[1], 16)))
                elif int(remote.rsplit(":", 1)[1], 16) == port:
                    rows.append((False, state, int(queues.split(":")[1], 16)))
    return rows


def _until(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.005)


@contextlib.contextmanager
def _a_request_held(tmp_path, seen: list[str], process: subprocess.Popen) -> Iterator[None]:
    """The demo held in the middle of a request: moto and the model server are stopped (SIGSTOP)
    until one of the demo's scripts has sent a request that a stopped server has not read (step
    4 asks the model server, steps 5 and 6 moto), and continued on leaving. A signal sent inside
    lands on a script that cannot finish first, never on one that is just exiting normally (bash
    drops a SIGINT that its foreground child survived, and the demo would go on).

    A server that had a connection open when it stopped may be answering it already: that one is
    let go at once, and the other holds the next request."""
    servers = _demo_servers(tmp_path, seen)
    try:
        for server in servers:
            server.signal(signal.SIGSTOP)
        _until(lambda: all(server.stopped() for server in servers), process, "the servers stop")
        held = []
        for server in servers:
            if any(state in OPEN for _, state, _ in _tcp_rows(server.port)):
                server.signal(signal.SIGCONT)
            else:
                held.append(server)
        assert held, "both servers were busy when they stopped"
        _until(lambda: any(server_side and state == "01" and unread for server in held
                           for server_side, state, unread in _tcp_rows(server.port)),
               process, "a request waiting at a stopped server")
        yield
    finally:
        for server in servers:
            server.signal(signal.SIGCONT)


def test_demo_runs_the_whole_workflow_and_leaves_nothing_running(tmp_path):
    result = subprocess.run(["bash", str(DEMO)], env=_demo_env(tmp_path), capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in ("1. Package", "2. Deploy", "3. Serve", "4. Test", "5. List", "6. Clean up",
                 "Demo complete"):
        assert step in out
    assert "is InService" in out
    # An emulated deploy has no console page: none is printed, and the override is named.
    assert "Console:   none (an endpoint override is in effect" in out
    assert "console.aws.amazon.com" not in out and "Endpoint override (AWS_ENDPOINT_URL)" in out
    assert "follows the inference contract" in out and "qc_pass" in out
    assert "ml.p4d" not in out + result.stderr  # the hostile INSTANCE_TYPE was not used
    assert _wait_until_gone(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []  # its work directory is gone too


@pytest.mark.parametrize("signum, to_group, code", [
    (signal.SIGINT, True, 130),    # Ctrl-C in a terminal reaches the whole process group
    (signal.SIGTERM, False, 143),  # a CI runner cancelling the job signals the script alone
])
def test_demo_interrupted_stops_everything_it_started(tmp_path, signum, to_group, code):
    process = subprocess.Popen(["bash", str(DEMO)], env=_demo_env(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if "4. Test the local endpoint" in line:  # moto and a model server are both running
                break
        with _a_request_held(tmp_path, seen, process):
            assert _our_processes(str(tmp_path)), "the demo should have servers running by now"
            if to_group:
                os.killpg(process.pid, signum)
            else:
                os.kill(process.pid, signum)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == code, "".join(seen) + rest
    assert "everything it started has been stopped" in rest
    assert _wait_until_gone(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []
