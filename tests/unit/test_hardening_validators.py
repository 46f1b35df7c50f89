"""Issue 9: validators accept ASCII only where AWS does (Unicode digits, trailing newlines)."""

from __future__ import annotations

import pytest

from modules import bundle_package, local_endpoint
from utils.env_validation import ENV_VARS

ACCOUNT = "123456789012"
FULLWIDTH = "１２３４５６７８９０１２"  # str.isdigit() and re's \d accept these; AWS does not
ARABIC_INDIC = "١٢٣٤٥٦٧٨٩٠١٢"


@pytest.mark.parametrize("name, value", [
    ("AWS_ACCOUNT", FULLWIDTH),
    ("AWS_ACCOUNT", ARABIC_INDIC),
    ("AWS_ACCOUNT", ACCOUNT + "\n"),
    ("SAGEMAKER_EXECUTION_ROLE_ARN", f"arn:aws:iam::{FULLWIDTH}:role/SageMaker"),
    ("SAGEMAKER_EXECUTION_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/Säge"),
    ("SAGEMAKER_EXECUTION_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/SageMaker\n"),
    ("AI_INPUT_QUEUE_URL", f"https://sqs.ca-central-1.amazonaws.com/{ARABIC_INDIC}/q"),
    ("AI_INPUT_QUEUE_URL", f"https://sqs.ca-central-1.amazonaws.com/{ACCOUNT}/qé"),
    ("AWS_REGION", "ca-central-١"),
    ("DATA_BUCKET", "١٢٣.١.١.١"),
])
def test_unicode_look_alikes_are_refused(name, value):
    assert ENV_VARS[name].check(value) is not None


@pytest.mark.parametrize("name, value", [
    ("AWS_ACCOUNT", ACCOUNT),
    ("SAGEMAKER_EXECUTION_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/service-role/SageMaker_1"),
    ("AI_INPUT_QUEUE_URL", f"https://sqs.ca-central-1.amazonaws.com/{ACCOUNT}/ai-queue"),
    ("AWS_REGION", "ca-central-1"),
])
def test_the_ascii_forms_still_pass(name, value):
    assert ENV_VARS[name].check(value) is None


@pytest.mark.parametrize("raw", ["²", "١", "٣", "-1", "0", "x", ""])
def test_odd_worker_counts_fall_back_to_the_default(raw):
    workers = local_endpoint._local_workers({"SAGEMAKER_MODEL_SERVER_WORKERS": raw})
    assert workers == local_endpoint.LOCAL_WORKERS


def test_a_package_version_in_unicode_digits_is_no_version():
    assert bundle_package._version_of("arn:aws:sagemaker:r:1:model-package/g/²") is None
    assert bundle_package._version_of("arn:aws:sagemaker:r:1:model-package/g/7") == 7
