"""Variants: A/B tests on one endpoint (docs/ARCHITECTURE.md, "Where a new feature goes").

Three changes write a new endpoint config and go through the ordinary update (`DeployRun`, with
its watch, verification, rollback, release record and clean-up); `plan_variant_change` decides
them as a frozen `DeployPlan`:

- `--add-variant NAME --weight W`: the live variants as they serve now (models, capacity, live
  weights) plus the package as variant NAME on a new model.
- `--promote VARIANT`: that variant alone (its live model and capacity), weight 1.
- `--remove-variant VARIANT`: the others, with their live weights.

SageMaker's deployment guardrails need an update that keeps the variant names, so these updates
carry no DeploymentConfig (SageMaker still brings up the new fleet before it shifts traffic).

`--set-weights` writes no config: UpdateEndpointWeightsAndCapacities moves the traffic between
the fleets that run already (`change_weights`). It is watched until the endpoint settles,
verified (the live CurrentWeight of every variant equals the request), and on failure the
previous weights are set again.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore import exceptions as bce

from modules.deploy_package import PackageInfo, describe_package
from modules.deploy_plan import (
    UPDATE,
    DeployPlan,
    Previous,
    Variant,
    new_run_id,
    plan_fields,
    read_previous,
    refuse_unless_updatable,
)
from modules.deploy_releases import ReleaseFacts, record_weights_release
from modules.deploy_report import DeployInterrupted, follow_commands
from modules.deploy_scaling import plan_dropped_scaling
from modules.deploy_settings import DeploySettings
from modules.deploy_traffic import planned_capture
from modules.deploy_watch import Timing
from modules.monitor_endpoint import update_settled
from modules.traffic_settings import ADD, PROMOTE, SHADOW, TrafficChange
from utils import output
from utils.aws_errors import error_message
from utils.endpoint_operations import console_url, describe_endpoint, wait_for_endpoint
from utils.errors import AwsError, DeploymentFailed, DeployTimeout, Terminated, ValidationError

__all__ = ["change_weights", "live_variants", "plan_variant_change"]


# ---------------------------------------------------------------------------------------------
# Deciding a new config


def live_variants(current: dict, previous: Previous) -> list[Variant]:
    """The endpoint's variants as they serve now: the config's model and capacity, the live
    weight (a --set-weights since the config was written counts) and instance count."""
    live = {v.get("VariantName"): v for v in (*(current.get("ProductionVariants") or []),
                                              *(current.get("ShadowProductionVariants") or []))}
    variants = []
    shadows = {spec["VariantName"] for spec in previous.shadow_variants}
    for spec in (*previous.production_variants, *previous.shadow_variants):
        name = spec["VariantName"]
        now = live.get(name, {})
        weight = now.get("CurrentWeight", spec.get("InitialVariantWeight", 1.0))
        serverless = spec.get("ServerlessConfig")
        if serverless:
            variants.append(Variant(name, spec["ModelName"], weight=float(weight),
                                    shadow=name in shadows,
                                    serverless=(serverless["MemorySizeInMB"],
                                                serverless["MaxConcurrency"]),
                                    provisioned_concurrency=serverless.get(
                                        "ProvisionedConcurrency")))
            continue
        count = now.get("DesiredInstanceCount") or spec.get("InitialInstanceCount")
        variants.append(Variant(name, spec["ModelName"], spec.get("InstanceType"), count,
                                weight=float(weight), shadow=name in shadows))
    return variants


def plan_variant_change(sagemaker: Any, settings: DeploySettings,
                        resolve_package: Callable[[str | None], PackageInfo], now: datetime,
                        run_id: str | None = None, *, autoscaling: Any = None) -> DeployPlan:
    """The plan of --add-variant, --promote or --remove-variant. `resolve_package(arn)` gives
    the package of the run (arn None: the one the settings name) or of a live model."""
    change = settings.traffic
    assert change is not None
    current = existing_endpoint(sagemaker, settings.endpoint_name, change)
    previous = read_previous(sagemaker, current)
    live = live_variants(current, previous)
    run_id = run_id or new_run_id(now)
    package: PackageInfo
    if change.kind in (ADD, SHADOW):
        package = resolve_package(None)
        variants = (_new_variant(settings, change, live, run_id, package), *live)
    else:
        chosen = _known_variant(live, change, settings.endpoint_name)
        if len(live) == 1:
            what = ("is already its only variant" if change.kind == PROMOTE
                    else "is its only variant; delete the endpoint instead "
                         f"(python utils/delete_endpoint.py -e {settings.endpoint_name})")
            raise ValidationError(f"{chosen.name} of {settings.endpoint_name} {what}")
        variants = ((dataclasses.replace(chosen, weight=1.0, shadow=False),)
                    if change.kind == PROMOTE else _remaining(live, chosen, settings.endpoint_name))
        package = resolve_package(model_package_arn(sagemaker, variants[0].model_name))
    capture, decision = planned_capture(settings, previous.data_capture,
                                        serverless=any(v.serverless for v in variants))
    return DeployPlan(UPDATE, variants=variants, deployment_config=None,
                      endpoint_arn=current.get("EndpointArn"), previous=previous,
                      data_capture=capture, capture_decision=decision,
                      new_model=change.needs_package, traffic=change,
                      scaling=plan_dropped_scaling(autoscaling, settings.endpoint_name,
                                                   [v.name for v in live],
                                                   [v.name for v in variants]),
                      **plan_fields(settings, package, run_id))


def existing_endpoint(sagemaker: Any, endpoint_name: str, change: TrafficChange) -> dict:
    current = describe_endpoint(sagemaker, endpoint_name)
    if current is None:
        raise ValidationError(
            f"Endpoint {endpoint_name} does not exist: --{change.kind} changes the variants of "
            "a live endpoint", hint=f"Deploy it first: python deploy-model.py -a <arn> -e "
                                    f"{endpoint_name}")
    refuse_unless_updatable(current)
    return current


def _new_variant(settings: DeploySettings, change: TrafficChange, live: list[Variant],
                 run_id: str, package: PackageInfo) -> Variant:
    names = [v.name for v in live]
    if change.variant in names:
        raise ValidationError(
            f"Endpoint {settings.endpoint_name} already serves a variant {change.variant}",
            hint=["Choose another name, or shift traffic with --set-weights, or replace it: "
                  f"--remove-variant {change.variant} first."])
    model_name = plan_fields(settings, package, run_id)["config_name"]  # <endpoint>-<run id>
    if change.kind == SHADOW:
        return _shadow_variant(settings, change, live, model_name)
    if settings.serverless is not None:
        return Variant(change.variant or "", model_name, weight=change.weight or 0.0,
                       serverless=(settings.serverless.memory_mb,
                                   settings.serverless.max_concurrency),
                       provisioned_concurrency=settings.serverless.provisioned_concurrency)
    if any(v.serverless for v in live):
        raise ValidationError("A serverless endpoint serves one variant: a second cannot be "
                              "added", hint="Deploy the A/B test on instances.")
    _warn_on_share(change, live)
    return Variant(change.variant or "", model_name, settings.instance_type,
                   settings.instance_count, weight=change.weight or 0.0)


def _warn_on_share(change: TrafficChange, live: list[Variant]) -> None:
    """Weights are relative: --weight 10 beside a champion of weight 1 is 91 % of the traffic."""
    others = sum(v.weight for v in live if not v.shadow)
    share = 100 * (change.weight or 0.0) / ((change.weight or 0.0) + others or 1.0)
    if share > 50:
        output.print_warning(
            f"{change.variant} will get {share:.0f} % of the traffic: weights are relative, and "
            f"the live variants weigh {others:g} together (--weight {others / 9:g} would be "
            "10 %)")


def _shadow_variant(settings: DeploySettings, change: TrafficChange, live: list[Variant],
                    model_name: str) -> Variant:
    """The shadow beside the one production variant: SageMaker copies to it the share of the
    requests that its weight is of the production variant's."""
    production = [v for v in live if not v.shadow]
    if len(production) != 1 or len(live) != 1:
        raise ValidationError(
            f"A shadow test needs an endpoint with one variant; {settings.endpoint_name} serves "
            f"{', '.join(v.name + (' (shadow)' if v.shadow else '') for v in live)}",
            hint="Promote or remove variants first (--promote, --remove-variant).")
    if settings.serverless is not None or production[0].serverless:
        raise ValidationError("Shadow variants run on instances, not serverless",
                              hint="Deploy the endpoint and the shadow on instances.")
    weight = production[0].weight * (change.sampling or 100) / 100
    return Variant(change.variant or "", model_name, settings.instance_type,
                   settings.instance_count, weight=weight, shadow=True)


def _known_variant(live: list[Variant], change: TrafficChange, endpoint_name: str) -> Variant:
    found = next((v for v in live if v.name == change.variant), None)
    if found is None:
        raise ValidationError(f"Endpoint {endpoint_name} has no variant {change.variant}",
                              details=[f"Its variants: {', '.join(v.name for v in live)}"],
                              hint="Name one of them.")
    return found


def _remaining(live: list[Variant], removed: Variant, endpoint_name: str) -> tuple[Variant, ...]:
    # Production variants first (the plan's first variant names the package of the release).
    rest = tuple(sorted((v for v in live if v.name != removed.name),
                        key=lambda v: (v.shadow, -v.weight)))
    if rest and rest[0].shadow:
        raise ValidationError(f"{removed.name} is the production variant of {endpoint_name}; "
                              f"without it only the shadow {rest[0].name} would be left",
                              hint=f"Promote the shadow instead: --promote {rest[0].name}")
    if all(v.weight == 0 for v in rest):
        raise ValidationError(
            f"Removing {removed.name} leaves {endpoint_name} no variant with traffic (the others "
            "have weight 0)", hint="Give another variant traffic first: --set-weights "
                                   f"{rest[0].name}=1,{removed.name}=0")
    return rest


def model_package_arn(sagemaker: Any, model_name: str) -> str:
    """The model package a live model was made from (its container's ModelPackageName)."""
    model = sagemaker.describe_model(ModelName=model_name)
    containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
    arn = containers[0].get("ModelPackageName") if containers else None
    if not arn:
        raise AwsError(f"Model {model_name} was not made from a model package, so deploy-model "
                       "cannot record the release it would serve",
                       hint="Deploy a registered package to the endpoint instead (-a ARN).")
    return arn


def package_resolver(sagemaker: Any, settings: DeploySettings,
                     resolve: Callable[[], PackageInfo]) -> Callable[[str | None], PackageInfo]:
    """The run's own package (checked as every deploy checks it), or a live model's (already
    serving: only described)."""
    def package(arn: str | None) -> PackageInfo:
        return resolve() if arn is None else describe_package(sagemaker, arn)
    return package


# ---------------------------------------------------------------------------------------------
# --set-weights


def change_weights(sagemaker: Any, settings: DeploySettings, timing: Timing,
                   facts: Callable[[], ReleaseFacts], *, rollback_to: int | None = None) -> dict:
    """UpdateEndpointWeightsAndCapacities, watched and verified, then recorded as a release
    (`facts` says who and when; `rollback_to`: the release whose weights these are); the
    previous weights are set again when it fails. Returns the result document."""
    change = settings.traffic
    assert change is not None
    current = existing_endpoint(sagemaker, settings.endpoint_name, change)
    before = live_weights(current)
    unknown = [name for name, _ in change.weights if name not in before]
    if unknown:
        raise ValidationError(f"Endpoint {settings.endpoint_name} has no variant "
                              f"{', '.join(unknown)}",
                              details=[f"Its variants: {', '.join(before)}"],
                              hint="Name its variants in --set-weights.")
    after = {**before, **dict(change.weights)}
    if all(weight == 0 for weight in after.values()):
        raise ValidationError("Invalid --set-weights: every variant of "
                              f"{settings.endpoint_name} would have weight 0",
                              hint="Give at least one variant a weight above 0.")
    _show_weights(settings.endpoint_name, before, after, current.get("EndpointConfigName"))
    started = timing.clock()
    result = {"endpoint_name": settings.endpoint_name, "action": "set-weights",
              "region": settings.region, "endpoint_config_name": current.get("EndpointConfigName"),
              "previous_weights": before, "weights": after,
              "traffic": change.summary()}
    if settings.dry_run:
        output.print_success("Dry run: nothing was changed")
        return {**result, "status": "DryRun", "dry_run": True}
    try:
        send_weights(sagemaker, settings.endpoint_name, dict(change.weights))
        if not settings.monitor:
            output.print_success(f"SageMaker accepted the weights of {settings.endpoint_name}")
            # A release records what was verified; these weights were not watched.
            output.print_info("Not verified (--no-monitor), so not recorded as a release: "
                              "--history will not list it; --rollback compares the live "
                              "weights and sets the last release's back")
            return {**result, "status": "Updating", "monitored": False, "release": None}
        outcome = _wait(sagemaker, settings, current, timing)
    except (KeyboardInterrupt, Terminated) as interrupt:
        raise DeployInterrupted(
            f"Interrupted during the weight change of {settings.endpoint_name}",
            interrupt=interrupt, facts={**result, "status": "Unknown"},
            details=["SageMaker carries on with the weight change. Follow it:",
                     *[f"  {line}" for line in follow_commands(settings.endpoint_name,
                                                               settings.region)],
                     f"Set the previous weights again: {set_back_command(settings, before)}"]
        ) from None
    problem = weights_problem(outcome.description, after, outcome.timed_out)
    if problem:
        _restore(sagemaker, settings, current, before, after, problem, timing)
    output.print_success(f"Verified: {settings.endpoint_name} serves "
                         f"{describe_weights(after)}")
    release = record_weights_release(
        sagemaker, settings.endpoint_name, current.get("EndpointConfigName") or "", after,
        facts(), current.get("EndpointArn"), rollback_to=rollback_to)
    return {**result, "status": "InService", "monitored": True, "release": release,
            "elapsed_seconds": round(timing.clock() - started, 1),
            "console_url": console_url(settings.region, settings.endpoint_name, sagemaker)}


def live_weights(current: dict) -> dict[str, float]:
    return {v["VariantName"]: float(v.get("CurrentWeight", 0.0))
            for v in current.get("ProductionVariants") or []}


def send_weights(sagemaker: Any, endpoint_name: str, weights: dict[str, float]) -> None:
    output.print_info(f"Setting the weights of {endpoint_name}: {describe_weights(weights)}")
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=endpoint_name,
        DesiredWeightsAndCapacities=[{"VariantName": name, "DesiredWeight": weight}
                                     for name, weight in weights.items()])


def describe_weights(weights: dict[str, float]) -> str:
    total = sum(weights.values()) or 1.0
    return ", ".join(f"{name}={weight:g} ({100 * weight / total:.0f} %)"
                     for name, weight in weights.items())


def weights_problem(description: dict | None, expected: dict[str, float],
                    timed_out: bool) -> str | None:
    """Why the endpoint does not serve `expected`, or None (weights compared with a tolerance
    for SageMaker's float representation)."""
    if timed_out:
        return "the weight change did not settle in time"
    if description is None:
        return "the endpoint disappeared"
    if description.get("EndpointStatus") != "InService":
        return f"the endpoint is {description.get('EndpointStatus')}"
    live = live_weights(description)
    wrong = {name: live.get(name) for name, weight in expected.items()
             if live.get(name) is None or not math.isclose(live[name], weight, abs_tol=1e-6)}
    if wrong:
        shown = ", ".join(f"{name}={weight}" for name, weight in wrong.items())
        reason = description.get("FailureReason")
        return f"its live weights are {shown}" + (f" ({reason})" if reason else "")
    return None


def _wait(sagemaker: Any, settings: DeploySettings, current: dict, timing: Timing) -> Any:
    output.print_info(f"Watching the weight change (timeout "
                      f"{output.format_duration(settings.timeout)})")
    return wait_for_endpoint(
        sagemaker, settings.endpoint_name, timeout=settings.timeout,
        poll_interval=settings.poll_interval,
        is_done=update_settled(current.get("EndpointConfigName") or "",
                               current.get("FailureReason")),
        sleep=timing.sleep, clock=timing.clock)


def _restore(sagemaker: Any, settings: DeploySettings, current: dict, before: dict[str, float],
             after: dict[str, float], problem: str, timing: Timing) -> None:
    """Set the previous weights again (when the endpoint can take it), then fail."""
    name = settings.endpoint_name
    details = [f"Asked for: {describe_weights(after)}", f"Problem: {problem}"]
    back = set_back_command(settings, before)
    if not settings.rollback:
        details.append(f"--skip-rollback: set the previous weights with: {back}")
    else:
        try:
            now = describe_endpoint(sagemaker, name)
            if now is not None and now.get("EndpointStatus") == "InService" and (
                    weights_problem(now, before, False) is not None):
                output.print_warning(f"Setting the previous weights of {name} again")
                send_weights(sagemaker, name, before)
                again = _wait(sagemaker, settings, current, timing)
                undone = weights_problem(again.description, before, again.timed_out)
                details.append(f"Rollback: {undone}; set them with: {back}" if undone else
                               f"Rolled back: {name} serves {describe_weights(before)} again")
            elif now is not None and now.get("EndpointStatus") == "InService":
                details.append(f"{name} serves {describe_weights(before)} (SageMaker kept them)")
            else:
                details.append(f"Once it is InService, set the previous weights with: {back}")
        except (bce.ClientError, bce.BotoCoreError) as exc:
            details.append(f"Rollback failed ({error_message(exc)}); set them with: {back}")
    error_type = DeployTimeout if "in time" in problem else DeploymentFailed
    raise error_type(f"The weight change of {name} failed: {problem}", details=details)


def set_back_command(settings: DeploySettings, weights: dict[str, float]) -> str:
    return ("aws sagemaker update-endpoint-weights-and-capacities --endpoint-name "
            f"{settings.endpoint_name} --region {settings.region} "
            "--desired-weights-and-capacities "
            + " ".join(f"VariantName={n},DesiredWeight={w:g}" for n, w in weights.items()))


def _show_weights(endpoint_name: str, before: dict[str, float], after: dict[str, float],
                  config_name: str | None) -> None:
    output.print_section("Plan")
    output.print_key_values({"Action": "Shift traffic (UpdateEndpointWeightsAndCapacities, no "
                                       "new fleet)", "Endpoint": endpoint_name,
                             "Endpoint config": config_name or "(none)",
                             "Weights now": describe_weights(before),
                             "Weights after": describe_weights(after)})
