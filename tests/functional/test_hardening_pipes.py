"""Issue 9: a script whose stdout is piped into `head` stops quietly (exit 141, no traceback, no
"unexpected internal error")."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

LOUD = ("import sys; sys.path.insert(0, sys.argv[1]); from utils import cli, output; "
        "output.configure_output(); "
        "sys.exit(cli.run(lambda: [output.print_line('x' * 200) for _ in range(200000)] and 0))")


def test_output_into_head_stops_quietly():
    result = subprocess.run(
        f"'{sys.executable}' -c \"{LOUD}\" '{REPO_ROOT}' | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60)
    assert result.stdout == "x" * 200 + "\n"
    assert result.returncode == 141, result.stderr
    assert result.stderr == ""


def test_the_broken_pipe_exit_code_is_in_every_scripts_exit_code_table():
    from utils.errors import EXIT_CODES_HELP, ExitCode

    assert ExitCode.BROKEN_PIPE == 141
    assert "141  output pipe closed early" in EXIT_CODES_HELP
