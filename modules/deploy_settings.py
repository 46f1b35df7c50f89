"""The validated settings of one deploy (built by modules/deploy_validation.py).

Kept apart from the validation so that refusing a bad ARN never pays for defining these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modules.deploy_validation import DEFAULT_TIMEOUT, LOCAL_INSTANCE_TYPE
from modules.scaling_settings import Autoscale, Serverless
from modules.traffic_settings import DataCapture, TrafficChange
from utils.names import DEFAULT_STACK

# Only these variables of the caller's environment reach a local model server: on SageMaker the
# container sees the package's Environment alone, and a local server has no use for AWS keys.
LOCAL_SERVER_ENV_VARS = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ",
                         "VIRTUAL_ENV", "SYSTEMROOT")


@dataclass(frozen=True)
class DeploymentStrategy:
    """How an update shifts traffic to the new fleet (SageMaker blue/green)."""

    name: str = "all-at-once"
    step_percent: int = 50
    wait_seconds: int = 0


@dataclass(frozen=True)
class SmokeTest:
    """The request sent to a new endpoint once it is InService."""

    path: str
    body: bytes
    n_rows: int
    width: int | None = None  # features per row, checked against the package's feature count


@dataclass(frozen=True)
class DeploySettings:
    """Everything a deploy needs, validated, with no AWS call made yet."""

    region: str
    role_arn: str | None
    profile: str | None
    endpoint_name: str
    instance_type: str
    instance_count: int = 1
    model_package_arn: str | None = None
    model_package_group: str | None = None
    stack: str = DEFAULT_STACK
    monitor: bool = True
    rollback: bool = True
    keep_previous: bool = False
    timeout: float = DEFAULT_TIMEOUT
    poll_interval: float | None = None
    output_file: str | None = None
    dry_run: bool = False
    strategy: DeploymentStrategy = field(default_factory=DeploymentStrategy)
    rollback_alarms: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    smoke_test: SmokeTest | None = None
    name_was_generated: bool = False
    serverless: Serverless | None = None  # a serverless variant instead of instances
    autoscale: Autoscale | None = None  # Application Auto Scaling of the instances
    data_capture: DataCapture | None = None  # set this capture (else an update keeps the live one)
    drop_data_capture: bool = False  # --no-data-capture: an update drops the live capture
    keep_releases: int = 3  # configs and models of the last N releases stay (for --rollback)
    release_action: str | None = None  # "rollback" or "history": no package, the endpoint's own
    to_release: int | None = None  # --to-release K (None: the previous release)
    traffic: TrafficChange | None = None  # add, re-weight, promote or remove a variant
    # Local mode only: where local endpoints are recorded, and what the server inherits.
    state_dir: Path | None = None
    server_env: tuple[tuple[str, str], ...] = ()

    @property
    def is_local(self) -> bool:
        return self.instance_type == LOCAL_INSTANCE_TYPE
