"""What the benchmark runner and its sections share: the run's settings and one measured row."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PROC_STAT = Path("/proc/stat")


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
    rounds: int  # times each load is repeated, servers in turn (a figure is their median)
    connections: int
    threads: int
    mlflow_python: Path | None  # .venv-bench's python, or None when MLflow is unavailable
    wrk: str | None
    work_dir: Path
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU time so far (all CPUs, in clock ticks): all of it, and what the
    hypervisor gave to other guests while this one wanted to run (`steal`)."""

    total: int
    steal: int


def cpu_times(stat: Path = PROC_STAT) -> CpuTimes | None:
    """From the `cpu` line of /proc/stat (user nice system idle iowait irq softirq steal ...);
    None where there is no such file (not Linux)."""
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if len(first) < 9 or first[0] != "cpu":
        return None
    ticks = [int(field) for field in first[1:9]]  # guest time is counted in user already
    return CpuTimes(total=sum(ticks), steal=ticks[7])


def stolen_share(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """The share of CPU time taken by the host between two readings (0..1), None if unknown."""
    if before is None or after is None or after.total <= before.total:
        return None
    return (after.steal - before.steal) / (after.total - before.total)
