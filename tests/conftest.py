"""Shared fixtures. Every test is isolated from the developer's real AWS settings."""

from __future__ import annotations

import pytest

# Variables a developer's shell may hold that would change what the scripts do.
_ISOLATED_VARS = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_LOGS", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCOUNT", "DATA_BUCKET",
    "AI_INPUT_QUEUE_URL", "SAGEMAKER_EXECUTION_ROLE_ARN", "MODEL_PACKAGE_ARN", "MODEL_PACKAGE_GROUP",
    "MODEL_PACKAGE_GROUP_NAME", "INSTANCE_TYPE", "INSTANCE_COUNT", "ENDPOINT_NAME", "STACK",
    "REPO_NAME", "IMPORT_BRANCH_NAME", "MODEL_ARN_FILE", "ENDPOINT_NAME_FILE", "ARTIFACTS_DIR",
    "IMAGE_URI", "DEPLOY_TIMEOUT", "DEPLOY_POLL_INTERVAL", "SMOKE_TEST_DATA", "CLASS_LABELS",
    "NO_COLOR", "XDG_STATE_HOME", "SAGEMAKER_PROGRAM", "SAGEMAKER_SUBMIT_DIRECTORY",
    "SAMPLE_DATA", "SKLEARN_IMAGE_VERSION", "PREFLIGHT_TIMEOUT", "MODEL_PACKAGE_FILTER",
    "MODEL_PACKAGE_ALL_STATUSES",
    # deploy-model.py and utils/delete_endpoint.py
    "TAG", "ROLLBACK_ALARM", "DEPLOYMENT_STRATEGY", "DEPLOY_STEP_SIZE", "DEPLOY_STEP_WAIT",
    "KEEP_PREVIOUS", "NO_MONITOR", "SKIP_ROLLBACK", "DRY_RUN", "DELETE_TIMEOUT", "DELETE_IF_EXISTS",
    # utils/reconcile.py
    "RECONCILE_APPLY", "RECONCILE_GRACE_PERIOD", "RECONCILE_LIMIT", "RECONCILE_SCOPE",
)

ACCOUNT = "123456789012"
REGION = "ca-central-1"
ACCOUNT_ENV = {
    "AWS_REGION": REGION,
    "AWS_ACCOUNT": ACCOUNT,
    "DATA_BUCKET": "plmscw-sagemaker-data-dev",
    "AI_INPUT_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/ai-queue",
    "SAGEMAKER_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecutionRole",
}


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch, tmp_path):
    """Fake credentials, no profile or config file, no endpoint override, a private state dir."""
    for name in _ISOLATED_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("DEPLOY_MODEL_STATE_DIR", str(tmp_path / "state"))
    yield


@pytest.fixture
def account_env() -> dict[str, str]:
    """Valid account-level settings, as a mapping to pass to main(argv, env)."""
    return dict(ACCOUNT_ENV)


REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def load_script(relative_path: str):
    """Import an entry script whose file name has a hyphen (e.g. utils/package-model.py)."""
    import importlib.util

    path = REPO_ROOT / relative_path
    name = "script_" + path.stem.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
