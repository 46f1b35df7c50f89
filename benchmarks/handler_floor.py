"""Where a 1-row request's time goes in our model server: a probe, not part of `make bench`.

    .venv/bin/python benchmarks/handler_floor.py [--seconds 5] [--workers 2]

Runs granian with the model server's settings (RSGI, uvloop, HTTP/1.1 keep-alive, mt runtime)
around three apps in turn, each loaded with wrk -t2 -c8 on loopback with one JSON row:
- constant: reads the body and answers a fixed JSON body (what granian and RSGI cost alone);
- handlers: the real handler chain (handler_loader + artifacts/inference.py) inline;
- plain-python: the same answer from Python floats, for the shipped model only (StandardScaler +
  binary LogisticRegression): what skipping numpy at 1 row could give (not what we serve).
Then the in-process cost of each handler stage, best of 5, at 1 and 1000 rows. Run it on a quiet
machine (the load average is printed) and compare the apps of one run with each other.
"""

from __future__ import annotations

import argparse
import functools
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import timeit
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script: benchmarks/ imports from the root

from benchmarks.common import BenchContext  # noqa: E402
from benchmarks.serving import (  # noqa: E402  (the serving benchmark's own server and wrk plumbing)
    WRK_SCRIPT,
    _free_port,
    _load,
    _start,
    _stop,
    _write_bodies,
)

ARTIFACTS = REPO_ROOT / "artifacts"
JSON_HEADERS = [("content-type", "application/json")]
ONE_ROW = b'{"data": [[2.5, 180.0, 101.3, 0.2]]}'  # the constant app answers what this gets
PING = b'{"status": "healthy"}'
MODES = ("constant", "handlers", "plain-python")


@functools.cache
def load_inference() -> tuple[object, object, object, object]:
    """handler_loader, the inference module, its handlers and the model, loaded once."""
    sys.path.insert(0, str(ARTIFACTS))
    import handler_loader

    module = handler_loader.import_user_module(ARTIFACTS, "inference.py")
    handlers = handler_loader.handlers_from_module(module, ARTIFACTS / "inference.py")
    return handler_loader, module, handlers, handlers.model_fn(str(ARTIFACTS))


def answer_function(mode: str):
    handler_loader, _, handlers, model = load_inference()

    def through_handlers(body: bytes) -> bytes:
        content = handler_loader.request_content(body, "application/json")
        result = handlers.transform(model, content, "application/json", "application/json")
        return handler_loader.normalize_output(result, "application/json")[1]

    if mode == "plain-python":
        return plain_python_answer(model)
    if mode == "constant":
        constant = through_handlers(ONE_ROW)
        return lambda body: constant
    return through_handlers


def plain_python_answer(model):
    import orjson

    linear = model.linear
    if linear is None or linear.mean is None or linear.scale is None or \
            linear.weights.shape[1] != 1:
        raise SystemExit("plain-python needs the shipped model: StandardScaler + binary "
                         "LogisticRegression")
    mean, scale = linear.mean.tolist(), linear.scale.tolist()
    weights, bias = linear.weights[:, 0].tolist(), float(linear.bias[0])

    def answer(body: bytes) -> bytes:
        rows = orjson.loads(body)["data"]
        predictions, probabilities, indices, confidences = [], [], [], []
        for row in rows:
            terms = [(x - m) / s * w for x, m, s, w in zip(row, mean, scale, weights, strict=True)]
            positive = 1.0 / (1.0 + math.exp(-(bias + sum(terms))))
            index = int(positive > 1.0 - positive)
            predictions.append(model.labels[index])
            probabilities.append([1.0 - positive, positive])
            indices.append(index)
            confidences.append(probabilities[-1][index])
        return orjson.dumps({"predictions": predictions, "probabilities": probabilities,
                             "class_indices": indices, "confidence_scores": confidences})
    return answer


def serve(mode: str, port: int, workers: int) -> None:
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes
    from granian.http import HTTP1Settings
    from granian.server.mp import MPServer

    answer = answer_function(mode)

    class App:
        def __rsgi_init__(self, _loop) -> None:
            pass

        async def __rsgi__(self, scope, protocol) -> None:
            body = await protocol()
            protocol.response_bytes(200, JSON_HEADERS, PING if scope.method == "GET"
                                    else answer(body))

    app = App()
    server = MPServer(target="handler_floor:App", address="127.0.0.1", port=port,
                      interface=Interfaces.RSGI, workers=workers, loop=Loops.uvloop,
                      http=HTTPModes.http1, runtime_mode=RuntimeModes.mt,
                      http1_settings=HTTP1Settings(keep_alive=True), log_access=False,
                      websockets=False)
    multiprocessing.set_start_method("fork", force=True)
    server.serve(target_loader=lambda: app, wrap_loader=False)


def load(context: BenchContext, mode: str, workers: int, body: Path, script: Path) -> str:
    port = _free_port()
    server = _start([sys.executable, __file__, "--serve", mode, "--port", str(port),
                     "--workers", str(workers)], dict(os.environ), port,
                    context.work_dir / f"{mode}.log")
    try:
        figures = _load(context, port, body, script, "keep-alive")
    finally:
        _stop(server)
    errors = figures.bad_status + figures.socket_errors
    return f"{figures.requests_per_second:10,.0f} req/s" + (f"  ({errors} errors)" if errors else "")


def stage_costs(bodies: dict[str, Path]) -> None:
    _, module, _, model = load_inference()
    whole = answer_function("handlers")
    for key in ("ours-1", "ours-1000"):
        time_stages(module, model, whole, bodies[key].read_bytes())


def time_stages(module, model, whole, body: bytes) -> None:
    import orjson

    features = module.input_fn(body, "application/json")
    prediction = module.predict_fn(features, model)
    number = 20000 if len(features) == 1 else 300
    for name, call in (("whole chain", lambda: whole(body)),
                       ("input_fn", lambda: module.input_fn(body, "application/json")),
                       ("  orjson.loads", lambda: orjson.loads(body)),
                       ("predict_fn", lambda: module.predict_fn(features, model)),
                       ("output_fn", lambda: module.output_fn(prediction, "application/json"))):
        best = min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6
        print(f"  {len(features):5d} row(s) {name:16s} {best:9.2f} us")


def check_plain_python_agrees(bodies: dict[str, Path]) -> None:
    """The what-if must give the served answer (to the last bits), or its figure means nothing."""
    import numpy as np
    import orjson

    served, plain = answer_function("handlers"), answer_function("plain-python")
    for key in ("ours-1", "ours-1000"):
        ours, theirs = (orjson.loads(f(bodies[key].read_bytes())) for f in (served, plain))
        same = ours["predictions"] == theirs["predictions"] and np.allclose(
            ours["probabilities"], theirs["probabilities"], rtol=1e-12, atol=0)
        if not same:
            raise SystemExit(f"plain-python does not answer {key} as the handlers do")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk seconds per app (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="granian workers (default 2)")
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.workers)
        return 0
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.workers} worker(s), "
          f"wrk -t2 -c8 {args.seconds} s, one row, keep-alive")
    with tempfile.TemporaryDirectory() as work:
        context = BenchContext(repo_root=REPO_ROOT, duration=args.seconds, rounds=1, connections=8,
                               threads=2, mlflow_python=None, wrk=wrk, work_dir=Path(work))
        bodies = _write_bodies(context.work_dir)
        script = context.work_dir / "post.lua"
        script.write_text(WRK_SCRIPT)
        check_plain_python_agrees(bodies)
        for mode in MODES:
            print(f"  {mode:14s} {load(context, mode, args.workers, bodies['ours-1'], script)}")
        print("in-process, best of 5:")
        stage_costs(bodies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
