"""Child process of the artifact pre-flight: unpickle the model and run the four handlers.

`model.joblib` is a pickle (loading it runs code) and `inference.py` is the user's code, so both
run here, in a separate process with a deadline, never inside the packaging tool. The parent
(`modules/preflight.py`) starts this file as a script with two paths: a JSON request and where to
write the JSON result. The result goes to a file, not stdout, so whatever the handlers print cannot
corrupt it. This file imports nothing from the project (it must run from any working directory).

Request: {"model_dir", "code_dir", "program", "rows": [[...]] or null, "generated_rows": n,
          "smoke": bool}
Result:  {"load": {...}, "model": {...} or null, "smoke": {...} or null}
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

HANDLERS = ("model_fn", "input_fn", "predict_fn", "output_fn")
CONTENT_TYPE = "application/json"
_MAX_TEXT = 2000
_SEED = 20260101


def main(request_path: str, result_path: str) -> int:
    sys.dont_write_bytecode = True  # never leave __pycache__ in the user's artifacts directory
    request = json.loads(Path(request_path).read_text())
    result: dict[str, Any] = {"load": None, "model": None, "smoke": None}
    try:
        model = _load(Path(request["model_dir"]) / "model.joblib", result)
        if model is not None:
            result["model"] = _describe_safely(model)
            if request.get("smoke") and result["model"].get("usable"):
                rows = request.get("rows") or generate_rows(result["model"]["n_features"],
                                                            request.get("generated_rows", 5))
                result["smoke"] = smoke_run(request, rows)
    finally:
        Path(result_path).write_text(json.dumps(result))
    return 0


def _load(path: Path, result: dict[str, Any]) -> Any:
    try:
        import joblib
        from sklearn.exceptions import InconsistentVersionWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle is the finding
        result["load"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:_MAX_TEXT]}
        return None
    # An estimator pickled by another scikit-learn version announces its version on load.
    saved = sorted({str(w.message.original_sklearn_version) for w in caught
                    if isinstance(w.message, InconsistentVersionWarning)})
    result["load"] = {"ok": True, "saved_sklearn_versions": saved}
    return model


def _describe_safely(model: Any) -> dict[str, Any]:
    try:
        return describe_model(model)
    except Exception as exc:  # noqa: BLE001 - a hostile or broken object: report, don't crash
        return {"error": f"{type(exc).__name__}: {exc}"[:_MAX_TEXT], "usable": False}


def describe_model(model: Any) -> dict[str, Any]:
    """What the parent needs to judge the model: kind, linearity, probabilities, shape, classes."""
    import sklearn
    from sklearn.base import is_classifier
    from sklearn.pipeline import Pipeline

    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    facts = {
        "type": _qualified(model), "final_estimator": _qualified(final),
        "pipeline": isinstance(model, Pipeline), "linear": linear_kind(final),
        "classifier": _is_classifier(model, is_classifier),
        "predict_proba": hasattr(model, "predict_proba"),
        "n_features": _int_or_none(getattr(model, "n_features_in_", None)),
        "classes": _classes(model), "sklearn_version_here": sklearn.__version__,
    }
    facts["usable"] = bool(facts["classifier"] and facts["predict_proba"]
                           and facts["n_features"] and facts["classes"])
    return facts


def _is_classifier(model: Any, is_classifier: Any) -> bool:
    try:
        return bool(is_classifier(model))
    except Exception:  # noqa: BLE001 - e.g. not an estimator at all: then it is not a classifier
        return False


def linear_kind(estimator: Any) -> str | None:
    """Why `estimator` counts as linear, or None: sklearn.linear_model, or a linear SVM."""
    cls = type(estimator)
    if cls.__module__.startswith("sklearn.linear_model"):
        return "sklearn.linear_model"
    if cls.__module__.startswith("sklearn.svm") and (
            cls.__name__ == "LinearSVC" or getattr(estimator, "kernel", None) == "linear"):
        return "linear SVM"
    if cls.__name__ == "CalibratedClassifierCV":
        # Probability calibration around a linear model (the usual way to get predict_proba
        # from a LinearSVC); scikit-learn's default inner estimator is LinearSVC.
        inner = getattr(estimator, "estimator", None)
        if inner is None:
            return "linear SVM (calibrated)"
        kind = linear_kind(inner)
        return f"{kind} (calibrated)" if kind else None
    return None


def _qualified(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__name__}"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _classes(model: Any) -> list[str] | None:
    classes = getattr(model, "classes_", None)
    if classes is None:
        return None
    values = classes.tolist() if hasattr(classes, "tolist") else list(classes)
    return [str(value) for value in values]


def generate_rows(n_features: int, n_rows: int) -> list[list[float]]:
    """Seeded standard-normal rows: the same rows every run, so the smoke run is reproducible."""
    rng = random.Random(_SEED)
    return [[round(rng.gauss(0.0, 1.0), 4) for _ in range(n_features)] for _ in range(n_rows)]


def smoke_run(request: dict[str, Any], rows: list[list[float]]) -> dict[str, Any]:
    """Call the handlers the way the serving container does; report the first failure."""
    program = Path(request["code_dir"]) / request["program"]
    body = json.dumps({"data": rows}).encode("utf-8")
    stage = "import"
    try:
        module = _import_program(program, request["code_dir"])
        stage = "model_fn"
        model = module.model_fn(request["model_dir"])
        stage = "input_fn"
        data = module.input_fn(body, CONTENT_TYPE)
        stage = "predict_fn"
        prediction = module.predict_fn(data, model)
        stage = "output_fn"
        answer = module.output_fn(prediction, CONTENT_TYPE)
        stage = "answer"
        return {"ok": True, "rows": rows, "response": _decode_answer(answer)}
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
        return {"ok": False, "rows": rows, "stage": stage,
                "error": f"{type(exc).__name__}: {exc}"[:_MAX_TEXT],
                "location": _location_in(program, exc)}


def _import_program(program: Path, code_dir: str) -> Any:
    sys.path.insert(0, code_dir)  # the container imports siblings of inference.py the same way
    spec = importlib.util.spec_from_file_location(program.stem, program)
    module = importlib.util.module_from_spec(spec)
    sys.modules[program.stem] = module
    spec.loader.exec_module(module)
    return module


def _decode_answer(answer: Any) -> Any:
    """The JSON document output_fn produced (a body, or a (body, content type) pair)."""
    if isinstance(answer, (tuple, list)) and len(answer) == 2 and isinstance(answer[1], str):
        answer = answer[0]
    if isinstance(answer, (bytes, bytearray)):
        answer = bytes(answer).decode("utf-8")
    if not isinstance(answer, str):
        raise TypeError(f"output_fn returned {type(answer).__name__}; expected the serialized "
                        "JSON body (str or bytes), optionally with its content type")
    return json.loads(answer)


def _location_in(program: Path, exc: BaseException) -> str | None:
    """'inference.py, line N, in fn' for the deepest frame inside the user's program."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if os.path.abspath(frame.filename) == os.path.abspath(program)]
    if not frames:
        return None
    frame = frames[-1]
    return f"{program.name}, line {frame.lineno}, in {frame.name}"


if __name__ == "__main__":
    # Running as a script puts modules/ first on sys.path; the user's code must not see it.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    sys.exit(main(sys.argv[1], sys.argv[2]))
