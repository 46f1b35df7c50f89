"""Updates, failures, rollback, timeouts, interrupts and throttling, played by the test double.

After every failure the account is checked: nothing this run created may be left behind, and an
endpoint that served before an update still serves on its old config.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import REGION
from tests.deploy_support import (
    EMPTY,
    VALID_ANSWER,
    FakeClock,
    deploy,
    one_json_document,
    register_package,
    tags_of,
)
from tests.sagemaker_double import resources
from utils.errors import Terminated

TRACEBACK = ["Loading model from /opt/ml/model",
             "Traceback (most recent call last):",
             '  File "/opt/ml/model/code/inference.py", line 3, in <module>',
             "    import xgboost",
             "ModuleNotFoundError: No module named 'xgboost'",
             "Worker exiting (pid: 17)"]


@pytest.fixture
def aws(aws):
    """The shared double, with one Approved package registered: `aws.arn`."""
    aws.arn = register_package(aws.sagemaker)
    return aws


@pytest.fixture
def env(account_env):
    return {**account_env, "NO_COLOR": "1"}


def existing_endpoint(aws, env, capsys, name="qc-live"):
    """An endpoint that deploy-model created and that serves; returns its config and model."""
    assert deploy(aws, env, "-e", name) == 0
    capsys.readouterr()
    state = resources(aws.sagemaker)
    return state["configs"][0], state["models"][0]


# --- create -------------------------------------------------------------------------------------

def test_failed_create_is_rolled_back_and_says_why(aws, env, capsys):
    aws.create_takes(3, outcome="Failed",
                     failure_reason="The primary container for production variant AllTraffic "
                                    "did not pass the ping health check.")
    aws.log_at("qc-bad", 2, TRACEBACK)
    assert deploy(aws, env, "-e", "qc-bad") == 4
    err = capsys.readouterr().err
    assert "DEPLOYMENT FAILED" in err and "Status: Failed" in err
    assert "did not pass the ping health check" in err
    assert "ModuleNotFoundError: No module named 'xgboost'" in err  # the traceback's last line
    assert "Likely causes" in err and "requirements.txt" in err
    assert "Rolled back: deleted endpoint qc-bad" in err
    assert resources(aws.sagemaker) == EMPTY


def test_failed_create_json_document_lists_the_rollback(aws, env, capsys):
    aws.create_takes(1, outcome="Failed", failure_reason="CannotPullContainerError")
    assert deploy(aws, env, "-e", "qc-bad", "--json") == 4
    doc = one_json_document(capsys.readouterr().out)
    assert doc["exit_code"] == 4 and doc["status"] == "Failed"
    assert doc["failure_reason"] == "CannotPullContainerError"
    assert sorted(r.split()[0] for r in doc["rolled_back"]) == ["endpoint", "endpoint-config",
                                                                "model"]
    assert doc["left_behind"] == [] and doc["cleanup_commands"] == []
    assert resources(aws.sagemaker) == EMPTY


def test_skip_rollback_keeps_everything_and_prints_exact_commands(aws, env, capsys):
    aws.create_takes(1, outcome="Failed", failure_reason="boom")
    assert deploy(aws, env, "-e", "qc-keep", "--skip-rollback", "--json") == 4
    captured = capsys.readouterr()
    state = resources(aws.sagemaker)
    assert state["endpoints"] == ["qc-keep"] and len(state["configs"]) == len(state["models"]) == 1
    doc = one_json_document(captured.out)
    expected = [f"aws sagemaker delete-endpoint --endpoint-name qc-keep --region {REGION}",
                f"aws sagemaker delete-endpoint-config --endpoint-config-name {state['configs'][0]}"
                f" --region {REGION}",
                f"aws sagemaker delete-model --model-name {state['models'][0]} --region {REGION}"]
    assert doc["cleanup_commands"] == expected
    for command in expected:
        assert command in captured.err
    aws.sagemaker.delete_endpoint(EndpointName="qc-keep")  # the printed commands, done by hand
    aws.sagemaker.delete_endpoint_config(EndpointConfigName=state["configs"][0])
    aws.sagemaker.delete_model(ModelName=state["models"][0])
    assert resources(aws.sagemaker) == EMPTY


def test_create_timeout_rolls_back_with_exit_5(aws, env, capsys):
    aws.create_takes(10_000)
    clock = FakeClock()
    assert deploy(aws, env, "-e", "qc-slow", "--timeout", "120", "--json", clock=clock) == 5
    doc = one_json_document(capsys.readouterr().out)
    assert doc["exit_code"] == 5 and doc["status"] == "Creating"
    assert "did not reach InService within 2m 00s" in doc["error"]
    assert resources(aws.sagemaker) == EMPTY
    # Backed off from 5 s up to 30 s, and never slept past the deadline.
    assert clock.sleeps[0] == 5.0 and max(clock.sleeps) <= 30.0


def test_ctrl_c_while_creating_rolls_back_with_exit_130(aws, env, capsys):
    aws.create_takes(10_000)
    clock = FakeClock(raise_at={2: KeyboardInterrupt()})
    assert deploy(aws, env, "-e", "qc-int", clock=clock) == 130
    err = capsys.readouterr().err
    assert "rolling back what this run created" in err
    assert resources(aws.sagemaker) == EMPTY


def test_sigterm_while_creating_rolls_back_with_exit_143(aws, env, capsys):
    aws.create_takes(10_000)
    clock = FakeClock(raise_at={1: Terminated()})
    assert deploy(aws, env, "-e", "qc-term", "--json", clock=clock) == 143
    assert one_json_document(capsys.readouterr().out)["exit_code"] == 143
    assert resources(aws.sagemaker) == EMPTY


def test_rollback_waits_while_an_endpoint_refuses_deletion_during_creating(aws, env, capsys):
    aws.create_takes(6)
    aws.refuse_delete_while_creating()
    clock = FakeClock(raise_at={1: KeyboardInterrupt()})
    assert deploy(aws, env, "-e", "qc-wait", clock=clock) == 130
    assert "cannot be deleted while it is still being created" in capsys.readouterr().out
    assert aws.calls["DeleteEndpoint"] >= 2  # refused, then accepted once it left Creating
    assert resources(aws.sagemaker) == EMPTY


def test_second_ctrl_c_stops_waiting_and_prints_cleanup_commands(aws, env, capsys):
    aws.create_takes(10_000)
    aws.refuse_delete_while_creating()
    clock = FakeClock(raise_at={1: KeyboardInterrupt(), 3: KeyboardInterrupt()})
    assert deploy(aws, env, "-e", "qc-twice", "--json", clock=clock) == 130
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    state = resources(aws.sagemaker)
    assert doc["left_behind"] and len(doc["cleanup_commands"]) == 3
    assert "aws sagemaker delete-endpoint --endpoint-name qc-twice" in captured.err
    assert state["endpoints"] == ["qc-twice"]  # still Creating; the user took over
    aws.refuse_delete_while_creating(False)
    aws.sagemaker.delete_endpoint(EndpointName="qc-twice")
    aws.sagemaker.delete_endpoint_config(EndpointConfigName=state["configs"][0])
    aws.sagemaker.delete_model(ModelName=state["models"][0])


def test_deletion_that_takes_a_while_is_waited_for(aws, env, capsys):
    aws.create_takes(1, outcome="Failed", failure_reason="boom")
    aws.deleting_takes(3)
    clock = FakeClock()
    assert deploy(aws, env, "-e", "qc-del", clock=clock) == 4
    assert resources(aws.sagemaker) == EMPTY
    assert aws.describes_of("qc-del") >= 5  # watched the Deleting status until it was gone


def test_throttled_describe_is_retried_not_fatal(aws, env, capsys):
    aws.create_takes(2)
    aws.throttle_describe(3)  # within botocore's 10 attempts: the client retries by itself
    assert deploy(aws, env, "-e", "qc-thr") == 0
    assert aws.calls["DescribeEndpoint"] >= aws.describes_of("qc-thr") + 3


def test_throttling_beyond_botocore_retries_only_delays_the_watch(aws, env, capsys):
    aws.create_takes(2)
    # The plan's DescribeEndpoint gets through; the watch's first one is throttled on all 11 of
    # botocore's attempts (CLIENT_CONFIG: 10 retries). That must cost one poll, not the deploy.
    aws.throttle_describe(11, after=1)
    assert deploy(aws, env, "-e", "qc-thr2") == 0
    err = capsys.readouterr().err
    assert "DescribeEndpoint did not answer (ThrottlingException); still waiting" in err
    assert aws.sagemaker.describe_endpoint(EndpointName="qc-thr2")["EndpointStatus"] == "InService"


# --- update -------------------------------------------------------------------------------------

def test_update_switches_config_blue_green_and_removes_the_superseded(aws, env, capsys):
    old_config, old_model = existing_endpoint(aws, env, capsys)
    aws.update_takes(3)
    # plan +1, then the watch's describes 2 and 3 show Updating: the lines appear meanwhile
    aws.log_at("qc-live", aws.describes_of("qc-live") + 3,
               ["Starting gunicorn", "Booting worker with pid: 18"])
    # releases are kept (--keep-releases, default 3): keeping one removes the one it replaced
    assert deploy(aws, env, "-e", "qc-live", "--tag", "release=42", "--keep-releases", "1",
                  "--json") == 0
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    assert doc["action"] == "updated" and doc["previous_endpoint_config_name"] == old_config
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="qc-live")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == doc["endpoint_config_name"] != old_config
    [request] = aws.update_requests
    assert request["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"][
        "Type"] == "ALL_AT_ONCE"
    assert resources(aws.sagemaker) == {"endpoints": ["qc-live"],
                                        "configs": [doc["endpoint_config_name"]],
                                        "models": [doc["model_name"]]}
    assert sorted(doc["removed_previous"]) == sorted([f"endpoint-config {old_config}",
                                                      f"model {old_model}"])
    assert tags_of(aws.sagemaker, endpoint["EndpointArn"])["release"] == "42"
    assert "Endpoint status: Updating" in captured.err
    assert "Booting worker with pid: 18" in captured.err  # logs are tailed during Updating too


def test_keep_previous_keeps_the_superseded_config_and_model(aws, env, capsys):
    old_config, old_model = existing_endpoint(aws, env, capsys)
    aws.update_takes(1)
    assert deploy(aws, env, "-e", "qc-live", "--keep-previous") == 0
    state = resources(aws.sagemaker)
    assert old_config in state["configs"] and old_model in state["models"]
    assert len(state["configs"]) == 2


def test_previous_config_not_made_by_this_tool_is_left_alone(aws, env, capsys):
    sm = aws.sagemaker
    sm.create_model(ModelName="hand-made", ExecutionRoleArn=env["SAGEMAKER_EXECUTION_ROLE_ARN"],
                    Containers=[{"ModelPackageName": aws.arn}])
    sm.create_endpoint_config(EndpointConfigName="hand-made", ProductionVariants=[{
        "VariantName": "Primary", "ModelName": "hand-made", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="qc-hand", EndpointConfigName="hand-made")
    aws.update_takes(1)
    assert deploy(aws, env, "-e", "qc-hand") == 0
    out = capsys.readouterr().out
    assert "deploy-model did not create it" in out
    state = resources(sm)
    assert "hand-made" in state["configs"] and "hand-made" in state["models"]
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName="qc-hand")["EndpointConfigName"])
    assert config["ProductionVariants"][0]["VariantName"] == "Primary"  # variant name kept


def test_update_rolled_back_by_sagemaker_is_a_failure(aws, env, capsys):
    old_config, old_model = existing_endpoint(aws, env, capsys)
    aws.update_takes(2, outcome="RolledBack",
                     failure_reason="Updating endpoint failed: ping health check failed")
    aws.log_at("qc-live", 3, TRACEBACK)
    assert deploy(aws, env, "-e", "qc-live", "--json") == 4
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    assert "rolled it back" in doc["error"] and doc["status"] == "InService"
    assert doc["current_endpoint_config_name"] == old_config
    assert "ModuleNotFoundError: No module named 'xgboost'" in doc["container_errors"]
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="qc-live")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == old_config  # the old config still serves
    assert resources(aws.sagemaker) == {"endpoints": ["qc-live"], "configs": [old_config],
                                        "models": [old_model]}


def test_update_rollback_failed_keeps_the_new_config_and_says_how_to_remove_it(aws, env, capsys):
    old_config, _ = existing_endpoint(aws, env, capsys)
    aws.update_takes(1, outcome="UpdateRollbackFailed", failure_reason="rollback failed")
    assert deploy(aws, env, "-e", "qc-live", "--json") == 4
    doc = one_json_document(capsys.readouterr().out)
    assert doc["status"] == "UpdateRollbackFailed"
    assert any("delete-endpoint-config" in c for c in doc["cleanup_commands"])
    assert not any("delete-endpoint " in c for c in doc["cleanup_commands"])
    assert doc["endpoint_config_name"] in resources(aws.sagemaker)["configs"]


def test_update_timeout_reports_state_and_leaves_the_update_running(aws, env, capsys):
    old_config, _ = existing_endpoint(aws, env, capsys)
    aws.update_takes(10_000)
    assert deploy(aws, env, "-e", "qc-live", "--timeout", "60", "--json") == 5
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    assert doc["status"] == "Updating"
    assert "aws sagemaker describe-endpoint --endpoint-name qc-live" in captured.err
    assert doc["endpoint_config_name"] in resources(aws.sagemaker)["configs"]
    assert old_config in resources(aws.sagemaker)["configs"]


def test_ctrl_c_during_an_update_stops_watching_and_deletes_nothing(aws, env, capsys):
    existing_endpoint(aws, env, capsys)
    before = resources(aws.sagemaker)
    aws.update_takes(10_000)
    clock = FakeClock(raise_at={1: KeyboardInterrupt()})
    assert deploy(aws, env, "-e", "qc-live", clock=clock) == 130
    err = capsys.readouterr().err
    assert "SageMaker carries on with the update of qc-live" in err
    after = resources(aws.sagemaker)
    assert set(before["configs"]) < set(after["configs"])  # old and new both still there
    assert aws.calls["DeleteEndpoint"] == aws.calls["DeleteEndpointConfig"] == 0


def test_canary_strategy_and_rollback_alarms_reach_update_endpoint(aws, env, capsys):
    existing_endpoint(aws, env, capsys)
    aws.update_takes(1)
    assert deploy(aws, env, "-e", "qc-live", "--deployment-strategy", "canary",
                  "--instance-count", "2", "--step-size", "25", "--step-wait", "120",
                  "--rollback-alarm", "qc-5xx", "--rollback-alarm", "qc-latency") == 0
    [request] = aws.update_requests
    config = request["DeploymentConfig"]
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "CANARY", "WaitIntervalInSeconds": 120,
                       "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}}
    assert config["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 120
    assert config["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": "qc-5xx"}, {"AlarmName": "qc-latency"}]}


# --- smoke test ---------------------------------------------------------------------------------

@pytest.fixture
def smoke_file(tmp_path):
    path = tmp_path / "smoke.json"
    path.write_text(json.dumps({"data": [[1.0, 2.0], [3.0, 4.0]]}))
    return str(path)


def test_smoke_test_failure_rolls_back_a_new_endpoint(aws, env, capsys, smoke_file):
    aws.answer_invocations_with(json.dumps({"predictions": ["qc_pass"]}))
    assert deploy(aws, env, "-e", "qc-smoke", "--smoke-test-data", smoke_file, "--json") == 4
    doc = one_json_document(capsys.readouterr().out)
    assert "failed the smoke test" in doc["error"]
    assert any("missing key" in line for line in doc["details"])
    assert resources(aws.sagemaker) == EMPTY


def test_smoke_test_failure_points_an_update_back_at_the_previous_config(aws, env, capsys,
                                                                         smoke_file):
    old_config, old_model = existing_endpoint(aws, env, capsys)
    aws.update_takes(1)
    aws.update_takes(1)  # the update back to the old config
    aws.answer_invocations_with("<html>not json</html>", content_type="text/html")
    assert deploy(aws, env, "-e", "qc-live", "--smoke-test-data", smoke_file) == 4
    err = capsys.readouterr().err
    assert "Pointing qc-live back at " + old_config in err
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="qc-live")
    assert endpoint["EndpointConfigName"] == old_config and endpoint["EndpointStatus"] == "InService"
    assert [r["EndpointConfigName"] for r in aws.update_requests][-1] == old_config
    assert resources(aws.sagemaker) == {"endpoints": ["qc-live"], "configs": [old_config],
                                        "models": [old_model]}


def test_smoke_test_with_a_valid_answer_passes_an_update(aws, env, capsys, smoke_file):
    existing_endpoint(aws, env, capsys)
    aws.update_takes(1)
    aws.answer_invocations_with(json.dumps(VALID_ANSWER))
    assert deploy(aws, env, "-e", "qc-live", "--smoke-test-data", smoke_file) == 0
    assert "Smoke test passed: 2 rows" in capsys.readouterr().out


def test_ctrl_c_before_update_endpoint_was_sent_removes_the_new_config_and_model(
        aws, env, capsys, monkeypatch):
    existing_endpoint(aws, env, capsys)
    before = resources(aws.sagemaker)
    from modules import deploy_resources

    def config_then_ctrl_c(*args, **kwargs):
        deploy_resources.create_endpoint_config(*args, **kwargs)
        raise KeyboardInterrupt  # the model and config exist; UpdateEndpoint was not sent

    monkeypatch.setattr("modules.deploy_endpoint.create_endpoint_config", config_then_ctrl_c)
    assert deploy(aws, env, "-e", "qc-live") == 130
    assert resources(aws.sagemaker) == before
    assert aws.update_requests == []


def test_a_failing_cleanup_of_the_superseded_config_does_not_fail_the_update(
        aws, env, capsys, monkeypatch):
    old_config, _ = existing_endpoint(aws, env, capsys)
    aws.update_takes(1)
    from botocore.exceptions import ClientError

    def denied(*args, **kwargs):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no ListTags"}},
                          "ListTags")

    monkeypatch.setattr("modules.deploy_endpoint.superseded_resources", denied)
    assert deploy(aws, env, "-e", "qc-live") == 0
    assert "Could not check the previous config" in capsys.readouterr().err
    assert old_config in resources(aws.sagemaker)["configs"]


# --- errors other than a failed deploy ----------------------------------------------------------

def _expired_token(*args, **kwargs):
    from botocore.exceptions import ClientError

    raise ClientError({"Error": {"Code": "ExpiredTokenException",
                                 "Message": "The security token included in the request is "
                                            "expired"}}, "DescribeEndpoint")


def test_an_aws_error_while_watching_a_create_rolls_it_back(aws, env, capsys, monkeypatch):
    monkeypatch.setattr("modules.deploy_watch.monitor_and_tail", _expired_token)
    assert deploy(aws, env, "-e", "qc-expired", "--json") == 3
    doc = one_json_document(capsys.readouterr().out)
    assert "ExpiredTokenException" in doc["error"] and doc["exit_code"] == 3
    assert sorted(r.split()[0] for r in doc["rolled_back"]) == ["endpoint", "endpoint-config",
                                                                "model"]
    assert resources(aws.sagemaker) == EMPTY


def test_an_aws_error_while_watching_an_update_leaves_it_running_and_says_how(
        aws, env, capsys, monkeypatch):
    old_config, _ = existing_endpoint(aws, env, capsys)
    aws.update_takes(10_000)
    monkeypatch.setattr("modules.deploy_watch.monitor_and_tail", _expired_token)
    assert deploy(aws, env, "-e", "qc-live", "--json") == 3
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    assert "aws sagemaker describe-endpoint --endpoint-name qc-live" in captured.err
    # SageMaker is still running the update: its new config must stay, the old one too.
    state = resources(aws.sagemaker)
    assert doc["endpoint_config_name"] in state["configs"] and old_config in state["configs"]
    assert any("delete-endpoint-config" in c for c in doc["cleanup_commands"])
    assert aws.calls["DeleteEndpointConfig"] == aws.calls["DeleteModel"] == 0


def test_a_bug_while_watching_a_create_still_rolls_it_back(aws, env, capsys, monkeypatch):
    def bug(*args, **kwargs):
        raise KeyError("EndpointStatus")

    monkeypatch.setattr("modules.deploy_watch.monitor_and_tail", bug)
    assert deploy(aws, env, "-e", "qc-bug", "--json") == 1
    doc = one_json_document(capsys.readouterr().out)
    assert "Unexpected internal error: KeyError" in doc["error"]
    assert resources(aws.sagemaker) == EMPTY


def _invocations_raise(monkeypatch, error: BaseException) -> None:
    """The smoke test's InvokeEndpoint raises `error` (no answer, Ctrl-C...)."""
    import modules.deploy_endpoint as deploy_endpoint

    real = deploy_endpoint.create_clients

    class Runtime:
        def invoke_endpoint(self, **kwargs):
            raise error

    def clients(session, *names):
        return (Runtime(),) if names == ("sagemaker-runtime",) else real(session, *names)

    monkeypatch.setattr(deploy_endpoint, "create_clients", clients)


def test_a_network_error_in_the_smoke_test_fails_and_rolls_back(aws, env, capsys, monkeypatch,
                                                                 smoke_file):
    from botocore.exceptions import ReadTimeoutError

    _invocations_raise(monkeypatch, ReadTimeoutError(endpoint_url="https://runtime/invocations"))
    assert deploy(aws, env, "-e", "qc-slowanswer", "--smoke-test-data", smoke_file,
                  "--json") == 4
    doc = one_json_document(capsys.readouterr().out)
    assert "failed the smoke test" in doc["error"]
    assert any("ReadTimeoutError" in line for line in doc["details"])
    assert resources(aws.sagemaker) == EMPTY


def test_ctrl_c_in_the_smoke_test_of_a_finished_update_says_so_and_deletes_nothing(
        aws, env, capsys, monkeypatch, smoke_file):
    old_config, _ = existing_endpoint(aws, env, capsys)
    before = resources(aws.sagemaker)
    aws.update_takes(1)
    _invocations_raise(monkeypatch, KeyboardInterrupt())
    assert deploy(aws, env, "-e", "qc-live", "--smoke-test-data", smoke_file, "--json") == 130
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    assert "The update itself finished" in captured.err
    assert f"--endpoint-config-name {old_config}" in captured.err  # how to point it back
    assert doc["left_behind"] == []
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="qc-live")
    assert endpoint["EndpointConfigName"] == doc["endpoint_config_name"]
    assert set(before["configs"]) < set(resources(aws.sagemaker)["configs"])
    assert aws.calls["DeleteEndpointConfig"] == aws.calls["DeleteModel"] == 0


def _update_endpoint_answers_error(monkeypatch, *, got_through: bool) -> None:
    """UpdateEndpoint answers ValidationException; with `got_through` the update was accepted
    first (a botocore retry of a request whose answer was lost meets the update in progress)."""
    from botocore.exceptions import ClientError

    from modules import deploy_resources

    def start(sagemaker, plan, resources):
        if got_through:
            deploy_resources.start_endpoint(sagemaker, plan, resources)
        raise ClientError({"Error": {"Code": "ValidationException",
                                     "Message": "Cannot update in-progress endpoint"}},
                          "UpdateEndpoint")

    monkeypatch.setattr("modules.deploy_endpoint.start_endpoint", start)


def test_a_refused_update_removes_the_new_config_and_model(aws, env, capsys, monkeypatch):
    existing_endpoint(aws, env, capsys)
    before = resources(aws.sagemaker)
    _update_endpoint_answers_error(monkeypatch, got_through=False)
    assert deploy(aws, env, "-e", "qc-live") == 3
    assert resources(aws.sagemaker) == before


def test_a_refused_retry_of_an_accepted_update_keeps_the_config_it_uses(aws, env, capsys,
                                                                        monkeypatch):
    existing_endpoint(aws, env, capsys)
    aws.update_takes(10_000)
    _update_endpoint_answers_error(monkeypatch, got_through=True)
    assert deploy(aws, env, "-e", "qc-live", "--json") == 3
    doc = one_json_document(capsys.readouterr().out)
    assert doc["endpoint_config_name"] in resources(aws.sagemaker)["configs"]
    assert aws.calls["DeleteEndpointConfig"] == aws.calls["DeleteModel"] == 0
    assert len(doc["cleanup_commands"]) == 2  # to remove them once the update has settled
