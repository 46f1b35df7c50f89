"""The ECR check of the serving image, against moto's ECR."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from modules.images import check_ecr_image, parse_ecr_image
from tests.conftest import REGION
from tests.packaging_support import DEFAULT_IMAGE, push_image
from utils.errors import AwsError

ECR = "123456789012.dkr.ecr.ca-central-1.amazonaws.com"


@pytest.fixture
def ecr():
    with mock_aws():
        yield boto3.client("ecr", region_name=REGION)


def test_pushed_image_passes_by_tag_and_by_digest(ecr):
    digest = push_image(ecr)
    check_ecr_image(ecr, parse_ecr_image(DEFAULT_IMAGE))
    check_ecr_image(ecr, parse_ecr_image(f"{ECR}/plmscw-inference@{digest}"))
    check_ecr_image(ecr, parse_ecr_image(f"{ECR}/plmscw-inference"))  # no tag: latest


def test_missing_repository_says_to_run_the_setup_script(ecr):
    with pytest.raises(AwsError) as caught:
        check_ecr_image(ecr, parse_ecr_image(DEFAULT_IMAGE))
    assert caught.value.message == f"Could not find image: {DEFAULT_IMAGE}"
    assert caught.value.details == ["ECR repository 'plmscw-inference' does not exist in account "
                                    "123456789012 (ca-central-1)"]
    assert ("artifacts/ecr-image-setup.sh --repository plmscw-inference --tag latest"
            in caught.value.hints[0])
    assert caught.value.exit_code == 3


def test_missing_tag_says_to_run_the_setup_script(ecr):
    push_image(ecr, tag="v1")
    with pytest.raises(AwsError) as caught:
        check_ecr_image(ecr, parse_ecr_image(DEFAULT_IMAGE))
    assert caught.value.message == f"Could not find image: {DEFAULT_IMAGE}"
    assert caught.value.details == ["ECR repository 'plmscw-inference' has no image 'latest'"]
    assert "artifacts/ecr-image-setup.sh" in caught.value.hints[0]


def test_other_ecr_errors_propagate():
    class Denied:
        def describe_images(self, **kwargs):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                              "DescribeImages")

    with pytest.raises(ClientError):
        check_ecr_image(Denied(), parse_ecr_image(DEFAULT_IMAGE))
