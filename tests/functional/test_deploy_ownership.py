"""Proven ownership: a deploy deletes only what carries its own run id, read back from AWS.

The double plays what a real day brings: a rival deploy creating the same endpoint name, a create
whose answer is lost (botocore's retry then meets "already existing"), throttled creates, and a
second Ctrl-C while a rollback waits for an endpoint to go.
"""

from __future__ import annotations

import shlex

import pytest

from tests.conftest import ACCOUNT
from tests.deploy_support import (
    FakeClock,
    deploy,
    one_json_document,
    register_package,
    tags_of,
)
from tests.sagemaker_double import resources

RIVAL = [{"Key": "DeployRunId", "Value": "rival-run"}, {"Key": "ManagedBy", "Value": "deploy-model"}]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecutionRole"


@pytest.fixture
def aws(aws):
    """The shared double, with one Approved package registered: `aws.arn`."""
    aws.arn = register_package(aws.sagemaker)
    return aws


@pytest.fixture
def env(account_env):
    return {**account_env, "NO_COLOR": "1"}


def rival_config(aws) -> str:
    """Another deploy's model and config (its own run id), ready to back a rival endpoint."""
    aws.sagemaker.create_model(ModelName="rival-model", ExecutionRoleArn=ROLE,
                               Containers=[{"ModelPackageName": aws.arn}], Tags=RIVAL)
    aws.sagemaker.create_endpoint_config(
        EndpointConfigName="rival-config", Tags=RIVAL, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "rival-model", "InitialInstanceCount": 1,
            "InstanceType": "ml.c5.xlarge"}])
    return "rival-config"


def rival_creates(name: str, config: str):
    def create(backend) -> None:
        backend.create_endpoint(endpoint_name=name, endpoint_config_name=config, tags=RIVAL)
    return create


def ctrl_c(backend) -> None:
    raise KeyboardInterrupt


def test_race_loser_interrupted_while_its_create_is_retried_leaves_the_winner_alone(aws, env,
                                                                                     capsys):
    config = rival_config(aws)
    aws.on_call("CreateEndpoint", rival_creates("qc-race", config))  # the winner, meanwhile
    aws.throttle_create(1)  # our first CreateEndpoint is throttled: botocore retries it...
    aws.on_call("CreateEndpoint", ctrl_c)  # ...and the user presses Ctrl-C during the retry
    assert deploy(aws, env, "-e", "qc-race", "--json") == 130
    doc = one_json_document(capsys.readouterr().out)
    state = resources(aws.sagemaker)
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="qc-race")
    assert endpoint["EndpointConfigName"] == config  # the winner's endpoint still serves
    assert state == {"endpoints": ["qc-race"], "configs": [config], "models": ["rival-model"]}
    assert "endpoint qc-race" not in doc["rolled_back"]
    assert not any("delete-endpoint " in c for c in doc["cleanup_commands"])


def test_a_create_that_met_already_exists_owns_nothing_of_that_name(aws, env, capsys):
    config = rival_config(aws)
    aws.on_call("CreateEndpoint", rival_creates("qc-taken", config))
    assert deploy(aws, env, "-e", "qc-taken", "--json") == 3
    doc = one_json_document(capsys.readouterr().out)
    assert "already exist" in doc["error"].lower() or "already exist" in " ".join(doc["details"])
    assert resources(aws.sagemaker) == {"endpoints": ["qc-taken"], "configs": [config],
                                        "models": ["rival-model"]}


def test_lost_create_endpoint_response_is_proven_ours_and_the_deploy_goes_on(aws, env, capsys):
    aws.lose_create_response("CreateEndpoint")
    assert deploy(aws, env, "-e", "qc-lost", "--json") == 0
    doc = one_json_document(capsys.readouterr().out)
    assert aws.calls["CreateEndpoint"] == 2  # created, answer lost, retried: "already existing"
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="qc-lost")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == doc["endpoint_config_name"]
    # Nothing points at a deleted config: the endpoint's config and model are all there.
    assert resources(aws.sagemaker) == {"endpoints": ["qc-lost"],
                                        "configs": [doc["endpoint_config_name"]],
                                        "models": [doc["model_name"]]}


@pytest.mark.parametrize("action", ["CreateModel", "CreateEndpointConfig"])
def test_lost_create_responses_of_model_and_config_are_proven_ours(aws, env, capsys, action):
    aws.lose_create_response(action)
    assert deploy(aws, env, "-e", "qc-lost2", "--json") == 0
    doc = one_json_document(capsys.readouterr().out)
    assert aws.calls[action] == 2
    assert resources(aws.sagemaker)["configs"] == [doc["endpoint_config_name"]]


def test_throttled_creates_are_retried_and_the_deploy_succeeds(aws, env, capsys):
    aws.throttle_create(2, "CreateModel")
    aws.throttle_create(2, "CreateEndpoint")
    assert deploy(aws, env, "-e", "qc-throttled") == 0
    assert aws.calls["CreateModel"] == 3 and aws.calls["CreateEndpoint"] == 3


def test_every_resource_carries_the_run_id_and_its_names_derive_from_it(aws, env, capsys):
    assert deploy(aws, env, "-e", "qc-tagged", "--json") == 0
    doc = one_json_document(capsys.readouterr().out)
    run_id = doc["run_id"]
    assert doc["endpoint_config_name"] == doc["model_name"] == f"qc-tagged-{run_id}"
    sm = aws.sagemaker
    arns = [sm.describe_endpoint(EndpointName="qc-tagged")["EndpointArn"],
            sm.describe_endpoint_config(EndpointConfigName=doc["endpoint_config_name"])[
                "EndpointConfigArn"],
            sm.describe_model(ModelName=doc["model_name"])["ModelArn"]]
    assert all(tags_of(sm, arn)["DeployRunId"] == run_id for arn in arns)


def run_cleanup(aws, commands: list[str]) -> None:
    """Run printed cleanup commands as `set -e` would: each must succeed, in order."""
    sm = aws.sagemaker
    for command in commands:
        words = shlex.split(command)
        assert words[:2] == ["aws", "sagemaker"], command
        flags = {word: value for word, value in zip(words, words[1:], strict=False)
                 if word.startswith("--")}
        if words[2] == "wait":
            assert words[3] == "endpoint-deleted"
            for _ in range(100):  # each describe moves the double's deletion on
                try:
                    sm.describe_endpoint(EndpointName=flags["--endpoint-name"])
                except sm.exceptions.ClientError:
                    break
            else:
                raise AssertionError("the endpoint never went")
            continue
        if words[2] == "delete-endpoint":
            sm.describe_endpoint(EndpointName=flags["--endpoint-name"])  # must exist to delete
            sm.delete_endpoint(EndpointName=flags["--endpoint-name"])
        elif words[2] == "delete-endpoint-config":
            sm.delete_endpoint_config(EndpointConfigName=flags["--endpoint-config-name"])
        else:
            assert words[2] == "delete-model", command
            sm.delete_model(ModelName=flags["--model-name"])


def test_second_ctrl_c_while_the_endpoint_is_deleting_prints_commands_that_all_succeed(
        aws, env, capsys):
    aws.create_takes(10_000)
    aws.deleting_takes(3)  # DeleteEndpoint is accepted; the endpoint takes a while to go
    clock = FakeClock(raise_at={1: KeyboardInterrupt(), 2: KeyboardInterrupt()})
    assert deploy(aws, env, "-e", "qc-twice2", "--json", clock=clock) == 130
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    assert aws.calls["DeleteEndpoint"] == 1
    # No delete-endpoint for an endpoint already being deleted: wait for it instead.
    assert not any(c.startswith("aws sagemaker delete-endpoint ") for c in doc["cleanup_commands"])
    assert any("wait endpoint-deleted" in c for c in doc["cleanup_commands"])
    run_cleanup(aws, doc["cleanup_commands"])
    assert resources(aws.sagemaker) == {"endpoints": [], "configs": [], "models": []}
