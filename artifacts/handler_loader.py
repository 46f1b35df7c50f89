"""Load a user's inference handlers exactly as the AWS scikit-learn container does.

The handler module is the file named by SAGEMAKER_PROGRAM (e.g. `inference.py`) in the directory
SAGEMAKER_SUBMIT_DIRECTORY; that directory goes on sys.path so the module can import its
neighbours. Like AWS's container (sagemaker_sklearn_container.serving):

- `model_fn(model_dir)` is required (AWS has no default for scikit-learn either);
- `input_fn`, `predict_fn`, `output_fn` are optional and default to decoding JSON/CSV/NPY into a
  numpy array, `model.predict`, and encoding the result as JSON/CSV/NPY for the Accept type;
- alternatively `transform_fn(model, body, content_type, accept)` does all three, and may not be
  combined with them;
- `execution_parameters_fn()` (optional) answers GET /execution-parameters for Batch Transform.

`output_fn` (or `transform_fn`) may return `(body, content_type)`, a body alone (bytes or str,
sent as the Accept type), or a response object with `get_data()` (Flask/werkzeug, as AWS's
`worker.Response`).

The body reaches `input_fn` (or `transform_fn`) as AWS's container hands it over
(`request_content`): a str, decoded as UTF-8, when the Content-Type is exactly `application/json`
or `text/csv`, bytes for anything else; so a handler written for AWS's container (one that calls
`body.split("\n")`, say) behaves the same here.

HTTP status of a handler's exception (`status_for`): its `status_code` attribute when that is an
int from 400 to 599 (the convention of AWS's sagemaker-inference toolkit and of our
inference.py); otherwise 400 for ValueError/TypeError (bad input: a user's input_fn or the
model refusing the rows); otherwise 500. A failure of output_fn, or an output the server cannot
send, is the server's fault whatever its type (`HandlerFault`, 500): the request was already
accepted by then.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
NPY_TYPE = "application/x-npy"
TEXT_TYPES = (JSON_TYPE, CSV_TYPE)  # AWS's UTF8_TYPES: compared with the whole header, as AWS does
_HANDLER_NAMES = ("input_fn", "predict_fn", "output_fn")


class HandlerError(Exception):
    """The handler module cannot be used: the server refuses to start."""


class HandlerFault(Exception):
    """A handler failed after the input was accepted: a server fault (500), whatever its cause."""

    status_code = 500


class UnsupportedFormatError(ValueError):
    """A default handler met a content type or Accept it cannot serve."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Handlers:
    source: Path
    model_fn: Callable[[str], Any]
    transform: Callable[[Any, bytes, str, str], Any]  # (model, body, content_type, accept)
    provided: tuple[str, ...]  # the handler names the module defines, for the start-up line
    execution_parameters: Callable[[], Any] | None = None  # GET /execution-parameters


# --- loading ----------------------------------------------------------------------------------

def load_handlers(submit_dir: Path, program: str) -> Handlers:
    module = import_user_module(submit_dir, program)
    return handlers_from_module(module, Path(module.__file__))


def import_user_module(submit_dir: Path, program: str) -> ModuleType:
    """Import `program` from `submit_dir` as a top-level module, as AWS's container does."""
    name = program[:-3] if program.endswith(".py") else program
    path = submit_dir / f"{name}.py"
    if not path.is_file():
        raise HandlerError(f"the handler module {path} does not exist (SAGEMAKER_SUBMIT_DIRECTORY="
                           f"{submit_dir}, SAGEMAKER_PROGRAM={program})")
    sys.path.insert(0, str(submit_dir))  # the module may import files next to it
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pickles that refer to the module resolve to this one
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise HandlerError(f"importing {path} failed: {describe_exception(exc)}") from exc
    return module


def handlers_from_module(module: ModuleType, source: Path) -> Handlers:
    model_fn = getattr(module, "model_fn", None)
    if not callable(model_fn):
        raise HandlerError(f"{source} defines no model_fn(model_dir): the server needs it to load "
                           "the model (the AWS scikit-learn container requires it too)")
    provided = tuple(name for name in ("model_fn", "transform_fn", *_HANDLER_NAMES,
                                       "execution_parameters_fn")
                     if callable(getattr(module, name, None)))
    execution_parameters = getattr(module, "execution_parameters_fn", None)
    execution_parameters = execution_parameters if callable(execution_parameters) else None
    transform_fn = getattr(module, "transform_fn", None)
    if callable(transform_fn):
        if set(provided) & set(_HANDLER_NAMES):
            raise HandlerError(f"{source} defines transform_fn together with input_fn, predict_fn "
                               "or output_fn: use either transform_fn alone or the other three")
        return Handlers(source, model_fn, transform_fn, provided, execution_parameters)
    return Handlers(source, model_fn, _compose(
        getattr(module, "input_fn", None) or default_input_fn,
        getattr(module, "predict_fn", None) or default_predict_fn,
        getattr(module, "output_fn", None) or default_output_fn), provided, execution_parameters)


def _compose(input_fn: Callable, predict_fn: Callable, output_fn: Callable) -> Callable:
    def transform(model: Any, body: bytes | str, content_type: str, accept: str) -> Any:
        prediction = predict_fn(input_fn(body, content_type), model)
        try:
            return output_fn(prediction, accept)
        except Exception as exc:
            if declared_status(exc) is not None:  # e.g. 406 for an Accept it cannot serve
                raise
            raise HandlerFault(f"output_fn failed: {type(exc).__name__}: {exc}") from exc

    return transform


def request_content(body: bytes, content_type: str) -> bytes | str:
    """The body as AWS's container passes it to the handlers (werkzeug's get_data(as_text=...)).

    Text only for a Content-Type that is exactly application/json or text/csv; bytes that are not
    UTF-8 are replaced, as werkzeug does, so that the handler (not the server) judges the body.
    """
    return body.decode("utf-8", "replace") if content_type in TEXT_TYPES else body


def describe_exception(exc: BaseException) -> str:
    """'Type: message (at file.py line N)', the innermost frame being where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name} line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


# --- answers ----------------------------------------------------------------------------------

def declared_status(exc: BaseException) -> int | None:
    """The HTTP status an exception asks for through `status_code`, if it is an error status."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    return None


def status_for(exc: BaseException) -> int:
    declared = declared_status(exc)
    if declared is not None:
        return declared
    return 400 if isinstance(exc, (ValueError, TypeError)) else 500


def normalize_output(result: Any, accept: str) -> tuple[int, bytes, str]:
    """(status, body, content type) from whatever output_fn/transform_fn returned."""
    status, content_type = 200, accept
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result[0], result[1] or accept
    elif hasattr(result, "get_data"):  # a Flask/werkzeug response, as AWS's worker.Response
        status = int(getattr(result, "status_code", 200))
        content_type = getattr(result, "mimetype", None) or accept
        result = result.get_data()
    if isinstance(result, str):
        return status, result.encode("utf-8"), content_type
    if isinstance(result, (bytes, bytearray, memoryview)):
        return status, bytes(result), content_type
    if isinstance(result, (dict, list)):  # what Flask would turn into JSON
        try:
            return status, json.dumps(result).encode("utf-8"), JSON_TYPE
        except (TypeError, ValueError) as exc:  # e.g. numpy values: a handler bug, not bad input
            raise HandlerFault(f"output_fn returned a {type(result).__name__} that is not JSON "
                               f"serialisable: {exc}") from exc
    raise HandlerFault(f"output_fn returned a {type(result).__name__}; expected bytes, str, or a "
                       "(body, content_type) tuple")


# --- defaults, as in AWS's scikit-learn container ---------------------------------------------

def default_input_fn(body: bytes | str, content_type: str) -> np.ndarray:
    media_type = (content_type or JSON_TYPE).split(";", 1)[0].strip().lower()
    if media_type == JSON_TYPE:
        return np.asarray(json.loads(body), dtype=np.float32)
    if media_type == CSV_TYPE:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        return np.asarray(rows, dtype=np.float32)
    if media_type == NPY_TYPE:
        raw = body.encode("latin-1") if isinstance(body, str) else body
        return np.load(io.BytesIO(raw), allow_pickle=False)
    raise UnsupportedFormatError(f"Content type {content_type!r} is not supported by the default "
                                 f"input_fn: use {JSON_TYPE}, {CSV_TYPE} or {NPY_TYPE}", 415)


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    media_type = (accept or JSON_TYPE).split(";", 1)[0].strip().lower()
    array = np.asarray(prediction)
    if media_type in (JSON_TYPE, "*/*"):
        return json.dumps(array.tolist()).encode("utf-8"), JSON_TYPE
    if media_type == CSV_TYPE:
        buffer = io.StringIO()
        rows = np.atleast_1d(array)
        csv.writer(buffer).writerows(rows.reshape(len(rows), -1).tolist())
        return buffer.getvalue().encode("utf-8"), CSV_TYPE
    if media_type == NPY_TYPE:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue(), NPY_TYPE
    raise UnsupportedFormatError(f"Accept {accept!r} is not supported by the default output_fn: "
                                 f"use {JSON_TYPE}, {CSV_TYPE} or {NPY_TYPE}", 406)
