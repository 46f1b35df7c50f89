"""Issue 9: local-mode extraction refuses the CVE-2025-4517 symlink chain, which Python 3.11.7's
tarfile "data" filter lets write outside the destination."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from modules import local_endpoint
from utils.errors import DeploymentFailed

# Python releases with the fix (gh-135034, June 2025).
_FIXED = {(3, 9): 23, (3, 10): 18, (3, 11): 13, (3, 12): 11, (3, 13): 4}


def _filter_is_fixed() -> bool:
    major_minor = sys.version_info[:2]
    return major_minor >= (3, 14) or sys.version_info[2] >= _FIXED.get(major_minor, 10**6)


def _add(tar: tarfile.TarFile, name: str, kind: bytes, link: str = "",
         data: bytes | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    if data is None:
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def realpath_limit_archive(path: Path) -> Path:
    """The archive of CPython's own regression test: a chain of symlinks longer than PATH_MAX,
    which os.path.realpath stops resolving, so the filter sees `escape` as inside."""
    component, steps, prefix = "d" * 247, "abcdefghijklmnop", ""
    with tarfile.open(path, "w:gz") as tar:
        for step in steps:
            _add(tar, os.path.join(prefix, component), tarfile.DIRTYPE)
            _add(tar, os.path.join(prefix, step), tarfile.SYMTYPE, component)
            prefix = os.path.join(prefix, component)
        long_link = os.path.join(*steps, "l" * 254)
        _add(tar, long_link, tarfile.SYMTYPE, os.path.join(*[".."] * len(steps)))
        _add(tar, "escape", tarfile.SYMTYPE, os.path.join(long_link, ".."))
        _add(tar, "escape/newfile", tarfile.REGTYPE, data=b"written outside")
    return path


def test_the_symlink_chain_is_refused_and_nothing_is_written(tmp_path):
    archive = realpath_limit_archive(tmp_path / "model.tar.gz")
    destination = tmp_path / "model"
    with pytest.raises(DeploymentFailed, match="unsafe") as caught:
        local_endpoint.extract_model_archive(archive, destination)
    assert any("symlink" in line for line in caught.value.details)
    assert list(destination.iterdir()) == []
    assert not (tmp_path / "newfile").exists()


@pytest.mark.skipif(_filter_is_fixed(), reason="this Python's tarfile filter has the fix")
def test_the_data_filter_alone_is_defeated_on_this_python(tmp_path):
    """Why the explicit checks are the guard: without them this Python writes outside."""
    archive = realpath_limit_archive(tmp_path / "model.tar.gz")
    (tmp_path / "dest").mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "dest", filter="data")
    assert (tmp_path / "newfile").read_bytes() == b"written outside"


def test_a_name_given_twice_is_refused(tmp_path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "model.joblib", tarfile.REGTYPE, data=b"checked")
        _add(tar, "./model.joblib", tarfile.REGTYPE, data=b"replaced")
    with pytest.raises(DeploymentFailed, match="unsafe") as caught:
        local_endpoint.extract_model_archive(archive, tmp_path / "model")
    assert any("appears more than once" in line for line in caught.value.details)
