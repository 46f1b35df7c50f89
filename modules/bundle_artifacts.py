"""Step 1 of packaging: `model.tar.gz` from the artifact files, byte-for-byte reproducible.

The layout is the one the AWS scikit-learn container (and our own server) expects:
`model.joblib` at the root, `code/inference.py` and `code/requirements.txt` beside it.

The archive is deterministic: members in sorted order, fixed modification times, owners and modes,
and a gzip header without timestamp or file name. The same three files therefore always give the
same bytes and the same sha256, which is what makes the S3 key content-addressed and re-packaging
idempotent. The file is written under a temporary name and renamed into place, so a crash or
Ctrl-C never leaves a half-written `model.tar.gz`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from utils.errors import ValidationError
from utils.files import atomic_writer

BUNDLE_NAME = "model.tar.gz"
MODEL_FILE = "model.joblib"
HANDLER_FILE = "inference.py"
REQUIREMENTS_FILE = "requirements.txt"

# archive path -> file name in the artifacts directory
BUNDLE_LAYOUT: dict[str, str] = {
    MODEL_FILE: MODEL_FILE,
    f"code/{HANDLER_FILE}": HANDLER_FILE,
    f"code/{REQUIREMENTS_FILE}": REQUIREMENTS_FILE,
}
ARTIFACT_FILES = tuple(BUNDLE_LAYOUT.values())

FIXED_MTIME = 0  # 1970-01-01: any constant works; tar and gzip readers accept it
FILE_MODE = 0o644
DIR_MODE = 0o755
COMPRESS_LEVEL = 6  # zlib's default trade-off; the archive is dominated by the model's arrays


@dataclass(frozen=True)
class Bundle:
    path: Path
    sha256: str
    size: int
    members: tuple[str, ...]
    model_sha256: str = ""  # of model.joblib: the container checks it before unpickling


def bundle_model_artifacts(artifacts_dir: Path, output_dir: Path,
                           requirements_text: str | None = None) -> Bundle:
    """Write `output_dir/model.tar.gz` from `artifacts_dir` and return its path, sha256 and size.

    `requirements_text`, when given, is bundled as code/requirements.txt instead of the file
    (for AWS's prebuilt image, which pip-installs it at start).
    """
    artifacts_dir = Path(artifacts_dir)
    sources = {arcname: artifacts_dir / name for arcname, name in BUNDLE_LAYOUT.items()}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise ValidationError(f"Cannot bundle {artifacts_dir}: missing file(s)", details=missing,
                              hint="Put model.joblib, inference.py and requirements.txt in the "
                                   "artifacts directory (or point --artifacts-dir at one).")
    target = Path(output_dir) / BUNDLE_NAME
    if requirements_text is not None:
        generated = Path(output_dir) / f"prebuilt-{REQUIREMENTS_FILE}"
        generated.write_text(requirements_text, encoding="utf-8")
        sources[f"code/{REQUIREMENTS_FILE}"] = generated
    with atomic_writer(target, binary=True) as raw:
        write_deterministic_tar(raw, sources)
    return Bundle(path=target, sha256=file_sha256(target), size=target.stat().st_size,
                  members=tuple(sorted(["code", *sources])),
                  model_sha256=file_sha256(sources[MODEL_FILE]))


def write_deterministic_tar(raw: io.BufferedIOBase, sources: dict[str, Path]) -> None:
    """A gzip'd tar of `sources` (archive name -> file) whose bytes depend only on the contents."""
    # filename="" and mtime=0 keep the temp file's name and the current time out of the header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                       compresslevel=COMPRESS_LEVEL) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted({name.rsplit("/", 1)[0] for name in sources if "/" in name}):
            tar.addfile(_tar_info(directory, tarfile.DIRTYPE, 0, DIR_MODE))
        for arcname in sorted(sources):
            with open(sources[arcname], "rb") as source:  # follows symlinks: the content counts
                size = os.fstat(source.fileno()).st_size
                tar.addfile(_tar_info(arcname, tarfile.REGTYPE, size, FILE_MODE), source)


def _tar_info(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
