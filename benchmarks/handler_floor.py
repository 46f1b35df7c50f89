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
import math
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ROW = [2.5, 180.0, 101.3, 0.2]
BODY = b'{"data": [[2.5, 180.0, 101.3, 0.2]]}'
JSON_HEADERS = [("content-type", "application/json")]
MODES = ("constant", "handlers", "plain-python")


def load_inference() -> tuple[object, object, object]:
    sys.path.insert(0, str(ARTIFACTS))
    import handler_loader

    module = handler_loader.import_user_module(ARTIFACTS, "inference.py")
    handlers = handler_loader.handlers_from_module(module, ARTIFACTS / "inference.py")
    return handler_loader, module, handlers


def answer_function(mode: str):
    handler_loader, _, handlers = load_inference()
    model = handlers.model_fn(str(ARTIFACTS))

    def through_handlers(body: bytes) -> bytes:
        content = handler_loader.request_content(body, "application/json")
        result = handlers.transform(model, content, "application/json", "application/json")
        return handler_loader.normalize_output(result, "application/json")[1]

    if mode == "plain-python":
        return plain_python_answer(model)
    if mode == "constant":
        constant = through_handlers(BODY)
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

        async def __rsgi__(self, _scope, protocol) -> None:
            protocol.response_bytes(200, JSON_HEADERS, answer(await protocol()))

    app = App()
    server = MPServer(target="handler_floor:App", address="127.0.0.1", port=port,
                      interface=Interfaces.RSGI, workers=workers, loop=Loops.uvloop,
                      http=HTTPModes.http1, runtime_mode=RuntimeModes.mt,
                      http1_settings=HTTP1Settings(keep_alive=True), log_access=False,
                      websockets=False)
    multiprocessing.set_start_method("fork", force=True)
    server.serve(target_loader=lambda: app, wrap_loader=False)


def load(mode: str, workers: int, seconds: int, wrk: str, script: Path) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--port", str(port),
                               "--workers", str(workers)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, server)
        url = f"http://127.0.0.1:{port}/"
        subprocess.run([wrk, "-t2", "-c8", "-d2s", "-s", str(script), url], check=True,
                       capture_output=True)  # warm-up
        out = subprocess.run([wrk, "-t2", "-c8", f"-d{seconds}s", "-s", str(script), url],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def wait_for_port(port: int, server: subprocess.Popen, deadline: float = 60.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the probe server exited with {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the probe server did not listen within {deadline} s")


def stage_costs() -> None:
    import numpy as np
    import orjson

    _, module, _ = load_inference()
    model = module.model_fn(str(ARTIFACTS))
    whole = answer_function("handlers")
    rows = np.random.default_rng(7).normal(ROW, [0.1, 8.0, 4.0, 0.08], size=(1000, 4))
    for body in (BODY, orjson.dumps({"data": rows.round(4).tolist()})):
        time_stages(module, model, whole, body)


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
          f"wrk -t2 -c8 {args.seconds} s, one row")
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "post.lua"
        script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = '
                          f'"application/json"\nwrk.body = \'{BODY.decode()}\'\n')
        for mode in MODES:
            print(f"  {mode:14s} {load(mode, args.workers, args.seconds, wrk, script):10,.0f} "
                  "req/s")
    print("in-process, best of 5:")
    stage_costs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
