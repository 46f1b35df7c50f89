"""Exit codes and the typed exceptions that carry them.

Every script raises these from deep inside and turns them into one message and one exit code at a
single boundary (`utils.cli.run`). Each error says what failed, why, and what to do about it.
This module imports nothing heavy: it sits on the argument-error path.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    AWS = 3
    DEPLOY_FAILED = 4
    TIMEOUT = 5
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # stdout closed early (`... | head`): stopped quietly
    TERMINATED = 143


EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    unexpected internal error
  2    usage or validation error
  3    AWS or service error
  4    deployment failed, or an answer broke the inference contract
  5    timeout
  130  interrupted (Ctrl-C)
  141  output pipe closed early (e.g. piped into head)
  143  terminated (SIGTERM)"""


class DeployModelError(Exception):
    """Base of every error the tools report; `exit_code` decides the process exit status."""

    exit_code: ExitCode = ExitCode.INTERNAL
    title = "Error"

    def __init__(self, message: str, *, details: list[str] | None = None,
                 hint: str | list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details or [])
        self.hints = [hint] if isinstance(hint, str) else list(hint or [])

    def to_dict(self) -> dict:
        data = {"error": self.message, "exit_code": int(self.exit_code)}
        if self.details:
            data["details"] = self.details
        if self.hints:
            data["hints"] = self.hints
        return data


class ValidationError(DeployModelError):
    """Bad input: flags, environment variables, files. Caught before any AWS call when possible."""

    exit_code = ExitCode.USAGE


class AwsError(DeployModelError):
    """AWS refused or failed a request (or the resource it names is missing)."""

    exit_code = ExitCode.AWS


class DeploymentFailed(DeployModelError):
    """The endpoint did not come up, or came up but broke the inference contract."""

    exit_code = ExitCode.DEPLOY_FAILED
    title = "DEPLOYMENT FAILED"


class ContractError(DeployModelError):
    """An inference answer does not follow the contract (docs/ARCHITECTURE.md, "Inference contract")."""

    exit_code = ExitCode.DEPLOY_FAILED


class DeployTimeout(DeployModelError):
    exit_code = ExitCode.TIMEOUT


class Terminated(BaseException):
    """Raised from the SIGTERM handler so `finally` blocks and rollbacks run, like KeyboardInterrupt."""


def venv_hint() -> str:
    """How to run with the project's own environment, where every dependency is installed."""
    return ("Run it with the project's virtual environment: `make venv` once, then "
            "`. .venv/bin/activate` (or call .venv/bin/python directly); this Python is "
            f"{__import__('sys').executable}.")


def missing_dependency(exc: ModuleNotFoundError) -> ValidationError | None:
    """A third-party module missing from this Python (run outside the venv), else None."""
    top = (exc.name or "").split(".")[0]
    if not top or top in ("utils", "modules", "artifacts", "tests"):
        return None
    return ValidationError(f"The Python module {top!r} is not installed in this Python",
                           hint=[venv_hint(), "Or install the requirements into it: "
                                 "python -m pip install -r requirements.txt"])

