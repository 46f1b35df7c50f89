"""The ONE test double for what moto's SageMaker does not model (docs/ARCHITECTURE.md, "SageMaker
behaviour the code relies on" and "Testing without AWS").

moto keeps the state (`sagemaker_backends[account][region].endpoints`, configs, models) and
answers every other call; this double patches moto's SageMaker *response* layer inside a context
manager, so it works in-process under `mock_aws` and over HTTP with `ThreadedMotoServer` alike:

- UpdateEndpoint (moto raises NotImplementedError): the endpoint goes `Updating`, keeps its old
  config while updating, and after N DescribeEndpoint calls either switches to the new config
  (success) or, as SageMaker does when an update fails, returns to `InService` on the OLD config
  with `FailureReason` set; or ends `UpdateRollbackFailed`. With a DeploymentConfig (deployment
  guardrails) the variant names must stay the same; without one they may change.
- UpdateEndpointWeightsAndCapacities (moto applies it at once and wipes the instance counts it
  was not given): the endpoint goes `Updating` and after N describes serves the new weights
  (counts kept), or (`weights_update_takes(..., "RolledBack")`) returns to InService on the old
  weights with FailureReason set. Refused, as SageMaker does, while the endpoint is not
  InService, for a variant it does not serve, or a variant named twice.
- CreateEndpoint that stays `Creating` for N describes and then ends `InService` or `Failed`.
- DeleteEndpoint refused while `Creating` (optional), and deletion that takes N describes.
- DescribeEndpoint throttled K times (`ThrottlingException`, which botocore's retry config
  retries; `fast_retries` zeroes botocore's back-off so the tests do not sleep).
- CloudWatch log events (and the log group itself) appearing at the Nth describe, the way the
  container's output shows up during a real deploy.
- The next sagemaker-runtime InvokeEndpoint answer; and which variant answers, as SageMaker says
  it (moto names a canned one): the TargetVariant when given (a name the endpoint does not
  serve is refused with ValidationError), else the first variant with a weight above 0.
- A create of a name that exists is refused, as SageMaker does ("Cannot create already existing
  ..."), for models, endpoint configs and endpoints (moto silently overwrites).
- A lost create response (`lose_create_response`): the resource is created, then the answer is
  replaced by a retryable RequestTimeoutException, so botocore's retry meets "already existing".
- Throttled creates (`throttle_create`): the next K calls of a create action are answered with
  ThrottlingException before moto sees them (botocore retries each).
- `on_call(action, callback)`: run a callback (given moto's SageMaker backend) just before or just
  after moto handles an action: a rival deploy's create, a Ctrl-C or a `kill -9` at that step.
- Shadow variants (moto ignores ShadowProductionVariants): kept on the config and shown by
  DescribeEndpoint of an endpoint on it, with their weights; one shadow beside one production
  variant, as SageMaker's shadow tests take.
- A variant of weight 0 keeps CurrentWeight/DesiredWeight 0 (moto leaves them out).
- AddTags overwrites the value of a key the resource has already, as SageMaker does (moto
  appends a second tag of the same key), and refuses more than 50 tags on a resource.
- Autoscaled variants (moto accepts what AWS refuses): an UpdateEndpoint that changes the
  instance type of, makes serverless, or removes a variant registered with Application Auto
  Scaling (`sagemaker:variant:DesiredInstanceCount`) is refused, as SageMaker does; an update
  resets each variant's desired count to the new config's initial count unless
  `RetainAllVariantProperties` (without DesiredInstanceCount excluded) keeps it.
  `scale_variant` plays the autoscaler having scaled a variant.
- Serverless configs (moto accepts them all): CreateEndpointConfig with a serverless variant is
  refused together with DataCaptureConfig or with more than one variant, as SageMaker's
  serverless feature exclusions say.
- DeleteModelPackage and DeleteModelPackageGroup (moto 5.2.5 lacks both), on moto's own registry
  state, recorded in `package_deletions` in call order. A group that still holds packages is
  refused with ConflictException (the error the API lists for this call), so a rollback must
  delete the version it registered before the group it created.

Progress is counted in DescribeEndpoint calls, not seconds, so tests with a fake clock are exact.
"""

from __future__ import annotations

import collections
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.responses import SageMakerResponse

ACCOUNT = "123456789012"
REGION = "ca-central-1"
MAX_TAGS = 50  # SageMaker's limit of tags on one resource


class ThrottlingException(ServiceException):
    code = "ThrottlingException"
    message = "Rate exceeded"


class ConflictException(ServiceException):
    code = "ConflictException"


class RequestTimeoutException(ServiceException):
    """An error botocore's standard retry mode retries whatever its status: a lost answer."""

    code = "RequestTimeoutException"
    message = "The response was lost on its way back"


# What each create action makes, where moto keeps it, and how SageMaker words a duplicate.
_CREATES = {
    "CreateModel": ("ModelName", "_models", "model"),
    "CreateEndpointConfig": ("EndpointConfigName", "endpoint_configs", "endpoint configuration"),
    "CreateEndpoint": ("EndpointName", "endpoints", "endpoint"),
}


@dataclass
class _Hook:
    action: str
    callback: Any
    after: bool
    times: int


@dataclass
class _Transition:
    """What an endpoint turns into after `describes` more DescribeEndpoint calls."""

    describes: int
    status: str
    failure_reason: str | None = None
    new_config: str | None = None  # set: switch to this config when the transition lands
    retained_counts: dict[str, int] | None = None  # variant -> desired count the update keeps
    remove: bool = False  # deletion completes
    weights: dict[str, float] | None = None  # variant -> weight the weight change lands


@dataclass
class _LogDrop:
    at_describe: int
    lines: list[str]
    stream: str


@dataclass
class _Script:
    describes: int
    outcome: str
    failure_reason: str | None


@dataclass
class SageMakerDouble:
    account: str = ACCOUNT
    region: str = REGION
    fast_retries: bool = True
    calls: collections.Counter = field(default_factory=collections.Counter)
    update_requests: list[dict] = field(default_factory=list)
    # ("package", name or ARN as sent) / ("group", name), in the order they were deleted
    package_deletions: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._create_scripts: dict[str | None, _Script] = {}
        self._update_scripts: list[_Script] = []
        self._weight_scripts: list[_Script] = []
        self.weight_requests: list[list[dict]] = []
        self._transitions: dict[str, _Transition] = {}
        self._describes: collections.Counter = collections.Counter()
        self._logs: dict[str, list[_LogDrop]] = collections.defaultdict(list)
        self._throttles = 0
        self._throttle_after = 0
        self._refuse_delete_while_creating = False
        self._delete_describes = 0
        self._saved: dict[str, Any] = {}
        self._hooks: list[_Hook] = []
        self._lost: collections.Counter = collections.Counter()
        self._create_throttles: collections.Counter = collections.Counter()

    # -- scripting ---------------------------------------------------------------------------

    def create_takes(self, describes: int, outcome: str = "InService",
                     failure_reason: str | None = None, endpoint: str | None = None) -> None:
        """The next CreateEndpoint (of `endpoint`, or any) shows Creating for `describes`
        DescribeEndpoint calls, then `outcome` (InService or Failed)."""
        self._create_scripts[endpoint] = _Script(describes, outcome, failure_reason)

    def update_takes(self, describes: int, outcome: str = "InService",
                     failure_reason: str | None = None) -> None:
        """The next UpdateEndpoint shows Updating for `describes` calls, then: "InService" (on the
        new config), "RolledBack" (InService on the old config, FailureReason set),
        "UpdateRollbackFailed" or "Failed"."""
        self._update_scripts.append(_Script(describes, outcome, failure_reason))

    def weights_update_takes(self, describes: int, outcome: str = "InService",
                             failure_reason: str | None = None) -> None:
        """The next UpdateEndpointWeightsAndCapacities shows Updating for `describes` calls, then
        "InService" (on the new weights) or "RolledBack" (InService on the old weights)."""
        self._weight_scripts.append(_Script(describes, outcome, failure_reason))

    def throttle_describe(self, times: int, after: int = 0) -> None:
        """Answer the `times` DescribeEndpoint calls that follow the next `after` ones with
        ThrottlingException (each botocore retry is a call)."""
        self._throttle_after = after
        self._throttles += times

    def refuse_delete_while_creating(self, refuse: bool = True) -> None:
        self._refuse_delete_while_creating = refuse

    def deleting_takes(self, describes: int) -> None:
        self._delete_describes = describes

    def log_at(self, endpoint: str, describe: int, lines: list[str],
               stream: str = "AllTraffic/i-0123456789abcdef0") -> None:
        """Write `lines` to /aws/sagemaker/Endpoints/<endpoint> at its `describe`-th
        DescribeEndpoint (the group is created then if it does not exist yet)."""
        self._logs[endpoint].append(_LogDrop(describe, list(lines), stream))

    def lose_create_response(self, action: str = "CreateEndpoint", times: int = 1) -> None:
        """The next `times` calls of `action` succeed, but their answer never arrives (a
        retryable error instead), so botocore retries and meets "already existing"."""
        self._lost[action] += times

    def throttle_create(self, times: int, action: str = "CreateEndpoint") -> None:
        """Answer the next `times` calls of `action` with ThrottlingException, unprocessed."""
        self._create_throttles[action] += times

    def on_call(self, action: str, callback: Any, *, after: bool = False, times: int = 1) -> None:
        """Run `callback(backend)` just before (or after) moto handles the next `times` calls of
        `action`. It may change moto's state, raise (e.g. KeyboardInterrupt), or kill a process.
        Hooks of one action queue: the next call runs the first one registered."""
        self._hooks.append(_Hook(action, callback, after, times))

    def answer_invocations_with(self, body: str, content_type: str = "application/json") -> None:
        from moto.sagemakerruntime.models import sagemakerruntime_backends

        backend = sagemakerruntime_backends[self.account][self.region]
        backend.results_queue.append((body, content_type, "AllTraffic", ""))

    # -- inspection --------------------------------------------------------------------------

    @property
    def backend(self) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[self.account][self.region]

    def scale_variant(self, endpoint: str, variant: str, count: int) -> None:
        """The autoscaler moved `variant` of `endpoint` to `count` instances."""
        for summary in self.backend.endpoints[endpoint].production_variants:
            if summary["VariantName"] == variant:
                summary["CurrentInstanceCount"] = summary["DesiredInstanceCount"] = count

    def instance_count_of(self, endpoint: str, variant: str = "AllTraffic") -> int | None:
        return next((v.get("DesiredInstanceCount")
                     for v in self.backend.endpoints[endpoint].production_variants
                     if v["VariantName"] == variant), None)

    def describes_of(self, endpoint: str) -> int:
        return self._describes[endpoint]

    # -- patching ----------------------------------------------------------------------------

    def __enter__(self) -> SageMakerDouble:
        double = self
        names = ("create_endpoint", "describe_endpoint", "delete_endpoint", "update_endpoint",
                 "call_action", "delete_model_package", "delete_model_package_group",
                 "create_model", "create_endpoint_config", "add_tags",
                 "update_endpoint_weights_and_capacities")
        # What the class itself defines, to restore; and what it resolves to (maybe inherited).
        self._saved = {name: SageMakerResponse.__dict__.get(name) for name in names}
        originals = {name: getattr(SageMakerResponse, name, None) for name in names}

        def call_action(response: SageMakerResponse) -> Any:
            action = response._get_action()
            double.calls[action] += 1
            double._run_hooks(action, response.sagemaker_backend, after=False)
            with warnings.catch_warnings():
                # SageMaker's model has no ThrottlingException (or RequestTimeoutException)
                # shape (they are common AWS errors), so moto warns while serialising them.
                warnings.simplefilter("ignore", UserWarning)
                result = originals["call_action"](response)
            double._run_hooks(action, response.sagemaker_backend, after=True)
            return result

        def creating(action: str) -> Any:
            def create(response: SageMakerResponse) -> Any:
                return double._on_create(action, response, originals[_METHODS[action]])
            return create

        def create_endpoint(response: SageMakerResponse) -> Any:
            def created(response: SageMakerResponse) -> Any:
                result = originals["create_endpoint"](response)
                double._on_created(response.sagemaker_backend,
                                   response._get_param("EndpointName"))
                return result
            return double._on_create("CreateEndpoint", response, created)

        def describe_endpoint(response: SageMakerResponse) -> Any:
            name = response._get_param("EndpointName")
            if double._throttle_after > 0:
                double._throttle_after -= 1
            elif double._throttles > 0:
                double._throttles -= 1
                raise ThrottlingException()
            double._on_describe(response.sagemaker_backend, name)
            return originals["describe_endpoint"](response)

        def delete_endpoint(response: SageMakerResponse) -> Any:
            return double._on_delete(response, originals["delete_endpoint"])

        def update_endpoint(response: SageMakerResponse) -> Any:
            return double._on_update(response)

        def delete_model_package(response: SageMakerResponse) -> Any:
            return double._on_delete_package(response)

        def delete_model_package_group(response: SageMakerResponse) -> Any:
            return double._on_delete_package_group(response)

        def add_tags(response: SageMakerResponse) -> Any:
            return double._on_add_tags(response)

        def update_weights(response: SageMakerResponse) -> Any:
            return double._on_update_weights(response)

        SageMakerResponse.call_action = call_action
        SageMakerResponse.update_endpoint_weights_and_capacities = update_weights
        SageMakerResponse.add_tags = add_tags
        SageMakerResponse.delete_model_package = delete_model_package
        SageMakerResponse.delete_model_package_group = delete_model_package_group
        SageMakerResponse.create_endpoint = create_endpoint
        SageMakerResponse.create_model = creating("CreateModel")
        SageMakerResponse.create_endpoint_config = creating("CreateEndpointConfig")
        SageMakerResponse.describe_endpoint = describe_endpoint
        SageMakerResponse.delete_endpoint = delete_endpoint
        SageMakerResponse.update_endpoint = update_endpoint
        self._patch_runtime()
        if self.fast_retries:
            self._patch_backoff()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for name, original in self._saved.items():
            if original is None:
                if name in SageMakerResponse.__dict__:
                    delattr(SageMakerResponse, name)
            else:
                setattr(SageMakerResponse, name, original)
        from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

        SageMakerRuntimeResponse.invoke_endpoint = self._saved.pop("runtime_invoke")
        if "delay_amount" in self._saved:
            from botocore.retries.standard import ExponentialBackoff

            ExponentialBackoff.delay_amount = self._saved.pop("delay_amount")

    def _patch_runtime(self) -> None:
        from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

        original = self._saved["runtime_invoke"] = SageMakerRuntimeResponse.invoke_endpoint
        double = self

        def invoke_endpoint(response: Any) -> Any:
            double.calls["InvokeEndpoint"] += 1
            name = urllib.parse.unquote(response.path.split("/")[2])  # /endpoints/<name>/...
            target = response.headers.get("X-Amzn-SageMaker-Target-Variant")
            invoked = double._invoked_variant(name, target)
            status, headers, body = original(response)
            if invoked:
                headers["x-Amzn-Invoked-Production-Variant"] = invoked
            return status, headers, body

        SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint

    def _invoked_variant(self, endpoint_name: str | None, target: str | None) -> str | None:
        from moto.core.exceptions import JsonRESTError

        endpoint = self.backend.endpoints.get(endpoint_name or "")
        if endpoint is None:
            return target
        variants = endpoint.production_variants
        if target is not None:
            if target not in [v["VariantName"] for v in variants]:
                raise JsonRESTError("ValidationError", f"The variant {target} is not part of "
                                                       f"endpoint {endpoint_name}.")
            return target
        return next((v["VariantName"] for v in variants if (v.get("CurrentWeight") or 0) > 0),
                    variants[0]["VariantName"] if variants else None)

    def _patch_backoff(self) -> None:
        from botocore.retries.standard import ExponentialBackoff

        self._saved["delay_amount"] = ExponentialBackoff.delay_amount
        ExponentialBackoff.delay_amount = lambda backoff, context: 0

    # -- behaviour ---------------------------------------------------------------------------

    def _run_hooks(self, action: str, backend: Any, *, after: bool) -> None:
        """Hooks queue per action: each call runs the first one that is due."""
        hook = next((h for h in self._hooks if h.action == action and h.after == after), None)
        if hook is None:
            return
        hook.times -= 1
        if hook.times <= 0:
            self._hooks.remove(hook)
        hook.callback(backend)

    def _on_create(self, action: str, response: SageMakerResponse, create: Any) -> Any:
        if self._create_throttles[action] > 0:
            self._create_throttles[action] -= 1
            raise ThrottlingException()
        if action == "CreateEndpointConfig":
            self._refuse_serverless_exclusions(response)
        param, store, noun = _CREATES[action]
        name = response._get_param(param)
        existing = getattr(response.sagemaker_backend, store).get(name)
        if existing is not None:
            arn = (f"arn:aws:sagemaker:{self.region}:{self.account}:"
                   f"{noun.replace(' configuration', '-config')}/{name}")
            raise ValidationError(message=f'Cannot create already existing {noun} "{arn}".')
        if action == "CreateEndpointConfig":
            shadows = self._checked_shadows(response)
        result = create(response)
        if action == "CreateEndpointConfig" and shadows:
            getattr(response.sagemaker_backend, store)[name].shadow_production_variants = shadows
        if self._lost[action] > 0:
            self._lost[action] -= 1
            raise RequestTimeoutException()
        return result

    @staticmethod
    def _checked_shadows(response: SageMakerResponse) -> list[dict]:
        """moto ignores ShadowProductionVariants; SageMaker keeps them, one shadow beside one
        production variant."""
        shadows = response._get_param("ShadowProductionVariants") or []
        variants = response._get_param("ProductionVariants") or []
        if shadows and (len(shadows) > 1 or len(variants) > 1):
            raise ValidationError(message="A shadow test takes one production variant and one "
                                          "shadow variant")
        return shadows

    @staticmethod
    def _refuse_serverless_exclusions(response: SageMakerResponse) -> None:
        variants = response._get_param("ProductionVariants") or []
        if not any("ServerlessConfig" in v for v in variants):
            return
        if response._get_param("DataCaptureConfig"):
            raise ValidationError(message="DataCaptureConfig is not supported for serverless "
                                          "endpoint configurations")
        if len(variants) > 1:
            raise ValidationError(message="A serverless endpoint configuration supports one "
                                          "production variant only")

    def _on_created(self, backend: Any, name: str) -> None:
        endpoint = backend.endpoints[name]
        _keep_zero_weights(endpoint, backend.endpoint_configs[endpoint.endpoint_config_name])
        _show_shadows(endpoint, backend.endpoint_configs[endpoint.endpoint_config_name])
        script = self._create_scripts.pop(name, None) or self._create_scripts.pop(None, None)
        if script is None:
            return
        endpoint.endpoint_status = "Creating"
        self._transitions[name] = _Transition(script.describes, script.outcome,
                                              script.failure_reason)

    def _on_describe(self, backend: Any, name: str) -> None:
        self._describes[name] += 1
        self._drop_logs(name)
        transition = self._transitions.get(name)
        endpoint = backend.endpoints.get(name)
        if transition is None or endpoint is None:
            return
        if transition.describes > 0:
            transition.describes -= 1
            return
        del self._transitions[name]
        if transition.remove:
            backend.endpoints.pop(name, None)
            return
        if transition.new_config:
            config = backend.endpoint_configs[transition.new_config]
            endpoint.endpoint_config_name = transition.new_config
            endpoint.production_variants = endpoint._process_production_variants(
                config.production_variants)
            endpoint.data_capture_config = config.data_capture_config  # moto keeps the old one
            _keep_zero_weights(endpoint, config)
            _show_shadows(endpoint, config)
            for summary in endpoint.production_variants:
                kept = (transition.retained_counts or {}).get(summary["VariantName"])
                if kept is not None and "DesiredInstanceCount" in summary:
                    summary["CurrentInstanceCount"] = summary["DesiredInstanceCount"] = kept
        for summary in endpoint.production_variants:
            if transition.weights and summary["VariantName"] in transition.weights:
                summary["CurrentWeight"] = summary["DesiredWeight"] = transition.weights[
                    summary["VariantName"]]
        endpoint.endpoint_status = transition.status
        endpoint.failure_reason = transition.failure_reason

    def _on_delete(self, response: SageMakerResponse, original: Any) -> Any:
        name = response._get_param("EndpointName")
        backend = response.sagemaker_backend
        endpoint = backend.endpoints.get(name)
        if endpoint is not None and self._refuse_delete_while_creating and \
                endpoint.endpoint_status == "Creating":
            raise ValidationError(message=f"Cannot delete endpoint {name} while it is Creating; "
                                          "retry when it has finished")
        if endpoint is None or self._delete_describes <= 0:
            self._transitions.pop(name, None)
            return original(response)
        endpoint.endpoint_status = "Deleting"
        self._transitions[name] = _Transition(self._delete_describes - 1, "Deleting",
                                              remove=True)
        return ActionResult({})

    def _on_add_tags(self, response: SageMakerResponse) -> Any:
        arn, tags = response._get_param("ResourceArn"), response._get_param("Tags") or []
        backend = response.sagemaker_backend
        new_keys = {tag["Key"] for tag in tags}
        have = {tag["Key"] for tag in backend._get_resource_from_arn(arn).tags}
        would_have = len(have | new_keys)
        if would_have > MAX_TAGS:
            raise ValidationError(message=f"Resource {arn} would have {would_have} tags; the "
                                          f"maximum is {MAX_TAGS}")
        backend.delete_tags(arn, list(new_keys))
        return ActionResult({"Tags": backend.add_tags(arn, tags)})

    def _on_update(self, response: SageMakerResponse) -> Any:
        backend = response.sagemaker_backend
        name = response._get_param("EndpointName")
        config_name = response._get_param("EndpointConfigName")
        self.update_requests.append({
            "EndpointName": name, "EndpointConfigName": config_name,
            "DeploymentConfig": response._get_param("DeploymentConfig"),
            "RetainAllVariantProperties": response._get_param("RetainAllVariantProperties"),
            "ExcludeRetainedVariantProperties": response._get_param(
                "ExcludeRetainedVariantProperties")})
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise ValidationError(message=f"Could not find endpoint '{name}'.")
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f"Cannot update in-progress endpoint '{name}'.")
        config = backend.endpoint_configs.get(config_name)
        if config is None:
            raise ValidationError(message=f"Could not find endpoint configuration "
                                          f"'{config_name}'.")
        old = sorted(v["VariantName"] for v in endpoint.production_variants)
        new = sorted(v["VariantName"] for v in config.production_variants)
        if old != new and response._get_param("DeploymentConfig"):
            raise ValidationError(message=f"Variant names {new} differ from the endpoint's {old}; "
                                          "a blue/green update with a DeploymentConfig keeps "
                                          "them")
        self._refuse_changing_scaled_variants(backend, name, config)
        script = self._update_scripts.pop(0) if self._update_scripts else _Script(1, "InService",
                                                                                    None)
        endpoint.endpoint_status = "Updating"
        if script.outcome == "InService":
            transition = _Transition(script.describes, "InService", None, new_config=config_name,
                                     retained_counts=self._retained_counts(response, endpoint))
        elif script.outcome == "RolledBack":
            transition = _Transition(script.describes, "InService",
                                     script.failure_reason or "Update failed; rolled back")
        else:
            transition = _Transition(script.describes, script.outcome, script.failure_reason,
                                     new_config=config_name)
        self._transitions[name] = transition
        return ActionResult({"EndpointArn": endpoint.arn})

    def _on_update_weights(self, response: SageMakerResponse) -> Any:
        backend = response.sagemaker_backend
        name = response._get_param("EndpointName")
        desired = response._get_param("DesiredWeightsAndCapacities") or []
        self.weight_requests.append(desired)
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise ValidationError(message=f"Could not find endpoint '{name}'.")
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f"Cannot update in-progress endpoint '{name}'.")
        serving = [v["VariantName"] for v in endpoint.production_variants]
        asked = [item.get("VariantName") for item in desired]
        unknown = [n for n in asked if n not in serving]
        if unknown or len(set(asked)) != len(asked):
            raise ValidationError(message=f"The variant name(s) {unknown or asked} is/are not "
                                          f"present or not unique within endpoint '{name}'.")
        script = self._weight_scripts.pop(0) if self._weight_scripts else _Script(1, "InService",
                                                                                    None)
        endpoint.endpoint_status = "Updating"
        weights = {item["VariantName"]: float(item["DesiredWeight"]) for item in desired
                   if "DesiredWeight" in item}
        if script.outcome == "InService":
            self._transitions[name] = _Transition(script.describes, "InService", weights=weights)
        else:
            self._transitions[name] = _Transition(
                script.describes, "InService",
                script.failure_reason or "Weight change failed; rolled back")
        return ActionResult({"EndpointArn": endpoint.arn})

    def _scaled_variants(self, endpoint_name: str) -> list[str]:
        from moto.applicationautoscaling.models import applicationautoscaling_backends

        targets = applicationautoscaling_backends[self.account][self.region].targets.get(
            "sagemaker:variant:DesiredInstanceCount", {})
        prefix = f"endpoint/{endpoint_name}/variant/"
        return [rid[len(prefix):] for rid in targets if rid.startswith(prefix)]

    def _refuse_changing_scaled_variants(self, backend: Any, name: str, config: Any) -> None:
        """SageMaker refuses to remove, re-type or make serverless a variant that Application
        Auto Scaling scales: it must be deregistered first."""
        old_config = backend.endpoint_configs.get(backend.endpoints[name].endpoint_config_name)
        old = {v["VariantName"]: v for v in (old_config.production_variants if old_config
                                             else [])}
        new = {v["VariantName"]: v for v in config.production_variants}
        blocked = [variant for variant in self._scaled_variants(name)
                   if variant not in new or "InstanceType" not in new[variant]
                   or new[variant].get("InstanceType") != old.get(variant, {}).get("InstanceType")]
        if blocked:
            raise ValidationError(message=(
                f"The variant(s) {blocked} must be deregistered as scalable targets with AWS "
                "Application Auto Scaling before they can be removed or have their instance "
                "types updated."))

    @staticmethod
    def _retained_counts(response: SageMakerResponse, endpoint: Any) -> dict[str, int] | None:
        if not response._get_param("RetainAllVariantProperties"):
            return None
        excluded = [item.get("VariantPropertyType") for item in
                    response._get_param("ExcludeRetainedVariantProperties") or []]
        if "DesiredInstanceCount" in excluded:
            return None
        return {v["VariantName"]: v["DesiredInstanceCount"] for v in endpoint.production_variants
                if "DesiredInstanceCount" in v}

    def _on_delete_package(self, response: SageMakerResponse) -> Any:
        backend = response.sagemaker_backend
        name = response._get_param("ModelPackageName")
        arn = backend.model_package_name_mapping.get(name, name)
        if arn not in backend.model_packages:
            raise ValidationError(message=f"Model package {name} not found")
        del backend.model_packages[arn]
        for key in [key for key, value in backend.model_package_name_mapping.items()
                    if value == arn]:
            del backend.model_package_name_mapping[key]
        self.package_deletions.append(("package", name))
        return ActionResult({})

    def _on_delete_package_group(self, response: SageMakerResponse) -> Any:
        backend = response.sagemaker_backend
        name = response._get_param("ModelPackageGroupName").rsplit("/", 1)[-1]
        if name not in backend.model_package_groups:
            raise ValidationError(message=f"ModelPackageGroup {name} does not exist.")
        if any(package.model_package_group_name == name
               for package in backend.model_packages.values()):
            raise ConflictException(f"Model package group {name} still contains model packages; "
                                    "delete them first")
        del backend.model_package_groups[name]
        self.package_deletions.append(("group", name))
        return ActionResult({})

    def _drop_logs(self, endpoint: str) -> None:
        count = self._describes[endpoint]
        due = [drop for drop in self._logs.get(endpoint, []) if drop.at_describe == count]
        for drop in due:
            self._write_logs(endpoint, drop)

    def _write_logs(self, endpoint: str, drop: _LogDrop) -> None:
        from moto.logs.models import logs_backends

        logs = logs_backends[self.account][self.region]
        group = f"/aws/sagemaker/Endpoints/{endpoint}"
        if group not in logs.groups:
            logs.create_log_group(group, tags={})
        if drop.stream not in logs.groups[group].streams:
            logs.create_log_stream(group, drop.stream)
        now = int(time.time() * 1000)
        logs.put_log_events(group, drop.stream,
                            [{"timestamp": now + i, "message": line}
                             for i, line in enumerate(drop.lines)])


def _show_shadows(endpoint: Any, config: Any) -> None:
    """The endpoint shows its config's shadow variants (as moto shows production ones)."""
    shadows = getattr(config, "shadow_production_variants", None)
    if shadows:
        endpoint.shadow_production_variants = endpoint._process_production_variants(shadows)
        for summary, spec in zip(endpoint.shadow_production_variants, shadows, strict=True):
            summary["CurrentWeight"] = summary["DesiredWeight"] = float(
                spec.get("InitialVariantWeight", 1.0))
    elif hasattr(endpoint, "shadow_production_variants"):
        del endpoint.shadow_production_variants


def _keep_zero_weights(endpoint: Any, config: Any) -> None:
    """moto leaves out a variant's weight when it is 0; SageMaker shows CurrentWeight 0."""
    weights = {v["VariantName"]: v.get("InitialVariantWeight", 1.0)
               for v in config.production_variants}
    for summary in endpoint.production_variants:
        weight = weights.get(summary["VariantName"])
        if weight is not None:
            summary["CurrentWeight"] = summary["DesiredWeight"] = float(weight)


_METHODS = {"CreateModel": "create_model", "CreateEndpointConfig": "create_endpoint_config",
            "CreateEndpoint": "create_endpoint"}


def resources(sagemaker: Any) -> dict[str, list[str]]:
    """Every model, endpoint config and endpoint: what a failure test checks is empty."""
    return {
        "endpoints": sorted(e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]),
        "configs": sorted(c["EndpointConfigName"]
                          for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]),
        "models": sorted(m["ModelName"] for m in sagemaker.list_models()["Models"]),
    }
