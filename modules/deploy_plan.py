"""Decide: what one deploy will do, fixed before anything is created.

`plan_deployment` reads the endpoint once and turns the validated settings into a frozen
`DeployPlan` that holds every decision: create or update, the resource names, the variants (a
tuple), the tags, the blue/green `DeploymentConfig`, how long to watch, whether to roll back,
whether to keep what an update replaces. The steps after it (modules/deploy_resources.py,
modules/deploy_watch.py, modules/deploy_endpoint.py) read the plan, never the settings.

- Endpoint absent -> create; InService -> blue/green update on the same variant name; busy or
  broken -> refuse, saying what to do.
- Every run has a run id (`YYYYMMDD-HHMMSS-<8 hex>`): every resource it creates carries it as the
  `DeployRunId` tag, and the model and config are named `<endpoint>-<run id>` after it.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore import exceptions as bce

from modules.deploy_package import PackageInfo
from modules.deploy_scaling import (
    ScalingPlan,
    pending_scaling,
    plan_dropped_scaling,
    plan_scaling,
    read_scaling,
)
from modules.deploy_settings import DeploymentStrategy, DeploySettings, SmokeTest
from modules.deploy_traffic import live_capture, planned_capture
from modules.deploy_validation import (
    ROLLBACK,
    TAG_ENDPOINT,
    TAG_MANAGED_BY,
    TAG_PACKAGE,
    TAG_RUN_ID,
    TAG_STACK,
)
from modules.monitor_endpoint import log_group_name
from modules.traffic_settings import TrafficChange, capture_summary
from utils import output
from utils.aws_errors import ACCESS_DENIED_CODES, error_code, error_message
from utils.endpoint_operations import BUSY_STATUSES, describe_endpoint, is_not_found
from utils.errors import AwsError
from utils.names import MAX_NAME_LENGTH, TOOL_NAME

VARIANT_NAME = "AllTraffic"
CREATE, UPDATE = "create", "update"  # and ROLLBACK (modules/deploy_validation.py)


@dataclass(frozen=True)
class Variant:
    """One production variant: provisioned instances, or serverless (memory MB, concurrency)."""

    name: str
    model_name: str
    instance_type: str | None = None
    instance_count: int | None = None
    weight: float = 1.0
    serverless: tuple[int, int] | None = None
    provisioned_concurrency: int | None = None  # serverless only: concurrency kept warm
    shadow: bool = False  # a ShadowProductionVariant: a copy of the requests, answers unused

    def production_variant(self) -> dict[str, Any]:
        variant: dict[str, Any] = {"VariantName": self.name, "ModelName": self.model_name,
                                   "InitialVariantWeight": self.weight}
        if self.serverless is not None:
            memory, concurrency = self.serverless
            variant["ServerlessConfig"] = {"MemorySizeInMB": memory, "MaxConcurrency": concurrency}
            if self.provisioned_concurrency is not None:
                variant["ServerlessConfig"]["ProvisionedConcurrency"] = (
                    self.provisioned_concurrency)
        else:
            variant.update(InitialInstanceCount=self.instance_count,
                           InstanceType=self.instance_type)
        return variant

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "model_name": self.model_name, "weight": self.weight,
                "instance_type": self.instance_type, "instance_count": self.instance_count,
                "serverless": self.serverless_summary(), "shadow": self.shadow}

    def serverless_summary(self) -> dict[str, Any] | None:
        if self.serverless is None:
            return None
        return {"memory_mb": self.serverless[0], "max_concurrency": self.serverless[1],
                "provisioned_concurrency": self.provisioned_concurrency}

    def describe(self) -> str:
        if self.serverless is not None:
            warm = (f", {self.provisioned_concurrency} provisioned"
                    if self.provisioned_concurrency is not None else "")
            return (f"serverless ({self.serverless[0]} MB, {self.serverless[1]} concurrent"
                    f"{warm})")
        return f"{self.instance_count} x {self.instance_type}"


@dataclass(frozen=True)
class Previous:
    """What an update replaces: the endpoint's config as read when planning."""

    config_name: str | None
    config_arn: str | None = None  # None: the config no longer exists
    models: tuple[str, ...] = ()
    failure_reason: str | None = None
    production_variants: tuple[dict, ...] = ()  # the config's, as DescribeEndpointConfig says
    data_capture: dict | None = None  # the config's DataCaptureConfig, when it captures
    shadow_variants: tuple[dict, ...] = ()  # the config's ShadowProductionVariants


@dataclass(frozen=True)
class DeployPlan:
    action: str  # CREATE or UPDATE
    run_id: str
    endpoint_name: str
    config_name: str
    variants: tuple[Variant, ...]
    package: PackageInfo
    tags: tuple[tuple[str, str], ...]
    region: str
    role_arn: str
    timeout: float
    poll_interval: float | None = None
    monitor: bool = True
    rollback: bool = True
    keep_previous: bool = False
    keep_releases: int = 3  # configs and models of the last N releases stay
    smoke_test: SmokeTest | None = None
    strategy_name: str = "all-at-once"
    rollback_alarms: tuple[str, ...] = ()
    deployment_config: dict | None = None
    endpoint_arn: str | None = None  # known for an update; a create learns it from AWS
    previous: Previous | None = None
    name_was_generated: bool = False
    scaling: ScalingPlan | None = None  # autoscaling: what it does, around an update too
    data_capture: dict | None = None  # the new config's DataCaptureConfig
    rollback_to: int | None = None  # a rollback: the release whose config it makes live again
    capture_decision: str | None = None  # deploy_traffic: set, kept (from the live config), dropped
    new_model: bool = True  # False: the config rearranges live models (promote, remove a variant)
    traffic: TrafficChange | None = None  # modules/deploy_variants.py: the variant change
    release_commit: str | None = None  # a rollback: the commit of the release it serves again

    @property
    def is_create(self) -> bool:
        return self.action == CREATE

    @property
    def variant(self) -> Variant:
        return self.variants[0]

    @property
    def model_name(self) -> str:
        return self.variant.model_name

    @property
    def variant_name(self) -> str:
        return self.variant.name

    @property
    def previous_config(self) -> str | None:
        return self.previous.config_name if self.previous else None

    @property
    def aws_tags(self) -> list[dict[str, str]]:
        return [{"Key": key, "Value": value} for key, value in self.tags]

    def summary(self) -> dict[str, Any]:
        variant = self.variant
        return {
            "action": self.action, "run_id": self.run_id, "endpoint_name": self.endpoint_name,
            "model_name": self.model_name, "endpoint_config_name": self.config_name,
            "variant_name": variant.name, "instance_type": variant.instance_type,
            "instance_count": variant.instance_count, "model_package_arn": self.package.arn,
            "previous_endpoint_config_name": self.previous_config,
            "serverless": variant.serverless_summary(),
            "autoscaling": self.scaling.summary() if self.scaling else None,
            "data_capture": capture_summary(self.data_capture),
            "variants": [v.summary() for v in self.variants],
            "traffic": self.traffic.summary() if self.traffic else None,
        }


RUN_ID_LENGTH = len("YYYYMMDD-HHMMSS-0123abcd")


def new_run_id(now: datetime, token: str | None = None) -> str:
    """`YYYYMMDD-HHMMSS-<8 hex>`: sortable by time, and the random part keeps two runs that
    start in the same second (two CI jobs, a race) apart."""
    return f"{now:%Y%m%d-%H%M%S}-{token or secrets.token_hex(4)}"


def resource_name(endpoint_name: str, run_id: str) -> str:
    """`<endpoint>-<run id>` within SageMaker's 63 characters (the model and the endpoint config
    share it: different resource types, one name to recognise the run by)."""
    base = endpoint_name[: MAX_NAME_LENGTH - len(run_id) - 1].rstrip("-")
    return f"{base}-{run_id}"


def resource_name_prefix(endpoint_name: str) -> str:
    """What every `resource_name` of this endpoint starts with (`<endpoint>-`, shortened as
    `resource_name` shortens it): the filter that finds its configs."""
    return resource_name(endpoint_name, new_run_id(datetime(2000, 1, 1), "0" * 8))[:-RUN_ID_LENGTH]


def resource_tags(settings: DeploySettings, package_arn: str,
                  run_id: str) -> tuple[tuple[str, str], ...]:
    tags = {TAG_MANAGED_BY: TOOL_NAME, TAG_PACKAGE: package_arn, TAG_STACK: settings.stack,
            TAG_ENDPOINT: settings.endpoint_name, TAG_RUN_ID: run_id}
    tags.update(dict(settings.tags))
    return tuple(tags.items())


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
                    now: datetime, run_id: str | None = None, *,
                    autoscaling: Any = None) -> DeployPlan:
    """`autoscaling` (an Application Auto Scaling client) reads the scaling an update must keep
    right; without it an update plans none."""
    run_id = run_id or new_run_id(now)
    name = resource_name(settings.endpoint_name, run_id)
    common = plan_fields(settings, package, run_id)
    current = describe_endpoint(sagemaker, settings.endpoint_name)
    if current is None:
        variant = _variant(settings, VARIANT_NAME, name)
        capture, decision = planned_capture(settings, None, serverless=bool(variant.serverless))
        return DeployPlan(CREATE, variants=(variant,),
                          scaling=_scaling(None, settings, variant, None), data_capture=capture,
                          capture_decision=decision, **common)
    refuse_unless_updatable(current)
    variant = _variant(settings, current_variant_name(current), name)
    previous = read_previous(sagemaker, current)
    capture, decision = planned_capture(settings, previous.data_capture,
                                        serverless=bool(variant.serverless))
    return DeployPlan(
        UPDATE, variants=(variant,),
        deployment_config=deployment_config(settings.strategy, settings.rollback_alarms),
        endpoint_arn=current.get("EndpointArn"), previous=previous,
        scaling=_scaling(autoscaling, settings, variant, previous,
                         _pending(sagemaker, autoscaling, current, variant.name)),
        data_capture=capture, capture_decision=decision, **common)


def plan_rollback(sagemaker: Any, settings: DeploySettings, current: dict, *, release: int,
                  config: dict, package: PackageInfo, tags: tuple[tuple[str, str], ...],
                  now: datetime, autoscaling: Any = None, commit: str | None = None) -> DeployPlan:
    """Switch the endpoint (`current`, as described) back to a release's existing `config`
    (as described): the update path, creating nothing. Blue/green with the deployment
    guardrails asked for when the one variant keeps its name; when the variants differ (an A/B
    test or a shadow came or went since), a plain update, as the variant changes make."""
    refuse_unless_updatable(current)
    run_id = new_run_id(now)
    variants = config_variants(config)
    live = [v.get("VariantName", "") for v in (*(current.get("ProductionVariants") or []),
                                               *(current.get("ShadowProductionVariants") or []))]
    previous = read_previous(sagemaker, current)
    if len(live) == 1 and [v.name for v in variants] == live:
        _refuse_steps_without_instances(settings, release, variants[0])
        guardrails = deployment_config(settings.strategy, settings.rollback_alarms)
        scaling = _scaling(autoscaling, settings, variants[0], previous,
                           _pending(sagemaker, autoscaling, current, variants[0].name))
    else:
        _refuse_guardrails_across_variants(settings, release, variants, live)
        guardrails = None
        scaling = _rollback_scaling(sagemaker, autoscaling, settings, current, variants, live,
                                    previous)
    capture, decision = planned_capture(settings, previous.data_capture,
                                        serverless=any(v.serverless for v in variants))
    reuse = capture == live_capture(config)
    # The release's config captures otherwise than the endpoint should now (the live capture
    # is kept, or --data-capture / --no-data-capture said otherwise): a new config of this run
    # with the release's variants and models, through the ordinary update.
    return DeployPlan(
        ROLLBACK if reuse else UPDATE, run_id=run_id, endpoint_name=settings.endpoint_name,
        config_name=(config["EndpointConfigName"] if reuse
                     else resource_name(settings.endpoint_name, run_id)),
        variants=variants, package=package, new_model=False,
        data_capture=capture, capture_decision=decision,
        tags=(*tags, (TAG_RUN_ID, run_id)), region=settings.region, role_arn="",
        timeout=settings.timeout, poll_interval=settings.poll_interval, monitor=settings.monitor,
        rollback=settings.rollback, keep_previous=settings.keep_previous,
        keep_releases=settings.keep_releases, smoke_test=settings.smoke_test,
        strategy_name=settings.strategy.name, rollback_alarms=settings.rollback_alarms,
        deployment_config=guardrails, endpoint_arn=current.get("EndpointArn"),
        previous=previous, scaling=scaling, rollback_to=release, release_commit=commit)


def _refuse_steps_without_instances(settings: DeploySettings, release: int,
                                    variant: Variant) -> None:
    """Canary and linear shift traffic in steps of the release's instances (checked here: the
    count is the release's, known once its config is read)."""
    if settings.strategy.name == "all-at-once":
        return
    if variant.serverless is not None or (variant.instance_count or 0) < 2:
        raise AwsError(
            f"Release {release} of {settings.endpoint_name} runs {variant.describe()}: "
            f"--deployment-strategy {settings.strategy.name} shifts traffic in steps of 10-50 % "
            "of at least 2 instances", hint="Roll back with --deployment-strategy all-at-once "
                                            "(the default).")


def _refuse_guardrails_across_variants(settings: DeploySettings, release: int,
                                       variants: tuple[Variant, ...], live: list[str]) -> None:
    guarded = [flag for flag, used in (
        (f"--deployment-strategy {settings.strategy.name}", settings.strategy.name != "all-at-once"),
        ("--rollback-alarm", bool(settings.rollback_alarms))) if used]
    if guarded:
        raise AwsError(
            f"Release {release} of {settings.endpoint_name} serves the variants "
            f"{', '.join(v.name for v in variants)}, the endpoint {', '.join(live)}: "
            f"{', '.join(guarded)} cannot be used, SageMaker's deployment guardrails need an "
            "update that keeps the variant names", hint="Roll back without them; the rollback "
                                                       "is still watched and verified.")


def _rollback_scaling(sagemaker: Any, autoscaling: Any, settings: DeploySettings, current: dict,
                      variants: tuple[Variant, ...], live: list[str],
                      previous: Previous) -> ScalingPlan | None:
    """Scaled variants the rollback removes are deregistered first (SageMaker refuses to
    remove a scaled variant); a scaled variant it keeps is kept right as a deploy keeps it."""
    dropped = plan_dropped_scaling(autoscaling, settings.endpoint_name, live,
                                   [v.name for v in variants])
    kept = [plan for v in variants if v.name in live and not v.shadow
            for plan in [_scaling(autoscaling, settings, v, previous,
                                  _pending(sagemaker, autoscaling, current, v.name))] if plan]
    if len(kept) > 1:
        raise AwsError(f"{', '.join(p.variant_name for p in kept)} of {settings.endpoint_name} "
                       "are autoscaled and kept by this rollback; deploy-model keeps the "
                       "scaling of one kept variant right across an update",
                       hint="Deregister the autoscaling of all but one first (aws "
                            "application-autoscaling deregister-scalable-target), then roll back.")
    if not kept:
        return dropped
    return dataclasses.replace(kept[0], dropped=dropped.dropped) if dropped else kept[0]


def config_variants(config: dict) -> tuple[Variant, ...]:
    """The variants a described endpoint config serves, production first, then shadows."""
    return (*(variant_of(v) for v in config.get("ProductionVariants") or []),
            *(dataclasses.replace(variant_of(v), shadow=True)
              for v in config.get("ShadowProductionVariants") or []))


def variant_of(production_variant: dict) -> Variant:
    """A Variant as an endpoint config describes it."""
    serverless = production_variant.get("ServerlessConfig")
    common = dict(name=production_variant["VariantName"],
                  model_name=production_variant.get("ModelName", ""),
                  weight=float(production_variant.get("InitialVariantWeight", 1.0)))
    if serverless:
        return Variant(**common, serverless=(serverless["MemorySizeInMB"],
                                             serverless["MaxConcurrency"]),
                       provisioned_concurrency=serverless.get("ProvisionedConcurrency"))
    return Variant(**common, instance_type=production_variant.get("InstanceType"),
                   instance_count=production_variant.get("InitialInstanceCount"))


def _pending(sagemaker: Any, autoscaling: Any, current: dict, variant_name: str) -> Any:
    """The scaling an interrupted run recorded on the endpoint and never registered again."""
    if autoscaling is None or not current.get("EndpointArn"):
        return None
    tags = sagemaker.list_tags(ResourceArn=current["EndpointArn"]).get("Tags", [])
    return pending_scaling({t.get("Key", ""): t.get("Value", "") for t in tags}, variant_name)


def plan_fields(settings: DeploySettings, package: PackageInfo, run_id: str) -> dict[str, Any]:
    """The fields every plan of this run takes from its settings (names, tags, watching)."""
    return dict(
        run_id=run_id, endpoint_name=settings.endpoint_name,
        config_name=resource_name(settings.endpoint_name, run_id), package=package,
        tags=resource_tags(settings, package.arn, run_id), region=settings.region,
        role_arn=settings.role_arn or "", timeout=settings.timeout,
        poll_interval=settings.poll_interval, monitor=settings.monitor,
        rollback=settings.rollback, keep_previous=settings.keep_previous,
        keep_releases=settings.keep_releases,
        smoke_test=settings.smoke_test, strategy_name=settings.strategy.name,
        rollback_alarms=settings.rollback_alarms, name_was_generated=settings.name_was_generated)


def _scaling(autoscaling: Any, settings: DeploySettings, variant: Variant,
             previous: Previous | None, pending: Any = None) -> ScalingPlan | None:
    """The variant's scaling now (read back for an update) and what this deploy makes of it."""
    current = (_current_scaling(autoscaling, settings, variant.name)
               if autoscaling is not None and previous is not None else None)
    old_type = next((v.get("InstanceType") for v in (previous.production_variants
                                                      if previous else ())
                     if v.get("VariantName") == variant.name), None)
    return plan_scaling(current, settings.autoscale, variant_name=variant.name,
                        old_instance_type=old_type, new_instance_type=variant.instance_type,
                        new_serverless=variant.serverless is not None, pending=pending)


def _variant(settings: DeploySettings, variant_name: str, model_name: str) -> Variant:
    if settings.serverless is not None:
        serverless = settings.serverless
        return Variant(variant_name, model_name,
                       serverless=(serverless.memory_mb, serverless.max_concurrency),
                       provisioned_concurrency=serverless.provisioned_concurrency)
    return Variant(variant_name, model_name, settings.instance_type, settings.instance_count)


def _current_scaling(autoscaling: Any, settings: DeploySettings, variant_name: str) -> Any:
    """The variant's scaling, read back. Without permission to read it, a deploy that does not
    ask for autoscaling goes on as if there were none (SageMaker itself then refuses an update a
    scaled variant cannot take, and the run rolls back); one that asks for it stops here."""
    try:
        return read_scaling(autoscaling, settings.endpoint_name, variant_name)
    except bce.ClientError as exc:
        if settings.autoscale is not None or error_code(exc) not in ACCESS_DENIED_CODES:
            raise
        output.print_warning(f"Could not read the autoscaling of {variant_name} "
                             f"({error_message(exc)}); planning as if it had none")
        return None


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


def current_variant_name(current: dict) -> str:
    """Blue/green updates keep the variant name, so reuse the endpoint's own."""
    variants = current.get("ProductionVariants") or []
    shadows = [v.get("VariantName", "?") for v in current.get("ShadowProductionVariants") or []]
    if shadows:
        raise AwsError(f"Endpoint {current['EndpointName']} has the shadow variant "
                       f"{', '.join(shadows)}; a deploy would drop it",
                       hint=[f"Promote it (--promote {shadows[0]}) or remove it "
                             f"(--remove-variant {shadows[0]}) first."])
    if len(variants) > 1:
        names = ", ".join(v.get("VariantName", "?") for v in variants)
        raise AwsError(f"Endpoint {current['EndpointName']} serves {len(variants)} variants "
                       f"({names}); deploy-model updates single-variant endpoints only",
                       hint=["Change its variants one at a time: --promote VARIANT (then deploy "
                             "to it), --remove-variant, --set-weights or --add-variant.",
                             "Or deploy to a new --endpoint-name."])
    return variants[0].get("VariantName", VARIANT_NAME) if variants else VARIANT_NAME


def read_previous(sagemaker: Any, current: dict) -> Previous:
    name = current.get("EndpointConfigName")
    reason = current.get("FailureReason")
    if not name:
        return Previous(None, failure_reason=reason)
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=name)
    except bce.ClientError as exc:
        if is_not_found(exc):
            return Previous(name, failure_reason=reason)  # deleted already: nothing to tidy
        raise
    shadows = tuple(config.get("ShadowProductionVariants") or ())
    models = tuple(v["ModelName"] for v in (*config.get("ProductionVariants", []), *shadows)
                   if v.get("ModelName"))
    return Previous(name, config.get("EndpointConfigArn"), models, reason,
                    tuple(config.get("ProductionVariants", [])), live_capture(config), shadows)
