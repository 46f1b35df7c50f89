"""test_endpoint.py --target-variant: InvokeEndpoint's TargetVariant, and which variant answered
(InvokedProductionVariant), against moto with the double playing SageMaker's variant routing."""

from __future__ import annotations

import json

import pytest

import test_endpoint
from tests.deploy_support import VALID_ANSWER

ROWS = [[2.5, 180.0, 101.3, 0.2], [2.3, 190.0, 104.0, 0.35]]
DATA = json.dumps({"data": ROWS})


@pytest.fixture
def env(tmp_path, account_env):
    return {**account_env, "DEPLOY_MODEL_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1"}


def two_variant_endpoint(sagemaker, name="qc-ab", weights=(1.0, 0.0)):
    """champion and challenger, each on its own model (weights as given; 0 is allowed)."""
    variants = []
    for variant, weight in zip(("champion", "challenger"), weights, strict=True):
        sagemaker.create_model(ModelName=f"{name}-{variant}",
                               ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                               PrimaryContainer={"Image": "i"})
        variants.append({"VariantName": variant, "ModelName": f"{name}-{variant}",
                         "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
                         "InitialVariantWeight": weight})
    sagemaker.create_endpoint_config(EndpointConfigName=f"{name}-config",
                                     ProductionVariants=variants)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


def _run(capsys, env, *argv):
    code = test_endpoint.main(list(argv), env)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_target_variant_reaches_a_variant_of_weight_zero_and_says_who_answered(aws, env, capsys):
    two_variant_endpoint(aws.sagemaker)
    aws.answer_invocations_with(json.dumps(VALID_ANSWER))
    code, out, err = _run(capsys, env, "-e", "qc-ab", "-d", DATA, "--target-variant",
                          "challenger", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["target_variant"] == "challenger"
    assert document["invoked_variant"] == "challenger"
    assert "Answered by variant challenger" in err


def test_without_a_target_the_weights_choose_and_the_output_names_the_variant(aws, env, capsys):
    two_variant_endpoint(aws.sagemaker)  # challenger at weight 0: every request goes to champion
    aws.answer_invocations_with(json.dumps(VALID_ANSWER))
    code, out, err = _run(capsys, env, "-e", "qc-ab", "-d", DATA)
    assert code == 0, err
    assert "Answered by variant champion" in out, out


def test_target_variant_from_the_environment(aws, env, capsys):
    two_variant_endpoint(aws.sagemaker)
    aws.answer_invocations_with(json.dumps(VALID_ANSWER))
    code, out, _ = _run(capsys, {**env, "TARGET_VARIANT": "champion"}, "-e", "qc-ab", "-d", DATA,
                        "--json")
    assert code == 0 and json.loads(out)["invoked_variant"] == "champion"


def test_an_unknown_target_variant_lists_the_endpoints_variants(aws, env, capsys):
    two_variant_endpoint(aws.sagemaker)
    code, _, err = _run(capsys, env, "-e", "qc-ab", "-d", DATA, "--target-variant", "shadow")
    assert code == 3
    assert "Endpoint qc-ab has no variant shadow" in err
    assert "Its variants: champion, challenger" in err


@pytest.mark.parametrize("name", ["bad_name", "-x", "a" * 64, ""])
def test_an_invalid_variant_name_is_refused_before_any_call(aws, env, capsys, name):
    two_variant_endpoint(aws.sagemaker)
    before = aws.calls["InvokeEndpoint"]
    code, _, err = _run(capsys, env, "-e", "qc-ab", "-d", DATA, f"--target-variant={name}")
    assert code == 2 and "Invalid --target-variant" in err
    assert aws.calls["InvokeEndpoint"] == before


def test_a_local_endpoint_has_no_variants(tmp_path):
    from modules import invoke_endpoint
    from utils.errors import ValidationError

    test = invoke_endpoint.EndpointTest("qc-local", DATA, "json", "ca-central-1", None,
                                        tmp_path, target_variant="challenger")
    with pytest.raises(ValidationError, match="a local endpoint, which serves one model"):
        invoke_endpoint._refuse_target_variant_locally(test)
