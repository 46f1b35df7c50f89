"""All user-facing printing goes through here.

Human-readable progress goes to stdout by default. In JSON mode (`--json`) stdout carries exactly one
JSON document, written by `print_json_result`, and all progress moves to stderr, so a CI step can
pipe stdout straight into `jq`. Errors and warnings always go to stderr. Colour only on a terminal
and never when NO_COLOR is set (https://no-color.org). Every line passes through `utils.redaction`:
a known secret value is masked wherever it appears, even inside an exception's text.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from utils import redaction

_RESET = "\033[0m"
_COLOURS = {"green": "\033[32m", "red": "\033[31m", "yellow": "\033[33m", "cyan": "\033[36m",
            "bold": "\033[1m", "dim": "\033[2m"}


class _State:
    # A plain class, not a dataclass: importing `dataclasses` (it pulls in `inspect`) costs ~9 ms,
    # and this module is on every script's fail-fast path (bad input refused in ~4x Python start).
    def __init__(self) -> None:
        self.json_mode = False
        self.colour: bool | None = None  # None: decide per stream (isatty)
        self.stdout: IO[str] | None = None
        self.stderr: IO[str] | None = None


_state = _State()


def configure_output(*, json_mode: bool = False, env: Mapping[str, str] | None = None,
                     stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
    """Set the mode once per run, at the edge where the environment is read."""
    no_colour = env is not None and "NO_COLOR" in env and env["NO_COLOR"] != ""
    # boto3 reads os.environ whatever mapping the script was given: mask both.
    redaction.forget_secrets()
    redaction.remember_secret_variables(env or {}, os.environ)
    _state.json_mode = json_mode
    _state.colour = False if no_colour else None
    _state.stdout = stdout
    _state.stderr = stderr


def is_json_mode() -> bool:
    return _state.json_mode


def _out() -> IO[str]:
    return _state.stdout or sys.stdout


def _err() -> IO[str]:
    return _state.stderr or sys.stderr


def _progress() -> IO[str]:
    return _err() if _state.json_mode else _out()


def _paint(text: str, colour: str, stream: IO[str]) -> str:
    use = _state.colour
    if use is None:
        use = bool(getattr(stream, "isatty", lambda: False)())
    return f"{_COLOURS[colour]}{text}{_RESET}" if use else text


def _write(stream: IO[str], text: str) -> None:
    stream.write(redaction.redact(text) + "\n")
    stream.flush()


def print_line(text: str = "") -> None:
    """A plain progress line (log events, plan lines)."""
    _write(_progress(), text)


def print_header(title: str) -> None:
    stream = _progress()
    rule = "=" * max(len(title), 60)
    _write(stream, "")
    _write(stream, _paint(rule, "bold", stream))
    _write(stream, _paint(title, "bold", stream))
    _write(stream, _paint(rule, "bold", stream))


def print_section(title: str) -> None:
    stream = _progress()
    _write(stream, "")
    _write(stream, _paint(f"--- {title} ---", "cyan", stream))


def print_success(message: str) -> None:
    stream = _progress()
    _write(stream, _paint(f"✓ {message}", "green", stream))


def print_info(message: str) -> None:
    _write(_progress(), f"  {message}")


def print_warning(message: str) -> None:
    stream = _err()
    _write(stream, _paint(f"⚠ WARNING: {message}", "yellow", stream))


def print_error(message: str, *, details: Sequence[str] = (), hints: Sequence[str] = (),
                title: str = "ERROR") -> None:
    """One error block on stderr: what failed, why, what to do."""
    stream = _err()
    _write(stream, _paint(f"{title}: {message}", "red", stream))
    for line in details:
        _write(stream, f"  {line}")
    if hints:
        _write(stream, "What to do:")
        for hint in hints:
            _write(stream, f"  - {hint}")


def print_traceback(text: str) -> None:
    """A traceback (--debug only), masked like every other line."""
    _write(_err(), text.rstrip("\n"))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    stream = _progress()
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    _write(stream, _paint(line, "bold", stream))
    _write(stream, "  ".join("-" * w for w in widths))
    for row in cells:
        _write(stream, "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def print_key_values(pairs: Mapping[str, Any]) -> None:
    width = max((len(k) for k in pairs), default=0)
    for key, value in pairs.items():
        print_info(f"{key.ljust(width)} : {value}")


def print_json_result(data: Any, header: str | None = None) -> None:
    """The one JSON document of a run, on stdout. Outside JSON mode, shown under a header."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    if header and not _state.json_mode:
        print_section(header)
    _write(_out(), text)


def format_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if round(seconds, 1) < 60:  # 59.96 s would otherwise print as "60.0s"
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s"


def format_bytes(size: float) -> str:
    size = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
