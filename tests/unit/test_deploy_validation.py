"""Pre-flight validation of a deploy: pure checks, no AWS (modules/deploy_validation.py)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime

import pytest

from modules import deploy_validation as v
from modules.deploy_settings import DeploymentStrategy
from tests.conftest import REPO_ROOT
from utils.errors import ValidationError

GOOD = "arn:aws:sagemaker:ca-central-1:123456789012:model-package/plmscwinferencemodelgroup/3"


def test_a_good_arn_is_split_into_its_parts():
    parsed = v.parse_model_package_arn(GOOD)
    assert (parsed.partition, parsed.region, parsed.account, parsed.group, parsed.version) == (
        "aws", "ca-central-1", "123456789012", "plmscwinferencemodelgroup", 3)
    assert v.parse_model_package_arn(GOOD.replace("arn:aws:", "arn:aws-cn:")).partition == "aws-cn"


@pytest.mark.parametrize("arn, problem", [
    ("", "it is empty"),
    ("plmscw/3", "is not an ARN"),
    ("arn:aws:s3:::my-bucket/model.tar.gz", "ARN of the 's3' service, not SageMaker"),
    ("arn:aws:sagemaker:canada:123456789012:model-package/g/1", "region 'canada'"),
    ("arn:aws:sagemaker:ca-central-1:1234:model-package/g/1", "account '1234' is not a 12-digit"),
    ("arn:aws:sagemaker:ca-central-1:123456789012:model-package/g", "the version is missing"),
    ("arn:aws:sagemaker:ca-central-1:123456789012:model-package/g/", "the version is missing"),
    ("arn:aws:sagemaker:ca-central-1:123456789012:model-package/g/latest",
     "version 'latest' must be a whole number"),
    ("arn:aws:sagemaker:ca-central-1:123456789012:model-package-group/g",
     "names the model package group 'g', not a version"),
    ("arn:aws:sagemaker:ca-central-1:123456789012:model/g/1", "names a model, not a model package"),
    ("arn:aws:sagemaker:ca-central-1:123456789012:model-package/bad_group/1", "group name"),
])
def test_each_arn_problem_is_named(arn, problem):
    with pytest.raises(ValidationError) as caught:
        v.parse_model_package_arn(arn)
    assert caught.value.message.startswith("Invalid model package ARN: ")
    assert problem in caught.value.message


def test_a_group_arn_says_how_to_pick_a_version():
    with pytest.raises(ValidationError) as caught:
        v.parse_model_package_arn(GOOD.replace("model-package/", "model-package-group/")
                                  .rsplit("/", 1)[0])
    hints = " ".join(caught.value.hints)
    assert "--model-package-group" in hints and "list_model_packages.py" in hints


def test_region_must_match_aws_region():
    with pytest.raises(ValidationError) as caught:
        v.check_arn_region(v.parse_model_package_arn(GOOD), "us-east-1")
    assert "in region ca-central-1 but AWS_REGION is us-east-1" in caught.value.message


@pytest.mark.parametrize("name", ["qc", "qc-endpoint-prod", "a" * 63, "A1--b2"])
def test_valid_endpoint_names(name):
    assert v.validate_endpoint_name(name) == name


@pytest.mark.parametrize("name, problem", [
    ("", "empty"), ("a" * 64, "64 characters long"), ("qc_prod", "'_'"), ("qc.prod", "'.'"),
    ("-qc", "hyphen"), ("qc-", "hyphen"), ("qc prod", "' '"),
])
def test_invalid_endpoint_names(name, problem):
    with pytest.raises(ValidationError) as caught:
        v.validate_endpoint_name(name)
    assert caught.value.message.startswith("Invalid endpoint name: ")
    assert problem in caught.value.message


def test_generated_names_fit_and_carry_a_timestamp():
    now = datetime(2026, 1, 15, 9, 30, 5)
    assert v.generated_endpoint_name("plmscw", now) == "plmscw-endpoint-20260115-093005"
    long_name = v.generated_endpoint_name("x" * 80 + "_stack", now)
    assert len(long_name) <= 63 and long_name.endswith("-endpoint-20260115-093005")


KNOWN = ("ml.c5.xlarge", "ml.c5.2xlarge", "ml.t2.medium", "ml.g5.xlarge", "ml.p6-b200.48xlarge",
         "ml.inf2.xlarge")


@pytest.mark.parametrize("instance_type, problem", [
    ("c5.2xlarge", "must start with 'ml.'"),
    ("ml.c5", "format ml.<family>.<size>"),
    ("ml..large", "format ml.<family>.<size>"),
    ("ml.nope.large", "is not a SageMaker real-time inference instance type"),
])
def test_bad_instance_types(instance_type, problem):
    with pytest.raises(ValidationError) as caught:
        v.validate_instance_type(instance_type, known=KNOWN)
    assert caught.value.message.startswith("Invalid instance type: ")
    assert problem in caught.value.message
    assert any("ml.c5.2xlarge" in hint for hint in caught.value.hints)


def test_a_near_miss_gets_a_suggestion():
    with pytest.raises(ValidationError) as caught:
        v.validate_instance_type("ml.c5.2xlarg", known=KNOWN)
    assert "Did you mean ml.c5.2xlarge" in caught.value.hints[0]


@pytest.mark.parametrize("instance_type", ["ml.g5.xlarge", "ml.p6-b200.48xlarge", "ml.inf2.xlarge"])
def test_accelerated_types_warn_with_recommendations(instance_type):
    [warning] = v.validate_instance_type(instance_type, known=KNOWN)
    assert "wasteful for a linear model" in warning and "ml.c5.xlarge" in warning
    assert "ml.t2.medium" in warning


def test_cpu_and_local_types_pass_quietly():
    assert v.validate_instance_type("ml.c5.2xlarge", known=KNOWN) == []
    assert v.validate_instance_type("local", known=()) == []


def test_the_list_comes_from_botocore():
    types = v.realtime_instance_types()
    assert "ml.c5.2xlarge" in types and "ml.t2.medium" in types and len(types) > 100
    assert all(t.startswith("ml.") for t in types)


def test_tags_parse_and_refuse_bad_ones():
    assert v.parse_tag("team=ml") == ("team", "ml")
    assert v.parse_tag("cost-centre = 42 ") == ("cost-centre", "42")
    for raw in ("novalue", "=x", "aws:owner=me", "k" * 129 + "=v", "emoji=\u2603\ufe0f<"):
        with pytest.raises(argparse.ArgumentTypeError):
            v.parse_tag(raw)


def test_tag_limits():
    reserved = v.RESERVED_TAG_KEYS
    # deploy-model's own five tags plus room for the release record (six keys, four entries).
    adds = 5 + v.RELEASE_TAG_BUDGET
    v.validate_tags([(f"k{i}", "v") for i in range(50 - adds)], reserved)
    with pytest.raises(ValidationError, match=f"plus the {adds} deploy-model adds exceed "
                                              "SageMaker's limit of 50"):
        v.validate_tags([(f"k{i}", "v") for i in range(51 - adds)], reserved)
    for key in ("DeployRelease", "DeployRelease-3", "DeployFailed-x"):
        with pytest.raises(ValidationError, match="set by deploy-model itself"):
            v.validate_tags([(key, "x")], reserved)
    with pytest.raises(ValidationError, match="more than once"):
        v.validate_tags([("a", "1"), ("a", "2")], reserved)
    with pytest.raises(ValidationError, match="set by deploy-model itself"):
        v.validate_tags([("ModelPackageArn", "x")], reserved)


def test_canary_and_linear_need_two_instances_and_sane_steps():
    with pytest.raises(ValidationError, match="--instance-count of at least 2"):
        v.validate_strategy("canary", 1, 50, 300)
    with pytest.raises(ValidationError, match="10-50 %"):
        v.validate_strategy("linear", 4, 60, 300)
    with pytest.raises(ValidationError, match="0-3600"):
        v.validate_strategy("all-at-once", 1, 50, 4000)
    assert v.validate_strategy("linear", 4, 25, 60) == DeploymentStrategy("linear", 25, 60)


def test_smoke_test_data_is_checked_before_any_deploy(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"data": [[1, 2], [3, 4]]}))
    assert v.load_smoke_test(str(good)).n_rows == 2
    with pytest.raises(ValidationError, match="not found"):
        v.load_smoke_test(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [[1, 2]')
    with pytest.raises(ValidationError, match="Invalid JSON"):
        v.load_smoke_test(str(bad))


_CHILD = """
import runpy, sys
sys.argv = ["deploy-model.py", "-a", sys.argv[1]]
try:
    runpy.run_path("deploy-model.py", run_name="__main__")
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("boto3", "botocore", "sagemaker", "sagemaker_core") if m in sys.modules)
print(code, ",".join(heavy) or "-", file=sys.__stdout__)
"""


@pytest.mark.parametrize("arn", ["not-an-arn", GOOD.rsplit("/", 1)[0]])
def test_a_bad_arn_is_refused_without_importing_boto3_or_botocore(arn):
    result = subprocess.run([sys.executable, "-c", _CHILD, arn], cwd=REPO_ROOT, text=True,
                            capture_output=True, timeout=60)
    assert result.stdout.split() == ["2", "-"], result.stderr
    assert "Invalid model package ARN" in result.stderr


@pytest.mark.parametrize("typed", ["c5.xlarge", "ML.C5.XLARGE", "ml.C5.xlarge", "C5.XLARGE"])
def test_a_mistyped_instance_type_gets_the_real_name(typed):
    with pytest.raises(ValidationError) as caught:
        v.validate_instance_type(typed, known=KNOWN)
    assert caught.value.hints[0] == "Did you mean ml.c5.xlarge?"


def test_no_guess_for_a_type_sagemaker_does_not_offer():
    with pytest.raises(ValidationError) as caught:
        v.validate_instance_type("c9.huge", known=KNOWN)
    assert not any("Did you mean" in hint for hint in caught.value.hints)


@pytest.mark.parametrize("typed, meant", [("qc_prod", "qc-prod"), ("qc.prod", "qc-prod"),
                                          ("-qc-prod", "qc-prod"), ("qc prod_2", "qc-prod-2")])
def test_an_endpoint_name_with_underscores_gets_the_valid_one(typed, meant):
    with pytest.raises(ValidationError) as caught:
        v.validate_endpoint_name(typed)
    assert caught.value.hints[0] == f"Did you mean {meant}?"


def test_the_group_arn_hint_builds_no_arn_that_would_not_resolve():
    """SageMaker lower-cases the group in version ARNs: .../model-package/MyGroup/1 is wrong."""
    with pytest.raises(ValidationError) as caught:
        v.parse_model_package_arn(
            "arn:aws:sagemaker:ca-central-1:123456789012:model-package-group/MyGroup")
    hints = caught.value.hints
    assert hints[0] == "Pass --model-package-group MyGroup to deploy its latest Approved version."
    assert "list_model_packages.py --filter MyGroup" in hints[1]
    assert not any("model-package/MyGroup/" in hint for hint in hints)
