"""Do and undo: the SageMaker resources a deploy creates, and taking exactly those away again.

`KINDS` is the one table of resource kinds (model, endpoint config, endpoint): how each is
created, how its ARN (and so its tags) is read back, how it is deleted, in which order it goes.
Everything that creates, checks ownership of, or deletes a resource goes through it.

- `RunResources`: every resource this run creates is recorded the moment AWS accepts it; rollback
  deletes those and nothing else (an update never deletes the endpoint it updated), and only
  after reading back that each still carries this run's id (`DeployRunId`).
- `create`: a create answered "already exists" owns nothing of that name, unless the resource
  read back carries this run's id: then an earlier attempt of the same call (a retry after a
  lost answer) made it, and it is this run's.
- `superseded_resources`: after a successful update, the previous config and its model, when
  deploy-model created them (read back from their tags), nothing uses them any more and they are
  no release (releases are kept, or pruned beyond --keep-releases, by deploy_releases.py).
- `delete_endpoint_with_resources`: what utils/delete_endpoint.py removes.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore import exceptions as bce

from modules.deploy_plan import DeployPlan
from modules.deploy_validation import TAG_MANAGED_BY, TAG_RELEASE, TAG_RUN_ID
from modules.monitor_endpoint import delete_endpoint
from utils import output
from utils.aws_errors import error_code, error_message
from utils.endpoint_operations import describe_endpoint, is_not_found
from utils.errors import Terminated
from utils.names import TOOL_NAME

ROLLBACK_WAIT_SECONDS = 900.0
ENDPOINT, CONFIG, MODEL = "endpoint", "endpoint-config", "model"


@dataclass(frozen=True)
class Waiting:
    """How long a delete may wait for an endpoint to go; tests pass a fake clock."""

    seconds: float = ROLLBACK_WAIT_SECONDS
    poll_interval: float | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class ResourceKind:
    name: str
    name_param: str  # the API's parameter, e.g. ModelName
    delete_order: int  # endpoint first, then its config, then the model
    create: Callable[..., dict]
    describe: Callable[[Any, str], dict]
    arn_key: str
    delete: Callable[[Any, str, Waiting], None]

    @property
    def cli_flag(self) -> str:
        return f"--{self.name}-name"


def _delete_endpoint(sagemaker: Any, name: str, wait: Waiting) -> None:
    output.print_info(f"Deleting endpoint {name} and waiting until it is gone")
    delete_endpoint(sagemaker, name, timeout=wait.seconds, poll_interval=wait.poll_interval,
                    sleep=wait.sleep, clock=wait.clock)


def _ignoring_not_found(call: Callable[[], Any]) -> None:
    try:
        call()
    except bce.ClientError as exc:
        if not is_not_found(exc):
            raise


KINDS: dict[str, ResourceKind] = {kind.name: kind for kind in (
    ResourceKind(
        ENDPOINT, "EndpointName", 0,
        create=lambda sm, name, **kw: sm.create_endpoint(EndpointName=name, **kw),
        describe=lambda sm, name: sm.describe_endpoint(EndpointName=name),
        arn_key="EndpointArn", delete=_delete_endpoint),
    ResourceKind(
        CONFIG, "EndpointConfigName", 1,
        create=lambda sm, name, **kw: sm.create_endpoint_config(EndpointConfigName=name, **kw),
        describe=lambda sm, name: sm.describe_endpoint_config(EndpointConfigName=name),
        arn_key="EndpointConfigArn",
        delete=lambda sm, name, wait: _ignoring_not_found(
            lambda: sm.delete_endpoint_config(EndpointConfigName=name))),
    ResourceKind(
        MODEL, "ModelName", 2,
        create=lambda sm, name, **kw: sm.create_model(ModelName=name, **kw),
        describe=lambda sm, name: sm.describe_model(ModelName=name),
        arn_key="ModelArn",
        delete=lambda sm, name, wait: _ignoring_not_found(
            lambda: sm.delete_model(ModelName=name))),
)}


@dataclass(frozen=True)
class Resource:
    kind: str  # a key of KINDS
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def spec(self) -> ResourceKind:
        return KINDS[self.kind]

    def delete_command(self, region: str) -> str:
        return (f"aws sagemaker delete-{self.kind} {self.spec.cli_flag} {shlex.quote(self.name)} "
                f"--region {region}")


def resource_arn(sagemaker: Any, resource: Resource) -> str | None:
    """The resource's ARN as AWS describes it now; None when it does not exist."""
    try:
        return resource.spec.describe(sagemaker, resource.name).get(resource.spec.arn_key)
    except bce.ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def tags_of(sagemaker: Any, arn: str | None) -> dict[str, str]:
    if not arn:
        return {}
    tags = sagemaker.list_tags(ResourceArn=arn).get("Tags", [])
    return {t.get("Key", ""): t.get("Value", "") for t in tags}


def created_by_tool(sagemaker: Any, arn: str | None) -> bool:
    return tags_of(sagemaker, arn).get(TAG_MANAGED_BY) == TOOL_NAME


GONE = object()  # what `run_id_of` answers for a resource that does not exist


def run_id_of(sagemaker: Any, resource: Resource) -> Any:
    """The run id the resource carries now, read back from AWS; None without one, GONE when
    there is no such resource."""
    arn = resource_arn(sagemaker, resource)
    if arn is None:
        return GONE
    return tags_of(sagemaker, arn).get(TAG_RUN_ID)


def is_already_exists(exc: BaseException) -> bool:
    message = error_message(exc).lower()
    return error_code(exc) in {"ValidationException", "ResourceInUse"} and (
        "already exist" in message)


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
        return sorted(dict.fromkeys(pending), key=lambda r: r.spec.delete_order)

    def forget(self, removed: list[Resource]) -> None:
        gone = set(removed)
        self.created = [r for r in self.created if r not in gone]


def create(sagemaker: Any, resources: RunResources, resource: Resource, run_id: str,
           **params: Any) -> dict:
    """Create `resource` through the table, recording it for rollback. "Already exists" is
    this run's only when the resource read back carries `run_id`; otherwise the error stands."""
    try:
        return resources.track(resource, lambda: resource.spec.create(sagemaker, resource.name,
                                                                      **params))
    except bce.ClientError as exc:
        if not is_already_exists(exc) or run_id_of(sagemaker, resource) != run_id:
            raise
    output.print_info(f"{resource} already exists and carries this run's id: an earlier attempt "
                      "of the same call got through (its answer was lost)")
    resources.created.append(resource)
    return {resource.spec.arn_key: resource_arn(sagemaker, resource)}


def create_model(sagemaker: Any, plan: DeployPlan, resources: RunResources) -> None:
    if not plan.new_model:
        return  # the new config rearranges models the endpoint serves already
    output.print_info(f"Creating model {plan.model_name}")
    create(sagemaker, resources, Resource(MODEL, plan.model_name), plan.run_id,
           ExecutionRoleArn=plan.role_arn, Containers=[{"ModelPackageName": plan.package.arn}],
           Tags=plan.aws_tags)


def create_endpoint_config(sagemaker: Any, plan: DeployPlan, resources: RunResources) -> None:
    output.print_info(f"Creating endpoint config {plan.config_name} ({plan.variant.describe()})")
    capture = {"DataCaptureConfig": plan.data_capture} if plan.data_capture else {}
    shadows = [v.production_variant() for v in plan.variants if v.shadow]
    create(sagemaker, resources, Resource(CONFIG, plan.config_name), plan.run_id,
           ProductionVariants=[v.production_variant() for v in plan.variants if not v.shadow],
           Tags=plan.aws_tags, **capture,
           **({"ShadowProductionVariants": shadows} if shadows else {}))


def start_endpoint(sagemaker: Any, plan: DeployPlan, resources: RunResources) -> str | None:
    """CreateEndpoint, or UpdateEndpoint for an existing one (never recorded for deletion).
    Returns the endpoint's ARN."""
    if plan.is_create:
        output.print_info(f"Creating endpoint {plan.endpoint_name}")
        answer = create(sagemaker, resources, Resource(ENDPOINT, plan.endpoint_name),
                        plan.run_id, EndpointConfigName=plan.config_name, Tags=plan.aws_tags)
        return answer.get("EndpointArn")
    output.print_info(f"Updating endpoint {plan.endpoint_name} to config {plan.config_name}")
    # No DeploymentConfig when the variant names change: SageMaker's guardrails need them kept.
    guardrails = ({"DeploymentConfig": plan.deployment_config} if plan.deployment_config
                  else {})
    sagemaker.update_endpoint(EndpointName=plan.endpoint_name,
                              EndpointConfigName=plan.config_name, **guardrails,
                              **(plan.scaling.update_options() if plan.scaling else {}))
    return plan.endpoint_arn


# ---------------------------------------------------------------------------------------------
# Undo


@dataclass
class RollbackReport:
    removed: list[Resource] = field(default_factory=list)
    left: list[Resource] = field(default_factory=list)
    deleting: list[Resource] = field(default_factory=list)  # delete accepted, not yet gone
    not_ours: list[Resource] = field(default_factory=list)  # left alone: another run's
    problem: str | None = None
    interrupted: BaseException | None = None

    def commands(self, region: str) -> list[str]:
        """What removes the rest, in an order that works under `set -e`: wait for endpoints
        already being deleted, then delete what is left."""
        waits = [f"aws sagemaker wait endpoint-deleted --endpoint-name {shlex.quote(r.name)} "
                 f"--region {region}" for r in self.deleting]
        return waits + cleanup_commands(self.left, region)

    @property
    def unfinished(self) -> list[Resource]:
        return self.deleting + self.left

    def absorb(self, other: RollbackReport) -> bool:
        """Add another rollback's outcome to this one (the first problem and interruption stay
        the ones told); True when that one was interrupted (the caller stops there)."""
        self.removed += other.removed
        self.left += other.left
        self.deleting += other.deleting
        self.not_ours += other.not_ours
        self.problem = self.problem or other.problem
        self.interrupted = self.interrupted or other.interrupted
        return other.interrupted is not None

    def lines(self, region: str) -> list[str]:
        lines = []
        if self.removed:
            lines.append("Rolled back: deleted " + ", ".join(map(str, self.removed)))
        if self.not_ours:
            lines.append("Left alone (they do not carry this run's id): "
                         + ", ".join(map(str, self.not_ours)))
        if self.problem:
            lines.append(f"Rollback stopped: {self.problem}")
        if self.deleting:
            lines.append("Being deleted: " + ", ".join(map(str, self.deleting)))
        if self.unfinished:
            lines.append("Left behind; remove with:")
            lines += [f"  {command}" for command in self.commands(region)]
        elif self.removed:
            lines.append("Nothing this run created is left behind.")
        return lines


def rollback(sagemaker: Any, resources: list[Resource], *, wait: Waiting | None = None,
             owner: str | None = None) -> RollbackReport:
    """Delete `resources` in order. With `owner`, each is first read back and deleted only if
    it still carries that run id. A second Ctrl-C (or SIGTERM) stops it, leaving the rest listed
    with the commands that remove them; so does an endpoint that will not go away (its config
    and model stay while it may still use them)."""
    wait = wait or Waiting()
    report = RollbackReport()
    pending = list(resources)
    try:
        while pending:
            resource = pending[0]
            if owner is not None and not _still_ours(sagemaker, resource, owner, report):
                pending.pop(0)
                continue
            resource.spec.delete(sagemaker, resource.name, wait)
            report.removed.append(pending.pop(0))
            output.print_info(f"Deleted {resource}")
    except (KeyboardInterrupt, Terminated) as interrupt:
        report.interrupted = interrupt
        report.problem = "interrupted"
        _settle_interrupted(sagemaker, pending, report)
    except (bce.ClientError, bce.BotoCoreError, TimeoutError) as exc:
        report.problem = f"could not delete {pending[0]}: {error_message(exc)}"
    report.left = pending
    return report


def _still_ours(sagemaker: Any, resource: Resource, owner: str, report: RollbackReport) -> bool:
    found = run_id_of(sagemaker, resource)
    if found is GONE:
        return False  # nothing to delete (a create AWS never carried out)
    if found != owner:
        report.not_ours.append(resource)
        output.print_info(f"Left {resource} alone: it does not carry this run's id "
                          f"({TAG_RUN_ID}={found or 'none'}), so another run made it")
        return False
    return True


def _settle_interrupted(sagemaker: Any, pending: list[Resource], report: RollbackReport) -> None:
    """The delete that was cut short may have got through: read the endpoint back once, so
    the commands printed neither delete what is gone nor what is already being deleted."""
    if not pending or pending[0].kind != ENDPOINT:
        return
    try:
        current = describe_endpoint(sagemaker, pending[0].name)
    except BaseException:  # noqa: BLE001 - a third Ctrl-C, no answer: keep the delete command
        return
    if current is None:
        report.removed.append(pending.pop(0))
    elif current.get("EndpointStatus") == "Deleting":
        report.deleting.append(pending.pop(0))


def cleanup_commands(resources: list[Resource], region: str) -> list[str]:
    return [resource.delete_command(region) for resource in resources]


def superseded_resources(sagemaker: Any, plan: DeployPlan) -> tuple[list[Resource], list[str]]:
    """The previous config and models that deploy-model made and nothing uses now; also the
    names kept because something else made them."""
    previous = plan.previous
    if previous is None or not previous.config_name or previous.config_name == plan.config_name:
        return [], []
    tags = tags_of(sagemaker, previous.config_arn)
    if tags.get(TAG_RELEASE):
        return [], []  # a release: kept or pruned by modules/deploy_releases.py (--keep-releases)
    if tags.get(TAG_MANAGED_BY) != TOOL_NAME:
        return [], [f"{CONFIG} {previous.config_name}"]
    removable = [Resource(CONFIG, previous.config_name)]
    kept = []
    serving = {variant.model_name for variant in plan.variants}  # an A/B config keeps some
    for model in previous.models:
        if model == plan.model_name or model in serving:
            continue
        arn = resource_arn(sagemaker, Resource(MODEL, model))
        if arn and created_by_tool(sagemaker, arn):
            removable.append(Resource(MODEL, model))
        elif arn:
            kept.append(f"{MODEL} {model}")
    return removable, kept


def delete_endpoint_with_resources(sagemaker: Any, endpoint_name: str, *,
                                   wait: Waiting | None = None) -> RollbackReport | None:
    """Delete an endpoint, then its current config and that config's models. None when there is
    no such endpoint."""
    resources = endpoint_resources(sagemaker, endpoint_name)
    if resources is None:
        return None
    return rollback(sagemaker, resources, wait=wait)


def endpoint_resources(sagemaker: Any, endpoint_name: str) -> list[Resource] | None:
    """The endpoint, its current config and that config's models (what a delete removes, in
    that order); None when there is no such endpoint. Read-only."""
    current = describe_endpoint(sagemaker, endpoint_name)
    if current is None:
        return None
    resources = [Resource(ENDPOINT, endpoint_name)]
    config_name = current.get("EndpointConfigName")
    if config_name:
        resources.append(Resource(CONFIG, config_name))
        resources += [Resource(MODEL, m) for m in config_models(sagemaker, config_name)]
    return resources


def describe_config(sagemaker: Any, config_name: str) -> dict | None:
    """DescribeEndpointConfig, or None when the config does not exist."""
    try:
        return sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    except bce.ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def models_of(config: dict | None) -> list[str]:
    """The models a described endpoint config runs (production and shadow variants)."""
    variants = [*(config or {}).get("ProductionVariants", []),
                *(config or {}).get("ShadowProductionVariants", [])]
    return list(dict.fromkeys(v["ModelName"] for v in variants if v.get("ModelName")))


def config_models(sagemaker: Any, config_name: str) -> list[str]:
    return models_of(describe_config(sagemaker, config_name))
