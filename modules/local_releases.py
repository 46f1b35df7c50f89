"""Local mode's releases: the same record as an AWS endpoint's, kept in the state directory.

Each successful `-t local` deploy (or rollback) appends one entry to `releases.json` in the
endpoint's directory (written atomically, under the state lock, the last MAX_LOCAL_RECORDS kept):
release number, package ARN, version, sha256, git commit, caller, time, and for a rollback the
release it went back to. Package files are not kept: a local rollback serves the earlier package
through the same path as a local deploy (download, sha256 check, new server, then the switch),
so it is as verified as the first time. The records go with the endpoint (delete_endpoint.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modules.deploy_package import PackageInfo
from modules.deploy_releases import History, Release, ReleaseFacts, target_release
from utils import local_endpoints
from utils.files import write_text_atomically

RELEASES_FILE = "releases.json"
MAX_LOCAL_RECORDS = 20


def _path(state_dir: Path, endpoint_name: str) -> Path:
    return local_endpoints.endpoint_dir(state_dir, endpoint_name) / RELEASES_FILE


def read_entries(state_dir: Path, endpoint_name: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(_path(state_dir, endpoint_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def read_local_history(state_dir: Path, endpoint_name: str) -> History:
    """Newest first; the newest release is live while the endpoint's server runs."""
    endpoint = local_endpoints.find_endpoint(state_dir, endpoint_name)
    running = endpoint is not None and bool(endpoint.record) and endpoint.is_running()
    live_arn = endpoint.record.get("model_package_arn") if running else None
    entries = sorted(read_entries(state_dir, endpoint_name), key=lambda e: e.get("release", 0),
                     reverse=True)
    releases = [_release(entry, "live" if running and i == 0 else "previous")
                for i, entry in enumerate(entries)]
    return History(endpoint_name, tuple(releases), (), live_arn, endpoint is not None)


def _release(entry: dict[str, Any], state: str) -> Release:
    # A local release has no endpoint config: the package it serves stands in for it.
    return Release(number=int(entry.get("release", 0)), config_name=entry.get("model_package_arn", ""),
                   model_names=(), package_arn=entry.get("model_package_arn"),
                   version=entry.get("version"), sha256=entry.get("sha256"),
                   commit=entry.get("commit"), caller=entry.get("caller"), time=entry.get("time"),
                   run_id=None, reapplied_from=entry.get("rollback_to"), state=state)


def choose_local_target(state_dir: Path, endpoint_name: str, to_release: int | None) -> Release:
    return target_release(read_local_history(state_dir, endpoint_name), to_release)


def record_local_release(state_dir: Path, endpoint_name: str, package: PackageInfo,
                         facts: ReleaseFacts, rollback_to: int | None = None) -> int:
    with local_endpoints.state_lock(state_dir):
        entries = read_entries(state_dir, endpoint_name)
        number = max((int(e.get("release", 0)) for e in entries), default=0) + 1
        entries.append({"release": number, "model_package_arn": package.arn,
                        "version": None if package.version is None else str(package.version),
                        "sha256": package.environment.get("MODEL_SHA256"),
                        "commit": facts.commit, "caller": facts.caller, "time": facts.time,
                        "rollback_to": rollback_to})
        path = _path(state_dir, endpoint_name)
        path.parent.mkdir(parents=True, exist_ok=True)  # deploy_local made it; a stand-in may not
        write_text_atomically(path,
                              json.dumps(entries[-MAX_LOCAL_RECORDS:], indent=2) + "\n")
    return number
