"""Scale and cost settings of a deploy: a serverless variant.

Validated with the other deploy inputs (modules/deploy_validation.py calls `scaling_from_args`),
before any AWS call, against the limits botocore's SageMaker model
states and the rules AWS applies (docs/ARCHITECTURE.md, "Scale and serverless"):

- Serverless: memory 1024-6144 MB in 1024 MB steps, MaxConcurrency 1-200, ProvisionedConcurrency
  1..MaxConcurrency. A serverless variant has no instances, so an explicit instance type or count
  is refused, and so are canary/linear updates (their steps are a share of the instances);
  SageMaker allows no data capture and a single variant on a serverless endpoint
  (`check_serverless_allows`).

Nothing here imports boto3 or botocore: it is on the path that refuses a typo quickly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from utils.errors import ValidationError

SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_CONCURRENCY_LIMIT = 200
DEFAULT_MAX_CONCURRENCY = 5


@dataclass(frozen=True)
class Serverless:
    """A serverless variant: memory, concurrency ceiling and the concurrency kept warm."""

    memory_mb: int
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    provisioned_concurrency: int | None = None


def _given(sources: Mapping[str, str], dest: str) -> bool:
    return sources.get(dest) in ("flag", "env")


def _source(sources: Mapping[str, str], dest: str, flag: str, env_name: str) -> str:
    return f"environment variable {env_name}" if sources.get(dest) == "env" else flag


def scaling_from_args(args: Any, sources: Mapping[str, str]) -> Serverless | None:
    """The serverless settings, or a ValidationError that says what to change.
    `sources` says where each value came from ("flag", "env" or "default")."""
    return serverless_from_args(args, sources)


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
