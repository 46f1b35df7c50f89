"""kill -9 at each step of a deploy: the re-run succeeds, and reconcile lists exactly what the
killed run left, removes exactly that, and then finds nothing.

deploy-model.py runs as a real subprocess (tests/kill9_driver.py, which SIGKILLs itself right
after the chosen AWS call, or in local mode right before the endpoint's record is written)
against moto's HTTP server with the SageMaker double in this process; reconcile runs in-process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import REPO_ROOT, load_script
from tests.deploy_support import register_package
from tests.functional.test_local_endpoint import build_tarball, trained  # noqa: F401 - fixture
from tests.functional.test_local_endpoint import register as register_archive
from tests.integration.conftest import SCRIPT_TIMEOUT, run_script
from tests.integration.test_scaling import _client, _env, served  # noqa: F401 - fixture
from tests.sagemaker_double import resources

pytestmark = pytest.mark.integration

DRIVER = REPO_ROOT / "tests" / "kill9_driver.py"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
reconcile_script = load_script("utils/reconcile.py")


def killed_deploy(step: str, env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, str(DRIVER), step, *args], env=env,
                            capture_output=True, text=True, timeout=SCRIPT_TIMEOUT,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr


def deploy(env: dict[str, str], *args: str) -> dict:
    result = run_script("deploy-model.py", "--json", *args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def reconcile(env: dict[str, str], capsys, *args: str) -> dict:
    code = reconcile_script.main(["--grace-period", "0", "--json", *args], env)
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    return doc


def labelled(found: dict[str, list[str]]) -> set[str]:
    kinds = {"endpoints": "endpoint", "configs": "endpoint-config", "models": "model"}
    return {f"{kinds[key]} {name}" for key, names in found.items() for name in names}


@pytest.fixture
def account(served, tmp_path, monkeypatch):  # noqa: F811 - the fixture
    """The served account, this test's environment, a registered package, and what must outlive
    every reconcile: a live endpoint with its release, and a model deploy-model did not make."""
    url, _double = served
    env = _env(url, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)  # reconcile runs in this process
    sagemaker = _client(url, "sagemaker")
    arn = register_package(sagemaker)
    deploy(env, "-a", arn, "-e", "qc-live")
    sagemaker.create_model(ModelName="someone-elses", ExecutionRoleArn=ROLE,
                           Containers=[{"ModelPackageName": arn}])
    return env, sagemaker, arn


# What the killed run leaves that nothing uses once the re-run has succeeded. Killed after
# CreateEndpoint, the run left an endpoint: the re-run updates it, and its superseded clean-up
# removes the killed run's config and model (deploy-model's, never a release), so only the
# endpoint stays and reconcile has nothing to do.
LEFT_BY = {"CreateModel": {"model"}, "CreateEndpointConfig": {"model", "endpoint-config"},
           "CreateEndpoint": set()}


@pytest.mark.parametrize("step", list(LEFT_BY))
def test_reconcile_removes_exactly_what_a_deploy_killed_after_step_left(account, capsys, step):
    env, sagemaker, arn = account
    before = labelled(resources(sagemaker))
    killed_deploy(step, env, "-a", arn, "-e", "qc-k9")
    left = labelled(resources(sagemaker)) - before
    assert {label.split(" ")[0] for label in left} == (
        LEFT_BY[step] | ({"endpoint", "endpoint-config", "model"} if step == "CreateEndpoint"
                         else set()))

    assert deploy(env, "-a", arn, "-e", "qc-k9")["status"] == "InService"
    after_rerun = labelled(resources(sagemaker))
    orphans = {label for label in left if label in after_rerun
               and label.split(" ")[0] in LEFT_BY[step]}
    assert len(orphans) == len(LEFT_BY[step])
    assert (left & after_rerun) - orphans == ({"endpoint qc-k9"} if step == "CreateEndpoint"
                                              else set())

    found = reconcile(env, capsys, "--scope", "sagemaker")
    assert set(found["would_remove"]) == orphans and len(found["would_remove"]) == len(orphans)
    assert labelled(resources(sagemaker)) == after_rerun  # a dry run

    applied = reconcile(env, capsys, "--scope", "sagemaker", "--apply")
    assert set(applied["removed"]) == orphans and applied["left_behind"] == []
    assert labelled(resources(sagemaker)) == after_rerun - orphans  # nothing else went
    assert "model someone-elses" in after_rerun - orphans
    assert reconcile(env, capsys, "--scope", "sagemaker")["orphans"] == []


def test_a_local_deploy_killed_before_its_record_leaves_a_server_reconcile_stops(
        served, trained, tmp_path, monkeypatch, capsys):  # noqa: F811 - fixtures
    from modules.local_endpoint import stop_server
    from utils import local_endpoints

    url, _double = served
    env = _env(url, tmp_path)
    state = tmp_path / "state"
    sagemaker, s3 = _client(url, "sagemaker"), _client(url, "s3")
    sagemaker.create_model_package_group(ModelPackageGroupName="qc-local-tests")
    arn = register_archive((sagemaker, s3), build_tarball(tmp_path / "model.tar.gz", trained[2]))
    try:
        killed_deploy("local-record", env, "-a", arn, "-t", "local", "-e", "qc-k9-local")
        [orphan] = local_endpoints.find_server_processes(state)
        assert local_endpoints.find_endpoint(state, "qc-k9-local").record == {}

        served_again = deploy(env, "-a", arn, "-t", "local", "-e", "qc-k9-local")
        assert served_again["pid"] != orphan.pid

        found = reconcile(env, capsys, "--scope", "local")
        assert found["would_remove"] == ["local server qc-k9-local"]
        assert found["orphans"][0]["pid"] == orphan.pid

        applied = reconcile(env, capsys, "--scope", "local", "--apply")
        assert applied["removed"] == ["local server qc-k9-local"]
        assert not local_endpoints.is_process_alive(orphan.pid)
        endpoint = local_endpoints.find_endpoint(state, "qc-k9-local")
        assert endpoint.is_running() and endpoint.pid == served_again["pid"]  # untouched
        with urllib.request.urlopen(f"{served_again['url']}/ping", timeout=5) as answer:
            assert answer.status == 200
        assert reconcile(env, capsys, "--scope", "local")["orphans"] == []
    finally:
        for server in local_endpoints.find_server_processes(state):
            stop_server(server.pid)
