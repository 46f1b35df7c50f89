"""Steps 3-5 of packaging: model package group, registration, approval.

A package is registered `PendingManualApproval` and then approved, as the original tool does, so
the approval is a separate, visible step (and the one a human would take over in a stricter setup).

Idempotency: before registering, the group is searched (newest first) for a package of the same
bundle (sha256 in its description and in its `MODEL_SHA256` environment variable) with the same
image, model data URL, environment and instance types. Such a package is re-used: its ARN is
returned, no new version is registered, and it is approved if it was still pending. A match that
was Rejected is an error: a rejection is a human decision and is never silently overturned.
The comparison uses what DescribeModelPackage returns for the container (moto, for one, does not
return CustomerMetadataProperties).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from utils import output
from utils.aws_errors import error_code, error_message
from utils.errors import AwsError, ValidationError

APPROVED, PENDING, REJECTED = "Approved", "PendingManualApproval", "Rejected"
UNUSABLE_STATUSES = {"Failed", "Deleting"}
APPROVAL_NOTE = "Approved by package-model.py after the artifact pre-flight and smoke run passed."


@dataclass(frozen=True)
class PackageRequest:
    """Everything a registration sends; also what an existing package must equal to be re-used."""

    group_name: str
    group_description: str
    image_uri: str
    model_data_url: str
    environment: dict[str, str]
    instance_types: list[str]
    description: str
    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)
    content_types: list[str] = field(default_factory=lambda: ["application/json"])
    response_types: list[str] = field(default_factory=lambda: ["application/json"])

    def inference_specification(self) -> dict[str, Any]:
        return {
            "Containers": [{"Image": self.image_uri, "ModelDataUrl": self.model_data_url,
                            "Environment": dict(self.environment)}],
            "SupportedContentTypes": list(self.content_types),
            "SupportedResponseMIMETypes": list(self.response_types),
            "SupportedRealtimeInferenceInstanceTypes": list(self.instance_types),
        }


@dataclass(frozen=True)
class Registration:
    arn: str
    version: int | None
    approval_status: str
    reused: bool
    group_created: bool


# --- group ---------------------------------------------------------------------------------------

def describe_group(sagemaker: Any, name: str) -> dict | None:
    """The group's description, or None when there is no such group."""
    from botocore.exceptions import ClientError

    try:
        return sagemaker.describe_model_package_group(ModelPackageGroupName=name)
    except ClientError as exc:
        if _is_missing(exc):
            return None
        raise


def create_model_package_group(sagemaker: Any, name: str, description: str) -> tuple[str, bool]:
    """(group ARN, created by this call): re-uses an existing group, creates it otherwise."""
    from botocore.exceptions import ClientError

    existing = describe_group(sagemaker, name)
    if existing is not None:
        status = existing.get("ModelPackageGroupStatus", "Completed")
        if status in ("Deleting", "DeleteFailed", "Failed"):
            raise AwsError(f"Model package group '{name}' is {status}",
                           hint="Wait until it is gone, or use another name with "
                                "--model-package-group-name.")
        return existing["ModelPackageGroupArn"], False
    try:
        response = sagemaker.create_model_package_group(
            ModelPackageGroupName=name, ModelPackageGroupDescription=description)
    except ClientError as exc:
        if "already exists" in error_message(exc):  # created meanwhile by someone else
            return sagemaker.describe_model_package_group(
                ModelPackageGroupName=name)["ModelPackageGroupArn"], False
        raise
    return response["ModelPackageGroupArn"], True


def _is_missing(exc: Any) -> bool:
    message = error_message(exc).lower()
    return error_code(exc) in ("ValidationException", "ResourceNotFound") and (
        "does not exist" in message or "not found" in message)


# --- finding an equal package --------------------------------------------------------------------

def iter_packages(sagemaker: Any, group_name: str, approval_status: str | None = None,
                  page_size: int | None = None) -> Iterator[dict]:
    """Package summaries of a group, newest first, across all pages."""
    kwargs: dict[str, Any] = {"ModelPackageGroupName": group_name, "SortBy": "CreationTime",
                              "SortOrder": "Descending"}
    if approval_status:
        kwargs["ModelApprovalStatus"] = approval_status
    if page_size:
        kwargs["PaginationConfig"] = {"PageSize": page_size}
    for page in sagemaker.get_paginator("list_model_packages").paginate(**kwargs):
        yield from page.get("ModelPackageSummaryList", [])


def find_matching_package(sagemaker: Any, request: PackageRequest) -> dict | None:
    """The newest usable package equal to `request` (DescribeModelPackage output), or None."""
    from botocore.exceptions import ClientError

    try:
        for summary in iter_packages(sagemaker, request.group_name):
            if request.sha256 not in summary.get("ModelPackageDescription", "") or \
                    summary.get("ModelPackageStatus") in UNUSABLE_STATUSES:
                continue  # cheap filter: only our packages of this bundle are described
            described = sagemaker.describe_model_package(
                ModelPackageName=summary["ModelPackageArn"])
            if package_matches(described, request):
                return described
    except ClientError as exc:
        if _is_missing(exc):
            return None
        raise
    return None


def package_matches(described: dict, request: PackageRequest) -> bool:
    """Same bundle, image, model data URL, environment and instance types."""
    spec = described.get("InferenceSpecification") or {}
    containers = spec.get("Containers") or []
    if len(containers) != 1:
        return False
    container = containers[0]
    return (container.get("Image") == request.image_uri
            and container.get("ModelDataUrl") == request.model_data_url
            and (container.get("Environment") or {}) == request.environment
            and sorted(spec.get("SupportedRealtimeInferenceInstanceTypes") or [])
            == sorted(request.instance_types))


def approval_status(described: dict) -> str:
    return described.get("ModelApprovalStatus") or PENDING


def ensure_not_rejected(described: dict | None) -> None:
    """A rejected match stops the run: re-approving it would overturn a human decision."""
    if described is None or approval_status(described) != REJECTED:
        return
    arn = described["ModelPackageArn"]
    raise ValidationError(
        f"These exact artifacts and settings were already registered as {arn}, and that package "
        "was Rejected",
        details=[f"Approval description: {described.get('ApprovalDescription') or '(none)'}"],
        hint=["A rejected package is never re-approved automatically. Fix what was rejected "
              "(retrain or change the artifacts) and package again.",
              "If the rejection was a mistake, approve it yourself: aws sagemaker "
              f"update-model-package --model-package-arn {arn} --model-approval-status Approved"])


# --- register and approve ------------------------------------------------------------------------

def register_model_package(sagemaker: Any, request: PackageRequest) -> str:
    """Register a new version in the group, pending approval; returns its ARN as AWS gives it."""
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": request.group_name,
        "ModelPackageDescription": request.description,
        "InferenceSpecification": request.inference_specification(),
        "ModelApprovalStatus": PENDING,
    }
    if request.metadata:
        kwargs["CustomerMetadataProperties"] = dict(request.metadata)
    # botocore fills ClientToken itself, so a retried request cannot register twice.
    return sagemaker.create_model_package(**kwargs)["ModelPackageArn"]


def approve_model_package(sagemaker: Any, arn: str, note: str = APPROVAL_NOTE) -> None:
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=APPROVED,
                                   ApprovalDescription=note)


def delete_model_package(sagemaker: Any, arn: str) -> None:
    try:
        sagemaker.delete_model_package(ModelPackageName=arn)
    except Exception as exc:  # noqa: BLE001 - rollback must not hide the original error
        output.print_warning(f"Could not delete model package {arn}: {exc}")


def delete_model_package_group(sagemaker: Any, name: str) -> None:
    try:
        sagemaker.delete_model_package_group(ModelPackageGroupName=name)
    except Exception as exc:  # noqa: BLE001 - rollback must not hide the original error
        output.print_warning(f"Could not delete model package group {name}: {exc}")


def register_and_approve_model(sagemaker: Any, request: PackageRequest) -> Registration:
    """Steps 3-5: group (create or reuse), package (register or reuse), approval.

    On failure, what this call created (the group, the new version) is removed again.
    """
    output.print_section("Step 3/5: Model package group")
    group_arn, group_created = create_model_package_group(
        sagemaker, request.group_name, request.group_description)
    output.print_success(f"{'Created' if group_created else 'Using existing'} group "
                         f"{request.group_name}")
    output.print_info(group_arn)
    try:
        return _register_and_approve(sagemaker, request, group_created)
    except BaseException:
        if group_created:
            delete_model_package_group(sagemaker, request.group_name)
        raise


def _register_and_approve(sagemaker: Any, request: PackageRequest,
                          group_created: bool) -> Registration:
    output.print_section("Step 4/5: Registering model package")
    existing = None if group_created else find_matching_package(sagemaker, request)
    ensure_not_rejected(existing)
    if existing is not None:
        arn, status = existing["ModelPackageArn"], approval_status(existing)
        output.print_success(f"Unchanged artifacts and settings: re-using version "
                             f"{existing.get('ModelPackageVersion')} (no new version registered)")
    else:
        arn, status = register_model_package(sagemaker, request), PENDING
        output.print_success("Registered a new model package version")
    output.print_info(arn)
    output.print_section("Step 5/5: Approving model package")
    if status == APPROVED:
        output.print_success("Already approved")
    else:
        _approve_or_roll_back(sagemaker, arn, registered_now=existing is None)
        output.print_success("Approved (ModelApprovalStatus=Approved)")
    return Registration(arn=arn, version=_version_of(arn), approval_status=APPROVED,
                        reused=existing is not None, group_created=group_created)


def _approve_or_roll_back(sagemaker: Any, arn: str, *, registered_now: bool) -> None:
    try:
        approve_model_package(sagemaker, arn)
    except BaseException:
        if registered_now:
            delete_model_package(sagemaker, arn)
        raise


def _version_of(arn: str) -> int | None:
    tail = arn.rsplit("/", 1)[-1]
    return int(tail) if tail.isascii() and tail.isdigit() else None
