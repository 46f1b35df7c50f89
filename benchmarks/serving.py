"""Serving benchmark: our model server against today's and MLflow's, in one run, on loopback.

The servers serve the same model (artifacts/model.joblib) and answer the same rows:
- ours: artifacts/serve (granian, RSGI), 2 workers;
- today's: the serving stack as it was at BASELINE_COMMIT, the last gunicorn sync server: its
  artifacts/serve, model_server.py and handler_loader.py AND the inference.py it served with,
  all taken from git, 2 workers. This is the baseline of issue 10's goals;
- today's server with our inference.py: the same old server running the current inference.py,
  keep-alive only, for reference: what the HTTP core alone gives (earlier versions of this
  benchmark had only this one, and took the goals' ratios against it);
- MLflow's scoring server with its default worker count, on a copy saved with
  `mlflow.sklearn.save_model(..., pyfunc_predict_fn="predict_proba")`, so that all of them
  compute class probabilities. Its JSON format is `{"inputs": rows}`; ours `{"data": rows}`.
All servers run at once; before any load every answer is checked to hold the same probabilities
as ours. The loads are interleaved: for each cell (1 or 1000 rows, keep-alive or close) every
server is loaded in turn, so that a ratio compares figures taken seconds apart; the whole sequence
runs `--rounds` times (3). A server's figure is the median of its rounds; a ratio is the median of
the rounds' own ratios (each compares loads taken seconds apart), with every round's ratio in the
note: on a virtual machine whose host takes CPU time now and then (the runner prints the steal),
one load can be hit and the median is not.

Load: wrk with a Lua script (POST body from a file, figures printed by its `done` hook), bounded
to `--duration` seconds after a short warm-up, `--threads`/`--connections` (2/8), both with
HTTP/1.1 keep-alive (wrk's default) and with one connection per request (`Connection: close`).

Goals (issue 10), as ratios measured in this run: ours/today's >= 3x at 1 row and >= 2x at 1000
rows, ours/MLflow >= 15x at 1 row (keep-alive, as clients such as the SageMaker front end use);
our p99 <= 3 ms at 1 row on a quiet machine (the load average and CPU steal are printed);
our cold start (process start -> first GET /ping 200) <= 3 s.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.common import BenchContext, Row

OUR_WORKERS = 2
WARMUP_SECONDS = 2
COLD_STARTS = 3
START_DEADLINE = 60.0
BASELINE_COMMIT = "d57ac51c986d4214ec0f004fc5b557ef78f55246"  # the last gunicorn model server
BASELINE_FILES = ("artifacts/serve", "artifacts/model_server.py", "artifacts/handler_loader.py")
BASELINE_HANDLERS = "artifacts/inference.py"  # the handlers today's server served with
MODES = ("keep-alive", "close")
_SEED = 7
_FEATURE_MEANS = [2.5, 180.0, 101.3, 0.2]
_FEATURE_SPREADS = [0.1, 8.0, 4.0, 0.08]

# wrk's Lua hooks: the body comes from a file; `done` prints one machine-readable line.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BENCH_CLOSE") == "1" then wrk.headers["Connection"] = "close" end
local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.body = file:read("*a")
file:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %.1f %.1f %.1f %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""

_SAVE_FOR_MLFLOW = """
import sys, joblib, mlflow.sklearn
mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], pyfunc_predict_fn="predict_proba")
"""


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    bad_status: int
    socket_errors: int


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    cold_start: float


Loads = dict[tuple[int, str], list[Load]]  # (rows, mode) -> the figures of each round


@dataclass
class Contender:
    """One server under load: its figures are taken cell by cell, next to everyone else's."""

    key: str  # "ours", "today", "today-core", "mlflow"
    server: Server
    body: str  # which request bodies it takes: "ours" ({"data": ...}) or "mlflow" ({"inputs": ...})
    modes: tuple[str, ...]
    loads: Loads = field(default_factory=dict)


# --- the section ------------------------------------------------------------------------------

def run(context: BenchContext) -> list[Row]:
    if context.wrk is None:
        context.notes.append("serving: wrk is not installed (apt-get install -y wrk); skipped")
        return []
    work = context.work_dir / "serving"
    work.mkdir(parents=True, exist_ok=True)
    model_dir = _bundle(context.repo_root, work / "model")
    bodies = _write_bodies(work)
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)

    colds = _cold_starts(context, model_dir)
    contenders: dict[str, Contender] = {}
    try:
        _start_contenders(context, model_dir, bodies, contenders)
        _measure_interleaved(context, list(contenders.values()), bodies, script)
    finally:
        for contender in contenders.values():
            _stop(contender.server)
    ours = contenders["ours"].loads
    rows = _our_rows(ours, colds)
    if "today" in contenders:
        rows += _baseline_rows(contenders["today"].loads, contenders["today-core"].loads, ours)
    if "mlflow" in contenders:
        rows += _mlflow_rows(contenders["mlflow"], ours)
    return rows


def _start_contenders(context: BenchContext, model_dir: Path, bodies: dict,
                      contenders: dict[str, Contender]) -> None:
    """Every server at once (idle ones cost nothing), each checked to give our probabilities."""
    ours = _start_ours(context, model_dir)
    contenders["ours"] = Contender("ours", ours, "ours", MODES)
    reference = _answer(ours.port, bodies["ours-1"])["probabilities"]
    baseline = _extract_baseline(context)
    if baseline is not None:
        serve, then_dir = baseline
        for key, handlers_dir, modes in (("today", then_dir, MODES),
                                         ("today-core", model_dir, ("keep-alive",))):
            server = _start_ours(context, handlers_dir, serve=serve, log_name=f"{key}.log")
            contenders[key] = Contender(key, server, "ours", modes)
            _check_same_answer(server.port, bodies["ours-1"], reference, "probabilities")
    if context.mlflow_python is None:
        context.notes.append("serving: MLflow is not installed in .venv-bench (make bench installs "
                             "it); no MLflow baseline")
        return
    mlflow_dir = _save_for_mlflow(context, model_dir / "model.joblib",
                                  context.work_dir / "serving" / "mlflow-model")
    server = _start_mlflow(context, mlflow_dir)
    contenders["mlflow"] = Contender("mlflow", server, "mlflow", ("keep-alive",))
    _check_same_answer(server.port, bodies["mlflow-1"], reference, "predictions")


def _measure_interleaved(context: BenchContext, contenders: list[Contender], bodies: dict,
                         script: Path) -> None:
    """Cell by cell (rows x mode), every server in turn: a ratio compares loads taken seconds
    apart, not minutes (on a shared machine the load drifts in minutes)."""
    for round_index in range(context.rounds):
        for count in (1, 1000):
            for mode in MODES:
                for contender in contenders:
                    if mode in contender.modes:
                        body = bodies[f"{contender.body}-{count}"]
                        load = _load(context, contender.server.port, body, script, mode,
                                     warm_up=round_index == 0)
                        contender.loads.setdefault((count, mode), []).append(load)


def _median(loads: list[Load]) -> Load:
    """Each figure's median over the rounds; errors are added up (none may hide in a median)."""
    def middle(name: str) -> float:
        return statistics.median(getattr(load, name) for load in loads)
    return Load(requests_per_second=middle("requests_per_second"), p50_ms=middle("p50_ms"),
                p99_ms=middle("p99_ms"), max_ms=max(load.max_ms for load in loads),
                bad_status=sum(load.bad_status for load in loads),
                socket_errors=sum(load.socket_errors for load in loads))


def _cold_starts(context: BenchContext, model_dir: Path) -> list[float]:
    colds = []
    for _ in range(COLD_STARTS):
        server = _start_ours(context, model_dir)
        colds.append(server.cold_start)
        _stop(server)
    context.notes.append(f"serving: our cold starts (s): {', '.join(f'{c:.2f}' for c in colds)}")
    return colds


def _our_rows(ours: Loads, colds: list[float]) -> list[Row]:
    rows = []
    for (count, mode), loads in ours.items():
        label = f"ours, {_rows(count)}, {mode}"
        load = _median(loads)
        rows.append(Row(f"{label}: req/s", load.requests_per_second, "req/s",
                        note=f"{OUR_WORKERS} workers, {_errors(load)}"))
        if count == 1 and mode == "keep-alive":
            rows.append(Row(f"{label}: p50", load.p50_ms, "ms"))
            rows.append(Row(f"{label}: p99", load.p99_ms, "ms", "<= 3 ms", load.p99_ms <= 3.0,
                            note="on a quiet machine: see the load average and CPU steal"))
        else:
            rows.append(Row(f"{label}: p99", load.p99_ms, "ms"))
    median_cold = statistics.median(colds)
    rows.append(Row("ours: cold start (median of 3)", median_cold, "s", "<= 3 s",
                    median_cold <= 3.0, note="process start -> first /ping 200"))
    return rows


def _baseline_rows(today: Loads, today_core: Loads, ours: Loads) -> list[Row]:
    """The goals' baseline is today's serving stack as it was (its server AND its inference.py);
    the same old server with our current inference.py isolates what the HTTP core alone gives."""
    rows = []
    for (count, mode), loads in today.items():
        label = f"today's (gunicorn sync, as at {BASELINE_COMMIT[:7]}), {_rows(count)}, {mode}"
        load = _median(loads)
        rows.append(Row(f"{label}: req/s", load.requests_per_second, "req/s",
                        note=_errors(load)))
        rows.append(Row(f"{label}: p99", load.p99_ms, "ms"))
    for (count, mode), loads in today_core.items():
        load = _median(loads)
        rows.append(Row(f"today's server with our inference.py, {_rows(count)}, {mode}: req/s",
                        load.requests_per_second, "req/s", note=_errors(load)))
    goals = {1: 3.0, 1000: 2.0}
    for (count, mode), loads in today.items():
        rows.append(_ratio(f"ratio ours/today's, {_rows(count)}, {mode}", ours[count, mode],
                           loads, goals[count] if mode == "keep-alive" else None))
    for (count, mode), loads in today_core.items():
        rows.append(_ratio(f"ratio ours/today's server with our inference.py, {_rows(count)}, "
                           f"{mode}", ours[count, mode], loads, None, note="the HTTP core alone"))
    return rows


def _extract_baseline(context: BenchContext) -> tuple[Path, Path] | None:
    """Today's serving stack from git: its `serve`, server and loader in baseline/, and a model
    directory whose code/inference.py is the one it served with (same model.joblib as ours)."""
    target = context.work_dir / "serving" / "baseline"
    then_dir = context.work_dir / "serving" / "model-then"
    (then_dir / "code").mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    try:
        for name in BASELINE_FILES:
            (target / Path(name).name).write_bytes(_git_show(context, name))
        (then_dir / "code" / "inference.py").write_bytes(_git_show(context, BASELINE_HANDLERS))
        import gunicorn  # noqa: F401 - the baseline's HTTP core (requirements-dev.txt)
    except (OSError, subprocess.SubprocessError, ImportError) as exc:
        context.notes.append(f"serving: today's server (git {BASELINE_COMMIT[:7]}) is "
                             f"unavailable ({exc}); no baseline")
        return None
    (then_dir / "model.joblib").write_bytes((context.repo_root / "artifacts/model.joblib")
                                            .read_bytes())
    context.notes.append(
        f"serving: today's = artifacts/serve, model_server.py, handler_loader.py AND inference.py "
        f"as they were at git {BASELINE_COMMIT[:7]} (the last gunicorn server): the goals' "
        "baseline. 'today's server with our inference.py' is the same old server running the "
        "current inference.py, for reference (what the HTTP core alone gives)")
    return target / "serve", then_dir


def _git_show(context: BenchContext, name: str) -> bytes:
    return subprocess.run(["git", "-C", str(context.repo_root), "show",
                           f"{BASELINE_COMMIT}:{name}"], capture_output=True, check=True,
                          timeout=30).stdout


def _mlflow_rows(mlflow: Contender, ours: Loads) -> list[Row]:
    one, thousand = _median(mlflow.loads[1, "keep-alive"]), _median(mlflow.loads[1000, "keep-alive"])
    label = "MLflow (default workers)"
    return [
        Row(f"{label}, 1 row: req/s", one.requests_per_second, "req/s", note=_errors(one)),
        Row(f"{label}, 1 row: p99", one.p99_ms, "ms"),
        Row(f"{label}, 1000 rows: req/s", thousand.requests_per_second, "req/s",
            note=_errors(thousand)),
        Row(f"{label}: cold start", mlflow.server.cold_start, "s"),
        _ratio(f"ratio ours/{label}, 1 row", ours[1, "keep-alive"], mlflow.loads[1, "keep-alive"],
               15.0),
        _ratio(f"ratio ours/{label}, 1000 rows", ours[1000, "keep-alive"],
               mlflow.loads[1000, "keep-alive"], None),
    ]


def _rows(count: int) -> str:
    return f"{count} row{'s' if count > 1 else ''}"


def _ratio(name: str, ours: list[Load], theirs: list[Load], goal: float | None,
           note: str = "for reference") -> Row:
    """The median of the rounds' ratios, each of two loads taken seconds apart; all in the note."""
    each = [mine.requests_per_second / other.requests_per_second if other.requests_per_second
            else None for mine, other in zip(ours, theirs, strict=True)]
    answered = [value for value in each if value is not None]  # "-": they answered nothing
    ratio = statistics.median(answered) if answered else None
    rounds = "rounds " + " / ".join("-" if value is None else f"{value:.2f}" for value in each)
    if goal is None:
        return Row(name, ratio, "x", note=f"{note}; {rounds}")
    return Row(name, ratio, "x", f">= {goal:g}x", ratio is not None and ratio >= goal,
               note=rounds)


def _errors(load: Load) -> str:
    if not load.bad_status and not load.socket_errors:
        return "no errors"
    return f"{load.bad_status} non-2xx, {load.socket_errors} socket errors"


# --- data -------------------------------------------------------------------------------------

def _bundle(repo_root: Path, target: Path) -> Path:
    (target / "code").mkdir(parents=True, exist_ok=True)
    for source, destination in (("artifacts/model.joblib", "model.joblib"),
                                ("artifacts/inference.py", "code/inference.py")):
        (target / destination).write_bytes((repo_root / source).read_bytes())
    return target


def _write_bodies(work: Path) -> dict[str, Path]:
    rng = np.random.default_rng(_SEED)
    rows = rng.normal(_FEATURE_MEANS, _FEATURE_SPREADS, size=(1000, 4)).round(4).tolist()
    bodies = {}
    for count in (1, 1000):
        for name, key in (("ours", "data"), ("mlflow", "inputs")):
            path = work / f"{name}-{count}.json"
            path.write_text(json.dumps({key: rows[:count]}))
            bodies[f"{name}-{count}"] = path
    return bodies


def _save_for_mlflow(context: BenchContext, model_file: Path, target: Path) -> Path:
    if target.exists():
        subprocess.run(["rm", "-rf", str(target)], check=True)
    subprocess.run([str(context.mlflow_python), "-c", _SAVE_FOR_MLFLOW, str(model_file),
                    str(target)], check=True, capture_output=True, timeout=300,
                   env=_mlflow_env())
    return target


# --- servers ----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_ours(context: BenchContext, model_dir: Path, serve: Path | None = None,
                log_name: str = "ours.log") -> Server:
    port = _free_port()
    env = dict(os.environ, SAGEMAKER_SUBMIT_DIRECTORY=str(model_dir / "code"),
               SAGEMAKER_PROGRAM="inference.py", SAGEMAKER_MODEL_SERVER_WORKERS=str(OUR_WORKERS))
    command = [sys.executable, str(serve or context.repo_root / "artifacts" / "serve"), "--host",
               "127.0.0.1", "--port", str(port), "--model-dir", str(model_dir)]
    return _start(command, env, port, context.work_dir / "serving" / log_name)


def _start_mlflow(context: BenchContext, model_dir: Path) -> Server:
    port = _free_port()
    mlflow = context.mlflow_python.parent / "mlflow"
    command = [str(mlflow), "models", "serve", "--env-manager", "local", "-m", str(model_dir),
               "-p", str(port), "-h", "127.0.0.1"]
    log = context.work_dir / "serving" / "mlflow-default.log"
    return _start(command, _mlflow_env(context.mlflow_python), port, log)


def _mlflow_env(python: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    if python is not None:  # its scoring server starts helpers by name: put its venv first
        env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _start(command: list[str], env: dict[str, str], port: int, log_path: Path) -> Server:
    with open(log_path, "wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    while time.monotonic() - started < START_DEADLINE:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {process.returncode}; see {log_path}")
        if _ping(port):
            return Server(process, port, time.monotonic() - started)
        time.sleep(0.01)
    _stop(Server(process, port, 0.0))
    raise RuntimeError(f"{command[0]} did not answer /ping within {START_DEADLINE} s; "
                       f"see {log_path}")


def _ping(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _stop(server: Server) -> None:
    """SIGTERM the whole process group (MLflow starts a child server), then SIGKILL if needed."""
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(5)
    except ProcessLookupError:
        pass
    try:  # any straggler of the group
        os.killpg(server.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _answer(port: int, body_file: Path) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/invocations", body=body_file.read_bytes(),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"POST /invocations answered {response.status}: {payload[:300]!r}")
    return json.loads(payload)


def _check_same_answer(port: int, body_file: Path, ours: list, key: str) -> None:
    theirs = _answer(port, body_file)[key]
    if not np.allclose(np.asarray(theirs, dtype=float), ours):
        raise RuntimeError(f"The baseline's probabilities {theirs} differ from ours {ours}: the "
                           "comparison would be unfair")


# --- load -------------------------------------------------------------------------------------

def _load(context: BenchContext, port: int, body_file: Path, script: Path, mode: str,
          warm_up: bool = True) -> Load:
    if warm_up:  # the first round only: later rounds find the same servers warm
        _wrk(context, port, body_file, script, WARMUP_SECONDS, mode)
    return _wrk(context, port, body_file, script, context.duration, mode)


def _wrk(context: BenchContext, port: int, body_file: Path, script: Path, seconds: int,
         mode: str) -> Load:
    command = [context.wrk, f"-t{context.threads}", f"-c{context.connections}", f"-d{seconds}s",
               "--latency", "-s", str(script), f"http://127.0.0.1:{port}/invocations"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                            env=dict(os.environ, BENCH_BODY_FILE=str(body_file),
                                     BENCH_CLOSE="1" if mode == "close" else "0"))
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    requests, duration_us, p50, p99, worst, bad, errors = line.split()[1:]
    return Load(requests_per_second=int(requests) / (int(duration_us) / 1e6),
                p50_ms=float(p50) / 1000, p99_ms=float(p99) / 1000, max_ms=float(worst) / 1000,
                bad_status=int(bad), socket_errors=int(errors))
