"""benchmarks/serving.py's rounds: the order of the loads and how rounds become figures (no server)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import serving
from benchmarks.common import BenchContext
from benchmarks.serving import Contender, Load, Server


def _load(rps: float, p99: float = 1.0, bad: int = 0) -> Load:
    return Load(requests_per_second=rps, p50_ms=0.5, p99_ms=p99, max_ms=p99 * 2, bad_status=bad,
                socket_errors=0)


def _contender(key: str, port: int, modes: tuple[str, ...]) -> Contender:
    return Contender(key, Server(process=None, port=port, cold_start=0.0), "ours", modes)


def test_every_round_loads_every_server_in_turn_and_only_the_first_warms_up(tmp_path, monkeypatch):
    calls = []

    def fake_load(context, port, body, script, mode, warm_up=True):
        calls.append((port, body.name, mode, warm_up))
        return _load(float(len(calls)))

    monkeypatch.setattr(serving, "_load", fake_load)
    context = BenchContext(repo_root=tmp_path, duration=1, rounds=2, connections=8, threads=2,
                           mlflow_python=None, wrk="wrk", work_dir=tmp_path)
    ours, other = _contender("ours", 1, serving.MODES), _contender("other", 2, ("keep-alive",))
    bodies = {f"ours-{count}": Path(f"ours-{count}.json") for count in (1, 1000)}

    serving._measure_interleaved(context, [ours, other], bodies, Path("post.lua"))

    one_round = [(ours.server.port, "ours-1.json", "keep-alive"),
                 (other.server.port, "ours-1.json", "keep-alive"),
                 (ours.server.port, "ours-1.json", "close"),
                 (ours.server.port, "ours-1000.json", "keep-alive"),
                 (other.server.port, "ours-1000.json", "keep-alive"),
                 (ours.server.port, "ours-1000.json", "close")]
    assert [call[:3] for call in calls] == one_round * 2
    assert [call[3] for call in calls] == [True] * 6 + [False] * 6
    assert [load.requests_per_second for load in ours.loads[1, "keep-alive"]] == [1.0, 7.0]
    assert [load.requests_per_second for load in other.loads[1000, "keep-alive"]] == [5.0, 11.0]


def test_a_figure_is_the_median_of_its_rounds_and_errors_are_added_up():
    median = serving._median([_load(100, p99=9.0), _load(300, p99=1.0, bad=2), _load(200, p99=2.0)])
    assert median.requests_per_second == 200
    assert median.p99_ms == 2.0
    assert median.max_ms == 18.0
    assert median.bad_status == 2


def test_a_ratio_is_the_median_of_the_rounds_own_ratios():
    ours = [_load(300), _load(100), _load(330)]
    theirs = [_load(100), _load(100), _load(100)]  # round 2: ours was hit alone

    row = serving._ratio("ratio", ours, theirs, goal=3.0)

    assert row.value == 3.0
    assert row.met is True
    assert row.note == "rounds 3.00 / 1.00 / 3.30"
    assert serving._ratio("ratio", ours[1:2], theirs[:1], goal=3.0).met is False


def test_a_round_the_baseline_answered_nothing_in_shows_and_has_no_ratio():
    row = serving._ratio("ratio", [_load(300), _load(300)], [_load(100), _load(0)], goal=None)
    assert row.value == 3.0
    assert row.note == "for reference; rounds 3.00 / -"
    assert serving._ratio("ratio", [_load(1)], [_load(0)], goal=3.0).met is False
