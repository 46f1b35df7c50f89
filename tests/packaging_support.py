"""Shared helpers and fixtures for the packaging tests (package-model.py and its modules).

Models are trained here, tiny and seeded; `inference.py` is copied from `artifacts/`. Building
artifacts and running the pre-flight child (~1-2 s each) are the expensive parts, so both are
cached for the whole session: artifact directories by name, pre-flight results by the directory
and the content of the files they checked (same bytes in, same verdict out).

Test modules import the fixtures they use from here (`from tests.packaging_support import ...`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn

from tests.conftest import ACCOUNT, ACCOUNT_ENV, REGION, REPO_ROOT

BUCKET = ACCOUNT_ENV["DATA_BUCKET"]
IMAGE_REPOSITORY = "plmscw-inference"
DEFAULT_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{IMAGE_REPOSITORY}:latest"
N_FEATURES = 4
SECRET_VALUES = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
                 "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLESESSIONTOKENVALUE0123456789"}

_BUILT: dict[str, Path] = {}
_PREFLIGHT_CACHE: dict[str, Any] = {}


# --- models --------------------------------------------------------------------------------------

def training_data(n_classes: int = 2, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(120, N_FEATURES))
    if n_classes == 2:
        labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(int)
    else:
        labels = np.digitize(features[:, 0], np.quantile(features[:, 0], [1 / 3, 2 / 3]))
    return features, labels


def logistic_pipeline(n_classes: int = 2):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = training_data(n_classes)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)


def random_forest():
    from sklearn.ensemble import RandomForestClassifier

    features, labels = training_data()
    return RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(features, labels)


def requirements_text(sklearn_version: str | None = None) -> str:
    return (f"# serving runtime\nscikit-learn=={sklearn_version or sklearn.__version__}\n"
            "joblib>=1.5,<2\nnumpy>=2.0,<3\n")


def write_artifacts(directory: Path, *, model: Any = None, inference: str | None = None,
                    requirements: str | None = None) -> Path:
    """An artifacts directory: model.joblib, inference.py (from artifacts/), requirements.txt."""
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model if model is not None else logistic_pipeline(), directory / "model.joblib")
    if inference is None:
        shutil.copyfile(REPO_ROOT / "artifacts" / "inference.py", directory / "inference.py")
    else:
        (directory / "inference.py").write_text(inference)
    (directory / "requirements.txt").write_text(requirements or requirements_text())
    return directory


def built_artifacts(tmp_path_factory: pytest.TempPathFactory, name: str,
                    builder: Callable[[Path], Path]) -> Path:
    """A session-wide artifacts directory, built once per name."""
    if name not in _BUILT:
        _BUILT[name] = builder(tmp_path_factory.mktemp(f"artifacts-{name}"))
    return _BUILT[name]


@pytest.fixture(scope="session")
def good_artifacts(tmp_path_factory) -> Path:
    """Valid artifacts: a fitted StandardScaler + LogisticRegression, 4 features, classes 0/1."""
    return built_artifacts(tmp_path_factory, "good", write_artifacts)


@pytest.fixture
def artifacts_copy(good_artifacts, tmp_path) -> Callable[..., Path]:
    """A private copy of the good artifacts, with files replaced as a test needs."""
    def make(**replace: Any) -> Path:
        target = tmp_path / "artifacts"
        shutil.copytree(good_artifacts, target)
        if "model" in replace:
            joblib.dump(replace.pop("model"), target / "model.joblib")
        for name, content in replace.items():
            path = target / {"inference": "inference.py", "requirements": "requirements.txt",
                             "model_bytes": "model.joblib"}[name]
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        return target
    return make


# --- pre-flight cache ----------------------------------------------------------------------------

def _preflight_key(artifacts_dir: Path, kwargs: dict[str, Any]) -> str | None:
    digest = hashlib.sha256(str(Path(artifacts_dir).resolve()).encode())
    try:
        for name in ("model.joblib", "inference.py", "requirements.txt"):
            digest.update((Path(artifacts_dir) / name).read_bytes())
        sample = kwargs.get("sample_data")
        digest.update(Path(sample).read_bytes() if sample else b"-")
    except OSError:
        return None  # missing files: not worth caching, the check is instant
    digest.update(json.dumps([kwargs.get("class_labels"), kwargs.get("timeout")]).encode())
    return digest.hexdigest()


@pytest.fixture
def cached_preflight(monkeypatch):
    """Run the real pre-flight once per distinct input; later runs get the same verdict."""
    from modules import preflight

    real = preflight.run_preflight

    def run(artifacts_dir, **kwargs):
        key = _preflight_key(artifacts_dir, kwargs)
        if key is None:
            return real(artifacts_dir, **kwargs)
        if key not in _PREFLIGHT_CACHE:
            try:
                _PREFLIGHT_CACHE[key] = real(artifacts_dir, **kwargs)
            except preflight.PreflightFailed as failure:
                _PREFLIGHT_CACHE[key] = failure
        result = _PREFLIGHT_CACHE[key]
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(preflight, "run_preflight", run)
    return run


# --- the emulated account ------------------------------------------------------------------------

IMAGE_MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469,
               "digest": "sha256:" + "b" * 64},
    "layers": []})


def create_bucket(s3: Any, bucket: str = BUCKET, region: str = REGION) -> None:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})


def push_image(ecr: Any, repository: str = IMAGE_REPOSITORY, tag: str = "latest") -> str:
    """An image in the emulated ECR; returns its digest."""
    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    response = ecr.put_image(repositoryName=repository, imageManifest=IMAGE_MANIFEST,
                             imageTag=tag)
    return response["image"]["imageId"]["imageDigest"]


_SESSION: list[Any] = []


def _shared_session() -> Any:
    """One boto3 session for the tests' own clients: service models are parsed once (~0.1 s per
    client otherwise). The code under test still builds its own session, as in real runs."""
    import boto3

    if not _SESSION:
        _SESSION.append(boto3.Session(region_name=REGION))
    return _SESSION[0]


@pytest.fixture
def aws_account():
    """An emulated account (moto, in-process, plus the project's SageMaker double so that
    rollbacks can really delete packages and groups) with the data bucket and the serving image.
    Yields the tests' own clients by service name, and the double as "double"."""
    from moto import mock_aws

    from tests.sagemaker_double import SageMakerDouble

    with mock_aws(), SageMakerDouble() as double:
        clients: dict[str, Any] = {name: _shared_session().client(name)
                                   for name in ("sagemaker", "s3", "ecr")}
        create_bucket(clients["s3"])
        push_image(clients["ecr"])
        yield {**clients, "double": double}


def bucket_keys(s3: Any, bucket: str = BUCKET) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def registry_state(sagemaker: Any) -> dict[str, list]:
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    packages = [p["ModelPackageArn"] for g in groups for p in sagemaker.list_model_packages(
        ModelPackageGroupName=g["ModelPackageGroupName"])["ModelPackageSummaryList"]]
    return {"groups": [g["ModelPackageGroupName"] for g in groups], "packages": packages}
