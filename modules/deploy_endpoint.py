"""One deploy, end to end: settings -> clients -> plan -> create -> watch -> verify -> report.

The rule this module keeps: a deploy never leaves an endpoint broken, and never leaves behind
anything it created unless told to (`--skip-rollback`, which then prints the exact commands).

`DeployRun` runs the steps; what a failure means depends on the action, and each action has one
policy that says it (`CreatePolicy`, `UpdatePolicy`), instead of branches on the action:

- Create: a failure, a timeout, a failed smoke test, Ctrl-C or SIGTERM deletes the endpoint
  (waiting until it is gone), its config and its model.
- Update: SageMaker keeps the old config serving when an update fails; we then delete the new
  config and model. A failed smoke test points the endpoint back at the previous config first.
  After a successful update the previous config and model go too (if deploy-model made them)
  unless `--keep-previous`.

Deciding lives in modules/deploy_plan.py, doing and undoing in modules/deploy_resources.py,
watching in modules/deploy_watch.py, telling in modules/deploy_report.py.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from botocore import exceptions as bce

from modules.deploy_package import (
    check_package_deployable,
    describe_package,
    latest_approved_package_arn,
    resolve_model_package,
)
from modules.deploy_plan import CREATE, UPDATE, DeployPlan, plan_deployment, plan_rollback
from modules.deploy_releases import (
    ReleaseFacts,
    choose_rollback_target,
    print_history,
    prune_releases,
    read_history,
    record_failure,
    record_release,
    record_rollback_release,
    release_facts,
    rollback_package,
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
    show_plan,
)
from modules.deploy_resources import (
    CONFIG,
    MODEL,
    Resource,
    RollbackReport,
    RunResources,
    cleanup_commands,
    create_endpoint_config,
    create_model,
    rollback,
    start_endpoint,
    superseded_resources,
)
from modules.deploy_scaling import ScalingRun, register_commands
from modules.deploy_settings import DeploySettings
from modules.deploy_validation import HISTORY, ROLLBACK
from modules.deploy_variants import (
    change_weights,
    describe_weights,
    package_resolver,
    plan_variant_change,
)
from modules.deploy_watch import (
    SmokeTestFailed,
    Timing,
    point_endpoint_at,
    run_smoke_test,
    serves_new_config,
    watch_endpoint,
)
from modules.monitor_endpoint import MonitorResult, log_group_name
from modules.traffic_settings import WEIGHTS, TrafficChange
from utils import output
from utils.aws_errors import error_code, error_message, translate_botocore_error
from utils.boto_session import create_clients, get_boto_session
from utils.endpoint_operations import console_url
from utils.errors import DeployModelError, ExitCode, Terminated, ValidationError

__all__ = ["DeployRun", "Timing", "deploy_endpoint", "deploy_local_endpoint", "run_deploy"]


# ---------------------------------------------------------------------------------------------
# Entry points


def run_deploy(settings: DeploySettings, timing: Timing | None = None) -> int:
    """What deploy-model.py does after validation: deploy (or serve locally), roll back or list
    the releases, then report."""
    if settings.release_action == HISTORY:
        show_history(settings)
        return int(ExitCode.OK)
    runner = _RUNNERS[(settings.release_action, settings.is_local)]
    report(runner(settings, timing), settings)
    return int(ExitCode.OK)


def deploy_endpoint(settings: DeploySettings, *, timing: Timing | None = None) -> dict:
    timing = timing or Timing()
    started = timing.clock()
    output.print_header(f"Deploying to SageMaker endpoint {settings.endpoint_name}")
    session = get_boto_session(settings.region, settings.profile)
    sagemaker, logs, ecr, autoscaling = create_clients(session, "sagemaker", "logs", "ecr",
                                                       "application-autoscaling")
    if settings.traffic is not None and settings.traffic.kind == WEIGHTS:
        # No new config: its own run.
        return change_weights(sagemaker, settings, timing, facts_reader(session, timing))
    if settings.traffic is not None:
        resolve = package_resolver(sagemaker, settings,
                                   lambda: resolve_model_package(sagemaker, ecr, settings))
        plan = plan_variant_change(sagemaker, settings, resolve, timing.now(),
                                   autoscaling=autoscaling)
    else:
        package = resolve_model_package(sagemaker, ecr, settings)
        plan = plan_deployment(sagemaker, settings, package, timing.now(),
                               autoscaling=autoscaling)
    return _run_plan(plan, settings, (sagemaker, logs, autoscaling), session, timing, started)


def rollback_endpoint(settings: DeploySettings, *, timing: Timing | None = None) -> dict:
    """`--rollback [--to-release K]`: the endpoint back on what a kept release served, through
    the same watched and verified update as a deploy (RollbackPolicy), or a weight change when
    only the weights differ."""
    timing = timing or Timing()
    started = timing.clock()
    output.print_header(f"Rolling back SageMaker endpoint {settings.endpoint_name}")
    session = get_boto_session(settings.region, settings.profile)
    sagemaker, logs, autoscaling = create_clients(session, "sagemaker", "logs",
                                                  "application-autoscaling")
    target = choose_rollback_target(sagemaker, settings.endpoint_name, settings.to_release)
    release, facts = target.release, facts_reader(session, timing)
    if release.config_name == target.current.get("EndpointConfigName"):
        # Only the weights differ: shift them back on the fleets that run, no new fleet.
        refuse_for_weight_change(settings, f"release {release.number} differs from what "
                                           f"{settings.endpoint_name} serves only in its weights")
        return _rollback_weights(sagemaker, settings, release, timing, facts)
    if release.weights_set:
        _refuse_unwatched_weights(settings, release)
    plan = plan_rollback(sagemaker, settings, target.current, release=target.config_release,
                         config=target.config, package=rollback_package(release),
                         tags=target.tags, now=timing.now(), autoscaling=autoscaling,
                         commit=release.commit)
    if release.weights_set:
        output.print_info(f"Release {release.number} re-weighted {release.config_name}: once "
                          f"it serves that config again, its weights are set "
                          f"({describe_weights(release.weights)})")
    result = {**_run_plan(plan, settings, (sagemaker, logs, autoscaling), session, timing,
                          started), "rollback_to": release.number}
    if not release.weights_set or result.get("status") != "InService":
        return result
    try:
        weights = _rollback_weights(sagemaker, settings, release, timing, facts)
    except DeployModelError as exc:
        exc.details[:0] = [
            f"The switch itself succeeded: {settings.endpoint_name} serves {release.config_name} "
            f"again (release {result.get('release')}), with that config's own weights; setting "
            f"release {release.number}'s weights ({describe_weights(release.weights)}) failed.",
            f"Finish it: python deploy-model.py -e {settings.endpoint_name} --to-release "
            f"{release.number}"]
        raise
    return {**result, "release": weights.get("release"), "weights": weights.get("weights"),
            "previous_weights": weights.get("previous_weights")}


def refuse_for_weight_change(settings: DeploySettings, why: str) -> None:
    """A weight change writes no config and starts no fleet: what only those can do is refused,
    not silently dropped."""
    asked = [flag for flag, used in (
        (f"--deployment-strategy {settings.strategy.name}", settings.strategy.name != "all-at-once"),
        ("--rollback-alarm", bool(settings.rollback_alarms)),
        ("--smoke-test-data", settings.smoke_test is not None),
        ("--data-capture", settings.data_capture is not None),
        ("--no-data-capture", settings.drop_data_capture)) if used]
    if asked:
        raise ValidationError(
            f"{', '.join(asked)} cannot be used: {why}, and a weight change "
            "(UpdateEndpointWeightsAndCapacities) writes no config and starts no new fleet",
            hint="Drop them; the weight change is watched, verified and set back on failure. "
                 "Test a variant with: python test_endpoint.py --target-variant NAME.")


def _refuse_unwatched_weights(settings: DeploySettings, release: Any) -> None:
    if not settings.monitor:
        raise ValidationError(
            f"Release {release.number} re-weighted its config: rolling back to it switches "
            "configs, then sets its weights once the switch is InService, so it cannot run "
            "with --no-monitor", hint="Drop --no-monitor (or roll back to the config's own "
                                      "release and set the weights later with --set-weights).")


def _rollback_weights(sagemaker: Any, settings: DeploySettings, release: Any, timing: Timing,
                      facts: Any) -> dict:
    again = replace(settings, traffic=TrafficChange(WEIGHTS, weights=tuple(
        release.weights.items())))
    return {**change_weights(sagemaker, again, timing, facts, rollback_to=release.number),
            "action": "rolled back", "rollback_to": release.number}


def facts_reader(session: Any, timing: Timing) -> Any:
    """Who and when, read once a release is recorded (STS only then)."""
    def facts() -> ReleaseFacts:
        (sts,) = create_clients(session, "sts")
        return release_facts(sts, timing.wall(), Path.cwd())
    return facts


def show_history(settings: DeploySettings) -> None:
    """`--history`: the endpoint's releases and failed attempts, read from AWS (or, in local
    mode, from the state directory: no AWS call)."""
    if settings.is_local:
        from modules.local_releases import read_local_history

        print_history(read_local_history(settings.state_dir, settings.endpoint_name))
        return
    session = get_boto_session(settings.region, settings.profile)
    sagemaker, autoscaling = create_clients(session, "sagemaker", "application-autoscaling")
    print_history(read_history(sagemaker, settings.endpoint_name, autoscaling))


def _run_plan(plan: DeployPlan, settings: DeploySettings, clients: tuple[Any, Any, Any],
              session: Any, timing: Timing, started: float) -> dict:
    sagemaker, logs, autoscaling = clients
    show_plan(plan)
    if settings.dry_run:
        output.print_success("Dry run: nothing was created or changed")
        return {**plan.summary(), "status": "DryRun", "dry_run": True,
                "region": settings.region, "console_url": console_url(settings.region,
                                                                      plan.endpoint_name,
                                                                      sagemaker)}
    return DeployRun(plan, sagemaker, logs, session, timing, started,
                     autoscaling=autoscaling).execute()


_RUNNERS = {
    (None, False): lambda settings, timing: deploy_endpoint(settings, timing=timing),
    (None, True): lambda settings, timing: deploy_local_endpoint(settings),
    (ROLLBACK, False): lambda settings, timing: rollback_endpoint(settings, timing=timing),
    (ROLLBACK, True): lambda settings, timing: rollback_local_endpoint(settings),
}


def rollback_local_endpoint(settings: DeploySettings) -> dict:
    """`-t local --rollback`: serve a recorded earlier package again, through the local deploy."""
    from modules.local_releases import choose_local_target

    target = choose_local_target(settings.state_dir, settings.endpoint_name, settings.to_release)
    output.print_info(f"Rolling {settings.endpoint_name} back to local release {target.number} "
                      f"({target.package_arn})")
    again = replace(settings, model_package_arn=target.package_arn, model_package_group=None,
                    release_action=None)
    return {**deploy_local_endpoint(again, rollback_to=target.number),
            "rollback_to": target.number}


def deploy_local_endpoint(settings: DeploySettings, *, rollback_to: int | None = None) -> dict:
    """`--instance-type local`: serve the package on this machine (modules/local_endpoint.py)."""
    from modules.local_endpoint import deploy_local
    from modules.local_releases import record_local_release

    _warn_ignored_in_local_mode(settings)
    output.print_header(f"Serving {settings.endpoint_name} locally")
    session = get_boto_session(settings.region, settings.profile)
    sagemaker, s3, sts = create_clients(session, "sagemaker", "s3", "sts")
    arn = settings.model_package_arn or latest_approved_package_arn(
        sagemaker, settings.model_package_group or "")
    base = {"endpoint_name": settings.endpoint_name, "status": "InService", "action": "created",
            "instance_type": "local", "model_package_arn": arn, "region": settings.region}
    if settings.dry_run:
        return _local_dry_run(settings, sagemaker, base)
    info = deploy_local(sagemaker, s3, endpoint_name=settings.endpoint_name,
                        model_package_arn=arn, state_dir=settings.state_dir,
                        timeout=settings.timeout, inherited_env=dict(settings.server_env))
    release = record_local_release(settings.state_dir, settings.endpoint_name,
                                   describe_package(sagemaker, arn),
                                   release_facts(sts, time.time(), Path.cwd()), rollback_to)
    output.print_info(f"Recorded local release {release} of {settings.endpoint_name}")
    return {**base, **(info or {}), "release": release}


def _local_dry_run(settings: DeploySettings, sagemaker: Any, base: dict) -> dict:
    """What a local deploy would do: like the AWS dry run, `create`, or `update` when a server
    of that name is running (a real run replaces it)."""
    from utils.local_endpoints import find_endpoint

    # deploy_local resolves the package itself; a dry run must refuse what it would refuse.
    check_package_deployable(describe_package(sagemaker, base["model_package_arn"]))
    previous = find_endpoint(settings.state_dir, settings.endpoint_name)
    running = previous is not None and bool(previous.record) and previous.is_running()
    doing = (f"replace the server of {settings.endpoint_name} (pid {previous.pid}) with"
             if running else f"serve {settings.endpoint_name} locally from")
    output.print_success(f"Dry run: would {doing} {base['model_package_arn']}")
    return {**base, "action": UPDATE if running else CREATE, "status": "DryRun",
            "dry_run": True}


def _warn_ignored_in_local_mode(settings: DeploySettings) -> None:
    ignored = [flag for flag, used in (
        ("--instance-count", settings.instance_count != 1),
        ("--deployment-strategy", settings.strategy.name != "all-at-once"),
        ("--rollback-alarm", bool(settings.rollback_alarms)), ("--tag", bool(settings.tags)),
        ("--smoke-test-data", settings.smoke_test is not None),
        ("--no-monitor", not settings.monitor), ("--skip-rollback", not settings.rollback),
        ("--keep-previous", settings.keep_previous),
        ("--autoscale", settings.autoscale is not None),
        ("--data-capture", settings.data_capture is not None)) if used]
    if ignored:
        output.print_warning(f"Ignored in local mode: {', '.join(ignored)}")


# ---------------------------------------------------------------------------------------------
# Failure policies: what each action does when it fails, times out or is stopped


class CreatePolicy:
    """A new endpoint: whatever goes wrong, everything this run created goes again."""

    action, done, noun, busy_status = "create", "created", "creation", "Creating"
    watch_note = " and roll back)"

    def create(self, run: DeployRun) -> None:
        """The model and the config the endpoint is created on (or updated to)."""
        create_model(run.sagemaker, run.plan, run.resources)
        create_endpoint_config(run.sagemaker, run.plan, run.resources)

    def baseline_failure(self, run: DeployRun) -> str | None:
        return None

    def accepted_leftovers(self, run: DeployRun) -> list[Resource]:
        return run.resources.to_remove()

    def after_success(self, run: DeployRun) -> list[str]:
        return run.prune_releases()

    def record(self, run: DeployRun) -> int | None:
        """The verified deploy becomes the endpoint's next release."""
        return run.record_release()

    def record_failure(self, run: DeployRun, error: DeployModelError) -> None:
        """A failed create leaves no endpoint to keep its record on."""

    def smoke_failed(self, run: DeployRun) -> RollbackReport:
        return run.roll_back_created("the smoke test failed")

    def failed(self, run: DeployRun, outcome: MonitorResult) -> tuple[str, RollbackReport]:
        return (f"Endpoint {run.plan.endpoint_name} did not come up (status {outcome.status})",
                run.roll_back_created("the deploy failed"))

    def timed_out(self, run: DeployRun, outcome: MonitorResult
                  ) -> tuple[list[str], list[str], RollbackReport]:
        report = run.roll_back_created("the deploy timed out")
        return [], ["Check the logs for a container that never answers /ping.",
                    "Check instance availability and quotas for "
                    f"{run.plan.variant.instance_type or 'serverless endpoints'} in "
                    f"{run.plan.region}.",
                    "Allow longer with --timeout (env DEPLOY_TIMEOUT)."], report

    def stopped(self, run: DeployRun, why: str, *, force: bool, refused: bool = False
                ) -> tuple[RollbackReport, list[str]]:
        report = run.roll_back_created(why, force=force)
        return report, report.lines(run.plan.region)


class UpdatePolicy(CreatePolicy):
    """An existing endpoint: once UpdateEndpoint is accepted only SageMaker decides which config
    serves, so the new config and model are removed only when the endpoint does not use them."""

    action, done, noun, busy_status = "update", "updated", "update", "Updating"
    watch_note = ")"

    def baseline_failure(self, run: DeployRun) -> str | None:
        return run.plan.previous.failure_reason if run.plan.previous else None

    def accepted_leftovers(self, run: DeployRun) -> list[Resource]:
        return run.new_resources()

    def after_success(self, run: DeployRun) -> list[str]:
        run.tag_updated_endpoint()
        return run.remove_superseded() + run.prune_releases()

    def record_failure(self, run: DeployRun, error: DeployModelError) -> None:
        run.record_failed_attempt(error)

    def smoke_failed(self, run: DeployRun) -> RollbackReport:
        return run.point_back()

    def failed(self, run: DeployRun, outcome: MonitorResult) -> tuple[str, RollbackReport]:
        return self.failure_message(run, outcome), run.remove_new_unless_in_use(outcome)

    def failure_message(self, run: DeployRun, outcome: MonitorResult) -> str:
        name = run.plan.endpoint_name
        if outcome.status == "InService":
            return (f"The {self.noun} of {name} failed; SageMaker rolled it back and it still "
                    f"serves {outcome.config_name}")
        return f"The {self.noun} of {name} failed (status {outcome.status})"

    def timed_out(self, run: DeployRun, outcome: MonitorResult
                  ) -> tuple[list[str], list[str], RollbackReport]:
        name, region = run.plan.endpoint_name, run.plan.region
        details = [f"The update goes on in SageMaker; if it fails, {name} keeps serving "
                   f"{run.plan.previous_config}.", "Follow it:"]
        details += [f"  {line}" for line in follow_commands(name, region)]
        details.append("Once it has settled, remove whichever config and model are unused:")
        hints = ["Allow longer next time with --timeout (env DEPLOY_TIMEOUT)."]
        return details, hints, RollbackReport(left=run.new_resources())

    def stopped(self, run: DeployRun, why: str, *, force: bool, refused: bool = False
                ) -> tuple[RollbackReport, list[str]]:
        if not run.update_requested or refused:
            return super().stopped(run, why, force=force)
        return run.leave_update_running()


class RollbackPolicy(UpdatePolicy):
    """Back to a kept release: the update path onto the release's existing config. The run
    creates nothing, so it deletes nothing; a failure leaves the endpoint on what it served
    (SageMaker's own update rollback; a failed smoke test points it back)."""

    action, done, noun = "rollback", "rolled back", "rollback"

    def create(self, run: DeployRun) -> None:
        output.print_info(f"Re-using release {run.plan.rollback_to}: config "
                          f"{run.plan.config_name}, model {run.plan.model_name}")

    def accepted_leftovers(self, run: DeployRun) -> list[Resource]:
        return []

    def record(self, run: DeployRun) -> int | None:
        return run.record_rollback_release()

    def after_success(self, run: DeployRun) -> list[str]:
        run.tag_updated_endpoint()
        return run.prune_releases()

    def smoke_failed(self, run: DeployRun) -> RollbackReport:
        return run.point_back(remove_new=False)

    def failed(self, run: DeployRun, outcome: MonitorResult) -> tuple[str, RollbackReport]:
        return self.failure_message(run, outcome), RollbackReport()

    def timed_out(self, run: DeployRun, outcome: MonitorResult
                  ) -> tuple[list[str], list[str], RollbackReport]:
        details, hints, _ = super().timed_out(run, outcome)
        return details[:-1], hints, RollbackReport()  # nothing of this run's to remove


class RollbackCopyPolicy(UpdatePolicy):
    """Back to a release on a new config of this run (its variants and models, the live data
    capture): an update in every way, told as the rollback it is."""

    action, done, noun = "rollback", "rolled back", "rollback"


POLICIES = {"create": CreatePolicy(), "update": UpdatePolicy(), "rollback": RollbackPolicy()}
ROLLBACK_COPY = RollbackCopyPolicy()


# ---------------------------------------------------------------------------------------------
# One run


class DeployRun:
    """Creates, watches and verifies one deploy, and owns the rollback of what it created."""

    def __init__(self, plan: DeployPlan, sagemaker: Any, logs: Any, session: Any,
                 timing: Timing, started: float, *, autoscaling: Any = None) -> None:
        self.plan = plan
        self.scaling = ScalingRun(autoscaling, plan.endpoint_name, plan.scaling, plan.region,
                                  sagemaker=sagemaker, endpoint_arn=plan.endpoint_arn)
        self.policy = (ROLLBACK_COPY if plan.action == UPDATE and plan.rollback_to is not None
                       else POLICIES[plan.action])
        self.sagemaker = sagemaker
        self.logs = logs
        self.session = session
        self.timing = timing
        self.started = started
        self.resources = RunResources()
        self.endpoint_arn = plan.endpoint_arn
        self.update_requested = False  # set just before UpdateEndpoint is sent
        self.verified = False  # InService on the new config (the smoke test may still fail)
        self.outcome: MonitorResult | None = None

    # -- the happy path ----------------------------------------------------------------------

    def execute(self) -> dict:
        try:
            return self._execute()
        except DeployModelError as error:
            # A failed update that left the old config serving gets its old scaling back.
            error.details = [*error.details, *self._restore_scaling()]
            try:
                self.policy.record_failure(self, error)  # the endpoint's history shows it
            except (KeyboardInterrupt, Terminated):
                pass  # another Ctrl-C: the failure's own report matters more than its record
            raise

    def _execute(self) -> dict:
        output.print_section("Creating resources")
        self._create_resources()
        if not self.plan.monitor:
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
        result = self._succeeded(outcome, smoke)  # the deploy stands: released, tidied
        self._apply_scaling()
        return result

    def _create_resources(self) -> None:
        try:
            self.policy.create(self)
            self.scaling.before_update()
            self.update_requested = not self.plan.is_create
            self.endpoint_arn = start_endpoint(self.sagemaker, self.plan, self.resources)
        except (KeyboardInterrupt, Terminated) as interrupt:
            self._interrupted(interrupt)
        except bce.ClientError as exc:
            # AWS refused a call. Even a refused UpdateEndpoint may be a retry of one that got
            # through, so the rollback checks that the endpoint does not use the new config.
            self._aborted(exc, refused=True)
        except Exception as exc:  # noqa: BLE001 - e.g. no answer to UpdateEndpoint: it may run
            self._aborted(exc)

    def _watch(self) -> MonitorResult:
        output.print_info(f"Watching the {self.policy.noun} (timeout "
                          f"{output.format_duration(self.plan.timeout)}; Ctrl-C to stop"
                          + self.policy.watch_note)
        return watch_endpoint(self.sagemaker, self.logs, self.plan,
                              expected_config=self.plan.config_name,
                              baseline_failure=self.policy.baseline_failure(self),
                              timing=self.timing)

    def _check(self, outcome: MonitorResult) -> None:
        if outcome.timed_out:
            self._timed_out(outcome)
        if not serves_new_config(outcome, self.plan.config_name):
            self._failed(outcome)
        self.verified = True
        output.print_info(f"Verified: {self.plan.endpoint_name} is InService and serves the new "
                          f"endpoint config {self.plan.config_name}")

    def _apply_scaling(self) -> None:
        """Once the endpoint is verified (and smoke-tested): register the plan's autoscaling.
        A failure leaves the endpoint serving the new config, unscaled: exit 3 with the
        commands that register it."""
        try:
            self.scaling.after_in_service()
        except (KeyboardInterrupt, Terminated) as interrupt:
            self.scaling.deregistered = False  # the endpoint serves the new config: no restore
            what = "Terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "Interrupted"
            raise DeployInterrupted(
                f"{what} while registering the autoscaling of {self.plan.endpoint_name}",
                interrupt=interrupt, facts=self._facts(status="InService"),
                details=self._unscaled_details("may be only partly registered")) from None
        except (bce.ClientError, bce.BotoCoreError) as exc:
            self.scaling.deregistered = False
            base = translate_botocore_error(exc) or DeployModelError(str(exc))
            raise AwsStepFailed(base, facts=self._facts(status="InService"),
                                details=self._unscaled_details("could not be registered")
                                ) from exc

    def _unscaled_details(self, problem: str) -> list[str]:
        after = self.plan.scaling.after if self.plan.scaling else None
        commands = register_commands(self.plan.endpoint_name, self.plan.variant_name, after,
                                     self.plan.region) if after else []
        return [f"{self.plan.endpoint_name} is InService on {self.plan.config_name}, but its "
                f"autoscaling {problem}; register it with:", *[f"  {line}" for line in commands]]

    def _restore_scaling(self) -> list[str]:
        """The previous scaling, registered again when the endpoint is InService on the old
        config; otherwise the commands that do it once it has settled there."""
        if not self.scaling.deregistered:
            return []
        current = None
        try:
            current = self.sagemaker.describe_endpoint(EndpointName=self.plan.endpoint_name)
        except (bce.ClientError, bce.BotoCoreError):
            pass
        on_previous = current is not None and current.get("EndpointStatus") == "InService" and (
            current.get("EndpointConfigName") == self.plan.previous_config)
        if on_previous:
            return self.scaling.restore()
        return ["The previous autoscaling was deregistered for the update; once the endpoint "
                f"is InService on {self.plan.previous_config} again, restore it with:",
                *[f"  {line}" for line in self.scaling.restore_commands()]]

    def _accepted(self) -> dict:
        name, region = self.plan.endpoint_name, self.plan.region
        status = self.policy.busy_status
        output.print_success(f"SageMaker accepted the {self.policy.noun} of {name}; it is "
                             f"{status}")
        output.print_warning("Not monitoring (--no-monitor): no automatic rollback will happen "
                             "if this deploy fails")
        output.print_info("Follow it:")
        for line in follow_commands(name, region):
            output.print_info(f"  {line}")
        output.print_info("If it fails, remove what this run created:")
        for line in cleanup_commands(self.policy.accepted_leftovers(self), region):
            output.print_info(f"  {line}")
        if self.plan.previous_config:
            output.print_info(f"The previous config {self.plan.previous_config} stays; remove it "
                              "once the update is InService if you no longer need it.")
        self._tell_scaling_left_to_do()
        return self._result(status, monitored=False)

    def _tell_scaling_left_to_do(self) -> None:
        """--no-monitor: scaling deregistered for the update is not registered again here."""
        scaling = self.plan.scaling
        if scaling is None or not self.scaling.deregistered or scaling.after is None:
            return
        output.print_warning(f"The autoscaling of {scaling.variant_name} was deregistered for "
                             "the update; once it is InService, register it again with:")
        for line in register_commands(self.plan.endpoint_name, scaling.variant_name,
                                      scaling.after, self.plan.region):
            output.print_info(f"  {line}")

    def _succeeded(self, outcome: MonitorResult, smoke: dict | None) -> dict:
        release = self.policy.record(self)
        removed = self.policy.after_success(self)
        result = self._result("InService", monitored=True)
        result.update(smoke_test=smoke, removed_previous=removed, release=release,
                      container_errors=outcome.error_lines or [])
        return result

    def _result(self, status: str, *, monitored: bool) -> dict:
        return {**self.plan.summary(), "status": status, "action": self.policy.done,
                "region": self.plan.region,
                "console_url": console_url(self.plan.region, self.plan.endpoint_name,
                                           self.sagemaker),
                "elapsed_seconds": round(self.timing.clock() - self.started, 1),
                "monitored": monitored, "deployment_strategy": (
                    None if self.plan.is_create else self.plan.strategy_name)}

    def new_resources(self) -> list[Resource]:
        model = [Resource(MODEL, self.plan.model_name)] if self.plan.new_model else []
        return [Resource(CONFIG, self.plan.config_name), *model]

    def release_facts(self) -> ReleaseFacts:
        return facts_reader(self.session, self.timing)()

    def record_release(self) -> int | None:
        return record_release(self.sagemaker, self.plan, self.release_facts(), self.endpoint_arn)

    def record_rollback_release(self) -> int | None:
        return record_rollback_release(self.sagemaker, self.plan, self.release_facts(),
                                       self.endpoint_arn)

    def record_failed_attempt(self, error: DeployModelError) -> None:
        # e.g. "update-DeployFailedError:InService" (SageMaker rolled the update back)
        kind = f"{self.policy.action}-{type(error).__name__}"
        status = getattr(error, "facts", {}).get("status")
        status = f"{kind}:{status}" if status else kind
        version = self.plan.package.version
        record_failure(self.sagemaker, self.endpoint_arn, self.plan.run_id, str(status),
                       "" if version is None else str(version), self.release_facts())

    def prune_releases(self) -> list[str]:
        """Releases beyond --keep-releases go (what their tags prove deploy-model made)."""
        if self.plan.keep_previous:
            return []
        try:
            return prune_releases(self.sagemaker, self.plan.endpoint_name,
                                  self.plan.keep_releases, live_config=self.plan.config_name,
                                  wait=self.timing.waiting(self.plan.poll_interval))
        except (bce.ClientError, bce.BotoCoreError) as exc:
            output.print_warning(f"Could not check the older releases for removal "
                                 f"({error_message(exc)}); they stay")
            return []

    def tag_updated_endpoint(self) -> None:
        """The endpoint's tags name the package it now serves."""
        if not self.endpoint_arn:
            return
        try:
            self.sagemaker.add_tags(ResourceArn=self.endpoint_arn, Tags=self.plan.aws_tags)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            # The update succeeded; stale tags are worth a warning, not a failure.
            output.print_warning(f"Could not update the endpoint's tags: {error_message(exc)}")

    def remove_superseded(self) -> list[str]:
        previous = self.plan.previous_config
        if self.plan.keep_previous:
            if previous:
                output.print_info(f"Kept the previous config {previous} and its model "
                                  "(--keep-previous)")
            return []
        try:
            removable, kept = superseded_resources(self.sagemaker, self.plan)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            # The deploy succeeded; failing to tidy up must not turn it into a failure.
            output.print_warning(f"Could not check the previous config {previous}"
                                 f" for removal ({error_message(exc)}); it stays")
            return []
        for name in kept:
            output.print_info(f"Left the previous {name} alone: deploy-model did not create it")
        if not removable:
            return []
        output.print_info("Removing the superseded " + ", ".join(map(str, removable)))
        report = self._rollback(removable)
        if report.unfinished:
            output.print_warning("; ".join(report.lines(self.plan.region)))
        return [str(r) for r in report.removed]

    # -- the smoke test ----------------------------------------------------------------------

    def _smoke_test(self) -> dict | None:
        if self.plan.smoke_test is None:
            return None
        (runtime,) = create_clients(self.session, "sagemaker-runtime")
        try:
            return run_smoke_test(runtime, self.plan)
        except SmokeTestFailed as failure:
            self._smoke_failed(failure.problem, failure.lines)

    def _smoke_failed(self, problem: str, lines: list[str]) -> NoReturn:
        details = [f"Smoke test ({self.plan.smoke_test.path}): {problem}"]
        details += [f"  {line}" for line in lines]
        report = self.policy.smoke_failed(self)
        details += report.lines(self.plan.region)
        raise self._with_interrupt(DeployFailedError(
            f"Endpoint {self.plan.endpoint_name} is InService but failed the smoke test",
            details=details, facts=self._facts(status="SmokeTestFailed", report=report),
            hint=["Check the endpoint's answer against the contract in the README "
                  "(predictions, probabilities, class_indices, confidence_scores).",
                  "Reproduce on this machine: python deploy-model.py -a "
                  f"{self.plan.package.arn} -t local -e {self.plan.endpoint_name}-local",
                  *self._log_hints()]), report)

    def point_back(self, *, remove_new: bool = True) -> RollbackReport:
        """An update that InService does not prove: send the endpoint back to the old config,
        then remove the new config and model (a rollback's are a kept release: they stay)."""
        previous = self.plan.previous_config
        new = self.new_resources() if remove_new else []
        if not self.plan.rollback:
            return RollbackReport(left=new, problem="--skip-rollback: the endpoint stays on the "
                                  f"new config; point it back with: aws sagemaker update-endpoint "
                                  f"--endpoint-name {self.plan.endpoint_name} "
                                  f"--endpoint-config-name {previous}")
        if not (self.plan.previous and self.plan.previous.config_arn):
            return RollbackReport(left=new, problem=f"the previous config {previous} no longer "
                                  "exists, so the endpoint stays on the new one")
        output.print_warning(f"Pointing {self.plan.endpoint_name} back at {previous}")
        try:
            waited = point_endpoint_at(
                self.sagemaker, self.plan, previous,
                baseline_failure=self.outcome.failure_reason if self.outcome else None,
                timing=self.timing)
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
        return self._rollback(new, owner=self.plan.run_id) if new else RollbackReport()

    # -- failures ----------------------------------------------------------------------------

    def _failed(self, outcome: MonitorResult) -> NoReturn:
        message, report = self.policy.failed(self, outcome)
        details = failure_details(outcome) + report.lines(self.plan.region)
        raise self._with_interrupt(DeployFailedError(
            message, details=details, hint=self._next_steps(),
            facts=self._facts(status=outcome.status, outcome=outcome, report=report)), report)

    def _timed_out(self, outcome: MonitorResult) -> NoReturn:
        name, limit = self.plan.endpoint_name, output.format_duration(self.plan.timeout)
        extra, hints, report = self.policy.timed_out(self, outcome)
        details = [f"Status after {limit}: {outcome.status}", *extra,
                   *report.lines(self.plan.region)]
        raise self._with_interrupt(DeployTimedOut(
            f"Endpoint {name} did not reach InService within {limit}", details=details,
            hint=hints + self._log_hints(),
            facts=self._facts(status=outcome.status, outcome=outcome, report=report)), report)

    def _interrupted(self, interrupt: BaseException) -> NoReturn:
        what = "Terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "Interrupted (Ctrl-C)"
        if self.plan.is_create or not self.update_requested:
            output.print_warning(f"{what}: rolling back what this run created. An endpoint "
                                 "still Creating can take minutes to delete; press Ctrl-C again "
                                 "to stop waiting and get the cleanup commands.")
        report, details = self.policy.stopped(self, "interrupted", force=True)
        error = DeployInterrupted(f"{what} during the deploy of {self.plan.endpoint_name}",
                                  interrupt=interrupt, details=details,
                                  facts=self._facts(report=report))
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
        why = stop_reason(exc)
        report, details = self.policy.stopped(self, why, force=False, refused=refused)
        raise self._with_interrupt(AwsStepFailed(base, facts=self._facts(report=report),
                                                 details=details), report) from exc

    def leave_update_running(self) -> tuple[RollbackReport, list[str]]:
        """Once UpdateEndpoint is accepted only SageMaker decides which config serves: deleting
        the new one now could break the endpoint, so say how to follow it and tidy up later."""
        name, region = self.plan.endpoint_name, self.plan.region
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

    def roll_back_created(self, why: str, *, force: bool = False) -> RollbackReport:
        """Remove everything this run created (for an update: the new config and model,
        unless the endpoint uses them)."""
        targets = self.resources.to_remove()
        if not targets:
            return RollbackReport()
        if not self.plan.rollback and not force:
            output.print_warning(f"{_sentence(why)}; --skip-rollback keeps everything for "
                                 "debugging")
            return RollbackReport(left=targets, problem="--skip-rollback")
        if self.update_requested and self._endpoint_uses_new_config():
            return RollbackReport(left=targets, problem="the endpoint is using the new config")
        output.print_warning(f"{_sentence(why)}: rolling back what this run created")
        return self._rollback(targets, owner=self.plan.run_id)

    def remove_new_unless_in_use(self, outcome: MonitorResult) -> RollbackReport:
        targets = self.resources.to_remove()
        if outcome.config_name == self.plan.config_name or outcome.status != "InService":
            return RollbackReport(left=targets, problem=f"the endpoint is {outcome.status}; the "
                                  "new config and model stay until it settles")
        return self.roll_back_created("the update failed")

    def _endpoint_uses_new_config(self) -> bool:
        try:
            current = self.sagemaker.describe_endpoint(EndpointName=self.plan.endpoint_name)
        except bce.ClientError:
            return True  # cannot tell: keep the config rather than break the endpoint
        return (current.get("EndpointConfigName") == self.plan.config_name
                or current.get("EndpointStatus") != "InService")

    def _rollback(self, targets: list[Resource], *, owner: str | None = None) -> RollbackReport:
        """Delete `targets`; with `owner`, only those that still carry that run id."""
        report = rollback(self.sagemaker, targets,
                          wait=self.timing.waiting(self.plan.poll_interval), owner=owner)
        self.resources.forget(report.removed)
        if report.unfinished:
            output.print_warning("Rollback incomplete; remove the rest with:")
            for line in report.commands(self.plan.region):
                output.print_line(f"    {line}")
        return report

    # -- reporting helpers -------------------------------------------------------------------

    def _facts(self, *, status: str | None = None, outcome: MonitorResult | None = None,
               report: RollbackReport | None = None) -> dict:
        facts = {**self.plan.summary(), "status": status, "action": self.policy.action,
                 "region": self.plan.region,
                 "elapsed_seconds": round(self.timing.clock() - self.started, 1)}
        if outcome is not None:
            facts.update(failure_reason=outcome.failure_reason,
                         current_endpoint_config_name=outcome.config_name,
                         container_errors=outcome.error_lines)
        if report is not None:
            facts.update(rolled_back=[str(r) for r in report.removed],
                         left_behind=[str(r) for r in report.unfinished],
                         cleanup_commands=report.commands(self.plan.region))
        return facts

    def _log_hints(self) -> list[str]:
        return [f"Read the container's logs: aws logs tail "
                f"{log_group_name(self.plan.endpoint_name)} --since 1h --region "
                f"{self.plan.region}"]

    def _next_steps(self) -> list[str]:
        return self._log_hints() + [
            "Check the bundle: tar -tzf model.tar.gz (model.joblib at the root, "
            "code/inference.py, code/requirements.txt).",
            "Reproduce on this machine, where errors show at once: python deploy-model.py -a "
            f"{self.plan.package.arn} -t local -e {self.plan.endpoint_name}-local",
            "Fix, re-package (python utils/package-model.py) and deploy the new version."]


def stop_reason(exc: Exception) -> str:
    """What stopped a run, naming the AWS call: a bare "500 stopped the deploy" said nothing."""
    code = error_code(exc) or type(exc).__name__
    operation = getattr(exc, "operation_name", None)
    if not operation:
        return f"{code} stopped the deploy"
    return f"{operation} failed ({'HTTP ' if code.isdigit() else ''}{code})"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]  # str.capitalize() would lower-case "AWS"
