"""utils/delete_endpoint.py: SageMaker endpoints with their config and model, and local ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import load_script
from tests.deploy_support import (
    EMPTY,
    deploy_script,
    one_json_document,
    register_package,
)
from tests.sagemaker_double import resources
from utils import local_endpoints

delete_script = load_script("utils/delete_endpoint.py")


@pytest.fixture
def env(deploy_env, tmp_path):
    return {**deploy_env, "DEPLOY_MODEL_STATE_DIR": str(tmp_path / "state")}


def deployed(aws, env, name="qc-del"):
    arn = register_package(aws.sagemaker)
    assert deploy_script().main(["-a", arn, "-e", name], env) == 0
    return resources(aws.sagemaker)


def test_deletes_the_endpoint_its_config_and_its_model(aws, env, capsys):
    before = deployed(aws, env)
    capsys.readouterr()
    assert delete_script.main(["-e", "qc-del"], env) == 0
    out = capsys.readouterr().out
    assert "Removed endpoint qc-del" in out
    assert f"endpoint-config {before['configs'][0]}" in out and f"model {before['models'][0]}" in out
    assert resources(aws.sagemaker) == EMPTY


def test_json_lists_what_was_removed(aws, env, capsys):
    before = deployed(aws, env)
    capsys.readouterr()
    assert delete_script.main(["-e", "qc-del", "--json"], env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert doc["removed"] == ["endpoint qc-del", f"endpoint-config {before['configs'][0]}",
                              f"model {before['models'][0]}"]
    assert doc["local"] is False and doc["left_behind"] == []


def test_other_endpoints_are_untouched(aws, env, capsys):
    deployed(aws, env, "qc-keep")
    deployed(aws, env, "qc-del")
    assert delete_script.main(["-e", "qc-del"], env) == 0
    assert resources(aws.sagemaker)["endpoints"] == ["qc-keep"]
    assert len(resources(aws.sagemaker)["configs"]) == 1


def test_an_unknown_endpoint_is_an_aws_error(aws, env, capsys):
    assert delete_script.main(["-e", "ghost", "--json"], env) == 3
    doc = one_json_document(capsys.readouterr().out)
    assert "No endpoint named ghost" in doc["error"] and doc["exit_code"] == 3


def test_an_endpoint_still_creating_is_waited_for(aws, env, capsys):
    aws.create_takes(4)  # it finishes creating after four more looks
    arn = register_package(aws.sagemaker)
    assert deploy_script().main(["-a", arn, "-e", "qc-new", "--no-monitor"], env) == 0
    aws.refuse_delete_while_creating()
    capsys.readouterr()
    assert delete_script.main(["-e", "qc-new"], env) == 0
    assert "cannot be deleted while it is still being created" in capsys.readouterr().out
    assert resources(aws.sagemaker) == EMPTY


def test_bad_name_is_refused_before_anything_else(aws, env, capsys):
    assert delete_script.main(["-e", "bad_name"], env) == 2
    assert "Invalid endpoint name" in capsys.readouterr().err


def stopped_local_endpoint(state: Path, name: str = "qc-local") -> Path:
    """The record of a local endpoint whose server no longer runs (its pid is no process)."""
    directory = local_endpoints.endpoint_dir(state, name)
    local_endpoints.write_record(directory, {
        "endpoint_name": name, "pid": 2_000_000_000, "port": 1, "url": "http://127.0.0.1:1",
        "model_package_arn": "arn:aws:sagemaker:ca-central-1:123456789012:model-package/g/1",
        "created_at": "2026-01-15T09:30:05Z", "server_command": ["serve"]})
    return directory


def test_a_local_endpoint_is_stopped_without_asking_aws(tmp_path, capsys):
    state = tmp_path / "state"
    directory = stopped_local_endpoint(state)
    env = {"DEPLOY_MODEL_STATE_DIR": str(state), "NO_COLOR": "1"}  # no AWS_REGION: not needed
    assert delete_script.main(["-e", "qc-local", "--json"], env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert doc["local"] is True and doc["removed"] == ["local endpoint qc-local"]
    assert doc["left_behind"] == [] and doc["cleanup_commands"] == []  # one shape for CI
    assert not directory.exists()


def test_if_exists_makes_a_missing_endpoint_a_success(aws, env, capsys):
    assert delete_script.main(["-e", "qc-gone"], env) == 3
    capsys.readouterr()
    assert delete_script.main(["-e", "qc-gone", "--if-exists"], env) == 0
    assert "nothing to delete (--if-exists)" in capsys.readouterr().out
    assert delete_script.main(["-e", "qc-gone", "--json"], {**env, "DELETE_IF_EXISTS": "1"}) == 0
    document = one_json_document(capsys.readouterr().out)
    assert document["existed"] is False and document["removed"] == []


def test_if_exists_still_deletes_an_endpoint_that_exists(aws, env, capsys):
    deployed(aws, env)
    assert delete_script.main(["-e", "qc-del", "--if-exists"], env) == 0
    assert resources(aws.sagemaker) == EMPTY


def test_dry_run_lists_what_would_go_and_removes_nothing(aws, env, capsys):
    before = deployed(aws, env)
    capsys.readouterr()
    assert delete_script.main(["-e", "qc-del", "--dry-run", "--json"], env) == 0
    document = one_json_document(capsys.readouterr().out)
    assert document["dry_run"] is True and document["removed"] == []
    assert document["would_remove"] == ["endpoint qc-del", f"endpoint-config {before['configs'][0]}",
                                        f"model {before['models'][0]}"]
    assert resources(aws.sagemaker) == before


def test_dry_run_of_a_missing_endpoint_fails_unless_if_exists(aws, env, capsys):
    assert delete_script.main(["-e", "qc-gone", "--dry-run"], env) == 3
    assert delete_script.main(["-e", "qc-gone", "--dry-run", "--if-exists"], env) == 0


def test_dry_run_of_a_local_endpoint_keeps_it(tmp_path, capsys):
    state = tmp_path / "state"
    directory = stopped_local_endpoint(state)
    env = {"DEPLOY_MODEL_STATE_DIR": str(state), "NO_COLOR": "1"}
    assert delete_script.main(["-e", "qc-local", "--dry-run", "--json"], env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert doc["local"] is True and doc["dry_run"] is True
    assert doc["would_remove"][0].startswith("local endpoint qc-local (not running)")
    assert local_endpoints.read_record(directory)["pid"] == 2_000_000_000


def with_releases(aws, env, name="qc-del", updates=2):
    """Release 1 and `updates` more, all kept (default --keep-releases 3)."""
    arn = register_package(aws.sagemaker)
    assert deploy_script().main(["-a", arn, "-e", name], env) == 0
    for _ in range(updates):
        aws.update_takes(1)
        assert deploy_script().main(["-a", arn, "-e", name], env) == 0
    return resources(aws.sagemaker)


def test_kept_releases_go_with_the_endpoint_and_dry_run_lists_them(aws, env, capsys):
    before = with_releases(aws, env)
    assert len(before["configs"]) == 3
    capsys.readouterr()
    assert delete_script.main(["-e", "qc-del", "--dry-run", "--json"], env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert sorted(doc["would_remove"]) == sorted(
        ["endpoint qc-del"] + [f"endpoint-config {c}" for c in before["configs"]]
        + [f"model {m}" for m in before["models"]])
    assert resources(aws.sagemaker) == before  # a dry run changes nothing
    assert delete_script.main(["-e", "qc-del", "--json"], env) == 0
    doc = one_json_document(capsys.readouterr().out)
    assert len(doc["removed"]) == 7 and doc["left_behind"] == []
    assert resources(aws.sagemaker) == EMPTY


def test_a_kept_release_that_no_longer_carries_its_run_id_is_left_alone(aws, env, capsys):
    from modules.deploy_releases import list_releases

    with_releases(aws, env, updates=1)
    older = list_releases(aws.sagemaker, "qc-del")[1]
    arn = aws.sagemaker.describe_endpoint_config(
        EndpointConfigName=older.config_name)["EndpointConfigArn"]
    aws.sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "DeployRunId", "Value": "not-ours"}])
    assert delete_script.main(["-e", "qc-del"], env) == 0
    left = resources(aws.sagemaker)
    # its config no longer says which run made it: not proven ours, so neither it nor its model
    assert left == {"endpoints": [], "configs": [older.config_name],
                    "models": list(older.model_names)}
