"""Issue 9: output files of package-model.py and deploy-model.py are checked before any AWS call,
and a symlink or device given as the output is written through, never replaced."""
# ruff: noqa: F811 - fixtures imported from tests/packaging_support.py are test arguments

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ACCOUNT_ENV, load_script
from tests.deploy_support import EMPTY, deploy_script, register_package
from tests.hardening_support import character_device
from tests.packaging_support import (  # noqa: F401
    aws_account,
    bucket_keys,
    cached_preflight,
    good_artifacts,
    registry_state,
)
from tests.sagemaker_double import resources

PACKAGE = load_script("utils/package-model.py")


@pytest.fixture
def aws(aws):
    """The shared double, with one Approved package registered: `aws.arn`."""
    aws.arn = register_package(aws.sagemaker)
    return aws


def _unwritable(monkeypatch, path: Path) -> None:
    # Permission bits do not stop root (the test may run as root): ask os.access's answer.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == path
                        else real_access(p, mode))


def _loop(tmp_path: Path) -> Path:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return loop


def test_deploy_refuses_a_symlink_loop_output_before_any_aws_call(aws, deploy_env, tmp_path,
                                                                   capsys):
    code = deploy_script().main(["-a", aws.arn, "-e", "qc-out", "--output-file", str(_loop(tmp_path))],
                                deploy_env)
    assert code == 2
    assert "symlink loop" in capsys.readouterr().err
    assert resources(aws.sagemaker) == EMPTY


def test_deploy_refuses_an_unwritable_output_file_before_the_deploy(aws, deploy_env, tmp_path,
                                                                     capsys, monkeypatch):
    _unwritable(monkeypatch, tmp_path)
    code = deploy_script().main(["-a", aws.arn, "-e", "qc-out", "--output-file", str(tmp_path / "name.txt")],
                                deploy_env)
    assert code == 2
    assert "is not writable" in capsys.readouterr().err
    assert resources(aws.sagemaker) == EMPTY


def test_deploy_writes_through_a_symlinked_output_file(aws, deploy_env, tmp_path, capsys):
    real = tmp_path / "real.txt"
    link = tmp_path / "name.txt"
    link.symlink_to(real)
    assert deploy_script().main(["-a", aws.arn, "-e", "qc-out", "--output-file", str(link)], deploy_env) == 0
    assert link.is_symlink() and real.read_text() == "qc-out\n"


def test_package_refuses_a_symlink_loop_output_before_any_aws_call(
        good_artifacts, aws_account, cached_preflight, tmp_path, capsys):
    env = {**ACCOUNT_ENV, "ARTIFACTS_DIR": str(good_artifacts)}
    assert PACKAGE.main(["-o", str(_loop(tmp_path))], env) == 2
    assert "symlink loop" in capsys.readouterr().err
    assert bucket_keys(aws_account["s3"]) == []
    assert registry_state(aws_account["sagemaker"]) == {"groups": [], "packages": []}


def test_package_to_a_device_keeps_it_a_device(good_artifacts, aws_account, cached_preflight,
                                               capsys, tmp_path):
    env = {**ACCOUNT_ENV, "ARTIFACTS_DIR": str(good_artifacts)}
    device = character_device(tmp_path)
    before = os.stat(device)
    assert PACKAGE.main(["-o", str(device)], env) == 0, capsys.readouterr().err
    after = os.lstat(device)
    assert (after.st_mode, after.st_rdev) == (before.st_mode, before.st_rdev)
