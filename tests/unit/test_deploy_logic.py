"""Pure logic of the deploy: names, DeploymentConfig, rollback bookkeeping, log reading, backoff."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from botocore.exceptions import ClientError

from modules import deploy_package, deploy_plan, deploy_report, deploy_resources
from modules.deploy_settings import DeploymentStrategy
from modules.monitor_endpoint import container_error_lines
from utils.endpoint_operations import console_url, poll_delays


def test_resource_names_fit_63_characters_and_carry_the_run_id():
    now = datetime(2026, 1, 15, 9, 30, 5, 123456)
    run_id = deploy_plan.new_run_id(now, "0a1b2c3d")
    assert run_id == "20260115-093005-0a1b2c3d"
    assert deploy_plan.resource_name("qc-prod", run_id) == "qc-prod-20260115-093005-0a1b2c3d"
    long = deploy_plan.resource_name("a" * 40 + "-" + "b" * 22, run_id)
    assert len(long) <= 63 and not long.startswith("-") and "--" not in long
    assert long.endswith("-20260115-093005-0a1b2c3d")


def test_two_runs_in_the_same_second_get_different_ids():
    now = datetime(2026, 1, 15, 9, 30, 5)
    assert deploy_plan.new_run_id(now) != deploy_plan.new_run_id(now)


def test_all_at_once_update_config():
    config = deploy_plan.deployment_config(DeploymentStrategy(), ())
    assert config == {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        "TerminationWaitInSeconds": 0}}


def test_linear_with_alarms_keeps_the_old_fleet_while_alarms_can_fire():
    config = deploy_plan.deployment_config(DeploymentStrategy("linear", 20, 90), ("a5xx",))
    policy = config["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR", "WaitIntervalInSeconds": 90,
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20}}
    assert policy["TerminationWaitInSeconds"] == 90
    assert config["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "a5xx"}]}


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "no"}}, "CreateEndpoint")


def test_run_resources_record_only_what_aws_accepted():
    resources = deploy_resources.RunResources()
    resources.track(deploy_resources.Resource("model", "m"), lambda: {})
    with pytest.raises(ClientError):
        resources.track(deploy_resources.Resource("endpoint-config", "c"),
                        lambda: (_ for _ in ()).throw(_client_error("ResourceInUse")))
    assert resources.to_remove() == [deploy_resources.Resource("model", "m")]


def test_a_call_cut_short_leaves_its_resource_to_roll_back_first():
    resources = deploy_resources.RunResources()
    resources.track(deploy_resources.Resource("model", "m"), lambda: {})
    resources.track(deploy_resources.Resource("endpoint-config", "c"), lambda: {})

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resources.track(deploy_resources.Resource("endpoint", "e"), interrupted)
    assert [r.kind for r in resources.to_remove()] == ["endpoint", "endpoint-config", "model"]


def test_delete_commands_are_exact_and_quoted():
    assert deploy_resources.Resource("endpoint", "qc").delete_command("ca-central-1") == (
        "aws sagemaker delete-endpoint --endpoint-name qc --region ca-central-1")
    assert deploy_resources.Resource("model", "m-1").delete_command("eu-west-1") == (
        "aws sagemaker delete-model --model-name m-1 --region eu-west-1")
    assert deploy_resources.Resource("endpoint-config", "c").delete_command("us-east-1") == (
        "aws sagemaker delete-endpoint-config --endpoint-config-name c --region us-east-1")


def test_class_labels_from_the_package_environment():
    def package(labels):
        return deploy_package.PackageInfo("arn", "g", 1, "Approved", "Completed", None, None,
                                       {"CLASS_LABELS": labels} if labels else {})

    assert package("qc_pass,qc_fail").class_labels == ["qc_pass", "qc_fail"]
    assert package('["qc_pass", "qc_fail"]').class_labels == ["qc_pass", "qc_fail"]
    assert package(None).class_labels is None


def test_traceback_last_lines_and_error_lines_are_picked_out():
    messages = [
        "Starting gunicorn 23.0.0",
        "Traceback (most recent call last):",
        '  File "/opt/ml/model/code/inference.py", line 12, in model_fn',
        "    return joblib.load(path)",
        "FileNotFoundError: [Errno 2] No such file or directory: '/opt/ml/model/model.joblib'",
        "[2026-01-15 09:30:05 +0000] [17] [ERROR] Worker failed to boot.",
        "FileNotFoundError: [Errno 2] No such file or directory: '/opt/ml/model/model.joblib'",
        "GET /ping 200",
        "sklearn.exceptions.NotFittedError: This LogisticRegression instance is not fitted yet",
    ]
    assert container_error_lines(messages) == [
        "FileNotFoundError: [Errno 2] No such file or directory: '/opt/ml/model/model.joblib'",
        "[2026-01-15 09:30:05 +0000] [17] [ERROR] Worker failed to boot.",
        "sklearn.exceptions.NotFittedError: This LogisticRegression instance is not fitted yet",
    ]
    assert container_error_lines(["all good", "GET /ping 200"]) == []


def test_likely_causes_follow_the_evidence():
    causes = deploy_report.likely_causes("", ["ModuleNotFoundError: No module named 'xgboost'"])
    assert len(causes) == 1 and "requirements.txt" in causes[0]
    ping = deploy_report.likely_causes("did not pass the ping health check", [])
    assert "GET /ping" in ping[0]
    generic = deploy_report.likely_causes("", [])
    assert len(generic) == 4 and "model.joblib" in generic[0]


def test_polling_backs_off_to_30_seconds_or_keeps_a_fixed_interval():
    assert list(itertools.islice(poll_delays(), 8)) == [5.0, 7.5, 11.25, 16.875, 25.3125, 30.0,
                                                         30.0, 30.0]
    assert list(itertools.islice(poll_delays(2.0), 3)) == [2.0, 2.0, 2.0]


def test_console_url_format():
    assert console_url("ca-central-1", "qc") == (
        "https://ca-central-1.console.aws.amazon.com/sagemaker/home?region=ca-central-1"
        "#/endpoints/qc")




def test_no_console_url_for_an_emulated_sagemaker(monkeypatch):
    import boto3

    aws = boto3.client("sagemaker", region_name="ca-central-1")
    assert console_url("ca-central-1", "qc", aws).endswith("#/endpoints/qc")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    emulated = boto3.client("sagemaker", region_name="ca-central-1")
    assert console_url("ca-central-1", "qc", emulated) is None


def test_the_reason_a_run_stopped_names_the_aws_call():
    from botocore.exceptions import ClientError

    from modules.deploy_endpoint import stop_reason

    html_500 = ClientError({"Error": {"Code": "500", "Message": "<html>"}}, "UpdateEndpoint")
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                         "CreateEndpoint")
    assert stop_reason(html_500) == "UpdateEndpoint failed (HTTP 500)"
    assert stop_reason(denied) == "CreateEndpoint failed (AccessDeniedException)"
    assert stop_reason(RuntimeError("boom")) == "RuntimeError stopped the deploy"
