#!/usr/bin/env python3
"""Test double: deploy-model.py's `main`, SIGKILLed by itself at a chosen step (a `kill -9`).

    python tests/kill9_driver.py STEP [deploy-model.py arguments...]

STEP is a SageMaker operation (CreateModel, CreateEndpointConfig, CreateEndpoint): the process
kills itself from botocore's `after-call` event of that operation, so AWS has done the call and
the deploy gets no chance to record or roll back anything. `local-record`: local mode is killed
after its server started and answered, right before the endpoint's record is written.
Product code knows nothing of this; the tests in tests/integration/test_kill9.py run it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

LOCAL_RECORD = "local-record"


def kill_self(*_args, **_kwargs) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(step: str) -> None:
    if step == LOCAL_RECORD:
        from utils import local_endpoints

        local_endpoints.write_record = kill_self
        return
    import boto3.session

    real_init = boto3.session.Session.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.events.register(f"after-call.sagemaker.{step}", kill_self)

    boto3.session.Session.__init__ = init


def main() -> int:
    step, *argv = sys.argv[1:]
    arm(step)
    spec = importlib.util.spec_from_file_location("deploy_model", REPO_ROOT / "deploy-model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


if __name__ == "__main__":
    sys.exit(main())
