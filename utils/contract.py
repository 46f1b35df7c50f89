"""The inference contract (docs/ARCHITECTURE.md, "Inference contract"), checked in one place.

Request: {"data": [[f1, f2, ...], ...]}, or the bare [[f1, f2, ...], ...] the SageMaker SDK sends.
Response: predictions, probabilities, class_indices and
confidence_scores, one entry per row; probabilities sum to 1; class_indices index the label list;
confidence is the predicted class's probability. Used by the packaging smoke run, the post-deploy
smoke test and test_endpoint.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from utils.errors import ContractError, ValidationError

MAX_PAYLOAD_BYTES = 6_291_456  # SageMaker's limit for a real-time invocation body
RESPONSE_KEYS = ("predictions", "probabilities", "class_indices", "confidence_scores")
_TOLERANCE = 1e-6


def parse_json_text(text: str, source: str) -> Any:
    """JSON from `text`; a syntax error names the line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"Invalid JSON in {source}: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            hint='Expected a JSON object like {"data": [[1.0, 2.0, 3.0]]}.') from None
    except RecursionError:  # nesting deeper than the interpreter's recursion limit
        raise ValidationError(f"Invalid JSON in {source}: nested too deeply",
                              hint='Expected a JSON object like {"data": [[1.0, 2.0, 3.0]]}.'
                              ) from None
    except ValueError as exc:  # an integer over Python's 4,300-digit conversion limit
        raise ValidationError(f"Invalid JSON in {source}: {str(exc).split(':')[0]}",
                              hint="Features must be finite numbers.") from None


def _is_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float's range (400+ digits)
        return False


def feature_count_hint(n_features: int) -> str:
    """What one row for a model of `n_features` looks like, for hints (long rows elided)."""
    row = ", ".join(["0.0"] * min(n_features, 6)) + (", ..." if n_features > 6 else "")
    return f'The model takes {n_features} features per row, e.g. {{"data": [[{row}]]}}'


def validate_request(payload: Any, source: str = "input") -> list[list[float]]:
    """The rows of a request, or a ValidationError saying what was expected.

    Two forms: `{"data": rows}` (ours) and the bare `rows` array that the SageMaker SDK's default
    JSONSerializer sends.
    """
    example = ('Expected {"data": [[f1, f2, ...], ...]} or a bare [[f1, f2, ...], ...]: a list '
               'of rows of numbers.')
    if isinstance(payload, list):
        rows, what = payload, "the array"
    elif isinstance(payload, dict) and "data" in payload:
        rows, what = payload["data"], "'data'"
    else:
        raise ValidationError(f"Invalid {source}: missing the 'data' key", hint=example)
    if not isinstance(rows, list) or not rows:
        raise ValidationError(f"Invalid {source}: {what} must be a non-empty list of rows",
                              hint=example)
    if not all(isinstance(row, list) for row in rows):
        raise ValidationError(f"Invalid {source}: every entry of {what} must be a list of "
                              "numbers", hint=example)
    _check_row_values(rows, source)
    return rows


def _check_row_values(rows: list[list[Any]], source: str) -> None:
    width = len(rows[0])
    if width == 0:
        raise ValidationError(f"Invalid {source}: rows must not be empty")
    for index, row in enumerate(rows):
        if len(row) != width:
            raise ValidationError(
                f"Invalid {source}: row {index} has {len(row)} values, row 0 has {width}",
                hint="Every row must have the same number of features.")
        bad = [value for value in row if not _is_number(value)]
        if bad:
            raise ValidationError(
                f"Invalid {source}: row {index} holds a non-numeric value {_preview(bad[0])}",
                hint="Features must be finite numbers (no strings, booleans, null, NaN).")


def _preview(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def check_payload_size(body: bytes, source: str = "input") -> None:
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ValidationError(
            f"Invalid {source}: the request body is {len(body):,} bytes, over SageMaker's "
            f"limit of {MAX_PAYLOAD_BYTES:,} bytes (6 MB)",
            hint="Send fewer rows per request.")


def response_problems(response: Any, n_rows: int,
                      labels: Sequence[str] | None = None) -> list[str]:
    """Every way `response` breaks the contract for a request of `n_rows` rows (empty: valid)."""
    if not isinstance(response, dict):
        return [f"the answer must be a JSON object, got {type(response).__name__}"]
    missing = [key for key in RESPONSE_KEYS if key not in response]
    if missing:
        return [f"missing key(s): {', '.join(missing)}"]
    problems = [f"'{key}' has {_length(response[key])} entries, expected {n_rows} (one per row)"
                for key in RESPONSE_KEYS if _length(response[key]) != n_rows]
    if problems:
        return problems
    for row in range(n_rows):
        problems += _row_problems(response, row, labels)
        if len(problems) >= 10:
            return problems + ["(further problems not listed)"]
    return problems


def _length(value: Any) -> int:
    return len(value) if isinstance(value, list) else -1


def _row_problems(response: dict, row: int, labels: Sequence[str] | None) -> list[str]:
    probabilities = response["probabilities"][row]
    index = response["class_indices"][row]
    confidence = response["confidence_scores"][row]
    if not isinstance(probabilities, list) or not probabilities or \
            not all(_is_number(p) and -_TOLERANCE <= p <= 1 + _TOLERANCE for p in probabilities):
        return [f"row {row}: probabilities must be a list of numbers in [0, 1]"]
    problems = []
    if abs(sum(probabilities) - 1.0) > 1e-4:
        problems.append(f"row {row}: probabilities sum to {sum(probabilities):.6f}, not 1")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(probabilities):
        return problems + [f"row {row}: class index {index!r} is out of range "
                           f"0..{len(probabilities) - 1}"]
    if not _is_number(confidence) or abs(confidence - probabilities[index]) > _TOLERANCE:
        problems.append(f"row {row}: confidence {confidence!r} is not the predicted class's "
                        f"probability {probabilities[index]!r}")
    if labels is not None and len(probabilities) != len(labels):
        # Without this, a class index past the end of the label list went unnoticed.
        return problems + [f"row {row}: {len(probabilities)} probabilities for {len(labels)} "
                           f"labels ({', '.join(map(str, labels))}); expected one per label"]
    if labels is not None and response["predictions"][row] != labels[index]:
        problems.append(f"row {row}: prediction {response['predictions'][row]!r} does not match "
                        f"label {labels[index]!r} of class index {index}")
    return problems


def validate_response(response: Any, n_rows: int, labels: Sequence[str] | None = None,
                      source: str = "the endpoint") -> None:
    problems = response_problems(response, n_rows, labels)
    if problems:
        raise ContractError(f"The answer from {source} breaks the inference contract",
                            details=problems,
                            hint="See the contract in the README: predictions, probabilities, "
                                 "class_indices, confidence_scores, one entry per row.")
