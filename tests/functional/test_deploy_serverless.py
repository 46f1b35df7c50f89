"""Serverless endpoints: refused combinations before any AWS call, the create path, updates
between instances and serverless through the normal update path, and --dry-run/--json."""

from __future__ import annotations

import pytest

from tests.deploy_support import (
    EMPTY,
    live_config,
    main,
    one_json_document,
    register_package,
)
from tests.sagemaker_double import resources


def _variant(aws, endpoint="qc-dev"):
    [variant] = live_config(aws.sagemaker, endpoint)["ProductionVariants"]
    return variant


def test_serverless_create_makes_a_serverless_variant_with_no_instances(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    code = main(["-a", arn, "-e", "qc-dev", "--serverless-memory", "2048",
                 "--max-concurrency", "10", "--provisioned-concurrency", "2", "--json"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    variant = _variant(aws)
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 10,
                                           "ProvisionedConcurrency": 2}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    document = one_json_document(captured.out)
    assert document["serverless"] == {"memory_mb": 2048, "max_concurrency": 10,
                                      "provisioned_concurrency": 2}
    assert document["instance_type"] is None and document["instance_count"] is None


def test_serverless_settings_come_from_the_environment_too(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    env = {**env, "SERVERLESS_MEMORY": "1024", "MAX_CONCURRENCY": "3"}
    assert main(["-a", arn, "-e", "qc-dev"], env) == 0, capsys.readouterr().err
    assert _variant(aws)["ServerlessConfig"] == {"MemorySizeInMB": 1024, "MaxConcurrency": 3}
    # The flag wins over the variable.
    assert main(["-a", arn, "-e", "qc-dev", "--max-concurrency", "7"], env) == 0
    assert _variant(aws)["ServerlessConfig"]["MaxConcurrency"] == 7


def test_dry_run_shows_the_serverless_variant_and_creates_nothing(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    code = main(["-a", arn, "-e", "qc-dev", "--serverless-memory", "3072", "--dry-run"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "serverless (3072 MB, 5 concurrent)" in captured.err + captured.out
    assert resources(aws.sagemaker) == EMPTY


@pytest.mark.parametrize("extra, env_extra, says", [
    (["--instance-type", "ml.c5.xlarge"], {}, "--instance-type (ml.c5.xlarge) cannot be combined"),
    ([], {"INSTANCE_TYPE": "ml.c5.xlarge"}, "environment variable INSTANCE_TYPE (ml.c5.xlarge)"),
    (["--instance-count", "2"], {}, "--instance-count (2) cannot be combined"),
    (["-t", "local"], {}, "--instance-type (local) cannot be combined"),
    (["--deployment-strategy", "canary"], {}, "canary cannot update a serverless endpoint"),
    (["--deployment-strategy", "linear"], {}, "linear cannot update a serverless endpoint"),
    (["--autoscale", "1-3"], {}, "a serverless variant has none"),
    (["--max-concurrency", "201"], {}, "1-200 concurrent invocations"),
    (["--provisioned-concurrency", "6"], {}, "it must be 1 to --max-concurrency (5)"),
])
def test_what_serverless_cannot_do_is_refused_before_any_aws_call(aws, env, capsys, extra,
                                                                  env_extra, says):
    arn = register_package(aws.sagemaker)
    before = sum(aws.calls.values())
    code = main(["-a", arn, "-e", "qc-dev", "--serverless-memory", "2048", *extra],
                {**env, **env_extra})
    captured = capsys.readouterr()
    assert code == 2
    assert says in captured.err
    assert sum(aws.calls.values()) == before  # not one SageMaker call
    assert resources(aws.sagemaker) == EMPTY


@pytest.mark.parametrize("memory", ["1000", "7168", "512"])
def test_memory_outside_sagemakers_sizes_is_refused(aws, env, capsys, memory):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-dev", "--serverless-memory", memory], env) == 2
    assert "1024, 2048, 3072, 4096, 5120, 6144 MB" in capsys.readouterr().err


@pytest.mark.parametrize("argv, env_extra, says", [
    (["--max-concurrency", "4"], {}, "--max-concurrency applies to serverless endpoints only"),
    ([], {"PROVISIONED_CONCURRENCY": "1"},
     "environment variable PROVISIONED_CONCURRENCY applies to serverless endpoints only"),
])
def test_serverless_options_without_serverless_memory_are_refused(aws, env, capsys, argv,
                                                                  env_extra, says):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-dev", *argv], {**env, **env_extra}) == 2
    assert says in capsys.readouterr().err


def test_update_from_instances_to_serverless_and_back(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-dev"], env) == 0
    assert _variant(aws)["InstanceType"] == "ml.c5.2xlarge"
    code = main(["-a", arn, "-e", "qc-dev", "--serverless-memory", "2048", "--keep-releases", "1"],
                env)
    assert code == 0, capsys.readouterr().err
    variant = _variant(aws)
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant
    [request] = aws.update_requests
    assert request["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"][
        "Type"] == "ALL_AT_ONCE"
    assert main(["-a", arn, "-e", "qc-dev", "-t", "ml.m5.large", "--keep-releases", "1"],
                env) == 0
    variant = _variant(aws)
    assert (variant["InstanceType"], "ServerlessConfig" in variant) == ("ml.m5.large", False)
    # Keeping one release, each update removed the config it superseded: one of each is left.
    state = resources(aws.sagemaker)
    assert (len(state["configs"]), len(state["models"])) == (1, 1)


def test_check_serverless_allows_refuses_data_capture_and_several_variants():
    from modules.scaling_settings import Serverless, check_serverless_allows
    from utils.errors import ValidationError

    check_serverless_allows(None, data_capture=True, variant_count=3)  # instances: no limit
    check_serverless_allows(Serverless(1024))
    with pytest.raises(ValidationError, match="Data capture is not available"):
        check_serverless_allows(Serverless(1024), data_capture=True)
    with pytest.raises(ValidationError, match="one variant, not 2"):
        check_serverless_allows(Serverless(1024), variant_count=2)


def test_the_double_refuses_what_sagemaker_excludes_for_serverless(aws):
    """moto accepts a serverless config with data capture or a second variant; SageMaker does not."""
    from botocore.exceptions import ClientError

    serverless = {"VariantName": "AllTraffic", "ModelName": "m",
                  "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1}}
    capture = {"EnableCapture": True, "InitialSamplingPercentage": 10,
               "DestinationS3Uri": "s3://bucket/capture",
               "CaptureOptions": [{"CaptureMode": "Input"}]}
    with pytest.raises(ClientError, match="DataCaptureConfig is not supported"):
        aws.sagemaker.create_endpoint_config(EndpointConfigName="c1",
                                             ProductionVariants=[serverless],
                                             DataCaptureConfig=capture)
    with pytest.raises(ClientError, match="one production variant only"):
        aws.sagemaker.create_endpoint_config(
            EndpointConfigName="c2",
            ProductionVariants=[serverless, {**serverless, "VariantName": "Other"}])
