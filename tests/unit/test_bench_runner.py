"""benchmarks/run.py, the runner of `make bench`, with a stand-in section (no server, no load)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from benchmarks import run
from benchmarks.common import BenchContext, CpuTimes, Row, cpu_times, stolen_share


@dataclass(frozen=True)
class _StandInSection:
    name: str = "stand-in"
    description: str = "one fixed row, for the runner's own test"

    def function(self):
        def measure(context: BenchContext) -> list[Row]:
            context.notes.append("stand-in: measured nothing")
            return [Row("stand-in figure", 1.5, "x", ">= 1x", True)]
        return measure


def test_results_go_to_a_results_dir_outside_the_repository(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run, "SECTIONS", [_StandInSection()])
    results = tmp_path / "results"

    assert run.main(["--results-dir", str(results)]) == 0

    written = list(results.glob("*.json"))
    assert len(written) == 1
    assert json.loads(written[0].read_text())["sections"]["stand-in"][0]["value"] == 1.5
    out = capsys.readouterr().out
    assert f"Results written to {written[0]}" in out
    assert "stand-in figure" in out


def test_a_path_inside_the_repository_is_shown_relative_to_it():
    inside = run.REPO_ROOT / "benchmarks" / "results" / "x.json"
    assert str(run.shown_path(inside)) == "benchmarks/results/x.json"


def test_rounds_below_one_are_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        run.build_parser().parse_args(["--rounds", "0"])
    assert stop.value.code == 2
    assert "must be a whole number of at least 1, got 0" in capsys.readouterr().err


def test_cpu_steal_is_read_from_the_cpu_line_of_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 800 10 1 4 30 7 0\ncpu0 50 2 25 400 5 0 2 15 0 0\n")
    times = cpu_times(stat)
    assert times == CpuTimes(total=100 + 5 + 50 + 800 + 10 + 1 + 4 + 30, steal=30)
    later = CpuTimes(total=times.total + 200, steal=times.steal + 50)
    assert stolen_share(times, later) == 0.25
    assert stolen_share(times, times) is None
    assert cpu_times(tmp_path / "missing") is None
    for text in ("", "\n", "intr 1 2 3 4 5 6 7 8 9\n", "cpu 1 2\n"):
        stat.write_text(text)
        assert cpu_times(stat) is None


def test_the_runner_notes_the_steal_of_each_section(tmp_path, monkeypatch):
    readings = iter([CpuTimes(total=1000, steal=10), CpuTimes(total=2000, steal=110)])
    monkeypatch.setattr(run, "cpu_times", lambda: next(readings))
    monkeypatch.setattr(run, "SECTIONS", [_StandInSection()])

    assert run.main(["--results-dir", str(tmp_path)]) == 0

    notes = json.loads(next(tmp_path.glob("*.json")).read_text())["notes"]
    assert "stand-in: CPU steal during the section 10.0% (HIGH: the host took CPU time, figures " \
           "compare less well)" in notes
