"""Where local endpoints are recorded, and whether their model servers still run.

A local endpoint (`deploy-model.py --instance-type local`) is a model server process on this
machine. Its state lives in `<state dir>/endpoints/<name>/`: `endpoint.json` (name, pid and its
start time, port, URL, package ARN, creation time, server command), `server.log` and the extracted
`model/`. The state dir is `$DEPLOY_MODEL_STATE_DIR`, else
`${XDG_STATE_HOME:-~/.local/state}/deploy_model`.

A recorded pid is trusted only while that process is still our model server: the same pid with the
same start time as recorded at launch, or (for records without it) a command line that runs
`artifacts/serve` on the recorded port. Pids are reused, and stopping an endpoint must never
signal an unrelated process. Records are written atomically, so a reader sees the old record or
the new one, never half of one. This helper knows nothing about deploying
(`modules/local_endpoint.py` does).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.errors import ValidationError
from utils.files import write_text_atomically
from utils.names import is_sagemaker_name

ENDPOINTS_DIR = "endpoints"
RECORD_FILE = "endpoint.json"
LOG_FILE = "server.log"
MODEL_DIR = "model"
SERVER_SCRIPT_MARKER = "artifacts/serve"
CONTAINER_SERVE_COMMAND = "serve"  # the same script on PATH, as the Dockerfile installs it

_HAS_PROC = Path("/proc/self/stat").exists()


def state_dir_from_env(env: Mapping[str, str]) -> Path:
    """The per-user state directory for local endpoints."""
    override = (env.get("DEPLOY_MODEL_STATE_DIR") or "").strip()
    if override:
        return Path(override).expanduser()
    xdg = (env.get("XDG_STATE_HOME") or "").strip()
    base = Path(xdg).expanduser() if xdg else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return base / "deploy_model"


def state_dir_problem(state_dir: Path) -> str | None:
    """Why local endpoints cannot be kept under `state_dir`, or None; checked before any AWS
    call, so a state directory that is a file is a usage error, not a crash after the download."""
    path = Path(state_dir)
    for existing in (path, *path.parents):
        if not existing.exists() and not existing.is_symlink():
            continue
        if not existing.is_dir():
            return f"{existing} is not a directory"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing} is not writable"
        return None
    return None


def endpoints_root(state_dir: Path) -> Path:
    return Path(state_dir) / ENDPOINTS_DIR


def is_valid_local_name(name: str) -> bool:
    # SageMaker's endpoint-name rule, checked here as well because the name becomes a directory
    # name: it must never carry a path separator or `..`.
    return is_sagemaker_name(name)


def endpoint_dir(state_dir: Path, name: str) -> Path:
    """`<state dir>/endpoints/<name>`; refuses names that are not endpoint names."""
    if not is_valid_local_name(name):
        raise ValidationError(
            f"Invalid endpoint name {name!r} for a local endpoint",
            hint="Use 1-63 letters, digits and hyphens, starting and ending with a letter or digit.")
    return endpoints_root(state_dir) / name


@dataclass(frozen=True)
class LocalEndpoint:
    """One `endpoints/<name>/` directory and its record (empty when missing or unreadable)."""

    name: str
    directory: Path
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        pid = self.record.get("pid")
        return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None

    @property
    def port(self) -> int | None:
        port = self.record.get("port")
        return port if isinstance(port, int) and not isinstance(port, bool) else None

    @property
    def url(self) -> str | None:
        return self.record.get("url")

    @property
    def feature_count(self) -> int | None:
        count = self.record.get("feature_count")
        return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 \
            else None

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_FILE

    def is_running(self) -> bool:
        """True only while the recorded pid is still the server this record describes."""
        start_time = self.record.get("pid_start_time")
        return self.pid is not None and is_server_process(
            self.pid, self.port, start_time if isinstance(start_time, str) else None)


def write_record(directory: Path, record: Mapping[str, Any]) -> Path:
    """Write `endpoint.json` atomically: a temp file in the same directory, fsync, rename."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / RECORD_FILE
    write_text_atomically(target, json.dumps(dict(record), indent=2) + "\n")
    return target


def read_record(directory: Path) -> dict[str, Any]:
    """The record in `directory`, or {} when it is missing or unreadable."""
    try:
        data = json.loads((Path(directory) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def find_endpoint(state_dir: Path, name: str) -> LocalEndpoint | None:
    """The local endpoint called `name`, or None (also for names no endpoint can have).

    Reading never cleans up: a stale record (dead server) is kept, with its log, until the
    endpoint is stopped or redeployed, so a user can still see why it died.
    """
    if not is_valid_local_name(name):
        return None
    directory = endpoints_root(state_dir) / name
    if not directory.is_dir():
        return None
    return LocalEndpoint(name, directory, read_record(directory))


def list_endpoints(state_dir: Path) -> list[LocalEndpoint]:
    """Every recorded local endpoint, by name (staging and junk directories skipped)."""
    root = endpoints_root(state_dir)
    if not root.is_dir():
        return []
    found = (find_endpoint(state_dir, entry.name) for entry in sorted(root.iterdir()))
    return [endpoint for endpoint in found if endpoint is not None and endpoint.record]


def remove_endpoint_dir(directory: Path) -> bool:
    """Remove an endpoint's directory (record, log, model); True if something was removed."""
    directory = Path(directory)
    if not directory.exists():
        return False
    shutil.rmtree(directory)
    return True


def read_log_tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a server log ([] if unreadable), read from its last 64 KB only."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Serialise changes to local endpoints (deploy, redeploy, stop) between processes.

    A lock on the `endpoints/` directory itself: nothing to clean up afterwards, and the kernel
    releases it if the holder dies.
    """
    root = endpoints_root(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# --- processes -------------------------------------------------------------------------------

def process_command_line(pid: int) -> list[str] | None:
    """The argv of a live (non-zombie) process, or None when it is gone or a zombie."""
    if not is_process_alive(pid):
        return None
    if _HAS_PROC:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    return _ps_fields(pid, "command")


def is_process_alive(pid: int) -> bool:
    """True if `pid` names a running process (a zombie, exited but not reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return _process_state(pid) not in (None, "Z", "X")


def _process_state(pid: int) -> str | None:
    if _HAS_PROC:
        fields = _proc_stat_fields(pid)
        return fields[0] if fields else None
    fields = _ps_fields(pid, "stat")
    return fields[0][0] if fields else None


def process_start_time(pid: int) -> str | None:
    """When `pid` started (opaque); with the pid it names one process, whatever pids are reused."""
    if _HAS_PROC:
        fields = _proc_stat_fields(pid)
        return fields[19] if fields and len(fields) > 19 else None  # field 22, starttime
    fields = _ps_fields(pid, "lstart")
    return " ".join(fields) if fields else None


def _proc_stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses: field 3 follows the last ')'.
    return stat.rsplit(")", 1)[1].split()


def _ps_fields(pid: int, column: str) -> list[str] | None:
    # No /proc (macOS): ask ps. Splitting on spaces is lossy but enough to find the marker.
    result = subprocess.run(["ps", "-o", f"{column}=", "-p", str(pid)],
                            capture_output=True, text=True, check=False)
    fields = result.stdout.split()
    return fields if result.returncode == 0 and fields else None


def is_server_process(pid: int, port: int | None = None, start_time: str | None = None) -> bool:
    """True if `pid` is still the model server we started.

    With the start time recorded at launch, pid plus start time identify the process exactly (the
    command line may change: gunicorn renames its processes when setproctitle is installed).
    Without it, the command line must run `artifacts/serve` (on `port`, when given).
    """
    argv = process_command_line(pid)
    if argv is None:
        return False
    if start_time is not None:
        return process_start_time(pid) == start_time
    return _runs_serve(argv) and (port is None or _port_argument(argv) == port)


def _runs_serve(argv: list[str]) -> bool:
    for arg in argv[:3]:  # the interpreter, maybe a flag, then the script
        if arg.endswith(SERVER_SCRIPT_MARKER) or os.path.basename(arg) == CONTAINER_SERVE_COMMAND:
            return True
    return False


def _port_argument(argv: list[str]) -> int | None:
    for index, arg in enumerate(argv):
        value = None
        if arg == "--port" and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--port="):
            value = arg.split("=", 1)[1]
        if value is not None:
            return int(value) if value.isascii() and value.isdigit() else None
    return None


@dataclass(frozen=True)
class ServerProcess:
    """A model server found running under a state directory (not necessarily recorded)."""

    pid: int
    start_time: str | None
    endpoint_name: str


def find_server_processes(state_dir: Path) -> list[ServerProcess]:
    """Every model server whose command line serves a model under `<state_dir>/endpoints/<name>/`
    (`--model-dir`, as local mode starts it), session leaders only (its gunicorn workers share
    the leader's process group). Linux (/proc) only: elsewhere, none are found."""
    if not _HAS_PROC:
        return []
    root = endpoints_root(state_dir).resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = process_command_line(pid)
        name = _served_endpoint(argv, root) if argv else None
        if name is None or _session_of(pid) != pid:
            continue
        start_time = process_start_time(pid)
        if process_command_line(pid) == argv:  # still the same process after its start time
            found.append(ServerProcess(pid, start_time, name))
    return found


def _served_endpoint(argv: list[str], root: Path) -> str | None:
    """The endpoint name a server's `--model-dir` lies under, when it lies under `root`."""
    if not _runs_serve(argv):
        return None
    model_dir = next((argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--model-dir"),
                     None)
    if model_dir is None:
        return None
    try:
        relative = Path(os.path.abspath(model_dir)).resolve().relative_to(root)
    except ValueError:
        return None
    name = relative.parts[0] if relative.parts else ""
    return name if is_valid_local_name(name) else None


def _session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None
