"""package_workflow's pure parts: environment, metadata, description, git commit, atomic writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from modules import package_workflow as workflow
from modules.bundle_artifacts import Bundle
from modules.package_settings import PackageSettings
from modules.preflight import ModelFacts, PreflightReport

SHA = "0123456789abcdef" * 4


def make_settings(**overrides) -> PackageSettings:
    fields = dict(
        region="ca-central-1", account="123456789012", bucket="plmscw-sagemaker-data-dev",
        queue_url="https://sqs.ca-central-1.amazonaws.com/123456789012/ai-queue",
        role_arn="arn:aws:iam::123456789012:role/SageMakerExecutionRole", profile=None,
        stack="plmscw", repo_name="dev", branch="inference-data",
        group_name="PLMSCWInferenceModelGroup", instance_type="ml.c5.2xlarge",
        artifacts_dir=Path("/nonexistent"), image_uri=None, sklearn_image_version=None,
        output_file=None, sample_data=None, class_labels=None, preflight_timeout=60.0)
    fields.update(overrides)
    return PackageSettings(**fields)


REPORT = PreflightReport(
    model=ModelFacts("sklearn.pipeline.Pipeline", "sklearn.linear_model._logistic.LogisticRegression",
                     "sklearn.linear_model", 4, ["0", "1"], "1.9.1", "1.9.1"),
    sklearn_pin="1.9.1", rows_source="generated", rows=[[0.0] * 4],
    response={"predictions": ["qc_pass"]})
BUNDLE = Bundle(Path("/tmp/model.tar.gz"), SHA, 1234, ("model.joblib",))


def test_container_environment_has_what_the_container_and_deploy_need():
    environment = workflow.container_environment(make_settings(), SHA)
    assert environment == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_REGION": "ca-central-1",
        "AI_INPUT_QUEUE_URL": "https://sqs.ca-central-1.amazonaws.com/123456789012/ai-queue",
        "DATA_BUCKET": "plmscw-sagemaker-data-dev",
        "STACK": "plmscw", "REPO_NAME": "dev", "IMPORT_BRANCH_NAME": "inference-data",
        "MODEL_SHA256": SHA,
    }
    labelled = workflow.container_environment(make_settings(class_labels=["ok", "bad"]), SHA)
    assert labelled["CLASS_LABELS"] == "ok,bad"
    checked = workflow.container_environment(make_settings(), SHA, "b" * 64)
    assert checked["MODEL_JOBLIB_SHA256"] == "b" * 64


def test_customer_metadata_fits_sagemakers_rules(monkeypatch):
    monkeypatch.setattr(workflow, "git_commit", lambda directory: "a" * 40)
    report = PreflightReport(
        model=ModelFacts("x", "pkg.Weird<Model>", "sklearn.linear_model", 4,
                         ["qc,pass", "fail!\n"], "1.9.1", "1.9.1"),
        sklearn_pin="1.9.1", rows_source="generated", rows=[], response={})
    metadata = workflow.customer_metadata(report, BUNDLE, Path("."))
    assert metadata["sha256"] == SHA and metadata["sklearn_version"] == "1.9.1"
    assert metadata["feature_count"] == "4" and metadata["git_commit"] == "a" * 40
    assert metadata["classes"] == "qc_pass fail__" and metadata["estimator"] == "pkg.Weird_Model_"
    assert metadata["created_by"].startswith("deploy-model/")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.:/=+-@")
    for key, value in metadata.items():
        assert 1 <= len(key) <= 128 and 1 <= len(value) <= 256 and set(value) <= allowed


def test_metadata_values_are_truncated():
    assert len(workflow._metadata_value("x" * 300)) == 256
    assert workflow._metadata_value("") == "-"


def test_request_names_the_bundle_in_its_description(monkeypatch):
    monkeypatch.setattr(workflow, "git_commit", lambda directory: None)
    request = workflow.build_request(make_settings(), REPORT, BUNDLE, "img:1", "s3://b/k")
    assert SHA in request.description and "LogisticRegression" in request.description
    assert request.sha256 == SHA and request.image_uri == "img:1"
    assert request.instance_types == ["ml.c5.2xlarge"]
    assert request.content_types == ["application/json", "text/csv", "application/x-npy"]
    assert "git_commit" not in request.metadata


def test_default_image_and_explicit_image():
    assert workflow.resolve_image_uri(make_settings()) == \
        "123456789012.dkr.ecr.ca-central-1.amazonaws.com/plmscw-inference:latest"
    assert workflow.resolve_image_uri(make_settings(image_uri="docker.io/a/b:1")) == \
        "docker.io/a/b:1"


def git(directory, *args):
    subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"})


def test_git_commit_of_clean_and_dirty_checkouts(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "model.joblib").write_text("m")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "m")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], text=True,
                          capture_output=True, check=True).stdout.strip()
    assert workflow.git_commit(tmp_path) == head
    (tmp_path / "model.joblib").write_text("changed")
    assert workflow.git_commit(tmp_path) == f"{head}-dirty"


def test_git_commit_outside_a_checkout_or_without_git(tmp_path, monkeypatch):
    assert workflow.git_commit(tmp_path) is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no git binary at all
    assert workflow.git_commit(tmp_path) is None


