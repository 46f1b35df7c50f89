"""Watch: follow a deploy SageMaker is running until it settles, and prove what it became.

- `watch_endpoint`: status and CloudWatch logs until the endpoint settles or the plan's timeout
  passes (modules/monitor_endpoint.py does the polling and the tail).
- `serves_new_config`: success of a create or an update is InService *and* the endpoint's current
  config being the plan's; SageMaker answers a failed update with InService on the old config.
- `run_smoke_test`: one request through sagemaker-runtime, checked against the inference contract.
- `wait_back_on`: after pointing an endpoint at another config, wait until it serves it.

`Timing` is every clock a deploy uses; tests pass fakes so nothing really waits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore import exceptions as bce

from modules.deploy_plan import DeployPlan
from modules.deploy_resources import ROLLBACK_WAIT_SECONDS, Waiting
from modules.monitor_endpoint import LOG_POLL_SECONDS, MonitorResult, monitor_and_tail, update_settled
from utils import output
from utils.aws_errors import error_code, error_message
from utils.contract import validate_response
from utils.endpoint_operations import WaitResult, wait_for_endpoint
from utils.errors import ContractError


@dataclass
class Timing:
    """Time as the deploy sees it; tests pass fakes so nothing really waits."""

    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    now: Callable[[], datetime] = datetime.now
    log_poll_seconds: float = LOG_POLL_SECONDS
    rollback_wait: float = ROLLBACK_WAIT_SECONDS

    def waiting(self, poll_interval: float | None) -> Waiting:
        return Waiting(self.rollback_wait, poll_interval, self.sleep, self.clock)


def watch_endpoint(sagemaker: Any, logs: Any, plan: DeployPlan, *, expected_config: str,
                   baseline_failure: str | None, timing: Timing) -> MonitorResult:
    return monitor_and_tail(
        sagemaker, logs, plan.endpoint_name, expected_config=expected_config,
        timeout=plan.timeout, poll_interval=plan.poll_interval,
        baseline_failure=baseline_failure, log_poll_seconds=timing.log_poll_seconds,
        sleep=timing.sleep, clock=timing.clock, wall_clock=timing.wall)


def serves_new_config(outcome: MonitorResult, config_name: str) -> bool:
    return outcome.status == "InService" and outcome.config_name == config_name


class SmokeTestFailed(Exception):
    def __init__(self, problem: str, lines: list[str]) -> None:
        super().__init__(problem)
        self.problem = problem
        self.lines = lines


def run_smoke_test(runtime: Any, plan: DeployPlan) -> dict:
    """Invoke the endpoint with the plan's smoke-test request; SmokeTestFailed unless the answer
    follows the contract."""
    smoke = plan.smoke_test
    assert smoke is not None
    output.print_section("Smoke test")
    output.print_info(f"Invoking {plan.endpoint_name} with {smoke.path} ({smoke.n_rows} rows)")
    try:
        answer = runtime.invoke_endpoint(
            EndpointName=plan.endpoint_name, ContentType="application/json",
            Accept="application/json", Body=smoke.body)
        text = answer["Body"].read().decode("utf-8", "replace")
        response = _json_answer(text)
        validate_response(response, smoke.n_rows, plan.package.class_labels,
                          source=f"endpoint {plan.endpoint_name}")
    except ContractError as exc:
        raise SmokeTestFailed(exc.message, exc.details) from None
    except (bce.ClientError, bce.BotoCoreError) as exc:
        raise SmokeTestFailed(f"the invocation failed: {error_code(exc) or type(exc).__name__}",
                              [error_message(exc)]) from None
    output.print_success(f"Smoke test passed: {smoke.n_rows} rows answered as the contract says")
    return {"passed": True, "rows": smoke.n_rows, "predictions": response["predictions"][:10]}


def _json_answer(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ContractError("The endpoint's answer is not JSON",
                            details=[text[:300]]) from None


ALL_AT_ONCE = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
    "Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}}}


def point_endpoint_at(sagemaker: Any, plan: DeployPlan, config_name: str, *,
                      baseline_failure: str | None, timing: Timing) -> WaitResult:
    """UpdateEndpoint to `config_name` (all at once) and wait, bounded, until it settles."""
    # An autoscaled variant kept through the update keeps its count going back, too.
    sagemaker.update_endpoint(EndpointName=plan.endpoint_name, EndpointConfigName=config_name,
                              DeploymentConfig=ALL_AT_ONCE,
                              **(plan.scaling.update_options() if plan.scaling else {}))
    return wait_for_endpoint(
        sagemaker, plan.endpoint_name, timeout=timing.rollback_wait,
        poll_interval=plan.poll_interval, is_done=update_settled(config_name, baseline_failure),
        sleep=timing.sleep, clock=timing.clock)
