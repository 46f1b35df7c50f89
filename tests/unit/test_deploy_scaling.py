"""The scaling decisions of a deploy (modules/deploy_scaling.py: plan_scaling), no AWS."""

from __future__ import annotations

import pytest

from modules.deploy_scaling import POLICY_NAME, Scaling, plan_scaling, policy_of, scaling_of
from modules.scaling_settings import Autoscale, parse_range

CURRENT = Scaling(2, 6, (policy_of(Autoscale(2, 6)),))


def plan(current, autoscale=None, old="ml.c5.xlarge", new="ml.c5.xlarge", serverless=False):
    return plan_scaling(current, autoscale, variant_name="AllTraffic", old_instance_type=old,
                        new_instance_type=new, new_serverless=serverless)


def test_nothing_scaled_and_nothing_asked_plans_nothing():
    assert plan(None) is None


def test_a_create_with_autoscale_registers_after_and_deregisters_nothing():
    decided = plan(None, Autoscale(1, 4, 500))
    assert (decided.current, decided.after, decided.deregister_first) == (
        None, scaling_of(Autoscale(1, 4, 500)), False)
    assert decided.update_options() == {}
    assert decided.steps() == ["once InService, register autoscaling of AllTraffic: 1-4 "
                               "instances, target 500 invocations per instance per minute, "
                               "target tracking on SageMakerVariantInvocationsPerInstance"]


def test_same_type_retains_the_count_and_keeps_the_scaling_it_has():
    decided = plan(CURRENT)
    assert decided.retain_instance_count and not decided.deregister_first
    assert decided.after == CURRENT and not decided.changes_anything
    assert decided.update_options() == {
        "RetainAllVariantProperties": True,
        "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DesiredWeight"},
                                             {"VariantPropertyType": "DataCaptureConfig"}]}


def test_same_type_with_new_bounds_registers_them_after():
    decided = plan(CURRENT, Autoscale(2, 9))
    assert decided.retain_instance_count and decided.changes_anything
    assert decided.after == scaling_of(Autoscale(2, 9))


@pytest.mark.parametrize("old", ["ml.m5.large", None])  # None: the previous config is gone
def test_another_type_deregisters_first_and_registers_the_same_scaling_again(old):
    decided = plan(CURRENT, old=old)
    assert decided.deregister_first and not decided.retain_instance_count
    assert decided.after == CURRENT
    assert "SageMaker refuses to change the instance type" in decided.reason
    assert decided.steps()[-1] == ("if the update fails, the previous autoscaling is "
                                   "registered again")


def test_serverless_deregisters_for_good():
    decided = plan(CURRENT, new=None, serverless=True)
    assert decided.deregister_first and decided.after is None
    assert any("no longer autoscaled" in step for step in decided.steps())


def test_the_policy_is_target_tracking_on_invocations_per_instance():
    policy = policy_of(Autoscale(1, 2, 750, scale_in_cooldown=0, scale_out_cooldown=30))
    assert policy == {"PolicyName": POLICY_NAME, "PolicyType": "TargetTrackingScaling",
                      "TargetTrackingScalingPolicyConfiguration": {
                          "TargetValue": 750.0, "ScaleInCooldown": 0, "ScaleOutCooldown": 30,
                          "PredefinedMetricSpecification": {
                              "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}}


def test_the_enums_used_are_botocores():
    import botocore.session

    session = botocore.session.get_session()
    scaling = session.get_service_model("application-autoscaling")
    assert "sagemaker:variant:DesiredInstanceCount" in scaling.shape_for("ScalableDimension").enum
    assert "SageMakerVariantInvocationsPerInstance" in scaling.shape_for("MetricType").enum
    sagemaker = session.get_service_model("sagemaker")
    assert {"DesiredWeight", "DataCaptureConfig"} < set(
        sagemaker.shape_for("VariantPropertyType").enum)


@pytest.mark.parametrize("raw, expected", [("1-4", (1, 4)), (" 2 - 6 ", (2, 6)),
                                           ("3-1", (3, 1))])  # the order is checked later
def test_parse_range(raw, expected):
    assert parse_range(raw) == expected
