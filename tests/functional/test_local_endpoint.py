"""Local mode end to end: a package registered in moto, served by the real model server.

The model is a LogisticRegression trained in a fixture; its tarball holds the repository's own
`artifacts/inference.py`. deploy_local -> test_endpoint.main -> stop_local_endpoint, and every
failure path must leave no process and no state behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
import uuid
from pathlib import Path

import boto3
import joblib
import numpy as np
import pytest
from moto import mock_aws
from sklearn.linear_model import LogisticRegression

import test_endpoint
from modules import local_endpoint
from modules.local_endpoint import deploy_local, stop_local_endpoint
from tests.conftest import REGION, REPO_ROOT
from utils import local_endpoints
from utils.errors import AwsError, DeploymentFailed, DeployTimeout, ValidationError

BUCKET = "plmscw-sagemaker-data-dev"
GROUP = "qc-local-tests"
DEPLOY_TIMEOUT = 60.0


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """A small two-class LogisticRegression, its rows, and its pickle."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(200, 4))
    labels = (features @ np.array([1.5, -2.0, 0.5, 1.0]) + 0.3 > 0).astype(int)
    model = LogisticRegression().fit(features, labels)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return model, features[:6].tolist(), buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build_tarball(path: Path, model_bytes: bytes, extra: dict[str, bytes] | None = None) -> Path:
    """model.joblib at the root, code/inference.py and code/requirements.txt: the bundle layout."""
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "model.joblib", model_bytes)
        _add(tar, "code/inference.py", (REPO_ROOT / "artifacts" / "inference.py").read_bytes())
        _add(tar, "code/requirements.txt",
             (REPO_ROOT / "artifacts" / "requirements.txt").read_bytes())
        for name, data in (extra or {}).items():
            _add(tar, name, data)
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def aws():
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        sagemaker, s3 = session.client("sagemaker"), session.client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        yield sagemaker, s3


def register(aws, tarball: Path, *, sha256: str | None = None, approval: str = "Approved",
             upload: bool = True, feature_count: int | None = None) -> str:
    """Upload `tarball` and register it as a package, as utils/package-model.py does."""
    sagemaker, s3 = aws
    key = f"models/{uuid.uuid4().hex}/model.tar.gz"
    if upload:
        s3.upload_file(str(tarball), BUCKET, key)
    environment = {"SAGEMAKER_PROGRAM": "inference.py",
                   "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                   "CLASS_LABELS": "qc_pass,qc_fail"}
    if sha256 != "":
        environment["MODEL_SHA256"] = sha256 or sha256_of(tarball)
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus=approval,
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.ca-central-1.amazonaws.com/qc:latest",
                            "ModelDataUrl": f"s3://{BUCKET}/{key}", "Environment": environment}],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json"]},
        **({"CustomerMetadataProperties": {"feature_count": str(feature_count)}}
           if feature_count else {}))["ModelPackageArn"]


@pytest.fixture
def state_dir(tmp_path) -> Path:
    return Path(os.environ["DEPLOY_MODEL_STATE_DIR"])


def processes_mentioning(path: Path) -> list[int]:
    """Live processes whose command line names `path` (our servers name their model dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and local_endpoints.is_process_alive(int(entry.name)):
            argv = local_endpoints.process_command_line(int(entry.name)) or []
            if any(str(path) in arg for arg in argv):
                found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def no_stray_servers(state_dir):
    """Whatever a test does, no model server outlives it."""
    yield
    for pid in processes_mentioning(state_dir):
        local_endpoint.stop_server(pid, grace=2.0)


def deploy(aws, arn: str, state_dir: Path, name: str = "qc-local", timeout: float = DEPLOY_TIMEOUT):
    sagemaker, s3 = aws
    return deploy_local(sagemaker, s3, endpoint_name=name, model_package_arn=arn,
                        state_dir=state_dir, timeout=timeout, inherited_env=os.environ)


def invoke_json(capsys, state_dir, name: str, rows, *extra: str) -> tuple[int, dict]:
    """test_endpoint.py --json in-process; its exit code and JSON document."""
    capsys.readouterr()
    code = test_endpoint.main(["-e", name, "-d", json.dumps({"data": rows}), "--json", *extra],
                              {"DEPLOY_MODEL_STATE_DIR": str(state_dir), "NO_COLOR": "1"})
    out = capsys.readouterr().out
    return code, json.loads(out)


def assert_nothing_left(state_dir: Path, name: str) -> None:
    assert not (state_dir / "endpoints" / name).exists()
    assert processes_mentioning(state_dir) == []


# --- the round trip ---------------------------------------------------------------------------


def test_deploy_invoke_and_stop_a_local_endpoint(aws, trained, tmp_path, state_dir, capsys):
    model, rows, model_bytes = trained
    arn = register(aws, build_tarball(tmp_path / "model.tar.gz", model_bytes),
                   feature_count=len(rows[0]))

    result = deploy(aws, arn, state_dir)
    assert result["status"] == "InService" and result["action"] == "created"
    assert result["url"] == f"http://127.0.0.1:{result['port']}"
    assert result["model_package_arn"] == arn
    directory = state_dir / "endpoints" / "qc-local"
    assert sorted(p.name for p in directory.iterdir()) == ["endpoint.json", "model", "server.log"]
    record = local_endpoints.read_record(directory)
    assert {k: record[k] for k in ("pid", "port", "url")} == \
        {k: result[k] for k in ("pid", "port", "url")}
    assert record["feature_count"] == len(rows[0])  # for test_endpoint.py's input hints
    assert local_endpoints.find_endpoint(state_dir, "qc-local").is_running()
    assert "model server ready" in (directory / "server.log").read_text()

    for content_type in ("json", "csv"):
        code, document = invoke_json(capsys, state_dir, "qc-local", rows,
                                            "--content-type", content_type)
        assert code == 0 and document["target"] == "local"
        answer = document["response"]
        np.testing.assert_allclose(answer["probabilities"], model.predict_proba(rows),
                                   rtol=0, atol=1e-12)
        assert answer["class_indices"] == model.predict(rows).tolist()
        assert answer["predictions"] == [["qc_pass", "qc_fail"][i] for i in model.predict(rows)]

    stopped = stop_local_endpoint("qc-local", state_dir)
    assert stopped["was_running"] is True and stopped["pid"] == result["pid"]
    assert not local_endpoints.is_process_alive(result["pid"])
    assert_nothing_left(state_dir, "qc-local")
    assert stop_local_endpoint("qc-local", state_dir) is None


def test_redeploy_swaps_servers_and_a_failed_one_keeps_the_old(aws, trained, tmp_path, state_dir,
                                                               capsys):
    model, rows, model_bytes = trained
    good = register(aws, build_tarball(tmp_path / "good.tar.gz", model_bytes))
    first = deploy(aws, good, state_dir)

    broken = register(aws, build_tarball(tmp_path / "broken.tar.gz", b"not a pickle"))
    with pytest.raises(DeploymentFailed) as caught:
        deploy(aws, broken, state_dir)
    assert caught.value.hints[0] == f"qc-local still serves its previous model at {first['url']}."
    assert local_endpoints.is_process_alive(first["pid"])  # the old server still serves
    directory = state_dir / "endpoints" / "qc-local"
    assert local_endpoints.read_record(directory)["pid"] == first["pid"]
    assert sorted(p.name for p in directory.iterdir()) == ["endpoint.json", "model", "server.log"]

    second = deploy(aws, good, state_dir)
    assert second["action"] == "updated" and second["pid"] != first["pid"]
    assert not local_endpoints.is_process_alive(first["pid"])
    assert sorted(p.name for p in directory.iterdir()) == ["endpoint.json", "model", "server.log"]
    code, document = invoke_json(capsys, state_dir, "qc-local", rows)
    assert code == 0 and document["url"] == second["url"]
    stop_local_endpoint("qc-local", state_dir)
    assert_nothing_left(state_dir, "qc-local")


# --- failures leave nothing behind ------------------------------------------------------------


def test_a_broken_model_fails_at_start_up_with_the_log_tail(aws, tmp_path, state_dir, capsys):
    arn = register(aws, build_tarball(tmp_path / "model.tar.gz", b"\x80\x04corrupt joblib"))
    with pytest.raises(DeploymentFailed) as caught:
        deploy(aws, arn, state_dir, name="broken")
    error = caught.value
    assert "failed to start" in error.message
    log = "\n".join(error.details)
    assert "Model server log" in log and "cannot start" in log and "model_fn" in log
    assert_nothing_left(state_dir, "broken")


def test_a_server_that_is_not_healthy_in_time_is_stopped(aws, trained, tmp_path, state_dir):
    arn = register(aws, build_tarball(tmp_path / "model.tar.gz", trained[2]))
    with pytest.raises(DeployTimeout, match="did not answer"):
        deploy(aws, arn, state_dir, name="slow", timeout=0.3)
    assert_nothing_left(state_dir, "slow")


class _Tripwire:
    """Unpickling this creates a file: proof that the archive's pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checksum_mismatch_is_refused_before_anything_is_unpickled(aws, tmp_path, state_dir):
    marker = tmp_path / "unpickled"
    tarball = build_tarball(tmp_path / "model.tar.gz", pickle.dumps(_Tripwire(marker)))
    arn = register(aws, tarball, sha256="ab" * 32)
    leftover = state_dir / "endpoints" / "tampered" / ".next-killed" / "model"
    leftover.mkdir(parents=True)  # what a deploy killed with SIGKILL leaves
    with pytest.raises(DeploymentFailed, match="does not match the checksum"):
        deploy(aws, arn, state_dir, name="tampered")
    assert not marker.exists()
    assert_nothing_left(state_dir, "tampered")


def test_a_package_without_checksum_is_refused_before_download(aws, trained, tmp_path, state_dir):
    arn = register(aws, build_tarball(tmp_path / "model.tar.gz", trained[2]), sha256="")
    with pytest.raises(ValidationError, match="has no MODEL_SHA256"):
        deploy(aws, arn, state_dir, name="unchecked")
    assert not (state_dir / "endpoints" / "unchecked").exists()


def test_an_archive_with_a_path_out_is_refused_and_nothing_written(aws, trained, tmp_path,
                                                                     state_dir):
    tarball = build_tarball(tmp_path / "model.tar.gz", trained[2],
                            {"../../../escaped.txt": b"x"})
    arn = register(aws, tarball)
    with pytest.raises(DeploymentFailed, match="unsafe entries"):
        deploy(aws, arn, state_dir, name="escape")
    assert_nothing_left(state_dir, "escape")
    assert list(tmp_path.rglob("escaped.txt")) == []


def test_an_unapproved_package_is_refused(aws, trained, tmp_path, state_dir):
    arn = register(aws, build_tarball(tmp_path / "model.tar.gz", trained[2]),
                   approval="PendingManualApproval")
    with pytest.raises(AwsError, match="not Approved"):
        deploy(aws, arn, state_dir, name="pending")
    assert not (state_dir / "endpoints" / "pending").exists()


def test_a_missing_model_archive_is_an_aws_error(aws, trained, tmp_path, state_dir):
    arn = register(aws, build_tarball(tmp_path / "model.tar.gz", trained[2]), upload=False)
    with pytest.raises(AwsError, match="model archive is missing"):
        deploy(aws, arn, state_dir, name="missing")
    assert not (state_dir / "endpoints" / "missing").exists()


def test_local_dry_run_says_update_when_a_server_of_that_name_runs(aws, trained, tmp_path,
                                                                   state_dir, capsys):
    from tests.conftest import load_script

    main = load_script("deploy-model.py").main
    _, _, model_bytes = trained
    arn = register(aws, build_tarball(tmp_path / "good.tar.gz", model_bytes))
    env = {"AWS_REGION": REGION, "DEPLOY_MODEL_STATE_DIR": str(state_dir), "NO_COLOR": "1"}

    def dry_run() -> dict:
        capsys.readouterr()
        assert main(["-a", arn, "-t", "local", "-e", "qc-local", "--dry-run", "--json"], env) == 0
        return json.loads(capsys.readouterr().out)

    assert dry_run()["action"] == "create"
    first = deploy(aws, arn, state_dir)
    planned = dry_run()
    assert planned["action"] == "update" and planned["dry_run"] is True
    assert local_endpoints.read_record(state_dir / "endpoints" / "qc-local")["pid"] == first["pid"]
    stop_local_endpoint("qc-local", state_dir)
    assert_nothing_left(state_dir, "qc-local")
