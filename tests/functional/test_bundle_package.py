"""Steps 3-5 against moto's SageMaker: group, registration, approval, idempotency, rollback."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from modules import bundle_package
from modules.bundle_package import (
    APPROVED,
    PENDING,
    REJECTED,
    PackageRequest,
    approve_model_package,
    create_model_package_group,
    ensure_not_rejected,
    find_matching_package,
    package_matches,
    register_and_approve_model,
    register_model_package,
)
from tests.conftest import REGION
from tests.packaging_support import DEFAULT_IMAGE, registry_state
from tests.sagemaker_double import SageMakerDouble
from utils.errors import ValidationError

GROUP = "PLMSCWInferenceModelGroup"
SHA = "f" * 64


def make_request(**overrides) -> PackageRequest:
    fields = dict(
        group_name=GROUP, group_description="plmscw inference models", image_uri=DEFAULT_IMAGE,
        model_data_url=f"s3://bucket/plmscw/dev/b/models/{SHA[:16]}/model.tar.gz",
        environment={"SAGEMAKER_PROGRAM": "inference.py", "MODEL_SHA256": SHA,
                     "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        instance_types=["ml.c5.2xlarge"], description=f"QC model; bundle sha256 {SHA}",
        sha256=SHA, metadata={"sha256": SHA, "classes": "qc_pass qc_fail"},
        content_types=["application/json", "text/csv"], response_types=["application/json"])
    fields.update(overrides)
    return PackageRequest(**fields)


@pytest.fixture
def double():
    """moto, plus the project's one SageMaker double (DeleteModelPackage[Group] for rollbacks)."""
    with mock_aws(), SageMakerDouble() as sagemaker_double:
        yield sagemaker_double


@pytest.fixture
def sagemaker(double):
    return boto3.client("sagemaker", region_name=REGION)


def status_of(sagemaker, arn):
    return sagemaker.describe_model_package(ModelPackageName=arn).get("ModelApprovalStatus")


def test_inference_specification():
    spec = make_request().inference_specification()
    assert spec["Containers"] == [{"Image": DEFAULT_IMAGE,
                                   "ModelDataUrl": make_request().model_data_url,
                                   "Environment": make_request().environment}]
    assert spec["SupportedContentTypes"] == ["application/json", "text/csv"]
    assert spec["SupportedResponseMIMETypes"] == ["application/json"]
    assert spec["SupportedRealtimeInferenceInstanceTypes"] == ["ml.c5.2xlarge"]


def test_group_is_created_then_reused(sagemaker):
    arn, created = create_model_package_group(sagemaker, GROUP, "d")
    assert created and arn.endswith(f":model-package-group/{GROUP}")
    assert create_model_package_group(sagemaker, GROUP, "d") == (arn, False)


def test_group_created_meanwhile_is_reused(sagemaker):
    class Racing:
        """describe says missing, create says it exists (another run won the race)."""

        calls = 0

        def describe_model_package_group(self, **kwargs):
            Racing.calls += 1
            if Racing.calls == 1:
                raise ClientError({"Error": {"Code": "ValidationException",
                                             "Message": "ModelPackageGroup x does not exist."}},
                                  "DescribeModelPackageGroup")
            return {"ModelPackageGroupArn": "arn:group"}

        def create_model_package_group(self, **kwargs):
            raise ClientError({"Error": {"Code": "ValidationException",
                                         "Message": "Model Package Group already exists"}},
                              "CreateModelPackageGroup")

    assert create_model_package_group(Racing(), GROUP, "d") == ("arn:group", False)


def test_register_then_approve(sagemaker):
    create_model_package_group(sagemaker, GROUP, "d")
    arn = register_model_package(sagemaker, make_request())
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == PENDING
    assert described["ModelPackageDescription"] == make_request().description
    assert described["InferenceSpecification"] == make_request().inference_specification()
    approve_model_package(sagemaker, arn)
    assert status_of(sagemaker, arn) == APPROVED


def test_first_packaging_registers_and_approves(sagemaker, capsys):
    result = register_and_approve_model(sagemaker, make_request())
    assert result.group_created and not result.reused and result.version == 1
    assert result.approval_status == APPROVED and status_of(sagemaker, result.arn) == APPROVED
    out = capsys.readouterr().out
    for step in ("Step 3/5", "Step 4/5", "Step 5/5", "Created group", "Registered a new model"):
        assert step in out


def test_repackaging_unchanged_reuses_the_package(sagemaker, capsys):
    first = register_and_approve_model(sagemaker, make_request())
    again = register_and_approve_model(sagemaker, make_request())
    assert again.arn == first.arn and again.reused and not again.group_created
    assert len(registry_state(sagemaker)["packages"]) == 1
    assert "re-using version 1 (no new version registered)" in capsys.readouterr().out


def test_a_pending_match_is_approved_not_duplicated(sagemaker):
    create_model_package_group(sagemaker, GROUP, "d")
    arn = register_model_package(sagemaker, make_request())
    result = register_and_approve_model(sagemaker, make_request())
    assert result.arn == arn and result.reused
    assert status_of(sagemaker, arn) == APPROVED
    assert len(registry_state(sagemaker)["packages"]) == 1


def test_a_rejected_match_is_an_error_and_stays_rejected(sagemaker):
    first = register_and_approve_model(sagemaker, make_request())
    sagemaker.update_model_package(ModelPackageArn=first.arn, ModelApprovalStatus=REJECTED,
                                   ApprovalDescription="bias found")
    with pytest.raises(ValidationError) as caught:
        register_and_approve_model(sagemaker, make_request())
    assert "was Rejected" in caught.value.message and first.arn in caught.value.message
    assert "Approval description: bias found" in caught.value.details
    assert any("never re-approved automatically" in hint for hint in caught.value.hints)
    assert status_of(sagemaker, first.arn) == REJECTED
    assert len(registry_state(sagemaker)["packages"]) == 1


@pytest.mark.parametrize("change", [
    {"image_uri": "123456789012.dkr.ecr.ca-central-1.amazonaws.com/plmscw-inference:v2"},
    {"environment": {**make_request().environment, "CLASS_LABELS": "ok,bad"}},
    {"model_data_url": "s3://other-bucket/x/model.tar.gz"},
    {"instance_types": ["ml.m5.large"]},
])
def test_changed_settings_register_a_new_version(sagemaker, change):
    first = register_and_approve_model(sagemaker, make_request())
    second = register_and_approve_model(sagemaker, make_request(**change))
    assert second.arn != first.arn and not second.reused and second.version == 2


def test_a_new_bundle_registers_a_new_version(sagemaker):
    register_and_approve_model(sagemaker, make_request())
    other = "e" * 64
    second = register_and_approve_model(sagemaker, make_request(
        sha256=other, description=f"bundle sha256 {other}",
        environment={**make_request().environment, "MODEL_SHA256": other}))
    assert second.version == 2


def test_the_newest_match_decides(sagemaker):
    create_model_package_group(sagemaker, GROUP, "d")
    older = register_model_package(sagemaker, make_request())
    approve_model_package(sagemaker, older)
    newer = register_model_package(sagemaker, make_request())
    assert find_matching_package(sagemaker, make_request())["ModelPackageArn"] == newer


def test_no_group_means_no_match(sagemaker):
    assert find_matching_package(sagemaker, make_request()) is None


def test_only_descriptions_naming_the_bundle_are_described(sagemaker, monkeypatch):
    create_model_package_group(sagemaker, GROUP, "d")
    register_model_package(sagemaker, make_request(description="someone else's package"))
    calls = []
    real = sagemaker.describe_model_package
    monkeypatch.setattr(sagemaker, "describe_model_package",
                        lambda **kw: calls.append(kw) or real(**kw))
    assert find_matching_package(sagemaker, make_request()) is None
    assert calls == []


def test_package_matches_needs_one_container():
    described = {"InferenceSpecification": {"Containers": []}}
    assert not package_matches(described, make_request())
    ensure_not_rejected(None)
    ensure_not_rejected({"ModelApprovalStatus": APPROVED, "ModelPackageArn": "a"})


def test_failed_registration_removes_the_group_it_created(sagemaker, double, monkeypatch):
    def refuse(*args, **kwargs):
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad spec"}},
                          "CreateModelPackage")

    monkeypatch.setattr(bundle_package, "register_model_package", refuse)
    with pytest.raises(ClientError):
        register_and_approve_model(sagemaker, make_request())
    assert double.package_deletions == [("group", GROUP)]
    assert registry_state(sagemaker) == {"groups": [], "packages": []}


def test_failed_registration_keeps_a_group_that_existed(sagemaker, double, monkeypatch):
    create_model_package_group(sagemaker, GROUP, "d")
    monkeypatch.setattr(bundle_package, "register_model_package",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        register_and_approve_model(sagemaker, make_request())
    assert double.package_deletions == []
    assert registry_state(sagemaker) == {"groups": [GROUP], "packages": []}


def test_failed_approval_removes_the_new_version_then_the_group(sagemaker, double, monkeypatch):
    def refuse(*args, **kwargs):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                          "UpdateModelPackage")

    monkeypatch.setattr(bundle_package, "approve_model_package", refuse)
    with pytest.raises(ClientError):
        register_and_approve_model(sagemaker, make_request())
    # The group can only go once its version is gone (the double refuses it otherwise).
    assert [kind for kind, _ in double.package_deletions] == ["package", "group"]
    assert registry_state(sagemaker) == {"groups": [], "packages": []}


def test_failed_approval_of_a_reused_package_keeps_it(sagemaker, double, monkeypatch):
    create_model_package_group(sagemaker, GROUP, "d")
    arn = register_model_package(sagemaker, make_request())
    monkeypatch.setattr(bundle_package, "approve_model_package",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("throttled")))
    with pytest.raises(RuntimeError):
        register_and_approve_model(sagemaker, make_request())
    assert double.package_deletions == []
    assert registry_state(sagemaker)["packages"] == [arn]


def test_rollback_failures_only_warn(capsys):
    class Broken:
        def delete_model_package(self, **kwargs):
            raise RuntimeError("not implemented")

        def delete_model_package_group(self, **kwargs):
            raise RuntimeError("not implemented")

    bundle_package.delete_model_package(Broken(), "arn:p")
    bundle_package.delete_model_package_group(Broken(), GROUP)
    err = capsys.readouterr().err
    assert "Could not delete model package arn:p" in err
    assert f"Could not delete model package group {GROUP}" in err


def test_a_deleting_group_is_refused():
    class Deleting:
        def describe_model_package_group(self, **kwargs):
            return {"ModelPackageGroupArn": "arn", "ModelPackageGroupStatus": "Deleting"}

    with pytest.raises(Exception, match="is Deleting"):
        create_model_package_group(Deleting(), GROUP, "d")


def test_unexpected_describe_errors_propagate():
    class Throttled:
        def describe_model_package_group(self, **kwargs):
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}},
                              "DescribeModelPackageGroup")

    with pytest.raises(ClientError):
        create_model_package_group(Throttled(), GROUP, "d")
