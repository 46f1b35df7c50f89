"""`make demo` as a newcomer runs it: the whole workflow offline, and nothing left running after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

DEMO = REPO_ROOT / "demo" / "run.sh"


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
