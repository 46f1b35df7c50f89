"""Pre-flight checks for a deploy: everything that can be refused before the first AWS call.

Cheap checks run first and import nothing heavy, so a typo in an ARN is refused in about the
time Python takes to start (pathlib, datetime, difflib and the environment checks are imported
only past that point): the model package ARN, the endpoint name, tags, the deployment
strategy, the smoke-test file, then the environment (all missing variables at once). Only then
does the instance-type check load botocore's SageMaker service model (~0.25 s) to read the list
of valid real-time instance types, rather than keeping a list by hand that goes stale.

The result is one frozen `DeploySettings` (modules/deploy_settings.py, imported once the cheap
checks passed: even creating dataclasses costs start-up time); nothing after this module reads
flags or the environment. Local mode and test_endpoint.py reuse the ARN, name and instance-type checks.
"""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from utils import output
from utils.errors import ValidationError
from utils.names import MAX_NAME_LENGTH, is_sagemaker_name

if TYPE_CHECKING:
    from datetime import datetime

    from modules.deploy_settings import DeploymentStrategy, DeploySettings, SmokeTest

DEFAULT_INSTANCE_TYPE = "ml.c5.2xlarge"
DEFAULT_TIMEOUT = 1800.0
DEFAULT_KEEP_RELEASES = 3
ROLLBACK, HISTORY = "rollback", "history"  # the release actions (no package: -e names the endpoint)
LOCAL_INSTANCE_TYPE = "local"
RECOMMENDED_TYPES = "ml.c5.2xlarge or ml.c5.xlarge for production, ml.t2.medium for tests"
MAX_TAGS = 50
STRATEGIES = ("all-at-once", "canary", "linear")
# Tags deploy-model puts on every model, endpoint config and endpoint it creates. "ManagedBy" is
# how a later run recognises the configs and models it may clean up.
TAG_MANAGED_BY = "ManagedBy"
TAG_PACKAGE = "ModelPackageArn"
TAG_STACK = "Stack"
TAG_ENDPOINT = "EndpointName"
# The run that created a resource: rollback and reconcile delete only what carries their own.
TAG_RUN_ID = "DeployRunId"
# The release record (modules/deploy_releases.py), added once a deploy is verified: on the
# release's config and models, and DeployRelease (the live release) on the endpoint.
TAG_RELEASE = "DeployRelease"
TAG_RELEASE_VERSION = "DeployReleaseVersion"
TAG_RELEASE_SHA256 = "DeployReleaseSha256"
TAG_RELEASE_COMMIT = "DeployReleaseCommit"
TAG_RELEASE_CALLER = "DeployReleaseCaller"
TAG_RELEASE_TIME = "DeployReleaseTime"
# A rollback that wrote a new config (to keep the live data capture): the release it returns to.
TAG_RELEASE_FROM = "DeployReleaseFrom"
RELEASE_TAG_KEYS = (TAG_RELEASE, TAG_RELEASE_VERSION, TAG_RELEASE_SHA256, TAG_RELEASE_COMMIT,
                    TAG_RELEASE_CALLER, TAG_RELEASE_TIME, TAG_RELEASE_FROM)
# Keys starting with these are the release record's too: `DeployRelease-<K>` (a rollback made the
# config live again as release K) and `DeployFailed-<run id>` (a failed attempt, on the endpoint).
RELEASE_TAG_PREFIXES = ("DeployRelease-", "DeployFailed-")
# Tags the release record may add to one resource, kept free of user tags: the seven above plus
# at most four rollback, weights or failure entries (dropped before one is added).
RELEASE_TAG_BUDGET = len(RELEASE_TAG_KEYS) + 4
RESERVED_TAG_KEYS = (TAG_MANAGED_BY, TAG_PACKAGE, TAG_STACK, TAG_ENDPOINT, TAG_RUN_ID,
                     *RELEASE_TAG_KEYS)

# \A..\Z and re.ASCII: `$` also matches before a final newline, and `\d` matches '²' or '١'.
_ACCOUNT_RE = re.compile(r"\A\d{12}\Z", re.ASCII)
_REGION_RE = re.compile(r"\A[a-z]{2}(-[a-z]+)+-\d\Z", re.ASCII)
_PARTITION_RE = re.compile(r"\Aaws(-[a-z]+)*\Z")
_INSTANCE_FORMAT_RE = re.compile(r"\Aml\.[a-z0-9]+(-[a-z0-9]+)*\.[a-z0-9]+\Z")
# Stack names: lower-case letters, digits and hyphens (package-model.py's rule: they name the
# ECR repository <stack>-inference and S3 prefixes, and here the endpoint and the Stack tag).
_STACK_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# GPU and accelerator families: wasted money for a linear model.
_ACCELERATED_FAMILY_RE = re.compile(r"^(g\d|p\d|inf\d|trn\d|dl\d)")
# AWS allows Unicode letters and digits in tags, and spaces, but no newline or tab.
_TAG_CHARS_RE = re.compile(r"\A[\w .:/=+\-@]*\Z")
_ARN_EXAMPLE = "arn:aws:sagemaker:<region>:<12-digit account>:model-package/<group>/<version>"
_ARN_HINTS = [
    f"A model package ARN looks like {_ARN_EXAMPLE}.",
    "Get one from: python utils/package-model.py --output-file model_arn.txt",
    "Or list the registered packages: python utils/list_model_packages.py",
]


class ModelPackageArn(NamedTuple):
    """The parts of a versioned model package ARN."""

    arn: str
    partition: str
    region: str
    account: str
    group: str
    version: int


def arn_error(problem: str, hints: Sequence[str] = ()) -> ValidationError:
    """`Invalid model package ARN: <problem>`; specific hints replace the generic ones."""
    return ValidationError(f"Invalid model package ARN: {problem}",
                           hint=list(hints) or _ARN_HINTS)


def parse_model_package_arn(arn: str) -> ModelPackageArn:
    """The ARN's parts, or a ValidationError naming the exact problem. Pure string work."""
    arn = (arn or "").strip()
    if not arn:
        raise arn_error("it is empty")
    parts = arn.split(":", 5)
    if parts[0] != "arn" or len(parts) < 6:
        raise arn_error(f"{arn!r} is not an ARN (it must start with 'arn:aws:sagemaker:')")
    _, partition, service, region, account, resource = parts
    if not _PARTITION_RE.match(partition):
        raise arn_error(f"partition {partition!r} is not an AWS partition (e.g. 'aws')")
    if service != "sagemaker":
        raise arn_error(f"it is an ARN of the {service or '(empty)'!r} service, not SageMaker "
                        "(it must start with 'arn:aws:sagemaker:')")
    if not _REGION_RE.match(region):
        raise arn_error(f"region {region!r} is not an AWS region code like ca-central-1")
    if not _ACCOUNT_RE.match(account):
        raise arn_error(f"account {account!r} is not a 12-digit AWS account ID")
    group, version = _parse_package_resource(resource)
    return ModelPackageArn(arn, partition, region, account, group, version)


def _parse_package_resource(resource: str) -> tuple[str, int]:
    kind, _, rest = resource.partition("/")
    if kind == "model-package-group":
        group = rest or "<group>"
        # No version ARN is built from the group's name here: SageMaker lower-cases the group in
        # version ARNs, so .../model-package/<Group>/1 would not resolve.
        raise arn_error(
            f"it names the model package group {rest!r}, not a version of it",
            hints=[f"Pass --model-package-group {group} to deploy its latest Approved version.",
                   f"Or copy a version's ARN as listed by: python utils/list_model_packages.py "
                   f"--filter {group}"])
    if kind != "model-package":
        raise arn_error(f"it names a {kind or '(missing resource type)'}, not a model package "
                        "(expected .../model-package/<group>/<version>)")
    pieces = rest.split("/")
    if len(pieces) < 2 or not pieces[-1]:
        raise arn_error(f"the version is missing: expected .../model-package/"
                        f"{pieces[0] or '<group>'}/<version>, e.g. .../model-package/"
                        f"{pieces[0] or '<group>'}/1")
    if len(pieces) > 2:
        raise arn_error(f"{rest!r} has too many parts: expected <group>/<version>")
    group, version = pieces
    if not is_sagemaker_name(group):
        raise arn_error(f"group name {group!r} is not a valid model package group name "
                        "(letters, digits and hyphens, at most 63)")
    if not (version.isascii() and version.isdigit()) or int(version) < 1:
        raise arn_error(f"version {version!r} must be a whole number of at least 1")
    return group, int(version)


def check_arn_region(parsed: ModelPackageArn, region: str) -> None:
    if parsed.region != region:
        raise arn_error(
            f"the package is in region {parsed.region} but AWS_REGION is {region}",
            hints=[f"Deploy in {parsed.region} (export AWS_REGION={parsed.region}), or register "
                   f"the model in {region} with utils/package-model.py."])


def validate_endpoint_name(name: str) -> str:
    """The name unchanged, or `Invalid endpoint name: ...` with the rule it breaks."""
    name = name or ""
    rule = ("Endpoint names use letters, digits and hyphens, at most 63 characters, and start "
            "and end with a letter or digit (e.g. qc-endpoint-prod).")
    if not name:
        raise ValidationError("Invalid endpoint name: it is empty", hint=rule)
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"Invalid endpoint name: {name!r} is {len(name)} characters long, "
                              f"the limit is {MAX_NAME_LENGTH}", hint=rule)
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "-"))})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ValidationError(f"Invalid endpoint name: {name!r} contains {shown}",
                              hint=_did_you_mean(name) + [rule])
    if name.startswith("-") or name.endswith("-"):
        raise ValidationError(f"Invalid endpoint name: {name!r} starts or ends with a hyphen",
                              hint=_did_you_mean(name) + [rule])
    return name


def _did_you_mean(name: str) -> list[str]:
    """`qc_prod` -> `qc-prod`: the valid name closest to what was typed, if there is one."""
    candidate = re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-")
    if candidate != name and is_sagemaker_name(candidate):
        return [f"Did you mean {candidate}?"]
    return []


def validate_stack(stack: str) -> str:
    if not _STACK_RE.fullmatch(stack or ""):
        raise ValidationError(f"Invalid stack: {stack!r}", hint=(
            "Stack names use lower-case letters, digits and hyphens, 1-63 characters, starting "
            "and ending with a letter or digit (the same rule as utils/package-model.py)."))
    return stack


def generated_endpoint_name(stack: str, now: datetime) -> str:
    """`<stack>-endpoint-YYYYMMDD-HHMMSS`, trimmed to fit SageMaker's 63 characters."""
    suffix = f"-endpoint-{now:%Y%m%d-%H%M%S}"
    prefix = re.sub(r"[^a-zA-Z0-9-]+", "-", stack).strip("-")[: MAX_NAME_LENGTH - len(suffix)]
    return validate_endpoint_name((prefix.rstrip("-") or "deploy") + suffix)


def instance_type_format_problem(instance_type: str) -> str | None:
    if instance_type == LOCAL_INSTANCE_TYPE:
        return None
    if not instance_type.startswith("ml."):
        return (f"{instance_type!r} must start with 'ml.' (format ml.<family>.<size>, "
                "e.g. ml.c5.2xlarge)")
    if not _INSTANCE_FORMAT_RE.match(instance_type):
        return f"{instance_type!r} is not in the format ml.<family>.<size> (e.g. ml.c5.2xlarge)"
    return None


def _instance_type_guess(instance_type: str, known: Sequence[str] | None) -> list[str]:
    """`c5.xlarge` or `ML.C5.XLARGE` -> `ml.c5.xlarge`, when SageMaker offers that type."""
    candidate = instance_type.lower()
    if candidate != LOCAL_INSTANCE_TYPE and not candidate.startswith("ml."):
        candidate = f"ml.{candidate}"
    if candidate == instance_type or instance_type_format_problem(candidate):
        return []
    known = realtime_instance_types() if known is None else known
    return [f"Did you mean {candidate}?"] if candidate in known else []


@functools.lru_cache(maxsize=1)
def realtime_instance_types() -> tuple[str, ...]:
    """SageMaker's real-time instance types, from botocore's bundled service model (no network).
    Parsing that model costs ~0.1-0.25 s, so once per process is enough."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return tuple(model.shape_for("ProductionVariantInstanceType").enum)


def validate_instance_type(instance_type: str,
                           known: Sequence[str] | None = None) -> list[str]:
    """Warnings for a usable type; `Invalid instance type: ...` for one SageMaker does not offer."""
    hint = f"Recommended for linear models: {RECOMMENDED_TYPES}."
    instance_type = instance_type or ""
    if instance_type != instance_type.strip():
        # Refused, not stripped: ' local' would pass as 'local' here and reach AWS unchanged.
        raise ValidationError(f"Invalid instance type: {instance_type!r} has spaces around it",
                              hint=f"Did you mean {instance_type.strip()!r}?")
    problem = instance_type_format_problem(instance_type)
    if problem:
        raise ValidationError(f"Invalid instance type: {problem}",
                              hint=_instance_type_guess(instance_type, known) + [hint])
    if instance_type == LOCAL_INSTANCE_TYPE:
        return []
    known = realtime_instance_types() if known is None else known
    if instance_type not in known:
        import difflib

        close = difflib.get_close_matches(instance_type, known, n=3, cutoff=0.75)
        hints = [f"Did you mean {' or '.join(close)}?"] if close else []
        raise ValidationError(
            f"Invalid instance type: {instance_type!r} is not a SageMaker real-time "
            "inference instance type", hint=hints + [hint, "Or use 'local' to serve on this "
                                                           "machine."])
    family = instance_type.split(".")[1]
    if _ACCELERATED_FAMILY_RE.match(family):
        return [f"{instance_type} is a GPU/accelerator instance: wasteful for a linear model "
                f"(it runs on CPU). Recommended: {RECOMMENDED_TYPES}."]
    return []


def parse_tag(raw: str) -> tuple[str, str]:
    """`KEY=VALUE` as an AWS tag (the rules SageMaker applies), for argparse's `type=`."""
    key, sep, value = raw.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r}")
    if len(key) > 128 or len(value) > 256:
        raise argparse.ArgumentTypeError(f"{raw!r}: keys are at most 128 characters, values 256")
    if key.lower().startswith("aws:"):
        raise argparse.ArgumentTypeError(f"{raw!r}: the 'aws:' prefix is reserved for AWS")
    if not _TAG_CHARS_RE.match(key) or not _TAG_CHARS_RE.match(value):
        raise argparse.ArgumentTypeError(
            f"{raw!r}: tags may hold letters, digits, spaces and _ . : / = + - @")
    return key, value


def validate_tags(user_tags: Sequence[tuple[str, str]], reserved: Sequence[str]) -> None:
    keys = [key for key, _ in user_tags]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValidationError(f"Invalid tags: {', '.join(duplicates)} given more than once",
                              hint="Give each --tag KEY once.")
    clashes = sorted(set(keys) & set(reserved))
    if clashes:
        raise ValidationError(f"Invalid tags: {', '.join(clashes)} is set by deploy-model itself",
                              hint=f"Choose another key; reserved: {', '.join(reserved)}.")
    prefixed = sorted(k for k in keys if k.startswith(RELEASE_TAG_PREFIXES))
    if prefixed:
        raise ValidationError(f"Invalid tags: {', '.join(prefixed)} is set by deploy-model itself",
                              hint="Keys starting with " + " or ".join(RELEASE_TAG_PREFIXES)
                                   + " hold the release history; choose another key.")
    adds = len(set(reserved) - set(RELEASE_TAG_KEYS)) + RELEASE_TAG_BUDGET
    if len(keys) + adds > MAX_TAGS:
        raise ValidationError(
            f"Invalid tags: {len(keys)} tags plus the {adds} deploy-model adds exceed "
            f"SageMaker's limit of {MAX_TAGS} per resource",
            hint=f"Pass at most {MAX_TAGS - adds} --tag options.")


def validate_strategy(name: str, instance_count: int | None, step_percent: int,
                      wait_seconds: int) -> DeploymentStrategy:
    """`instance_count` None: not known yet (a rollback serves its release's; checked then)."""
    if name not in STRATEGIES:
        raise ValidationError(f"Invalid deployment strategy: {name!r}",
                              hint=f"Choose one of: {', '.join(STRATEGIES)}.")
    if name != "all-at-once" and instance_count is not None and instance_count < 2:
        raise ValidationError(
            f"Invalid deployment strategy: {name} shifts traffic in steps of 10-50 % of the "
            f"instances, which needs --instance-count of at least 2 (got {instance_count})",
            hint="Use --instance-count 2 or more, or --deployment-strategy all-at-once.")
    if name != "all-at-once" and not 10 <= step_percent <= 50:
        raise ValidationError(f"Invalid step size: {step_percent} %; SageMaker takes 10-50 % of "
                              "the instances per step", hint="Use --step-size between 10 and 50.")
    if not 0 <= wait_seconds <= 3600:
        raise ValidationError(f"Invalid step wait: {wait_seconds} s; SageMaker allows 0-3600",
                              hint="Use --step-wait between 0 and 3600 seconds.")
    from modules.deploy_settings import DeploymentStrategy

    return DeploymentStrategy(name, step_percent, wait_seconds)


def load_smoke_test(path: str) -> SmokeTest:
    """Read and check the smoke-test request now, not after a ten-minute deploy."""
    from utils.contract import (
        MAX_PAYLOAD_BYTES,
        check_payload_size,
        parse_json_text,
        validate_request,
    )
    from utils.files import read_bounded

    try:
        body = read_bounded(path, MAX_PAYLOAD_BYTES, "smoke test data")
    except FileNotFoundError:
        raise ValidationError(f"Smoke test data file not found: {path}",
                              hint='Pass a JSON file like {"data": [[1.0, 2.0, 3.0]]}.') from None
    check_payload_size(body, source=f"smoke test data {path}")
    rows = validate_request(parse_json_text(body.decode("utf-8", "replace"), path),
                            source=f"smoke test data {path}")
    from modules.deploy_settings import SmokeTest

    return SmokeTest(path, body, len(rows), len(rows[0]))


def settings_from_args(args: Any, env: Mapping[str, str], now: datetime | None = None, *,
                       sources: Mapping[str, str] | None = None) -> DeploySettings:
    """Validate in order of cost; the first AWS call comes after this returns. `sources` says
    where each option's value came from (the parser's `value_sources`): serverless refuses an
    instance type or count that was given, not one that is the default."""
    release_action = _release_action(args, sources or {})
    # --set-weights, --promote and --remove-variant rearrange live models: no package.
    rearranging = bool(args.set_weights or args.promote or args.remove_variant)
    parsed = None if release_action or rearranging else _package_source(args)
    from utils.env_validation import get_env_var, validate_env_vars

    validate_stack(args.stack)

    # An explicitly empty -e (e.g. -e "$(cat endpoint_name.txt)" from an empty file) is an error,
    # never a silent new endpoint; only an absent flag and env var generate a name.
    # ENDPOINT_NAME='' counts as explicitly empty too (argparse's env fallback reads '' as unset).
    generated = args.endpoint_name is None and env.get("ENDPOINT_NAME") != ""
    if not generated:
        endpoint_name = args.endpoint_name or ""
    else:
        from datetime import datetime

        endpoint_name = generated_endpoint_name(args.stack, now or datetime.now())
    validate_endpoint_name(endpoint_name)
    from modules.scaling_settings import scaling_from_args

    # Before the strategy: canary on serverless is refused for what it is, not for its count.
    serverless, autoscale = scaling_from_args(args, sources or {})
    from modules.scaling_settings import check_serverless_allows
    from modules.traffic_settings import capture_from_args, traffic_from_args

    data_capture, drop_capture = capture_from_args(args, sources or {})
    traffic = traffic_from_args(args, sources or {})
    if traffic is not None and release_action:
        raise ValidationError(f"--{release_action} and --{traffic.kind} exclude each other",
                              hint="Run them one after the other.")
    if traffic is not None and generated:
        raise ValidationError(f"--{traffic.kind} needs the endpoint: pass --endpoint-name "
                              "(env ENDPOINT_NAME)", hint=f"python deploy-model.py -e NAME "
                                                          f"--{traffic.kind} ...")
    if traffic is not None and autoscale is not None:
        raise ValidationError(
            f"--autoscale scales the variant a deploy writes, not a --{traffic.kind} change",
            hint="Change the variants first, then scale the endpoint's variant with a deploy "
                 "(--autoscale), or register the new variant with aws application-autoscaling.")
    check_serverless_allows(serverless, data_capture=data_capture is not None,
                            variant_count=2 if traffic and traffic.needs_package else 1)
    strategy = validate_strategy(args.deployment_strategy,
                                 None if release_action else args.instance_count,
                                 args.step_size, args.step_wait)
    tags = tuple(args.tag or ())
    validate_tags(tags, RESERVED_TAG_KEYS)
    _check_flag_combinations(args)
    _check_output_file(args.output_file)
    smoke = load_smoke_test(args.smoke_test_data) if args.smoke_test_data else None
    local = args.instance_type == LOCAL_INSTANCE_TYPE
    # A rollback re-uses a release's config and model: it creates nothing that needs the role.
    required = (["AWS_REGION"] if local or release_action
                else ["AWS_REGION", "SAGEMAKER_EXECUTION_ROLE_ARN"])
    values = validate_env_vars(required, env)
    if parsed is not None:
        check_arn_region(parsed, values["AWS_REGION"])
    for warning in validate_instance_type(args.instance_type):
        output.print_warning(warning)
    from modules.deploy_settings import DeploySettings

    return DeploySettings(
        region=values["AWS_REGION"], role_arn=values.get("SAGEMAKER_EXECUTION_ROLE_ARN"),
        profile=get_env_var("AWS_PROFILE", env), endpoint_name=endpoint_name,
        instance_type=args.instance_type, instance_count=args.instance_count,
        model_package_arn=parsed.arn if parsed else None,
        model_package_group=args.model_package_group, stack=args.stack,
        monitor=not args.no_monitor, rollback=not args.skip_rollback,
        keep_previous=args.keep_previous, timeout=args.timeout, poll_interval=args.poll_interval,
        output_file=args.output_file, dry_run=args.dry_run, strategy=strategy,
        rollback_alarms=tuple(dict.fromkeys(args.rollback_alarm or ())), tags=tags,
        smoke_test=smoke, name_was_generated=generated, serverless=serverless,
        autoscale=autoscale, data_capture=data_capture, drop_data_capture=drop_capture,
        keep_releases=args.keep_releases, release_action=release_action,
        to_release=args.to_release, traffic=traffic,
        **(_local_settings(env) if local else {}))


# What a deploy writes and a release action cannot change: a rollback serves the release's own
# variants (type, count, serverless) and keeps the endpoint's scaling and tags.
_DEPLOY_ONLY = (("instance_count", "--instance-count"), ("serverless_memory", "--serverless-memory"),
                ("max_concurrency", "--max-concurrency"),
                ("provisioned_concurrency", "--provisioned-concurrency"),
                ("autoscale", "--autoscale"), ("target_invocations", "--target-invocations"),
                ("scale_in_cooldown", "--scale-in-cooldown"),
                ("scale_out_cooldown", "--scale-out-cooldown"), ("stack", "--stack"),
                ("tag", "--tag"))


def _release_action(args: Any, sources: Mapping[str, str]) -> str | None:
    """--rollback / --to-release / --history: act on an endpoint's releases, not on a package.
    Deploy-only flags given with them are refused (from the environment they stay unused: a CI
    job's INSTANCE_TYPE must not stop its rollback)."""
    history, to_release = getattr(args, "history", False), getattr(args, "to_release", None)
    rollback = getattr(args, "rollback", False) or to_release is not None
    if not (rollback or history):
        return None
    action = HISTORY if history else ROLLBACK
    if rollback and history:
        raise ValidationError("Give either --rollback or --history, not both",
                              hint="--history lists the releases; --rollback switches to one.")
    if args.model_package_arn or args.model_package_group:
        raise ValidationError(
            f"--{action} takes no model package: it acts on the endpoint's own releases",
            hint="Drop --model-package-arn/--model-package-group (and MODEL_PACKAGE_ARN/"
                 "MODEL_PACKAGE_GROUP), or deploy the package without --" + action + ".")
    if args.endpoint_name is None:
        raise ValidationError(f"--{action} needs the endpoint: pass --endpoint-name "
                              "(env ENDPOINT_NAME)", hint=f"python deploy-model.py -e NAME --{action}")
    given = [flag for dest, flag in _DEPLOY_ONLY if sources.get(dest) == "flag"]
    if sources.get("instance_type") == "flag" and args.instance_type != LOCAL_INSTANCE_TYPE:
        given.insert(0, "--instance-type")
    if given:
        raise ValidationError(
            f"--{action} cannot take {', '.join(given)}: "
            + ("a rollback serves the release as it was deployed (its instances or serverless "
               "settings) and keeps the endpoint's autoscaling and tags" if action == ROLLBACK
               else "it only lists the releases"),
            hint=f"Drop {', '.join(given)}; to change them, deploy a package (-a ARN) instead.")
    return action


def _local_settings(env: Mapping[str, str]) -> dict:
    """What local mode takes from the environment, read here so that nothing later does."""
    from modules.deploy_settings import LOCAL_SERVER_ENV_VARS
    from utils.local_endpoints import state_dir_from_env, state_dir_problem

    state_dir = state_dir_from_env(env)
    problem = state_dir_problem(state_dir)
    if problem:
        raise ValidationError(f"Cannot keep local endpoints in {state_dir}: {problem}",
                              hint="Point DEPLOY_MODEL_STATE_DIR at a writable directory (or "
                                   "unset it for ~/.local/state/deploy_model).")
    return {"state_dir": state_dir,
            "server_env": tuple((name, env[name]) for name in LOCAL_SERVER_ENV_VARS
                                if name in env)}


def _package_source(args: Any) -> ModelPackageArn | None:
    arn, group = args.model_package_arn, args.model_package_group
    if arn and group:
        raise ValidationError(
            "Give either --model-package-arn or --model-package-group, not both",
            hint="--model-package-group deploys the group's latest Approved version; "
                 "-a deploys exactly the version you name.")
    if not arn and not group:
        raise ValidationError(
            "No model package given: pass --model-package-arn (env MODEL_PACKAGE_ARN) or "
            "--model-package-group (env MODEL_PACKAGE_GROUP)", hint=_ARN_HINTS)
    if group:
        if not is_sagemaker_name(group):
            raise ValidationError(f"Invalid model package group: {group!r}",
                                  hint="Group names use letters, digits and hyphens, at most 63.")
        return None
    return parse_model_package_arn(arn)


def _check_output_file(path: str | None) -> None:
    """Refuse now an output file that could not be written after a ten-minute deploy."""
    from utils.files import output_file_problem

    problem = output_file_problem(path) if path else None
    if problem:
        raise ValidationError(f"Invalid output file {path!r}: {problem}",
                              hint="Pass a writable file path, e.g. --output-file endpoint_name.txt.")


def _check_flag_combinations(args: Any) -> None:
    if args.smoke_test_data and args.no_monitor:
        raise ValidationError(
            "--smoke-test-data needs monitoring: the test runs once the endpoint is InService",
            hint="Drop --no-monitor, or run test_endpoint.py yourself once it is InService.")
