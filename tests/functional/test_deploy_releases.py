"""Releases: every verified deploy is a numbered release, recorded in AWS as tags and read back.

moto plays SageMaker and STS; the double plays UpdateEndpoint.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import ACCOUNT
from tests.deploy_support import (
    emulated_sagemaker,
    one_json_document,
    register_package,
    run_deploy,
    tags_of,
    timing,
)

SHA = "ab" * 32


@pytest.fixture
def aws(monkeypatch):
    with emulated_sagemaker(monkeypatch) as double:
        double.arn = register_package(double.sagemaker)
        yield double


@pytest.fixture
def env(account_env):
    return {**account_env, "NO_COLOR": "1"}


def deploy(aws, env, *args):
    return run_deploy(["-a", aws.arn, *args], env, timing())


def releases(aws, name="qc-rel"):
    from modules.deploy_releases import list_releases

    return list_releases(aws.sagemaker, name)


def test_a_verified_create_is_release_1_with_its_facts_on_config_model_and_endpoint(
        aws, env, capsys):
    assert deploy(aws, env, "-e", "qc-rel", "--json") == 0
    doc = one_json_document(capsys.readouterr().out)
    assert doc["release"] == 1
    [release] = releases(aws)
    assert (release.number, release.state) == (1, "live")
    assert release.config_name == doc["endpoint_config_name"]
    assert release.model_names == (doc["model_name"],)
    assert release.package_arn == aws.arn and release.version == "1"
    assert release.run_id == doc["run_id"]
    assert release.caller == f"arn:aws:sts::{ACCOUNT}:user/moto"  # moto's GetCallerIdentity
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", release.time)
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", release.commit)  # the tests run in a git tree
    sm = aws.sagemaker
    model_arn = sm.describe_model(ModelName=doc["model_name"])["ModelArn"]
    assert tags_of(sm, model_arn)["DeployRelease"] == "1"
    endpoint_arn = sm.describe_endpoint(EndpointName="qc-rel")["EndpointArn"]
    assert tags_of(sm, endpoint_arn)["DeployRelease"] == "1"


def test_an_update_is_the_next_release_and_the_kept_one_is_previous(aws, env, capsys):
    assert deploy(aws, env, "-e", "qc-rel") == 0
    capsys.readouterr()
    aws.update_takes(1)
    assert deploy(aws, env, "-e", "qc-rel", "--keep-previous", "--json") == 0
    doc = one_json_document(capsys.readouterr().out)
    assert doc["release"] == 2
    second, first = releases(aws)
    assert (second.number, second.state, second.config_name) == (
        2, "live", doc["endpoint_config_name"])
    assert (first.number, first.state, first.config_name) == (
        1, "previous", doc["previous_endpoint_config_name"])
    from modules.deploy_releases import kept_release_configs

    assert set(kept_release_configs(aws.sagemaker, "qc-rel")) == {first.config_name,
                                                                 second.config_name}


def test_a_failed_update_records_no_release(aws, env, capsys):
    assert deploy(aws, env, "-e", "qc-rel") == 0
    aws.update_takes(2, outcome="RolledBack", failure_reason="ping failed")
    assert deploy(aws, env, "-e", "qc-rel") != 0
    [release] = releases(aws)
    assert (release.number, release.state) == (1, "live")


def test_another_endpoint_whose_name_starts_the_same_is_not_mixed_in(aws, env, capsys):
    assert deploy(aws, env, "-e", "qc-rel") == 0
    assert deploy(aws, env, "-e", "qc-rel-2") == 0
    assert [r.number for r in releases(aws)] == [1]
    assert [r.number for r in releases(aws, "qc-rel-2")] == [1]


def test_release_tag_values_keep_to_sagemakers_characters_and_length():
    from modules.deploy_releases import tag_value

    assert tag_value("arn:aws:sts::1:assumed-role/r/a,b") == "arn:aws:sts::1:assumed-role/r/a_b"
    assert len(tag_value("x" * 300)) == 256


def test_no_git_repository_records_none(tmp_path):
    from modules.deploy_releases import git_commit

    assert git_commit(tmp_path) == "none"
