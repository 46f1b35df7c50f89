"""Releases: every verified deploy of an endpoint is a numbered release, recorded in AWS itself.

No local state: the record is tags, written (AddTags) only once a deploy is verified InService on
its new config (docs/ARCHITECTURE.md, "Releases"):

- on the release's endpoint config and on each of its models: `DeployRelease=<K>` (the release
  number, 1, 2, ... per endpoint), `DeployReleaseVersion`, `DeployReleaseSha256` (the package's
  archive), `DeployReleaseCommit` (git HEAD of the directory deploy-model ran in, or `none`),
  `DeployReleaseCaller` (STS GetCallerIdentity ARN), `DeployReleaseTime` (UTC, ISO 8601). The
  package ARN is the `ModelPackageArn` tag every resource already carries; the config name is the
  resource itself.
- on the endpoint: `DeployRelease=<K>`, the release it serves (and the counter's floor when old
  configs are gone).
- `DeployRelease-<K>=<time> <caller>[ weights=<variant>:<weight>/...][ from=<J>]` on a config that
  was made live again (a rollback to release J) or re-weighted (`--set-weights`) as release K.
- `DeployFailed-<run id>=<time> <status> <package version> <caller>` on the endpoint: a failed
  attempt; the last few are kept.

`list_releases` reads them back (newest first, the live one marked), each with what its config
serves (variants, weights, capacity, data capture); `kept_release_configs` is what a clean-up must
leave alone. A release does not record autoscaling: a rollback keeps the scaling the endpoint has,
so `--history` shows the live scaling, read from Application Auto Scaling, beside the live weights.
"""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore import exceptions as bce

from modules.deploy_package import PackageInfo
from modules.deploy_plan import (
    RUN_ID_LENGTH,
    DeployPlan,
    Variant,
    config_variants,
    resource_name_prefix,
)
from modules.deploy_resources import (
    CONFIG,
    MODEL,
    Resource,
    RollbackReport,
    Waiting,
    describe_config,
    models_of,
    resource_arn,
    rollback,
    tags_of,
)
from modules.deploy_scaling import Scaling, read_scaling
from modules.deploy_traffic import live_capture
from modules.deploy_validation import (
    RELEASE_TAG_BUDGET,
    RELEASE_TAG_KEYS,
    RELEASE_TAG_PREFIXES,
    TAG_ENDPOINT,
    TAG_MANAGED_BY,
    TAG_PACKAGE,
    TAG_RELEASE,
    TAG_RELEASE_CALLER,
    TAG_RELEASE_COMMIT,
    TAG_RELEASE_FROM,
    TAG_RELEASE_SHA256,
    TAG_RELEASE_TIME,
    TAG_RELEASE_VERSION,
    TAG_RUN_ID,
)
from utils import output
from utils.aws_errors import error_message
from utils.endpoint_operations import describe_endpoint
from utils.errors import AwsError
from utils.names import TOOL_NAME

__all__ = ["Release", "ReleaseFacts", "kept_release_configs", "list_releases", "record_release",
           "record_weights_release", "release_number", "release_facts"]

TAG_REAPPLIED_PREFIX = f"{TAG_RELEASE}-"  # DeployRelease-<K>: this config live again as K
TAG_FAILED_PREFIX = "DeployFailed-"
NO_COMMIT = "none"
UNKNOWN_CALLER = "unknown"
MAX_TAG_VALUE = 256
_NOT_TAG_CHARS = re.compile(r"[^\w .:/=+\-@]")  # what SageMaker refuses in a tag value


@dataclass(frozen=True)
class ReleaseFacts:
    """Who made a release and from what: read when it is recorded."""

    time: str
    caller: str
    commit: str


@dataclass(frozen=True)
class Release:
    number: int
    config_name: str
    model_names: tuple[str, ...]
    package_arn: str | None
    version: str | None
    sha256: str | None
    commit: str | None
    caller: str | None
    time: str | None
    run_id: str | None
    reapplied_from: int | None = None  # a rollback: the release it made live again
    state: str = "previous"  # live / previous
    variants: tuple[Variant, ...] = ()  # what it serves: its config's, with its weights
    data_capture: dict | None = None  # its config's DataCaptureConfig, when it captures
    weights_set: bool = False  # --set-weights (or a rollback to one): the config re-weighted

    @property
    def kind(self) -> str:
        if self.reapplied_from is not None:
            return f"rollback to {self.reapplied_from}"
        return "weights" if self.weights_set else "deploy"

    @property
    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants if not v.shadow}

    def serves_as(self, other: Release) -> bool:
        """The same config with the same weights: switching between them changes nothing."""
        return self.config_name == other.config_name and same_shares(self.weights,
                                                                     other.weights)

    def to_dict(self) -> dict[str, Any]:
        return {"release": self.number, "state": self.state, "kind": self.kind,
                "config_name": self.config_name,
                "model_names": list(self.model_names), "model_package_arn": self.package_arn,
                "version": self.version, "sha256": self.sha256, "git_commit": self.commit,
                "caller": self.caller, "time": self.time, "run_id": self.run_id,
                "rollback_to": self.reapplied_from,
                "variants": [v.summary() for v in self.variants],
                "data_capture": capture_text(self.data_capture)}


def same_shares(one: dict[str, float], other: dict[str, float]) -> bool:
    """Weights are relative: 2:2 is 1:1. Compared as shares, to the 6 digits a record keeps."""
    if one.keys() != other.keys():
        return False
    total_one, total_other = sum(one.values()) or 1.0, sum(other.values()) or 1.0
    return all(math.isclose(one[name] / total_one, other[name] / total_other, rel_tol=1e-5,
                            abs_tol=1e-9) for name in one)


@dataclass(frozen=True)
class LiveVariant:
    """A variant as the endpoint serves it now (DescribeEndpoint) and its autoscaling."""

    name: str
    weight: float
    capacity: str  # `2/2 x ml.m5.large` (current/desired) or `serverless (...)`
    shadow: bool = False
    scaling: Scaling | None = None
    scaling_known: bool = True  # False: Application Auto Scaling could not be read

    @property
    def scaling_text(self) -> str:
        if not self.scaling_known:
            return "unknown"
        return self.scaling.describe() if self.scaling else "none"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "capacity": self.capacity,
                "shadow": self.shadow,
                "autoscaling": self.scaling.summary() if self.scaling else None,
                "autoscaling_text": self.scaling_text}


@dataclass(frozen=True)
class FailedAttempt:
    run_id: str
    time: str
    status: str
    version: str
    caller: str

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "state": "failed", "time": self.time,
                "status": self.status, "version": self.version, "caller": self.caller}


@dataclass(frozen=True)
class History:
    endpoint_name: str
    releases: tuple[Release, ...] = ()
    failed: tuple[FailedAttempt, ...] = ()
    live_config: str | None = None
    endpoint_exists: bool = True
    live_variants: tuple[LiveVariant, ...] = ()

    @property
    def live(self) -> Release | None:
        return next((r for r in self.releases if r.state == "live"), None)

    def release(self, number: int) -> Release | None:
        return next((r for r in self.releases if r.number == number), None)

    def to_dict(self) -> dict[str, Any]:
        live = self.live
        return {"endpoint_name": self.endpoint_name, "endpoint_exists": self.endpoint_exists,
                "live_release": live.number if live else None,
                "current_endpoint_config_name": self.live_config,
                "live_variants": [v.to_dict() for v in self.live_variants],
                "releases": [r.to_dict() for r in self.releases],
                "failed": [f.to_dict() for f in self.failed]}


@dataclass
class _ConfigRecord:
    name: str
    tags: dict[str, str]
    models: tuple[str, ...] = field(default_factory=tuple)
    config: dict = field(default_factory=dict)  # DescribeEndpointConfig


# ---------------------------------------------------------------------------------------------
# Reading


def release_number(tags: dict[str, str]) -> int | None:
    """The release a resource's tags say it is (None: not a release)."""
    raw = tags.get(TAG_RELEASE, "")
    return int(raw) if raw.isascii() and raw.isdigit() else None


def list_releases(sagemaker: Any, endpoint_name: str) -> list[Release]:
    """The endpoint's releases whose configs still exist, newest first, the one it serves `live`."""
    return list(read_history(sagemaker, endpoint_name).releases)


def kept_release_configs(sagemaker: Any, endpoint_name: str) -> dict[str, tuple[str, ...]]:
    """Config name -> its models, for every release of the endpoint still kept: a clean-up of
    unused resources must leave these alone (a rollback needs them)."""
    return {r.config_name: r.model_names for r in list_releases(sagemaker, endpoint_name)}


def read_history(sagemaker: Any, endpoint_name: str, autoscaling: Any = None) -> History:
    """The endpoint's releases and failed attempts; with an Application Auto Scaling client,
    also each live variant's scaling."""
    current = describe_endpoint(sagemaker, endpoint_name)
    endpoint_tags = tags_of(sagemaker, current.get("EndpointArn")) if current else {}
    live_config = current.get("EndpointConfigName") if current else None
    records = _release_configs(sagemaker, endpoint_name)
    releases = sorted((r for record in records for r in _releases_of(record)),
                      key=lambda r: r.number, reverse=True)
    releases = _mark_live(releases, live_config, release_number(endpoint_tags))
    configured = next((config_variants(r.config) for r in records if r.name == live_config), ())
    return History(endpoint_name, tuple(releases), tuple(_failed_attempts(endpoint_tags)),
                   live_config, current is not None,
                   _live_variants(current, autoscaling, {v.name: v for v in configured})
                   if current else ())


def _live_variants(current: dict, autoscaling: Any, configured: dict[str, Variant]
                   ) -> tuple[LiveVariant, ...]:
    """The endpoint's variants now; instance types come from its config (DescribeEndpoint
    gives only counts)."""
    found = []
    known = autoscaling is not None
    for key, shadow in (("ProductionVariants", False), ("ShadowProductionVariants", True)):
        for variant in current.get(key) or []:
            name = variant.get("VariantName", "?")
            scaling = None
            if known:
                try:
                    scaling = read_scaling(autoscaling, current["EndpointName"], name)
                except (bce.ClientError, bce.BotoCoreError) as exc:
                    known = False  # the history stands without it
                    output.print_warning(f"Could not read the autoscaling of the variants "
                                         f"({error_message(exc)})")
            found.append(LiveVariant(name, float(variant.get("CurrentWeight", 0.0)),
                                     _live_capacity(variant, configured.get(name)), shadow,
                                     scaling, known))
    return tuple(found)


def _live_capacity(variant: dict, configured: Variant | None) -> str:
    serverless = variant.get("CurrentServerlessConfig")
    if serverless:
        return (f"serverless ({serverless.get('MemorySizeInMB')} MB, "
                f"{serverless.get('MaxConcurrency')} concurrent)")
    if configured is not None and configured.serverless is not None:
        return configured.describe()
    count = f"{variant.get('CurrentInstanceCount', '?')}/{variant.get('DesiredInstanceCount', '?')}"
    kind = configured.instance_type if configured is not None else None
    return f"{count} x {kind}" if kind else f"{count} instances"


def _release_configs(sagemaker: Any, endpoint_name: str) -> list[_ConfigRecord]:
    """The endpoint's configs that carry a release number (deploy-model's, read back)."""
    found = []
    pages = sagemaker.get_paginator("list_endpoint_configs").paginate(
        NameContains=resource_name_prefix(endpoint_name))
    for page in pages:
        for summary in page.get("EndpointConfigs", []):
            tags = tags_of(sagemaker, summary.get("EndpointConfigArn"))
            if (tags.get(TAG_ENDPOINT) == endpoint_name and tags.get(TAG_MANAGED_BY) == TOOL_NAME
                    and release_number(tags) is not None):
                name = summary["EndpointConfigName"]
                config = describe_config(sagemaker, name) or {}
                found.append(_ConfigRecord(name, tags, tuple(models_of(config)), config))
    return found


def _releases_of(record: _ConfigRecord) -> Iterable[Release]:
    tags = record.tags
    first = Release(
        number=release_number(tags) or 0, config_name=record.name, model_names=record.models,
        package_arn=tags.get(TAG_PACKAGE), version=tags.get(TAG_RELEASE_VERSION),
        sha256=tags.get(TAG_RELEASE_SHA256), commit=tags.get(TAG_RELEASE_COMMIT),
        caller=tags.get(TAG_RELEASE_CALLER), time=tags.get(TAG_RELEASE_TIME),
        run_id=tags.get(TAG_RUN_ID), variants=config_variants(record.config),
        data_capture=live_capture(record.config),
        reapplied_from=_number(tags.get(TAG_RELEASE_FROM, "")))
    yield first
    for key, value in tags.items():
        number = key[len(TAG_REAPPLIED_PREFIX):]
        if key.startswith(TAG_REAPPLIED_PREFIX) and number.isascii() and number.isdigit():
            yield _reapplied(first, int(number), value)


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _reapplied(first: Release, number: int, value: str) -> Release:
    """Release `number` on `first`'s config, from its `DeployRelease-<K>` value: a rollback
    (`from=J`; older records name no J: the config's own release) or new weights."""
    time, caller, *extra = [*value.split(" "), ""]
    fields = dict(part.partition("=")[::2] for part in extra)
    weights = _parse_weights(fields.get("weights", ""))
    source = fields.get("from", "")
    reapplied_from = (int(source) if source.isascii() and source.isdigit()
                      else None if weights else first.number)
    variants = tuple(dataclasses.replace(v, weight=weights.get(v.name, v.weight))
                     if not v.shadow else v for v in first.variants)
    return dataclasses.replace(first, number=number, time=time, caller=caller or None,
                               reapplied_from=reapplied_from, variants=variants,
                               weights_set=bool(weights))


def weights_value(weights: dict[str, float]) -> str:
    """`AllTraffic:0.9/challenger:0.1`: a tag value holds no `,` (variant names no `:` or `/`)."""
    return "/".join(f"{name}:{weight:g}" for name, weight in weights.items())


def _parse_weights(text: str) -> dict[str, float]:
    weights = {}
    for part in filter(None, text.split("/")):
        name, _, raw = part.partition(":")
        try:
            weights[name] = float(raw)
        except ValueError:
            return {}  # not written by deploy-model: read as no weights
    return weights


def capture_text(capture: dict | None) -> str | None:
    if not capture:
        return None
    return (f"{capture.get('DestinationS3Uri')} "
            f"({capture.get('InitialSamplingPercentage', 100)} %)")


def _mark_live(releases: list[Release], live_config: str | None,
               endpoint_release: int | None) -> list[Release]:
    """The release the endpoint serves: the one its tag names when that is on its config, else
    the newest on its config; none when it serves a config that is no release."""
    on_config = [r for r in releases if r.config_name == live_config]
    live = next((r for r in on_config if r.number == endpoint_release),
                on_config[0] if on_config else None)
    return [Release(**{**r.__dict__, "state": "live"}) if r is live else r for r in releases]


def _failed_attempts(endpoint_tags: dict[str, str]) -> list[FailedAttempt]:
    failed = []
    for key, value in endpoint_tags.items():
        if key.startswith(TAG_FAILED_PREFIX):
            time, status, version, caller = (value.split(" ", 3) + ["", "", "", ""])[:4]
            failed.append(FailedAttempt(key[len(TAG_FAILED_PREFIX):], time, status, version,
                                        caller))
    return sorted(failed, key=lambda f: f.run_id, reverse=True)


def next_release_number(sagemaker: Any, endpoint_name: str, endpoint_arn: str | None) -> int:
    """One more than any release of the endpoint still recorded, on its configs or (when their
    configs are gone) on the endpoint. No DescribeEndpoint: the watch counts those."""
    numbers = [r.number for record in _release_configs(sagemaker, endpoint_name)
               for r in _releases_of(record)]
    numbers.append(release_number(tags_of(sagemaker, endpoint_arn)) or 0)
    return max(numbers) + 1


# ---------------------------------------------------------------------------------------------
# Writing


def tag_value(text: str) -> str:
    """What SageMaker takes as a tag value: its characters only, at most 256."""
    return _NOT_TAG_CHARS.sub("_", text)[:MAX_TAG_VALUE]


def utc_time(wall_seconds: float) -> str:
    return datetime.fromtimestamp(wall_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def caller_arn(sts: Any) -> str:
    """Who is deploying; a missing answer must not fail a deploy that succeeded."""
    try:
        return sts.get_caller_identity().get("Arn") or UNKNOWN_CALLER
    except (bce.ClientError, bce.BotoCoreError) as exc:
        output.print_warning(f"Could not read the caller identity ({error_message(exc)}); the "
                             f"release records {UNKNOWN_CALLER}")
        return UNKNOWN_CALLER


def git_commit(directory: Path) -> str:
    """HEAD of the git work tree `directory` is in, `<sha>-dirty` with uncommitted changes, or
    `none` (no git, no repository)."""
    try:
        head = subprocess.run(["git", "-C", str(directory), "rev-parse", "--verify", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False)
        if head.returncode != 0:
            return NO_COMMIT
        dirty = subprocess.run(["git", "-C", str(directory), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return NO_COMMIT
    sha = head.stdout.strip()
    return f"{sha}-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else sha


def release_facts(sts: Any, wall_seconds: float, directory: Path) -> ReleaseFacts:
    return ReleaseFacts(time=utc_time(wall_seconds), caller=tag_value(caller_arn(sts)),
                        commit=git_commit(directory))


def release_tags(plan: DeployPlan, number: int, facts: ReleaseFacts) -> list[dict[str, str]]:
    package = plan.package
    values = {TAG_RELEASE: str(number),
              TAG_RELEASE_VERSION: "" if package.version is None else str(package.version),
              TAG_RELEASE_SHA256: package.environment.get("MODEL_SHA256", ""),
              TAG_RELEASE_COMMIT: plan.release_commit or facts.commit,
              TAG_RELEASE_CALLER: facts.caller,
              TAG_RELEASE_TIME: facts.time}
    if plan.rollback_to is not None:
        values[TAG_RELEASE_FROM] = str(plan.rollback_to)
    return [{"Key": key, "Value": tag_value(value)} for key, value in values.items()]


def record_release(sagemaker: Any, plan: DeployPlan, facts: ReleaseFacts,
                   endpoint_arn: str | None) -> int | None:
    """Tag the verified deploy's config and models as the endpoint's next release, and the
    endpoint as serving it (a rollback onto a new config: the config only, its models keep the
    record of the release they came with). Returns the number; None (with a warning) when AWS
    refused: the deploy itself stands."""
    try:
        number = next_release_number(sagemaker, plan.endpoint_name, endpoint_arn)
        tags = release_tags(plan, number, facts)
        models = [] if plan.rollback_to is not None else plan.variants
        for resource in [Resource(CONFIG, plan.config_name),
                         *(Resource(MODEL, v.model_name) for v in models)]:
            arn = resource_arn(sagemaker, resource)
            if arn:
                sagemaker.add_tags(ResourceArn=arn, Tags=tags)
        if endpoint_arn:
            sagemaker.add_tags(ResourceArn=endpoint_arn, Tags=tags[:1])
    except (bce.ClientError, bce.BotoCoreError) as exc:
        output.print_warning(f"The deploy succeeded but its release record could not be written "
                             f"({error_message(exc)}); --history and --rollback will not know it")
        return None
    output.print_info(f"Recorded release {number} of {plan.endpoint_name} "
                      f"({plan.config_name})")
    return number


# ---------------------------------------------------------------------------------------------
# Keeping the last N


def configs_to_keep(releases: Iterable[Release], keep: int, live_config: str | None) -> set[str]:
    """The configs of the newest releases, `keep` distinct ones (a rollback release re-uses a
    config, so it takes no extra place), and always the one the endpoint serves."""
    kept: list[str] = [live_config] if live_config else []
    for release in sorted(releases, key=lambda r: r.number, reverse=True):
        if len(kept) >= keep:
            break
        if release.config_name not in kept:
            kept.append(release.config_name)
    return set(kept)


def prune_releases(sagemaker: Any, endpoint_name: str, keep: int, *, live_config: str | None,
                   wait: Waiting | None = None) -> list[str]:
    """Delete the configs and models of the releases beyond the last `keep`: only what still
    carries its release's run id (read back) and no kept release uses. Returns what went."""
    records = _release_configs(sagemaker, endpoint_name)
    kept = configs_to_keep((r for rec in records for r in _releases_of(rec)), keep, live_config)
    kept_models = {m for rec in records if rec.name in kept for m in rec.models}
    removed: list[str] = []
    for record in records:
        if record.name in kept:
            continue
        targets = [Resource(CONFIG, record.name),
                   *(Resource(MODEL, m) for m in record.models if m not in kept_models)]
        output.print_info(f"Removing release {release_number(record.tags)} of {endpoint_name} "
                          f"(beyond the last {keep}): " + ", ".join(map(str, targets)))
        owner = owning_run_id(record)
        if owner is None:
            continue  # not named after a run: nothing proves it is deploy-model's to delete
        for run_id, group in by_run(targets, first=owner):
            report = rollback(sagemaker, group, wait=wait, owner=run_id)
            removed += [str(r) for r in report.removed]
            if report.unfinished or report.problem:
                output.print_warning("; ".join(report.lines(_region_of(sagemaker))))
    return removed


def by_run(resources: list[Resource], *, first: str) -> list[tuple[str, list[Resource]]]:
    """The resources grouped by the run their name ends with, `first`'s group first: a config
    may run models of an earlier run (a variant change or a rollback re-uses live models), and
    each is deleted only as its own run's, its DeployRunId read back (`rollback(owner=...)`)."""
    groups: dict[str, list[Resource]] = {first: []}
    for resource in resources:
        groups.setdefault(resource.name[-RUN_ID_LENGTH:], []).append(resource)
    return [(run_id, group) for run_id, group in groups.items() if group]


def _region_of(sagemaker: Any) -> str:
    return getattr(getattr(sagemaker, "meta", None), "region_name", "") or ""


# ---------------------------------------------------------------------------------------------
# Failed attempts


MAX_FAILED_KEPT = 3


def record_failure(sagemaker: Any, endpoint_arn: str | None, run_id: str, status: str,
                   version: str, facts: ReleaseFacts) -> None:
    """`DeployFailed-<run id>` on the endpoint, keeping the last MAX_FAILED_KEPT. Best effort:
    the failure being reported matters more than its record."""
    if not endpoint_arn:
        return
    value = tag_value(f"{facts.time} {status or 'Failed'} {version or '-'} {facts.caller}")
    try:
        sagemaker.add_tags(ResourceArn=endpoint_arn,
                           Tags=[{"Key": f"{TAG_FAILED_PREFIX}{run_id}", "Value": value}])
        _drop_oldest(sagemaker, endpoint_arn, TAG_FAILED_PREFIX, MAX_FAILED_KEPT)
    except (bce.ClientError, bce.BotoCoreError) as exc:
        output.print_warning(f"Could not record the failed attempt on the endpoint "
                             f"({error_message(exc)})")


# ---------------------------------------------------------------------------------------------
# Rolling back


@dataclass(frozen=True)
class RollbackTarget:
    release: Release
    config: dict  # DescribeEndpointConfig of its config
    current: dict  # DescribeEndpoint, as read when choosing
    tags: tuple[tuple[str, str], ...]  # the config's own tags, less the release record's
    config_release: int  # the release that wrote the config (a re-weighting of it: earlier)


def choose_rollback_target(sagemaker: Any, endpoint_name: str,
                           to_release: int | None) -> RollbackTarget:
    """Release `to_release`, or the newest one that serves something else than the endpoint
    does now (another config, or other weights); its config and models must still exist.
    Refused (nothing changed) otherwise."""
    current = describe_endpoint(sagemaker, endpoint_name)
    if current is None:
        raise AwsError(f"Endpoint {endpoint_name} not found: there is nothing to roll back",
                       hint="List the endpoints: aws sagemaker list-endpoints")
    history = read_history(sagemaker, endpoint_name)
    release = target_release(history, to_release)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=release.config_name)
    missing = [m for m in release.model_names if resource_arn(sagemaker, Resource(MODEL, m)) is None]
    if missing:
        raise AwsError(f"Release {release.number} cannot be rolled back to: its model "
                       f"{', '.join(missing)} no longer exists", hint=_choose_hint(endpoint_name))
    tags = tags_of(sagemaker, config.get("EndpointConfigArn"))
    # Back onto a re-weighted config: first the release that wrote it, then its weights.
    own = (release_number(tags) or release.number) if release.weights_set else release.number
    return RollbackTarget(release, config, current, _plain_tags(tags), own)


def target_release(history: History, to_release: int | None) -> Release:
    """Release `to_release`, or the newest that serves something else than the live one (another
    config, or the same config with other weights)."""
    name, live = history.endpoint_name, history.live
    # The weights live now (DescribeEndpoint), not only as recorded: a weight change made
    # elsewhere, or one whose record failed, still counts.
    now = {v.name: v.weight for v in history.live_variants if not v.shadow}

    def serves_now(release: Release) -> bool:
        return release.config_name == history.live_config and (
            same_shares(release.weights, now) if now else live is None or live.serves_as(release))

    if to_release is None:
        earlier = [r for r in history.releases if not serves_now(r)]
        if not earlier:
            raise AwsError(f"Endpoint {name} has no earlier release to roll back to",
                           details=[f"Kept releases: {_numbers(history)}"],
                           hint="Releases are kept with --keep-releases N (default 3); deploy "
                                "a package again with -a ARN instead.")
        return earlier[0]
    release = history.release(to_release)
    if release is None:
        raise AwsError(f"Endpoint {name} has no release {to_release}",
                       details=[f"Kept releases: {_numbers(history)}"],
                       hint=_choose_hint(name))
    if serves_now(release):
        now = f"release {live.number}" if live else f"config {history.live_config}"
        raise AwsError(f"Endpoint {name} already serves release {to_release}'s config "
                       f"{release.config_name} with its weights ({now})",
                       hint=_choose_hint(name))
    return release


def _numbers(history: History) -> str:
    return ", ".join(f"{r.number} ({r.state})" for r in history.releases) or "none"


def _choose_hint(endpoint_name: str) -> str:
    return (f"See the releases: python deploy-model.py -e {endpoint_name} --history; then "
            "--rollback --to-release K")


def _plain_tags(tags: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The config's tags without the release record and run id (the rollback sets its own)."""
    return tuple((k, v) for k, v in tags.items()
                 if k not in RELEASE_TAG_KEYS and k != TAG_RUN_ID
                 and not k.startswith(RELEASE_TAG_PREFIXES))


def rollback_package(release: Release) -> PackageInfo:
    """The package as the release recorded it (it need not still be registered)."""
    version = int(release.version) if (release.version or "").isdigit() else None
    return PackageInfo(arn=release.package_arn or "", group="", version=version,
                       approval_status="", package_status="", image=None, model_data_url=None,
                       environment={"MODEL_SHA256": release.sha256 or ""})


MAX_REAPPLIED_KEPT = RELEASE_TAG_BUDGET - len(RELEASE_TAG_KEYS)


def record_rollback_release(sagemaker: Any, plan: DeployPlan, facts: ReleaseFacts,
                            endpoint_arn: str | None) -> int | None:
    """A verified rollback is the next release: `DeployRelease-<K>` on the re-used config
    (the last few kept), `DeployRelease=<K>` on the endpoint."""
    try:
        arn = resource_arn(sagemaker, Resource(CONFIG, plan.config_name))
        number = _reapply(sagemaker, plan.endpoint_name, arn, endpoint_arn, facts,
                          f"from={plan.rollback_to}")
    except (bce.ClientError, bce.BotoCoreError) as exc:
        output.print_warning(f"The rollback succeeded but its release record could not be "
                             f"written ({error_message(exc)})")
        return None
    output.print_info(f"Recorded release {number} of {plan.endpoint_name}: release "
                      f"{plan.rollback_to} ({plan.config_name}) again")
    return number


def record_weights_release(sagemaker: Any, endpoint_name: str, config_name: str,
                           weights: dict[str, float], facts: ReleaseFacts,
                           endpoint_arn: str | None, *, rollback_to: int | None = None
                           ) -> int | None:
    """Verified weights (`--set-weights`, or a rollback to a release's weights) are the next
    release, on the config the endpoint serves: `DeployRelease-<K>=... weights=...[ from=J]`.
    None (said) when that config is no release of deploy-model's, or AWS refused."""
    try:
        arn = resource_arn(sagemaker, Resource(CONFIG, config_name))
        tags = tags_of(sagemaker, arn)
        if release_number(tags) is None or tags.get(TAG_ENDPOINT) != endpoint_name:
            output.print_info(f"{config_name} is no release of deploy-model's: the new weights "
                              "are not recorded as a release")
            return None
        extra = f"weights={weights_value(weights)}"
        if rollback_to is not None:
            extra += f" from={rollback_to}"
        number = _reapply(sagemaker, endpoint_name, arn, endpoint_arn, facts, extra)
    except (bce.ClientError, bce.BotoCoreError, ValueError) as exc:
        why = exc if isinstance(exc, ValueError) else error_message(exc)
        output.print_warning(f"The weights are set but their release record could not be "
                             f"written ({why}); --history and --rollback will not know them")
        return None
    output.print_info(f"Recorded release {number} of {endpoint_name}: "
                      + ("weights of release " + str(rollback_to) + " again"
                         if rollback_to is not None else "new weights")
                      + f" ({config_name})")
    return number


def _reapply(sagemaker: Any, endpoint_name: str, config_arn: str | None,
             endpoint_arn: str | None, facts: ReleaseFacts, extra: str) -> int:
    """`DeployRelease-<K>=<time> <caller> <extra>` on the config (the last few kept) and
    `DeployRelease=<K>` on the endpoint; K is the next release number."""
    room = MAX_TAG_VALUE - len(facts.time) - len(extra) - 2
    if room < 1:
        raise ValueError(f"{extra!r} does not fit in a tag value")
    number = next_release_number(sagemaker, endpoint_name, endpoint_arn)
    # A long caller ARN gives way: its end (role and session) says who it was.
    value = f"{facts.time} {facts.caller[-room:]} {extra}"
    # Room first: the tag budget (RELEASE_TAG_BUDGET) counts MAX_REAPPLIED_KEPT at the most.
    _drop_oldest(sagemaker, config_arn, TAG_REAPPLIED_PREFIX, MAX_REAPPLIED_KEPT - 1)
    sagemaker.add_tags(ResourceArn=config_arn, Tags=[{
        "Key": f"{TAG_REAPPLIED_PREFIX}{number}", "Value": tag_value(value)}])
    if endpoint_arn:
        sagemaker.add_tags(ResourceArn=endpoint_arn,
                           Tags=[{"Key": TAG_RELEASE, "Value": str(number)}])
    return number


def _drop_oldest(sagemaker: Any, arn: str, prefix: str, keep: int) -> None:
    keys = [k for k in tags_of(sagemaker, arn) if k.startswith(prefix)]
    keys.sort(key=lambda k: (len(k), k))  # numbers and run ids both sort by age this way
    if len(keys) > keep:
        sagemaker.delete_tags(ResourceArn=arn, TagKeys=keys[:-keep])


# ---------------------------------------------------------------------------------------------
# Telling


def print_history(history: History) -> None:
    if output.is_json_mode():
        output.print_json_result(history.to_dict())
        return
    output.print_section(f"Releases of {history.endpoint_name}")
    if not history.endpoint_exists:
        output.print_warning(f"Endpoint {history.endpoint_name} does not exist")
    rows = [[r.number, r.state, r.version or "-", _short(r.sha256), _short(r.commit),
             r.time or "-", r.kind, (r.caller or "-").rsplit("/", 1)[-1], r.config_name]
            for r in history.releases]
    if rows:
        output.print_table(["RELEASE", "STATE", "VERSION", "SHA256", "COMMIT", "TIME (UTC)",
                            "KIND", "BY", "CONFIG"], rows)
        if any(r.variants for r in history.releases):  # local mode records no variants
            output.print_table(["RELEASE", "SERVES"],
                               [[r.number, describe_release(r)] for r in history.releases])
    else:
        output.print_info("No releases recorded")
    if history.live is None and history.live_config:
        output.print_warning(f"It serves {history.live_config}, which is no release of "
                             "deploy-model's")
    _print_live_variants(history.live_variants)
    for failed in history.failed:
        output.print_info(f"Failed attempt {failed.run_id} at {failed.time}: {failed.status} "
                          f"(version {failed.version}, by {failed.caller})")


def describe_release(release: Release) -> str:
    """`AllTraffic 90 % (1 x ml.m5.large); challenger 10 % (...); capture s3://b/p (20 %)`."""
    total = sum(release.weights.values()) or 1.0
    parts = [f"{v.name} shadow of {100 * v.weight / _first_weight(release):.0f} % "
             f"({v.describe()})" if v.shadow else
             f"{v.name} {100 * v.weight / total:.0f} % ({v.describe()})"
             for v in release.variants]
    if release.data_capture:
        parts.append(f"capture {capture_text(release.data_capture)}")
    return "; ".join(parts) or "-"


def _first_weight(release: Release) -> float:
    return next((v.weight for v in release.variants if not v.shadow), 0.0) or 1.0


def _print_live_variants(variants: tuple[LiveVariant, ...]) -> None:
    if not variants:
        return
    output.print_section("Serving now")
    total = sum(v.weight for v in variants if not v.shadow) or 1.0
    output.print_table(
        ["VARIANT", "WEIGHT", "CAPACITY", "AUTOSCALING"],
        [[v.name + (" (shadow)" if v.shadow else ""),
          f"{v.weight:g}" + ("" if v.shadow else f" ({100 * v.weight / total:.0f} %)"),
          v.capacity, v.scaling_text] for v in variants])


def _short(text: str | None) -> str:
    if not text or text == NO_COMMIT:
        return text or "-"
    return text[:12] + ("-dirty" if text.endswith("-dirty") else "")


# ---------------------------------------------------------------------------------------------
# Deleting an endpoint with its releases


def kept_release_resources(sagemaker: Any, endpoint_name: str
                           ) -> list[tuple[str | None, list[Resource]]]:
    """Every kept release's config and models, each group with the run id they must still
    carry to be deleted (what utils/delete_endpoint.py removes after the endpoint)."""
    records = _release_configs(sagemaker, endpoint_name)
    return [(owning_run_id(record),
             [Resource(CONFIG, record.name), *(Resource(MODEL, m) for m in record.models)])
            for record in records]


def owning_run_id(record: _ConfigRecord) -> str | None:
    """The run that made a release: the run id its name ends with (`<endpoint>-<run id>`),
    and only when its DeployRunId tag says the same. Deletes check it again, read back, on
    every resource (the models carry it too)."""
    run_id = record.name[-RUN_ID_LENGTH:]
    return run_id if record.tags.get(TAG_RUN_ID) == run_id else None


def delete_kept_releases(sagemaker: Any, endpoint_name: str, *, skip: set[str],
                         wait: Waiting | None = None) -> RollbackReport:
    """Delete the kept releases (not those in `skip`, e.g. already deleted with the endpoint),
    each resource only if it still carries its release's run id, read back."""
    total = RollbackReport()
    for run_id, resources in kept_release_resources(sagemaker, endpoint_name):
        targets = [r for r in resources if str(r) not in skip]
        if not targets or run_id is None:
            total.not_ours += targets  # not proven deploy-model's: left alone
            continue
        for owner, group in by_run(targets, first=run_id):
            if total.absorb(rollback(sagemaker, group, wait=wait, owner=owner)):
                return total
    return total
