#!/usr/bin/env python3
"""The embedded AWS of `make demo` and of the integration tests: moto's HTTP server on loopback.

`start` runs `python -m moto.server` on a free 127.0.0.1 port and waits until it answers; `seed`
creates what the real stack provides before our scripts run: the data bucket, the SQS queue, the
SageMaker execution role, and the serving image's ECR repository with a `latest` image, as
`artifacts/ecr-image-setup.sh` would push it. Everything refuses to talk to anything but loopback,
so the demo can never touch a real AWS account.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlparse

ACCOUNT = "123456789012"  # moto's default account, AWS's documentation example
REGION = "ca-central-1"
STACK = "plmscw"
BUCKET = "plmscw-sagemaker-data-dev"
QUEUE = "ai-queue"
ROLE = "SageMakerExecutionRole"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_ROLE_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
    "Action": "sts:AssumeRole"}]}


@dataclass
class EmulatedAws:
    process: subprocess.Popen
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in _LOOPBACK:
        raise SystemExit(f"refusing to use {url!r}: the emulated AWS must be on 127.0.0.1")


def start(port: int | None = None, log_path: str | None = None, timeout: float = 30.0) -> EmulatedAws:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **FAKE_CREDENTIALS})
    aws = EmulatedAws(process, url)
    try:
        _wait_until_up(aws, timeout)
    except BaseException:
        aws.stop()
        raise
    return aws


def _wait_until_up(aws: EmulatedAws, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if aws.process.poll() is not None:
            raise RuntimeError(f"moto server exited with code {aws.process.returncode}")
        try:
            with urllib.request.urlopen(f"{aws.url}/moto-api/data.json", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not answer on {aws.url} within {timeout:.0f} s")


def client_env(url: str) -> dict[str, str]:
    """What a user exports to point every script at the emulator (and nowhere else)."""
    require_loopback(url)
    return {
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,  # the AWS CLI v1 (pip's awscli) reads only this one
        "AWS_ACCOUNT": ACCOUNT,
        "DATA_BUCKET": BUCKET,
        "AI_INPUT_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{QUEUE}",
        "SAGEMAKER_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
    }


def _clients(url: str):
    import boto3

    require_loopback(url)
    session = boto3.Session(region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")
    return {name: session.client(name, endpoint_url=url)
            for name in ("s3", "sqs", "iam", "ecr", "sts")}


def seed(url: str, stack: str = STACK) -> dict[str, str]:
    """Create the account's resources; returns what is there. Idempotent: what already exists
    (a second `seed`) is kept as it is."""
    clients = _clients(url)
    identity = clients["sts"].get_caller_identity()
    if identity["Account"] != ACCOUNT:
        raise SystemExit(f"refusing to seed account {identity['Account']}: not the emulator's")
    _create_once(lambda: clients["s3"].create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}),
        "BucketAlreadyOwnedByYou")
    clients["sqs"].create_queue(QueueName=QUEUE)  # SQS itself returns the existing queue
    _create_once(lambda: clients["iam"].create_role(
        RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(_ROLE_TRUST)), "EntityAlreadyExists")
    role_arn = clients["iam"].get_role(RoleName=ROLE)["Role"]["Arn"]
    repository = push_placeholder_image(clients["ecr"], f"{stack}-inference")
    return {"bucket": BUCKET, "queue": QUEUE, "role": role_arn, "image": f"{repository}:latest"}


def _create_once(create, exists_code: str) -> None:
    from botocore.exceptions import ClientError

    try:
        create()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != exists_code:
            raise


def push_placeholder_image(ecr, repository_name: str, tag: str = "latest") -> str:
    """An ECR repository with an image manifest under `tag`, as a real push leaves it."""
    _create_once(lambda: ecr.create_repository(repositoryName=repository_name),
                 "RepositoryAlreadyExistsException")
    repository = ecr.describe_repositories(repositoryNames=[repository_name])["repositories"][0]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": "sha256:" + "0" * 64},
        "layers": [],
    }
    _create_once(lambda: ecr.put_image(
        repositoryName=repository_name, imageManifest=json.dumps(manifest),
        imageManifestMediaType=manifest["mediaType"], imageTag=tag), "ImageAlreadyExistsException")
    return repository["repositoryUri"]


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    seed_cmd = sub.add_parser("seed", help="create the bucket, queue, role and ECR image")
    seed_cmd.add_argument("--endpoint-url", required=True)
    start_cmd = sub.add_parser("start", help="start moto's server in the background; "
                                             "prints its pid and URL")
    start_cmd.add_argument("--log", required=True)
    env_cmd = sub.add_parser("env", help="print the exports that point the scripts at it")
    env_cmd.add_argument("--endpoint-url", required=True)
    args = parser.parse_args()
    if args.command == "start":
        server = start(log_path=args.log)
        print(server.process.pid, server.url)
        return 0
    if args.command == "env":
        for name, value in client_env(args.endpoint_url).items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    try:
        created = seed(args.endpoint_url)
    except Exception as exc:  # noqa: BLE001 - a newcomer's command: one line, never a traceback
        print(f"seed failed: {_one_line(exc)}", file=sys.stderr)
        print(f"Is the emulator running at {args.endpoint_url}? Start it with: "
              f"{shlex.quote(sys.executable)} demo/emulated_aws.py start --log moto.log",
              file=sys.stderr)
        return 3
    for name, value in created.items():
        print(f"  {name:<7} {value}")
    return 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


if __name__ == "__main__":
    sys.exit(_main())
