"""One deploy, end to end: settings -> clients -> plan -> create -> watch -> verify -> report.

The rule this module keeps: a deploy never leaves an endpoint broken, and never leaves behind
anything it created unless told to (`--skip-rollback`, which then prints the exact commands).

- Create: a failure, a timeout, a failed smoke test, Ctrl-C or SIGTERM deletes the endpoint
  (waiting until it is gone), its config and its model.
- Update: SageMaker keeps the old config serving when an update fails; we then delete the new
  config and model. A failed smoke test points the endpoint back at the previous config first.
  After a successful update the previous config and model go too (if deploy-model made them)
  unless `--keep-previous`.

What the user is told (the success report, the error types and the failure's likely causes)
lives in modules/deploy_report.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from botocore import exceptions as bce

from modules.deploy_plan import (
    ROLLBACK_WAIT_SECONDS,
    DeployPlan,
    Resource,
    RollbackReport,
    RunResources,
    check_package_deployable,
    cleanup_commands,
    create_endpoint_config,
    create_model,
    describe_package,
    latest_approved_package_arn,
    plan_deployment,
    resolve_model_package,
    rollback,
    show_plan,
    start_endpoint,
    superseded_resources,
)
from modules.deploy_report import (
    AwsStepFailed,
    DeployFailedError,
    DeployInterrupted,
    DeployTimedOut,
    failure_details,
    follow_commands,
    interrupt_code,
    report,
)
from modules.deploy_settings import DeploySettings
from modules.monitor_endpoint import (
    LOG_POLL_SECONDS,
    MonitorResult,
    log_group_name,
    monitor_and_tail,
    update_settled,
)
from utils import output
from utils.aws_errors import error_code, error_message, translate_botocore_error
from utils.boto_session import create_clients, get_boto_session
from utils.contract import validate_response
from utils.endpoint_operations import console_url, wait_for_endpoint
from utils.errors import ContractError, DeployModelError, ExitCode, Terminated


@dataclass
class Timing:
    """Time as the deploy sees it; tests pass fakes so nothing really waits."""

    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    now: Callable[[], datetime] = datetime.now
    log_poll_seconds: float = LOG_POLL_SECONDS
    rollback_wait: float = ROLLBACK_WAIT_SECONDS


# ---------------------------------------------------------------------------------------------
# Entry points


def run_deploy(settings: DeploySettings, env: Mapping[str, str],
               timing: Timing | None = None) -> int:
    """What deploy-model.py does after validation: deploy (or serve locally), then report."""
    if settings.is_local:
        result = deploy_local_endpoint(settings, env)
    else:
        result = deploy_endpoint(settings, timing=timing)
    report(result, settings)
    return int(ExitCode.OK)


def deploy_endpoint(settings: DeploySettings, *, timing: Timing | None = None) -> dict:
    timing = timing or Timing()
    started = timing.clock()
    output.print_header(f"Deploying to SageMaker endpoint {settings.endpoint_name}")
    session = get_boto_session(settings.region, settings.profile)
    sagemaker, logs, ecr = create_clients(session, "sagemaker", "logs", "ecr")
    package = resolve_model_package(sagemaker, ecr, settings)
    plan = plan_deployment(sagemaker, settings, package, timing.now())
    show_plan(plan, settings)
    if settings.dry_run:
        output.print_success("Dry run: nothing was created or changed")
        return {**plan.summary(), "status": "DryRun", "dry_run": True,
                "region": settings.region, "console_url": console_url(settings.region,
                                                                      plan.endpoint_name)}
    run = DeployRun(settings, plan, sagemaker, logs, session, timing, started)
    return run.execute()


def deploy_local_endpoint(settings: DeploySettings, env: Mapping[str, str]) -> dict:
    """`--instance-type local`: serve the package on this machine (modules/local_endpoint.py)."""
    from modules.local_endpoint import deploy_local
    from utils.local_endpoints import state_dir_from_env

    _warn_ignored_in_local_mode(settings)
    output.print_header(f"Serving {settings.endpoint_name} locally")
    session = get_boto_session(settings.region, settings.profile)
    sagemaker, s3 = create_clients(session, "sagemaker", "s3")
    arn = settings.model_package_arn or latest_approved_package_arn(
        sagemaker, settings.model_package_group or "")
    base = {"endpoint_name": settings.endpoint_name, "status": "InService", "action": "created",
            "instance_type": "local", "model_package_arn": arn, "region": settings.region}
    if settings.dry_run:
        # deploy_local resolves the package itself; a dry run must refuse what it would refuse.
        check_package_deployable(describe_package(sagemaker, arn))
        output.print_success(f"Dry run: would serve {arn} locally as {settings.endpoint_name}")
        return {**base, "status": "DryRun", "dry_run": True}
    info = deploy_local(sagemaker, s3, endpoint_name=settings.endpoint_name,
                        model_package_arn=arn, state_dir=state_dir_from_env(env),
                        timeout=settings.timeout)
    return {**base, **(info or {})}


def _warn_ignored_in_local_mode(settings: DeploySettings) -> None:
    ignored = [flag for flag, used in (
        ("--instance-count", settings.instance_count != 1),
        ("--deployment-strategy", settings.strategy.name != "all-at-once"),
        ("--rollback-alarm", bool(settings.rollback_alarms)), ("--tag", bool(settings.tags)),
        ("--smoke-test-data", settings.smoke_test is not None),
        ("--no-monitor", not settings.monitor), ("--skip-rollback", not settings.rollback),
        ("--keep-previous", settings.keep_previous)) if used]
    if ignored:
        output.print_warning(f"Ignored in local mode: {', '.join(ignored)}")


# ---------------------------------------------------------------------------------------------
# One run


class DeployRun:
    """Creates, watches and verifies one deploy, and owns the rollback of what it created."""

    def __init__(self, settings: DeploySettings, plan: DeployPlan, sagemaker: Any, logs: Any,
                 session: Any, timing: Timing, started: float) -> None:
        self.settings = settings
        self.plan = plan
        self.sagemaker = sagemaker
        self.logs = logs
        self.session = session
        self.timing = timing
        self.started = started
        self.resources = RunResources()
        self.is_create = plan.action == "create"
        self.update_requested = False  # set just before UpdateEndpoint is sent
        self.verified = False  # InService on the new config (the smoke test may still fail)
        self.outcome: MonitorResult | None = None

    # -- the happy path ----------------------------------------------------------------------

    def execute(self) -> dict:
        output.print_section("Creating resources")
        self._create_resources()
        if not self.settings.monitor:
            return self._accepted()
        output.print_section("Monitoring")
        try:
            outcome = self.outcome = self._watch()
            self._check(outcome)
            smoke = self._smoke_test()
        except (KeyboardInterrupt, Terminated) as interrupt:
            self._interrupted(interrupt)
        except DeployModelError:
            raise  # a failed deploy: already rolled back and explained
        except Exception as exc:  # noqa: BLE001 - whatever stopped the watch, clean up first
            self._aborted(exc)
        return self._succeeded(outcome, smoke)

    def _create_resources(self) -> None:
        try:
            create_model(self.sagemaker, self.plan, self.settings.role_arn or "", self.resources)
            create_endpoint_config(self.sagemaker, self.plan, self.resources)
            self.update_requested = not self.is_create
            start_endpoint(self.sagemaker, self.plan, self.resources)
        except (KeyboardInterrupt, Terminated) as interrupt:
            self._interrupted(interrupt)
        except bce.ClientError as exc:
            # AWS refused a call. Even a refused UpdateEndpoint may be a retry of one that got
            # through, so the rollback checks that the endpoint does not use the new config.
            self._aborted(exc, refused=True)
        except Exception as exc:  # noqa: BLE001 - e.g. no answer to UpdateEndpoint: it may run
            self._aborted(exc)

    def _watch(self) -> MonitorResult:
        verb = "creation" if self.is_create else "update"
        output.print_info(f"Watching the {verb} (timeout {output.format_duration(self.settings.timeout)};"
                          " Ctrl-C to stop" + (" and roll back)" if self.is_create else ")"))
        return monitor_and_tail(
            self.sagemaker, self.logs, self.plan.endpoint_name,
            expected_config=self.plan.config_name, timeout=self.settings.timeout,
            poll_interval=self.settings.poll_interval,
            baseline_failure=None if self.is_create else self.plan.previous_failure_reason,
            log_poll_seconds=self.timing.log_poll_seconds, sleep=self.timing.sleep,
            clock=self.timing.clock, wall_clock=self.timing.wall)

    def _check(self, outcome: MonitorResult) -> None:
        if outcome.timed_out:
            self._timed_out(outcome)
        if outcome.status != "InService" or outcome.config_name != self.plan.config_name:
            self._failed(outcome)
        self.verified = True
        output.print_info(f"Verified: {self.plan.endpoint_name} is InService and serves the new "
                          f"endpoint config {self.plan.config_name}")

    def _accepted(self) -> dict:
        name, region = self.plan.endpoint_name, self.settings.region
        status = "Creating" if self.is_create else "Updating"
        output.print_success(f"SageMaker accepted the {'creation' if self.is_create else 'update'}"
                             f" of {name}; it is {status}")
        output.print_warning("Not monitoring (--no-monitor): no automatic rollback will happen "
                             "if this deploy fails")
        output.print_info("Follow it:")
        for line in follow_commands(name, region):
            output.print_info(f"  {line}")
        leftovers = (self.resources.to_remove() if self.is_create else
                     [Resource("endpoint-config", self.plan.config_name),
                      Resource("model", self.plan.model_name)])
        output.print_info("If it fails, remove what this run created:")
        for line in cleanup_commands(leftovers, region):
            output.print_info(f"  {line}")
        if not self.is_create and self.plan.previous_config:
            output.print_info(f"The previous config {self.plan.previous_config} stays; remove it "
                              "once the update is InService if you no longer need it.")
        return self._result(status, monitored=False)

    def _succeeded(self, outcome: MonitorResult, smoke: dict | None) -> dict:
        removed: list[str] = []
        if not self.is_create:
            self._tag_updated_endpoint()
            removed = self._remove_superseded()
        result = self._result("InService", monitored=True)
        result.update(smoke_test=smoke, removed_previous=removed,
                      container_errors=outcome.error_lines or [])
        return result

    def _result(self, status: str, *, monitored: bool) -> dict:
        return {**self.plan.summary(), "status": status,
                "action": "created" if self.is_create else "updated",
                "region": self.settings.region,
                "console_url": console_url(self.settings.region, self.plan.endpoint_name),
                "elapsed_seconds": round(self.timing.clock() - self.started, 1),
                "monitored": monitored, "deployment_strategy": (
                    None if self.is_create else self.settings.strategy.name)}

    def _tag_updated_endpoint(self) -> None:
        """The endpoint's tags name the package it now serves."""
        if not self.plan.endpoint_arn:
            return
        try:
            self.sagemaker.add_tags(ResourceArn=self.plan.endpoint_arn, Tags=self.plan.tags)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            # The update succeeded; stale tags are worth a warning, not a failure.
            output.print_warning(f"Could not update the endpoint's tags: {error_message(exc)}")

    def _remove_superseded(self) -> list[str]:
        if self.settings.keep_previous:
            if self.plan.previous_config:
                output.print_info(f"Kept the previous config {self.plan.previous_config} and its "
                                  "model (--keep-previous)")
            return []
        try:
            removable, kept = superseded_resources(self.sagemaker, self.plan)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            # The deploy succeeded; failing to tidy up must not turn it into a failure.
            output.print_warning(f"Could not check the previous config {self.plan.previous_config}"
                                 f" for removal ({error_message(exc)}); it stays")
            return []
        for name in kept:
            output.print_info(f"Left the previous {name} alone: deploy-model did not create it")
        if not removable:
            return []
        output.print_info("Removing the superseded " + ", ".join(map(str, removable)))
        report = self._rollback(removable)
        if report.left:
            output.print_warning("; ".join(report.lines(self.settings.region)))
        return [str(r) for r in report.removed]

    # -- the smoke test ----------------------------------------------------------------------

    def _smoke_test(self) -> dict | None:
        smoke = self.settings.smoke_test
        if smoke is None:
            return None
        output.print_section("Smoke test")
        output.print_info(f"Invoking {self.plan.endpoint_name} with {smoke.path} "
                          f"({smoke.n_rows} rows)")
        (runtime,) = create_clients(self.session, "sagemaker-runtime")
        try:
            answer = runtime.invoke_endpoint(
                EndpointName=self.plan.endpoint_name, ContentType="application/json",
                Accept="application/json", Body=smoke.body)
            text = answer["Body"].read().decode("utf-8", "replace")
            response = _json_answer(text)
            validate_response(response, smoke.n_rows, self.plan.package.class_labels,
                              source=f"endpoint {self.plan.endpoint_name}")
        except ContractError as exc:
            self._smoke_failed(exc.message, exc.details)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            self._smoke_failed(f"the invocation failed: {error_code(exc) or type(exc).__name__}",
                               [error_message(exc)])
        output.print_success(f"Smoke test passed: {smoke.n_rows} rows answered as the "
                             "contract says")
        return {"passed": True, "rows": smoke.n_rows,
                "predictions": response["predictions"][:10]}

    def _smoke_failed(self, problem: str, lines: list[str]) -> None:
        details = [f"Smoke test ({self.settings.smoke_test.path}): {problem}"]
        details += [f"  {line}" for line in lines]
        if self.is_create:
            report = self._roll_back_created("the smoke test failed")
        else:
            report = self._point_back()
        details += report.lines(self.settings.region)
        raise self._with_interrupt(DeployFailedError(
            f"Endpoint {self.plan.endpoint_name} is InService but failed the smoke test",
            details=details, facts=self._facts(status="SmokeTestFailed", report=report),
            hint=["Check the endpoint's answer against the contract in the README "
                  "(predictions, probabilities, class_indices, confidence_scores).",
                  "Reproduce on this machine: python deploy-model.py -a "
                  f"{self.plan.package.arn} -t local -e {self.plan.endpoint_name}-local",
                  *self._log_hints()]), report)

    def _point_back(self) -> RollbackReport:
        """An update that InService does not prove: send the endpoint back to the old config,
        then remove the new config and model."""
        previous = self.plan.previous_config
        new = [Resource("endpoint-config", self.plan.config_name),
               Resource("model", self.plan.model_name)]
        if not self.settings.rollback:
            return RollbackReport(left=new, problem="--skip-rollback: the endpoint stays on the "
                                  f"new config; point it back with: aws sagemaker update-endpoint "
                                  f"--endpoint-name {self.plan.endpoint_name} "
                                  f"--endpoint-config-name {previous}")
        if not self.plan.previous_config_arn:
            return RollbackReport(left=new, problem=f"the previous config {previous} no longer "
                                  "exists, so the endpoint stays on the new one")
        output.print_warning(f"Pointing {self.plan.endpoint_name} back at {previous}")
        try:
            self.sagemaker.update_endpoint(
                EndpointName=self.plan.endpoint_name, EndpointConfigName=previous,
                DeploymentConfig={"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
                    "Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}}})
            baseline = self.outcome.failure_reason if self.outcome else None
            waited = wait_for_endpoint(
                self.sagemaker, self.plan.endpoint_name, timeout=self.timing.rollback_wait,
                poll_interval=self.settings.poll_interval,
                is_done=update_settled(previous, baseline), sleep=self.timing.sleep,
                clock=self.timing.clock)
        except (KeyboardInterrupt, Terminated) as interrupt:
            return RollbackReport(left=new, problem="interrupted while pointing back",
                                  interrupted=interrupt)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            return RollbackReport(left=new, problem=f"could not point it back: "
                                  f"{error_message(exc)}")
        on_previous = (waited.description or {}).get("EndpointConfigName") == previous
        if waited.timed_out or waited.status != "InService" or not on_previous:
            return RollbackReport(left=new, problem=f"pointing back ended {waited.status} on "
                                  f"{(waited.description or {}).get('EndpointConfigName')}")
        output.print_info(f"{self.plan.endpoint_name} is InService on {previous} again")
        return self._rollback(new)

    # -- failures ----------------------------------------------------------------------------

    def _failed(self, outcome: MonitorResult) -> None:
        name = self.plan.endpoint_name
        if self.is_create:
            message = f"Endpoint {name} did not come up (status {outcome.status})"
            report = self._roll_back_created("the deploy failed")
        elif outcome.status == "InService":
            message = (f"The update of {name} failed; SageMaker rolled it back and it still "
                       f"serves {outcome.config_name}")
            report = self._remove_new_unless_in_use(outcome)
        else:
            message = f"The update of {name} failed (status {outcome.status})"
            report = self._remove_new_unless_in_use(outcome)
        details = failure_details(outcome) + report.lines(self.settings.region)
        raise self._with_interrupt(DeployFailedError(
            message, details=details, hint=self._next_steps(),
            facts=self._facts(status=outcome.status, outcome=outcome, report=report)), report)

    def _timed_out(self, outcome: MonitorResult) -> None:
        name, limit = self.plan.endpoint_name, output.format_duration(self.settings.timeout)
        details = [f"Status after {limit}: {outcome.status}"]
        if self.is_create:
            report = self._roll_back_created("the deploy timed out")
            hints = ["Check the logs for a container that never answers /ping.",
                     "Check instance availability and quotas for "
                     f"{self.plan.instance_type} in {self.settings.region}.",
                     "Allow longer with --timeout (env DEPLOY_TIMEOUT)."]
        else:
            report = RollbackReport(left=[Resource("endpoint-config", self.plan.config_name),
                                          Resource("model", self.plan.model_name)])
            details += [f"The update goes on in SageMaker; if it fails, {name} keeps serving "
                        f"{self.plan.previous_config}.", "Follow it:"]
            details += [f"  {line}" for line in follow_commands(name, self.settings.region)]
            details.append("Once it has settled, remove whichever config and model are unused:")
            hints = ["Allow longer next time with --timeout (env DEPLOY_TIMEOUT)."]
        details += report.lines(self.settings.region)
        raise self._with_interrupt(DeployTimedOut(
            f"Endpoint {name} did not reach InService within {limit}", details=details,
            hint=hints + self._log_hints(),
            facts=self._facts(status=outcome.status, outcome=outcome, report=report)), report)

    def _interrupted(self, interrupt: BaseException) -> None:
        what = "Terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "Interrupted (Ctrl-C)"
        name, region = self.plan.endpoint_name, self.settings.region
        if self.is_create or not self.update_requested:
            output.print_warning(f"{what}: rolling back what this run created. An endpoint "
                                 "still Creating can take minutes to delete; press Ctrl-C again "
                                 "to stop waiting and get the cleanup commands.")
            report = self._roll_back_created("interrupted", force=True)
            details = report.lines(region)
        else:
            report, details = self._leave_update_running()
        error = DeployInterrupted(f"{what} during the deploy of {name}", interrupt=interrupt,
                                  details=details, facts=self._facts(report=report))
        if report.interrupted is not None:
            error.exit_code = interrupt_code(report.interrupted)
        raise error from None

    def _aborted(self, exc: Exception, *, refused: bool = False) -> NoReturn:
        """An AWS error that is not a failed deploy (expired credentials, a permission, no answer)
        or a bug stopped the run: roll back a create; an update SageMaker may be running is left
        to finish, with the commands to follow it and to tidy up afterwards."""
        base = translate_botocore_error(exc) or DeployModelError(
            f"Unexpected internal error: {type(exc).__name__}: {exc}",
            hint="Re-run with --debug for a traceback and report it as a bug.")
        if self.is_create or not self.update_requested or refused:
            report = self._roll_back_created(f"{error_code(exc) or type(exc).__name__} stopped the "
                                             "deploy")
            details = report.lines(self.settings.region)
        else:
            report, details = self._leave_update_running()
        raise self._with_interrupt(AwsStepFailed(base, facts=self._facts(report=report),
                                                 details=details), report) from exc

    def _leave_update_running(self) -> tuple[RollbackReport, list[str]]:
        """Once UpdateEndpoint is accepted only SageMaker decides which config serves: deleting
        the new one now could break the endpoint, so say how to follow it and tidy up later."""
        name, region = self.plan.endpoint_name, self.settings.region
        if self.verified:
            return RollbackReport(), [
                f"The update itself finished: {name} is InService on {self.plan.config_name}, "
                "but the smoke test did not finish, so the new model is unverified.",
                f"Test it: python test_endpoint.py -e {name} -d <request.json>",
                "Or point it back: aws sagemaker update-endpoint --endpoint-name "
                f"{name} --endpoint-config-name {self.plan.previous_config} --region {region}"]
        report = RollbackReport(left=self.resources.to_remove())
        details = [f"Stopped watching; SageMaker carries on with the update of {name}.",
                   "Follow it:"] + [f"  {line}" for line in follow_commands(name, region)]
        details += ["If it fails, SageMaker keeps the old config serving; then remove the "
                    "new config and model:"]
        details += [f"  {line}" for line in cleanup_commands(report.left, region)]
        return report, details

    def _with_interrupt(self, error: DeployModelError, report: RollbackReport) -> DeployModelError:
        """A Ctrl-C during the rollback makes the exit code 130 (143 for SIGTERM)."""
        if report.interrupted is not None:
            error.exit_code = interrupt_code(report.interrupted)
        return error

    # -- rollback ----------------------------------------------------------------------------

    def _roll_back_created(self, why: str, *, force: bool = False) -> RollbackReport:
        """Remove everything this run created (for an update: the new config and model,
        unless the endpoint uses them)."""
        targets = self.resources.to_remove()
        if not targets:
            return RollbackReport()
        if not self.settings.rollback and not force:
            output.print_warning(f"{_sentence(why)}; --skip-rollback keeps everything for "
                                 "debugging")
            return RollbackReport(left=targets, problem="--skip-rollback")
        if self.update_requested and self._endpoint_uses_new_config():
            return RollbackReport(left=targets, problem="the endpoint is using the new config")
        output.print_warning(f"{_sentence(why)}: rolling back what this run created")
        return self._rollback(targets)

    def _remove_new_unless_in_use(self, outcome: MonitorResult) -> RollbackReport:
        targets = self.resources.to_remove()
        if outcome.config_name == self.plan.config_name or outcome.status != "InService":
            return RollbackReport(left=targets, problem=f"the endpoint is {outcome.status}; the "
                                  "new config and model stay until it settles")
        return self._roll_back_created("the update failed")

    def _endpoint_uses_new_config(self) -> bool:
        try:
            current = self.sagemaker.describe_endpoint(EndpointName=self.plan.endpoint_name)
        except bce.ClientError:
            return True  # cannot tell: keep the config rather than break the endpoint
        return (current.get("EndpointConfigName") == self.plan.config_name
                or current.get("EndpointStatus") != "InService")

    def _rollback(self, targets: list[Resource]) -> RollbackReport:
        report = rollback(self.sagemaker, targets, region=self.settings.region,
                          wait_seconds=self.timing.rollback_wait,
                          poll_interval=self.settings.poll_interval, sleep=self.timing.sleep,
                          clock=self.timing.clock)
        removed = set(report.removed)
        self.resources.created = [r for r in self.resources.created if r not in removed]
        if report.left:
            output.print_warning("Rollback incomplete; remove the rest with:")
            for line in cleanup_commands(report.left, self.settings.region):
                output.print_line(f"    {line}")
        return report

    # -- reporting helpers -------------------------------------------------------------------

    def _facts(self, *, status: str | None = None, outcome: MonitorResult | None = None,
               report: RollbackReport | None = None) -> dict:
        facts = {**self.plan.summary(), "status": status,
                 "action": "create" if self.is_create else "update",
                 "region": self.settings.region,
                 "elapsed_seconds": round(self.timing.clock() - self.started, 1)}
        if outcome is not None:
            facts.update(failure_reason=outcome.failure_reason,
                         current_endpoint_config_name=outcome.config_name,
                         container_errors=outcome.error_lines)
        if report is not None:
            facts.update(rolled_back=[str(r) for r in report.removed],
                         left_behind=[str(r) for r in report.left],
                         cleanup_commands=cleanup_commands(report.left, self.settings.region))
        return facts

    def _log_hints(self) -> list[str]:
        return [f"Read the container's logs: aws logs tail "
                f"{log_group_name(self.plan.endpoint_name)} --since 1h --region "
                f"{self.settings.region}"]

    def _next_steps(self) -> list[str]:
        return self._log_hints() + [
            "Check the bundle: tar -tzf model.tar.gz (model.joblib at the root, "
            "code/inference.py, code/requirements.txt).",
            "Reproduce on this machine, where errors show at once: python deploy-model.py -a "
            f"{self.plan.package.arn} -t local -e {self.plan.endpoint_name}-local",
            "Fix, re-package (python utils/package-model.py) and deploy the new version."]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]  # str.capitalize() would lower-case "AWS"


def _json_answer(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ContractError("The endpoint's answer is not JSON",
                            details=[text[:300]]) from None


