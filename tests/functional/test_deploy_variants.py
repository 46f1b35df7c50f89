"""A/B variants: --add-variant, --set-weights, --promote, --remove-variant against moto with the
double playing what SageMaker does (weights of 0 kept, UpdateEndpointWeightsAndCapacities taking
time, updates that change the variant names allowed only without deployment guardrails)."""

from __future__ import annotations

import pytest

from tests.deploy_support import (
    live_config,
    main,
    one_json_document,
    register_package,
    tags_of,
)
from tests.sagemaker_double import resources


def weights(aws, endpoint="qc-prod"):
    current = aws.sagemaker.describe_endpoint(EndpointName=endpoint)
    return {v["VariantName"]: v["CurrentWeight"] for v in current["ProductionVariants"]}


@pytest.fixture
def ab(aws, env, capsys):
    """qc-prod serving AllTraffic (package v1) and challenger (package v2) at 90/10."""
    v1 = register_package(aws.sagemaker)
    v2 = register_package(aws.sagemaker)
    assert main(["-a", v1, "-e", "qc-prod"], env) == 0
    capsys.readouterr()
    code = main(["-a", v2, "-e", "qc-prod", "--add-variant", "challenger", "--weight", "10",
                 "--json"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return v1, v2, one_json_document(captured.out)


def test_add_variant_serves_the_package_beside_the_live_model(aws, env, ab):
    v1, v2, document = ab
    config = live_config(aws.sagemaker)
    variants = {v["VariantName"]: v for v in config["ProductionVariants"]}
    assert set(variants) == {"AllTraffic", "challenger"}
    assert variants["challenger"]["InitialVariantWeight"] == 10
    assert weights(aws) == {"AllTraffic": 1.0, "challenger": 10.0}
    champion = aws.sagemaker.describe_model(ModelName=variants["AllTraffic"]["ModelName"])
    challenger = aws.sagemaker.describe_model(ModelName=variants["challenger"]["ModelName"])
    assert champion["Containers"][0]["ModelPackageName"] == v1
    assert challenger["Containers"][0]["ModelPackageName"] == v2
    # A plain UpdateEndpoint: SageMaker's guardrails need the variant names kept.
    assert aws.update_requests[-1]["DeploymentConfig"] is None
    # The previous config is kept as release 1 (for --rollback); both models exist.
    state = resources(aws.sagemaker)
    assert (len(state["configs"]), len(state["models"])) == (2, 2)
    assert document["traffic"]["change"] == "add-variant"
    assert {v["name"]: v["weight"] for v in document["variants"]} == {
        "challenger": 10.0, "AllTraffic": 1.0}
    assert document["release"] == 2  # recorded as the endpoint's next release


def test_a_challenger_getting_most_of_the_traffic_is_warned_about(aws, env, capsys):
    v1 = register_package(aws.sagemaker)
    assert main(["-a", v1, "-e", "qc-prod"], env) == 0
    capsys.readouterr()
    assert main(["-a", v1, "-e", "qc-prod", "--add-variant", "b", "--weight", "10",
                 "--dry-run"], env) == 0
    captured = capsys.readouterr()
    assert "b will get 91 % of the traffic: weights are relative" in captured.out + captured.err


def test_set_weights_shifts_traffic_without_a_new_fleet(aws, env, ab, capsys):
    before = resources(aws.sagemaker)
    config = live_config(aws.sagemaker)["EndpointConfigName"]
    aws.weights_update_takes(3)
    code = main(["-e", "qc-prod", "--set-weights", "AllTraffic=0,challenger=100", "--json"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert weights(aws) == {"AllTraffic": 0.0, "challenger": 100.0}
    assert live_config(aws.sagemaker)["EndpointConfigName"] == config  # no new config, no new fleet
    assert resources(aws.sagemaker) == before
    assert aws.weight_requests[-1] == [{"VariantName": "AllTraffic", "DesiredWeight": 0.0},
                                       {"VariantName": "challenger", "DesiredWeight": 100.0}]
    document = one_json_document(captured.out)
    assert document["weights"] == {"AllTraffic": 0.0, "challenger": 100.0}
    assert document["previous_weights"] == {"AllTraffic": 1.0, "challenger": 10.0}
    assert "Verified: qc-prod serves" in captured.err
    assert "challenger=100 (100 %)" in captured.err and "AllTraffic=0 (0 %)" in captured.err


def test_set_weights_that_sagemaker_rolls_back_fails_and_keeps_the_old_weights(aws, env, ab,
                                                                              capsys):
    aws.weights_update_takes(2, "RolledBack", "Insufficient capacity")
    code = main(["-e", "qc-prod", "--set-weights", "AllTraffic=50,challenger=50"], env)
    captured = capsys.readouterr()
    assert code == 4, captured.err  # DEPLOYMENT FAILED
    err = captured.out + captured.err
    assert "The weight change of qc-prod failed" in err and "Insufficient capacity" in err
    assert weights(aws) == {"AllTraffic": 1.0, "challenger": 10.0}


def test_set_weights_that_times_out_sets_the_previous_weights_again(aws, env, ab, capsys):
    aws.weights_update_takes(10_000)  # never settles within the timeout
    code = main(["-e", "qc-prod", "--set-weights", "challenger=50", "--timeout", "1"], env)
    captured = capsys.readouterr()
    assert code == 5  # timed out
    err = captured.out + captured.err
    assert "did not settle in time" in err
    assert "Setting the previous weights of qc-prod again" in err or "set the previous" in err


def test_set_weights_dry_run_changes_nothing(aws, env, ab, capsys):
    code = main(["-e", "qc-prod", "--set-weights", "challenger=90", "--dry-run"], env)
    out = capsys.readouterr()
    assert code == 0
    assert "Weights after   : challenger=90 (99 %), AllTraffic=1 (1 %)" in out.out + out.err
    assert aws.weight_requests == []


@pytest.mark.parametrize("argv, says", [
    (["--set-weights", "nobody=1"], "has no variant nobody"),
    (["--set-weights", "AllTraffic=0"], "challenger=10"),  # only if all end at 0: not here
])
def test_set_weights_names_must_be_the_endpoints(aws, env, ab, capsys, argv, says):
    code = main(["-e", "qc-prod", *argv], env)
    captured = capsys.readouterr()
    if says == "challenger=10":
        assert code == 0  # AllTraffic at 0, challenger keeps 10: traffic still flows
        assert weights(aws) == {"AllTraffic": 0.0, "challenger": 10.0}
    else:
        assert code == 2 and says in captured.out + captured.err
        assert aws.weight_requests == []


def test_setting_the_only_weighted_variant_to_zero_is_refused(aws, env, ab, capsys):
    assert main(["-e", "qc-prod", "--set-weights", "AllTraffic=0"], env) == 0
    capsys.readouterr()
    assert main(["-e", "qc-prod", "--set-weights", "challenger=0"], env) == 2
    assert "would have weight 0" in capsys.readouterr().err


def test_promote_makes_the_challenger_the_only_variant(aws, env, ab, capsys):
    v1, v2, _ = ab
    code = main(["-e", "qc-prod", "--promote", "challenger", "--json"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [variant] = live_config(aws.sagemaker)["ProductionVariants"]
    assert variant["VariantName"] == "challenger"
    model = aws.sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["Containers"][0]["ModelPackageName"] == v2
    assert weights(aws) == {"challenger": 1.0}
    # The A/B config and the champion's model stay as releases 1 and 2 (--keep-releases 3).
    state = resources(aws.sagemaker)
    assert len(state["configs"]) == 3 and variant["ModelName"] in state["models"]
    document = one_json_document(captured.out)
    assert document["model_package_arn"] == v2 and document["release"] == 3


def test_remove_variant_keeps_the_others_with_their_weights(aws, env, ab, capsys):
    v1, _, _ = ab
    code = main(["-e", "qc-prod", "--remove-variant", "challenger"], env)
    assert code == 0, capsys.readouterr().err
    [variant] = live_config(aws.sagemaker)["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    model = aws.sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["Containers"][0]["ModelPackageName"] == v1
    # A normal deploy updates the one variant again.
    assert main(["-a", v1, "-e", "qc-prod"], env) == 0


def test_a_failed_add_variant_update_leaves_the_live_variant_and_nothing_new(aws, env, capsys):
    v1 = register_package(aws.sagemaker)
    assert main(["-a", v1, "-e", "qc-prod"], env) == 0
    before = resources(aws.sagemaker)
    aws.update_takes(2, "RolledBack", "challenger failed its health check")
    code = main(["-a", v1, "-e", "qc-prod", "--add-variant", "challenger", "--weight", "5"], env)
    captured = capsys.readouterr()
    assert code != 0
    assert "challenger failed its health check" in captured.out + captured.err
    assert weights(aws) == {"AllTraffic": 1.0}
    assert resources(aws.sagemaker) == before


@pytest.mark.parametrize("argv, says", [
    (["--promote", "nobody"], "has no variant nobody"),
    (["--remove-variant", "nobody"], "has no variant nobody"),
    (["--add-variant", "challenger", "--weight", "1", "-a", "ARN"], "already serves a variant"),
])
def test_unknown_or_taken_variant_names_are_refused_before_any_change(aws, env, ab, capsys,
                                                                     argv, says):
    v1, _, _ = ab
    argv = [v1 if a == "ARN" else a for a in argv]
    before = resources(aws.sagemaker)
    updates = len(aws.update_requests)
    assert main(["-e", "qc-prod", *argv], env) == 2
    assert says in capsys.readouterr().err
    assert resources(aws.sagemaker) == before and len(aws.update_requests) == updates


def test_promote_or_remove_of_a_single_variant_endpoint_is_refused(aws, env, capsys):
    v1 = register_package(aws.sagemaker)
    assert main(["-a", v1, "-e", "qc-prod"], env) == 0
    capsys.readouterr()
    assert main(["-e", "qc-prod", "--promote", "AllTraffic"], env) == 2
    assert "already its only variant" in capsys.readouterr().err
    assert main(["-e", "qc-prod", "--remove-variant", "AllTraffic"], env) == 2
    assert "delete the endpoint instead" in capsys.readouterr().err


def test_traffic_changes_need_a_live_endpoint(aws, env, capsys):
    assert main(["-e", "qc-none", "--set-weights", "a=1"], env) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--set-weights", "a=1,a=2"], "given more than once"),
    (["--set-weights", "a=0,b=0"], "every weight is 0"),
    (["--set-weights", "a=-1"], "weights are 0 or more"),
    (["--set-weights", "a=nan"], "weights are 0 or more"),
    (["--set-weights", "a_b=1"], "is not a variant name"),
    (["--add-variant", "challenger"], "--add-variant needs --weight"),
    (["--add-variant", "challenger", "--weight", "-1"], "weights are 0 or more"),
    (["--weight", "5"], "--weight needs --add-variant"),
    (["--promote", "a", "--remove-variant", "b"], "exclude each other"),
    (["--promote", "a", "--weight", "1"], "--weight goes with --add-variant"),
    (["--add-variant", "c", "--weight", "1", "--deployment-strategy", "canary",
      "--instance-count", "2"], "deployment guardrails"),
    (["--promote", "c", "--rollback-alarm", "qc-5xx"], "deployment guardrails"),
    (["--set-weights", "a=1", "--smoke-test-data", "sample-data.json"], "no new model"),
    (["--add-variant", "c", "--weight", "1", "--serverless-memory", "1024"],
     "serves one variant, not 2"),
])
def test_bad_variant_input_is_refused_before_any_aws_call(aws, env, capsys, argv, says):
    arn = register_package(aws.sagemaker)
    before = sum(aws.calls.values())
    code = main(["-a", arn, "-e", "qc-prod", *argv], env)
    assert code == 2
    assert says in capsys.readouterr().err
    assert sum(aws.calls.values()) == before


def test_set_weights_from_the_environment_and_without_a_package(aws, env, ab, capsys):
    code = main(["-e", "qc-prod"], {**env, "SET_WEIGHTS": "AllTraffic=3,challenger=1"})
    assert code == 0, capsys.readouterr().err
    assert weights(aws) == {"AllTraffic": 3.0, "challenger": 1.0}


def test_keep_releases_1_removes_what_the_promotion_superseded(aws, env, ab, capsys):
    assert main(["-e", "qc-prod", "--promote", "challenger", "--keep-releases", "1"], env) == 0
    [variant] = live_config(aws.sagemaker)["ProductionVariants"]
    state = resources(aws.sagemaker)
    assert (len(state["configs"]), state["models"]) == (1, [variant["ModelName"]])


def test_release_tags_name_the_promoted_package(aws, env, ab, capsys):
    _, v2, _ = ab
    assert main(["-e", "qc-prod", "--promote", "challenger"], env) == 0
    config = live_config(aws.sagemaker)
    tags = tags_of(aws.sagemaker, config["EndpointConfigArn"])
    assert tags["ModelPackageArn"] == v2 and tags["DeployRelease"] == "3"


def test_ctrl_c_during_a_weight_change_says_how_to_follow_and_set_them_back(aws, env, ab, capsys,
                                                                           monkeypatch):
    import modules.deploy_variants as variants

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(variants, "wait_for_endpoint", interrupted)
    code = main(["-e", "qc-prod", "--set-weights", "challenger=50"], env)
    err = capsys.readouterr().err
    assert code == 130
    assert "aws sagemaker update-endpoint-weights-and-capacities --endpoint-name qc-prod" in err
    assert "VariantName=challenger,DesiredWeight=10" in err
