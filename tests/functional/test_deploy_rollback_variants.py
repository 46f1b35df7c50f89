"""--rollback across a change of variants: back from an A/B test or a shadow test to the
single-variant release before it (and forward again). moto plays SageMaker and Application Auto
Scaling; the double plays UpdateEndpoint with SageMaker's rules (guardrails need the variant names
kept; a scaled variant cannot be removed)."""

from __future__ import annotations

import pytest

from tests.deploy_support import (
    deploy_ok,
    one_json_document,
    register_package,
    run_captured,
    tags_of,
)
from tests.sagemaker_double import resources

pytestmark = pytest.mark.usefixtures("with_autoscaling")  # aws.autoscaling in every test


def run(env, capsys, *argv):
    return run_captured(capsys, env, *argv)


def deploy(env, capsys, *argv):
    return deploy_ok(capsys, env, *argv)


def serving(aws):
    current = aws.sagemaker.describe_endpoint(EndpointName="qc-prod")
    config = aws.sagemaker.describe_endpoint_config(
        EndpointConfigName=current["EndpointConfigName"])
    return current["EndpointConfigName"], sorted(
        v["VariantName"] for v in (*config["ProductionVariants"],
                                   *config.get("ShadowProductionVariants", [])))


def scaled(aws, variant):
    rid = f"endpoint/qc-prod/variant/{variant}"
    return aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[rid])["ScalableTargets"]


@pytest.fixture
def ab(aws, env, capsys):
    """Release 1: AllTraffic (v1); release 2: + challenger (v2) at weight 1."""
    v1, v2 = register_package(aws.sagemaker), register_package(aws.sagemaker)
    deploy(env, capsys, "-a", v1, "-e", "qc-prod")
    first = serving(aws)[0]
    deploy(env, capsys, "-a", v2, "-e", "qc-prod", "--add-variant", "challenger", "--weight", "1")
    return first, serving(aws)[0]


def test_rollback_ends_an_ab_test_on_the_release_before_it_and_can_return(aws, env, capsys, ab):
    first, second = ab
    doc = one_json_document(deploy(env, capsys, "-e", "qc-prod", "--rollback", "--json"))
    assert (doc["status"], doc["release"], doc["rollback_to"]) == ("InService", 3, 1)
    assert serving(aws) == (first, ["AllTraffic"])
    # Variant names change: a plain update (SageMaker's guardrails need them kept).
    assert aws.update_requests[-1]["DeploymentConfig"] is None
    # Nothing created, both releases kept: back to the A/B test.
    assert sorted(resources(aws.sagemaker)["configs"]) == sorted([first, second])
    deploy(env, capsys, "-e", "qc-prod", "--to-release", "2")
    assert serving(aws) == (second, ["AllTraffic", "challenger"])


def test_rollback_from_a_shadow_test_drops_the_shadow(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    deploy(env, capsys, "-a", arn, "-e", "qc-prod")
    first = serving(aws)[0]
    deploy(env, capsys, "-a", arn, "-e", "qc-prod", "--shadow")
    assert serving(aws)[1] == ["AllTraffic", "shadow"]
    deploy(env, capsys, "-e", "qc-prod", "--rollback")
    assert serving(aws) == (first, ["AllTraffic"])
    assert not aws.sagemaker.describe_endpoint(EndpointName="qc-prod").get(
        "ShadowProductionVariants")


def test_a_scaled_challenger_is_deregistered_before_the_rollback_removes_it(aws, env, capsys):
    v1, v2 = register_package(aws.sagemaker), register_package(aws.sagemaker)
    deploy(env, capsys, "-a", v1, "-e", "qc-prod")
    deploy(env, capsys, "-a", v2, "-e", "qc-prod", "--add-variant", "challenger", "--weight", "1")
    aws.autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId="endpoint/qc-prod/variant/challenger",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1, MaxCapacity=3)
    code, captured = run(env, capsys, "-e", "qc-prod", "--rollback", "--dry-run")
    assert code == 0 and "deregister the autoscaling of challenger" in captured.out
    assert scaled(aws, "challenger")  # a dry run changes nothing
    deploy(env, capsys, "-e", "qc-prod", "--rollback")
    assert serving(aws)[1] == ["AllTraffic"]
    assert scaled(aws, "challenger") == []


def test_a_failed_rollback_across_variants_keeps_the_ab_test_and_its_scaling(aws, env, capsys,
                                                                          ab):
    aws.autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId="endpoint/qc-prod/variant/challenger",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1, MaxCapacity=3)
    aws.update_takes(1, outcome="RolledBack", failure_reason="capacity")
    code, captured = run(env, capsys, "-e", "qc-prod", "--rollback")
    assert code != 0
    assert serving(aws) == (ab[1], ["AllTraffic", "challenger"])
    assert [t["MaxCapacity"] for t in scaled(aws, "challenger")] == [3]  # registered again


def test_guardrails_are_refused_when_the_variants_differ(aws, env, capsys, ab):
    updates = len(aws.update_requests)
    code, captured = run(env, capsys, "-e", "qc-prod", "--rollback", "--rollback-alarm",
                         "qc-errors")
    assert code == 3
    assert "guardrails need an update that keeps the variant names" in captured.err
    assert len(aws.update_requests) == updates and serving(aws)[0] == ab[1]


CAPTURE = "s3://qc-capture/prod"


def live_capture(aws):
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName=serving(aws)[0])
    capture = config.get("DataCaptureConfig") or {}
    return capture.get("DestinationS3Uri"), capture.get("InitialSamplingPercentage")


@pytest.fixture
def captured_later(aws, env, capsys):
    """Release 1 captures nothing; release 2 (the same package) captures 20 %."""
    arn = register_package(aws.sagemaker)
    deploy(env, capsys, "-a", arn, "-e", "qc-prod")
    first = serving(aws)[0]
    deploy(env, capsys, "-a", arn, "-e", "qc-prod", "--data-capture", CAPTURE,
           "--capture-percent", "20")
    return first


def test_rollback_keeps_the_live_data_capture_on_a_new_config(aws, env, capsys, captured_later):
    first = captured_later
    first_models = aws.sagemaker.describe_endpoint_config(
        EndpointConfigName=first)["ProductionVariants"]
    models = set(resources(aws.sagemaker)["models"])
    doc = one_json_document(deploy(env, capsys, "-e", "qc-prod", "--rollback", "--json"))
    assert (doc["release"], doc["rollback_to"]) == (3, 1)
    config, _ = serving(aws)
    assert config not in (first, ) and config.endswith(doc["run_id"])
    assert live_capture(aws) == (CAPTURE, 20)
    now = aws.sagemaker.describe_endpoint_config(EndpointConfigName=config)
    assert [v["ModelName"] for v in now["ProductionVariants"]] == [
        v["ModelName"] for v in first_models]  # release 1's model, no new one
    assert set(resources(aws.sagemaker)["models"]) == models
    live = one_json_document(deploy(env, capsys, "-e", "qc-prod", "--history", "--json"))
    assert live["releases"][0]["kind"] == "rollback to 1"
    assert live["releases"][0]["data_capture"] == f"{CAPTURE} (20 %)"


def test_rollback_with_no_data_capture_reuses_the_releases_config(aws, env, capsys,
                                                                  captured_later):
    deploy(env, capsys, "-e", "qc-prod", "--rollback", "--no-data-capture")
    assert serving(aws)[0] == captured_later and live_capture(aws) == (None, None)


def test_a_failed_capture_keeping_rollback_leaves_nothing_behind(aws, env, capsys,
                                                                 captured_later):
    before = resources(aws.sagemaker)
    live = serving(aws)[0]
    aws.update_takes(1, outcome="RolledBack", failure_reason="capacity")
    code, captured = run(env, capsys, "-e", "qc-prod", "--rollback")
    assert code != 0, captured.out
    assert serving(aws)[0] == live and live_capture(aws) == (CAPTURE, 20)
    assert resources(aws.sagemaker)["configs"] == before["configs"]


@pytest.mark.parametrize("flags", [
    ["--instance-type", "ml.m5.large"], ["--instance-count", "2"], ["--autoscale", "1-3"],
    ["--serverless-memory", "2048", "--max-concurrency", "5"], ["--tag", "team=ml"],
    ["--stack", "blue"],
])
@pytest.mark.parametrize("action", [["--rollback"], ["--to-release", "1"], ["--history"]])
def test_deploy_only_flags_are_refused_with_release_actions_before_any_aws_call(
        aws, env, capsys, action, flags):
    before = dict(aws.calls)
    code, captured = run(env, capsys, "-e", "qc-prod", *action, *flags)
    assert code == 2
    assert f"cannot take {flags[0]}" in captured.err
    assert dict(aws.calls) == before


def test_deploy_settings_from_the_environment_do_not_stop_a_rollback(aws, env, capsys, ab):
    env = {**env, "INSTANCE_TYPE": "ml.m5.large", "INSTANCE_COUNT": "3"}
    deploy(env, capsys, "-e", "qc-prod", "--rollback")
    assert serving(aws) == (ab[0], ["AllTraffic"])


def test_canary_rollback_takes_the_releases_instance_count(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    deploy(env, capsys, "-a", arn, "-e", "qc-prod")  # release 1: one instance
    deploy(env, capsys, "-a", arn, "-e", "qc-prod", "--instance-count", "2")
    deploy(env, capsys, "-a", arn, "-e", "qc-prod", "--instance-count", "3")
    deploy(env, capsys, "-e", "qc-prod", "--to-release", "2", "--deployment-strategy", "canary")
    routing = aws.update_requests[-1]["DeploymentConfig"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY"
    updates = len(aws.update_requests)
    code, captured = run(env, capsys, "-e", "qc-prod", "--to-release", "1",
                         "--deployment-strategy", "canary")
    assert code == 3 and "runs 1 x ml.c5.2xlarge" in captured.err
    assert len(aws.update_requests) == updates


def weights(aws):
    current = aws.sagemaker.describe_endpoint(EndpointName="qc-prod")
    return {v["VariantName"]: v["CurrentWeight"] for v in current["ProductionVariants"]}


@pytest.fixture
def reweighted(aws, env, capsys, ab):
    """Releases 1 (AllTraffic), 2 (+ challenger 1:1), 3 (--set-weights 3:1), 4 (back on 1)."""
    deploy(env, capsys, "-e", "qc-prod", "--set-weights", "AllTraffic=3,challenger=1")
    deploy(env, capsys, "-e", "qc-prod", "--to-release", "1")
    return ab


@pytest.mark.parametrize("flags", [
    ["--deployment-strategy", "canary"], ["--rollback-alarm", "qc-errors"],
    ["--data-capture", CAPTURE], ["--no-data-capture"],
    ["--smoke-test-data", "sample-data.json"],
])
def test_a_weights_only_rollback_refuses_what_only_a_new_config_can_do(aws, env, capsys, ab,
                                                                      flags):
    deploy(env, capsys, "-e", "qc-prod", "--set-weights", "AllTraffic=3,challenger=1")
    code, captured = run(env, capsys, "-e", "qc-prod", "--rollback", *flags)
    assert code == 2 and f"{flags[0]}" in captured.err and "writes no config" in captured.err
    assert weights(aws) == {"AllTraffic": 3.0, "challenger": 1.0}


def test_a_reweighted_release_on_another_config_is_not_rolled_back_to_unwatched(
        aws, env, capsys, reweighted):
    updates = len(aws.update_requests)
    code, captured = run(env, capsys, "-e", "qc-prod", "--to-release", "3", "--no-monitor")
    assert code == 2 and "--no-monitor" in captured.err
    assert len(aws.update_requests) == updates


def test_a_failed_weights_step_says_the_switch_happened_and_how_to_finish(
        aws, env, capsys, reweighted):
    aws.weights_update_takes(1, outcome="Failed", failure_reason="Insufficient capacity")
    code, captured = run(env, capsys, "-e", "qc-prod", "--to-release", "3")
    assert code == 4
    assert serving(aws)[0] == reweighted[1] and weights(aws) == {"AllTraffic": 1.0,
                                                                 "challenger": 1.0}
    assert "The switch itself succeeded" in captured.err
    assert "--to-release 3" in captured.err
    # Finishing it is a weights-only rollback now.
    deploy(env, capsys, "-e", "qc-prod", "--to-release", "3")
    assert weights(aws) == {"AllTraffic": 3.0, "challenger": 1.0}


def test_the_live_weights_count_not_only_the_recorded_ones(aws, env, capsys, ab):
    aws.sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="qc-prod", DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "DesiredWeight": 3.0},
            {"VariantName": "challenger", "DesiredWeight": 0.0}])
    deploy(env, capsys, "-e", "qc-prod", "--history")  # lets the double settle the change
    assert weights(aws) == {"AllTraffic": 3.0, "challenger": 0.0}
    deploy(env, capsys, "-e", "qc-prod", "--to-release", "2")  # release 2's own 1:1 again
    assert weights(aws) == {"AllTraffic": 1.0, "challenger": 1.0}
    code, captured = run(env, capsys, "-e", "qc-prod", "--to-release", "2")
    assert code == 3 and "already serves release 2" in captured.err


def test_unwatched_weights_are_no_release_and_a_rollback_sets_the_last_releases_back(
        aws, env, capsys, ab):
    out = deploy(env, capsys, "-e", "qc-prod", "--set-weights", "AllTraffic=3,challenger=1",
                 "--no-monitor")
    assert "not recorded as a release" in out
    history = one_json_document(deploy(env, capsys, "-e", "qc-prod", "--history", "--json"))
    assert len(history["releases"]) == 2 and weights(aws) == {"AllTraffic": 3.0,
                                                              "challenger": 1.0}
    doc = one_json_document(deploy(env, capsys, "-e", "qc-prod", "--rollback", "--json"))
    assert doc["rollback_to"] == 2 and weights(aws) == {"AllTraffic": 1.0, "challenger": 1.0}


def test_every_rollback_is_told_as_a_rollback_in_json(aws, env, capsys, captured_later):
    doc = one_json_document(deploy(env, capsys, "-e", "qc-prod", "--rollback", "--json"))
    assert (doc["action"], doc["rollback_to"]) == ("rolled back", 1)  # a new config


def test_a_rollback_config_of_its_own_records_the_releases_commit_not_the_callers(
        aws, env, capsys, captured_later):
    sm = aws.sagemaker
    first_model = sm.describe_endpoint_config(
        EndpointConfigName=captured_later)["ProductionVariants"][0]["ModelName"]
    model_tags = tags_of(sm, sm.describe_model(ModelName=first_model)["ModelArn"])
    config_tags = tags_of(sm, sm.describe_endpoint_config(
        EndpointConfigName=captured_later)["EndpointConfigArn"])
    deploy(env, capsys, "-e", "qc-prod", "--rollback")
    new = sm.describe_endpoint_config(EndpointConfigName=serving(aws)[0])
    tags = tags_of(sm, new["EndpointConfigArn"])
    assert tags["DeployReleaseCommit"] == config_tags["DeployReleaseCommit"]
    assert (tags["DeployRelease"], tags["DeployReleaseFrom"]) == ("3", "1")
    # Release 1's model keeps its own record.
    assert tags_of(sm, sm.describe_model(ModelName=first_model)["ModelArn"]) == model_tags


def test_pruning_past_a_rollback_config_leaves_no_model_behind(aws, env, capsys, captured_later):
    deploy(env, capsys, "-e", "qc-prod", "--rollback")  # a new config running release 1's model
    for keep in ("2", "1"):
        deploy(env, capsys, "-a", register_package(aws.sagemaker), "-e", "qc-prod",
               "--keep-releases", keep)
    state = resources(aws.sagemaker)
    used = {v["ModelName"] for name in state["configs"] for v in aws.sagemaker.
            describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]}
    assert len(state["configs"]) == 1 and set(state["models"]) == used


def test_release_records_stay_within_sagemakers_50_tags_with_the_most_user_tags(aws, env,
                                                                                  capsys):
    tags = [arg for i in range(34) for arg in ("--tag", f"k{i}=v")]  # the most --tag takes
    arn = register_package(aws.sagemaker)
    deploy(env, capsys, "-a", arn, "-e", "qc-prod", *tags)
    deploy(env, capsys, "-a", arn, "-e", "qc-prod", *tags, "--data-capture", CAPTURE)
    deploy(env, capsys, "-e", "qc-prod", "--rollback")  # its own config: DeployReleaseFrom too
    for weight in range(2, 8):  # each a release on that config, the oldest records dropped
        out = deploy(env, capsys, "-e", "qc-prod", "--set-weights", f"AllTraffic={weight}",
                     "--json")
        assert one_json_document(out)["release"] == weight + 2
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName=serving(aws)[0])
    assert len(tags_of(aws.sagemaker, config["EndpointConfigArn"])) == 50
