"""Scale and cost settings of a deploy: a serverless variant, or instance autoscaling.

Validated with the other deploy inputs (modules/deploy_validation.py calls `scaling_from_args`),
before any AWS call, against the limits botocore's SageMaker model
states and the rules AWS applies (docs/ARCHITECTURE.md, "Scale and serverless"):

- Serverless: memory 1024-6144 MB in 1024 MB steps, MaxConcurrency 1-200, ProvisionedConcurrency
  1..MaxConcurrency. A serverless variant has no instances, so an explicit instance type or count
  is refused, and so are canary/linear updates (their steps are a share of the instances);
  SageMaker allows no data capture and a single variant on a serverless endpoint
  (`check_serverless_allows`).
- Autoscale: `MIN-MAX` with 1 <= MIN <= MAX and MIN <= instance count <= MAX; a target of
  invocations per instance per minute; optional scale-in/out cooldowns in seconds.

Nothing here imports boto3 or botocore: it is on the path that refuses a typo quickly.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from utils.errors import ValidationError

SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_CONCURRENCY_LIMIT = 200
DEFAULT_MAX_CONCURRENCY = 5
DEFAULT_TARGET_INVOCATIONS = 1000
MAX_COOLDOWN_SECONDS = 86400  # an Application Auto Scaling cooldown above a day is a typo


@dataclass(frozen=True)
class Serverless:
    """A serverless variant: memory, concurrency ceiling and the concurrency kept warm."""

    memory_mb: int
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    provisioned_concurrency: int | None = None


@dataclass(frozen=True)
class Autoscale:
    """Target tracking on SageMakerVariantInvocationsPerInstance between MIN and MAX instances."""

    min_capacity: int
    max_capacity: int
    target_invocations: int = DEFAULT_TARGET_INVOCATIONS
    scale_in_cooldown: int | None = None
    scale_out_cooldown: int | None = None

    def summary(self) -> dict[str, Any]:
        return {"min_capacity": self.min_capacity, "max_capacity": self.max_capacity,
                "target_invocations": self.target_invocations,
                "scale_in_cooldown": self.scale_in_cooldown,
                "scale_out_cooldown": self.scale_out_cooldown}

    def describe(self) -> str:
        cooldowns = [f"{what} cooldown {seconds} s" for what, seconds in (
            ("scale-in", self.scale_in_cooldown), ("scale-out", self.scale_out_cooldown))
            if seconds is not None]
        return (f"{self.min_capacity}-{self.max_capacity} instances, target "
                f"{self.target_invocations} invocations per instance per minute"
                + "".join(f", {c}" for c in cooldowns))


def parse_range(raw: str) -> tuple[int, int]:
    """`MIN-MAX` (e.g. `2-6`) for argparse's `type=`; the bounds are checked later, together."""
    low, sep, high = raw.strip().partition("-")
    if not sep or not (low.strip().isascii() and low.strip().isdigit()
                       and high.strip().isascii() and high.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"expected MIN-MAX with whole numbers, e.g. 2-6, got {raw!r}")
    return int(low), int(high)


def _given(sources: Mapping[str, str], dest: str) -> bool:
    return sources.get(dest) in ("flag", "env")


def _source(sources: Mapping[str, str], dest: str, flag: str, env_name: str) -> str:
    return f"environment variable {env_name}" if sources.get(dest) == "env" else flag


def scaling_from_args(args: Any, sources: Mapping[str, str]
                      ) -> tuple[Serverless | None, Autoscale | None]:
    """The serverless and autoscale settings, or a ValidationError that says what to change.
    `sources` says where each value came from ("flag", "env" or "default")."""
    serverless = serverless_from_args(args, sources)
    autoscale = autoscale_from_args(args, sources)
    if serverless is not None and autoscale is not None:
        raise ValidationError(
            "--autoscale scales instances, and a serverless variant has none",
            hint="SageMaker scales a serverless endpoint itself, up to --max-concurrency; "
                 "drop --autoscale, or --serverless-memory to deploy on instances.")
    return serverless, autoscale



def serverless_from_args(args: Any, sources: Mapping[str, str]) -> Serverless | None:
    memory = args.serverless_memory
    if memory is None:
        for dest, flag in (("max_concurrency", "--max-concurrency"),
                           ("provisioned_concurrency", "--provisioned-concurrency")):
            if _given(sources, dest):
                raise ValidationError(
                    f"{_source(sources, dest, flag, dest.upper())} applies to serverless "
                    "endpoints only", hint="Add --serverless-memory MB (1024-6144) for a "
                                           f"serverless endpoint, or drop {flag}.")
        return None
    if memory not in SERVERLESS_MEMORY_SIZES:
        raise ValidationError(
            f"Invalid --serverless-memory: {memory} MB; SageMaker offers "
            f"{', '.join(map(str, SERVERLESS_MEMORY_SIZES))} MB",
            hint="A linear model needs little memory: 1024 or 2048 MB is plenty.")
    concurrency = args.max_concurrency
    if not 1 <= concurrency <= MAX_CONCURRENCY_LIMIT:
        raise ValidationError(f"Invalid --max-concurrency: {concurrency}; SageMaker allows "
                              f"1-{MAX_CONCURRENCY_LIMIT} concurrent invocations",
                              hint=f"Use --max-concurrency between 1 and {MAX_CONCURRENCY_LIMIT}.")
    provisioned = args.provisioned_concurrency
    if provisioned is not None and not 1 <= provisioned <= concurrency:
        raise ValidationError(
            f"Invalid --provisioned-concurrency: {provisioned}; it must be 1 to "
            f"--max-concurrency ({concurrency})",
            hint="Provisioned concurrency is the part of --max-concurrency kept warm.")
    _refuse_instance_options(args, sources)
    return Serverless(memory, concurrency, provisioned)


def _refuse_instance_options(args: Any, sources: Mapping[str, str]) -> None:
    for dest, flag, env_name in (("instance_type", "--instance-type", "INSTANCE_TYPE"),
                                 ("instance_count", "--instance-count", "INSTANCE_COUNT")):
        if _given(sources, dest):
            given = _source(sources, dest, flag, env_name)
            hint = (f"Unset {env_name} for this deploy (env -u {env_name} ...)"
                    if sources.get(dest) == "env" else f"Drop {flag}")
            raise ValidationError(
                f"{given} ({getattr(args, dest)}) cannot be combined with --serverless-memory: "
                "a serverless variant runs on no instances you choose",
                hint=[f"{hint}, or drop --serverless-memory to deploy on instances."])
    if args.deployment_strategy in ("canary", "linear"):
        raise ValidationError(
            f"--deployment-strategy {args.deployment_strategy} cannot update a serverless "
            "endpoint: its steps are a share of the instances, and serverless has none",
            hint="Use --deployment-strategy all-at-once (blue/green; --rollback-alarm works).")


def check_serverless_allows(serverless: Serverless | None, *, data_capture: bool = False,
                            variant_count: int = 1) -> None:
    """What SageMaker refuses on a serverless endpoint, for the features that add it
    (data capture, several variants), so the refusal comes before any AWS call."""
    if serverless is None:
        return
    if data_capture:
        raise ValidationError("Data capture is not available on serverless endpoints",
                              hint="Drop the data capture option, or deploy on instances "
                                   "(drop --serverless-memory).")
    if variant_count > 1:
        raise ValidationError(f"A serverless endpoint serves one variant, not {variant_count}",
                              hint="Deploy the variants on instances, or one model serverless.")


def autoscale_from_args(args: Any, sources: Mapping[str, str]) -> Autoscale | None:
    if args.autoscale is None:
        for dest, flag in (("target_invocations", "--target-invocations"),
                           ("scale_in_cooldown", "--scale-in-cooldown"),
                           ("scale_out_cooldown", "--scale-out-cooldown")):
            if _given(sources, dest):
                raise ValidationError(
                    f"{_source(sources, dest, flag, dest.upper())} needs --autoscale MIN-MAX",
                    hint=f"Add --autoscale (env AUTOSCALE), e.g. --autoscale 1-4, or drop {flag}.")
        return None
    low, high = args.autoscale
    count = args.instance_count
    if args.no_monitor:
        raise ValidationError("--autoscale needs monitoring: the scaling is registered once the "
                              "endpoint is InService", hint="Drop --no-monitor, or register it "
                              "yourself (aws application-autoscaling register-scalable-target).")
    if not 1 <= low <= high:
        raise ValidationError(f"Invalid --autoscale {low}-{high}: it needs 1 <= MIN <= MAX",
                              hint="E.g. --autoscale 1-4 (at least one instance, at most four).")
    if not low <= count <= high:
        raise ValidationError(
            f"Invalid --autoscale {low}-{high}: --instance-count {count} must lie between MIN "
            "and MAX (it is where the endpoint starts)",
            hint=f"Pass --instance-count {min(max(count, low), high)}, or widen the range.")
    if args.target_invocations < 1:
        raise ValidationError(f"Invalid --target-invocations: {args.target_invocations}",
                              hint="Invocations per instance per minute, at least 1 (default "
                                   f"{DEFAULT_TARGET_INVOCATIONS}).")
    for flag, seconds in (("--scale-in-cooldown", args.scale_in_cooldown),
                          ("--scale-out-cooldown", args.scale_out_cooldown)):
        if seconds is not None and not 0 <= seconds <= MAX_COOLDOWN_SECONDS:
            raise ValidationError(f"Invalid {flag}: {seconds} s",
                                  hint=f"Seconds between 0 and {MAX_COOLDOWN_SECONDS}.")
    return Autoscale(low, high, args.target_invocations, args.scale_in_cooldown,
                     args.scale_out_cooldown)
