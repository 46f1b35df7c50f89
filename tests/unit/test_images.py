"""Image URIs: the default, ECR parsing and checks, AWS's prebuilt scikit-learn image."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modules import images
from modules.images import EcrImage, default_image_uri, parse_ecr_image, validate_image_uri
from tests.conftest import REPO_ROOT
from utils.errors import ValidationError

ECR = "123456789012.dkr.ecr.ca-central-1.amazonaws.com"


def test_default_image_is_the_stacks_own_in_the_accounts_ecr():
    assert default_image_uri("123456789012", "ca-central-1", "plmscw") == \
        f"{ECR}/plmscw-inference:latest"


@pytest.mark.parametrize("uri, expected", [
    (f"{ECR}/plmscw-inference:latest",
     EcrImage("123456789012", "ca-central-1", "plmscw-inference", "latest", None)),
    (f"{ECR}/team/qc-model:v1.2",
     EcrImage("123456789012", "ca-central-1", "team/qc-model", "v1.2", None)),
    (f"{ECR}/qc@sha256:{'a' * 64}",
     EcrImage("123456789012", "ca-central-1", "qc", None, f"sha256:{'a' * 64}")),
    (f"{ECR}/qc", EcrImage("123456789012", "ca-central-1", "qc", None, None)),
    ("341280168497.dkr.ecr.ca-central-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
     EcrImage("341280168497", "ca-central-1", "sagemaker-scikit-learn", "1.2-1-cpu-py3", None)),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/qc:1",
     EcrImage("123456789012", "cn-north-1", "qc", "1", None)),
])
def test_parse_ecr_image(uri, expected):
    assert parse_ecr_image(uri) == expected


def test_reference_defaults_to_latest():
    assert parse_ecr_image(f"{ECR}/qc").reference == "latest"
    assert parse_ecr_image(f"{ECR}/qc:v2").reference == "v2"


@pytest.mark.parametrize("uri", ["docker.io/library/python:3.11", "ghcr.io/org/img:1",
                                 "localhost:5000/qc"])
def test_images_outside_ecr_are_not_parsed_and_pass_validation(uri):
    assert parse_ecr_image(uri) is None
    assert validate_image_uri(uri, "ca-central-1") is None


@pytest.mark.parametrize("uri, expected", [
    ("", "Invalid image URI"),
    ("has space/img:1", "Invalid image URI"),
    ("x" * 256, "Invalid image URI"),
    (f"{ECR}/Upper-Case:latest", "Invalid ECR image URI"),
    (f"{ECR}/qc:bad tag", "Invalid image URI"),
    (f"{ECR}/qc:-leading-dash", "Invalid ECR image URI"),
    (f"{ECR}/qc@sha256:short", "Invalid ECR image URI"),
])
def test_invalid_image_uris_are_refused(uri, expected):
    with pytest.raises(ValidationError) as caught:
        validate_image_uri(uri, "ca-central-1")
    assert expected in caught.value.message


def test_ecr_image_in_another_region_is_refused():
    with pytest.raises(ValidationError) as caught:
        validate_image_uri("123456789012.dkr.ecr.us-west-2.amazonaws.com/qc:latest",
                           "ca-central-1")
    assert "us-west-2" in caught.value.message
    assert any("ecr-image-setup.sh" in hint for hint in caught.value.hints)


def test_valid_ecr_image_returns_its_parts():
    assert validate_image_uri(f"{ECR}/plmscw-inference:latest", "ca-central-1") == \
        EcrImage("123456789012", "ca-central-1", "plmscw-inference", "latest", None)


@pytest.mark.parametrize("version", ["latest", "1", "v1.2", "1.2-1; rm -rf /"])
def test_malformed_sklearn_version_is_refused_before_loading_the_sdk(version, monkeypatch):
    monkeypatch.delitem(sys.modules, "sagemaker.core.image_uris", raising=False)
    with pytest.raises(ValidationError) as caught:
        images.resolve_sklearn_image(version, "ca-central-1", "ml.c5.2xlarge")
    assert "Invalid scikit-learn image version" in caught.value.message


def test_sdk_is_not_imported_by_the_images_module():
    code = ("import sys; sys.path.insert(0, '.'); import modules.images; "
            "print(any(m.startswith('sagemaker') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False"


def test_prebuilt_image_resolution_and_unsupported_version():
    # One test pays the SDK's import (~2.5 s) for both cases.
    uri = images.resolve_sklearn_image("1.2-1", "ca-central-1", "ml.c5.2xlarge")
    assert uri.startswith("341280168497.dkr.ecr.ca-central-1.amazonaws.com/sagemaker-scikit-learn:1.2-1")
    with pytest.raises(ValidationError) as caught:
        images.resolve_sklearn_image("0.9", "ca-central-1", "ml.c5.2xlarge")
    assert "No AWS scikit-learn image for version 0.9" in caught.value.message
    assert any("Supported sklearn version" in line for line in caught.value.details)


@pytest.mark.parametrize("framework_version, series", [
    ("1.2-1", (1, 2)), ("0.23-1", (0, 23)), ("1.4-2-py312", (1, 4)), ("0.20.0", (0, 20)),
])
def test_image_sklearn_series(framework_version, series):
    assert images.image_sklearn_series(framework_version) == series


@pytest.mark.parametrize("framework_version, saved", [
    ("1.2-1", ["1.2.2"]), ("1.4-2-py312", ["1.4.1.post1"]), ("1.9-0", ["1.9.1"]),
])
def test_a_model_of_the_images_series_fits_silently(framework_version, saved):
    assert images.check_model_fits_sklearn_image(framework_version, saved) == []


def test_a_model_older_than_the_image_gets_a_warning():
    [warning] = images.check_model_fits_sklearn_image("1.2-1", ["1.0.2"])
    assert "saved with scikit-learn 1.0.2, older than AWS's prebuilt scikit-learn image 1.2-1" \
        in warning
    assert "will load it with its own scikit-learn 1.2" in warning
    assert "does not pin scikit-learn for a prebuilt image" in warning


def test_requirements_for_the_prebuilt_image_keep_only_what_the_image_lacks():
    plan = images.requirements_for_prebuilt_image(
        "# serving runtime\nscikit-learn==1.9.1\nnumpy==2.4.6  # pinned\nSciPy>=1.10\n"
        "joblib==1.6.0\nthreadpoolctl==3.8.0\ngranian==2.8.7\norjson==3.13.0\npysimdjson==7.0.2\n"
        "uvloop==0.23.0\n\n"
        "lightgbm==4.6.0\nscikit_learn==1.9.1\n")
    assert plan.dropped == ("scikit-learn==1.9.1", "numpy==2.4.6", "SciPy>=1.10",
                            "joblib==1.6.0", "threadpoolctl==3.8.0", "granian==2.8.7",
                            "orjson==3.13.0", "pysimdjson==7.0.2", "uvloop==0.23.0",
                            "scikit_learn==1.9.1")
    assert plan.kept == ("lightgbm==4.6.0",)
    lines = [line for line in plan.text.splitlines() if not line.startswith("#")]
    assert lines == ["lightgbm==4.6.0"]


def test_the_shipped_requirements_need_nothing_beyond_the_prebuilt_image():
    from tests.conftest import REPO_ROOT

    plan = images.requirements_for_prebuilt_image(
        (REPO_ROOT / "artifacts" / "requirements.txt").read_text())
    assert plan.kept == () and any(line.startswith("scikit-learn==") for line in plan.dropped)


@pytest.mark.parametrize("known, first_hint", [
    (["1.0-1", "1.2-1", "1.9-0"], "Use the prebuilt image for scikit-learn 1.9: "
                                  "--sklearn-image-version 1.9-0"),
    (["1.0-1", "1.2-1"], "No prebuilt image runs scikit-learn 1.9: use the project's own serving "
                         "image"),
])
def test_a_model_newer_than_the_image_is_refused(known, first_hint, monkeypatch):
    monkeypatch.setattr(images, "prebuilt_sklearn_versions", lambda: known)
    with pytest.raises(ValidationError) as caught:
        images.check_model_fits_sklearn_image("1.2-1", ["1.9.1"])
    assert caught.value.message == ("model.joblib was saved with scikit-learn 1.9.1, newer than "
                                    "AWS's prebuilt scikit-learn image 1.2-1 (scikit-learn 1.2)")
    assert caught.value.exit_code == 2
    assert caught.value.hints[0].startswith(first_hint)
    assert any("--image-uri" in hint for hint in caught.value.hints)  # the deliberate way round


def test_prebuilt_versions_come_from_the_sdk():
    assert {"1.2-1", "1.9-0"} <= set(images.prebuilt_sklearn_versions())
