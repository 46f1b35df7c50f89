"""Output files, written so that a reader (or the next CI step) never sees half a file.

A regular file is replaced atomically: the data goes to a temporary file in the target's
directory, is flushed to disk, and is renamed over the target; on any failure, including Ctrl-C,
the temporary file is removed and the target is left as it was. A symlink is followed, so its
target is replaced and the link stays a link. A character device or a FIFO (`-o /dev/null`,
`-o /dev/stdout`, `-o >(cat)`) is written through: renaming over it would replace the device node
itself (as root, /dev/null). Anything else (a directory, a block device, a socket, a symlink loop)
is refused with a `ValidationError`, and `output_file_problem` says so before any AWS call.

Input files are read with `read_bounded`: at most the limit + 1 byte, and a FIFO without a writer
never blocks the open (`-d /dev/zero` or a 200 MB file must not be read whole).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from utils.errors import ValidationError


def output_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot receive an output file, or None: checked before a long run starts."""
    try:
        target, mode = _resolve_output(path)
    except ValidationError as error:
        return error.message
    if mode is None:
        directory = target.parent
        if not directory.is_dir():
            return f"directory {str(directory)!r} does not exist"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"directory {str(directory)!r} is not writable"
        return None
    if not os.access(target, os.W_OK):
        return f"{str(target)!r} is not writable"
    if stat.S_ISREG(mode) and not os.access(target.parent, os.W_OK | os.X_OK):
        return (f"directory {str(target.parent)!r} is not writable (the file is replaced "
                "atomically)")
    return None


def _resolve_output(path: str | os.PathLike[str]) -> tuple[Path, int | None]:
    """The file to write (a symlink's final target) and its mode, None if it does not exist yet."""
    try:
        target = Path(os.path.realpath(path))
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target, None
    except ValueError:  # an embedded NUL byte
        raise ValidationError("it is not a valid file path (NUL byte)") from None
    except OSError as exc:
        reason = "it is a symlink loop" if exc.errno == errno.ELOOP else exc.strerror
        raise ValidationError(reason) from None
    if stat.S_ISDIR(mode):
        raise ValidationError("it is a directory; give a file path")
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        raise ValidationError("it is not a regular file, a character device or a FIFO")
    return target, mode


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, binary: bool = False) -> Iterator[IO[Any]]:
    """Yield a stream whose content replaces `path` only if the block completes."""
    target, mode = _resolve_output(path)
    kwargs: dict[str, Any] = {} if binary else {"encoding": "utf-8"}
    if mode is not None and not stat.S_ISREG(mode):
        with open(target, "wb" if binary else "w", **kwargs) as stream:  # a device or FIFO
            yield stream
        return
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                         dir=target.parent)
    try:
        with os.fdopen(handle, "wb" if binary else "w", **kwargs) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates 0600 files; keep the target's mode, or what the umask gives a new file.
        os.chmod(temp_name, _mode_for(target))
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    with atomic_writer(path) as stream:
        stream.write(text)


def read_bounded(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """At most `limit` bytes of `path`; a ValidationError (exit 2) if it holds more or is unreadable.

    O_NONBLOCK makes opening a FIFO without a writer return at once; reading then blocks only
    while a writer is attached, like `cat`."""
    try:
        fd = os.open(os.path.expanduser(path), os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValidationError(f"Cannot read {what} {str(path)!r}: {_reason(exc)}") from None
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise ValidationError(f"Cannot read {what} {str(path)!r}: it is a directory")
        os.set_blocking(fd, True)
        data = _read_up_to(fd, limit + 1)
    except OSError as exc:
        raise ValidationError(f"Cannot read {what} {str(path)!r}: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValidationError(f"{what} {str(path)!r} is larger than {limit:,} bytes",
                              hint="Send fewer rows per request.")
    return data


def _read_up_to(fd: int, count: int) -> bytes:
    chunks: list[bytes] = []
    remaining = count
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
