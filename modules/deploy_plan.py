"""What a deploy will do, the AWS resources it makes, and how to take exactly those away again.

- `resolve_model_package`: the package must exist, be Approved and Completed; when its image is
  in this account's ECR (same region), the tag must exist there too.
- `plan_deployment`: endpoint absent -> create; InService -> blue/green update on the same variant
  name; busy or broken -> refuse, saying what to do. Names are `<endpoint>-<timestamp>`.
- `RunResources`: every resource this run creates is recorded the moment AWS accepts it; rollback
  deletes those and nothing else (an update never deletes the endpoint it updated).
- `remove_superseded`: after a successful update, the previous config and its model go, but only
  when deploy-model created them (its `ManagedBy` tag) and nothing uses them any more.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore import exceptions as bce

from modules.deploy_settings import DeploymentStrategy, DeploySettings
from modules.deploy_validation import (
    TAG_ENDPOINT,
    TAG_MANAGED_BY,
    TAG_PACKAGE,
    TAG_STACK,
    TOOL_NAME,
)
from modules.monitor_endpoint import delete_endpoint, log_group_name
from utils import output
from utils.aws_errors import error_code, error_message
from utils.endpoint_operations import BUSY_STATUSES, describe_endpoint, is_not_found
from utils.errors import AwsError, Terminated

VARIANT_NAME = "AllTraffic"
ROLLBACK_WAIT_SECONDS = 900.0
_ECR_IMAGE_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
    r"(?P<repository>[^:@]+)(:(?P<tag>[^@]+))?(@(?P<digest>sha256:[0-9a-f]{64}))?$")
_LIST_HINT = "List the packages and their status: python utils/list_model_packages.py --all-statuses"


# ---------------------------------------------------------------------------------------------
# The model package


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
        environment=dict(container.get("Environment") or {}))


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


def check_image(ecr: Any, image: str | None, account: str | None, region: str) -> bool:
    """When the image lives in this account's ECR in this region, its tag must exist there.
    Returns True when it was checked. Images elsewhere (e.g. AWS's own) are not ours to list."""
    match = _ECR_IMAGE_RE.match(image or "")
    if not match or match["account"] != account or match["region"] != region:
        return False
    image_id = ({"imageDigest": match["digest"]} if match["digest"]
                else {"imageTag": match["tag"] or "latest"})
    try:
        ecr.describe_images(repositoryName=match["repository"], imageIds=[image_id])
    except bce.ClientError as exc:
        if error_code(exc) in {"RepositoryNotFoundException", "ImageNotFoundException"}:
            raise AwsError(f"Could not find image: {image}", details=[error_message(exc)], hint=[
                "Build and push the serving image first: see artifacts/README.md "
                "(artifacts/ecr-image-setup.sh).",
                f"Check that the ECR repository {match['repository']} exists and has the tag "
                f"{image_id.get('imageTag', image_id.get('imageDigest'))}."]) from None
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
    if check_image(ecr, package.image, account_of(settings.role_arn), settings.region):
        output.print_info(f"Container image found in ECR: {package.image}")
    return package


def account_of(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 4 else None


# ---------------------------------------------------------------------------------------------
# The plan


@dataclass
class DeployPlan:
    action: str  # "create" or "update"
    endpoint_name: str
    model_name: str
    config_name: str
    variant_name: str
    instance_type: str
    instance_count: int
    package: PackageInfo
    tags: list[dict[str, str]]
    deployment_config: dict | None = None
    endpoint_arn: str | None = None
    previous_config: str | None = None
    previous_config_arn: str | None = None
    previous_models: tuple[str, ...] = ()
    previous_failure_reason: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "action": self.action, "endpoint_name": self.endpoint_name,
            "model_name": self.model_name, "endpoint_config_name": self.config_name,
            "variant_name": self.variant_name, "instance_type": self.instance_type,
            "instance_count": self.instance_count, "model_package_arn": self.package.arn,
            "previous_endpoint_config_name": self.previous_config,
        }


def resource_name(endpoint_name: str, now: datetime) -> str:
    """`<endpoint>-YYYYMMDD-HHMMSS-mmm` within SageMaker's 63 characters (the model and the
    endpoint config share it: different resource types, one name to recognise them by). The
    milliseconds keep two deploys in one second (a CI retry) from colliding."""
    stamp = f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"
    base = endpoint_name[: 63 - len(stamp) - 1].rstrip("-")
    return f"{base}-{stamp}"


def resource_tags(settings: DeploySettings, package_arn: str) -> list[dict[str, str]]:
    tags = {TAG_MANAGED_BY: TOOL_NAME, TAG_PACKAGE: package_arn, TAG_STACK: settings.stack,
            TAG_ENDPOINT: settings.endpoint_name}
    tags.update(dict(settings.tags))
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def deployment_config(strategy: DeploymentStrategy, alarms: tuple[str, ...]) -> dict:
    """A blue/green DeploymentConfig for UpdateEndpoint.

    With rollback alarms the old fleet is kept for `wait_seconds` after the shift, so an alarm
    that fires on full traffic can still send it back; without alarms there is nothing to wait for.
    """
    routing: dict[str, Any] = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    size = {"Type": "CAPACITY_PERCENT", "Value": strategy.step_percent}
    if strategy.name == "canary":
        routing = {"Type": "CANARY", "WaitIntervalInSeconds": strategy.wait_seconds,
                   "CanarySize": size}
    elif strategy.name == "linear":
        routing = {"Type": "LINEAR", "WaitIntervalInSeconds": strategy.wait_seconds,
                   "LinearStepSize": size}
    policy = {"TrafficRoutingConfiguration": routing,
              "TerminationWaitInSeconds": strategy.wait_seconds if alarms else 0}
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarms]}
    return config


def plan_deployment(sagemaker: Any, settings: DeploySettings, package: PackageInfo,
                    now: datetime) -> DeployPlan:
    name = resource_name(settings.endpoint_name, now)
    plan = DeployPlan("create", settings.endpoint_name, name, name, VARIANT_NAME,
                      settings.instance_type, settings.instance_count, package,
                      resource_tags(settings, package.arn))
    current = describe_endpoint(sagemaker, settings.endpoint_name)
    if current is None:
        return plan
    refuse_unless_updatable(current)
    plan.action = "update"
    plan.endpoint_arn = current.get("EndpointArn")
    plan.variant_name = _current_variant(current)
    plan.previous_config = current.get("EndpointConfigName")
    plan.previous_failure_reason = current.get("FailureReason")
    plan.deployment_config = deployment_config(settings.strategy, settings.rollback_alarms)
    _read_previous_config(sagemaker, plan)
    return plan


def refuse_unless_updatable(current: dict) -> None:
    name, status = current["EndpointName"], current["EndpointStatus"]
    if status == "InService":
        return
    reason = current.get("FailureReason")
    details = [f"Failure reason: {reason}"] if reason else []
    follow = f"aws sagemaker describe-endpoint --endpoint-name {name} --query EndpointStatus"
    if status == "Deleting":
        raise AwsError(f"Endpoint {name} is being deleted; it cannot be deployed to now",
                       details=details, hint=[
                           f"Wait until it is gone: aws sagemaker wait endpoint-deleted "
                           f"--endpoint-name {name}", "Then deploy again to create it anew, or "
                           "choose another name with --endpoint-name."])
    if status in BUSY_STATUSES:
        raise AwsError(f"Endpoint {name} is {status}; SageMaker accepts no update until that "
                       "finishes", details=details, hint=[
                           f"Follow it: {follow}",
                           f"Wait for it: aws sagemaker wait endpoint-in-service --endpoint-name "
                           f"{name}", "Then run this deploy again."])
    raise AwsError(f"Endpoint {name} is {status}: it cannot be updated, only deleted",
                   details=details, hint=[
                       f"Read why: aws logs tail {log_group_name(name)} --since 1h",
                       f"Delete it (endpoint, config and model): python utils/delete_endpoint.py "
                       f"-e {name}", "Then deploy again, or deploy under another --endpoint-name."])


def _current_variant(current: dict) -> str:
    """Blue/green updates keep the variant name, so reuse the endpoint's own."""
    variants = current.get("ProductionVariants") or []
    if len(variants) > 1:
        names = ", ".join(v.get("VariantName", "?") for v in variants)
        raise AwsError(f"Endpoint {current['EndpointName']} serves {len(variants)} variants "
                       f"({names}); deploy-model updates single-variant endpoints only",
                       hint="Deploy to a new --endpoint-name, or update it with the AWS console.")
    return variants[0].get("VariantName", VARIANT_NAME) if variants else VARIANT_NAME


def _read_previous_config(sagemaker: Any, plan: DeployPlan) -> None:
    if not plan.previous_config:
        return
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=plan.previous_config)
    except bce.ClientError as exc:
        if is_not_found(exc):
            return  # someone deleted it already; nothing to clean up later
        raise
    plan.previous_config_arn = config.get("EndpointConfigArn")
    plan.previous_models = tuple(v["ModelName"] for v in config.get("ProductionVariants", [])
                                 if v.get("ModelName"))


def show_plan(plan: DeployPlan, settings: DeploySettings) -> None:
    output.print_section("Plan")
    verb = ("Create endpoint" if plan.action == "create"
            else f"Update endpoint in place (blue/green, {settings.strategy.name})")
    pairs = {"Action": verb, "Endpoint": plan.endpoint_name,
             "Model package": plan.package.arn, "Model": plan.model_name,
             "Endpoint config": plan.config_name,
             "Instances": f"{plan.instance_count} x {plan.instance_type}",
             "Variant": plan.variant_name}
    if plan.action == "update":
        pairs["Replaces config"] = plan.previous_config or "(none)"
        if settings.rollback_alarms:
            pairs["Rollback alarms"] = ", ".join(settings.rollback_alarms)
    output.print_key_values(pairs)
    if settings.name_was_generated:
        output.print_info("The endpoint name was generated: every run without --endpoint-name "
                          "creates another endpoint (and its cost). Pass -e "
                          f"{plan.endpoint_name} to update this one in place later.")
    if plan.action == "create" and (settings.rollback_alarms or
                                    settings.strategy.name != "all-at-once"):
        output.print_info("A new endpoint starts on its config directly: --deployment-strategy "
                          "and --rollback-alarm apply to later updates.")


# ---------------------------------------------------------------------------------------------
# Creating resources, and taking exactly those away again


@dataclass(frozen=True)
class Resource:
    kind: str  # "endpoint", "endpoint-config" or "model"
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    def delete_command(self, region: str) -> str:
        flag = {"endpoint": "--endpoint-name", "endpoint-config": "--endpoint-config-name",
                "model": "--model-name"}[self.kind]
        return (f"aws sagemaker delete-{self.kind} {flag} {shlex.quote(self.name)} "
                f"--region {region}")


@dataclass
class RunResources:
    """What this run created, in creation order. A call interrupted mid-flight leaves its
    resource `uncertain`: rollback tries it too (the name is this run's own, so it can be no one
    else's), while a call AWS refused created nothing and is not recorded."""

    created: list[Resource] = field(default_factory=list)
    uncertain: Resource | None = None

    def track(self, resource: Resource, call: Callable[[], Any]) -> Any:
        self.uncertain = resource
        try:
            answer = call()
        except bce.ClientError:
            self.uncertain = None
            raise
        self.uncertain = None
        self.created.append(resource)
        return answer

    def to_remove(self) -> list[Resource]:
        """Endpoint first, then its config, then the model (reverse creation order)."""
        pending = list(self.created) + ([self.uncertain] if self.uncertain else [])
        order = {"endpoint": 0, "endpoint-config": 1, "model": 2}
        return sorted(dict.fromkeys(pending), key=lambda r: order[r.kind])

    def forget(self, kinds: set[str]) -> None:
        self.created = [r for r in self.created if r.kind not in kinds]


def create_model(sagemaker: Any, plan: DeployPlan, role_arn: str,
                 resources: RunResources) -> None:
    output.print_info(f"Creating model {plan.model_name}")
    resources.track(Resource("model", plan.model_name), lambda: sagemaker.create_model(
        ModelName=plan.model_name, ExecutionRoleArn=role_arn,
        Containers=[{"ModelPackageName": plan.package.arn}], Tags=plan.tags))


def create_endpoint_config(sagemaker: Any, plan: DeployPlan, resources: RunResources) -> None:
    output.print_info(f"Creating endpoint config {plan.config_name} "
                      f"({plan.instance_count} x {plan.instance_type})")
    variant = {"VariantName": plan.variant_name, "ModelName": plan.model_name,
               "InitialInstanceCount": plan.instance_count, "InstanceType": plan.instance_type,
               "InitialVariantWeight": 1.0}
    resources.track(Resource("endpoint-config", plan.config_name),
                    lambda: sagemaker.create_endpoint_config(
                        EndpointConfigName=plan.config_name, ProductionVariants=[variant],
                        Tags=plan.tags))


def start_endpoint(sagemaker: Any, plan: DeployPlan, resources: RunResources) -> None:
    """CreateEndpoint, or UpdateEndpoint for an existing one (never recorded for deletion)."""
    if plan.action == "create":
        output.print_info(f"Creating endpoint {plan.endpoint_name}")
        answer = resources.track(Resource("endpoint", plan.endpoint_name),
                                 lambda: sagemaker.create_endpoint(
                                     EndpointName=plan.endpoint_name,
                                     EndpointConfigName=plan.config_name, Tags=plan.tags))
        plan.endpoint_arn = answer.get("EndpointArn")
        return
    output.print_info(f"Updating endpoint {plan.endpoint_name} to config {plan.config_name}")
    sagemaker.update_endpoint(EndpointName=plan.endpoint_name,
                              EndpointConfigName=plan.config_name,
                              DeploymentConfig=plan.deployment_config)


@dataclass
class RollbackReport:
    removed: list[Resource] = field(default_factory=list)
    left: list[Resource] = field(default_factory=list)
    problem: str | None = None
    interrupted: BaseException | None = None

    def lines(self, region: str) -> list[str]:
        lines = []
        if self.removed:
            lines.append("Rolled back: deleted " + ", ".join(map(str, self.removed)))
        if self.problem:
            lines.append(f"Rollback stopped: {self.problem}")
        if self.left:
            lines.append("Left behind; remove with:")
            lines += [f"  {r.delete_command(region)}" for r in self.left]
        elif self.removed:
            lines.append("Nothing this run created is left behind.")
        return lines


def rollback(sagemaker: Any, resources: list[Resource], *, region: str,
             wait_seconds: float = ROLLBACK_WAIT_SECONDS,
             poll_interval: float | None = None,
             sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> RollbackReport:
    """Delete `resources` in order. A second Ctrl-C (or SIGTERM) stops it, leaving the rest
    listed with the commands that remove them; so does an endpoint that will not go away
    (its config and model stay while it may still use them)."""
    report = RollbackReport()
    pending = list(resources)
    try:
        while pending:
            resource = pending[0]
            _delete(sagemaker, resource, wait_seconds=wait_seconds, poll_interval=poll_interval,
                    sleep=sleep, clock=clock)
            report.removed.append(pending.pop(0))
            output.print_info(f"Deleted {resource}")
    except (KeyboardInterrupt, Terminated) as interrupt:
        report.interrupted = interrupt
        report.problem = "interrupted"
    except (bce.ClientError, bce.BotoCoreError, TimeoutError) as exc:
        report.problem = f"could not delete {pending[0]}: {error_message(exc)}"
    report.left = pending
    return report


def _delete(sagemaker: Any, resource: Resource, **wait: Any) -> None:
    if resource.kind == "endpoint":
        output.print_info(f"Deleting endpoint {resource.name} and waiting until it is gone")
        delete_endpoint(sagemaker, resource.name, timeout=wait["wait_seconds"],
                        poll_interval=wait["poll_interval"], sleep=wait["sleep"],
                        clock=wait["clock"])
        return
    try:
        if resource.kind == "endpoint-config":
            sagemaker.delete_endpoint_config(EndpointConfigName=resource.name)
        else:
            sagemaker.delete_model(ModelName=resource.name)
    except bce.ClientError as exc:
        if not is_not_found(exc):
            raise


def cleanup_commands(resources: list[Resource], region: str) -> list[str]:
    return [resource.delete_command(region) for resource in resources]


def created_by_tool(sagemaker: Any, arn: str | None) -> bool:
    if not arn:
        return False
    tags = sagemaker.list_tags(ResourceArn=arn).get("Tags", [])
    return any(t.get("Key") == TAG_MANAGED_BY and t.get("Value") == TOOL_NAME for t in tags)


def superseded_resources(sagemaker: Any, plan: DeployPlan) -> tuple[list[Resource], list[str]]:
    """The previous config and models that deploy-model made and nothing uses now; also the
    names kept because something else made them."""
    if not plan.previous_config or plan.previous_config == plan.config_name:
        return [], []
    if not created_by_tool(sagemaker, plan.previous_config_arn):
        return [], [f"endpoint-config {plan.previous_config}"]
    removable = [Resource("endpoint-config", plan.previous_config)]
    kept = []
    for model in plan.previous_models:
        if model == plan.model_name:
            continue
        arn = _model_arn(sagemaker, model)
        if arn and created_by_tool(sagemaker, arn):
            removable.append(Resource("model", model))
        elif arn:
            kept.append(f"model {model}")
    return removable, kept


def _model_arn(sagemaker: Any, model_name: str) -> str | None:
    try:
        return sagemaker.describe_model(ModelName=model_name).get("ModelArn")
    except bce.ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def delete_endpoint_with_resources(sagemaker: Any, endpoint_name: str, *,
                                   timeout: float = ROLLBACK_WAIT_SECONDS,
                                   poll_interval: float | None = None,
                                   sleep: Callable[[float], None] = time.sleep,
                                   clock: Callable[[], float] = time.monotonic
                                   ) -> RollbackReport | None:
    """Delete an endpoint, then its current config and that config's models. None when there is
    no such endpoint."""
    current = describe_endpoint(sagemaker, endpoint_name)
    if current is None:
        return None
    resources = [Resource("endpoint", endpoint_name)]
    config_name = current.get("EndpointConfigName")
    if config_name:
        resources.append(Resource("endpoint-config", config_name))
        resources += [Resource("model", m) for m in _config_models(sagemaker, config_name)]
    return rollback(sagemaker, resources, region=_region_of(current), wait_seconds=timeout,
                    poll_interval=poll_interval, sleep=sleep, clock=clock)


def _config_models(sagemaker: Any, config_name: str) -> list[str]:
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    except bce.ClientError as exc:
        if is_not_found(exc):
            return []
        raise
    return list(dict.fromkeys(v["ModelName"] for v in config.get("ProductionVariants", [])
                              if v.get("ModelName")))


def _region_of(description: dict) -> str:
    parts = (description.get("EndpointArn") or "").split(":")
    return parts[3] if len(parts) > 3 else "<region>"
