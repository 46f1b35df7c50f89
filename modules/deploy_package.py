"""Which model package a deploy serves: found, described, and checked before anything is made.

- `resolve_model_package`: the package named by ARN (or the newest Approved version of a group)
  must exist, be Approved and Completed; when its image is in this account's ECR in the deploy
  region, the tag must exist there too; a smoke test must have the model's feature count.
- Local mode uses the same `describe_package` / `check_package_deployable`, so it refuses exactly
  what an AWS deploy refuses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore import exceptions as bce

from modules.deploy_settings import DeploySettings, SmokeTest
from modules.images import parse_ecr_image
from utils import contract, output
from utils.aws_errors import error_code, error_message
from utils.endpoint_operations import is_not_found
from utils.errors import AwsError, ValidationError

_LIST_HINT = "List the packages and their status: python utils/list_model_packages.py --all-statuses"


@dataclass(frozen=True)
class PackageInfo:
    arn: str
    group: str
    version: int | None
    approval_status: str
    package_status: str
    image: str | None
    model_data_url: str | None
    environment: dict[str, str] = field(default_factory=dict)
    feature_count: int | None = None  # registered by package-model.py; None for other packages

    @property
    def class_labels(self) -> list[str] | None:
        """CLASS_LABELS from the package's environment (JSON list or comma-separated)."""
        raw = (self.environment.get("CLASS_LABELS") or "").strip()
        if not raw:
            return None
        if raw.startswith("["):
            try:
                return [str(label) for label in json.loads(raw)]
            except ValueError:
                return None
        return [label.strip() for label in raw.split(",") if label.strip()]


def latest_approved_package_arn(sagemaker: Any, group: str) -> str:
    """The newest Approved version of `group` (ListModelPackages sorts ascending by default)."""
    try:
        answer = sagemaker.list_model_packages(
            ModelPackageGroupName=group, ModelApprovalStatus="Approved",
            SortBy="CreationTime", SortOrder="Descending", MaxResults=1)
    except bce.ClientError as exc:
        if is_not_found(exc):
            raise AwsError(f"Model package group not found: {group}", hint=_LIST_HINT) from None
        raise
    summaries = answer.get("ModelPackageSummaryList", [])
    if not summaries:
        _require_group(sagemaker, group)
        raise AwsError(f"Model package group {group} has no Approved version", hint=[
            "Register and approve one: python utils/package-model.py",
            _LIST_HINT,
            "Approve a version: aws sagemaker update-model-package --model-package-arn <arn> "
            "--model-approval-status Approved"])
    return summaries[0]["ModelPackageArn"]


def _require_group(sagemaker: Any, group: str) -> None:
    """ListModelPackages answers an unknown group with an empty list: tell the two apart."""
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except bce.ClientError as exc:
        if is_not_found(exc):
            raise AwsError(f"Model package group not found: {group}", hint=_LIST_HINT) from None
        raise


def describe_package(sagemaker: Any, arn: str) -> PackageInfo:
    try:
        answer = sagemaker.describe_model_package(ModelPackageName=arn)
    except bce.ClientError as exc:
        if is_not_found(exc):
            raise AwsError(f"Could not find model package: {arn}", hint=[
                "Check the ARN (copy it from model_arn.txt written by utils/package-model.py).",
                _LIST_HINT,
                "The package must be in the same region as the deploy (AWS_REGION)."]) from None
        raise
    containers = answer.get("InferenceSpecification", {}).get("Containers", [{}])
    container = containers[0] if containers else {}
    return PackageInfo(
        arn=answer.get("ModelPackageArn", arn),
        group=answer.get("ModelPackageGroupName", ""),
        version=answer.get("ModelPackageVersion"),
        approval_status=answer.get("ModelApprovalStatus", "Unknown"),
        package_status=answer.get("ModelPackageStatus", "Unknown"),
        image=container.get("Image"),
        model_data_url=container.get("ModelDataUrl"),
        environment=dict(container.get("Environment") or {}),
        feature_count=registered_feature_count(answer.get("CustomerMetadataProperties") or {}))


def registered_feature_count(metadata: dict[str, str]) -> int | None:
    """The `feature_count` package-model.py writes into CustomerMetadataProperties, if sound."""
    raw = str(metadata.get("feature_count", "")).strip()
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 10**6 else None


def check_smoke_test_fits(package: PackageInfo, smoke: SmokeTest | None) -> None:
    """A smoke test whose rows the model cannot take would fail only after the endpoint is up."""
    if smoke is None or package.feature_count is None or smoke.width in (None,
                                                                          package.feature_count):
        return
    raise ValidationError(
        f"Smoke test data {smoke.path} has rows of {smoke.width} features; the model of "
        f"{package.arn} takes {package.feature_count}",
        hint=[contract.feature_count_hint(package.feature_count),
              "Nothing was created: fix the file (or leave out --smoke-test-data) and deploy again."])


def check_package_deployable(package: PackageInfo) -> None:
    if package.package_status != "Completed":
        raise AwsError(
            f"Model package {package.arn} is {package.package_status}, not Completed",
            hint=["Wait for registration to finish (or fix it if it Failed), then deploy again.",
                  _LIST_HINT])
    if package.approval_status != "Approved":
        raise AwsError(
            f"Model package {package.arn} is {package.approval_status}, not Approved",
            hint=["Approve it: aws sagemaker update-model-package --model-package-arn "
                  f"{package.arn} --model-approval-status Approved",
                  "(utils/package-model.py approves the packages it registers.)", _LIST_HINT])


def check_image(ecr: Any, uri: str | None, account: str | None, region: str) -> bool:
    """When the image lives in this account's ECR in this region, its tag must exist there.
    Returns True when it was checked. Images elsewhere (e.g. AWS's own) are not ours to list."""
    image = parse_ecr_image(uri or "")
    if image is None or image.account != account or image.region != region:
        return False
    image_id = {"imageDigest": image.digest} if image.digest else {"imageTag": image.reference}
    try:
        ecr.describe_images(repositoryName=image.repository, imageIds=[image_id])
    except bce.ClientError as exc:
        if error_code(exc) in {"RepositoryNotFoundException", "ImageNotFoundException"}:
            raise AwsError(f"Could not find image: {uri}", details=[error_message(exc)], hint=[
                "Build and push the serving image first: see artifacts/README.md "
                "(artifacts/ecr-image-setup.sh).",
                f"Check that the ECR repository {image.repository} exists and has the tag "
                f"{image.reference}."]) from None
        output.print_warning(f"Could not check the image in ECR ({error_code(exc)}); "
                             "SageMaker will report it if it is missing")
        return False
    return True


def resolve_model_package(sagemaker: Any, ecr: Any, settings: DeploySettings) -> PackageInfo:
    arn = settings.model_package_arn
    if arn is None:
        arn = latest_approved_package_arn(sagemaker, settings.model_package_group or "")
        output.print_info(f"Latest Approved version of {settings.model_package_group}: {arn}")
    package = describe_package(sagemaker, arn)
    check_package_deployable(package)
    check_smoke_test_fits(package, settings.smoke_test)
    if check_image(ecr, package.image, account_of(settings.role_arn), settings.region):
        output.print_info(f"Container image found in ECR: {package.image}")
    return package


def account_of(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 4 else None
