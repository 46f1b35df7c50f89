"""Integration fixtures: moto's HTTP server as the AWS account, entry scripts as real subprocesses.

One moto server per test worker (it takes ~1-2 s to start); every test starts from an empty,
freshly seeded account through moto's reset API, so tests stay independent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from demo import emulated_aws
from tests.conftest import _ISOLATED_VARS, REPO_ROOT

SCRIPT_TIMEOUT = 120


@pytest.fixture(scope="session")
def moto_server():
    server = emulated_aws.start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server):
    """A freshly reset and seeded emulated account; yields its URL."""
    request = urllib.request.Request(f"{moto_server.url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    emulated_aws.seed(moto_server.url)
    return moto_server.url


@pytest.fixture
def user_env(aws, tmp_path) -> dict[str, str]:
    """The environment a user would export to run the scripts against the emulator."""
    env = {key: value for key, value in os.environ.items() if key not in _ISOLATED_VARS}
    env.update(emulated_aws.client_env(aws))
    env.update({"DEPLOY_MODEL_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1",
                "PYTHONUNBUFFERED": "1"})
    return env


def run_script(script: str, *args: str, env: dict[str, str], cwd: Path | None = None,
               timeout: float = SCRIPT_TIMEOUT) -> subprocess.CompletedProcess:
    """Run an entry script exactly as a user would: `python <script> <args>`."""
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], env=env,
                          cwd=str(cwd or REPO_ROOT), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def sagemaker_client(url: str):
    import boto3

    return boto3.client("sagemaker", endpoint_url=url, region_name=emulated_aws.REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")
