"""Atomic writes: the output files a CI step reads next (ARN, endpoint name), records, bundles."""

from __future__ import annotations

import os
import stat

import pytest

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
