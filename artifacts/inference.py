"""SageMaker inference handlers for the QC classifier (the AWS scikit-learn container's convention).

The model server (ours in artifacts/, or AWS's prebuilt scikit-learn image) calls, per process:

    model = model_fn(model_dir)                       # once, at start-up
and per request:
    data = input_fn(body, content_type)               # bytes -> 2-D float64 array
    prediction = predict_fn(data, model)              # array -> the contract's four fields
    body, content_type = output_fn(prediction, accept)
and, for SageMaker Batch Transform, `execution_parameters_fn()` (GET /execution-parameters).

Contract (docs/ARCHITECTURE.md, "Inference contract"):
request `{"data": [[f1, f2, ...], ...]}` as application/json (or
the bare `[[f1, f2, ...], ...]` the SageMaker SDK's JSONSerializer sends), or the same rows as
text/csv or application/x-npy; answer
`{"predictions", "probabilities", "class_indices", "confidence_scores"}`, one entry per row.
Labels come from the env var CLASS_LABELS (comma-separated, one per class, in the order of the
model's `classes_`), default `qc_pass,qc_fail`.

Error convention: bad input raises a ValueError subclass whose message says what was expected
and whose `status_code` attribute is the HTTP status to answer (400, or 415 for an unsupported
Content-Type, 406 for an unsupported Accept). Our model server honours `status_code` on any
exception and maps any other ValueError/TypeError to 400; the attribute has the same meaning as
in AWS's sagemaker-inference toolkit.

Speed: for the linear models we recognise (LogisticRegression or LogisticRegressionCV, alone or
after a StandardScaler in a Pipeline) the probabilities are computed from `coef_`/`intercept_`
with numpy, exactly the arithmetic of scikit-learn's `predict_proba` without its per-call input
checking (which costs ~25x the arithmetic for a single row); anything else calls `predict_proba`.

This file is copied into the model bundle (code/inference.py) alone: it imports only numpy,
joblib, scikit-learn, scipy (a scikit-learn dependency) and optionally orjson and simdjson.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit  # a scikit-learn dependency; the function sklearn itself uses

try:  # orjson decodes 1000 rows ~6x faster than json; the stdlib is the fallback
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    orjson = None

try:  # simdjson parses numeric rows straight into a float64 buffer (_simdjson_matrix)
    import simdjson
except ImportError:  # e.g. AWS's prebuilt image, which does not install it: orjson's path
    simdjson = None

MODEL_FILE = "model.joblib"
MODEL_SHA256_VAR = "MODEL_JOBLIB_SHA256"  # registered with the package (package-model.py)
DEFAULT_LABELS = ("qc_pass", "qc_fail")
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
NPY_TYPE = "application/x-npy"
SUPPORTED_CONTENT_TYPES = (JSON_TYPE, CSV_TYPE, NPY_TYPE)
_JSON_ACCEPTS = frozenset({JSON_TYPE, "*/*", "application/*"})
_NPY_MAGIC = b"\x93NUMPY"
_EXAMPLE = '{"data": [[f1, f2, ...], ...]}'
# From this many rows on, numeric JSON rows are flattened into the matrix (_numbers_to_matrix):
# below it np.asarray is as fast (measured in-process: 4 rows 4.5 vs 5.8 us, 32 rows 12.7 vs
# 12.2 us, 1000 rows 291 vs 240 us per input_fn).
_FLAT_FROM_ROWS = 32
# From this body size on, JSON goes to simdjson first (_simdjson_matrix): below it orjson's path
# is faster (measured in-process, rows of 4: 1 row 5.1 vs 3.3 us, 8 rows (306 bytes) 5.4 vs 5.4,
# 16 rows 5.7 vs 7.0, 1000 rows 89 vs 225 us per input_fn).
_SIMDJSON_FROM_BYTES = 300


# --- errors -----------------------------------------------------------------------------------

class InferenceInputError(ValueError):
    """Bad input: the server answers `status_code` with this message (never a 5xx)."""

    status_code = 400


class UnsupportedContentTypeError(InferenceInputError):
    status_code = 415


class UnsupportedAcceptError(InferenceInputError):
    status_code = 406


# --- the loaded model -------------------------------------------------------------------------

@dataclass(frozen=True)
class LinearParts:
    """What predict_proba computes, precomputed: optional scaling, then X @ weights + bias."""

    mean: np.ndarray | None
    scale: np.ndarray | None
    weights: np.ndarray  # (n_features, n_outputs): coef_.T, contiguous for the matrix product
    bias: np.ndarray  # (n_outputs,)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        if self.mean is not None:
            features = features - self.mean
        if self.scale is not None:
            features = features / self.scale
        scores = features @ self.weights + self.bias
        if scores.shape[1] == 1:  # binary: sklearn's _predict_proba_lr, expit of the one score
            probabilities = np.empty((scores.shape[0], 2))  # filled in place: no np.stack copy
            expit(scores[:, 0], out=probabilities[:, 1])
            np.subtract(1.0, probabilities[:, 1], out=probabilities[:, 0])
            return probabilities
        scores -= scores.max(axis=1, keepdims=True)  # multinomial: a stable softmax, as sklearn
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores


@dataclass(frozen=True)
class OneRow:
    """A binary linear model's parameters as Python floats, for a request of one row.

    Why: at one row the numpy path is a dozen calls of ~0.5 us each on 4 numbers, and inside the
    server (cold caches between requests) each costs several times that: measured with one
    pinned worker, this path answers ~7-10% more requests. Same operations in the same order
    ((x - mean) / scale, the products summed, + bias, expit as 1 / (1 + exp(-score)), which is
    scipy's expit to the bit); only the matrix product's summation may round differently, as
    numpy's own does between a row alone and the same row in a batch.
    """

    mean: tuple[float, ...]  # 0.0 where the model does not centre: x - 0.0 is x exactly
    scale: tuple[float, ...]  # 1.0 where it does not scale: x / 1.0 is x exactly
    weights: tuple[float, ...]
    bias: float

    @classmethod
    def of(cls, linear: LinearParts | None) -> OneRow | None:
        if linear is None or linear.weights.shape[1] != 1:  # multinomial: the numpy path
            return None
        width = linear.weights.shape[0]
        return cls(tuple(linear.mean.tolist()) if linear.mean is not None else (0.0,) * width,
                   tuple(linear.scale.tolist()) if linear.scale is not None else (1.0,) * width,
                   tuple(linear.weights[:, 0].tolist()), float(linear.bias[0]))

    def positive(self, row: list[float]) -> float | None:
        """The positive class's probability, or None when the score is not a finite number of
        safe size: then the numpy path answers (a non-finite feature gives a non-finite score,
        which it refuses with its own message; math.exp would overflow past ~709)."""
        score = sum([(x - m) / s * w for x, m, s, w in zip(row, self.mean, self.scale,
                                                            self.weights, strict=True)]) + self.bias
        if not -700.0 < score < 700.0:  # also False for NaN
            return None
        return 1.0 / (1.0 + math.exp(-score))


@dataclass(frozen=True)
class LoadedModel:
    """What model_fn returns: the estimator plus everything predict_fn needs, computed once."""

    estimator: Any
    labels: tuple[str, ...]
    n_features: int | None
    linear: LinearParts | None  # None: not a model we recognise, use predict_proba
    label_array: np.ndarray  # the labels as an object array: a column of indices maps in one take()
    one_row: OneRow | None = None  # binary linear models: a single row in Python floats

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        if self.linear is not None:
            return self.linear.probabilities(features)
        return _predict_proba(self.estimator, features)


def _predict_proba(estimator: Any, features: np.ndarray) -> np.ndarray:
    import sklearn

    # predict_fn has checked that every value is finite and the feature count, so scikit-learn's
    # own checks (most of its per-call cost) can be skipped safely.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return np.asarray(estimator.predict_proba(features))


# --- model_fn ---------------------------------------------------------------------------------

def model_fn(model_dir: str) -> LoadedModel:
    """Load model.joblib from `model_dir`; fail here (at start-up) if it cannot serve the contract."""
    import joblib

    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{MODEL_FILE} not found in {model_dir}: the model archive must "
                                f"hold {MODEL_FILE} at its root")
    verify_sha256(path, os.environ.get(MODEL_SHA256_VAR))
    try:
        estimator = joblib.load(path)
    except Exception as exc:  # a pickle can fail in many ways; say which file and what to check
        raise ValueError(f"{path} could not be unpickled ({type(exc).__name__}: {exc}): is it "
                         "a model written by joblib.dump with the scikit-learn version pinned in "
                         "requirements.txt?") from exc
    return load_model(estimator, os.environ.get("CLASS_LABELS"))


def verify_sha256(path: str, expected: str | None) -> None:
    """Refuse to unpickle a model file that is not the one registered with the package.

    Unpickling runs code, so the check comes first. Our model server checks the same digest
    before calling model_fn; this copy is for AWS's prebuilt image, which runs only this file.
    """
    if not expected or not expected.strip():
        return
    with open(path, "rb") as handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
    if actual != expected.strip().lower():
        raise ValueError(f"{path} has sha256 {actual}, not the {expected.strip()} registered in "
                         f"{MODEL_SHA256_VAR}: the model file was changed or replaced; refusing "
                         "to unpickle it")


def load_model(estimator: Any, class_labels: str | None = None) -> LoadedModel:
    """Wrap an estimator for predict_fn: labels, feature count and the fast path, checked once."""
    if not callable(getattr(estimator, "predict_proba", None)):
        raise TypeError(f"The model ({type(estimator).__name__}) has no predict_proba: the "
                        "inference contract returns class probabilities")
    classes = list(getattr(estimator, "classes_", []))
    if not classes:
        raise TypeError(f"The model ({type(estimator).__name__}) has no classes_: is it fitted?")
    n_features = getattr(estimator, "n_features_in_", None)
    labels = _labels(classes, class_labels)
    linear = linear_parts(estimator)
    return LoadedModel(estimator=estimator, labels=labels,
                       n_features=int(n_features) if n_features is not None else None,
                       linear=linear, label_array=np.array(labels, dtype=object),
                       one_row=OneRow.of(linear))


def _labels(classes: list[Any], class_labels: str | None) -> tuple[str, ...]:
    if class_labels:
        labels = tuple(label.strip() for label in class_labels.split(","))
        if len(labels) != len(classes) or not all(labels):
            raise ValueError(f"CLASS_LABELS={class_labels!r} names {len(labels)} label(s) but the "
                             f"model has {len(classes)} classes ({', '.join(map(str, classes))}): "
                             "give one non-empty "
                             "label per class, comma-separated, in the order of classes_")
        return labels
    if all(isinstance(value, str) for value in classes):
        return tuple(classes)
    if len(classes) == len(DEFAULT_LABELS):
        return DEFAULT_LABELS
    return tuple(str(value) for value in classes)


def linear_parts(estimator: Any) -> LinearParts | None:
    """The fast path's parameters for a model we recognise exactly, else None."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [estimator]
    if type(estimator) is Pipeline:
        steps = [step for _, step in estimator.steps if step not in (None, "passthrough")]
    scaler = steps[0] if len(steps) == 2 and type(steps[0]) is StandardScaler else None
    final = steps[-1]
    # Exact types only: a subclass may override predict_proba.
    if len(steps) != (2 if scaler is not None else 1) or \
            type(final) not in (LogisticRegression, LogisticRegressionCV):
        return None
    coef = np.asarray(final.coef_, dtype=np.float64)
    n_classes = len(final.classes_)
    if coef.ndim != 2 or coef.shape[0] != (1 if n_classes == 2 else n_classes):
        return None
    # StandardScaler keeps mean_ even with with_mean=False; its flags say what transform() does.
    return LinearParts(
        mean=_float_vector(scaler.mean_) if scaler is not None and scaler.with_mean else None,
        scale=_float_vector(scaler.scale_) if scaler is not None and scaler.with_std else None,
        weights=np.ascontiguousarray(coef.T),
        bias=np.asarray(final.intercept_, dtype=np.float64).reshape(-1))


def _float_vector(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


# --- input_fn ---------------------------------------------------------------------------------

def input_fn(body: bytes | str, content_type: str | None) -> np.ndarray:
    """Decode a request body into a 2-D float64 array of finite numbers."""
    media_type = JSON_TYPE if content_type == JSON_TYPE else _media_type(content_type) or JSON_TYPE
    if media_type == JSON_TYPE:
        raw = body.encode() if isinstance(body, str) else body
        parsed = _simdjson_matrix(raw) if simdjson is not None and \
            len(raw) >= _SIMDJSON_FROM_BYTES else None
        if parsed is not None:
            return _check_matrix(*parsed)
        payload = _decode_json(body)
        rows, what = json_rows(payload)
        if type(rows) is list and len(rows) == 1:
            matrix = _one_row_matrix(rows[0])
            if matrix is not None:
                return matrix
        if type(rows) is list and len(rows) >= _FLAT_FROM_ROWS and \
                _only_numbers(raw, isinstance(payload, dict)):
            matrix = _numbers_to_matrix(rows)
            if matrix is not None:
                return _check_matrix(matrix, what)
        return _rows_to_matrix(rows, what, strict=_may_hold_booleans(raw))
    if media_type == CSV_TYPE:
        return _rows_to_matrix(_decode_csv(body), "text/csv body")
    if media_type == NPY_TYPE:
        return _check_matrix(_decode_npy(body), "application/x-npy array")
    raise UnsupportedContentTypeError(
        f"Unsupported Content-Type {content_type!r}: expected one of "
        f"{', '.join(SUPPORTED_CONTENT_TYPES)}")


def _media_type(header: str | None) -> str:
    """'Application/JSON; charset=utf-8' -> 'application/json'."""
    return (header or "").split(";", 1)[0].strip().lower()


def _decode_json(body: bytes | str) -> Any:
    if not body or not body.strip():
        raise InferenceInputError(f"Empty request body: expected JSON like {_EXAMPLE}")
    try:
        payload = orjson.loads(body) if orjson is not None else json.loads(body)
    except json.JSONDecodeError as exc:  # orjson's error is a subclass of this one
        raise InferenceInputError(
            f"Malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(character {exc.pos}); expected {_EXAMPLE}") from None
    except UnicodeDecodeError as exc:  # the stdlib's json on bytes that are not UTF-8
        raise InferenceInputError(f"The JSON body is not valid UTF-8 ({exc.reason}); "
                                  f"expected {_EXAMPLE}") from None
    return payload


def json_rows(payload: Any) -> tuple[Any, str]:
    """The rows of a decoded JSON request and how to name them in messages (pure, no numpy).

    `{"data": rows}` (ours) or a bare `rows` array (what the SageMaker SDK's default
    JSONSerializer sends); the rows themselves are checked by `_rows_to_matrix`.
    """
    if isinstance(payload, list):
        return payload, "the JSON array"
    if not isinstance(payload, dict):
        raise InferenceInputError(f"Expected a JSON object with a 'data' key, like {_EXAMPLE}, "
                                  f"or a bare array of rows; got a JSON {_json_kind(payload)}")
    if "data" not in payload:
        keys = ", ".join(repr(key) for key in list(payload)[:5]) or "none"
        raise InferenceInputError(f"Missing the 'data' key (keys found: {keys}); expected "
                                  f"{_EXAMPLE}, or a bare array of rows")
    return payload["data"], "'data'"


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _may_hold_booleans(body: bytes | str) -> bool:
    # numpy silently turns true/false into 1/0 next to numbers, so a body that may hold them gets
    # the value-by-value check that rejects them. Outside strings, "r" occurs in JSON only in
    # `true` and "l" only in `false`/`null`: two memchr scans (~1 us for 1000 rows) instead of
    # substring searches (~50 us); a false alarm (a letter inside a string) only costs the check.
    raw = body.encode() if isinstance(body, str) else body
    return b"r" in raw or b"l" in raw


def _only_numbers(raw: bytes, wrapped: bool) -> bool:
    """True when the decoded rows can hold only lists and numbers: no true/false/null (see
    _may_hold_booleans), no string but the "data" key of a wrapping object, no other object.
    memchr scans (a few us for 1000 rows); anything else takes the value-by-value path."""
    if _may_hold_booleans(raw):
        return False
    quotes = 2 if wrapped else 0
    position = -1
    for _ in range(quotes + 1):
        position = raw.find(b'"', position + 1)
        if position < 0:
            break
    if position >= 0:  # one quote more than the key's
        return False
    brace = raw.find(b"{")
    return (brace >= 0) == wrapped and (brace < 0 or raw.find(b"{", brace + 1) < 0)


_STRUCTURE = bytes(range(256)).translate(None, b"[],")  # every byte but these three
# A simdjson.Parser is not thread-safe: one per thread, kept, since it keeps its buffers (a new
# parser's first parse allocates them: 89 vs 59 us for 1000 rows, measured).
_parsers = threading.local()


def _simdjson_matrix(raw: bytes) -> tuple[np.ndarray, str] | None:
    """Rows of plain numbers as (matrix, their name for messages), or None for the checked path.

    simdjson validates the whole document and copies the numbers into one float64 buffer in C++
    (`as_buffer`), without a Python object per value: for 1000 rows of 4 it is ~3x orjson.loads
    followed by np.fromiter, for the same bits (both parse numbers correctly rounded). It is
    taken only where its answer is the checked path's: a body that starts with `[` or `{` (simdjson
    skips a UTF-8 BOM, which orjson refuses), holds only lists and numbers (_only_numbers), and
    whose brackets and commas are exactly those of `rows` rows of `width` values, checked on the
    bytes (as_buffer flattens ragged or deeper lists without a word). Anything else, a number
    simdjson refuses (beyond 64-bit integers or float range) included, returns None and gets the
    checked path's answer or exact error.
    """
    start = raw[:16].lstrip()[:1]
    if start not in (b"[", b"{") or not _only_numbers(raw, start == b"{"):
        return None
    parser = getattr(_parsers, "parser", None) or _new_parser()
    try:
        document = parser.parse(raw)
        rows = document["data"] if start == b"{" else document
        count, width = len(rows), len(rows[0])
        if width == 0 or raw.translate(None, _STRUCTURE) != _matrix_structure(count, width):
            return None
        flat = rows.as_buffer(of_type="d")
    except RuntimeError:  # an integer beyond 64 bits, or a parser that a live document holds
        _new_parser()  # (it refuses to parse again while one does)
        return None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    matrix = np.frombuffer(flat, dtype=np.float64).reshape(count, width)
    return matrix, "'data'" if start == b"{" else "the JSON array"


def _new_parser() -> Any:
    _parsers.parser = simdjson.Parser()
    return _parsers.parser


def _matrix_structure(count: int, width: int) -> bytes:
    """The brackets and commas of a JSON array of `count` rows of `width` values each."""
    return b"[" + (b"[" + b"," * (width - 1) + b"],") * (count - 1) + \
        b"[" + b"," * (width - 1) + b"]]"


def _one_row_matrix(row: Any) -> np.ndarray | None:
    """One row of finite Python floats as the (1, W) matrix the checked path makes of it, or None
    to let that path decide (ints, booleans, anything else).

    Why: at one row the checked path's numpy calls cost more than the rest of the request's
    handlers (np.isfinite(...).all() alone ~1 us; input_fn 3.2 -> 1.75 us, measured in-process).
    The sum is finite only when every value is (a NaN or infinity makes it NaN or infinite; a
    sum past float's range is sent to the checked path too).
    """
    if type(row) is not list or not row or not all(type(value) is float for value in row):
        return None
    total = sum(row)
    if total - total != 0.0:
        return None
    return np.array([row], dtype=np.float64)


def _numbers_to_matrix(rows: list[Any]) -> np.ndarray | None:
    """Rows of numbers (see _only_numbers) as one float64 matrix, or None to take the checked path.

    np.fromiter over the flattened rows is ~2x np.asarray on nested lists (which first discovers
    the shape and a common dtype, then converts); every value is converted with float(), as
    np.asarray(rows, dtype=float64) would. None for anything that is not rows of equal length
    holding plain numbers (a bare number as a row, a nested list, an int too large for a float):
    the checked path then gives its exact error.
    """
    if type(rows[0]) is not list:
        return None
    width = len(rows[0])
    try:
        if len(set(map(len, rows))) != 1:
            return None
        flat = np.fromiter(itertools.chain.from_iterable(rows), np.float64,
                           count=len(rows) * width)
    except (TypeError, ValueError, OverflowError):
        return None
    return flat.reshape(len(rows), width)


def _decode_csv(body: bytes | str) -> list[list[float]]:
    text = _text(body, "text/csv")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InferenceInputError("Empty text/csv body: expected one row of comma-separated "
                                  "numbers per line, e.g. 2.5,180,101.3,0.2")
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = line.split(",")
        try:
            rows.append([float(field) for field in fields])
        except ValueError:
            column, field = next((i, f) for i, f in enumerate(fields, start=1) if not _is_float(f))
            raise InferenceInputError(
                f"text/csv line {number}, column {column}: {field.strip()!r} is not a number; "
                "expected numbers only (no header row, no quotes)") from None
    return rows


def _is_float(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _text(body: bytes | str, what: str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InferenceInputError(f"The {what} body is not valid UTF-8 ({exc.reason})") from None


def _decode_npy(body: bytes | str) -> np.ndarray:
    raw = body.encode("latin-1") if isinstance(body, str) else body
    expected = "expected a .npy file of a 2-D numeric array (numpy.save, no object arrays)"
    if not raw.startswith(_NPY_MAGIC):
        raise InferenceInputError(f"The application/x-npy body is not a .npy file: {expected}")
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)  # never unpickle a request
    except (ValueError, OSError, EOFError) as exc:
        raise InferenceInputError(f"Cannot read the application/x-npy body ({exc}): "
                                  f"{expected}") from None
    if array.dtype.kind not in "iuf":
        raise InferenceInputError(f"The application/x-npy array has dtype {array.dtype}: "
                                  f"{expected}")
    return array


def _rows_to_matrix(rows: Any, what: str, strict: bool = False) -> np.ndarray:
    if not isinstance(rows, list):
        raise InferenceInputError(f"{what} must be a list of rows, like {_EXAMPLE}; got a "
                                  f"{_json_kind(rows)}")
    if not rows:
        raise InferenceInputError(f"{what} is empty: expected at least one row, like {_EXAMPLE}")
    if strict:
        _check_values(rows, what)
    try:
        matrix = np.asarray(rows)
    except ValueError:  # ragged rows ("inhomogeneous shape")
        raise InferenceInputError(_ragged_message(rows, what)) from None
    if matrix.dtype.kind not in "iuf":
        _check_values(rows, what)  # names the offending value; raises
        matrix = np.asarray(rows, dtype=np.float64)  # e.g. integers too large for int64
    return _check_matrix(matrix, what)


def _ragged_message(rows: list[Any], what: str) -> str:
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            return f"{what}: row {index} is a {_json_kind(row)}, expected a list of numbers " \
                   f"like {_EXAMPLE}"
    width = len(rows[0])
    index = next((i for i, row in enumerate(rows) if len(row) != width), None)
    if index is None:  # equal lengths, so something inside a row is not a number
        _check_values(rows, what)
        return f"{what} must be a list of rows of numbers, like {_EXAMPLE}"
    return (f"{what}: row {index} has {len(rows[index])} values but row 0 has {width}; every "
            "row must have the same number of features")


def _check_values(rows: list[Any], what: str) -> None:
    """Raise naming the first value that is not a number (booleans and strings included)."""
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            raise InferenceInputError(_ragged_message(rows, what))
        for column, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InferenceInputError(
                    f"{what}: row {index}, column {column} holds {json.dumps(value)[:40]}, "
                    "not a number; features must be numbers (no strings, booleans or null)")


def _check_matrix(matrix: np.ndarray, what: str) -> np.ndarray:
    if matrix.ndim != 2:
        raise InferenceInputError(f"{what} must be 2-D, a list of rows of numbers like "
                                  f"{_EXAMPLE} (one row is [[f1, f2, ...]]); got "
                                  f"{matrix.ndim} dimension(s)")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise InferenceInputError(f"{what} is empty (shape {matrix.shape}): expected at least one "
                                  "row of at least one number")
    matrix = matrix.astype(np.float64, copy=False)
    finite = np.isfinite(matrix)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise InferenceInputError(f"{what}: row {row}, column {column} is {matrix[row, column]}; "
                                  "features must be finite numbers")
    return matrix


# --- predict_fn -------------------------------------------------------------------------------

def predict_fn(data: Any, model: Any) -> dict[str, Any]:
    """The contract's four fields for every row: numpy arrays, or plain lists for a single row of
    a binary linear model (_one_row_answer); output_fn serialises both alike."""
    if not isinstance(model, LoadedModel):  # a custom model_fn may return the bare estimator
        model = load_model(model, os.environ.get("CLASS_LABELS"))
    if model.one_row is not None and type(data) is np.ndarray and data.dtype == np.float64 \
            and data.shape == (1, len(model.one_row.weights)):
        answer = _one_row_answer(data[0].tolist(), model)
        if answer is not None:
            return answer
    # Checked again (a few microseconds): a custom input_fn may hand over lists, other dtypes or
    # NaN, and the fast path and assume_finite rely on finite float64 rows.
    features = _check_matrix(data, "input") if isinstance(data, np.ndarray) else \
        _rows_to_matrix(data, "input", strict=True)
    if model.n_features is not None and features.shape[1] != model.n_features:
        raise InferenceInputError(
            f"Each row must have {model.n_features} features (the model was trained on "
            f"{model.n_features}); got rows of {features.shape[1]}")
    probabilities = model.probabilities(features)
    indices = probabilities.argmax(axis=1)
    return {"predictions": model.label_array.take(indices).tolist(),
            "probabilities": probabilities,
            "class_indices": indices,
            # the predicted class's probability, picked (not searched for again with max(); a
            # fancy index is ~3x np.take_along_axis at 1 row, measured in-process)
            "confidence_scores": probabilities[np.arange(len(indices)), indices]}


def _one_row_answer(row: list[float], model: LoadedModel) -> dict[str, Any] | None:
    positive = model.one_row.positive(row)
    if positive is None:
        return None
    probabilities = [1.0 - positive, positive]
    index = 1 if positive > probabilities[0] else 0  # argmax: the first on a tie, as numpy's
    return {"predictions": [model.labels[index]], "probabilities": [probabilities],
            "class_indices": [index], "confidence_scores": [probabilities[index]]}


# --- output_fn --------------------------------------------------------------------------------

def output_fn(prediction: dict[str, Any], accept: str | None) -> tuple[bytes, str]:
    """Serialise predict_fn's answer as JSON: returns (body, content type)."""
    if not _accepts_json(accept):
        raise UnsupportedAcceptError(f"Unsupported Accept {accept!r}: this model answers in "
                                     f"{JSON_TYPE}")
    if orjson is not None:
        return orjson.dumps(prediction, option=orjson.OPT_SERIALIZE_NUMPY), JSON_TYPE
    plain = {key: value.tolist() if isinstance(value, np.ndarray) else value
             for key, value in prediction.items()}
    return json.dumps(plain).encode(), JSON_TYPE


def _accepts_json(accept: str | None) -> bool:
    if not accept or accept in _JSON_ACCEPTS or not accept.strip():  # the usual cases first
        return True
    return any(_media_type(choice) in _JSON_ACCEPTS for choice in accept.split(","))


# --- execution_parameters_fn ------------------------------------------------------------------

MAX_PAYLOAD_MB = 6  # SageMaker's limit for a real-time invocation body


def execution_parameters_fn() -> dict[str, Any]:
    """GET /execution-parameters, asked by SageMaker Batch Transform before it sends records.

    A dict: AWS's container (Flask) and ours both answer it as JSON. One request per worker at
    a time, whole rows per request (MULTI_RECORD), and SageMaker's 6 MB body limit.
    """
    workers = os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "")
    return {"MaxConcurrentTransforms": int(workers) if workers.isdigit() else os.cpu_count() or 1,
            "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": MAX_PAYLOAD_MB}
