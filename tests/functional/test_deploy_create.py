"""deploy-model.py's create path, package resolution, planning and flags, against in-process moto."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ACCOUNT, REGION
from tests.deploy_support import (
    EMPTY,
    GROUP,
    OWN_IMAGE,
    client,
    main,
    one_json_document,
    register_package,
    tags_of,
)
from tests.sagemaker_double import resources


def test_create_deploys_a_tagged_model_config_and_endpoint(aws, env, capsys, tmp_path):
    arn = register_package(aws.sagemaker)
    out_file = tmp_path / "endpoint_name.txt"
    code = main(["-a", arn, "-e", "qc-prod", "--tag", "team=ml", "--output-file", str(out_file)],
                env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    state = resources(aws.sagemaker)
    assert state["endpoints"] == ["qc-prod"]
    [config_name], [model_name] = state["configs"], state["models"]
    assert config_name.startswith("qc-prod-") and len(config_name) <= 63
    model = aws.sagemaker.describe_model(ModelName=model_name)
    assert model["Containers"] == [{"ModelPackageName": arn}]
    assert model["ExecutionRoleArn"] == env["SAGEMAKER_EXECUTION_ROLE_ARN"]
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    [variant] = config["ProductionVariants"]
    assert (variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        "AllTraffic", "ml.c5.2xlarge", 1)
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="qc-prod")
    for resource_arn in (model["ModelArn"], config["EndpointConfigArn"], endpoint["EndpointArn"]):
        tags = tags_of(aws.sagemaker, resource_arn)
        assert tags["ModelPackageArn"] == arn and tags["ManagedBy"] == "deploy-model"
        assert tags["Stack"] == "plmscw" and tags["team"] == "ml"
    assert out_file.read_text() == "qc-prod\n"
    assert ("https://ca-central-1.console.aws.amazon.com/sagemaker/home?region=ca-central-1"
            "#/endpoints/qc-prod") in captured.out
    assert "InService" in captured.out


def test_json_is_one_document_with_the_promised_fields(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-json", "--json"], env) == 0
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    assert doc["endpoint_name"] == "qc-json" and doc["status"] == "InService"
    assert doc["action"] == "created" and doc["model_package_arn"] == arn
    assert doc["endpoint_config_name"] in resources(aws.sagemaker)["configs"]
    assert doc["model_name"] in resources(aws.sagemaker)["models"]
    assert doc["console_url"].endswith("#/endpoints/qc-json")
    assert isinstance(doc["elapsed_seconds"], float)
    assert "Plan" in captured.err  # progress went to stderr


def test_generated_endpoint_name_has_a_timestamp(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "--json", "--stack", "qc"], env) == 0
    name = one_json_document(capsys.readouterr().out)["endpoint_name"]
    assert name.startswith("qc-endpoint-")
    stamp = name.removeprefix("qc-endpoint-")
    assert len(stamp) == 15 and stamp[8] == "-" and stamp.replace("-", "").isdigit()


def test_model_package_group_deploys_the_latest_approved_version(aws, env, capsys):
    register_package(aws.sagemaker)
    latest_approved = register_package(aws.sagemaker)
    register_package(aws.sagemaker, approved=False)
    code = main(["--model-package-group", GROUP, "-e", "qc-group", "--dry-run", "--json"], env)
    assert code == 0
    assert one_json_document(capsys.readouterr().out)["model_package_arn"] == latest_approved


def test_group_without_an_approved_version_is_refused(aws, env, capsys):
    register_package(aws.sagemaker, approved=False)
    assert main(["--model-package-group", GROUP, "-e", "qc", "--json"], env) == 3
    doc = one_json_document(capsys.readouterr().out)
    assert "no Approved version" in doc["error"] and doc["exit_code"] == 3
    assert resources(aws.sagemaker) == EMPTY


def test_unknown_group_is_named_as_unknown_not_as_unapproved(aws, env, capsys):
    assert main(["--model-package-group", "NoSuchGroup", "-e", "qc", "--json"], env) == 3
    doc = one_json_document(capsys.readouterr().out)
    assert doc["error"] == "Model package group not found: NoSuchGroup"
    assert resources(aws.sagemaker) == EMPTY


def test_an_explicitly_empty_endpoint_name_is_refused_not_generated(aws, env, capsys):
    """CI's -e "$(cat endpoint_name.txt)" with an empty file must not create a new endpoint."""
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", ""], env) == 2
    assert "Invalid endpoint name: it is empty" in capsys.readouterr().err
    assert resources(aws.sagemaker) == EMPTY


def test_unapproved_package_is_refused_with_how_to_approve(aws, env, capsys):
    arn = register_package(aws.sagemaker, approved=False)
    assert main(["-a", arn, "-e", "qc"], env) == 3
    err = capsys.readouterr().err
    assert "PendingManualApproval, not Approved" in err
    assert "--model-approval-status Approved" in err
    assert resources(aws.sagemaker) == EMPTY


def test_unknown_package_is_an_aws_error(aws, env, capsys):
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/nothing-here/1"
    assert main(["-a", arn, "-e", "ghost", "--json"], env) == 3
    doc = one_json_document(capsys.readouterr().out)
    assert doc["error"] == f"Could not find model package: {arn}"
    assert resources(aws.sagemaker) == EMPTY


def test_missing_image_in_own_ecr_is_caught_before_anything_is_created(aws, env, capsys):
    arn = register_package(aws.sagemaker, image=OWN_IMAGE)
    assert main(["-a", arn, "-e", "qc"], env) == 3
    assert "Could not find image" in capsys.readouterr().err
    assert resources(aws.sagemaker) == EMPTY


def test_image_present_in_own_ecr_passes(aws, env, capsys):
    ecr = client("ecr")
    ecr.create_repository(repositoryName="plmscw-inference")
    manifest = {"schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "size": 2, "digest": "sha256:" + "0" * 64}, "layers": []}
    ecr.put_image(repositoryName="plmscw-inference", imageManifest=json.dumps(manifest),
                  imageManifestMediaType=manifest["mediaType"], imageTag="latest")
    arn = register_package(aws.sagemaker, image=OWN_IMAGE)
    assert main(["-a", arn, "-e", "qc"], env) == 0
    assert "Container image found in ECR" in capsys.readouterr().out


def test_dry_run_writes_nothing_and_shows_the_plan(aws, env, capsys, tmp_path):
    arn = register_package(aws.sagemaker)
    out_file = tmp_path / "name.txt"
    assert main(["-a", arn, "-e", "qc-dry", "--dry-run", "--output-file", str(out_file)],
                env) == 0
    out = capsys.readouterr().out
    assert "Create endpoint" in out and "Dry run: nothing was created" in out
    assert resources(aws.sagemaker) == EMPTY
    assert not out_file.exists()


def test_dry_run_of_an_existing_endpoint_plans_an_update(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-upd"], env) == 0
    before = resources(aws.sagemaker)
    capsys.readouterr()
    assert main(["-a", arn, "-e", "qc-upd", "--dry-run", "--json"], env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert doc["action"] == "update" and doc["previous_endpoint_config_name"] in before["configs"]
    assert resources(aws.sagemaker) == before
    assert aws.update_requests == []


def test_flag_beats_env_var_beats_default(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    with_env = {**env, "MODEL_PACKAGE_ARN": arn, "ENDPOINT_NAME": "from-env",
                "INSTANCE_TYPE": "ml.m5.large", "INSTANCE_COUNT": "2"}
    assert main(["--dry-run", "--json"], with_env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert (doc["endpoint_name"], doc["instance_type"], doc["instance_count"]) == (
        "from-env", "ml.m5.large", 2)
    assert main(["--dry-run", "--json", "-e", "from-flag", "-t", "ml.c5.xlarge",
                 "--instance-count", "3"], with_env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert (doc["endpoint_name"], doc["instance_type"], doc["instance_count"]) == (
        "from-flag", "ml.c5.xlarge", 3)
    assert main(["-a", arn, "-e", "x", "--dry-run", "--json"], env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert (doc["instance_type"], doc["instance_count"]) == ("ml.c5.2xlarge", 1)


def test_no_monitor_returns_at_once_and_says_there_is_no_rollback(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    aws.create_takes(50)
    assert main(["-a", arn, "-e", "qc-nm", "--no-monitor", "--json"], env) == 0
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    assert doc["status"] == "Creating" and doc["monitored"] is False
    assert "no automatic rollback" in captured.err
    assert "aws sagemaker wait endpoint-in-service --endpoint-name qc-nm" in captured.err
    assert aws.describes_of("qc-nm") == 1  # the plan's look-up only: nothing watched


@pytest.mark.parametrize("status_script, expected", [
    ("creating", "is Creating; SageMaker accepts no update"),
    ("failed", "is Failed: it cannot be updated, only deleted"),
])
def test_busy_or_failed_endpoint_is_refused_with_what_to_do(aws, env, capsys, status_script,
                                                            expected):
    arn = register_package(aws.sagemaker)
    if status_script == "creating":
        aws.create_takes(1000)
        assert main(["-a", arn, "-e", "qc-busy", "--no-monitor"], env) == 0
    else:
        aws.create_takes(0, outcome="Failed", failure_reason="boom")
        assert main(["-a", arn, "-e", "qc-busy", "--skip-rollback"], env) == 4
    before = resources(aws.sagemaker)
    capsys.readouterr()
    assert main(["-a", arn, "-e", "qc-busy"], env) == 3
    err = capsys.readouterr().err
    assert expected in err
    assert "What to do" in err
    assert resources(aws.sagemaker) == before


def test_aws_refusing_the_config_rolls_back_the_model(aws, env, capsys):
    """moto refuses some newer instance types botocore lists: CreateEndpointConfig fails after
    CreateModel succeeded, and the model must not be left behind."""
    arn = register_package(aws.sagemaker)
    code = main(["-a", arn, "-e", "qc-refused", "-t", "ml.p6-b200.48xlarge", "--json"], env)
    captured = capsys.readouterr()
    if code == 0:
        pytest.skip("this moto accepts ml.p6-b200.48xlarge")
    assert code == 3
    doc = one_json_document(captured.out)
    assert doc["exit_code"] == 3 and doc["rolled_back"]
    assert "GPU/accelerator" in captured.err  # the warning came first
    assert resources(aws.sagemaker) == EMPTY


def test_missing_env_vars_are_named_together(aws, capsys):
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/g/1"
    assert main(["-a", arn, "-e", "qc"], {}) == 2
    err = capsys.readouterr().err
    assert "AWS_REGION" in err and "SAGEMAKER_EXECUTION_ROLE_ARN" in err


def test_smoke_test_passing_is_reported(aws, env, capsys, tmp_path):
    from tests.deploy_support import VALID_ANSWER

    arn = register_package(aws.sagemaker, labels="qc_pass,qc_fail")
    data = tmp_path / "smoke.json"
    data.write_text(json.dumps({"data": [[1.0, 2.0], [3.0, 4.0]]}))
    aws.answer_invocations_with(json.dumps(VALID_ANSWER))
    assert main(["-a", arn, "-e", "qc-smoke", "--smoke-test-data", str(data), "--json"],
                env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert doc["smoke_test"] == {"passed": True, "rows": 2,
                                 "predictions": ["qc_pass", "qc_fail"]}


def test_local_instance_type_hands_over_to_local_mode(aws, env, capsys, monkeypatch, tmp_path):
    """The other half (serving) is tested with local mode itself; here: the hand-over."""
    import modules.local_endpoint as local_endpoint

    calls = []

    def fake_deploy_local(sagemaker, s3, **kwargs):
        calls.append(kwargs)
        return {"endpoint_name": kwargs["endpoint_name"], "status": "InService",
                "action": "created", "url": "http://127.0.0.1:8123", "pid": 4242}

    monkeypatch.setattr(local_endpoint, "deploy_local", fake_deploy_local)
    arn = register_package(aws.sagemaker)
    no_role = {k: v for k, v in env.items() if k != "SAGEMAKER_EXECUTION_ROLE_ARN"}
    no_role["DEPLOY_MODEL_STATE_DIR"] = str(tmp_path / "state")
    assert main(["-a", arn, "-t", "local", "-e", "qc-local", "--instance-count", "3", "--json"],
                no_role) == 0
    captured = capsys.readouterr()
    doc = one_json_document(captured.out)
    assert doc["url"] == "http://127.0.0.1:8123" and doc["instance_type"] == "local"
    # The server's inherited variables come from the env main() was given, never os.environ.
    from modules.deploy_settings import LOCAL_SERVER_ENV_VARS

    inherited = {k: v for k, v in no_role.items() if k in LOCAL_SERVER_ENV_VARS}
    assert calls == [{"endpoint_name": "qc-local", "model_package_arn": arn,
                      "state_dir": tmp_path / "state", "timeout": 1800.0,
                      "inherited_env": inherited}]
    assert "Ignored in local mode: --instance-count" in captured.err
    assert resources(aws.sagemaker) == EMPTY  # nothing on SageMaker


def test_local_mode_with_default_options_warns_about_nothing(aws, env, capsys, monkeypatch,
                                                             tmp_path):
    import modules.local_endpoint as local_endpoint

    monkeypatch.setattr(local_endpoint, "deploy_local", lambda sagemaker, s3, **kwargs: {
        "endpoint_name": kwargs["endpoint_name"], "status": "InService", "action": "created",
        "url": "http://127.0.0.1:8123", "pid": 4242})
    arn = register_package(aws.sagemaker)
    env = {**env, "DEPLOY_MODEL_STATE_DIR": str(tmp_path / "state")}
    assert main(["-a", arn, "-t", "local", "-e", "qc-local"], env) == 0
    assert "Ignored in local mode" not in capsys.readouterr().err
