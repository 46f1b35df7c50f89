"""The packaging entry scripts stay light on the argument-error path (issue 2).

Each case runs the real script in a fresh interpreter (nothing imported by the test session can
mask an import) and reports which heavy libraries were in `sys.modules` when it exited. boto3 and
the SageMaker SDK must never be loaded before the run's input has been accepted; botocore is
loaded by exactly one check, package-model's instance-type check (botocore's service model lists
the valid types), so it is absent wherever that check does not run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ACCOUNT_ENV, REPO_ROOT

HEAVY = ("boto3", "botocore", "sagemaker", "sklearn", "numpy", "joblib")
DRIVER = """\
import runpy, sys
script, *args = sys.argv[1:]
sys.argv = [script, *args]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exit:
    loaded = [name for name in {heavy!r} if name in sys.modules]
    print("EXIT", exit.code, ",".join(loaded) or "-", file=sys.__stdout__)
"""


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, set[str],
                                                                                     str]:
    """(exit code, heavy modules loaded, stderr) of `script args` in a clean interpreter."""
    clean = {"PATH": os.environ["PATH"], "NO_COLOR": "1", **(env or {})}
    result = subprocess.run([sys.executable, "-c", DRIVER.format(heavy=HEAVY), script, *args],
                            cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=60)
    line = next(line for line in result.stdout.splitlines() if line.startswith("EXIT "))
    _, code, loaded = line.split(" ", 2)
    return int(code), set() if loaded == "-" else set(loaded.split(",")), result.stderr


PACKAGE = "utils/package-model.py"
LISTING = "utils/list_model_packages.py"


@pytest.mark.parametrize("script, args, env, message", [
    (PACKAGE, ["--instance-type"], {}, "expected one argument"),
    (PACKAGE, ["--preflight-timeout", "soon"], {}, "must be a number"),
    (PACKAGE, ["--no-such-flag"], {}, "unrecognized arguments"),
    (PACKAGE, [], {**ACCOUNT_ENV, "PREFLIGHT_TIMEOUT": "-1"}, "PREFLIGHT_TIMEOUT='-1' is invalid"),
    (LISTING, ["--no-such-flag"], {}, "unrecognized arguments"),
    (LISTING, [], {"MODEL_PACKAGE_ALL_STATUSES": "maybe"}, "MODEL_PACKAGE_ALL_STATUSES"),
    (LISTING, [], {}, "AWS_REGION"),
])
def test_usage_errors_load_no_aws_library(script, args, env, message):
    code, loaded, stderr = run_script(script, *args, env=env)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert loaded == set(), f"{script} loaded {sorted(loaded)} before refusing its input"


@pytest.mark.parametrize("args, env, message", [
    ([], {}, "Missing Required Environment Variables"),
    (["--sklearn-image-version", "1.2-1"], {}, "AWS_ACCOUNT"),
    (["-s", "Bad_Stack", "--sklearn-image-version", "one"], ACCOUNT_ENV, "--stack 'Bad_Stack'"),
    (["--image-uri", "has space"], ACCOUNT_ENV, "Invalid image URI"),
])
def test_package_model_settings_errors_load_neither_boto3_nor_the_sdk(args, env, message):
    code, loaded, stderr = run_script(PACKAGE, *args, env=env)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    # Only the instance-type check's botocore is allowed: no session, no client, no SDK, and the
    # model is not loaded into this process either.
    assert loaded <= {"botocore"}, f"loaded {sorted(loaded)}"
