"""Autoscaling of an endpoint's variant with Application Auto Scaling, kept right across updates.

A scaled variant is a scalable target (`endpoint/<name>/variant/<variant>`, dimension
`sagemaker:variant:DesiredInstanceCount`) with a target-tracking policy on
`SageMakerVariantInvocationsPerInstance`. SageMaker refuses an UpdateEndpoint that changes the
instance type of, or removes, a scaled variant, and an update otherwise resets the desired count
to the new config's initial count (docs/ARCHITECTURE.md, "Scale and serverless"). So:

- `plan_scaling` decides, before anything is created, what an update does with the scaling the
  variant has now (read back from Application Auto Scaling) and what `--autoscale` asks for:
  deregister first and register again after the update (the instance type changes, or the
  variant goes serverless), or keep it and retain the desired instance count
  (`RetainAllVariantProperties`, only the count retained).
- `ScalingRun` carries it out around the update: `before_update`, `after_in_service`, and
  `restore` (the previous scaling, when a failed update leaves the old config serving).
- `deregister_variants`: what a delete (and reconcile) does before the endpoint goes.

The client is Application Auto Scaling's, made in utils/boto_session.py and passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore import exceptions as bce

from modules.scaling_settings import Autoscale
from utils import output
from utils.aws_errors import error_message
from utils.names import TOOL_NAME

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
POLICY_NAME = f"{TOOL_NAME}-invocations-per-instance"
# Retain only the desired instance count across an update; weights and data capture come from
# the new config (VariantPropertyType in botocore's SageMaker model).
NOT_RETAINED = ("DesiredWeight", "DataCaptureConfig")


def resource_id(endpoint_name: str, variant_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


@dataclass(frozen=True)
class Scaling:
    """A variant's scaling as Application Auto Scaling holds it: the target's bounds and its
    policies (each as the PutScalingPolicy parameters that recreate it)."""

    min_capacity: int
    max_capacity: int
    policies: tuple[dict, ...] = ()

    def describe(self) -> str:
        targets = [p["TargetTrackingScalingPolicyConfiguration"] for p in self.policies
                   if "TargetTrackingScalingPolicyConfiguration" in p]
        tracking = "".join(
            f", target {config.get('TargetValue', 0):g} invocations per instance per minute"
            for config in targets[:1])
        return f"{self.min_capacity}-{self.max_capacity} instances{tracking}"

    def summary(self) -> dict[str, Any]:
        return {"min_capacity": self.min_capacity, "max_capacity": self.max_capacity,
                "policies": [p["PolicyName"] for p in self.policies]}


def policy_of(autoscale: Autoscale) -> dict:
    """The target-tracking policy `--autoscale` asks for, as PutScalingPolicy parameters."""
    config: dict[str, Any] = {
        "TargetValue": float(autoscale.target_invocations),
        "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC}}
    if autoscale.scale_in_cooldown is not None:
        config["ScaleInCooldown"] = autoscale.scale_in_cooldown
    if autoscale.scale_out_cooldown is not None:
        config["ScaleOutCooldown"] = autoscale.scale_out_cooldown
    return {"PolicyName": POLICY_NAME, "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": config}


def scaling_of(autoscale: Autoscale) -> Scaling:
    return Scaling(autoscale.min_capacity, autoscale.max_capacity, (policy_of(autoscale),))


def read_scaling(autoscaling: Any, endpoint_name: str, variant_name: str) -> Scaling | None:
    """The variant's scaling read back from AWS; None when it is not a scalable target."""
    rid = resource_id(endpoint_name, variant_name)
    targets = [t for t in autoscaling.describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=[rid], ScalableDimension=DIMENSION
    ).get("ScalableTargets", []) if t.get("ResourceId") == rid]
    if not targets:
        return None
    answer = autoscaling.describe_scaling_policies(
        ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=DIMENSION)
    policies = tuple(_recreatable(p) for p in answer.get("ScalingPolicies", [])
                     if p.get("ResourceId") == rid)
    return Scaling(targets[0]["MinCapacity"], targets[0]["MaxCapacity"], policies)


def _recreatable(policy: dict) -> dict:
    keep = ("PolicyName", "PolicyType", "TargetTrackingScalingPolicyConfiguration",
            "StepScalingPolicyConfiguration")
    return {key: policy[key] for key in keep if key in policy}


def register(autoscaling: Any, endpoint_name: str, variant_name: str, scaling: Scaling) -> None:
    """Register the target (or change its bounds) and put its policies."""
    rid = resource_id(endpoint_name, variant_name)
    autoscaling.register_scalable_target(
        ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=DIMENSION,
        MinCapacity=scaling.min_capacity, MaxCapacity=scaling.max_capacity)
    for policy in scaling.policies:
        autoscaling.put_scaling_policy(ServiceNamespace=NAMESPACE, ResourceId=rid,
                                       ScalableDimension=DIMENSION, **policy)


def deregister(autoscaling: Any, endpoint_name: str, variant_name: str,
               scaling: Scaling) -> None:
    """Delete the policies, then the target (a policy of a gone target cannot be deleted)."""
    rid = resource_id(endpoint_name, variant_name)
    for policy in scaling.policies:
        _ignoring_absent(lambda name=policy["PolicyName"]: autoscaling.delete_scaling_policy(
            PolicyName=name, ServiceNamespace=NAMESPACE, ResourceId=rid,
            ScalableDimension=DIMENSION))
    _ignoring_absent(lambda: autoscaling.deregister_scalable_target(
        ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=DIMENSION))


def _ignoring_absent(call: Any) -> None:
    """Application Auto Scaling answers a target or policy that is already gone with a
    ValidationException ("No scalable target found", "No scaling policy found")."""
    try:
        call()
    except bce.ClientError as exc:
        if "no scal" not in error_message(exc).lower():
            raise


# While an update runs with a variant's scaling deregistered, the scaling lives only in this
# process. So it is first written on the endpoint as a tag, `DeployScaling-<variant>`, removed
# once it is registered again: a run killed in between (kill -9, a lost machine) leaves it there,
# and the next deploy (`pending_scaling`) registers it again instead of losing it.
PENDING_TAG_PREFIX = "DeployScaling-"


def pending_tag(variant_name: str, scaling: Scaling) -> dict[str, str]:
    """`min=2 max=6` plus, for deploy-model's own policy, its target and cooldowns (other
    policies do not fit in a tag: they are counted, `others=N`)."""
    parts = [f"min={scaling.min_capacity}", f"max={scaling.max_capacity}"]
    others = 0
    for policy in scaling.policies:
        config = policy.get("TargetTrackingScalingPolicyConfiguration") or {}
        metric = (config.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
        if policy.get("PolicyName") != POLICY_NAME or metric != METRIC:
            others += 1
            continue
        parts.append(f"target={config.get('TargetValue', 0):g}")
        parts += [f"{key}={config[name]}" for key, name in (("in", "ScaleInCooldown"),
                                                           ("out", "ScaleOutCooldown"))
                  if name in config]
    if others:
        parts.append(f"others={others}")
    return {"Key": f"{PENDING_TAG_PREFIX}{variant_name}", "Value": " ".join(parts)}


def scaling_from_tag(value: str) -> Scaling | None:
    """The scaling a `DeployScaling-<variant>` tag records; None when it does not parse."""
    fields = dict(part.partition("=")[::2] for part in value.split())
    try:
        low, high = int(fields["min"]), int(fields["max"])
        if "target" not in fields:
            return Scaling(low, high)
        autoscale = Autoscale(low, high, int(float(fields["target"])),
                              int(fields["in"]) if "in" in fields else None,
                              int(fields["out"]) if "out" in fields else None)
    except (KeyError, ValueError):
        return None
    return Scaling(low, high, (policy_of(autoscale),))


def pending_scaling(endpoint_tags: dict[str, str], variant_name: str) -> Scaling | None:
    """The scaling an interrupted run deregistered and did not register again."""
    value = endpoint_tags.get(f"{PENDING_TAG_PREFIX}{variant_name}")
    return scaling_from_tag(value) if value else None


def register_commands(endpoint_name: str, variant_name: str, scaling: Scaling,
                      region: str) -> list[str]:
    """The AWS CLI commands that put `scaling` in place by hand."""
    import json
    import shlex

    rid = resource_id(endpoint_name, variant_name)
    common = (f"--service-namespace {NAMESPACE} --resource-id {rid} --scalable-dimension "
              f"{DIMENSION} --region {region}")
    lines = [f"aws application-autoscaling register-scalable-target {common} --min-capacity "
             f"{scaling.min_capacity} --max-capacity {scaling.max_capacity}"]
    for policy in scaling.policies:
        config = policy.get("TargetTrackingScalingPolicyConfiguration")
        if config is None:
            continue  # step scaling: too long for one line; the console shows it
        lines.append(f"aws application-autoscaling put-scaling-policy {common} --policy-name "
                     f"{shlex.quote(policy['PolicyName'])} --policy-type TargetTrackingScaling "
                     f"--target-tracking-scaling-policy-configuration "
                     f"{shlex.quote(json.dumps(config))}")
    return lines


# ---------------------------------------------------------------------------------------------
# Decide


@dataclass(frozen=True)
class ScalingPlan:
    """What a deploy does with a variant's scaling, fixed before anything is created."""

    variant_name: str
    current: Scaling | None = None  # what the variant has now (an update of a scaled variant)
    after: Scaling | None = None  # what it has once the deploy succeeded
    deregister_first: bool = False  # SageMaker refuses the update while it is scaled
    retain_instance_count: bool = False  # the update keeps the desired count
    reason: str = ""  # why the scaling is deregistered (or dropped) for the update
    pending: bool = False  # `current` is what an interrupted run left recorded, not registered
    # Scaled variants the update removes (--remove-variant, --promote): SageMaker refuses to
    # remove a scaled variant, so their scaling is deregistered first, for good.
    dropped: tuple[tuple[str, Scaling], ...] = ()

    @property
    def changes_anything(self) -> bool:
        return self.deregister_first or self.pending or self.after != self.current

    def update_options(self) -> dict[str, Any]:
        """UpdateEndpoint parameters: retain the autoscaled count (and nothing else)."""
        if not self.retain_instance_count:
            return {}
        return {"RetainAllVariantProperties": True, "ExcludeRetainedVariantProperties": [
            {"VariantPropertyType": kind} for kind in NOT_RETAINED]}

    def steps(self) -> list[str]:
        """The scaling steps, in the order the deploy takes them (shown by --dry-run)."""
        steps = [f"deregister the autoscaling of {name} ({scaling.describe()}) before the "
                 "update: SageMaker refuses to remove a scaled variant"
                 for name, scaling in self.dropped]
        if self.pending and self.current:
            steps.append(f"{self.variant_name}'s autoscaling ({self.current.describe()}) was "
                         "deregistered by an interrupted run (recorded on the endpoint): it is "
                         "carried over")
        if self.deregister_first and self.current and not self.pending:
            steps.append(f"deregister the autoscaling of {self.variant_name} "
                         f"({self.current.describe()}) before the update: {self.reason}")
        elif self.retain_instance_count:
            steps.append(f"update with RetainAllVariantProperties: {self.variant_name} keeps "
                         "its autoscaled instance count")
        if self.after is not None and (self.deregister_first or self.after != self.current):
            verb = "re-register" if self.deregister_first and self.current else "register"
            steps.append(f"once InService, {verb} autoscaling of {self.variant_name}: "
                         f"{self.after.describe()}, target tracking on {METRIC}")
        elif self.after is None and self.current is not None:
            steps.append(f"{self.variant_name} is no longer autoscaled ({self.reason})")
        if self.dropped or (self.current and (self.deregister_first or self.pending)):
            steps.append("if the update fails, the previous autoscaling is registered again")
        return steps

    def summary(self) -> dict[str, Any] | None:
        if self.after is None and self.current is None and not self.dropped:
            return None
        return {"variant_name": self.variant_name,
                "dropped": {name: scaling.summary() for name, scaling in self.dropped},
                "current": self.current.summary() if self.current else None,
                "after": self.after.summary() if self.after else None,
                "deregister_first": self.deregister_first,
                "retain_instance_count": self.retain_instance_count, "steps": self.steps()}


def plan_scaling(current: Scaling | None, autoscale: Autoscale | None, *, variant_name: str,
                 old_instance_type: str | None, new_instance_type: str | None,
                 new_serverless: bool, pending: Scaling | None = None) -> ScalingPlan | None:
    """An update (`current` read back from AWS) or a create (`current` None). `pending`: the
    scaling an interrupted run deregistered (recorded on the endpoint), when none is registered."""
    wanted = scaling_of(autoscale) if autoscale is not None else None
    if current is None and pending is not None:
        # Nothing is registered, so nothing blocks the update: register it (or --autoscale)
        # again afterwards, and restore it if the update fails.
        return ScalingPlan(variant_name, pending, None if new_serverless else wanted or pending,
                           pending=True, reason=("a serverless variant has no instances to scale"
                                                 if new_serverless else
                                                 "recorded by an interrupted run"))
    if current is None:
        return ScalingPlan(variant_name, after=wanted) if wanted else None
    if new_serverless:
        return ScalingPlan(variant_name, current, None, deregister_first=True,
                           reason="a serverless variant has no instances to scale")
    after = wanted or current  # without --autoscale the variant keeps the scaling it has
    if old_instance_type != new_instance_type:
        return ScalingPlan(variant_name, current, after, deregister_first=True,
                           reason=f"SageMaker refuses to change the instance type of a scaled "
                                  f"variant ({old_instance_type} -> {new_instance_type})")
    return ScalingPlan(variant_name, current, after, retain_instance_count=True)


def plan_dropped_scaling(autoscaling: Any, endpoint_name: str, live: list[str],
                         kept: list[str]) -> ScalingPlan | None:
    """A variant change (--remove-variant, --promote): the scaled variants it removes. The kept
    ones keep their names, types and counts, so their scaling stays as it is."""
    if autoscaling is None:
        return None
    dropped = tuple((name, scaling) for name in live if name not in kept
                    for scaling in [read_scaling(autoscaling, endpoint_name, name)] if scaling)
    return ScalingPlan(kept[0], dropped=dropped) if dropped else None


# ---------------------------------------------------------------------------------------------
# Do and undo


@dataclass
class ScalingRun:
    """Carries out a ScalingPlan around one deploy, and remembers what it changed."""

    autoscaling: Any
    endpoint_name: str
    plan: ScalingPlan | None
    region: str
    sagemaker: Any = None  # writes and removes the endpoint's DeployScaling-<variant> record
    endpoint_arn: str | None = None
    deregistered: bool = False

    def before_update(self) -> None:
        """Deregister the scaling SageMaker would refuse the update for (errors propagate:
        the update must not be sent while the variant is still scaled). It is recorded on the
        endpoint first, so a run killed before it is registered again does not lose it."""
        plan = self.plan
        for name, scaling in plan.dropped if plan else ():
            output.print_info(f"Deregistering the autoscaling of {name} ({scaling.describe()}): "
                              "the update removes the variant")
            self._record(name, scaling)
            self.deregistered = True
            deregister(self.autoscaling, self.endpoint_name, name, scaling)
        if plan is not None and plan.pending:
            self.deregistered = True  # nothing registered: restore it if the update fails
            return
        if plan is None or not plan.deregister_first or plan.current is None:
            return
        output.print_info(f"Deregistering the autoscaling of {plan.variant_name} "
                          f"({plan.current.describe()}): {plan.reason}")
        self._record(plan.variant_name, plan.current)
        self.deregistered = True  # set first: a half-done deregistration is restored too
        deregister(self.autoscaling, self.endpoint_name, plan.variant_name, plan.current)

    def _record(self, variant_name: str, scaling: Scaling) -> None:
        if self.sagemaker is not None and self.endpoint_arn:
            self.sagemaker.add_tags(ResourceArn=self.endpoint_arn,
                                    Tags=[pending_tag(variant_name, scaling)])

    def _deregistered(self) -> list[tuple[str, Scaling]]:
        """What this run took away and a failed update gets back: (variant, scaling) pairs."""
        plan = self.plan
        if plan is None or not self.deregistered:
            return []
        own = [(plan.variant_name, plan.current)] if plan.current and (
            plan.deregister_first or plan.pending) else []
        return [*plan.dropped, *own]

    def _forget_record(self) -> None:
        """The scaling is registered (or deliberately gone): drop the endpoint's record of it."""
        plan = self.plan
        if plan is None or self.sagemaker is None or not self.endpoint_arn:
            return
        names = [name for name, _ in plan.dropped]
        if plan.pending or (plan.deregister_first and plan.current):
            names.append(plan.variant_name)
        if not names:
            return
        try:
            self.sagemaker.delete_tags(ResourceArn=self.endpoint_arn,
                                       TagKeys=[f"{PENDING_TAG_PREFIX}{n}" for n in names])
        except (bce.ClientError, bce.BotoCoreError) as exc:
            output.print_warning(f"Could not remove the endpoint's {PENDING_TAG_PREFIX}* "
                                 f"record ({error_message(exc)})")

    def after_in_service(self) -> dict | None:
        """Register what the plan wants once the endpoint serves the new config."""
        plan = self.plan
        if plan is None:
            return None
        if plan.after is not None and plan.changes_anything:
            output.print_info(f"Registering the autoscaling of {plan.variant_name}: "
                              f"{plan.after.describe()}")
            register(self.autoscaling, self.endpoint_name, plan.variant_name, plan.after)
        self._forget_record()
        return plan.summary()

    def restore(self) -> list[str]:
        """After a failed update that left the old config serving: the previous scaling back.
        Returns lines for the report (what was restored, or the commands that restore it)."""
        taken = self._deregistered()
        if not taken:
            return []
        try:
            for name, scaling in taken:
                register(self.autoscaling, self.endpoint_name, name, scaling)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            return [f"Could not restore the previous autoscaling ({error_message(exc)}); "
                    "restore it with:", *[f"  {line}" for line in self.restore_commands()]]
        self._forget_record()
        self.deregistered = False
        lines = [f"Restored the autoscaling of {name} ({scaling.describe()})."
                 for name, scaling in taken]
        for line in lines:
            output.print_info(line)
        return lines

    def restore_commands(self) -> list[str]:
        return [line for name, scaling in self._deregistered()
                for line in register_commands(self.endpoint_name, name, scaling, self.region)]


def deregister_variants(autoscaling: Any, endpoint_name: str,
                        variant_names: list[str]) -> list[str]:
    """Deregister every scaled variant of an endpoint (before it is deleted); returns what was
    deregistered, as `scalable target <resource id>`."""
    done = []
    for variant in variant_names:
        scaling = read_scaling(autoscaling, endpoint_name, variant)
        if scaling is None:
            continue
        deregister(autoscaling, endpoint_name, variant, scaling)
        done.append(f"scalable target {resource_id(endpoint_name, variant)}")
        output.print_info(f"Deregistered the autoscaling of {variant}")
    return done
