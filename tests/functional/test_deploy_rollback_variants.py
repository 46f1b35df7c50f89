"""--rollback across a change of variants: back from an A/B test or a shadow test to the
single-variant release before it (and forward again). moto plays SageMaker and Application Auto
Scaling; the double plays UpdateEndpoint with SageMaker's rules (guardrails need the variant names
kept; a scaled variant cannot be removed)."""

from __future__ import annotations

import pytest

from tests.deploy_support import (
    client,
    deploy_script,
    emulated_sagemaker,
    one_json_document,
    register_package,
)
from tests.sagemaker_double import resources


@pytest.fixture
def aws(monkeypatch):
    with emulated_sagemaker(monkeypatch) as double:
        double.autoscaling = client("application-autoscaling")
        yield double


@pytest.fixture
def env(account_env):
    return {**account_env, "NO_COLOR": "1", "DEPLOY_POLL_INTERVAL": "0.01"}


def run(env, capsys, *argv):
    code = deploy_script().main(list(argv), env)
    captured = capsys.readouterr()
    return code, captured


def deploy(env, capsys, *argv):
    code, captured = run(env, capsys, *argv)
    assert code == 0, captured.err
    return captured.out


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
