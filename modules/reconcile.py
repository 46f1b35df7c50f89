"""Reconcile: find what deploy-model made that nothing uses any more, and remove exactly that.

A run killed outright (`kill -9`, a lost CI runner) cannot roll back: its model and endpoint
config stay, and in local mode a model server may run that no record names. This finds them by
the ownership rule (docs/ARCHITECTURE.md, "Reconcile"), never by name alone:

- SageMaker: a model or endpoint config is an orphan only when its tags, read back from AWS, say
  deploy-model made it (`ManagedBy=deploy-model`), no endpoint uses it (as its config, or a
  config's model), it is not a kept release of an endpoint that exists (`DeployRelease` +
  `EndpointName`), and it was created longer ago than the grace period (a deploy in progress
  creates its model and config minutes before its endpoint uses them).
- Autoscaling: a scalable target of an endpoint that no longer exists, carrying deploy-model's
  scaling policy (targets carry no tags of ours; the policy name is the proof).
- Local: a model server under this state directory that no record names (a kill between
  starting it and writing `endpoint.json`), and records whose server is gone. A process is ours
  only by its command line (`artifacts/serve --model-dir <state dir>/endpoints/<name>/...`)
  and its start time, read again right before it is stopped; the state lock keeps a local
  deploy in progress out of the way.

Removal goes through the deploy's own delete helpers (`deploy_resources.rollback`, which reads
each resource's run id back right before deleting it; `local_endpoint.stop_server`), configs
before models, at most `limit` resources a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modules.deploy_releases import release_number
from modules.deploy_resources import CONFIG, MODEL, Resource, RollbackReport, rollback, tags_of
from modules.deploy_validation import TAG_ENDPOINT, TAG_MANAGED_BY, TAG_RUN_ID
from utils import local_endpoints, output
from utils.names import TOOL_NAME

SCALABLE_TARGET = "scalable target"
# Why a resource of ours is kept (the keys of `SageMakerSurvey.kept`).
IN_USE, KEPT_RELEASE, TOO_NEW = "in_use", "kept_release", "within_grace_period"


@dataclass(frozen=True)
class Orphan:
    """A resource reconcile would remove, with the facts that make it an orphan."""

    kind: str  # model / endpoint-config / local server / local record / local files
    name: str
    reason: str
    created: str | None = None
    run_id: str | None = None
    endpoint_name: str | None = None
    pid: int | None = None
    start_time: str | None = None  # a local server's, as read when it was found
    directory: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    def to_dict(self) -> dict[str, Any]:
        facts = {"kind": self.kind, "name": self.name, "reason": self.reason,
                 "created": self.created, "run_id": self.run_id,
                 "endpoint_name": self.endpoint_name, "pid": self.pid,
                 "directory": self.directory}
        return {key: value for key, value in facts.items() if value is not None}


@dataclass
class SageMakerSurvey:
    orphans: list[Orphan] = field(default_factory=list)
    kept: dict[str, list[str]] = field(
        default_factory=lambda: {IN_USE: [], KEPT_RELEASE: [], TOO_NEW: []})
    not_ours: int = 0  # resources without ManagedBy=deploy-model: never touched, only counted
    endpoint_names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Listed:
    kind: str
    name: str
    arn: str | None
    created: datetime | None


# ---------------------------------------------------------------------------------------------
# SageMaker


def survey_sagemaker(sagemaker: Any, *, grace_seconds: float,
                     now: datetime | None = None) -> SageMakerSurvey:
    """Read every endpoint, config and model (all pages) and sort deploy-model's into orphans and
    kept ones. Read-only."""
    now = now or datetime.now(UTC)
    endpoints = _endpoint_configs_in_use(sagemaker)
    survey = SageMakerSurvey(endpoint_names=endpoints.names)
    configs = _listed(sagemaker, "list_endpoint_configs", "EndpointConfigs", CONFIG,
                      "EndpointConfigName", "EndpointConfigArn")
    kept_configs = set()
    for config in configs:
        orphan = _judge(sagemaker, config, survey, now, grace_seconds, endpoints,
                        in_use=config.name in endpoints.configs)
        if orphan is None:
            kept_configs.add(config.name)
    # A model is in use while any config that stays (ours or not) names it.
    models_in_use = {model for config in kept_configs
                     for model in _models_of(sagemaker, config)}
    for model in _listed(sagemaker, "list_models", "Models", MODEL, "ModelName", "ModelArn"):
        _judge(sagemaker, model, survey, now, grace_seconds, endpoints,
               in_use=model.name in models_in_use)
    return survey


@dataclass(frozen=True)
class _Endpoints:
    names: frozenset[str]
    configs: frozenset[str]  # every config an endpoint serves or is being updated to


def _endpoint_configs_in_use(sagemaker: Any) -> _Endpoints:
    from utils.endpoint_operations import describe_endpoint, list_endpoints

    names, configs = set(), set()
    for summary in list_endpoints(sagemaker):
        name = summary["EndpointName"]
        names.add(name)
        current = describe_endpoint(sagemaker, name) or {}
        pending = current.get("PendingDeploymentSummary") or {}
        configs.update(c for c in (current.get("EndpointConfigName"),
                                   pending.get("EndpointConfigName")) if c)
    return _Endpoints(frozenset(names), frozenset(configs))


def _listed(sagemaker: Any, operation: str, key: str, kind: str, name_key: str,
            arn_key: str) -> list[_Listed]:
    found = []
    for page in sagemaker.get_paginator(operation).paginate():
        found += [_Listed(kind, item[name_key], item.get(arn_key), item.get("CreationTime"))
                  for item in page.get(key, [])]
    return found


def _models_of(sagemaker: Any, config_name: str) -> list[str]:
    from modules.deploy_resources import config_models

    return config_models(sagemaker, config_name)


def _judge(sagemaker: Any, item: _Listed, survey: SageMakerSurvey, now: datetime,
           grace_seconds: float, endpoints: _Endpoints, *, in_use: bool) -> Orphan | None:
    """The orphan `item` is, or None (kept, and counted under why)."""
    tags = tags_of(sagemaker, item.arn)
    if tags.get(TAG_MANAGED_BY) != TOOL_NAME:
        survey.not_ours += 1
        return None
    label = f"{item.kind} {item.name}"
    endpoint = tags.get(TAG_ENDPOINT)
    if in_use:
        survey.kept[IN_USE].append(label)
        return None
    if release_number(tags) is not None and endpoint in endpoints.names:
        survey.kept[KEPT_RELEASE].append(label)
        return None
    if item.created is None or _age_seconds(item.created, now) < grace_seconds:
        survey.kept[TOO_NEW].append(label)
        return None
    orphan = Orphan(item.kind, item.name, _orphan_reason(tags, endpoint, endpoints),
                    created=item.created.isoformat(timespec="seconds"),
                    run_id=tags.get(TAG_RUN_ID), endpoint_name=endpoint)
    survey.orphans.append(orphan)
    return orphan


def _age_seconds(created: datetime, now: datetime) -> float:
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return (now - created).total_seconds()


def _orphan_reason(tags: dict[str, str], endpoint: str | None, endpoints: _Endpoints) -> str:
    if endpoint and endpoint not in endpoints.names:
        return f"its endpoint {endpoint} no longer exists"
    if release_number(tags) is None:
        return "never became a release and nothing uses it (an interrupted deploy)"
    return "nothing uses it"


def remove_sagemaker_orphans(sagemaker: Any, orphans: list[Orphan]) -> RollbackReport:
    """Delete the orphans, configs before models, each only if it still carries the run id it
    had when it was found (read back by `rollback`)."""
    report = RollbackReport()
    for orphan in sorted(orphans, key=lambda o: Resource(o.kind, o.name).spec.delete_order):
        if report.absorb(rollback(sagemaker, [Resource(orphan.kind, orphan.name)],
                                  owner=orphan.run_id)):
            break
    return report


def survey_scaling(autoscaling: Any, endpoint_names: frozenset[str]) -> list[Orphan]:
    """Scalable targets of endpoints that no longer exist, registered by deploy-model (they
    carry its scaling policy, `deploy_scaling.POLICY_NAME`: targets carry no tags of ours).
    Read-only."""
    from modules.deploy_scaling import DIMENSION, NAMESPACE, POLICY_NAME, read_scaling

    orphans = []
    pages = autoscaling.get_paginator("describe_scalable_targets").paginate(
        ServiceNamespace=NAMESPACE, ScalableDimension=DIMENSION)
    for target in (t for page in pages for t in page.get("ScalableTargets", [])):
        endpoint, variant = _endpoint_variant(target.get("ResourceId", ""))
        if not endpoint or endpoint in endpoint_names:
            continue
        scaling = read_scaling(autoscaling, endpoint, variant)
        if scaling and any(p.get("PolicyName") == POLICY_NAME for p in scaling.policies):
            orphans.append(Orphan(SCALABLE_TARGET, target["ResourceId"],
                                  f"its endpoint {endpoint} no longer exists",
                                  endpoint_name=endpoint))
    return orphans


def _endpoint_variant(resource_id: str) -> tuple[str | None, str | None]:
    parts = resource_id.split("/")
    if len(parts) == 4 and parts[0] == "endpoint" and parts[2] == "variant":
        return parts[1], parts[3]
    return None, None


def remove_scaling_orphans(autoscaling: Any, orphans: list[Orphan]) -> list[Orphan]:
    """Deregister them (policies, then the target) with deploy_scaling's own helper."""
    from modules.deploy_scaling import deregister, read_scaling

    removed = []
    for orphan in orphans:
        endpoint, variant = _endpoint_variant(orphan.name)
        scaling = read_scaling(autoscaling, endpoint, variant)
        if scaling is not None:
            deregister(autoscaling, endpoint, variant, scaling)
        removed.append(orphan)
        output.print_info(f"Deregistered {orphan}")
    return removed


# ---------------------------------------------------------------------------------------------
# Local mode


def survey_local(state_dir: Path) -> list[Orphan]:
    """Servers under `state_dir` that no record names, and records whose server is gone.
    Read-only; call it holding `local_endpoints.state_lock`."""
    recorded = {}
    orphans = []
    unrecorded = []  # directories without a record: what a run killed before writing it left
    root = local_endpoints.endpoints_root(state_dir)
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        endpoint = local_endpoints.find_endpoint(state_dir, directory.name)
        if endpoint is None:
            continue
        if not endpoint.record:
            unrecorded.append(endpoint)
        elif endpoint.is_running():
            recorded[endpoint.pid] = endpoint.name
        else:
            orphans.append(Orphan("local record", endpoint.name,
                                  f"its server (pid {endpoint.pid}) is no longer running",
                                  created=endpoint.record.get("created_at"),
                                  directory=str(endpoint.directory)))
    for server in local_endpoints.find_server_processes(state_dir):
        if recorded.get(server.pid) == server.endpoint_name:
            continue
        orphans.append(Orphan("local server", server.endpoint_name,
                              f"pid {server.pid} serves it but no record names that process",
                              pid=server.pid, start_time=server.start_time,
                              directory=str(root / server.endpoint_name)))
    served = {o.name for o in orphans}
    orphans += [Orphan("local files", e.name, "no record and no server (a killed deploy)",
                       directory=str(e.directory)) for e in unrecorded if e.name not in served]
    return orphans


def remove_local_orphans(state_dir: Path, orphans: list[Orphan],
                         stop: Callable[[int], None]) -> tuple[list[Orphan], list[Orphan]]:
    """Stop orphan servers (only while pid + start time still name the process found) and remove
    stale records, and an endpoint directory no record names any more. Returns (removed, left)."""
    removed, left = [], []
    for orphan in orphans:
        if orphan.kind == "local server":
            if not local_endpoints.is_server_process(orphan.pid, start_time=orphan.start_time):
                left.append(orphan)  # gone already, or its pid now names another process
                continue
            stop(orphan.pid)
        endpoint = local_endpoints.find_endpoint(state_dir, orphan.name)
        if endpoint is not None and not (endpoint.record and endpoint.is_running()):
            local_endpoints.remove_endpoint_dir(endpoint.directory)
        removed.append(orphan)
        output.print_info(f"Removed {orphan}")
    return removed, left


# ---------------------------------------------------------------------------------------------
# One run


@dataclass(frozen=True)
class ReconcileSettings:
    apply: bool
    grace_seconds: float
    limit: int
    sagemaker: bool  # survey SageMaker (needs a region)
    local: bool  # survey local endpoints under state_dir
    state_dir: Path
    region: str | None = None


@dataclass
class ReconcileResult:
    settings: ReconcileSettings
    orphans: list[Orphan] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    problem: str | None = None
    interrupted: BaseException | None = None
    survey: SageMakerSurvey | None = None

    def to_dict(self) -> dict[str, Any]:
        settings = self.settings
        kept = self.survey.kept if self.survey else {}
        return {"dry_run": not settings.apply, "region": settings.region,
                "grace_period_minutes": settings.grace_seconds / 60,
                "scopes": [s for s, on in (("sagemaker", settings.sagemaker),
                                           ("local", settings.local)) if on],
                "orphans": [o.to_dict() for o in self.orphans],
                "would_remove": [] if settings.apply else [str(o) for o in self.orphans],
                "removed": self.removed, "left_behind": self.left,
                "kept": {why: len(names) for why, names in kept.items()},
                "not_managed_by_tool": self.survey.not_ours if self.survey else 0,
                "problem": self.problem}


def reconcile(settings: ReconcileSettings, sagemaker: Any | None, autoscaling: Any | None,
              stop: Callable[[int], None]) -> ReconcileResult:
    """Survey, then (with `apply`) remove at most `limit` orphans; local ones under the state
    lock, so no local deploy runs meanwhile."""
    result = ReconcileResult(settings)
    budget = settings.limit
    if settings.sagemaker and sagemaker is not None:
        result.survey = survey_sagemaker(sagemaker, grace_seconds=settings.grace_seconds)
        targets = (survey_scaling(autoscaling, result.survey.endpoint_names)
                   if autoscaling is not None else [])
        found = result.survey.orphans
        result.orphans += targets + found
        if settings.apply:
            deregistered = remove_scaling_orphans(autoscaling, targets[:budget])
            budget -= len(deregistered)
            report = remove_sagemaker_orphans(sagemaker, found[:max(budget, 0)])
            result.removed += [str(o) for o in deregistered] + [str(r) for r in report.removed]
            result.left += ([str(r) for r in report.unfinished]
                            + [str(o) for o in (targets + found)[settings.limit:]])
            budget -= len(report.removed)
            result.problem, result.interrupted = report.problem, report.interrupted
    if settings.local and result.interrupted is None:
        _reconcile_local(settings, result, budget, stop)
    return result


def _reconcile_local(settings: ReconcileSettings, result: ReconcileResult, budget: int,
                     stop: Callable[[int], None]) -> None:
    if not local_endpoints.endpoints_root(settings.state_dir).is_dir():
        return
    with local_endpoints.state_lock(settings.state_dir):
        found = survey_local(settings.state_dir)
        result.orphans += found
        if settings.apply:
            removed, left = remove_local_orphans(settings.state_dir, found[:max(budget, 0)], stop)
            result.removed += [str(o) for o in removed]
            result.left += [str(o) for o in left + found[max(budget, 0):]]
