"""model.tar.gz: layout, determinism, atomic writing."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile

import pytest

from modules import bundle_artifacts
from modules.bundle_artifacts import bundle_model_artifacts, file_sha256
from utils.errors import ValidationError


@pytest.fixture
def sources(tmp_path):
    directory = tmp_path / "src"
    directory.mkdir()
    (directory / "model.joblib").write_bytes(b"\x80\x04fake-model" * 100)
    (directory / "inference.py").write_text("def model_fn(d):\n    return d\n")
    (directory / "requirements.txt").write_text("scikit-learn==1.9.1\n")
    (directory / "notes.md").write_text("not bundled")
    return directory


def test_layout_is_the_aws_sklearn_containers(sources, tmp_path):
    bundle = bundle_model_artifacts(sources, tmp_path)
    with tarfile.open(bundle.path, "r:gz") as tar:
        names = tar.getnames()
        assert names == ["code", "code/inference.py", "code/requirements.txt", "model.joblib"]
        assert tar.extractfile("model.joblib").read() == (sources / "model.joblib").read_bytes()
        assert tar.extractfile("code/inference.py").read() == (sources / "inference.py").read_bytes()
        for member in tar.getmembers():
            assert (member.mtime, member.uid, member.gid) == (0, 0, 0)
            assert (member.uname, member.gname) == ("root", "root")
            assert member.mode == (0o755 if member.isdir() else 0o644)
    assert bundle.members == tuple(names)
    assert bundle.path.name == "model.tar.gz"


def test_same_inputs_give_the_same_bytes_whatever_the_file_metadata(sources, tmp_path):
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    first = bundle_model_artifacts(sources, first_dir)
    os.utime(sources / "model.joblib", (1_000_000, 1_000_000))
    os.chmod(sources / "inference.py", 0o600)
    second = bundle_model_artifacts(sources, second_dir)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.size == len(first.path.read_bytes())


def test_content_change_changes_the_sha256(sources, tmp_path):
    before = bundle_model_artifacts(sources, tmp_path).sha256
    (sources / "requirements.txt").write_text("scikit-learn==1.9.0\n")
    assert bundle_model_artifacts(sources, tmp_path).sha256 != before


def test_gzip_header_holds_no_timestamp_or_file_name(sources, tmp_path):
    data = bundle_model_artifacts(sources, tmp_path).path.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    flags, mtime = data[3], int.from_bytes(data[4:8], "little")
    assert mtime == 0
    assert not flags & 0x08  # FNAME: no original file name stored
    assert gzip.decompress(data)  # and it is a valid gzip stream


def test_symlinked_model_is_bundled_by_content(sources, tmp_path):
    real = tmp_path / "elsewhere.joblib"
    real.write_bytes(b"real model bytes")
    (sources / "model.joblib").unlink()
    (sources / "model.joblib").symlink_to(real)
    bundle = bundle_model_artifacts(sources, tmp_path)
    with tarfile.open(bundle.path, "r:gz") as tar:
        member = tar.getmember("model.joblib")
        assert member.isfile()
        assert tar.extractfile(member).read() == b"real model bytes"


def test_missing_files_are_all_named(sources, tmp_path):
    (sources / "inference.py").unlink()
    (sources / "requirements.txt").unlink()
    with pytest.raises(ValidationError) as caught:
        bundle_model_artifacts(sources, tmp_path)
    assert any("inference.py" in line for line in caught.value.details)
    assert any("requirements.txt" in line for line in caught.value.details)
    assert not (tmp_path / "model.tar.gz").exists()


def test_a_failure_mid_write_leaves_no_file(sources, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()

    def explode(raw, mapping):
        raw.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_artifacts, "write_deterministic_tar", explode)
    with pytest.raises(KeyboardInterrupt):
        bundle_model_artifacts(sources, out)
    assert list(out.iterdir()) == []


def test_a_failure_keeps_an_earlier_bundle_intact(sources, tmp_path, monkeypatch):
    good = bundle_model_artifacts(sources, tmp_path)
    before = good.path.read_bytes()
    monkeypatch.setattr(bundle_artifacts, "write_deterministic_tar",
                        lambda raw, mapping: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        bundle_model_artifacts(sources, tmp_path)
    assert good.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz", "src"]


def test_file_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_sha256(path) == hashlib.sha256(b"abc").hexdigest()
