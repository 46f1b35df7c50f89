"""Local endpoint state, process identity, safe extraction and the checksum check."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from modules import local_endpoint
from utils import local_endpoints
from utils.errors import AwsError, DeploymentFailed, ValidationError

# --- the state directory ----------------------------------------------------------------------


def test_state_dir_override_wins_over_xdg_and_home(tmp_path):
    env = {"DEPLOY_MODEL_STATE_DIR": str(tmp_path / "s"), "XDG_STATE_HOME": "/x", "HOME": "/h"}
    assert local_endpoints.state_dir_from_env(env) == tmp_path / "s"


def test_state_dir_follows_xdg_then_home():
    assert local_endpoints.state_dir_from_env({"XDG_STATE_HOME": "/x", "HOME": "/h"}) == \
        Path("/x/deploy_model")
    assert local_endpoints.state_dir_from_env({"HOME": "/h"}) == Path("/h/.local/state/deploy_model")
    assert local_endpoints.state_dir_from_env({"XDG_STATE_HOME": "", "HOME": "/h"}) == \
        Path("/h/.local/state/deploy_model")


@pytest.mark.parametrize("name", ["../x", "a/b", "", "-a", "a_b", "a" * 64, ".hidden"])
def test_names_that_could_escape_the_state_dir_are_refused(tmp_path, name):
    with pytest.raises(ValidationError):
        local_endpoints.endpoint_dir(tmp_path, name)
    assert local_endpoints.find_endpoint(tmp_path, name) is None
    assert local_endpoint.stop_local_endpoint(name, tmp_path) is None


# --- records ----------------------------------------------------------------------------------


def test_record_round_trip_leaves_no_temp_files(tmp_path):
    directory = tmp_path / "endpoints" / "qc"
    record = {"endpoint_name": "qc", "pid": 123, "port": 8080, "url": "http://127.0.0.1:8080"}
    local_endpoints.write_record(directory, record)
    local_endpoints.write_record(directory, {**record, "pid": 456})
    assert local_endpoints.read_record(directory)["pid"] == 456
    assert sorted(p.name for p in directory.iterdir()) == ["endpoint.json"]


def test_a_failed_write_keeps_the_previous_record_whole(tmp_path):
    directory = tmp_path / "qc"
    local_endpoints.write_record(directory, {"endpoint_name": "qc", "pid": 1})
    with pytest.raises(TypeError):
        local_endpoints.write_record(directory, {"endpoint_name": "qc", "pid": object()})
    assert local_endpoints.read_record(directory) == {"endpoint_name": "qc", "pid": 1}
    assert sorted(p.name for p in directory.iterdir()) == ["endpoint.json"]


def test_corrupt_or_missing_records_read_as_empty(tmp_path):
    assert local_endpoints.read_record(tmp_path) == {}
    (tmp_path / "endpoint.json").write_text('{"pid": 1')
    assert local_endpoints.read_record(tmp_path) == {}
    (tmp_path / "endpoint.json").write_text("[1, 2]")
    assert local_endpoints.read_record(tmp_path) == {}


def test_listing_skips_directories_without_a_record(tmp_path):
    for name in ("b-ep", "a-ep"):
        local_endpoints.write_record(tmp_path / "endpoints" / name, {"endpoint_name": name})
    (tmp_path / "endpoints" / "junk").mkdir()
    (tmp_path / "endpoints" / ".staging").mkdir()
    assert [e.name for e in local_endpoints.list_endpoints(tmp_path)] == ["a-ep", "b-ep"]
    assert local_endpoints.list_endpoints(tmp_path / "nothing") == []


# --- process identity -------------------------------------------------------------------------

FAKE_SERVE = """\
import pathlib, signal, sys, time
def on_term(signum, frame):
    pathlib.Path(sys.argv[0]).with_name("got-sigterm").touch()
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if "--ignore-term" in sys.argv else on_term)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def processes():
    """Processes a test starts; killed and reaped whatever happens."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def _fake_server(tmp_path: Path, processes: list, port: int, *extra: str) -> subprocess.Popen:
    """A process whose command line looks like our model server's."""
    script = tmp_path / "artifacts" / "serve"
    script.parent.mkdir(exist_ok=True)
    script.write_text(FAKE_SERVE)
    process = subprocess.Popen([sys.executable, str(script), "--host", "127.0.0.1", "--port",
                                str(port), *extra], stdout=subprocess.PIPE,
                               start_new_session=True)
    processes.append(process)
    assert process.stdout.readline() == b"ready\n"
    return process


def _sleeper(processes: list) -> subprocess.Popen:
    sleeper = subprocess.Popen(["sleep", "30"])
    processes.append(sleeper)
    deadline = time.monotonic() + 5
    while local_endpoints.process_command_line(sleeper.pid) != ["sleep", "30"]:  # until exec'd
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return sleeper


def test_a_live_process_that_is_not_our_server_is_not_trusted(processes):
    sleeper = _sleeper(processes)
    assert local_endpoints.is_process_alive(sleeper.pid)
    assert not local_endpoints.is_server_process(sleeper.pid)
    assert not local_endpoints.is_server_process(sleeper.pid, 8080)


def test_our_server_is_recognised_only_on_its_own_port(tmp_path, processes):
    server = _fake_server(tmp_path, processes, 41234)
    assert local_endpoints.is_server_process(server.pid)
    assert local_endpoints.is_server_process(server.pid, 41234)
    assert not local_endpoints.is_server_process(server.pid, 41235)


def test_the_recorded_start_time_identifies_the_process_whatever_its_command_line(processes):
    sleeper = _sleeper(processes)
    started = local_endpoints.process_start_time(sleeper.pid)
    assert started is not None
    assert local_endpoints.is_server_process(sleeper.pid, 8080, started)
    assert not local_endpoints.is_server_process(sleeper.pid, 8080, started + "0")
    endpoint = local_endpoints.LocalEndpoint("qc", Path("/nowhere"), {
        "pid": sleeper.pid, "port": 8080, "pid_start_time": started})
    assert endpoint.is_running()


def test_a_zombie_or_reaped_process_counts_as_gone(tmp_path, processes):
    server = _fake_server(tmp_path, processes, 41236)
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while local_endpoints.is_process_alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not local_endpoints.is_server_process(server.pid)  # a zombie: exited, not yet reaped
    server.wait()
    assert not local_endpoints.is_process_alive(server.pid)


def _record_endpoint(state_dir: Path, name: str, pid: int, port: int) -> Path:
    directory = state_dir / "endpoints" / name
    local_endpoints.write_record(directory, {"endpoint_name": name, "pid": pid, "port": port,
                                             "url": f"http://127.0.0.1:{port}"})
    (directory / "server.log").write_text("started\n")
    (directory / "model").mkdir()
    return directory


def test_stop_sends_sigterm_and_removes_the_state(tmp_path, processes):
    server = _fake_server(tmp_path, processes, 41237)
    directory = _record_endpoint(tmp_path / "state", "qc", server.pid, 41237)
    result = local_endpoint.stop_local_endpoint("qc", tmp_path / "state")
    assert result["was_running"] is True and result["pid"] == server.pid
    assert (tmp_path / "artifacts" / "got-sigterm").exists()
    assert not local_endpoints.is_process_alive(server.pid)  # gone and reaped
    assert not directory.exists()


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path, processes, monkeypatch):
    monkeypatch.setattr(local_endpoint, "STOP_GRACE_SECONDS", 0.3)
    server = _fake_server(tmp_path, processes, 41238, "--ignore-term")
    _record_endpoint(tmp_path / "state", "stubborn", server.pid, 41238)
    started = time.monotonic()
    local_endpoint.stop_local_endpoint("stubborn", tmp_path / "state")
    assert not local_endpoints.is_process_alive(server.pid)
    assert time.monotonic() - started >= 0.3  # it had its grace period first


def test_a_stale_record_never_signals_the_process_that_reused_the_pid(tmp_path, processes):
    sleeper = _sleeper(processes)
    directory = _record_endpoint(tmp_path / "state", "stale", sleeper.pid, 41239)
    endpoint = local_endpoints.find_endpoint(tmp_path / "state", "stale")
    assert endpoint is not None and not endpoint.is_running()
    assert directory.exists()  # reading never cleans up
    result = local_endpoint.stop_local_endpoint("stale", tmp_path / "state")
    assert result["was_running"] is False
    assert not directory.exists()
    assert sleeper.poll() is None  # untouched


def test_stop_of_an_unknown_endpoint_is_none_and_junk_is_cleared(tmp_path):
    assert local_endpoint.stop_local_endpoint("nothing", tmp_path) is None
    junk = tmp_path / "endpoints" / "half"
    (junk / ".next-1").mkdir(parents=True)
    assert local_endpoint.stop_local_endpoint("half", tmp_path) is None
    assert not junk.exists()


# --- safe extraction --------------------------------------------------------------------------


def _tar(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _fifo(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info


@pytest.mark.parametrize("bad_entry, reason", [
    (("../escaped.txt", b"x"), "'..'"),
    (("code/../../escaped.txt", b"x"), "'..'"),
    (("/tmp/deploy-model-absolute-test.txt", b"x"), "absolute path"),
    (_link("code/evil", "../../escaped.txt"), "outside"),
    (_link("evil", "/etc/passwd"), "absolute path"),
    (_link("hard", "../escaped.txt", tarfile.LNKTYPE), "outside"),
    (_fifo("pipe"), "special file"),
])
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path, bad_entry, reason):
    archive = _tar(tmp_path / "model.tar.gz",
                   [("model.joblib", b"m"), bad_entry, ("code/inference.py", b"")])
    destination = tmp_path / "work" / "model"
    with pytest.raises(DeploymentFailed) as caught:
        local_endpoint.extract_model_archive(archive, destination)
    assert "unsafe" in caught.value.message
    assert any(reason in line for line in caught.value.details)
    assert list(destination.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "work" / "escaped.txt").exists()
    assert not Path("/tmp/deploy-model-absolute-test.txt").exists()


@pytest.mark.parametrize("link", [_link("code/model-link", "../model.joblib"),
                                  _link("code/model-hard", "model.joblib", tarfile.LNKTYPE)])
def test_even_an_inner_link_is_refused(tmp_path, link):
    """Bundles hold no links: resolving them is what the CVE-2025-4517 chains defeat (issue 9)."""
    archive = _tar(tmp_path / "model.tar.gz", [
        ("model.joblib", b"m"), ("code/inference.py", b"print()"), link])
    destination = tmp_path / "model"
    with pytest.raises(DeploymentFailed, match="unsafe") as caught:
        local_endpoint.extract_model_archive(archive, destination)
    assert any("a model archive holds no links" in line for line in caught.value.details)
    assert list(destination.iterdir()) == []


@pytest.mark.parametrize("limit, value, message", [
    ("MAX_EXTRACTED_BYTES", 1500, "hold 2.0 KB uncompressed, over the limit of 1.5 KB"),
    ("MAX_ARCHIVE_MEMBERS", 2, "more than 2 entries"),
])
def test_a_tar_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch, limit, value,
                                                          message):
    """Sizes and counts are summed from the headers, so a bomb stops at the limit."""
    monkeypatch.setattr(local_endpoint, limit, value)
    archive = _tar(tmp_path / "model.tar.gz", [("model.joblib", b"m" * 1024),
                                               ("code/inference.py", b"i" * 1024),
                                               ("code/requirements.txt", b"")])
    destination = tmp_path / "model"
    with pytest.raises(DeploymentFailed, match="too large to extract") as caught:
        local_endpoint.extract_model_archive(archive, destination)
    assert message in caught.value.message
    assert list(destination.iterdir()) == []


def test_an_archive_at_the_limits_is_extracted(tmp_path, monkeypatch):
    monkeypatch.setattr(local_endpoint, "MAX_EXTRACTED_BYTES", 2048)
    monkeypatch.setattr(local_endpoint, "MAX_ARCHIVE_MEMBERS", 3)
    archive = _tar(tmp_path / "model.tar.gz", [("model.joblib", b"m" * 1024),
                                               ("code/inference.py", b"i" * 1024),
                                               ("code/requirements.txt", b"")])
    assert local_endpoint.extract_model_archive(archive, tmp_path / "model") == 3


def test_a_file_that_is_not_a_tarball_is_a_clear_failure(tmp_path):
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"not a tarball at all")
    with pytest.raises(DeploymentFailed, match="could not be extracted"):
        local_endpoint.extract_model_archive(archive, tmp_path / "model")


# --- checksum and package checks --------------------------------------------------------------


def test_sha256_mismatch_is_refused_with_both_digests(tmp_path):
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"payload")
    good = "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5"
    local_endpoint.verify_sha256(archive, good.upper())
    with pytest.raises(DeploymentFailed) as caught:
        local_endpoint.verify_sha256(archive, "0" * 64)
    assert any(good in line for line in caught.value.details)


class _Packages:
    """A SageMaker client answering DescribeModelPackage with a fixed document."""

    def __init__(self, package: dict):
        self.package = package

    def describe_model_package(self, ModelPackageName: str) -> dict:  # noqa: N803 - boto3's name
        return self.package


def _package(environment: dict, approval: str = "Approved") -> dict:
    return {"ModelApprovalStatus": approval, "ModelPackageStatus": "Completed",
            "InferenceSpecification": {"Containers": [
        {"Image": "img", "ModelDataUrl": "s3://b/k/model.tar.gz", "Environment": environment}]}}


@pytest.mark.parametrize("environment, approval, message, error", [
    ({}, "Approved", "has no MODEL_SHA256", ValidationError),
    ({"MODEL_SHA256": "abc"}, "Approved", "malformed MODEL_SHA256", ValidationError),
    ({"MODEL_SHA256": "0" * 64}, "PendingManualApproval", "not Approved", AwsError),
])
def test_packages_local_mode_cannot_verify_are_refused(environment, approval, message, error):
    client = _Packages(_package(environment, approval))
    with pytest.raises(error, match=message):
        local_endpoint.describe_package_container(client, "arn:aws:sagemaker:x")


def test_the_server_sees_the_package_environment_not_the_users_secrets(tmp_path):
    base = {"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "HOME": "/h"}
    package = {"SAGEMAKER_PROGRAM": "handler.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
               "CLASS_LABELS": "ok,bad", "SAGEMAKER_MODEL_SERVER_WORKERS": "16"}
    env = local_endpoint.server_environment(package, tmp_path / "model", base)
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["PATH"] == "/bin" and env["CLASS_LABELS"] == "ok,bad"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == str(tmp_path / "model" / "code")
    assert env["SAGEMAKER_PROGRAM"] == "handler.py"
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == str(local_endpoint.LOCAL_WORKERS)
    assert env["MODEL_SERVER_LOG_MAX_BYTES"] == str(local_endpoint.SERVER_LOG_MAX_BYTES)


def test_log_tail_returns_the_last_lines(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert local_endpoints.read_log_tail(log, 3) == ["line 97", "line 98", "line 99"]
    assert local_endpoints.read_log_tail(tmp_path / "missing.log", 3) == []


def test_records_are_plain_json(tmp_path):
    local_endpoints.write_record(tmp_path, {"endpoint_name": "qc", "server_command": ["a", "b"]})
    assert json.loads((tmp_path / "endpoint.json").read_text())["server_command"] == ["a", "b"]


def test_a_state_dir_that_is_a_file_or_under_a_file_is_a_problem(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("not a directory")
    assert local_endpoints.state_dir_problem(plain) == f"{plain} is not a directory"
    assert local_endpoints.state_dir_problem(plain / "state") == f"{plain} is not a directory"
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert local_endpoints.state_dir_problem(loop) == f"{loop} is not a directory"


def test_a_state_dir_that_exists_or_can_be_made_is_fine(tmp_path):
    assert local_endpoints.state_dir_problem(tmp_path) is None
    assert local_endpoints.state_dir_problem(tmp_path / "new" / "deeper") is None
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    assert local_endpoints.state_dir_problem(link) is None
