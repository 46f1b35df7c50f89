"""What the repository tracks: a fresh clone must build its own .venv and caches.

A `.venv` symlink into one machine's worktree was once committed by mistake; on a new machine
`make` then found a dangling `.venv` and `python -m venv` refused to create it.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT


def _git(*args: str) -> list[str]:
    git = shutil.which("git")
    if git is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run([git, "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout.splitlines()


def test_nothing_tracked_is_gitignored():
    # .gitignore's `.venv/` matches only a directory: a tracked .venv symlink is caught here only
    # where a real .venv exists, and always by the symlink test below.
    assert _git("ls-files", "--cached", "--ignored", "--exclude-standard") == []


def test_no_tracked_symlinks():
    symlinks = [line.split("\t", 1)[1] for line in _git("ls-files", "--stage") if line.startswith("120000 ")]
    assert symlinks == []
