"""demo/emulated_aws.py as a newcomer uses it, and what our clients make of an emulator's gaps."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import ClientError

from demo import emulated_aws
from tests.conftest import REPO_ROOT
from utils.aws_errors import translate_botocore_error
from utils.boto_session import create_clients

pytestmark = pytest.mark.integration
EMULATED = str(REPO_ROOT / "demo" / "emulated_aws.py")


def _emulated(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, EMULATED, *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_env_exports_the_region_for_the_aws_cli_v1_too(aws):
    exports = _emulated("env", "--endpoint-url", aws).stdout.splitlines()
    assert "export AWS_REGION=ca-central-1" in exports
    assert "export AWS_DEFAULT_REGION=ca-central-1" in exports  # pip's awscli reads only this


def test_seed_twice_is_fine(aws):
    again = _emulated("seed", "--endpoint-url", aws)  # the fixture has seeded once already
    assert again.returncode == 0, again.stderr
    assert "role    arn:aws:iam::123456789012:role/SageMakerExecutionRole" in again.stdout
    images = boto3.client("ecr", endpoint_url=aws, region_name=emulated_aws.REGION).list_images(
        repositoryName="plmscw-inference")["imageIds"]
    assert [image.get("imageTag") for image in images] == ["latest"]


def test_seed_without_an_emulator_is_one_clear_error():
    url = f"http://127.0.0.1:{emulated_aws.free_port()}"  # nothing listens there
    result = _emulated("seed", "--endpoint-url", url)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert f"Is the emulator running at {url}?" in result.stderr
    assert "demo/emulated_aws.py start" in result.stderr


def test_an_html_500_is_not_retried_and_reads_as_one_line(aws, monkeypatch):
    """moto's server answers UpdateEndpoint (which it lacks) with an HTML error page."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    (sagemaker,) = create_clients(boto3.Session(region_name=emulated_aws.REGION), "sagemaker",
                                  quiet=True)
    sent = []
    sagemaker.meta.events.register("before-send.sagemaker.UpdateEndpoint",
                                   lambda **kwargs: sent.append(1))
    with pytest.raises(ClientError) as caught:
        sagemaker.update_endpoint(EndpointName="qc", EndpointConfigName="qc-2")
    assert len(sent) == 1 and caught.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    error = translate_botocore_error(caught.value)
    assert error.exit_code == 3
    assert error.message == "UpdateEndpoint failed: HTTP 500 with an HTML page instead of an AWS answer"
    assert "may not implement UpdateEndpoint" in error.hints[0]


def test_aws_own_500s_are_still_retried(aws, monkeypatch):
    """A JSON 500 (InternalFailure) is the service's own transient error: retried as before."""
    import json

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    (sagemaker,) = create_clients(boto3.Session(region_name=emulated_aws.REGION), "sagemaker",
                                  quiet=True)
    sent = []

    def answer_500(request, **_):
        from botocore.awsrequest import AWSResponse

        sent.append(1)
        body = json.dumps({"__type": "InternalFailure", "message": "try again"}).encode()
        raw = type("Raw", (), {"stream": lambda self, **_: iter([body])})()
        return AWSResponse(request.url, 500, {"content-type": "application/x-amz-json-1.1"}, raw)

    sagemaker.meta.events.register("before-send.sagemaker.ListEndpoints", answer_500)
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # botocore's backoff
    with pytest.raises(ClientError) as caught:
        sagemaker.list_endpoints()
    assert caught.value.response["Error"]["Code"] == "InternalFailure"
    assert len(sent) > 1


def test_redeploying_to_an_emulated_endpoint_fails_in_one_clear_block(user_env, tmp_path):
    from tests.integration.conftest import run_script

    arn_file = tmp_path / "model_arn.txt"
    packaged = run_script("utils/package-model.py", "-o", str(arn_file), env=user_env)
    assert packaged.returncode == 0, packaged.stderr
    deploy = ("deploy-model.py", "-a", arn_file.read_text().strip(), "-e", "qc-again")
    assert run_script(*deploy, env=user_env).returncode == 0
    again = run_script(*deploy, env=user_env)
    assert again.returncode == 3, again.stderr
    assert "UpdateEndpoint failed: HTTP 500 with an HTML page instead of an AWS answer" in again.stderr
    assert "<html" not in again.stderr.lower() and "Traceback" not in again.stderr
    assert "Endpoint override (AWS_ENDPOINT_URL)" in again.stdout + again.stderr
