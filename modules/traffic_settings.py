"""Traffic settings of a deploy: data capture (and, with modules/deploy_traffic.py, variants).

Validated with the other deploy inputs (modules/deploy_validation.py calls `capture_from_args`),
before any AWS call, against the rules SageMaker applies to a DataCaptureConfig:

- `--data-capture s3://bucket/prefix`: an S3 URI (SageMaker also takes https://, but a
  destination in another form is a typo here), a valid bucket name, at most 512 characters.
- `--capture-percent N`: InitialSamplingPercentage, 1-100 (0 would capture nothing: that is
  `--no-data-capture`).
- `--no-data-capture`: drop the live capture on this update; without it an update keeps it.

Nothing here imports boto3 or botocore: it is on the path that refuses a typo quickly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from utils.errors import ValidationError

DEFAULT_CAPTURE_PERCENT = 100
MAX_S3_URI_LENGTH = 512  # DestinationS3Uri's limit in SageMaker's API
# S3 bucket naming rules: 3-63 characters, lower-case letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
_BUCKET_RE = re.compile(r"\A[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z", re.ASCII)
_IP_LIKE_RE = re.compile(r"\A\d+\.\d+\.\d+\.\d+\Z", re.ASCII)
# Capture both the request and the answer (SageMaker's CaptureMode values Input and Output).
CAPTURE_MODES = ("Input", "Output")
JSON_CONTENT_TYPES = ("application/json",)


@dataclass(frozen=True)
class DataCapture:
    """Capture requests and answers of a share of the invocations to S3."""

    destination: str
    percent: int = DEFAULT_CAPTURE_PERCENT

    def config(self) -> dict[str, Any]:
        """The DataCaptureConfig of CreateEndpointConfig."""
        return {"EnableCapture": True, "InitialSamplingPercentage": self.percent,
                "DestinationS3Uri": self.destination,
                "CaptureOptions": [{"CaptureMode": mode} for mode in CAPTURE_MODES],
                "CaptureContentTypeHeader": {"JsonContentTypes": list(JSON_CONTENT_TYPES)}}


def describe_capture(config: Mapping[str, Any] | None) -> str:
    """`s3://bucket/prefix (20 %, input and output)` for a DataCaptureConfig; `none` without."""
    if not config or not config.get("EnableCapture", True):
        return "none"
    modes = " and ".join(o.get("CaptureMode", "?").lower() for o in config.get("CaptureOptions")
                         or [])
    return (f"{config.get('DestinationS3Uri')} ({config.get('InitialSamplingPercentage')} %"
            + (f", {modes})" if modes else ")"))


def capture_summary(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The DataCaptureConfig as --json shows it."""
    if not config or not config.get("EnableCapture", True):
        return None
    return {"destination": config.get("DestinationS3Uri"),
            "percent": config.get("InitialSamplingPercentage"),
            "modes": [o.get("CaptureMode") for o in config.get("CaptureOptions") or []]}


def s3_uri_problem(uri: str) -> str | None:
    """Why `uri` is not an S3 destination SageMaker would take, or None."""
    if not uri.startswith("s3://"):
        return f"{uri!r} is not an S3 URI (expected s3://bucket/prefix)"
    if len(uri) > MAX_S3_URI_LENGTH:
        return f"it is {len(uri)} characters long; SageMaker takes at most {MAX_S3_URI_LENGTH}"
    if not uri.isascii() or any(c.isspace() or not c.isprintable() for c in uri):
        return f"{uri!r} contains spaces, control or non-ASCII characters"
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        return f"{uri!r} names no bucket (expected s3://bucket/prefix)"
    if not _BUCKET_RE.match(bucket) or ".." in bucket or _IP_LIKE_RE.match(bucket):
        return (f"{bucket!r} is not a valid S3 bucket name (3-63 lower-case letters, digits, "
                "dots and hyphens, starting and ending with a letter or digit)")
    if "//" in prefix:
        return f"{uri!r} has an empty path segment ('//')"
    return None


def capture_from_args(args: Any, sources: Mapping[str, str]) -> tuple[DataCapture | None, bool]:
    """(the capture to set, whether to drop the live one), or a ValidationError."""
    destination, drop = args.data_capture, bool(args.no_data_capture)
    percent_given = sources.get("capture_percent") in ("flag", "env")
    if drop and destination:
        raise ValidationError("--data-capture and --no-data-capture exclude each other",
                              hint="Give --data-capture to set the capture, --no-data-capture "
                                   "to drop the live one.")
    if destination is None:
        if percent_given:
            raise ValidationError("--capture-percent needs --data-capture s3://bucket/prefix",
                                  hint="Add --data-capture (env DATA_CAPTURE), or drop "
                                       "--capture-percent.")
        return None, drop
    problem = s3_uri_problem(destination)
    if problem:
        raise ValidationError(f"Invalid --data-capture: {problem}",
                              hint="Pass the S3 prefix to capture to, e.g. --data-capture "
                                   "s3://my-bucket/capture/qc-prod")
    percent = args.capture_percent
    if not 1 <= percent <= 100:
        raise ValidationError(f"Invalid --capture-percent: {percent}; SageMaker samples 1-100 % "
                              "of the invocations", hint="Use --capture-percent between 1 and "
                                                         "100 (or --no-data-capture for none).")
    return DataCapture(destination, percent), False


# ---------------------------------------------------------------------------------------------
# Variants: one traffic change per run

ADD, WEIGHTS, PROMOTE, REMOVE = "add-variant", "set-weights", "promote", "remove-variant"
SHADOW = "shadow"
SHADOW_VARIANT = "shadow"  # the name of the shadow variant --shadow adds
DEFAULT_SHADOW_SAMPLING = 100
_CHANGE_FLAGS = ((ADD, "add_variant", "--add-variant"), (WEIGHTS, "set_weights", "--set-weights"),
                 (PROMOTE, "promote", "--promote"), (REMOVE, "remove_variant", "--remove-variant"),
                 (SHADOW, "shadow", "--shadow"))
_VARIANT_RULE = ("Variant names use letters, digits and hyphens, at most 63 characters, starting "
                 "and ending with a letter or digit.")


@dataclass(frozen=True)
class TrafficChange:
    """What this run does to an endpoint's variants (instead of replacing its one model)."""

    kind: str  # ADD, WEIGHTS, PROMOTE or REMOVE
    variant: str | None = None  # the variant added, promoted or removed
    weight: float | None = None  # ADD: the new variant's weight
    weights: tuple[tuple[str, float], ...] = ()  # WEIGHTS: variant -> weight, as asked

    sampling: int | None = None  # SHADOW: percent of the requests copied to the shadow

    @property
    def needs_package(self) -> bool:
        """Only a new variant serves a package of its own; the others rearrange live models."""
        return self.kind in (ADD, SHADOW)

    def summary(self) -> dict[str, Any]:
        return {"change": self.kind, "variant": self.variant, "weight": self.weight,
                "weights": dict(self.weights) or None, "shadow_sampling": self.sampling}


def parse_weights(raw: str) -> tuple[tuple[str, float], ...]:
    """`champion=90,challenger=10` for argparse's `type=`; the values are checked later."""
    pairs = []
    for item in (part.strip() for part in raw.split(",")):
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if not item or not sep or not name.strip() or weight is None:
            import argparse

            raise argparse.ArgumentTypeError(
                f"expected VARIANT=WEIGHT[,VARIANT=WEIGHT...], e.g. champion=90,challenger=10, "
                f"got {raw!r}")
        pairs.append((name.strip(), weight))
    return tuple(pairs)


def _check_variant_name(name: str, flag: str) -> str:
    from utils.names import is_sagemaker_name

    if not is_sagemaker_name(name):
        raise ValidationError(f"Invalid {flag}: {name!r} is not a variant name", hint=_VARIANT_RULE)
    return name


def check_weight(weight: float, what: str) -> float:
    import math

    if not math.isfinite(weight) or weight < 0:
        raise ValidationError(f"Invalid weight {weight} for {what}: weights are 0 or more "
                              "(relative: 90 and 10 send 90 % and 10 %)",
                              hint="0 keeps a variant deployed with no traffic (reach it with "
                                   "test_endpoint.py --target-variant).")
    return weight


def check_weights(weights: tuple[tuple[str, float], ...]) -> None:
    """Each weight 0 or more, each variant once, not all 0 (SageMaker would route nothing)."""
    names = [name for name, _ in weights]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValidationError(f"Invalid --set-weights: {', '.join(twice)} given more than once",
                              hint="Name each variant once.")
    for name, weight in weights:
        _check_variant_name(name, "--set-weights")
        check_weight(weight, name)
    # One weight of 0 may be right (the variants not named keep theirs; that is checked against
    # the endpoint); several, all 0, is a mistake whatever the endpoint serves.
    if len(weights) > 1 and all(weight == 0 for _, weight in weights):
        raise ValidationError("Invalid --set-weights: every weight is 0, so no variant would "
                              "get traffic", hint="Give at least one variant a weight above 0.")


def traffic_from_args(args: Any, sources: Mapping[str, str]) -> TrafficChange | None:
    """The one traffic change asked for, or None; a ValidationError for what cannot work."""
    given = [(kind, flag) for kind, dest, flag in _CHANGE_FLAGS if getattr(args, dest)]
    weight_given = sources.get("weight") in ("flag", "env")
    sampling_given = sources.get("shadow_sampling") in ("flag", "env")
    if sampling_given and not args.shadow:
        raise ValidationError("--shadow-sampling needs --shadow",
                              hint="Add --shadow to deploy the package as a shadow variant.")
    if len(given) > 1:
        raise ValidationError(f"{' and '.join(flag for _, flag in given)} exclude each other: "
                              "one traffic change per run", hint="Run them one after the other.")
    if not given:
        if weight_given:
            raise ValidationError("--weight needs --add-variant NAME",
                                  hint="Shift the traffic of live variants with --set-weights "
                                       "champion=90,challenger=10.")
        return None
    (kind, flag), = given
    if kind != ADD and weight_given:
        raise ValidationError(f"--weight goes with --add-variant, not {flag}",
                              hint="Use --set-weights VARIANT=WEIGHT,... for live variants.")
    if kind == SHADOW:
        if not 1 <= args.shadow_sampling <= 100:
            raise ValidationError(f"Invalid --shadow-sampling: {args.shadow_sampling}; the "
                                  "shadow receives a copy of 1-100 % of the requests",
                                  hint="Use --shadow-sampling between 1 and 100.")
        change = TrafficChange(SHADOW, SHADOW_VARIANT, sampling=args.shadow_sampling)
    elif kind == WEIGHTS:
        check_weights(args.set_weights)
        change = TrafficChange(WEIGHTS, weights=tuple(args.set_weights))
    elif kind == ADD:
        if not weight_given:
            raise ValidationError("--add-variant needs --weight W (its share, relative to the "
                                  "live variants' weights)",
                                  hint="E.g. --weight 10 beside a champion of weight 90; 0 adds "
                                       "it with no traffic.")
        name = _check_variant_name(args.add_variant, flag)
        change = TrafficChange(ADD, name, weight=check_weight(args.weight, name))
    else:
        change = TrafficChange(kind, _check_variant_name(getattr(args, _dest(kind)), flag))
    _refuse_guardrails(args, change, flag)
    return change


def _dest(kind: str) -> str:
    return next(dest for k, dest, _ in _CHANGE_FLAGS if k == kind)


def _refuse_guardrails(args: Any, change: TrafficChange, flag: str) -> None:
    """SageMaker's deployment guardrails (canary, linear, rollback alarms) need the new config
    to keep the old variant names; a weight change has no new fleet to shift to at all."""
    guarded = [f for f, used in (("--deployment-strategy " + args.deployment_strategy,
                                  args.deployment_strategy != "all-at-once"),
                                 ("--rollback-alarm", bool(args.rollback_alarm))) if used]
    if guarded:
        raise ValidationError(
            f"{flag} cannot be combined with {', '.join(guarded)}: SageMaker's deployment "
            "guardrails need an update that keeps the variant names",
            hint="Drop them; the change itself is watched, verified and rolled back by "
                 "deploy-model.")
    if change.kind == WEIGHTS and args.smoke_test_data:
        raise ValidationError("--set-weights starts no new model to smoke-test",
                              hint="Test a variant with: python test_endpoint.py -e <endpoint> "
                                   "-d <request.json> --target-variant <variant>")
