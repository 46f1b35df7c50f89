"""Atomic writes: the output files a CI step reads next (ARN, endpoint name), records, bundles."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.hardening_support import character_device
from utils import files
from utils.files import atomic_writer, write_text_atomically


def test_output_file_is_replaced_atomically(tmp_path):
    target = tmp_path / "endpoint_name.txt"
    target.write_text("old\n")
    write_text_atomically(str(target), "qc-prod\n")
    assert target.read_text() == "qc-prod\n"
    assert [p.name for p in tmp_path.iterdir()] == ["endpoint_name.txt"]  # no temp file left


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "model_arn.txt"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    write_text_atomically(target, "arn:new\n")
    assert target.read_text() == "arn:new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["model_arn.txt"]


def test_atomic_write_of_a_new_file_follows_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "new.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644


def test_failed_atomic_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "model_arn.txt"
    target.write_text("old\n")
    monkeypatch.setattr(files.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        write_text_atomically(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model_arn.txt"]


def test_an_exception_inside_the_block_leaves_the_old_bytes(tmp_path):
    target = tmp_path / "model.tar.gz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target, binary=True) as stream:
        stream.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.tar.gz"]


# --- what an output path may be (issue 9): never replace a device, a FIFO or a symlink ----------

def test_a_character_device_is_written_through_not_replaced(tmp_path):
    device = character_device(tmp_path)
    before = os.stat(device)
    write_text_atomically(device, "qc-prod\n")
    after = os.lstat(device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert files.output_file_problem(device) is None


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_text_atomically(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real.txt"]


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "made.txt")
    assert files.output_file_problem(link) is None
    write_text_atomically(link, "x\n")
    assert link.is_symlink() and (tmp_path / "made.txt").read_text() == "x\n"


def test_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, as with -o >(cat)
    try:
        write_text_atomically(fifo, "qc-prod\n")
        assert os.read(reader, 100) == b"qc-prod\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


@pytest.mark.parametrize("make, expected", [
    (lambda d: (d / "loop").symlink_to(d / "loop"), "symlink loop"),
    (lambda d: (d / "loop").mkdir(), "is a directory"),
])
def test_loops_and_directories_are_refused_before_and_at_write(tmp_path, make, expected):
    make(tmp_path)
    assert expected in files.output_file_problem(tmp_path / "loop")
    with pytest.raises(files.ValidationError, match=expected):
        write_text_atomically(tmp_path / "loop", "x")


def test_a_socket_is_refused(tmp_path):
    import socket

    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert "not a regular file" in files.output_file_problem(path)


@pytest.mark.parametrize("path, expected", [
    ("a" * 5000, "too long"), ("bad\0name", "NUL"), ("/etc/passwd/x", "Not a directory"),
])
def test_impossible_paths_are_problems_not_crashes(path, expected):
    assert expected in files.output_file_problem(path)


def test_an_existing_file_that_is_not_writable_is_a_problem(tmp_path, monkeypatch):
    target = tmp_path / "arn.txt"
    target.write_text("")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == target
                        else real_access(path, mode))
    assert "is not writable" in files.output_file_problem(target)


# --- bounded reads ------------------------------------------------------------------------------

def test_read_bounded_reads_at_most_the_limit_plus_one(tmp_path):
    with pytest.raises(files.ValidationError, match="larger than 10 bytes"):
        files.read_bounded("/dev/zero", 10, "input")
    (tmp_path / "ok").write_bytes(b"0123456789")
    assert files.read_bounded(tmp_path / "ok", 10, "input") == b"0123456789"


def test_read_bounded_never_hangs_on_a_fifo_without_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    assert files.read_bounded(tmp_path / "pipe", 10, "input") == b""


def test_read_bounded_refuses_directories_and_unreadable_paths(tmp_path):
    with pytest.raises(files.ValidationError, match="is a directory"):
        files.read_bounded(tmp_path, 10, "input")
    with pytest.raises(files.ValidationError, match="too long"):
        files.read_bounded("a" * 5000, 10, "input")
    with pytest.raises(FileNotFoundError):
        files.read_bounded(tmp_path / "missing", 10, "input")
