"""Deploy fail-fast and AWS call counts (issue 3).

1. Time to refuse a bad model package ARN (`python deploy-model.py -a <bad>`, exit 2) as a ratio
   to a bare `python -c pass` start, measured interleaved in the same run; goal <= 4x. The
   refusal must also not have imported boto3/botocore (checked in the same child process).
2. The number of AWS API calls of a create and of an in-place update, counted at the botocore
   client in-process against moto with the test double (tests/sagemaker_double.py) playing
   UpdateEndpoint; both endpoints go InService at the first poll, so these are the fixed cost of
   a deploy: a real one adds one DescribeEndpoint per poll (backing off from 5 s to 30 s: about
   16 polls for a 6-minute create) plus CloudWatch Logs reads every 5 s once the log group exists.
"""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from benchmarks.common import BenchContext, Row

BAD_ARN = "arn:aws:sagemaker:ca-central-1:123456789012:model-package/qc"  # no version
RUNS = 15
GOAL_RATIO = 4.0
_REFUSAL_CHILD = """
import runpy, sys
sys.argv = ["deploy-model.py", "-a", sys.argv[1]]
try:
    runpy.run_path("deploy-model.py", run_name="__main__")
except SystemExit as exit:
    code = exit.code
heavy = [m for m in ("boto3", "botocore") if m in sys.modules]
sys.__stdout__.write(f"{code} {','.join(heavy) or '-'}\\n")
"""
_ISOLATION = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
              "AWS_REGION": "ca-central-1", "AWS_CONFIG_FILE": os.devnull,
              "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true",
              "SAGEMAKER_EXECUTION_ROLE_ARN":
                  "arn:aws:iam::123456789012:role/SageMakerExecutionRole", "NO_COLOR": "1"}


def run(context: BenchContext) -> list[Row]:
    rows = refusal_rows(context.repo_root)
    rows += call_count_rows()
    return rows


# --- 1. fail-fast ------------------------------------------------------------------------------

def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in ("MODEL_PACKAGE_ARN", "MODEL_PACKAGE_GROUP",
                                                     "PYTHONDONTWRITEBYTECODE")}
    env.update(_ISOLATION)
    return env


def _time(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=60)
    return time.perf_counter() - start


def _imports_on_refusal(repo_root: Path) -> str:
    result = subprocess.run([sys.executable, "-c", _REFUSAL_CHILD, BAD_ARN], cwd=repo_root,
                            env=_child_env(), capture_output=True, text=True, timeout=60)
    return result.stdout.strip()


def refusal_rows(repo_root: Path) -> list[Row]:
    """Median wall time of `python -c pass` and of `python deploy-model.py -a <bad ARN>`, run
    alternately. Bytecode caching on, as on a user's machine (a first run writes the .pyc)."""
    env = _child_env()
    bare_cmd = [sys.executable, "-c", "pass"]
    refusal_cmd = [sys.executable, "deploy-model.py", "-a", BAD_ARN]
    _time(refusal_cmd, repo_root, env)  # warm-up: writes __pycache__
    bare, refusal = [], []
    for _ in range(RUNS):  # interleaved, so load on the machine hits both alike
        bare.append(_time(bare_cmd, repo_root, env))
        refusal.append(_time(refusal_cmd, repo_root, env))
    bare_ms, refusal_ms = statistics.median(bare) * 1000, statistics.median(refusal) * 1000
    ratio = refusal_ms / bare_ms
    answer = _imports_on_refusal(repo_root)
    clean = answer == "2 -"
    return [
        Row("python -c pass (baseline)", bare_ms, "ms", note=f"median of {RUNS}"),
        Row("refuse a bad ARN (deploy-model.py -a ...)", refusal_ms, "ms",
            note=f"median of {RUNS}, interleaved with the baseline; exit 2"),
        Row("bad-ARN refusal / bare start", ratio, "x", goal=f"<= {GOAL_RATIO:g}x",
            met=ratio <= GOAL_RATIO),
        Row("boto3/botocore imported on refusal", 0.0 if clean else 1.0, "bool", goal="0",
            met=clean, note=f"child: exit code and heavy modules = {answer!r}"),
    ]


# --- 2. AWS calls ------------------------------------------------------------------------------

@contextmanager
def _counted_calls():
    """Count every API call made through a botocore client (retries are not separate calls)."""
    from botocore.client import BaseClient

    counts: collections.Counter = collections.Counter()
    original = BaseClient._make_api_call

    def counting(client, operation_name, api_params):
        counts[f"{client.meta.service_model.service_name}:{operation_name}"] += 1
        return original(client, operation_name, api_params)

    BaseClient._make_api_call = counting
    try:
        yield counts
    finally:
        BaseClient._make_api_call = original


@contextmanager
def _isolated_environment():
    saved = dict(os.environ)
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(_ISOLATION)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def call_count_rows() -> list[Row]:
    from moto import mock_aws

    from tests.conftest import load_script
    from tests.deploy_support import register_package
    from tests.sagemaker_double import SageMakerDouble
    from utils import output

    deploy = load_script("deploy-model.py")
    env = {**_ISOLATION, "DEPLOY_POLL_INTERVAL": "0.01"}
    with _isolated_environment(), mock_aws(), SageMakerDouble() as double:
        import boto3

        arn = register_package(boto3.client("sagemaker", region_name="ca-central-1"))
        counts = {}
        for action in ("create", "update"):
            if action == "update":
                double.update_takes(1)
            with _counted_calls() as counted, open(os.devnull, "w") as quiet, \
                    redirect_stdout(quiet), redirect_stderr(quiet):
                code = deploy.main(["-a", arn, "-e", "bench-endpoint"], env)
            if code != 0:
                raise RuntimeError(f"the {action} deploy failed with exit code {code}")
            counts[action] = counted
        output.configure_output()
    return [_count_row(action, counted) for action, counted in counts.items()]


def _count_row(action: str, counted: collections.Counter) -> Row:
    breakdown = ", ".join(f"{name.split(':', 1)[1]} {n}" for name, n in sorted(counted.items()))
    return Row(f"AWS calls of a {action} (InService at first poll)", float(sum(counted.values())),
               "calls", note=breakdown)
