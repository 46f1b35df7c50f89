"""package-model.py's work, in two halves the entry script calls around client creation.

`prepare_package` needs no AWS: pre-flight, bundle (step 1), image URI, the registration request.
`publish_package` takes the clients: image and bucket checks, upload (step 2), group, registration
and approval (steps 3-5). If a later step fails, what this run created is removed again (the
uploaded object, a new group, a new version), so a failed run leaves the account as it found it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules import bundle_package, images, preflight, upload_artifacts
from modules.bundle_artifacts import Bundle, bundle_model_artifacts
from modules.package_settings import PackageSettings
from utils import output
from utils.boto_session import TOOL_NAME, TOOL_VERSION
from utils.files import write_text_atomically

# What artifacts/inference.py accepts and answers (docs/ARCHITECTURE.md, "Inference contract").
CONTENT_TYPES = ["application/json", "text/csv", "application/x-npy"]
RESPONSE_TYPES = ["application/json"]
HANDLER_PROGRAM = "inference.py"
SUBMIT_DIRECTORY = "/opt/ml/model/code"
MODEL_FILE_SHA256_VAR = "MODEL_JOBLIB_SHA256"  # read by artifacts/model_server.py and inference.py
_METADATA_UNSAFE = re.compile(r"[^\w .:/=+\-@]")
_METADATA_MAX = 256
_DESCRIPTION_MAX = 1024


@dataclass(frozen=True)
class PreparedPackage:
    settings: PackageSettings
    report: preflight.PreflightReport
    bundle: Bundle
    image: images.EcrImage | None
    key: str
    request: bundle_package.PackageRequest


# --- no AWS --------------------------------------------------------------------------------------

def prepare_package(settings: PackageSettings, env: Mapping[str, str],
                    workdir: Path) -> PreparedPackage:
    """Pre-flight, bundle and the registration request; touches nothing in AWS."""
    report = run_preflight_step(settings, env)
    check_prebuilt_image_fits(settings, report)
    output.print_section("Step 1/5: Bundling model artifacts")
    bundle = bundle_model_artifacts(settings.artifacts_dir, workdir,
                                    prebuilt_image_requirements(settings))
    output.print_success(f"{bundle.path.name}: {output.format_bytes(bundle.size)}, "
                         f"sha256 {bundle.sha256}")
    output.print_info("contents: " + ", ".join(bundle.members))
    image_uri = resolve_image_uri(settings)
    image = images.validate_image_uri(image_uri, settings.region)
    key = upload_artifacts.model_s3_key(settings.stack, settings.repo_name, settings.branch,
                                        bundle.sha256)
    request = build_request(settings, report, bundle, image_uri,
                            upload_artifacts.s3_uri(settings.bucket, key))
    return PreparedPackage(settings, report, bundle, image, key, request)


def run_preflight_step(settings: PackageSettings, env: Mapping[str, str]
                       ) -> preflight.PreflightReport:
    output.print_section("Pre-flight: checking the model artifacts")
    report = preflight.run_preflight(settings.artifacts_dir, class_labels=settings.class_labels,
                                     sample_data=settings.sample_data,
                                     timeout=settings.preflight_timeout, env=env)
    model = report.model
    output.print_success(f"model.joblib: {model.final_estimator.rsplit('.', 1)[-1]} "
                         f"({model.linear}), {model.n_features} features, classes "
                         f"{', '.join(model.classes)}")
    output.print_success(f"requirements.txt pins scikit-learn=={report.sklearn_pin} "
                         "(the version the model was saved with)")
    output.print_success("inference.py defines model_fn, input_fn, predict_fn, output_fn")
    predictions = report.response.get("predictions", [])
    output.print_success(f"Smoke run on {len(report.rows)} {report.rows_source} row(s): answer "
                         f"follows the contract (predictions: {', '.join(map(str, predictions))})")
    for warning in report.warnings:
        output.print_warning(warning)
    return report


def check_prebuilt_image_fits(settings: PackageSettings,
                              report: preflight.PreflightReport) -> None:
    """With --sklearn-image-version, the model's scikit-learn must suit the image's."""
    if not settings.sklearn_image_version:
        return
    # A pickle mixing estimators from several versions reports them joined (preflight.py).
    saved = report.model.saved_sklearn_version.split(", ")
    for warning in images.check_model_fits_sklearn_image(settings.sklearn_image_version, saved):
        output.print_warning(warning)


def prebuilt_image_requirements(settings: PackageSettings) -> str | None:
    """For AWS's prebuilt image, code/requirements.txt without what the image already has."""
    if not settings.sklearn_image_version:
        return None
    source = settings.artifacts_dir / "requirements.txt"
    if not source.is_file():
        return None  # bundling names the missing file
    plan = images.requirements_for_prebuilt_image(source.read_text(encoding="utf-8"))
    if plan.dropped:
        output.print_info("code/requirements.txt for the prebuilt image leaves out what it has or "
                          f"does not need: {', '.join(plan.dropped)}")
    if plan.kept:
        output.print_warning(f"The prebuilt image pip-installs {', '.join(plan.kept)} at every "
                             "container start: the endpoint needs internet access (or a PyPI "
                             "mirror) for that")
    output.print_warning("AWS's prebuilt image answers 500, not 4xx, for bad input (its server "
                         "turns any handler exception into a 500): callers cannot tell a bad "
                         "request from a fault; the project's own image answers 400/415/406")
    return plan.text


def resolve_image_uri(settings: PackageSettings) -> str:
    if settings.image_uri:
        return settings.image_uri
    if settings.sklearn_image_version:
        uri = images.resolve_sklearn_image(settings.sklearn_image_version, settings.region,
                                           settings.instance_type)
        output.print_info(f"AWS scikit-learn {settings.sklearn_image_version} image: {uri}")
        return uri
    return images.default_image_uri(settings.account, settings.region, settings.stack)


def build_request(settings: PackageSettings, report: preflight.PreflightReport, bundle: Bundle,
                  image_uri: str, model_data_url: str) -> bundle_package.PackageRequest:
    model = report.model
    estimator = model.final_estimator.rsplit(".", 1)[-1]
    description = (f"{settings.stack} QC model: {estimator}, {model.n_features} features, "
                   f"classes {' '.join(model.classes)}; scikit-learn {model.saved_sklearn_version}"
                   f"; bundle sha256 {bundle.sha256}")
    return bundle_package.PackageRequest(
        group_name=settings.group_name,
        group_description=f"{settings.stack} inference models (registered by {TOOL_NAME})",
        image_uri=image_uri, model_data_url=model_data_url,
        environment=container_environment(settings, bundle.sha256, bundle.model_sha256),
        instance_types=[settings.instance_type], description=description[:_DESCRIPTION_MAX],
        sha256=bundle.sha256, metadata=customer_metadata(report, bundle, settings.artifacts_dir),
        content_types=CONTENT_TYPES, response_types=RESPONSE_TYPES)


def container_environment(settings: PackageSettings, sha256: str,
                          model_sha256: str = "") -> dict[str, str]:
    """The container's variables. MODEL_SHA256 is the archive's (local mode checks it after the
    download); MODEL_JOBLIB_SHA256 the model file's, which the server and inference.py check
    before unpickling, in the container too."""
    environment = {
        "SAGEMAKER_PROGRAM": HANDLER_PROGRAM,
        "SAGEMAKER_SUBMIT_DIRECTORY": SUBMIT_DIRECTORY,
        "SAGEMAKER_REGION": settings.region,
        "AI_INPUT_QUEUE_URL": settings.queue_url,
        "DATA_BUCKET": settings.bucket,
        "STACK": settings.stack,
        "REPO_NAME": settings.repo_name,
        "IMPORT_BRANCH_NAME": settings.branch,
        "MODEL_SHA256": sha256,
    }
    if model_sha256:
        environment[MODEL_FILE_SHA256_VAR] = model_sha256
    if settings.class_labels:
        environment["CLASS_LABELS"] = ",".join(settings.class_labels)
    return environment


def customer_metadata(report: preflight.PreflightReport, bundle: Bundle,
                      artifacts_dir: Path) -> dict[str, str]:
    model = report.model
    metadata = {
        "sha256": bundle.sha256,
        "sklearn_version": model.saved_sklearn_version,
        "feature_count": str(model.n_features),
        "classes": " ".join(model.classes),
        "estimator": model.final_estimator,
        "created_by": f"{TOOL_NAME}/{TOOL_VERSION}",
    }
    commit = git_commit(artifacts_dir)
    if commit:
        metadata["git_commit"] = commit
    return {key: _metadata_value(value) for key, value in metadata.items()}


def _metadata_value(value: str) -> str:
    # CustomerMetadataProperties values allow letters, digits, spaces and _.:/=+-@ only.
    return _METADATA_UNSAFE.sub("_", value)[:_METADATA_MAX] or "-"


def git_commit(directory: Path) -> str | None:
    """HEAD of the git checkout holding the artifacts (with '-dirty' if they have local changes)."""
    try:
        head = _git(directory, "rev-parse", "HEAD")
        dirty = _git(directory, "status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    if not re.fullmatch(r"[0-9a-f]{40,64}", head or ""):
        return None
    return f"{head}-dirty" if dirty else head


def _git(directory: Path, *args: str) -> str:
    completed = subprocess.run(["git", "-C", str(directory), *args], capture_output=True,
                               text=True, timeout=10, stdin=subprocess.DEVNULL, check=True)
    return completed.stdout.strip()


# --- AWS -----------------------------------------------------------------------------------------

def publish_package(prepared: PreparedPackage, *, sagemaker: Any, s3: Any,
                    ecr: Any) -> dict[str, Any]:
    """Checks, upload and registration; returns the run's result document."""
    settings = prepared.settings
    check_aws_prerequisites(prepared, s3=s3, ecr=ecr)
    existing = bundle_package.find_matching_package(sagemaker, prepared.request)
    bundle_package.ensure_not_rejected(existing)
    uploaded = upload_step(prepared, s3, existing)
    try:
        registration = bundle_package.register_and_approve_model(sagemaker, prepared.request)
    except BaseException:
        if uploaded:
            upload_artifacts.delete_uploaded_model(s3, settings.bucket, prepared.key)
        raise
    return result_document(prepared, registration, uploaded)


def plan_package(prepared: PreparedPackage, *, sagemaker: Any, s3: Any,
                 ecr: Any) -> dict[str, Any]:
    """--dry-run: every check a real run makes, with read-only calls only; what it would do."""
    settings, bundle, request = prepared.settings, prepared.bundle, prepared.request
    check_aws_prerequisites(prepared, s3=s3, ecr=ecr)
    existing = bundle_package.find_matching_package(sagemaker, request)
    bundle_package.ensure_not_rejected(existing)
    stored = upload_artifacts.stored_checksum(s3, settings.bucket, prepared.key)
    same = stored == upload_artifacts.expected_checksum(bundle.path)
    group_exists = bundle_package.describe_group(sagemaker, settings.group_name) is not None
    actions = [f"upload {bundle.path.name} ({output.format_bytes(bundle.size)}) to "
               f"{request.model_data_url}" if not same else
               f"keep {request.model_data_url} (the same bundle is already there)"]
    if not group_exists:
        actions.append(f"create model package group {settings.group_name}")
    if existing is not None:
        actions.append(f"re-use {existing['ModelPackageArn']} (unchanged artifacts and settings)")
        if bundle_package.approval_status(existing) != bundle_package.APPROVED:
            actions.append("approve it")
    else:
        actions.append(f"register a new version in {settings.group_name} and approve it")
    if settings.output_file:
        actions.append(f"write its ARN to {settings.output_file}")
    return {"dry_run": True, "actions": actions,
            "existing_model_package_arn": existing["ModelPackageArn"] if existing else None,
            "model_package_group_name": settings.group_name, "group_exists": group_exists,
            "would_upload": not same, "model_data_url": request.model_data_url,
            "image_uri": request.image_uri, "sha256": bundle.sha256,
            "bundle_bytes": bundle.size, "instance_type": settings.instance_type,
            "environment": request.environment}


def report_plan(plan: dict[str, Any]) -> None:
    if output.is_json_mode():
        output.print_json_result(plan)
        return
    output.print_header("Dry run: nothing was uploaded or registered")
    output.print_line("A real run would:")
    for number, action in enumerate(plan["actions"], 1):
        output.print_line(f"  {number}. {action}")
    output.print_info("Run again without --dry-run to do it.")


def check_aws_prerequisites(prepared: PreparedPackage, *, s3: Any, ecr: Any) -> None:
    settings = prepared.settings
    image = prepared.image
    if image is not None and image.account == settings.account:
        images.check_ecr_image(ecr, image)
        output.print_success(f"Image found in ECR: {image.repository}:{image.reference}")
    else:
        output.print_info(f"Image not in this account's ECR, not checked: "
                          f"{prepared.request.image_uri}")
    upload_artifacts.check_bucket(s3, settings.bucket, settings.region)
    output.print_success(f"Bucket s3://{settings.bucket} exists in {settings.region}")


def upload_step(prepared: PreparedPackage, s3: Any, existing: dict | None) -> bool:
    """Step 2; True when this run uploaded the object (and must remove it if a later step fails)."""
    settings, bundle, url = prepared.settings, prepared.bundle, prepared.request.model_data_url
    output.print_section("Step 2/5: Uploading to S3")
    stored = upload_artifacts.stored_checksum(s3, settings.bucket, prepared.key)
    if stored == upload_artifacts.expected_checksum(bundle.path):
        reason = ("a package of these artifacts is already registered"
                  if existing is not None else "the same bundle is already there")
        output.print_success(f"Nothing to upload: {reason}")
        output.print_info(url)
        return False
    try:
        upload_artifacts.upload_model_to_s3(s3, bundle.path, settings.bucket, prepared.key,
                                            sha256=bundle.sha256)
    except BaseException:
        # Interrupted or failed, the object may have landed anyway: it was not there before.
        if stored is None:
            upload_artifacts.delete_uploaded_model(s3, settings.bucket, prepared.key)
        raise
    output.print_success(f"Uploaded {output.format_bytes(bundle.size)} (SSE "
                         f"{upload_artifacts.SSE_ALGORITHM}, SHA-256 checksum)")
    output.print_info(url)
    return stored is None


def result_document(prepared: PreparedPackage, registration: bundle_package.Registration,
                    uploaded: bool) -> dict[str, Any]:
    settings, report = prepared.settings, prepared.report
    return {
        "model_package_arn": registration.arn,
        "model_package_group_name": settings.group_name,
        "model_package_version": registration.version,
        "approval_status": registration.approval_status,
        "reused_existing_package": registration.reused,
        "uploaded": uploaded,
        "model_data_url": prepared.request.model_data_url,
        "image_uri": prepared.request.image_uri,
        "sha256": prepared.bundle.sha256,
        "bundle_bytes": prepared.bundle.size,
        "instance_type": settings.instance_type,
        "environment": prepared.request.environment,
        "model": {"estimator": report.model.final_estimator,
                  "n_features": report.model.n_features, "classes": report.model.classes,
                  "sklearn_version": report.model.saved_sklearn_version},
        "smoke_run": {"rows": len(report.rows), "source": report.rows_source,
                      "predictions": report.response.get("predictions")},
        "output_file": str(settings.output_file) if settings.output_file else None,
    }


# --- finishing -----------------------------------------------------------------------------------

def report_result(result: dict[str, Any], settings: PackageSettings) -> None:
    """Write the ARN file and print the ARN (or the one JSON document)."""
    arn = result["model_package_arn"]
    if settings.output_file:
        write_text_atomically(settings.output_file, arn + "\n")
    if output.is_json_mode():
        output.print_json_result(result)
        return
    output.print_header("Model package ready")
    output.print_key_values({"ARN": arn, "Version": result["model_package_version"],
                             "Status": result["approval_status"],
                             "Re-used existing package": "yes" if
                             result["reused_existing_package"] else "no",
                             "Model data": result["model_data_url"],
                             "Image": result["image_uri"]})
    if settings.output_file:
        output.print_success(f"ARN written to {settings.output_file}")
    output.print_line()
    output.print_line(arn)
    output.print_line()
    output.print_info(f'Next: python deploy-model.py --model-package-arn "{arn}"')
