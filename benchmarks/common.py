"""What the benchmark runner and its sections share: the run's settings and one measured row."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    """One measured figure; `goal`/`met` when the project states a target for it."""

    name: str
    value: float | None
    unit: str
    goal: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class BenchContext:
    repo_root: Path
    duration: int  # seconds per load-generator run
    connections: int
    threads: int
    mlflow_python: Path | None  # .venv-bench's python, or None when MLflow is unavailable
    wrk: str | None
    work_dir: Path
    notes: list[str] = field(default_factory=list)
