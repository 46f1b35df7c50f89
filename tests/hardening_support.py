"""Helpers of the hardening tests (issue 9)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def character_device(directory: Path) -> Path:
    """A character device to write to: as root, a private twin of /dev/null in `directory` (a
    regression that renames over it must not break the machine's /dev/null); otherwise /dev/null
    itself, which a non-root user cannot replace."""
    if os.geteuid() != 0:
        return Path(os.devnull)
    device = directory / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return device
