"""The README's workflow, run exactly as a user runs it: entry scripts as subprocesses against
moto's HTTP server, the model really served by the local model server."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import run_script, sagemaker_client

pytestmark = pytest.mark.integration


def _json(result) -> dict:
    assert result.stdout.strip(), f"no JSON on stdout; stderr:\n{result.stderr}"
    return json.loads(result.stdout)


def _package(user_env, tmp_path) -> str:
    arn_file = tmp_path / "model_arn.txt"
    result = run_script("utils/package-model.py", "--output-file", str(arn_file), env=user_env)
    assert result.returncode == 0, result.stderr + result.stdout
    arn = arn_file.read_text().strip()
    assert arn.startswith("arn:aws:sagemaker:ca-central-1:123456789012:model-package/")
    assert arn in result.stdout
    return arn


def _resources(url: str) -> dict[str, list[str]]:
    client = sagemaker_client(url)
    return {
        "endpoints": [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]],
        "configs": [c["EndpointConfigName"] for c in client.list_endpoint_configs()["EndpointConfigs"]],
        "models": [m["ModelName"] for m in client.list_models()["Models"]],
    }


def test_full_workflow_package_deploy_serve_test_list_delete(aws, user_env, tmp_path):
    arn = _package(user_env, tmp_path)

    deployed = run_script("deploy-model.py", "--model-package-arn", arn, "--endpoint-name",
                          "qc-it", "--json", env=user_env)
    assert deployed.returncode == 0, deployed.stderr
    doc = _json(deployed)
    assert doc["endpoint_name"] == "qc-it" and doc["status"] == "InService"
    assert doc["action"] == "created"
    assert doc["console_url"] is None  # AWS_ENDPOINT_URL is the emulator: it has no console
    state = _resources(aws)
    assert state["endpoints"] == ["qc-it"]
    assert doc["endpoint_config_name"] in state["configs"] and doc["model_name"] in state["models"]

    local = run_script("deploy-model.py", "-a", arn, "-t", "local", "-e", "qc-local", "--json",
                       env=user_env)
    assert local.returncode == 0, local.stderr
    assert _json(local)["url"].startswith("http://127.0.0.1:")

    tested = run_script("test_endpoint.py", "-e", "qc-local", "-d",
                        str(REPO_ROOT / "sample-data.json"), "--json", env=user_env)
    assert tested.returncode == 0, tested.stderr
    answer = _json(tested)
    rows = json.loads((REPO_ROOT / "sample-data.json").read_text())["data"]
    assert len(answer["response"]["predictions"]) == len(rows)

    listed = run_script("utils/list_model_packages.py", "--json", env=user_env)
    assert listed.returncode == 0, listed.stderr
    assert arn in listed.stdout

    for name in ("qc-local", "qc-it"):
        removed = run_script("utils/delete_endpoint.py", "-e", name, env=user_env)
        assert removed.returncode == 0, removed.stderr
    assert _resources(aws) == {"endpoints": [], "configs": [], "models": []}
    assert not any((tmp_path / "state" / "endpoints").glob("*"))


def test_flag_wins_over_env_var_and_env_var_over_default(aws, user_env, tmp_path):
    arn = _package(user_env, tmp_path)
    env = {**user_env, "ENDPOINT_NAME": "from-env", "INSTANCE_TYPE": "ml.m5.large"}
    by_env = _json(run_script("deploy-model.py", "-a", arn, "--dry-run", "--json", env=env))
    assert by_env["endpoint_name"] == "from-env" and by_env["instance_type"] == "ml.m5.large"
    by_flag = _json(run_script("deploy-model.py", "-a", arn, "--dry-run", "--json",
                               "-e", "from-flag", "-t", "ml.c5.xlarge", env=env))
    assert by_flag["endpoint_name"] == "from-flag" and by_flag["instance_type"] == "ml.c5.xlarge"
    default = _json(run_script("deploy-model.py", "-a", arn, "--dry-run", "--json", env=user_env))
    assert default["instance_type"] == "ml.c5.2xlarge"


def test_dry_run_writes_nothing(aws, user_env, tmp_path):
    arn = _package(user_env, tmp_path)
    result = run_script("deploy-model.py", "-a", arn, "-e", "dry", "--dry-run", env=user_env)
    assert result.returncode == 0, result.stderr
    assert _resources(aws) == {"endpoints": [], "configs": [], "models": []}


def test_package_model_json_is_one_document_for_a_ci_step(aws, user_env):
    result = run_script("utils/package-model.py", "--json", env=user_env)
    assert result.returncode == 0, result.stderr
    doc = _json(result)
    assert doc["model_package_arn"].startswith("arn:aws:sagemaker:")


@pytest.mark.parametrize("script, args, unset, expected", [
    ("utils/package-model.py", [], "DATA_BUCKET", "DATA_BUCKET"),
    ("deploy-model.py", ["-a", "arn:aws:sagemaker:ca-central-1:123456789012:model-package/g"],
     None, "Invalid model package ARN"),
    ("deploy-model.py", ["-a", "arn:aws:sagemaker:ca-central-1:123456789012:model-package/g/1",
                         "-t", "ml.nope.large"], None, "Invalid instance type"),
    ("deploy-model.py", ["-a", "arn:aws:sagemaker:ca-central-1:123456789012:model-package/g/1",
                         "-e", "bad_name"], None, "Invalid endpoint name"),
    ("test_endpoint.py", ["-e", "qc", "-d", '{"data": [[1, 2]'], None, "Invalid JSON"),
    ("utils/list_model_packages.py", [], ("AWS_REGION", "AWS_DEFAULT_REGION"), "AWS_REGION"),
    ("utils/delete_endpoint.py", ["-e", "bad_name"], None, "Invalid endpoint name"),
])
def test_bad_input_is_refused_clearly_and_creates_nothing(aws, user_env, script, args, unset,
                                                          expected):
    unset = unset if isinstance(unset, tuple) else (unset,)
    env = {k: v for k, v in user_env.items() if k not in unset}
    result = run_script(script, *args, env=env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert _resources(aws) == {"endpoints": [], "configs": [], "models": []}
    packages = sagemaker_client(aws).list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert packages == []


@pytest.mark.parametrize("extra", [[], ["--dry-run"], ["-t", "local"], ["-t", "local", "--dry-run"]])
def test_deploying_an_unknown_package_fails_the_same_way_in_every_mode(aws, user_env, tmp_path,
                                                                        extra):
    arn = "arn:aws:sagemaker:ca-central-1:123456789012:model-package/nothing-here/1"
    result = run_script("deploy-model.py", "-a", arn, "-e", "ghost", "--json", *extra,
                        env=user_env)
    assert result.returncode == 3, result.stderr
    assert _json(result)["exit_code"] == 3
    assert f"Could not find model package: {arn}" in result.stderr
    assert _resources(aws) == {"endpoints": [], "configs": [], "models": []}
    assert not (tmp_path / "state" / "endpoints" / "ghost").exists()


def test_deleting_an_endpoint_that_does_not_exist_says_so(aws, user_env):
    result = run_script("utils/delete_endpoint.py", "-e", "never-deployed", env=user_env)
    assert result.returncode == 3
    assert "never-deployed" in result.stderr and "Traceback" not in result.stderr
