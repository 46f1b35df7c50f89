"""Which serving image a package names, and whether it really exists.

Three sources, in the order package-model.py considers them:
- `--image-uri`: any image the user names;
- `--sklearn-image-version`: AWS's prebuilt scikit-learn inference image for that framework
  version, resolved by the SageMaker SDK (`sagemaker.core.image_uris.retrieve`). Importing the SDK
  costs ~2.5 s, so it happens only here, only when the option is used;
- default: the project's own serving image,
  `<account>.dkr.ecr.<region>.amazonaws.com/<stack>-inference:latest`.

With a prebuilt image, the model must suit the scikit-learn inside it: a model saved with a newer
scikit-learn than the image's is refused (an older scikit-learn cannot be relied on to unpickle it,
and the image's Python is often too old to install the newer one), an older one gets a warning.

When the image lives in this account's ECR, the repository and the tag (or digest) are checked
before anything is uploaded or registered: a package naming a missing image only fails ten
minutes into a deploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from utils.errors import AwsError, ValidationError

ECR_SETUP_SCRIPT = "artifacts/ecr-image-setup.sh"
_ECR_URI = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<repository>[^:@\s]+)(?::(?P<tag>[^:@\s]+))?(?:@(?P<digest>[^@\s]+))?")
_REPOSITORY = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_SKLEARN_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:-\d+)?(?:-py\d+)?")
_MAX_IMAGE_LENGTH = 255  # SageMaker's limit for a container image URI


@dataclass(frozen=True)
class EcrImage:
    account: str
    region: str
    repository: str
    tag: str | None
    digest: str | None
    uri: str = field(default="", compare=False)  # as the user wrote it, for messages

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"


def default_image_uri(account: str, region: str, stack: str) -> str:
    """The project's own serving image, built and pushed by artifacts/ecr-image-setup.sh."""
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{stack}-inference:latest"


def parse_ecr_image(uri: str) -> EcrImage | None:
    """The parts of an ECR image URI, or None when the image is not in ECR."""
    match = _ECR_URI.fullmatch(uri)
    if not match:
        return None
    return EcrImage(match["account"], match["region"], match["repository"], match["tag"],
                    match["digest"], uri)


def validate_image_uri(uri: str, region: str) -> EcrImage | None:
    """Refuse image URIs SageMaker would refuse; returns the ECR parts when it is an ECR image."""
    if not uri or len(uri) > _MAX_IMAGE_LENGTH or any(c.isspace() for c in uri):
        raise ValidationError(f"Invalid image URI: {uri!r}",
                              hint=f"Give a registry path of at most {_MAX_IMAGE_LENGTH} "
                                   "characters without spaces, like "
                                   "123456789012.dkr.ecr.ca-central-1.amazonaws.com/plmscw-inference:latest")
    image = parse_ecr_image(uri)
    if image is None:
        return None
    problems = _ecr_problems(image)
    if problems:
        raise ValidationError(f"Invalid ECR image URI: {uri}", details=problems,
                              hint="Expected <account>.dkr.ecr.<region>.amazonaws.com/"
                                   "<repository>:<tag> (or @sha256:<digest>).")
    if image.region != region:
        raise ValidationError(
            f"The image is in ECR in {image.region}, but the package is for {region}",
            details=["SageMaker pulls container images only from ECR in the endpoint's region."],
            hint=f"Push the image to ECR in {region} (see {ECR_SETUP_SCRIPT}) and use that URI.")
    return image


def _ecr_problems(image: EcrImage) -> list[str]:
    problems = []
    if not _REPOSITORY.fullmatch(image.repository) or not 2 <= len(image.repository) <= 256:
        problems.append(f"repository '{image.repository}': lower-case letters, digits and . _ - / "
                        "only, 2-256 characters")
    if image.tag is not None and not _TAG.fullmatch(image.tag):
        problems.append(f"tag '{image.tag}': letters, digits, _ . - only, at most 128 characters")
    if image.digest is not None and not _DIGEST.fullmatch(image.digest):
        problems.append(f"digest '{image.digest}': expected sha256: and 64 hex digits")
    return problems


def check_ecr_image(ecr: Any, image: EcrImage) -> None:
    """The repository and tag/digest exist in ECR; else an error telling how to push the image."""
    from botocore.exceptions import ClientError

    from utils.aws_errors import error_code  # botocore: not on the settings-check path

    image_id = {"imageDigest": image.digest} if image.digest else {"imageTag": image.reference}
    try:
        ecr.describe_images(registryId=image.account, repositoryName=image.repository,
                            imageIds=[image_id])
    except ClientError as exc:
        code = error_code(exc)
        if code == "RepositoryNotFoundException":
            raise _image_missing(image, f"ECR repository '{image.repository}' does not exist "
                                        f"in account {image.account} ({image.region})") from None
        if code == "ImageNotFoundException":
            raise _image_missing(image, f"ECR repository '{image.repository}' has no image "
                                        f"'{image.reference}'") from None
        raise


def _image_missing(image: EcrImage, reason: str) -> AwsError:
    tag = f" --tag {image.tag or 'latest'}" if not image.digest else ""
    shown = image.uri or f"{image.account}.dkr.ecr.{image.region}.amazonaws.com/{image.repository}"
    # The original tool's wording, which its README's troubleshooting section is indexed by.
    return AwsError(f"Could not find image: {shown}", details=[reason], hint=[
        f"Build and push the serving image first: {ECR_SETUP_SCRIPT} --repository "
        f"{image.repository}{tag} (see artifacts/README.md).",
        "Or name an existing image with --image-uri, or use AWS's prebuilt scikit-learn image "
        "with --sklearn-image-version."])


def check_sklearn_image_version(version: str) -> None:
    """The shape of a framework version of the AWS scikit-learn container (e.g. 1.2-1)."""
    if not _SKLEARN_VERSION.fullmatch(version):
        raise ValidationError(f"Invalid scikit-learn image version: {version!r}",
                              hint="Use a framework version of the AWS scikit-learn container, "
                                   "e.g. 1.9-0 (the scikit-learn series, a dash, the build).")


def image_sklearn_series(framework_version: str) -> tuple[int, int]:
    """The scikit-learn release series (major, minor) inside a prebuilt image: 1.2-1 -> (1, 2)."""
    major, minor = framework_version.split("-", 1)[0].split(".")[:2]
    return int(major), int(minor)


def check_model_fits_sklearn_image(framework_version: str, saved_versions: list[str]) -> list[str]:
    """Warnings for a model saved with an older scikit-learn series than the prebuilt image runs;
    ValidationError for a newer one, which fails only at container start, minutes into a deploy."""
    from packaging.version import InvalidVersion, Version

    image_series = image_sklearn_series(framework_version)
    try:
        saved_series = {version: Version(version).release[:2] for version in saved_versions}
    except InvalidVersion:
        return [f"Cannot compare the model's scikit-learn version ({', '.join(saved_versions)}) "
                f"with the prebuilt image {framework_version}: check that they match."]
    image = f"AWS's prebuilt scikit-learn image {framework_version} (scikit-learn " \
            f"{image_series[0]}.{image_series[1]})"
    newer = [version for version, series in saved_series.items() if series > image_series]
    if newer:
        raise ValidationError(
            f"model.joblib was saved with scikit-learn {', '.join(newer)}, newer than {image}",
            details=["An older scikit-learn cannot be relied on to load a model pickled by a newer "
                     "one, and the image's Python may be too old to install the pinned version: "
                     "the endpoint would fail at container start."],
            hint=_matching_image_hints(saved_series[newer[0]], framework_version))
    older = [version for version, series in saved_series.items() if series < image_series]
    if not older:
        return []
    return [f"model.joblib was saved with scikit-learn {', '.join(older)}, older than {image}. "
            f"The image will load it with its own scikit-learn {image_series[0]}."
            f"{image_series[1]} (the bundle does not pin scikit-learn for a prebuilt image: "
            "installing it at start would need internet access from the endpoint and replace the "
            "image's packages), and scikit-learn does not promise that a model loads in another "
            "version. Prefer an image of the model's version, or retrain with scikit-learn "
            f"{image_series[0]}.{image_series[1]}."]


def _matching_image_hints(series: tuple[int, int], framework_version: str) -> list[str]:
    wanted = f"{series[0]}.{series[1]}"
    matching = [version for version in prebuilt_sklearn_versions()
                if _SKLEARN_VERSION.fullmatch(version) and image_sklearn_series(version) == series]
    first = (f"Use the prebuilt image for scikit-learn {wanted}: --sklearn-image-version "
             f"{matching[-1]}" if matching else
             f"No prebuilt image runs scikit-learn {wanted}: use the project's own serving image "
             "(drop --sklearn-image-version; artifacts/ecr-image-setup.sh builds it)")
    return [first, f"Or retrain and save the model with the scikit-learn of image "
                   f"{framework_version}, and pin that version in requirements.txt.",
            "To use this image anyway, name it explicitly with --image-uri (not checked)."]


def prebuilt_sklearn_versions() -> list[str]:
    """Framework versions of AWS's scikit-learn inference images that the SageMaker SDK knows."""
    from sagemaker.core import image_uris  # heavy (~2.5 s): only on this failure path

    return list(image_uris.config_for_framework("sklearn")["inference"]["versions"])


def resolve_sklearn_image(version: str, region: str, instance_type: str) -> str:
    """AWS's prebuilt scikit-learn inference image URI for `version` in `region`."""
    check_sklearn_image_version(version)
    from sagemaker.core import image_uris  # heavy (~2.5 s): only when this option is used

    try:
        return image_uris.retrieve("sklearn", region=region, version=version,
                                   image_scope="inference", instance_type=instance_type)
    except ValueError as exc:
        raise ValidationError(f"No AWS scikit-learn image for version {version} in {region}",
                              details=[str(exc)],
                              hint="Pick one of the supported versions listed above.") from None


# What AWS's scikit-learn image already has (its Python packages, and its own Flask/gunicorn
# server), or what only our own server uses; code/requirements.txt must not ask for them again.
# The image pip-installs code/requirements.txt at every container start: a pin there needs
# internet access from the endpoint, and replaces the image's tested package when it has it.
PREBUILT_IMAGE_PROVIDES = frozenset({
    "scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl", "pandas", "flask", "gunicorn",
    "gevent", "boto3", "botocore"})
# orjson and pysimdjson: inference.py falls back to json (and to orjson's path for many rows)
OUR_SERVER_ONLY = frozenset({"granian", "orjson", "pysimdjson", "uvloop"})


@dataclass(frozen=True)
class PrebuiltRequirements:
    text: str  # code/requirements.txt for the prebuilt image
    dropped: tuple[str, ...]  # requirement lines left out, as written
    kept: tuple[str, ...]  # what the image will pip-install at start


def requirements_for_prebuilt_image(text: str) -> PrebuiltRequirements:
    """code/requirements.txt for AWS's image: only what the handlers need beyond the image."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    dropped, kept = [], []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            name = canonicalize_name(Requirement(line).name)
        except InvalidRequirement:  # an option such as -r or --index-url: pip's to judge
            kept.append(line)
            continue
        (dropped if name in PREBUILT_IMAGE_PROVIDES | OUR_SERVER_ONLY else kept).append(line)
    header = ("# For AWS's prebuilt scikit-learn image: only what the handlers need beyond the\n"
              "# image (package-model.py left out the packages the image has and those only the\n"
              "# project's own server uses). The image pip-installs this file at start.\n")
    return PrebuiltRequirements(header + "".join(f"{line}\n" for line in kept), tuple(dropped),
                                tuple(kept))
