"""Issue 9: property-based tests of every validator and of the model server's input parsing.

Each property is the same promise: whatever the input, the function answers with a value that
obeys the rule, or refuses with the project's own error (exit 2 / a 4xx); never another
exception (the exit-1 crashes of issue 9: '²', 1000-deep JSON, 400-digit integers). Examples are
few (CI stays fast) and there is no deadline (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import math
import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules import deploy_validation as v
from tests.model_server_harness import import_artifact
from utils import cli, contract, files, redaction
from utils.env_validation import ENV_VARS
from utils.errors import ValidationError

inference = import_artifact("inference")

PROPERTY = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
ASCII_DIGITS = re.compile(r"[0-9]+")
# Text biased towards the characters that broke validators: Unicode digits, newlines, separators.
TRICKY = st.sampled_from(list("0123456789²³١٢٣１２３\n\r\t \x00:/-_.aZé"))
tricky_text = st.one_of(st.text(), st.lists(TRICKY, max_size=30).map("".join))
GOOD_ARN = "arn:aws:sagemaker:ca-central-1:123456789012:model-package/qc-group/3"


def _arn_like():
    """ARNs with one part replaced by tricky text: most inputs reach the deep checks."""
    parts = ["arn", "aws", "sagemaker", "ca-central-1", "123456789012",
             "model-package/qc-group/3"]

    def build(index_and_text):
        index, text = index_and_text
        changed = list(parts)
        changed[index] = text
        return ":".join(changed)
    return st.tuples(st.integers(0, 5), tricky_text).map(build)


@PROPERTY
@given(st.one_of(tricky_text, _arn_like()))
def test_arn_parsing_answers_or_refuses(arn):
    try:
        parsed = v.parse_model_package_arn(arn)
    except ValidationError:
        return
    assert ASCII_DIGITS.fullmatch(parsed.account) and len(parsed.account) == 12
    assert isinstance(parsed.version, int) and parsed.version >= 1
    assert parsed.region.isascii() and "\n" not in parsed.region
    assert parsed.group.isascii() and parsed.group.isprintable()


@PROPERTY
@given(tricky_text)
def test_endpoint_names_answer_or_refuse(name):
    try:
        assert v.validate_endpoint_name(name) == name
    except ValidationError:
        return
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name, re.ASCII)


@PROPERTY
@given(st.one_of(tricky_text, st.sampled_from(["local", " local", "ml.c5.xlarge", "ml.g5.xlarge"])))
def test_instance_types_answer_or_refuse(instance_type):
    try:
        warnings = v.validate_instance_type(instance_type, known=["ml.c5.xlarge", "ml.g5.xlarge"])
    except ValidationError:
        return
    assert instance_type in ("local", "ml.c5.xlarge", "ml.g5.xlarge")
    assert isinstance(warnings, list)


@PROPERTY
@given(tricky_text)
def test_stacks_answer_or_refuse(stack):
    try:
        v.validate_stack(stack)
    except ValidationError:
        return
    assert re.fullmatch(r"[a-z0-9-]{1,63}", stack, re.ASCII)


@PROPERTY
@given(tricky_text)
def test_tags_answer_or_refuse(raw):
    try:
        key, value = v.parse_tag(raw)
    except argparse.ArgumentTypeError:
        return
    assert key and not any(c in key + value for c in "\n\r\t\x00")


@PROPERTY
@given(st.sampled_from(sorted(name for name, spec in ENV_VARS.items() if spec.check)), tricky_text)
def test_environment_checks_answer_or_refuse(name, value):
    problem = ENV_VARS[name].check(value)
    assert problem is None or isinstance(problem, str)
    if problem is None:
        assert value.isascii() and value.isprintable()


@PROPERTY
@given(st.one_of(tricky_text, st.floats().map(repr), st.integers().map(str)))
def test_durations_are_finite_and_bounded_or_refused(raw):
    for convert, low, high in ((cli.wait_seconds, 0, cli.MAX_WAIT_SECONDS),
                               (cli.poll_seconds, cli.MIN_POLL_SECONDS, cli.MAX_POLL_SECONDS)):
        try:
            value = convert(raw)
        except argparse.ArgumentTypeError:
            continue
        assert math.isfinite(value) and low <= value <= high and value > 0


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4),
                                                                      children, max_size=3),
    max_leaves=20)
hostile_json = st.one_of(
    json_values.map(lambda value: json.dumps({"data": value})),
    st.integers(1, 3000).map(lambda depth: '{"data": ' + "[" * depth + "]" * depth + "}"),
    st.integers(300, 5000).map(lambda digits: '{"data": [[1' + "0" * digits + "]]}"),
    tricky_text)


@PROPERTY
@given(hostile_json)
def test_request_documents_answer_or_refuse(text):
    try:
        rows = contract.validate_request(contract.parse_json_text(text, "input"), "input")
    except ValidationError:
        return
    assert rows and all(len(row) == len(rows[0]) > 0 for row in rows)
    assert all(math.isfinite(value) for row in rows for value in row)


@PROPERTY
@given(tricky_text)
def test_output_paths_get_an_answer_never_an_exception(path):
    problem = files.output_file_problem(path or "x")
    assert problem is None or isinstance(problem, str)


@PROPERTY
@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=16,
               max_size=60), st.text(), st.text())
def test_a_known_secret_never_survives_redaction(secret, before, after):
    redaction.forget_secrets()
    try:
        redaction.remember_secrets([secret])
        shown = redaction.redact(before + secret + after + repr(secret + "\r"))
        assert secret not in shown
    finally:
        redaction.forget_secrets()


# --- the model server's input parsing (artifacts/inference.py input_fn) --------------------------

server_bodies = st.one_of(
    hostile_json,
    hostile_json.map(str.encode),
    st.binary(max_size=64),
    st.lists(st.lists(st.one_of(st.floats().map(repr), tricky_text), min_size=1, max_size=4),
             min_size=1, max_size=4).map(lambda rows: "\n".join(",".join(r) for r in rows)))


@PROPERTY
@given(server_bodies, st.sampled_from(["application/json", "text/csv",
                                       "application/json; charset=utf-8", "text/plain", None]))
def test_the_server_parses_a_matrix_or_refuses_with_a_4xx_error(body, content_type):
    try:
        matrix = inference.input_fn(body, content_type)
    except inference.InferenceInputError:
        return
    matrix = np.asarray(matrix)
    assert matrix.ndim == 2 and matrix.shape[0] >= 1 and matrix.shape[1] >= 1
    assert np.isfinite(matrix).all()
