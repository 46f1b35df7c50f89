"""utils/list_model_packages.py against moto: filters, statuses, order, all pages, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from modules.list_packages import list_model_packages
from tests.conftest import ACCOUNT_ENV, REGION, REPO_ROOT, load_script

SCRIPT = load_script("utils/list_model_packages.py")
SPEC = {"Containers": [{"Image": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/qc:latest",
                        "ModelDataUrl": "s3://bucket/model.tar.gz"}]}


@pytest.fixture
def sagemaker():
    with mock_aws():
        yield boto3.client("sagemaker", region_name=REGION)


def add(sagemaker, group, status="Approved", count=1):
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except sagemaker.exceptions.ClientError:
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    return [sagemaker.create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=SPEC, ModelApprovalStatus=status,
        ModelPackageDescription=f"{group} {status}")["ModelPackageArn"] for _ in range(count)]


def run(argv, capsys, env=None):
    code = SCRIPT.main(argv, dict(ACCOUNT_ENV) if env is None else env)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_nothing_found_is_not_an_error(sagemaker, capsys):
    code, out, err = run([], capsys)
    assert code == 0
    assert "No model package groups found" in out


def test_nothing_found_as_json(sagemaker, capsys):
    code, out, err = run(["--json", "--filter", "nothing"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["groups"] == [] and doc["packages"] == [] and doc["package_count"] == 0
    assert doc["filter"] == "nothing" and doc["region"] == REGION


def test_approved_only_by_default_newest_first(sagemaker, capsys):
    approved = add(sagemaker, "PLMSCWInferenceModelGroup", count=2)
    add(sagemaker, "PLMSCWInferenceModelGroup", status="PendingManualApproval")
    add(sagemaker, "PLMSCWInferenceModelGroup", status="Rejected")
    code, out, err = run(["--json"], capsys)
    doc = json.loads(out)
    assert code == 0
    assert [p["arn"] for p in doc["packages"]] == approved[::-1]
    assert {p["approval_status"] for p in doc["packages"]} == {"Approved"}
    assert doc["groups"][0]["package_count"] == 2
    assert "SageMaker Model Packages" in err  # progress on stderr in JSON mode


def test_all_statuses(sagemaker, capsys):
    arns = add(sagemaker, "G1") + add(sagemaker, "G1", status="PendingManualApproval") + \
        add(sagemaker, "G1", status="Rejected")
    code, out, err = run(["--all-statuses", "--json"], capsys)
    doc = json.loads(out)
    assert [p["arn"] for p in doc["packages"]] == arns[::-1]
    assert [p["approval_status"] for p in doc["packages"]] == \
        ["Rejected", "PendingManualApproval", "Approved"]


def test_all_statuses_from_env(sagemaker, capsys):
    add(sagemaker, "G1", status="PendingManualApproval")
    code, out, _ = run(["--json"], capsys, {**ACCOUNT_ENV, "MODEL_PACKAGE_ALL_STATUSES": "1"})
    assert json.loads(out)["package_count"] == 1


def test_filter_is_a_case_insensitive_substring_of_the_group(sagemaker, capsys):
    add(sagemaker, "PLMSCWInferenceModelGroup")
    add(sagemaker, "OtherGroup")
    code, out, _ = run(["--filter", "plmscw", "--json"], capsys)
    doc = json.loads(out)
    assert [g["name"] for g in doc["groups"]] == ["PLMSCWInferenceModelGroup"]
    assert {p["group"] for p in doc["packages"]} == {"PLMSCWInferenceModelGroup"}
    code, out, _ = run(["--json"], capsys, {**ACCOUNT_ENV, "MODEL_PACKAGE_FILTER": "other"})
    assert [g["name"] for g in json.loads(out)["groups"]] == ["OtherGroup"]


def test_readable_table(sagemaker, capsys):
    [arn] = add(sagemaker, "PLMSCWInferenceModelGroup")
    code, out, err = run([], capsys)
    assert code == 0
    assert "Group" in out and "Version" in out and "Approval" in out
    assert arn in out and "1 package(s) in 1 group(s)" in out


def test_group_without_approved_packages_hints_at_all_statuses(sagemaker, capsys):
    add(sagemaker, "G1", status="PendingManualApproval")
    code, out, _ = run([], capsys)
    assert code == 0 and "use --all-statuses" in out


def test_every_page_is_read(sagemaker):
    for index in range(5):
        add(sagemaker, f"Group{index}")
    arns = add(sagemaker, "Group0", count=6)
    listing = list_model_packages(sagemaker, page_size=2)
    assert len(listing.groups) == 5 and len(listing.packages) == 11
    assert [p["arn"] for p in listing.packages][:6] == arns[::-1]


def test_missing_region_is_a_usage_error(sagemaker, capsys):
    code, out, err = run([], capsys, env={})
    assert code == 2 and "AWS_REGION" in err and "Traceback" not in err


def test_json_error_document(capsys):
    code, out, err = run(["--json"], capsys, env={})
    assert code == 2
    assert json.loads(out)["exit_code"] == 2


def test_help_as_a_subprocess():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "utils/list_model_packages.py"),
                             "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "MODEL_PACKAGE_FILTER" in result.stdout and "exit codes:" in result.stdout


def test_secrets_never_appear_in_any_output(sagemaker, capsys, monkeypatch):
    from tests.packaging_support import SECRET_VALUES

    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)  # where boto3 reads them
    add(sagemaker, "PLMSCWInferenceModelGroup")
    env = {**ACCOUNT_ENV, **SECRET_VALUES}
    runs = [run([], capsys, env), run(["--json", "--all-statuses"], capsys, env),
            run(["--json"], capsys, {k: v for k, v in env.items() if k != "AWS_REGION"}),
            run(["--debug"], capsys, {**env, "AWS_REGION": "mars-north-1"})]
    assert [code for code, _, _ in runs] == [0, 0, 2, 2]
    everything = "".join(out + err for _, out, err in runs)
    for value in SECRET_VALUES.values():
        assert value not in everything
    assert "session token" in everything  # the credential source is named, never its value
