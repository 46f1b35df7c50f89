"""Tell: what a deploy tells its user.

The plan before it runs, the report of a success, and for a failure the error types that carry
the run's facts (what was rolled back, what is left, how to remove it) into the one JSON document
`--json` prints, the failure's details with its likely causes, and the commands that follow an
endpoint SageMaker is still working on.
"""

from __future__ import annotations

from typing import Any

from modules.deploy_plan import DeployPlan
from modules.deploy_settings import DeploySettings
from modules.deploy_traffic import DROPPED, KEPT
from modules.monitor_endpoint import MonitorResult, log_group_name
from modules.traffic_settings import describe_capture
from utils import output
from utils.errors import DeploymentFailed, DeployModelError, DeployTimeout, ExitCode, Terminated
from utils.files import write_text_atomically


class _WithFacts:
    """An error that also carries the run's facts into the JSON error document."""

    facts: dict

    def to_dict(self) -> dict:
        data = super().to_dict()  # type: ignore[misc]
        data.update({k: v for k, v in self.facts.items() if k not in data})
        return data


class DeployFailedError(_WithFacts, DeploymentFailed):
    def __init__(self, message: str, *, facts: dict, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.facts = facts


class DeployTimedOut(_WithFacts, DeployTimeout):
    title = "DEPLOYMENT TIMED OUT"

    def __init__(self, message: str, *, facts: dict, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.facts = facts


class DeployInterrupted(_WithFacts, DeployModelError):
    title = "INTERRUPTED"

    def __init__(self, message: str, *, interrupt: BaseException, facts: dict,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.facts = facts
        self.exit_code = interrupt_code(interrupt)


class AwsStepFailed(_WithFacts, DeployModelError):
    """An AWS call failed while creating resources; what was created is rolled back."""

    def __init__(self, base: DeployModelError, *, facts: dict, details: list[str]) -> None:
        super().__init__(base.message, details=base.details + details, hint=base.hints)
        self.exit_code = base.exit_code
        self.facts = facts


def interrupt_code(interrupt: BaseException) -> ExitCode:
    return ExitCode.TERMINATED if isinstance(interrupt, Terminated) else ExitCode.INTERRUPTED


def report(result: dict, settings: DeploySettings) -> None:
    if settings.output_file and not result.get("dry_run"):
        write_text_atomically(settings.output_file, result["endpoint_name"] + "\n")
        output.print_info(f"Endpoint name written to {settings.output_file}")
    if output.is_json_mode():
        output.print_json_result(result)
        return
    if result.get("dry_run"):
        return
    if result.get("instance_type") == "local":
        output.print_info(f"Test it:   python test_endpoint.py -e {result['endpoint_name']} "
                          "-d sample-data.json")
        output.print_info(f"Stop it:   python utils/delete_endpoint.py -e {result['endpoint_name']}")
        return
    if not result.get("monitored", True):
        return
    output.print_section("Deployed")
    output.print_success(f"Endpoint {result['endpoint_name']} is InService on "
                         f"{result['endpoint_config_name']} ({result['action']} in "
                         f"{output.format_duration(result['elapsed_seconds'])})")
    output.print_info(f"Console:   {result['console_url']}" if result.get("console_url") else
                      "Console:   none (an endpoint override is in effect: not AWS itself)")
    output.print_info(f"Test it:   python test_endpoint.py -e {result['endpoint_name']} "
                      "-d sample-data.json")
    output.print_info(f"Delete it: python utils/delete_endpoint.py -e {result['endpoint_name']}")


def show_plan(plan: DeployPlan) -> None:
    output.print_section("Plan")
    verb = ("Create endpoint" if plan.is_create
            else f"Roll back to release {plan.rollback_to} (blue/green, {plan.strategy_name})"
            if plan.rollback_to is not None and plan.deployment_config
            else f"Roll back to release {plan.rollback_to} (its variants differ: a plain "
                 "update, no deployment guardrails)"
            if plan.rollback_to is not None
            else f"Update endpoint in place (blue/green, {plan.strategy_name})")
    pairs = {"Action": verb, "Endpoint": plan.endpoint_name,
             "Model package": plan.package.arn, "Model": plan.model_name,
             "Endpoint config": plan.config_name, _capacity_label(plan): plan.variant.describe(),
             "Variant": plan.variant_name}
    if not plan.is_create:
        pairs["Replaces config"] = plan.previous_config or "(none)"
        if plan.rollback_alarms:
            pairs["Rollback alarms"] = ", ".join(plan.rollback_alarms)
    if len(plan.variants) > 1 or plan.traffic is not None:
        pairs.update(variant_lines(plan))
    if plan.data_capture or plan.capture_decision:
        pairs["Data capture"] = capture_line(plan)
    if plan.scaling is not None:
        after = plan.scaling.after
        pairs["Autoscaling"] = (after.describe() if after else
                                "kept variants unchanged" if plan.scaling.dropped else "none")
    output.print_key_values(pairs)
    for step in plan.scaling.steps() if plan.scaling else []:
        output.print_info(f"Autoscaling: {step}")
    if plan.name_was_generated:
        output.print_info("The endpoint name was generated: every run without --endpoint-name "
                          "creates another endpoint (and its cost). Pass -e "
                          f"{plan.endpoint_name} to update this one in place later.")
    if plan.is_create and (plan.rollback_alarms or plan.strategy_name != "all-at-once"):
        output.print_info("A new endpoint starts on its config directly: --deployment-strategy "
                          "and --rollback-alarm apply to later updates.")


def variant_lines(plan: DeployPlan) -> dict[str, str]:
    """Every variant of the new config with its share of the traffic."""
    total = sum(v.weight for v in plan.variants if not v.shadow) or 1.0
    production = next((v.weight for v in plan.variants if not v.shadow), 0.0) or 1.0
    lines = {"Change": f"--{plan.traffic.kind} {plan.traffic.variant or ''}".rstrip()
             if plan.traffic else ""}
    for variant in plan.variants:
        new = " (new model)" if plan.new_model and variant.model_name == plan.model_name else ""
        share = (f"shadow, a copy of {100 * variant.weight / production:.0f} % of the requests"
                 if variant.shadow else
                 f"weight {variant.weight:g} ({100 * variant.weight / total:.0f} %)")
        lines[f"Variant {variant.name}"] = (f"{share}, {variant.describe()}, model "
                                            f"{variant.model_name}{new}")
    return {key: value for key, value in lines.items() if value}


def capture_line(plan: DeployPlan) -> str:
    """What the new config captures, and why: asked for, kept from the live config, dropped."""
    shown = describe_capture(plan.data_capture)
    if plan.capture_decision == KEPT:
        return f"{shown}, kept from {plan.previous_config} (--no-data-capture drops it)"
    if plan.capture_decision == DROPPED:
        return f"none (--no-data-capture drops the capture of {plan.previous_config})"
    return shown


def _capacity_label(plan: DeployPlan) -> str:
    return "Serverless" if plan.variant.serverless is not None else "Instances"


def follow_commands(endpoint_name: str, region: str) -> list[str]:
    return [f"aws sagemaker describe-endpoint --endpoint-name {endpoint_name} --region {region} "
            "--query '[EndpointStatus,EndpointConfigName,FailureReason]'",
            f"aws sagemaker wait endpoint-in-service --endpoint-name {endpoint_name} "
            f"--region {region}",
            f"aws logs tail {log_group_name(endpoint_name)} --follow --region {region}"]


def failure_details(outcome: MonitorResult) -> list[str]:
    details = [f"Status: {outcome.status}"]
    if outcome.failure_reason:
        details.append(f"Failure reason: {outcome.failure_reason}")
    if outcome.error_lines:
        details.append("Container errors (from CloudWatch logs):")
        details += [f"  {line}" for line in outcome.error_lines]
    elif not outcome.log_messages:
        details.append("No container logs were found (the container may never have started).")
    causes = likely_causes(outcome.failure_reason or "", outcome.error_lines)
    details.append("Likely causes:")
    details += [f"  {n}. {cause}" for n, cause in enumerate(causes, 1)]
    return details


_CAUSES = (
    (("ping", "health check"), "The container never answered GET /ping: the model failed to "
                               "load or the server did not start (see the container errors)."),
    (("no module named", "modulenotfounderror", "importerror", "cannot import"),
     "A Python dependency is missing or mismatched: check code/requirements.txt and the "
     "scikit-learn version the model was trained with."),
    (("model.joblib", "filenotfounderror", "no such file", "model_fn"),
     "Invalid model artifacts: model.joblib or code/inference.py missing from model.tar.gz."),
    (("image", "cannotpullcontainer", "manifest"),
     "The container image cannot be pulled: build and push it (artifacts/README.md)."),
    (("accessdenied", "access denied", "not authorized", "s3"),
     "The execution role cannot read the model data or image: check "
     "SAGEMAKER_EXECUTION_ROLE_ARN's S3 and ECR permissions."),
    (("resourcelimitexceeded", "capacity", "quota", "insufficient"),
     "No capacity or quota for this instance type: request a quota increase or pick another "
     "type (ml.c5.xlarge, ml.m5.large)."),
)


def likely_causes(failure_reason: str, error_lines: list[str]) -> list[str]:
    text = " ".join([failure_reason, *error_lines]).lower()
    causes = [cause for keys, cause in _CAUSES if any(key in text for key in keys)]
    if causes:
        return causes
    return ["Invalid model artifacts (missing model.joblib or code/inference.py).",
            "An error in inference.py's handlers (model_fn, input_fn, predict_fn, output_fn).",
            "A missing dependency in code/requirements.txt.",
            "The container image is missing from ECR, or the execution role cannot read it "
            "or the model data."]
