"""Helpers for the deploy tests: a registered package in moto, a fake clock, and deploy-model's
`main` with injectable time (the same steps as the entry script's `main`)."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.conftest import ACCOUNT, REGION, load_script

GROUP = "PLMSCWInferenceModelGroup"
FOREIGN_IMAGE = f"341280168497.dkr.ecr.{REGION}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
OWN_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/plmscw-inference:latest"
VALID_ANSWER = {"predictions": ["qc_pass", "qc_fail"],
                "probabilities": [[0.9, 0.1], [0.2, 0.8]],
                "class_indices": [0, 1], "confidence_scores": [0.9, 0.8]}

_script = None
_sessions: dict[tuple, Any] = {}


def client(name: str, region: str = REGION) -> Any:
    """A test's own client, from the shared session (moto's mock resets boto3's default one,
    which would re-parse the service model for every test)."""
    import boto3

    key = ("test", region)
    if key not in _sessions:
        _sessions[key] = boto3.Session(region_name=region)
    return _sessions[key].client(name)


def reuse_sessions(monkeypatch) -> None:
    """Every deploy makes a fresh boto3 session, which re-parses the large SageMaker service model
    (~0.3 s). The tests share one session per region instead, so they stay fast; clients are still
    created per run and still go through moto."""
    import utils.boto_session as boto_session

    real = boto_session.get_boto_session

    def cached(region: str, profile: str | None = None, *, quiet: bool = False) -> Any:
        key = (region, profile)
        if key not in _sessions:
            _sessions[key] = real(region, profile, quiet=quiet)
        return _sessions[key]

    monkeypatch.setattr(boto_session, "get_boto_session", cached)
    monkeypatch.setattr("modules.deploy_endpoint.get_boto_session", cached)
    # The AWS_REGION check parses botocore's endpoint data (~0.1 s) on every call: once is enough.
    import utils.env_validation as env_validation

    if not hasattr(env_validation.sagemaker_regions, "cache_info"):
        monkeypatch.setattr(env_validation, "sagemaker_regions",
                            functools.lru_cache(maxsize=1)(env_validation.sagemaker_regions))



# No endpoint, config or model: what every failure test expects to be left.
EMPTY = {"endpoints": [], "configs": [], "models": []}


@contextlib.contextmanager
def emulated_sagemaker(monkeypatch) -> Iterator[Any]:
    """In-process moto with the SageMaker double in front; `double.sagemaker` is a client."""
    from moto import mock_aws

    from tests.sagemaker_double import SageMakerDouble

    reuse_sessions(monkeypatch)
    with mock_aws(), SageMakerDouble() as double:
        double.sagemaker = client("sagemaker")
        yield double

def deploy_script():
    global _script
    if _script is None:
        _script = load_script("deploy-model.py")
    return _script


def main(argv: list[str], env: dict[str, str]) -> int:
    """deploy-model.py's own `main`, on the real clock, as a user runs it."""
    return deploy_script().main(argv, env)


def run_captured(capsys: Any, env: dict[str, str], *argv: str) -> tuple[int, Any]:
    """`main(argv)` and what it printed (pytest's capsys result)."""
    code = main(list(argv), env)
    return code, capsys.readouterr()


def deploy_ok(capsys: Any, env: dict[str, str], *argv: str) -> str:
    """`main(argv)`, which must succeed; its stdout."""
    code, captured = run_captured(capsys, env, *argv)
    assert code == 0, captured.err
    return captured.out


def live_config(sagemaker: Any, endpoint: str = "qc-prod") -> dict[str, Any]:
    """The endpoint config `endpoint` serves from now, as DescribeEndpointConfig answers."""
    current = sagemaker.describe_endpoint(EndpointName=endpoint)
    return sagemaker.describe_endpoint_config(EndpointConfigName=current["EndpointConfigName"])


def register_package(sagemaker: Any, *, group: str = GROUP, approved: bool = True,
                     image: str = FOREIGN_IMAGE, labels: str | None = None,
                     feature_count: int | None = None) -> str:
    """An Approved (or pending) package version, as utils/package-model.py registers it."""
    try:
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    except Exception:  # noqa: BLE001 - the group exists already
        pass
    environment = {"SAGEMAKER_PROGRAM": "inference.py",
                   "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
    if labels:
        environment["CLASS_LABELS"] = labels
    answer = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [{"Image": image, "ModelDataUrl": "s3://bucket/model.tar.gz",
                            "Environment": environment}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.c5.2xlarge"]},
        ModelApprovalStatus="Approved" if approved else "PendingManualApproval",
        **({"CustomerMetadataProperties": {"feature_count": str(feature_count)}}
           if feature_count is not None else {}))
    return answer["ModelPackageArn"]


@dataclass
class FakeClock:
    """Monotonic time that moves only when slept; can raise on the Nth sleep (Ctrl-C, SIGTERM)."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    raise_at: dict[int, BaseException] = field(default_factory=dict)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        error = self.raise_at.pop(len(self.sleeps), None)
        if error is not None:
            raise error
        self.now += seconds


def timing(clock: FakeClock | None = None, **overrides: Any):
    from modules.deploy_endpoint import Timing

    clock = clock or FakeClock()
    return Timing(sleep=clock.sleep, clock=clock.clock, log_poll_seconds=0.01, **overrides)


def run_deploy(argv: list[str], env: dict[str, str], timing_: Any = None) -> int:
    """deploy-model.py's `main`, with the deploy's time injected."""
    from modules.deploy_endpoint import run_deploy as deploy
    from modules.deploy_validation import settings_from_args
    from utils import output
    from utils.cli import run

    parser = deploy_script().build_parser()
    args = parser.parse_with_env(argv, env)
    output.configure_output(json_mode=args.json, env=env)
    return run(lambda: deploy(settings_from_args(args, env, datetime.now(),
                                                 sources=parser.value_sources), timing_),
               debug=args.debug)


def deploy(aws: Any, env: dict[str, str], *args: str, clock: FakeClock | None = None,
           **timing_overrides: Any) -> int:
    """Deploy the package the test registered as `aws.arn`, on a fake clock."""
    return run_deploy(["-a", aws.arn, *args], env, timing(clock, **timing_overrides))


def one_json_document(text: str) -> dict:
    """stdout must hold exactly one JSON document."""
    document = json.loads(text)
    assert isinstance(document, dict)
    return document


def tags_of(sagemaker: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}

