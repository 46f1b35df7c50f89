"""benchmarks/run.py, the runner of `make bench`, with a stand-in section (no server, no load)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from benchmarks import run
from benchmarks.common import BenchContext, Row


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
