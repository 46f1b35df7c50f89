"""Input-data hints name the model's feature count (registered by package-model.py as the
package's `feature_count` metadata): a smoke test of the wrong width is refused before anything
is created, and test_endpoint.py says how many features the model takes when rows are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.stub import Stubber

import test_endpoint
from modules import invoke_endpoint
from modules.deploy_package import registered_feature_count
from tests.deploy_support import (
    EMPTY,
    deploy_script,
    one_json_document,
    register_package,
)
from tests.functional.test_test_endpoint import StandIn
from tests.sagemaker_double import resources
from utils import local_endpoints
from utils.errors import AwsError

ROWS_OF_3 = [[1.0, 2.0, 3.0]]


@pytest.mark.parametrize("raw, expected", [
    ("4", 4), (" 12 ", 12), ("0", None), ("-3", None), ("four", None), ("", None),
    ("\u0664", None), ("9" * 400, None)])
def test_only_a_sound_registered_count_is_believed(raw, expected):
    assert registered_feature_count({"feature_count": raw}) == expected


def test_a_package_without_the_metadata_has_no_count():
    assert registered_feature_count({}) is None


# --- deploy: the smoke test is checked against the package before anything is created ----------


def test_a_smoke_test_of_the_wrong_width_is_refused_before_anything_is_created(
        aws, deploy_env, capsys, tmp_path):
    arn = register_package(aws.sagemaker, feature_count=4)
    smoke = tmp_path / "smoke.json"
    smoke.write_text(json.dumps({"data": ROWS_OF_3}))
    code = deploy_script().main(["-a", arn, "-e", "qc-smoke", "--smoke-test-data", str(smoke),
                                 "--json"], deploy_env)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    doc = one_json_document(captured.out)
    assert "rows of 3 features" in doc["error"] and "takes 4" in doc["error"]
    assert any('takes 4 features per row, e.g. {"data": [[0.0, 0.0, 0.0, 0.0]]}' in hint
               for hint in doc["hints"])
    assert resources(aws.sagemaker) == EMPTY


def test_a_smoke_test_of_the_right_width_is_not_refused(aws, deploy_env, capsys, tmp_path):
    from tests.deploy_support import VALID_ANSWER

    arn = register_package(aws.sagemaker, labels="qc_pass,qc_fail", feature_count=2)
    smoke = tmp_path / "smoke.json"
    smoke.write_text(json.dumps({"data": [[1.0, 2.0], [3.0, 4.0]]}))
    aws.answer_invocations_with(json.dumps(VALID_ANSWER))
    assert deploy_script().main(["-a", arn, "-e", "qc-smoke", "--smoke-test-data", str(smoke)],
                                deploy_env) == 0


# --- test_endpoint.py on a local endpoint: the count is in its record ----------------------------


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"DEPLOY_MODEL_STATE_DIR": str(tmp_path / "state"), "AWS_REGION": "ca-central-1",
            "NO_COLOR": "1"}


@pytest.fixture
def stand_in(tmp_path, env):
    server = StandIn(tmp_path / "stand-in", Path(env["DEPLOY_MODEL_STATE_DIR"]), "qc-local")
    record = local_endpoints.read_record(server.directory)
    local_endpoints.write_record(server.directory, {**record, "feature_count": 4})
    yield server
    server.stop()


def _run(capsys, env, *argv: str) -> tuple[int, str, str]:
    code = test_endpoint.main(list(argv), env)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_malformed_input_hint_shows_the_local_models_feature_count(capsys, env, stand_in):
    code, _, err = _run(capsys, env, "-e", "qc-local", "-d", '{"data": [[1, 2], [1]]}')
    assert code == 2
    assert ('Local endpoint qc-local: The model takes 4 features per row, '
            'e.g. {"data": [[0.0, 0.0, 0.0, 0.0]]}') in err


def test_rows_of_the_wrong_width_are_sent_with_a_warning_and_the_refusal_names_the_count(
        capsys, env, stand_in):
    stand_in.answer(400, json.dumps({"error": "Each row must have 4 features"}))
    code, _, err = _run(capsys, env, "-e", "qc-local", "-d", json.dumps({"data": ROWS_OF_3}))
    assert code == 3
    assert "The model takes 4 features per row; these rows have 3" in err
    assert "These rows have 3 features. The model takes 4 features per row" in err
    assert stand_in.last_request()  # sent anyway: the endpoint's own refusal is what is tested


def test_a_record_without_a_count_adds_no_feature_hint(capsys, env, tmp_path):
    server = StandIn(tmp_path / "plain", Path(env["DEPLOY_MODEL_STATE_DIR"]), "qc-plain")
    try:
        server.answer(400, json.dumps({"error": "bad rows"}))
        code, _, err = _run(capsys, env, "-e", "qc-plain", "-d", json.dumps({"data": ROWS_OF_3}))
    finally:
        server.stop()
    assert code == 3 and "features per row" not in err


# --- test_endpoint.py on SageMaker: the count is looked up only when the container refuses -------


def _container_refusal(status: int):
    import boto3

    client = boto3.client("sagemaker-runtime", region_name="ca-central-1")
    stubber = Stubber(client)
    stubber.add_client_error(
        "invoke_endpoint", service_error_code="ModelError", http_status_code=424,
        service_message=f"Received client error ({status}) from primary",
        modeled_fields={"OriginalStatusCode": status, "OriginalMessage": "bad input"})
    return client, stubber


@pytest.mark.parametrize("status", [400, 500], ids=["our-image-4xx", "prebuilt-image-500"])
def test_a_container_refusal_names_the_endpoints_feature_count(status):
    client, stubber = _container_refusal(status)
    asked = []
    request = invoke_endpoint.build_request({"data": ROWS_OF_3}, "test", "json")
    with stubber, pytest.raises(AwsError) as caught:
        invoke_endpoint.invoke_sagemaker(client, "qc", request, region="ca-central-1",
                                         local_names=[], feature_count=lambda: asked.append(1) or 4)
    assert asked == [1]
    assert any("These rows have 3 features. The model takes 4" in hint
               for hint in caught.value.hints)


def test_the_count_of_a_deployed_endpoint_is_read_through_its_config_model_and_package(aws):
    arn = register_package(aws.sagemaker, feature_count=4)
    sagemaker = aws.sagemaker
    sagemaker.create_model(ModelName="qc-m", ExecutionRoleArn=(
        "arn:aws:iam::123456789012:role/SageMakerRole"), Containers=[{"ModelPackageName": arn}])
    sagemaker.create_endpoint_config(EndpointConfigName="qc-c", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "qc-m", "InstanceType": "ml.c5.xlarge",
        "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName="qc", EndpointConfigName="qc-c")
    assert invoke_endpoint.endpoint_feature_count(sagemaker, "qc") == 4
    assert invoke_endpoint.endpoint_feature_count(sagemaker, "no-such-endpoint") is None
