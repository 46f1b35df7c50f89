"""--autoscale: validated before AWS, registered once InService, kept right across updates (the
double refuses what SageMaker refuses for a scaled variant), restored when an update fails."""

from __future__ import annotations

import pytest

from modules.deploy_releases import list_releases
from modules.deploy_scaling import Scaling, scaling_of
from modules.scaling_settings import Autoscale
from tests.deploy_support import (
    EMPTY,
    live_config,
    main,
    one_json_document,
    register_package,
)
from tests.sagemaker_double import resources

RID = "endpoint/qc-prod/variant/AllTraffic"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


pytestmark = pytest.mark.usefixtures("with_autoscaling")  # aws.autoscaling in every test


def target(aws, rid=RID):
    targets = aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[rid])["ScalableTargets"]
    return {(t["MinCapacity"], t["MaxCapacity"]) for t in targets}


def policies(aws, rid=RID):
    found = aws.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker",
                                                      ResourceId=rid)["ScalingPolicies"]
    return {p["PolicyName"]: p["TargetTrackingScalingPolicyConfiguration"] for p in found
            if p["ResourceId"] == rid}


def instance_type(aws, endpoint="qc-prod"):
    return live_config(aws.sagemaker, endpoint)["ProductionVariants"][0].get("InstanceType")


@pytest.fixture
def scaled(aws, env, capsys):
    """qc-prod on 2 x ml.c5.2xlarge, autoscaled 2-6, which the autoscaler has moved to 4."""
    arn = register_package(aws.sagemaker)
    code = main(["-a", arn, "-e", "qc-prod", "--instance-count", "2", "--autoscale", "2-6"], env)
    assert code == 0, capsys.readouterr().err
    aws.scale_variant("qc-prod", "AllTraffic", 4)
    capsys.readouterr()
    return arn


def test_create_registers_the_target_and_a_target_tracking_policy(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    code = main(["-a", arn, "-e", "qc-prod", "--instance-count", "2", "--autoscale", "1-4",
                 "--target-invocations", "500", "--scale-in-cooldown", "600",
                 "--scale-out-cooldown", "60", "--json"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert target(aws) == {(1, 4)}
    assert policies(aws) == {"deploy-model-invocations-per-instance": {
        "TargetValue": 500.0, "ScaleInCooldown": 600, "ScaleOutCooldown": 60,
        "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}}
    document = one_json_document(captured.out)
    assert document["autoscaling"]["after"] == {
        "min_capacity": 1, "max_capacity": 4,
        "policies": ["deploy-model-invocations-per-instance"]}


def test_autoscale_comes_from_the_environment_with_the_default_target(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    code = main(["-a", arn, "-e", "qc-prod"], {**env, "AUTOSCALE": "1-3"})
    assert code == 0, capsys.readouterr().err
    assert target(aws) == {(1, 3)}
    [config] = policies(aws).values()
    assert config["TargetValue"] == 1000.0
    assert "ScaleInCooldown" not in config  # Application Auto Scaling's own default


@pytest.mark.parametrize("argv, env_extra, says", [
    (["--autoscale", "0-3"], {}, "it needs 1 <= MIN <= MAX"),
    (["--autoscale", "4-2"], {}, "it needs 1 <= MIN <= MAX"),
    (["--autoscale", "2-6"], {}, "--instance-count 1 must lie between MIN and MAX"),
    (["--autoscale", "1-2", "--instance-count", "3"], {}, "--instance-count 3 must lie"),
    (["--target-invocations", "50"], {}, "--target-invocations needs --autoscale"),
    ([], {"SCALE_IN_COOLDOWN": "60"},
     "environment variable SCALE_IN_COOLDOWN needs --autoscale"),
    (["--autoscale", "1-2", "--no-monitor"], {}, "--autoscale needs monitoring"),
    (["--autoscale", "1-2", "--scale-out-cooldown", "90000"], {}, "--scale-out-cooldown"),
])
def test_bad_autoscale_input_is_refused_before_any_aws_call(aws, env, capsys, argv, env_extra,
                                                            says):
    arn = register_package(aws.sagemaker)
    before = sum(aws.calls.values())
    assert main(["-a", arn, "-e", "qc-prod", *argv], {**env, **env_extra}) == 2
    assert says in capsys.readouterr().err
    assert sum(aws.calls.values()) == before
    assert resources(aws.sagemaker) == EMPTY and target(aws) == set()


@pytest.mark.parametrize("raw", ["2", "a-b", "2-", "2..4", "2-4-6", "²-4"])
def test_a_range_that_is_not_min_max_is_a_usage_error(aws, env, capsys, raw):
    with pytest.raises(SystemExit) as exited:
        main(["-a", "arn:aws:sagemaker:ca-central-1:123456789012:model-package/g/1",
              "--autoscale", raw], env)
    assert exited.value.code == 2
    assert "expected MIN-MAX" in capsys.readouterr().err


def test_the_double_refuses_an_instance_type_change_of_a_scaled_variant(aws, env, scaled):
    """What moto accepts and SageMaker refuses: the double plays SageMaker's rule."""
    from botocore.exceptions import ClientError

    config = aws.sagemaker.describe_endpoint(EndpointName="qc-prod")["EndpointConfigName"]
    model = aws.sagemaker.describe_endpoint_config(
        EndpointConfigName=config)["ProductionVariants"][0]["ModelName"]
    aws.sagemaker.create_endpoint_config(EndpointConfigName="retyped", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 2}])
    with pytest.raises(ClientError, match="must be deregistered as scalable targets"):
        aws.sagemaker.update_endpoint(EndpointName="qc-prod", EndpointConfigName="retyped")


def test_an_update_of_the_same_type_keeps_the_autoscaled_count(aws, env, scaled, capsys):
    code = main(["-a", scaled, "-e", "qc-prod", "--instance-count", "2"], env)
    assert code == 0, capsys.readouterr().err
    [request] = aws.update_requests
    assert request["RetainAllVariantProperties"] is True
    assert {e["VariantPropertyType"] for e in request["ExcludeRetainedVariantProperties"]} == {
        "DesiredWeight", "DataCaptureConfig"}
    assert aws.instance_count_of("qc-prod") == 4  # not reset to the config's 2
    assert target(aws) == {(2, 6)} and len(policies(aws)) == 1


def test_an_update_with_new_bounds_re_registers_them(aws, env, scaled, capsys):
    code = main(["-a", scaled, "-e", "qc-prod", "--instance-count", "2", "--autoscale", "2-8",
                 "--target-invocations", "700"], env)
    assert code == 0, capsys.readouterr().err
    assert target(aws) == {(2, 8)}
    assert [c["TargetValue"] for c in policies(aws).values()] == [700.0]


def test_an_instance_type_change_deregisters_updates_and_re_registers(aws, env, scaled, capsys):
    order = []
    aws.on_call("UpdateEndpoint", lambda backend: order.append(("update", target(aws))))
    code = main(["-a", scaled, "-e", "qc-prod", "-t", "ml.m5.large", "--instance-count", "2"],
                env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert order == [("update", set())]  # deregistered before the update was sent
    assert instance_type(aws) == "ml.m5.large"
    assert target(aws) == {(2, 6)} and len(policies(aws)) == 1  # the same scaling, back
    assert aws.update_requests[0]["RetainAllVariantProperties"] is None


def test_going_serverless_deregisters_the_scaling_for_good(aws, env, scaled, capsys):
    code = main(["-a", scaled, "-e", "qc-prod", "--serverless-memory", "2048"], env)
    assert code == 0, capsys.readouterr().err
    assert instance_type(aws) is None
    assert target(aws) == set() and policies(aws) == {}


def test_a_failed_update_restores_the_previous_scaling(aws, env, scaled, capsys):
    before = policies(aws)
    aws.update_takes(2, outcome="RolledBack", failure_reason="the new model did not load")
    code = main(["-a", scaled, "-e", "qc-prod", "-t", "ml.m5.large", "--instance-count", "2",
                 "--autoscale", "2-8"], env)
    captured = capsys.readouterr()
    assert code == 4
    assert instance_type(aws) == "ml.c5.2xlarge"  # SageMaker kept the old config
    assert target(aws) == {(2, 6)} and policies(aws) == before  # not 2-8: the previous one
    assert "Restored the autoscaling of AllTraffic (2-6 instances" in captured.err


def test_an_update_refused_after_deregistering_restores_the_scaling(aws, env, scaled, capsys):
    def status(value):
        def set_status(backend):
            backend.endpoints["qc-prod"].endpoint_status = value
        return set_status

    # Something else started an update just before ours: SageMaker refuses ours.
    aws.on_call("UpdateEndpoint", status("Updating"))
    aws.on_call("UpdateEndpoint", status("InService"), after=True)
    code = main(["-a", scaled, "-e", "qc-prod", "-t", "ml.m5.large", "--instance-count", "2"],
                env)
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "Cannot update in-progress endpoint" in captured.err
    assert "Restored the autoscaling of AllTraffic" in captured.err
    assert target(aws) == {(2, 6)} and len(policies(aws)) == 1


def test_dry_run_shows_the_scaling_steps_and_changes_nothing(aws, env, scaled, capsys):
    code = main(["-a", scaled, "-e", "qc-prod", "-t", "ml.m5.large", "--instance-count", "2",
                 "--dry-run", "--json"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "deregister the autoscaling of AllTraffic (2-6 instances" in captured.err
    assert "once InService, re-register autoscaling of AllTraffic" in captured.err
    steps = one_json_document(captured.out)["autoscaling"]["steps"]
    assert steps[-1] == "if the update fails, the previous autoscaling is registered again"
    assert target(aws) == {(2, 6)} and aws.update_requests == []


def test_autoscale_on_an_update_of_an_unscaled_endpoint_registers_it(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-prod"], env) == 0
    assert main(["-a", arn, "-e", "qc-prod", "--autoscale", "1-3"], env) == 0
    assert target(aws) == {(1, 3)}
    assert aws.update_requests[0]["RetainAllVariantProperties"] is None


def test_a_scaling_that_cannot_be_registered_is_exit_3_with_the_commands(aws, env, capsys,
                                                                          monkeypatch):
    from moto.applicationautoscaling import models
    from moto.applicationautoscaling.exceptions import AWSValidationException

    def refuse(*args, **kwargs):
        raise AWSValidationException("Not authorized to register scalable targets")

    monkeypatch.setattr(models.ApplicationAutoscalingBackend, "register_scalable_target", refuse)
    arn = register_package(aws.sagemaker)
    code = main(["-a", arn, "-e", "qc-prod", "--autoscale", "1-3"], env)
    captured = capsys.readouterr()
    assert code == 3
    assert "is InService on" in captured.err
    assert "aws application-autoscaling register-scalable-target" in captured.err
    assert resources(aws.sagemaker)["endpoints"] == ["qc-prod"]  # it serves; it is kept


def test_delete_endpoint_deregisters_the_scaling_before_the_endpoint_goes(aws, env, scaled,
                                                                          capsys):
    from tests.conftest import load_script

    delete = load_script("utils/delete_endpoint.py")
    assert delete.main(["-e", "qc-prod", "--dry-run", "--json"], env) == 0
    planned = one_json_document(capsys.readouterr().out)["would_remove"]
    assert planned[0] == f"scalable target {RID}"
    assert target(aws) == {(2, 6)}  # the dry run changed nothing
    order = []
    aws.on_call("DeleteEndpoint", lambda backend: order.append(target(aws)))
    assert delete.main(["-e", "qc-prod", "--json"], env) == 0
    removed = one_json_document(capsys.readouterr().out)["removed"]
    assert removed[0] == f"scalable target {RID}" and removed[1] == "endpoint qc-prod"
    assert order == [set()]  # deregistered before DeleteEndpoint
    assert target(aws) == set() and policies(aws) == {}
    assert resources(aws.sagemaker) == EMPTY


def test_ctrl_c_while_registering_keeps_the_endpoint_and_says_how_to_finish(aws, env, capsys,
                                                                            monkeypatch):
    from moto.applicationautoscaling import models

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(models.ApplicationAutoscalingBackend, "put_scaling_policy", interrupted)
    arn = register_package(aws.sagemaker)
    code = main(["-a", arn, "-e", "qc-prod", "--autoscale", "1-3", "--json"], env)
    captured = capsys.readouterr()
    assert code == 130
    document = one_json_document(captured.out)
    assert document["status"] == "InService"
    assert "may be only partly registered" in captured.err
    assert "aws application-autoscaling put-scaling-policy" in captured.err
    assert resources(aws.sagemaker)["endpoints"] == ["qc-prod"]
    assert [r.number for r in list_releases(aws.sagemaker, "qc-prod")] == [1]  # it stands


def _deny_reading_scaling(monkeypatch):
    from moto.applicationautoscaling import models
    from moto.core.exceptions import JsonRESTError

    def denied(*args, **kwargs):
        raise JsonRESTError("AccessDeniedException", "not authorized to DescribeScalableTargets")

    monkeypatch.setattr(models.ApplicationAutoscalingBackend, "describe_scalable_targets", denied)


def test_an_update_without_permission_to_read_scaling_goes_on_when_none_is_asked(
        aws, env, capsys, monkeypatch):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-prod"], env) == 0
    _deny_reading_scaling(monkeypatch)
    code = main(["-a", arn, "-e", "qc-prod"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Could not read the autoscaling of AllTraffic" in captured.err
    assert main(["-a", arn, "-e", "qc-prod", "--autoscale", "1-2"], env) == 3
    assert "not authorized to DescribeScalableTargets" in capsys.readouterr().err


def test_a_failed_smoke_test_points_back_keeping_the_autoscaled_count(aws, env, scaled, capsys,
                                                                      tmp_path):
    import json

    smoke = tmp_path / "smoke.json"
    smoke.write_text(json.dumps({"data": [[1.0, 2.0]]}))
    aws.answer_invocations_with(json.dumps({"predictions": ["qc_pass"]}))  # breaks the contract
    old_config = aws.sagemaker.describe_endpoint(EndpointName="qc-prod")["EndpointConfigName"]
    code = main(["-a", scaled, "-e", "qc-prod", "--instance-count", "2", "--smoke-test-data",
                 str(smoke)], env)
    assert code == 4, capsys.readouterr().err
    back = aws.update_requests[-1]
    assert back["EndpointConfigName"] == old_config and back["RetainAllVariantProperties"]
    assert aws.instance_count_of("qc-prod") == 4
    assert target(aws) == {(2, 6)}


class _Killed(BaseException):
    """The process dies (kill -9): nothing of the run's own handling runs any more."""


def test_a_run_killed_while_the_scaling_is_deregistered_does_not_lose_it(aws, env, scaled,
                                                                        capsys):
    def killed(backend):
        raise _Killed

    aws.on_call("UpdateEndpoint", killed)
    with pytest.raises(_Killed):
        main(["-a", scaled, "-e", "qc-prod", "-t", "ml.m5.large", "--instance-count", "2"], env)
    assert target(aws) == set()  # deregistered, and the run is gone
    arn = aws.sagemaker.describe_endpoint(EndpointName="qc-prod")["EndpointArn"]
    record = {t["Key"]: t["Value"] for t in aws.sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert record["DeployScaling-AllTraffic"] == "min=2 max=6 target=1000"
    capsys.readouterr()

    assert main(["-a", scaled, "-e", "qc-prod", "--instance-count", "2", "--dry-run"], env) == 0
    shown = capsys.readouterr()
    assert "was deregistered by an interrupted run" in shown.out + shown.err
    assert main(["-a", scaled, "-e", "qc-prod", "--instance-count", "2"], env) == 0
    assert target(aws) == {(2, 6)}
    assert [c["TargetValue"] for c in policies(aws).values()] == [1000.0]
    tags = {t["Key"] for t in aws.sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert "DeployScaling-AllTraffic" not in tags  # registered again: the record is gone


def test_the_scaling_record_round_trips_and_counts_what_it_cannot_hold():
    from modules.deploy_scaling import pending_tag, scaling_from_tag

    own = scaling_of(Autoscale(3, 9, 250, 120, 30))
    tag = pending_tag("AllTraffic", own)
    assert tag == {"Key": "DeployScaling-AllTraffic",
                   "Value": "min=3 max=9 target=250 in=120 out=30"}
    assert scaling_from_tag(tag["Value"]) == own
    foreign = Scaling(1, 2, ({"PolicyName": "theirs", "PolicyType": "StepScaling"},))
    assert pending_tag("AllTraffic", foreign)["Value"] == "min=1 max=2 others=1"
    assert scaling_from_tag("min=1 max=2 others=1") == Scaling(1, 2)
    assert scaling_from_tag("garbage") is None


@pytest.fixture
def scaled_ab(aws, env, scaled, capsys):
    """qc-prod: AllTraffic (2-6, at 4) plus a challenger variant, itself scaled 1-3."""
    v2 = register_package(aws.sagemaker)
    code = main(["-a", v2, "-e", "qc-prod", "--add-variant", "challenger", "--weight", "10"],
                env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    challenger = "endpoint/qc-prod/variant/challenger"
    aws.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=challenger,
                                             ScalableDimension=DIMENSION, MinCapacity=1,
                                             MaxCapacity=3)
    return challenger


def test_removing_a_scaled_variant_deregisters_it_first_and_keeps_the_others(aws, env,
                                                                             scaled_ab, capsys):
    order = []
    aws.on_call("UpdateEndpoint", lambda backend: order.append(target(aws, scaled_ab)))
    code = main(["-e", "qc-prod", "--remove-variant", "challenger", "--json"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert order == [set()]  # the double refuses the removal while it is scaled
    assert target(aws, scaled_ab) == set()
    assert target(aws) == {(2, 6)}  # AllTraffic's scaling is untouched
    assert one_json_document(captured.out)["autoscaling"]["dropped"] == {
        "challenger": {"min_capacity": 1, "max_capacity": 3, "policies": []}}


def test_a_failed_removal_registers_the_removed_variants_scaling_again(aws, env, scaled_ab,
                                                                      capsys):
    aws.update_takes(1, outcome="RolledBack", failure_reason="capacity")
    code = main(["-e", "qc-prod", "--promote", "challenger"], env)  # removes AllTraffic
    captured = capsys.readouterr()
    assert code == 4, captured.err
    assert target(aws) == {(2, 6)} and len(policies(aws)) == 1
    assert "Restored the autoscaling of AllTraffic" in captured.out + captured.err
    assert target(aws, scaled_ab) == {(1, 3)}  # the promoted one was never touched


def test_autoscale_with_a_variant_change_is_refused_before_any_aws_call(aws, env, capsys):
    code = main(["-e", "qc-prod", "--remove-variant", "b", "--autoscale", "1-2"], env)
    assert code == 2
    assert "not a --remove-variant change" in capsys.readouterr().err
