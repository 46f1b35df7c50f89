"""Issue 9: run outside the project's venv, a script says how to activate it (exit 2), instead of
"unexpected internal error" or "re-save the model"."""

from __future__ import annotations

from pathlib import Path

import pytest

from modules import preflight
from utils import cli, output


def _raise(exc):
    def body():
        raise exc
    return body


def test_a_missing_dependency_says_how_to_activate_the_venv(capsys):
    output.configure_output(env={})
    assert cli.run(_raise(ModuleNotFoundError("No module named 'boto3'", name="boto3"))) == 2
    err = capsys.readouterr().err
    assert "The Python module 'boto3' is not installed in this Python" in err
    assert ". .venv/bin/activate" in err and "Unexpected internal error" not in err


def test_a_missing_project_module_is_still_a_bug(capsys):
    output.configure_output(env={})
    assert cli.run(_raise(ModuleNotFoundError("x", name="modules.nothing"))) == 1
    assert "Unexpected internal error" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["sklearn", "joblib"])
def test_a_model_this_python_cannot_load_points_at_the_venv(module):
    [problem] = preflight.model_problems(
        {"load": {"ok": False, "error": f"ModuleNotFoundError: No module named '{module}'"}},
        Path("model.joblib"), None)
    text = str(problem.__dict__ if hasattr(problem, "__dict__") else problem)
    assert ".venv/bin/activate" in repr(problem) or ".venv/bin/activate" in text
    assert "Re-save" not in repr(problem)
