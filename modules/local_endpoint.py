"""Local mode: serve a registered model package on this machine, without Docker.

`deploy_local` does what SageMaker does for a real endpoint, with the same model server that runs
in the container (`artifacts/serve`, started as a plain process):

1. describe the package and take its container's `ModelDataUrl` and `Environment`;
2. download the tarball from S3 and check it against the registered `MODEL_SHA256` before anything
   in it is extracted or unpickled;
3. extract it safely (no absolute paths, no `..`, no links out, no device files, and at most
   MAX_ARCHIVE_MEMBERS entries and MAX_EXTRACTED_BYTES in all: no tar bomb);
4. start the server on a free 127.0.0.1 port in its own session (it outlives this CLI) and wait
   for `GET /ping` to answer 200 within the deadline;
5. record the endpoint atomically (`utils/local_endpoints.py`).

A redeploy to the same name starts and checks the new server first, then points the record at
it, then stops the old one, so the name always answers. Whatever fails, this run's process and
files are removed again, as a failed AWS deploy is rolled back.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from modules.bundle_artifacts import file_sha256
from modules.deploy_package import check_package_deployable, describe_package
from modules.deploy_settings import LOCAL_SERVER_ENV_VARS
from modules.upload_artifacts import parse_s3_uri
from utils import local_endpoints, output
from utils.errors import AwsError, DeploymentFailed, DeployModelError, DeployTimeout, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVE_SCRIPT = REPO_ROOT / "artifacts" / "serve"
LOCAL_HOST = "127.0.0.1"
LOCAL_WORKERS = 2  # enough for a laptop or CI runner; the container uses one per CPU
STOP_GRACE_SECONDS = 10.0
LOG_TAIL_LINES = 30
PING_INTERVAL_SECONDS = 0.1
PORT_ATTEMPTS = 3
DEFAULT_PROGRAM = "inference.py"
# A tar bomb (a small archive of huge or countless files) must not fill the disk: far above any
# model this tool bundles (a linear model is kilobytes), far below a typical free disk.
MAX_EXTRACTED_BYTES = 4 * 1024**3
MAX_ARCHIVE_MEMBERS = 10_000
# server.log is appended to for as long as the server runs (one line per request): the server
# empties it past this size (artifacts/model_server.py, LogCap).
SERVER_LOG_MAX_BYTES = 10 * 1024**2

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_PORT_IN_USE = ("Address already in use", "[Errno 98]", "[Errno 48]")


@dataclass(frozen=True)
class PackageContainer:
    model_package_arn: str
    model_data_url: str
    environment: dict[str, str]
    expected_sha256: str
    feature_count: int | None = None  # kept in the record for test_endpoint.py's hints


@dataclass
class StartedServer:
    process: subprocess.Popen
    port: int
    command: list[str]

    @property
    def url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}"


# --- public API -------------------------------------------------------------------------------

def deploy_local(sagemaker_client: Any, s3_client: Any, *, endpoint_name: str,
                 model_package_arn: str, state_dir: Path, timeout: float,
                 inherited_env: Mapping[str, str]) -> dict:
    """Serve `model_package_arn` locally as `endpoint_name`; the result document (with `url`).
    The server sees the package's Environment plus the LOCAL_SERVER_ENV_VARS of
    `inherited_env` (the caller's environment, read at the edge)."""
    started = time.monotonic()
    deadline = started + timeout
    directory = local_endpoints.endpoint_dir(state_dir, endpoint_name)
    container = describe_package_container(sagemaker_client, model_package_arn)
    output.print_section(f"Local endpoint {endpoint_name}")
    with local_endpoints.state_lock(state_dir):
        previous = local_endpoints.find_endpoint(state_dir, endpoint_name)
        try:
            server, record, replaced = _deploy_new_server(s3_client, container, directory,
                                                          previous, deadline, inherited_env)
        except DeployModelError as error:
            if previous is not None and previous.is_running():
                error.hints.insert(0, f"{endpoint_name} still serves its previous model at "
                                      f"{previous.url}.")
            raise
    action = "updated" if replaced else "created"
    elapsed = time.monotonic() - started
    output.print_success(f"Local endpoint {endpoint_name} is InService at {server.url} "
                         f"(pid {server.process.pid}, {output.format_duration(elapsed)})")
    return {"endpoint_name": endpoint_name, "status": "InService", "action": action,
            "url": server.url, "port": server.port, "pid": server.process.pid,
            "model_package_arn": model_package_arn, "model_data_url": container.model_data_url,
            "endpoint_dir": str(directory),
            "log_file": str(directory / local_endpoints.LOG_FILE),
            "created_at": record["created_at"], "elapsed_seconds": round(elapsed, 2)}


def stop_local_endpoint(endpoint_name: str, state_dir: Path) -> dict | None:
    """Stop a local endpoint's server and remove its state; None when there is no such endpoint.

    A stale record (its server already gone) is removed too and reported with `was_running` False.
    """
    if local_endpoints.find_endpoint(state_dir, endpoint_name) is None:
        return None
    with local_endpoints.state_lock(state_dir):
        endpoint = local_endpoints.find_endpoint(state_dir, endpoint_name)
        if endpoint is None:
            return None
        if not endpoint.record:  # leftovers of an interrupted run: no endpoint to report
            local_endpoints.remove_endpoint_dir(endpoint.directory)
            return None
        was_running = endpoint.is_running()
        if was_running:
            stop_server(endpoint.pid)
        local_endpoints.remove_endpoint_dir(endpoint.directory)
    return {"endpoint_name": endpoint_name, "pid": endpoint.pid, "port": endpoint.port,
            "url": endpoint.url, "model_package_arn": endpoint.record.get("model_package_arn"),
            "was_running": was_running, "endpoint_dir": str(endpoint.directory), "removed": True}


# --- the package ------------------------------------------------------------------------------

def describe_package_container(sagemaker_client: Any, model_package_arn: str) -> PackageContainer:
    """The package's first container, checked for what local serving needs."""
    # The same refusals, messages and exit codes as an AWS deploy (not found, not Approved or
    # Completed), then what local serving needs on top: model data and its checksum.
    package = describe_package(sagemaker_client, model_package_arn)
    check_package_deployable(package)
    if not package.model_data_url:
        raise ValidationError(f"Model package {model_package_arn} has no model data (ModelDataUrl)",
                              hint="Re-register it with utils/package-model.py.")
    environment = {str(k): str(v) for k, v in package.environment.items()}
    return PackageContainer(model_package_arn, package.model_data_url, environment,
                            _expected_sha256(environment, model_package_arn),
                            package.feature_count)


def _expected_sha256(environment: Mapping[str, str], model_package_arn: str) -> str:
    value = environment.get("MODEL_SHA256", "").strip()
    if not _SHA256.fullmatch(value):
        problem = "has no MODEL_SHA256" if not value else f"has a malformed MODEL_SHA256 {value!r}"
        raise ValidationError(
            f"Model package {model_package_arn} {problem} in its container Environment",
            details=["Local mode checks the model archive against it before unpickling anything."],
            hint="Re-package the model with utils/package-model.py, which records the checksum.")
    return value.lower()


def download_model_archive(s3_client: Any, model_data_url: str, destination: Path) -> Path:
    """Download the package's model.tar.gz with boto3's transfer manager."""
    from botocore.exceptions import ClientError

    bucket, key = parse_s3_uri(model_data_url, "S3 object URI (the package's ModelDataUrl)")
    output.print_info(f"Downloading {model_data_url}")
    try:
        s3_client.download_file(bucket, key, str(destination))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchKey", "NoSuchBucket"}:
            raise AwsError(f"The package's model archive is missing: {model_data_url}",
                           hint="Re-package the model with utils/package-model.py.") from None
        raise
    output.print_info(f"Downloaded {output.format_bytes(destination.stat().st_size)}")
    return destination


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse an archive whose sha256 differs from the registered one (before any unpickling)."""
    actual = file_sha256(path)
    if actual != expected.lower():
        raise DeploymentFailed(
            "The model archive does not match the checksum registered with the package",
            details=[f"registered MODEL_SHA256: {expected.lower()}", f"downloaded archive:    {actual}"],
            hint="The S3 object was changed after registration. Re-package the model with "
                 "utils/package-model.py and deploy the new package.")
    output.print_info(f"sha256 verified: {actual}")


# --- safe extraction --------------------------------------------------------------------------

def extract_model_archive(archive: Path, destination: Path) -> int:
    """Extract a model.tar.gz into `destination`; the number of entries extracted.

    Every entry is checked before anything is written: only regular files and directories under
    relative paths, each name once. Links are refused outright, never resolved: bundles need none,
    and a symlink chain defeats the "data" filter of Pythons without the CVE-2025-4517 fix (3.11.7
    here), so the filter is a second layer only, not the guard.
    """
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _bounded_members(tar)
            problems = [p for p in (_member_problem(m, destination) for m in members) if p]
            problems += _duplicate_problems(members)
            if problems:
                raise DeploymentFailed(
                    "The model archive holds unsafe entries; nothing was extracted",
                    details=problems[:10] + (["..."] if len(problems) > 10 else []),
                    hint="Re-bundle it with utils/package-model.py: only regular files and "
                         "directories under relative paths belong in it.")
            _extract_members(tar, members, destination)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DeploymentFailed(f"The model archive could not be extracted: {exc}",
                               hint="Re-package the model with utils/package-model.py.") from None
    return len(members)


def _bounded_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's entries, read header by header; refused once they pass the limits.

    Stopping at the limit, rather than after `getmembers()`, also bounds the time spent
    decompressing a bomb.
    """
    members: list[tarfile.TarInfo] = []
    total = 0
    while (member := tar.next()) is not None:
        members.append(member)
        total += member.size
        if len(members) > MAX_ARCHIVE_MEMBERS:
            raise _too_large(f"it holds more than {MAX_ARCHIVE_MEMBERS:,} entries")
        if total > MAX_EXTRACTED_BYTES:
            raise _too_large(f"its first {len(members):,} entries alone hold "
                             f"{output.format_bytes(total)} uncompressed, over the limit of "
                             f"{output.format_bytes(MAX_EXTRACTED_BYTES)}")
    return members


def _too_large(reason: str) -> DeploymentFailed:
    return DeploymentFailed(f"The model archive is too large to extract: {reason}; nothing was "
                            "extracted",
                            hint="A model archive holds model.joblib and code/: re-bundle it "
                                 "with utils/package-model.py.")


def _extract_members(tar: tarfile.TarFile, members: list[tarfile.TarInfo],
                     destination: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, members=members, filter="data")
    else:  # older Pythons: the explicit checks above are the only guard
        tar.extractall(destination, members=members)


def _member_problem(member: tarfile.TarInfo, destination: Path) -> str | None:
    name = member.name
    path = PurePosixPath(name)
    if not name or path.is_absolute() or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        return f"{name!r}: absolute path"
    if ".." in path.parts:
        return f"{name!r}: path leaves the archive ('..')"
    if member.issym() or member.islnk():
        return _link_problem(member, destination)
    if not (member.isfile() or member.isdir()):
        return f"{name!r}: special file (device, FIFO) not allowed"
    return None


def _link_problem(member: tarfile.TarInfo, destination: Path) -> str:
    """Every link is refused; the message says how bad this one is."""
    kind, link = ("symlink" if member.issym() else "hard link"), member.linkname
    if PurePosixPath(link).is_absolute():
        return f"{member.name!r}: {kind} to the absolute path {link!r}"
    # A symlink is relative to its own directory, a hard link to the archive root.
    base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath(".")
    root = os.path.normpath(destination)
    target = os.path.normpath(os.path.join(root, str(base), link))
    if target != root and not target.startswith(root + os.sep):
        return f"{member.name!r}: {kind} points outside the archive ({link!r})"
    return f"{member.name!r}: {kind} to {link!r} (a model archive holds no links)"


def _duplicate_problems(members: list[tarfile.TarInfo]) -> list[str]:
    """A name given twice would let a later entry replace an earlier one after its check."""
    seen: set[str] = set()
    problems = []
    for member in members:
        key = str(PurePosixPath(member.name))
        if key in seen:
            problems.append(f"{member.name!r}: appears more than once")
        seen.add(key)
    return problems


# --- deploying --------------------------------------------------------------------------------

def _deploy_new_server(s3_client: Any, container: PackageContainer, directory: Path,
                       previous: local_endpoints.LocalEndpoint | None,
                       deadline: float, inherited_env: Mapping[str, str]
                       ) -> tuple[StartedServer, dict, bool]:
    """Stage, start and record a new server; on any failure remove exactly what this run made.

    Returns the server, its record, and whether a running server was replaced.
    """
    # A directory without a record is what a killed run left: this run owns (and may remove) it.
    owns_directory = previous is None or not previous.record
    directory.mkdir(parents=True, exist_ok=True)
    _remove_leftover_staging(directory)
    staging = Path(tempfile.mkdtemp(prefix=".next-", dir=directory))
    server: StartedServer | None = None
    committed = False
    try:
        model_dir = _fetch_model(s3_client, container, staging)
        server = start_healthy_server(model_dir, staging / local_endpoints.LOG_FILE,
                                      container.environment, inherited_env, cwd=directory,
                                      deadline=deadline)
        record = _record(directory.name, container, server)
        local_endpoints.write_record(directory, record)
        committed = True  # from here on the new server is the endpoint: never stop it
        replaced = _retire_previous(previous)
        _move_into_place(staging, directory)
        return server, record, replaced
    except BaseException:
        if not committed:
            if server is not None:
                stop_started_server(server)
            local_endpoints.remove_endpoint_dir(directory if owns_directory else staging)
        raise
    finally:
        if committed:
            local_endpoints.remove_endpoint_dir(staging)


def _remove_leftover_staging(directory: Path) -> None:
    # `.next-*` and `.old-*` of a run that was killed outright; we hold the lock, nobody uses them.
    for leftover in [*directory.glob(".next-*"), *directory.glob(".old-*")]:
        local_endpoints.remove_endpoint_dir(leftover)


def _fetch_model(s3_client: Any, container: PackageContainer, staging: Path) -> Path:
    download_dir = staging / "download"
    download_dir.mkdir()
    archive = download_model_archive(s3_client, container.model_data_url,
                                     download_dir / "model.tar.gz")
    verify_sha256(archive, container.expected_sha256)
    model_dir = staging / local_endpoints.MODEL_DIR
    count = extract_model_archive(archive, model_dir)
    local_endpoints.remove_endpoint_dir(download_dir)
    program = container.environment.get("SAGEMAKER_PROGRAM", DEFAULT_PROGRAM)
    if not (model_dir / "code" / program).is_file():
        raise DeploymentFailed(
            f"The model archive has no code/{program} (SAGEMAKER_PROGRAM)",
            hint="Bundle it as model.joblib at the root plus code/inference.py and "
                 "code/requirements.txt (utils/package-model.py does).")
    output.print_info(f"Extracted {count} entries")
    return model_dir


def _record(name: str, container: PackageContainer, server: StartedServer) -> dict:
    return {"endpoint_name": name, "pid": server.process.pid,
            "pid_start_time": local_endpoints.process_start_time(server.process.pid),
            "port": server.port, "url": server.url, "model_package_arn": container.model_package_arn,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "server_command": server.command, "feature_count": container.feature_count}


def _retire_previous(previous: local_endpoints.LocalEndpoint | None) -> bool:
    """Stop the server the record pointed at before (the new one already answers)."""
    if previous is None or not previous.record:
        return False
    if previous.is_running():
        output.print_info(f"Stopping the previous server (pid {previous.pid})")
        stop_server(previous.pid)
        return True
    output.print_info("Replaced a stale record (its server had already stopped)")
    return False


def _move_into_place(staging: Path, directory: Path) -> None:
    """Swap the staged model and log in for the previous ones."""
    trash = directory / f".old-{uuid.uuid4().hex[:8]}"
    trash.mkdir()
    for name in (local_endpoints.MODEL_DIR, local_endpoints.LOG_FILE):
        if (directory / name).exists():
            os.replace(directory / name, trash / name)
        os.replace(staging / name, directory / name)
    local_endpoints.remove_endpoint_dir(trash)


# --- the server process -----------------------------------------------------------------------

def server_environment(package_environment: Mapping[str, str], model_dir: Path,
                       base: Mapping[str, str]) -> dict[str, str]:
    """What the server sees: the package's Environment, pointed at the extracted code."""
    env = {name: base[name] for name in LOCAL_SERVER_ENV_VARS if name in base}
    env.update(package_environment)
    env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(model_dir / "code")
    env["SAGEMAKER_PROGRAM"] = package_environment.get("SAGEMAKER_PROGRAM", DEFAULT_PROGRAM)
    env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(_local_workers(package_environment))
    env["SM_MODEL_DIR"] = str(model_dir)
    env["PYTHONUNBUFFERED"] = "1"  # so the log tail shows the last lines before a crash
    env.setdefault("MODEL_SERVER_LOG_MAX_BYTES", str(SERVER_LOG_MAX_BYTES))
    env.pop("SAGEMAKER_BIND_TO_PORT", None)  # the port is ours to choose
    return env


def _local_workers(package_environment: Mapping[str, str]) -> int:
    raw = package_environment.get("SAGEMAKER_MODEL_SERVER_WORKERS", "")
    # isdigit() alone accepts '²', which int() refuses.
    requested = int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else LOCAL_WORKERS
    return min(requested, LOCAL_WORKERS)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


def start_healthy_server(model_dir: Path, log_path: Path, package_environment: Mapping[str, str],
                         inherited_env: Mapping[str, str], *, cwd: Path,
                         deadline: float) -> StartedServer:
    """Start the server and wait for /ping; retries on a port taken between choosing and binding."""
    if not SERVE_SCRIPT.is_file():
        raise DeploymentFailed(f"The model server is missing: {SERVE_SCRIPT}",
                               hint="Restore artifacts/serve from the repository.")
    env = server_environment(package_environment, model_dir, inherited_env)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        server = _start_server(model_dir, log_path, env, cwd)
        problem = wait_until_healthy(server, deadline)
        if problem is None:
            return server
        stop_started_server(server)
        if attempt < PORT_ATTEMPTS and _port_was_taken(log_path):
            continue
        raise _unhealthy_error(problem, log_path, server)
    raise AssertionError("unreachable")


def _start_server(model_dir: Path, log_path: Path, env: Mapping[str, str], cwd: Path) -> StartedServer:
    port = free_port()
    command = [sys.executable, str(SERVE_SCRIPT), "--host", LOCAL_HOST, "--port", str(port),
               "--model-dir", os.path.abspath(model_dir)]  # absolute: reconcile finds it by it
    output.print_info(f"Starting the model server on {LOCAL_HOST}:{port} "
                      f"({env['SAGEMAKER_MODEL_SERVER_WORKERS']} workers)")
    with open(log_path, "ab") as log:
        # A new session: the server outlives this CLI and Ctrl-C in the terminal does not reach it.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=dict(env), cwd=str(cwd),
                                   start_new_session=True)
    return StartedServer(process, port, command)


def wait_until_healthy(server: StartedServer, deadline: float) -> str | None:
    """None once GET /ping answers 200; otherwise why it never did."""
    while True:
        if server.process.poll() is not None:
            return f"it exited with code {server.process.returncode} during start-up"
        if _ping(server.url):
            return None
        if time.monotonic() >= deadline:
            return "timeout"
        time.sleep(PING_INTERVAL_SECONDS)


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _port_was_taken(log_path: Path) -> bool:
    text = "\n".join(local_endpoints.read_log_tail(log_path, 20))
    return any(marker in text for marker in _PORT_IN_USE)


def _unhealthy_error(problem: str, log_path: Path, server: StartedServer) -> DeployModelError:
    tail = local_endpoints.read_log_tail(log_path, LOG_TAIL_LINES)
    details = [f"Model server log (last {len(tail)} lines of server.log):"]
    details += [f"  | {line}" for line in tail] or ["  (the log is empty)"]
    hints = ["Check the model file and code/inference.py in the package (model_fn must load "
             "the model)."]
    if problem == "timeout":
        return DeployTimeout(f"The local model server did not answer GET {server.url}/ping "
                             "before the deadline; it was stopped and its files removed",
                             details=details,
                             hint=hints + ["If the model is only slow to load, raise the deploy "
                                           "timeout (DEPLOY_TIMEOUT)."])
    return DeploymentFailed(f"The local model server failed to start: {problem}; "
                            "its files were removed", details=details, hint=hints)


def stop_started_server(server: StartedServer) -> None:
    """Stop a server this run started (and reap it)."""
    stop_server(server.process.pid, reap=False)
    server.process.wait()


def stop_server(pid: int, grace: float | None = None, *, reap: bool = True) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL the server's whole process group."""
    grace = STOP_GRACE_SECONDS if grace is None else grace
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        raise DeployModelError(f"Not allowed to stop the local model server (pid {pid})",
                               hint=f"Stop it yourself: kill {pid}") from None
    if not _wait_for_exit(pid, grace):
        _kill_group(pid)
        _wait_for_exit(pid, 5.0)
    # Workers left behind by a killed master share its process group (the server is a session
    # leader); the group id cannot be reused while any of them lives.
    _kill_group(pid)
    if reap:
        _reap(pid)


def _wait_for_exit(pid: int, grace: float) -> bool:
    deadline = time.monotonic() + grace
    while local_endpoints.is_process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> None:
    # Only our own child can be reaped; a server started by an earlier CLI run belongs to init.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
