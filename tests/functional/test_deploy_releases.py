"""Releases: every verified deploy is a numbered release, recorded in AWS as tags and read back.

moto plays SageMaker and STS; the double plays UpdateEndpoint.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import ACCOUNT
from tests.deploy_support import (
    deploy,
    one_json_document,
    register_package,
    tags_of,
)

SHA = "ab" * 32


@pytest.fixture
def aws(aws):
    """The shared double, with one Approved package registered: `aws.arn`."""
    aws.arn = register_package(aws.sagemaker)
    return aws


@pytest.fixture
def env(account_env):
    return {**account_env, "NO_COLOR": "1"}


def releases(aws, name="qc-rel"):
    from modules.deploy_releases import list_releases

    return list_releases(aws.sagemaker, name)


@pytest.fixture
def git_tree(tmp_path, monkeypatch):
    """deploy-model runs in a git work tree with one commit: the release records its HEAD."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "train.py").write_text("print('model')\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "train")
    monkeypatch.chdir(tmp_path)
    return git("rev-parse", "HEAD")


def test_a_verified_create_is_release_1_with_its_facts_on_config_model_and_endpoint(
        aws, env, capsys, git_tree):
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
    assert release.commit == git_tree
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


def test_no_git_repository_records_none_and_changes_record_dirty(tmp_path, git_tree):
    from modules.deploy_releases import git_commit

    assert git_commit(tmp_path / "train.py") == "none"  # not a directory: no repository
    assert git_commit(tmp_path) == git_tree
    (tmp_path / "train.py").write_text("print('changed')\n")
    assert git_commit(tmp_path) == f"{git_tree}-dirty"


# --- --keep-releases ----------------------------------------------------------------------------


def configs(aws):
    from tests.sagemaker_double import resources

    return resources(aws.sagemaker)


def test_updates_keep_the_last_n_releases_and_delete_older_ones(aws, env, capsys):
    assert deploy(aws, env, "-e", "qc-rel") == 0
    for _ in range(3):
        aws.update_takes(1)
        assert deploy(aws, env, "-e", "qc-rel", "--keep-releases", "2") == 0
    kept = releases(aws)
    assert [r.number for r in kept] == [4, 3]
    state = configs(aws)
    assert sorted(state["configs"]) == sorted(r.config_name for r in kept)
    assert sorted(state["models"]) == sorted(m for r in kept for m in r.model_names)
    assert "Removing release 2 of qc-rel (beyond the last 2)" in capsys.readouterr().out


def test_default_keeps_three_and_env_keep_releases_is_read(aws, env, capsys):
    assert deploy(aws, env, "-e", "qc-rel") == 0
    for _ in range(3):
        aws.update_takes(1)
        assert deploy(aws, env, "-e", "qc-rel") == 0
    assert [r.number for r in releases(aws)] == [4, 3, 2]
    aws.update_takes(1)
    assert deploy(aws, {**env, "KEEP_RELEASES": "1"}, "-e", "qc-rel") == 0
    assert [r.number for r in releases(aws)] == [5]
    assert len(configs(aws)["configs"]) == 1


def test_an_older_release_that_another_run_retagged_is_left_alone(aws, env, capsys):
    assert deploy(aws, env, "-e", "qc-rel") == 0
    [first] = releases(aws)
    sm = aws.sagemaker
    model_arn = sm.describe_model(ModelName=first.model_names[0])["ModelArn"]
    sm.add_tags(ResourceArn=model_arn, Tags=[{"Key": "DeployRunId", "Value": "someone-else"}])
    aws.update_takes(1)
    assert deploy(aws, env, "-e", "qc-rel", "--keep-releases", "1") == 0
    state = configs(aws)
    assert first.config_name not in state["configs"]  # proven ours: deleted
    assert first.model_names[0] in state["models"]  # no longer carries its run id: kept


def test_a_config_the_endpoint_serves_is_never_pruned_even_if_old(aws, env, capsys):
    from modules.deploy_releases import Release, configs_to_keep

    def release(number, config):
        return Release(number, config, (), None, None, None, None, None, None, None)

    history = [release(3, "c3"), release(2, "c2"), release(1, "c1")]
    assert configs_to_keep(history, 1, "c1") == {"c1"}
    assert configs_to_keep(history, 2, "c1") == {"c1", "c3"}
    # a rollback release re-uses a config: it takes no second place
    assert configs_to_keep([release(4, "c2"), *history], 2, "c2") == {"c2", "c3"}


@pytest.mark.parametrize("value", ["0", "-1", "two"])
@pytest.mark.parametrize("given_by", ["flag", "env"])
def test_keep_releases_is_validated_before_any_aws_call(aws, env, capsys, value, given_by):
    before = dict(aws.calls)
    args = ["--keep-releases", value] if given_by == "flag" else []
    env = env if given_by == "flag" else {**env, "KEEP_RELEASES": value}
    with pytest.raises(SystemExit) as exit_info:
        deploy(aws, env, "-e", "qc-rel", *args)
    assert exit_info.value.code == 2
    assert "--keep-releases" in capsys.readouterr().err
    assert aws.calls == before  # nothing reached SageMaker


# --- failed attempts ----------------------------------------------------------------------------


def test_failed_updates_are_recorded_on_the_endpoint_the_last_three(aws, env, capsys):
    from modules.deploy_releases import read_history

    assert deploy(aws, env, "-e", "qc-rel") == 0
    for _ in range(4):
        aws.update_takes(1, outcome="RolledBack", failure_reason="ping failed")
        assert deploy(aws, env, "-e", "qc-rel") == 4
    history = read_history(aws.sagemaker, "qc-rel")
    assert len(history.failed) == 3
    # rolled back by SageMaker: a failed update, InService on the old config
    assert {f.status for f in history.failed} == {"update-DeployFailedError:InService"}
    assert all(f.version == "1" and f.caller.startswith("arn:aws:sts::") for f in history.failed)
    assert history.live.number == 1


def test_pruning_a_release_with_a_shadow_variant_removes_the_shadows_model_too(aws, env, capsys):
    from tests.sagemaker_double import resources

    assert deploy(aws, env, "-e", "qc-rel") == 0
    assert deploy(aws, env, "-e", "qc-rel", "--shadow", "--shadow-sampling", "20") == 0
    shadow_config = aws.sagemaker.describe_endpoint(EndpointName="qc-rel")["EndpointConfigName"]
    [shadow] = aws.sagemaker.describe_endpoint_config(
        EndpointConfigName=shadow_config)["ShadowProductionVariants"]
    assert deploy(aws, env, "-e", "qc-rel", "--remove-variant", "shadow",
                  "--keep-releases", "1") == 0
    state = resources(aws.sagemaker)
    assert shadow_config not in state["configs"]
    assert shadow["ModelName"] not in state["models"]
    assert len(state["configs"]) == 1 and len(state["models"]) == 1
