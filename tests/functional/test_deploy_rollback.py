"""--rollback / --to-release / --history against moto with the double (UpdateEndpoint).

A rollback goes through the same watched, verified blue/green update as a deploy, onto a kept
release's existing config; it creates and deletes nothing of its own, and becomes a release.
"""

from __future__ import annotations

import json

import pytest

from tests.deploy_support import (
    one_json_document,
    register_package,
    run_deploy,
    timing,
)
from tests.sagemaker_double import resources


@pytest.fixture
def aws(aws):
    """The shared double, with one Approved package registered: `aws.arn`."""
    aws.arn = register_package(aws.sagemaker)
    return aws


@pytest.fixture
def env(account_env):
    return {**account_env, "NO_COLOR": "1"}


def run(env, *args):
    return run_deploy(list(args), env, timing())


def released(aws, env, capsys, updates=2, name="qc-rb"):
    """Release 1 (create) and `updates` more; returns the configs by release number."""
    assert run(env, "-a", aws.arn, "-e", name) == 0
    for _ in range(updates):
        aws.update_takes(1)
        assert run(env, "-a", aws.arn, "-e", name) == 0
    capsys.readouterr()
    from modules.deploy_releases import list_releases

    return {r.number: r.config_name for r in list_releases(aws.sagemaker, name)}


def serving(aws, name="qc-rb"):
    return aws.sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"]


def history(aws, env, capsys, name="qc-rb"):
    capsys.readouterr()
    assert run(env, "-e", name, "--history", "--json") == 0
    return one_json_document(capsys.readouterr().out)


def test_rollback_switches_to_the_previous_release_and_becomes_a_release(aws, env, capsys):
    configs = released(aws, env, capsys)
    before = resources(aws.sagemaker)
    aws.update_takes(2)
    assert run(env, "-e", "qc-rb", "--rollback", "--json") == 0
    doc = one_json_document(capsys.readouterr().out)
    assert doc["action"] == "rolled back" and doc["release"] == 4
    assert serving(aws) == configs[2] == doc["endpoint_config_name"]
    [*_, request] = aws.update_requests
    assert request["EndpointConfigName"] == configs[2]
    assert "BlueGreenUpdatePolicy" in request["DeploymentConfig"]
    assert resources(aws.sagemaker) == before  # nothing created, nothing deleted
    shown = history(aws, env, capsys)
    assert shown["live_release"] == 4
    states = {r["release"]: (r["state"], r["config_name"], r["rollback_to"])
              for r in shown["releases"]}
    assert states == {4: ("live", configs[2], 2), 3: ("previous", configs[3], None),
                      2: ("previous", configs[2], None), 1: ("previous", configs[1], None)}


def test_rollback_to_a_named_release_and_back_again(aws, env, capsys):
    configs = released(aws, env, capsys)
    aws.update_takes(1)
    assert run(env, "-e", "qc-rb", "--to-release", "1") == 0
    assert serving(aws) == configs[1]
    aws.update_takes(1)
    assert run(env, "-e", "qc-rb", "--rollback") == 0  # previous = release 3's config
    assert serving(aws) == configs[3]
    assert history(aws, env, capsys)["live_release"] == 5


def test_a_failed_rollback_leaves_the_endpoint_on_what_it_served(aws, env, capsys):
    configs = released(aws, env, capsys)
    before = resources(aws.sagemaker)
    aws.update_takes(2, outcome="RolledBack", failure_reason="ping health check failed")
    assert run(env, "-e", "qc-rb", "--rollback", "--json") == 4
    doc = one_json_document(capsys.readouterr().out)
    assert "The rollback of qc-rb failed" in doc["error"]
    assert serving(aws) == configs[3]
    assert aws.sagemaker.describe_endpoint(EndpointName="qc-rb")["EndpointStatus"] == "InService"
    assert resources(aws.sagemaker) == before  # the kept releases are all still there
    shown = history(aws, env, capsys)
    assert shown["live_release"] == 3 and len(shown["failed"]) == 1


def test_a_rollback_that_fails_its_smoke_test_is_pointed_back(aws, env, capsys, tmp_path):
    configs = released(aws, env, capsys)
    before = resources(aws.sagemaker)
    smoke = tmp_path / "request.json"
    smoke.write_text(json.dumps({"data": [[1.0, 2.0]]}))
    aws.answer_invocations_with(json.dumps({"predictions": []}))  # breaks the contract
    aws.update_takes(1)
    aws.update_takes(1)  # pointing back
    assert run(env, "-e", "qc-rb", "--rollback", "--smoke-test-data", str(smoke)) == 4
    err = capsys.readouterr()
    assert "failed the smoke test" in err.err + err.out
    assert serving(aws) == configs[3]
    assert resources(aws.sagemaker) == before
    assert history(aws, env, capsys)["live_release"] == 3


def test_rollback_dry_run_shows_the_switch_and_changes_nothing(aws, env, capsys):
    configs = released(aws, env, capsys)
    calls = len(aws.update_requests)
    assert run(env, "-e", "qc-rb", "--rollback", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "Roll back to release 2" in out and configs[2] in out and configs[3] in out
    assert len(aws.update_requests) == calls and serving(aws) == configs[3]


@pytest.mark.parametrize(("args", "message"), [
    (["--to-release", "9"], "has no release 9"),
    (["--to-release", "3"], "already serves release 3"),
])
def test_rollback_refuses_a_release_it_cannot_use(aws, env, capsys, args, message):
    configs = released(aws, env, capsys)
    assert run(env, "-e", "qc-rb", *args) == 3
    assert message in capsys.readouterr().err
    assert serving(aws) == configs[3]


def test_rollback_with_nothing_earlier_is_refused(aws, env, capsys):
    released(aws, env, capsys, updates=0)
    assert run(env, "-e", "qc-rb", "--rollback") == 3
    assert "no earlier release" in capsys.readouterr().err


def test_a_pruned_release_cannot_be_rolled_back_to(aws, env, capsys):
    released(aws, env, capsys, updates=3)  # keeps 4, 3, 2
    assert run(env, "-e", "qc-rb", "--to-release", "1") == 3
    assert "has no release 1" in capsys.readouterr().err


def test_history_table_lists_live_previous_and_failed(aws, env, capsys):
    released(aws, env, capsys, updates=1)
    aws.update_takes(1, outcome="RolledBack", failure_reason="boom")
    assert run(env, "-a", aws.arn, "-e", "qc-rb") == 4
    capsys.readouterr()
    assert run(env, "-e", "qc-rb", "--history") == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert any(parts[:2] == ["2", "live"] for parts in lines)
    assert any(parts[:2] == ["1", "previous"] for parts in lines)
    assert "Failed attempt" in out and "InService" in out


@pytest.mark.parametrize("args", [
    ["--rollback", "-a", "arn:aws:sagemaker:ca-central-1:123456789012:model-package/g/1"],
    ["--rollback", "--history"],
    ["--history"],  # no -e
])
def test_release_actions_are_validated_before_any_aws_call(aws, env, capsys, args):
    before = dict(aws.calls)
    endpoint = [] if args == ["--history"] else ["-e", "qc-rb"]
    assert run(env, *endpoint, *args) == 2
    assert aws.calls == before


def test_rollback_needs_no_execution_role(aws, env, capsys):
    released(aws, env, capsys, updates=1)
    env = {k: v for k, v in env.items() if k != "SAGEMAKER_EXECUTION_ROLE_ARN"}
    aws.update_takes(1)
    assert run(env, "-e", "qc-rb", "--rollback") == 0
