"""package-model.py's settings: flags and environment turned into one checked value, no AWS yet.

Every problem with the flags and the account-level environment variables is collected and reported
in one message, so a user fixes their command line once. This module imports nothing heavy at
module level: it runs before any AWS client exists.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modules.deploy_validation import (
    DEFAULT_INSTANCE_TYPE,
    LOCAL_INSTANCE_TYPE,
    validate_instance_type,
)
from modules.images import check_sklearn_image_version, default_image_uri, validate_image_uri
from utils import output
from utils.env_validation import get_env_var, print_env_summary, validate_env_vars
from utils.errors import ValidationError
from utils.files import output_file_problem
from utils.names import is_sagemaker_name

REQUIRED_ENV = ("AWS_REGION", "AWS_ACCOUNT", "DATA_BUCKET", "AI_INPUT_QUEUE_URL",
                "SAGEMAKER_EXECUTION_ROLE_ARN")
SHOWN_ENV = (*REQUIRED_ENV, "AWS_PROFILE")
# Shown (masked) only when set: that they are set matters, their values never appear.
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
DEFAULT_GROUP = "PLMSCWInferenceModelGroup"
DEFAULT_REPO = "dev"
DEFAULT_BRANCH = "inference-data"
_STACK = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PATH_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_LABEL = re.compile(r"[^,\s][^,]*")


@dataclass(frozen=True)
class PackageSettings:
    region: str
    account: str
    bucket: str
    queue_url: str
    role_arn: str
    profile: str | None
    stack: str
    repo_name: str
    branch: str
    group_name: str
    instance_type: str
    artifacts_dir: Path
    image_uri: str | None
    sklearn_image_version: str | None
    output_file: Path | None
    sample_data: Path | None
    class_labels: list[str] | None
    preflight_timeout: float
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    dry_run: bool = False


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str],
                       sources: Mapping[str, str] | None = None) -> PackageSettings:
    """Checked settings, or one ValidationError listing every problem (flags and env vars)."""
    sources = sources or {}
    notes: list[str] = []
    env_values, problems = _env_values(env)
    problems += _flag_problems(args)
    image_uri, sklearn_version, image_problems = _image_choice(args, sources, notes)
    problems += image_problems
    labels, label_problems = parse_class_labels(args.class_labels)
    problems += label_problems
    problems += _image_problems(image_uri, sklearn_version, env_values.get("AWS_REGION"))
    if problems:
        raise ValidationError("Invalid settings for package-model.py", details=problems,
                              hint="Fix the values above (flags or environment variables; "
                                   "see --help) and run again.")
    instance_type, instance_notes, instance_warnings = resolve_instance_type(args.instance_type)
    return PackageSettings(
        region=env_values["AWS_REGION"], account=env_values["AWS_ACCOUNT"],
        bucket=env_values["DATA_BUCKET"], queue_url=env_values["AI_INPUT_QUEUE_URL"],
        role_arn=env_values["SAGEMAKER_EXECUTION_ROLE_ARN"],
        profile=get_env_var("AWS_PROFILE", env), stack=args.stack, repo_name=args.repo_name,
        branch=args.import_branch_name, group_name=args.model_package_group_name,
        instance_type=instance_type,
        artifacts_dir=Path(args.artifacts_dir), image_uri=image_uri,
        sklearn_image_version=sklearn_version,
        output_file=Path(args.output_file) if args.output_file else None,
        sample_data=Path(args.sample_data) if args.sample_data else None,
        class_labels=labels, preflight_timeout=args.preflight_timeout,
        notes=(*notes, *instance_notes), warnings=instance_warnings,
        dry_run=bool(getattr(args, "dry_run", False)))


def _env_values(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    try:
        return validate_env_vars(REQUIRED_ENV, env), []
    except ValidationError as error:
        return {}, [error.message + ":", *error.details]


def _flag_problems(args: argparse.Namespace) -> list[str]:
    problems = []
    if not _STACK.fullmatch(args.stack or ""):
        problems.append(f"--stack {args.stack!r}: lower-case letters, digits and hyphens, 1-63 "
                        "characters (it names the ECR repository <stack>-inference and S3 prefixes)")
    for flag, value in (("--repo-name", args.repo_name),
                        ("--import-branch-name", args.import_branch_name)):
        if not _PATH_PART.fullmatch(value or "") or len(value) > 128 or ".." in value:
            problems.append(f"{flag} {value!r}: letters, digits, '.', '_', '-' (and '/' between "
                            "parts), at most 128 characters; it becomes part of the S3 key")
    if not is_sagemaker_name(args.model_package_group_name):
        problems.append(f"--model-package-group-name {args.model_package_group_name!r}: 1-63 "
                        "letters, digits and hyphens, starting and ending with a letter or digit")
    problems += instance_type_problems(args.instance_type)
    problems += _output_file_problems(args.output_file)
    return problems


def instance_type_problems(instance_type: str) -> list[str]:
    """Problems with --instance-type, by deploy-model.py's own check (`local` is fine here: it is
    ignored, see below)."""
    try:
        validate_instance_type(instance_type)
    except ValidationError as error:
        return [f"--instance-type: {error.message}" + "".join(f" ({hint})" for hint in error.hints)]
    return []


def resolve_instance_type(instance_type: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(ml.* type to register, notes, warnings). `local` (serving on this machine) is not an
    instance type a package can list, so it is ignored in favour of the default."""
    if instance_type == LOCAL_INSTANCE_TYPE:
        return DEFAULT_INSTANCE_TYPE, (
            f"Instance type 'local' is for serving on this machine and is not registered; "
            f"the package lists {DEFAULT_INSTANCE_TYPE}.",), ()
    return instance_type, (), tuple(validate_instance_type(instance_type))


def _output_file_problems(output_file: str | None) -> list[str]:
    problem = output_file_problem(output_file) if output_file else None
    return [f"--output-file {output_file!r}: {problem}"] if problem else []


def _image_choice(args: argparse.Namespace, sources: Mapping[str, str], notes: list[str]
                  ) -> tuple[str | None, str | None, list[str]]:
    """--image-uri or --sklearn-image-version (one of them): a flag beats the other's env var."""
    image_uri, version = args.image_uri or None, args.sklearn_image_version or None
    if not (image_uri and version):
        return image_uri, version, []
    image_source = sources.get("image_uri", "flag")
    version_source = sources.get("sklearn_image_version", "flag")
    if image_source == version_source:
        how = "flags" if image_source == "flag" else "environment variables"
        return None, None, [f"--image-uri and --sklearn-image-version are both given (as {how}) "
                            "and exclude each other; give only one (unset IMAGE_URI or "
                            "SKLEARN_IMAGE_VERSION)"]
    if image_source == "flag":
        notes.append("--image-uri given: ignoring SKLEARN_IMAGE_VERSION from the environment")
        return image_uri, None, []
    notes.append("--sklearn-image-version given: ignoring IMAGE_URI from the environment")
    return None, version, []


def _image_problems(image_uri: str | None, sklearn_version: str | None,
                    region: str | None) -> list[str]:
    """Cheap image checks, before the pre-flight: a typo should cost a second, not a minute."""
    try:
        if image_uri and region:
            validate_image_uri(image_uri, region)
        if sklearn_version:
            check_sklearn_image_version(sklearn_version)
    except ValidationError as error:
        return [f"{error.message}" + "".join(f"; {line}" for line in error.details)
                + "".join(f" ({hint})" for hint in error.hints)]
    return []


def parse_class_labels(raw: str | None) -> tuple[list[str] | None, list[str]]:
    """CLASS_LABELS 'qc_pass,qc_fail' as a list; None when unset."""
    if raw is None or not raw.strip():
        return None, []
    labels = [label.strip() for label in raw.split(",")]
    if not all(_LABEL.fullmatch(label) for label in labels):
        return None, [f"--class-labels {raw!r}: a comma-separated list of non-empty labels, "
                      "e.g. qc_pass,qc_fail"]
    if len(set(labels)) != len(labels):
        return None, [f"--class-labels {raw!r}: labels must be distinct"]
    return labels, []


def print_settings(settings: PackageSettings, env: Mapping[str, str]) -> None:
    """The configuration, environment first (secrets masked completely), then the run's options."""
    shown = {name: get_env_var(name, env) for name in SHOWN_ENV}
    shown.update({name: env[name] for name in CREDENTIAL_ENV if env.get(name)})
    print_env_summary(shown)
    output.print_section("Packaging settings")
    output.print_key_values({
        "Stack": settings.stack, "Repository": settings.repo_name,
        "Import branch": settings.branch, "Model package group": settings.group_name,
        "Instance type": settings.instance_type, "Artifacts": settings.artifacts_dir,
        "Image": settings.image_uri or (
            f"AWS prebuilt scikit-learn image {settings.sklearn_image_version}"
            if settings.sklearn_image_version else
            default_image_uri(settings.account, settings.region, settings.stack)),
        "Class labels": ",".join(settings.class_labels) if settings.class_labels
        else "(inference.py default)",
        "Sample data": settings.sample_data or "(generated rows)",
        "Output file": settings.output_file or "(none)",
    })
    for note in settings.notes:
        output.print_info(note)
    for warning in settings.warnings:
        output.print_warning(warning)
