"""Fixtures of the functional tests that run deploy-model against in-process AWS.

`aws` is moto with the SageMaker double in front (`aws.sagemaker` is a client); `deploy_env` is
the environment a deploy runs with, and `env` is that environment unless a module says otherwise.
A module that needs more overrides the fixture by its name and may build on the one here, e.g.
`def aws(aws)` that registers a package first (tests/integration/conftest.py has the `aws` of
the integration tests: moto's HTTP server).
"""

from __future__ import annotations

import pytest

from tests.deploy_support import client, emulated_sagemaker


@pytest.fixture
def aws(monkeypatch):
    with emulated_sagemaker(monkeypatch) as double:
        yield double


@pytest.fixture
def with_autoscaling(aws):
    """`aws.autoscaling`, an Application Auto Scaling client on the same emulated AWS; a module
    takes it with `pytestmark = pytest.mark.usefixtures("with_autoscaling")`."""
    aws.autoscaling = client("application-autoscaling")
    return aws


@pytest.fixture
def deploy_env(account_env):
    """Valid account settings, plain output, and polls 0.01 s apart."""
    return {**account_env, "NO_COLOR": "1", "DEPLOY_POLL_INTERVAL": "0.01"}


@pytest.fixture
def env(deploy_env):
    return deploy_env
