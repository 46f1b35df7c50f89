"""Autoscaling and serverless end to end: deploy-model.py and delete_endpoint.py as real
subprocesses against moto's HTTP server, with the SageMaker double in the server's process, so
SageMaker's refusal of an update that re-types a scaled variant is enforced over HTTP."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from demo import emulated_aws
from tests.conftest import _ISOLATED_VARS
from tests.deploy_support import register_package
from tests.integration.conftest import run_script

pytestmark = pytest.mark.integration

RID = "endpoint/qc-scale/variant/AllTraffic"


@pytest.fixture
def served():
    """moto's ThreadedMotoServer in this process (so the double patches what it answers),
    seeded like the demo's account; reset afterwards so no state leaks into other tests."""
    from moto.server import ThreadedMotoServer

    from tests.sagemaker_double import SageMakerDouble

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        with SageMakerDouble() as double:
            emulated_aws.seed(url)
            yield url, double
    finally:
        reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()
        server.stop()


def _client(url: str, name: str):
    import boto3

    return boto3.client(name, endpoint_url=url, region_name=emulated_aws.REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _env(url: str, tmp_path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _ISOLATED_VARS}
    env.update(emulated_aws.client_env(url))
    env.update({"DEPLOY_MODEL_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1",
                "DEPLOY_POLL_INTERVAL": "0.05"})
    return env


def _deploy(env, *args: str) -> dict:
    result = run_script("deploy-model.py", "-e", "qc-scale", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _targets(url: str) -> list[tuple[int, int]]:
    answer = _client(url, "application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[RID])
    return [(t["MinCapacity"], t["MaxCapacity"]) for t in answer["ScalableTargets"]]


def test_autoscaling_survives_a_retyping_update_then_serverless_then_delete(served, tmp_path):
    url, double = served
    env = _env(url, tmp_path)
    arn = register_package(_client(url, "sagemaker"))

    created = _deploy(env, "-a", arn, "--instance-count", "2", "--autoscale", "2-5")
    assert created["autoscaling"]["after"]["min_capacity"] == 2
    assert _targets(url) == [(2, 5)]

    # Another instance type: SageMaker (the double) refuses it while the variant is scaled, so
    # this passes only because the deploy deregisters first and registers again after.
    updated = _deploy(env, "-a", arn, "-t", "ml.m5.large", "--instance-count", "2")
    assert updated["autoscaling"]["deregister_first"] is True
    assert _targets(url) == [(2, 5)]
    assert double.update_requests[-1]["EndpointName"] == "qc-scale"

    serverless = _deploy(env, "-a", arn, "--serverless-memory", "2048")
    assert serverless["serverless"]["memory_mb"] == 2048 and _targets(url) == []

    _deploy(env, "-a", arn, "--instance-count", "1", "--autoscale", "1-3")
    assert _targets(url) == [(1, 3)]
    removed = run_script("utils/delete_endpoint.py", "-e", "qc-scale", "--json", env=env)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["removed"][0] == f"scalable target {RID}"
    assert _targets(url) == []
