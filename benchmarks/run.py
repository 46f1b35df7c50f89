#!/usr/bin/env python3
"""The one benchmark runner of deploy_model (`make bench`; not part of CI or `make test`).

Each section is a function `run(context) -> list[Row]` in its own module of benchmarks/,
registered in SECTIONS below; the runner calls them in order, prints one table per section and
writes every row to benchmarks/results/<UTC time>.json. A section measures our figure and its
baseline in the same run and reports ratios; goals are printed next to the figures, never
asserted by the test suite.

    python benchmarks/run.py                          # every section
    python benchmarks/run.py --only serving --duration 5
    python benchmarks/run.py --list

To add a section (e.g. the deploy fail-fast figures): write benchmarks/<name>.py with
`run(context: BenchContext) -> list[Row]` and append `Section("<name>", "<module>", "...")` to
SECTIONS.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script: utils/ and benchmarks/ import from the root

from benchmarks.common import BenchContext, Row, cpu_times, stolen_share  # noqa: E402
from utils import output  # noqa: E402
from utils.cli import positive_int  # noqa: E402


@dataclass(frozen=True)
class Section:
    name: str
    module: str  # benchmarks.<module>
    description: str

    def function(self) -> Callable[[BenchContext], list[Row]]:
        return importlib.import_module(f"benchmarks.{self.module}").run


SECTIONS: list[Section] = [
    Section("serving", "serving",
            "model server vs today's (gunicorn) and MLflow's: req/s, p99, cold start"),
    Section("deploy-failfast", "deploy_failfast",
            "bad-ARN refusal time vs a bare python start; AWS calls of a create and an update"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=[s.name for s in SECTIONS],
                        help="run only this section (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--rounds", type=positive_int, default=3,
                        help="rounds of every load, servers in turn; figures are medians (3)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--mlflow-python", type=Path, default=REPO_ROOT / ".venv-bench/bin/python",
                        help="python of the environment holding MLflow (.venv-bench)")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    return parser


def print_rows(section: Section, rows: list[Row]) -> None:
    output.print_section(f"{section.name}: {section.description}")
    table = [[row.name, _format(row.value), row.unit, row.goal,
              "" if row.met is None else ("yes" if row.met else "NO"), row.note] for row in rows]
    output.print_table(["figure", "value", "unit", "goal", "met", "note"], table)


def _format(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output.configure_output(json_mode=False)
    if args.list:
        for section in SECTIONS:
            output.print_line(f"{section.name}: {section.description}")
        return 0
    selected = [s for s in SECTIONS if not args.only or s.name in args.only]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    work_dir = args.results_dir / "work"
    work_dir.mkdir(exist_ok=True)
    context = BenchContext(
        repo_root=REPO_ROOT, duration=args.duration, rounds=args.rounds,
        connections=args.connections,
        threads=args.threads, wrk=shutil.which("wrk"), work_dir=work_dir,
        mlflow_python=args.mlflow_python if (args.mlflow_python.parent / "mlflow").exists()
        else None)
    output.print_header("deploy_model benchmarks")
    results = {}
    for section in selected:
        # Other work on this machine skews the figures: the load average says how quiet it was.
        context.notes.append(f"{section.name}: load average before the section "
                             f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        before = cpu_times()
        rows = section.function()(context)
        context.notes.append(_steal_note(section.name, stolen_share(before, cpu_times())))
        print_rows(section, rows)
        results[section.name] = [asdict(row) for row in rows]
    for note in context.notes:
        output.print_info(note)
    path = args.results_dir / time.strftime("%Y%m%dT%H%M%SZ.json", time.gmtime())
    path.write_text(json.dumps({"sections": results, "notes": context.notes}, indent=2))
    output.print_info(f"Results written to {shown_path(path)}")
    return 0


def _steal_note(name: str, share: float | None) -> str:
    """A virtual machine's CPUs are shared: time the host gave to other guests (steal) slows
    every server unevenly, so a figure taken while it was high says little."""
    if share is None:
        return f"{name}: CPU steal unknown (no /proc/stat)"
    level = "low" if share < 0.02 else "HIGH: the host took CPU time, figures compare less well"
    return f"{name}: CPU steal during the section {share:.1%} ({level})"


def shown_path(path: Path) -> Path:
    """Relative to the repository when inside it (the default), else as given (--results-dir)."""
    try:
        return path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return path


if __name__ == "__main__":
    sys.exit(main())
