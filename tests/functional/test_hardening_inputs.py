"""Issue 9: hostile input files and documents given to test_endpoint.py and deploy-model.py's
--smoke-test-data are refused with exit 2, read at most up to the 6 MB limit + 1 byte."""

from __future__ import annotations

import json
import os

import pytest

import test_endpoint
from modules import deploy_validation
from utils import files
from utils.contract import MAX_PAYLOAD_BYTES
from utils.errors import ValidationError


def _run(capsys, *argv):
    code = test_endpoint.main(list(argv), {"NO_COLOR": "1"})
    return code, capsys.readouterr().err


@pytest.fixture
def counted_reads(monkeypatch):
    """Bytes read by utils.files.read_bounded, to prove a huge input is not read whole."""
    total = {"bytes": 0}
    real_read = os.read

    def read(fd, count):
        data = real_read(fd, count)
        total["bytes"] += len(data)
        return data
    monkeypatch.setattr(files.os, "read", read)
    return total


def test_dev_zero_is_refused_after_the_limit(capsys, counted_reads):
    code, err = _run(capsys, "-e", "qc", "-d", "/dev/zero")
    assert code == 2 and f"larger than {MAX_PAYLOAD_BYTES:,} bytes" in err
    assert counted_reads["bytes"] == MAX_PAYLOAD_BYTES + 1


def test_a_200_mb_file_is_not_read_whole(capsys, tmp_path, counted_reads):
    big = tmp_path / "big.json"
    with open(big, "wb") as stream:
        stream.truncate(200 * 1024 * 1024)  # sparse: no 200 MB written to the disk
    code, err = _run(capsys, "-e", "qc", "-d", str(big))
    assert code == 2 and "larger than" in err
    assert counted_reads["bytes"] <= MAX_PAYLOAD_BYTES + 1


def test_a_fifo_without_writer_does_not_hang(capsys, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    code, err = _run(capsys, "-e", "qc", "-d", str(tmp_path / "pipe"))
    assert code == 2 and "Invalid JSON" in err


@pytest.mark.parametrize("path, expected", [
    ("~nosuchuser/x.json", "neither an existing file nor JSON"),
    ("a" * 5000, "too long"),
    (".", "is a directory"),
])
def test_unreadable_paths_are_usage_errors(capsys, path, expected):
    code, err = _run(capsys, "-e", "qc", "-d", path)
    assert code == 2 and expected in err


@pytest.mark.parametrize("document, expected", [
    ("[" * 1000 + "]" * 1000, "nested too deeply"),
    ('{"data": [' * 1000 + "]" * 1000 + "}" * 1000, "nested too deeply"),
    ('{"data": [[1' + "0" * 400 + "]]}", "non-numeric value"),
    ('{"data": [[1' + "0" * 5000 + "]]}", "4300 digits"),
])
def test_hostile_documents_are_usage_errors(capsys, tmp_path, document, expected):
    path = tmp_path / "input.json"
    path.write_text(document)
    for data in (str(path), document):
        code, err = _run(capsys, "-e", "qc", "-d", data)
        assert code == 2 and expected in err, err
        assert len(err) < 2000  # the value is previewed, not printed whole


def test_smoke_test_data_is_read_bounded(tmp_path, counted_reads):
    with pytest.raises(ValidationError, match="larger than"):
        deploy_validation.load_smoke_test("/dev/zero")
    assert counted_reads["bytes"] == MAX_PAYLOAD_BYTES + 1
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValidationError, match="Invalid JSON"):
        deploy_validation.load_smoke_test(str(tmp_path / "pipe"))
    (tmp_path / "deep.json").write_text(json.dumps({"data": [[1.0]]})[:-1] + "[" * 999)
    with pytest.raises(ValidationError):
        deploy_validation.load_smoke_test(str(tmp_path / "deep.json"))
