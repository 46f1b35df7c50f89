"""artifacts/inference.py's four handlers, called directly (imported by path, as the server does)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import io
import json
import shutil

import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC

from tests.conftest import REPO_ROOT
from tests.model_server_harness import import_artifact
from utils.contract import response_problems

inference = import_artifact("inference")
SAMPLE_ROWS = json.loads((REPO_ROOT / "sample-data.json").read_text())["data"]


@pytest.fixture(scope="module")
def shipped_model():
    return inference.model_fn(str(REPO_ROOT / "artifacts"))


def _dataset(n_classes: int, n_features: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    features = rng.normal(loc=50.0, scale=[1.0, 10.0, 0.1, 5.0][:n_features] or 1.0,
                          size=(300, n_features))
    labels = rng.integers(0, n_classes, size=300)
    features[:, 0] += labels * 0.8  # make the classes learnable
    return features, labels


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


# --- model_fn ---------------------------------------------------------------------------------

def test_model_fn_loads_the_shipped_model_with_default_labels(shipped_model):
    assert shipped_model.labels == ("qc_pass", "qc_fail")
    assert shipped_model.n_features == len(SAMPLE_ROWS[0]) == 4
    assert shipped_model.linear is not None  # the fast path applies to the shipped pipeline


def test_class_labels_env_names_the_classes(monkeypatch):
    monkeypatch.setenv("CLASS_LABELS", "good, bad")
    model = inference.model_fn(str(REPO_ROOT / "artifacts"))
    assert model.labels == ("good", "bad")


def test_class_labels_must_have_one_label_per_class(monkeypatch):
    monkeypatch.setenv("CLASS_LABELS", "a,b,c")
    with pytest.raises(ValueError, match="names 3 label.*2 classes"):
        inference.model_fn(str(REPO_ROOT / "artifacts"))


def test_model_fn_names_a_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.joblib not found"):
        inference.model_fn(str(tmp_path))


def test_model_without_predict_proba_is_refused(tmp_path):
    features, labels = _dataset(2)
    joblib.dump(LinearSVC().fit(features, labels), tmp_path / "model.joblib")
    with pytest.raises(TypeError, match="no predict_proba"):
        inference.model_fn(str(tmp_path))


def test_string_classes_become_the_labels():
    features, labels = _dataset(2)
    names = np.array(["qc_fail", "qc_pass"])[labels]
    model = inference.load_model(LogisticRegression().fit(features, names))
    assert model.labels == ("qc_fail", "qc_pass")


# --- the fast path equals predict_proba -------------------------------------------------------

FAST_PATH_MODELS = {
    "binary": lambda: LogisticRegression(),
    "binary-no-intercept": lambda: LogisticRegression(fit_intercept=False),
    "multiclass": lambda: LogisticRegression(),
    "scaled-binary": lambda: Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]),
    "scaled-multiclass": lambda: Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]),
    "scaled-no-mean": lambda: Pipeline([("s", StandardScaler(with_mean=False)),
                                        ("m", LogisticRegression(C=0.1))]),
    "scaled-no-std": lambda: Pipeline([("s", StandardScaler(with_std=False)),
                                       ("m", LogisticRegression())]),
    "passthrough-step": lambda: Pipeline([("p", "passthrough"), ("s", StandardScaler()),
                                          ("m", LogisticRegression())]),
    "cv-multiclass": lambda: Pipeline([("s", StandardScaler()),
                                       ("m", LogisticRegressionCV(
                                           Cs=3, cv=3, l1_ratios=(0.0,), scoring="neg_log_loss",
                                           use_legacy_attributes=False))]),
}


@pytest.mark.parametrize("name", sorted(FAST_PATH_MODELS))
def test_fast_path_equals_predict_proba(name):
    n_classes = 3 if "multiclass" in name else 2
    features, labels = _dataset(n_classes)
    estimator = FAST_PATH_MODELS[name]().fit(features, labels)
    model = inference.load_model(estimator, ",".join(f"c{i}" for i in range(n_classes)))
    assert model.linear is not None
    rng = np.random.default_rng(1)
    queries = np.vstack([features[:50], rng.normal(0, 1e4, size=(20, 4)), features[:1] * 1e6])
    answer = inference.predict_fn(queries, model)
    expected = estimator.predict_proba(queries)
    assert np.allclose(answer["probabilities"], expected, rtol=1e-9, atol=1e-12)
    assert np.array_equal(answer["class_indices"], expected.argmax(axis=1))


BINARY_FAST_PATH_MODELS = sorted(name for name in FAST_PATH_MODELS if "multiclass" not in name)


def _one_row_model(name: str):
    features, labels = _dataset(2)
    estimator = FAST_PATH_MODELS[name]().fit(features, labels)
    return estimator, inference.load_model(estimator, "c0,c1"), features


@pytest.mark.parametrize("name", BINARY_FAST_PATH_MODELS)
def test_a_single_row_in_python_floats_equals_predict_proba(name):
    estimator, model, features = _one_row_model(name)
    assert model.one_row is not None
    rng = np.random.default_rng(2)
    rows = np.vstack([features[:200], rng.normal(features.mean(axis=0), 3 * features.std(axis=0),
                                                 size=(200, 4)), rng.normal(0, 1e3, size=(50, 4))])
    for row in rows:
        answer = inference.predict_fn(row[None, :], model)
        expected = estimator.predict_proba(row[None, :])
        score = estimator.decision_function(row[None, :])[0]
        # the Python path answers, but for scores math.exp cannot take (the numpy path's then)
        assert type(answer["probabilities"]) is (list if abs(score) < 699 else np.ndarray)
        assert np.allclose(answer["probabilities"], expected, rtol=1e-12, atol=1e-15)
        index = int(expected.argmax())
        assert list(answer["class_indices"]) == [index]
        assert list(answer["predictions"]) == [f"c{index}"]
        assert list(answer["confidence_scores"]) == [answer["probabilities"][0][index]]


def test_a_single_row_answers_as_the_numpy_path_in_json(shipped_model):
    row = np.asarray([SAMPLE_ROWS[0]], dtype=np.float64)
    one = json.loads(inference.output_fn(inference.predict_fn(row, shipped_model), None)[0])
    numpy_path = dataclasses.replace(shipped_model, one_row=None)
    batch = json.loads(inference.output_fn(inference.predict_fn(row, numpy_path), None)[0])
    assert one.keys() == batch.keys()
    assert one["predictions"] == batch["predictions"]
    assert one["class_indices"] == batch["class_indices"]
    assert np.allclose(one["probabilities"], batch["probabilities"], rtol=1e-12)
    assert response_problems(one, 1, ["qc_pass", "qc_fail"]) == []


@pytest.mark.parametrize("value, message", [
    (np.nan, "row 0, column 2 is nan"), (np.inf, "row 0, column 2 is inf"),
    (-np.inf, "row 0, column 2 is -inf")])
def test_a_single_non_finite_row_is_refused_as_before(shipped_model, value, message):
    with pytest.raises(ValueError, match=message):
        inference.predict_fn(np.array([[1.0, 2.0, value, 4.0]]), shipped_model)


def test_a_single_row_of_another_width_is_refused_as_before(shipped_model):
    with pytest.raises(ValueError, match="must have 4 features.*got rows of 3"):
        inference.predict_fn(np.ones((1, 3)), shipped_model)


def test_a_single_row_with_a_huge_score_gets_the_numpy_paths_answer(shipped_model):
    row = np.array([[1e200, 180.0, 101.3, 0.2]])  # beyond what math.exp takes
    answer = inference.predict_fn(row, shipped_model)
    assert type(answer["probabilities"]) is np.ndarray
    assert np.array_equal(answer["probabilities"], shipped_model.estimator.predict_proba(row))


def test_a_tie_picks_the_first_class_as_argmax_does():
    estimator, _, features = _one_row_model("binary")
    estimator.coef_[:] = 0.0
    estimator.intercept_[:] = 0.0
    model = inference.load_model(estimator, "c0,c1")
    answer = inference.predict_fn(features[:1], model)
    assert answer["probabilities"] == [[0.5, 0.5]]
    assert answer["class_indices"] == [0] and answer["predictions"] == ["c0"]


def test_multiclass_models_and_many_rows_keep_the_numpy_path():
    features, labels = _dataset(3)
    model = inference.load_model(LogisticRegression().fit(features, labels), "a,b,c")
    assert model.one_row is None
    _, binary, features = _one_row_model("scaled-binary")
    assert type(inference.predict_fn(features[:2], binary)["probabilities"]) is np.ndarray


@pytest.mark.parametrize("make", [
    lambda: Pipeline([("s", MinMaxScaler()), ("m", LogisticRegression())]),
    lambda: SGDClassifier(loss="log_loss", random_state=0),
    lambda: type("CustomLR", (LogisticRegression,), {})(),  # a subclass may change predict_proba
], ids=["other-scaler", "sgd", "subclass"])
def test_unrecognised_models_use_predict_proba(make):
    features, labels = _dataset(2)
    estimator = make().fit(features, labels)
    model = inference.load_model(estimator)
    assert model.linear is None
    answer = inference.predict_fn(features[:20], model)
    assert np.array_equal(answer["probabilities"], estimator.predict_proba(features[:20]))


def test_shipped_model_answers_match_predict_proba(shipped_model):
    answer = inference.predict_fn(np.asarray(SAMPLE_ROWS, dtype=float), shipped_model)
    assert np.allclose(answer["probabilities"], shipped_model.estimator.predict_proba(SAMPLE_ROWS))


# --- input_fn: every content type -------------------------------------------------------------

@pytest.mark.parametrize("body, content_type", [
    (json.dumps({"data": SAMPLE_ROWS}).encode(), "application/json"),
    (json.dumps({"data": SAMPLE_ROWS}), "Application/JSON; charset=utf-8"),
    (json.dumps({"data": SAMPLE_ROWS}).encode(), None),  # no Content-Type: JSON, as AWS's default
    ("\n".join(",".join(str(v) for v in row) for row in SAMPLE_ROWS).encode(), "text/csv"),
    ("\r\n".join(",".join(str(v) for v in row) for row in SAMPLE_ROWS) + "\r\n", "text/csv"),
    (_npy(SAMPLE_ROWS), "application/x-npy"),
    (_npy(np.asarray(SAMPLE_ROWS, dtype=np.float32)), "application/x-npy"),
], ids=["json", "json-str-params", "json-default", "csv", "csv-crlf", "npy", "npy-float32"])
def test_input_fn_decodes_every_content_type(body, content_type):
    matrix = inference.input_fn(body, content_type)
    assert matrix.dtype == np.float64 and matrix.shape == (4, 4)
    assert np.allclose(matrix, SAMPLE_ROWS)


def test_integer_json_values_are_numbers():
    assert inference.input_fn(b'{"data": [[1, 2, 3, 4]]}', "application/json").tolist() == \
        [[1.0, 2.0, 3.0, 4.0]]


def test_the_sdks_bare_array_of_rows_is_read_like_data():
    """The SageMaker SDK's default JSONSerializer sends the rows without the 'data' key."""
    bare = inference.input_fn(b"[[1, 2, 3, 4], [5.5, 6, 7, 8]]", "application/json")
    wrapped = inference.input_fn(b'{"data": [[1, 2, 3, 4], [5.5, 6, 7, 8]]}', "application/json")
    assert bare.dtype == np.float64 and np.array_equal(bare, wrapped)


def test_json_rows_is_a_pure_function_of_the_decoded_payload():
    assert inference.json_rows([[1, 2]]) == ([[1, 2]], "the JSON array")
    assert inference.json_rows({"data": [[1, 2]], "id": "x"}) == ([[1, 2]], "'data'")
    with pytest.raises(inference.InferenceInputError, match="Missing the 'data' key"):
        inference.json_rows({"rows": []})


def test_string_values_inside_other_keys_do_not_reject_numbers():
    body = b'{"data": [[1.5, 2, 3, 4]], "request_id": "trial-run"}'
    assert inference.input_fn(body, "application/json").shape == (1, 4)


BAD_INPUTS = [
    (b'{"data": [[1, 2,]]}', "application/json", "Malformed JSON: trailing comma.* at line 1, column 16"),
    (b'{"data" [[1]]}', "application/json", "Malformed JSON.*expected"),
    (b"", "application/json", "Empty request body"),
    (b"   ", "application/json", "Empty request body"),
    (b"\xff\xfe", "application/json", "(Malformed JSON|UTF-8)"),
    (b'"1,2,3,4"', "application/json", "JSON object with a 'data' key.*or a bare array of "
                                       "rows; got a JSON string"),
    (b"[]", "application/json", "the JSON array is empty"),
    (b"[1, 2, 3, 4]", "application/json", "the JSON array must be 2-D"),
    (b'[[1, "a", 3, 4]]', "application/json", 'the JSON array: row 0, column 1 holds "a"'),
    (b"[[1, true, 3, 4]]", "application/json", "holds true, not a number"),
    (b'{"rows": [[1, 2, 3, 4]]}', "application/json", "Missing the 'data' key.*'rows'"),
    (b'{"data": []}', "application/json", "'data' is empty"),
    (b'{"data": [[]]}', "application/json", "empty"),
    (b'{"data": "1,2,3,4"}', "application/json", "list of rows.*got a string"),
    (b'{"data": [1, 2, 3, 4]}', "application/json", "must be 2-D"),
    (b'{"data": [[[1, 2]]]}', "application/json", "must be 2-D"),
    (b'{"data": [[1, 2, 3, 4], [1, 2]]}', "application/json", "row 1 has 2 values but row 0 has 4"),
    (b'{"data": [[1, 2, 3, 4], 5]}', "application/json", "row 1 is a number"),
    (b'{"data": [[1, "a", 3, 4]]}', "application/json", 'row 0, column 1 holds "a", not a number'),
    (b'{"data": [[1, "2.5", 3, 4]]}', "application/json", 'holds "2.5", not a number'),
    (b'{"data": [[1, true, 3, 4]]}', "application/json", "holds true, not a number"),
    (b'{"data": [[1, null, 3, 4]]}', "application/json", "holds null, not a number"),
    (b'{"data": [[1, [2], 3]]}', "application/json", "not a number"),
    (b'{"data": [[1, {"x": 2}, 3, 4]]}', "application/json", "not a number"),
    (b"", "text/csv", "Empty text/csv body"),
    (b"a,b,c,d\n1,2,3,4\n", "text/csv", "line 1, column 1: 'a' is not a number.*no header"),
    (b"1,2,3,4\n1,2,,4\n", "text/csv", "line 2, column 3: '' is not a number"),
    (b"1,2,3,4\n1,2\n", "text/csv", "row 1 has 2 values but row 0 has 4"),
    (b"1,nan,3,4\n", "text/csv", "row 0, column 1 is nan; .*finite"),
    (b"1,inf,3,4\n", "text/csv", "finite"),
    (b"not numpy at all", "application/x-npy", "not a .npy file"),
    (b"\x93NUMPY", "application/x-npy", "Cannot read the application/x-npy body"),
    (_npy([True, False]), "application/x-npy", "dtype bool"),
    (_npy([1.0, 2.0, 3.0, 4.0]), "application/x-npy", "must be 2-D"),
    (_npy(np.zeros((0, 4))), "application/x-npy", "is empty"),
    (_npy([[1.0, np.nan, 3.0, 4.0]]), "application/x-npy", "finite"),
]


@pytest.mark.parametrize("body, content_type, message", BAD_INPUTS)
def test_bad_input_is_a_400_saying_what_was_expected(body, content_type, message):
    with pytest.raises(ValueError, match=message) as caught:
        inference.input_fn(body, content_type)
    assert caught.value.status_code == 400


def test_pickled_npy_is_refused_without_unpickling():
    buffer = io.BytesIO()
    np.save(buffer, np.array([[{"x": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="Cannot read the application/x-npy body") as caught:
        inference.input_fn(buffer.getvalue(), "application/x-npy")
    assert caught.value.status_code == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonl"])
def test_unsupported_content_type_is_415(content_type):
    with pytest.raises(ValueError, match="Unsupported Content-Type.*application/json") as caught:
        inference.input_fn(b'{"data": [[1, 2, 3, 4]]}', content_type)
    assert caught.value.status_code == 415


# --- predict_fn and output_fn -----------------------------------------------------------------

def test_wrong_feature_count_says_how_many_are_expected(shipped_model):
    with pytest.raises(ValueError, match="must have 4 features.*got rows of 3") as caught:
        inference.predict_fn(np.ones((2, 3)), shipped_model)
    assert caught.value.status_code == 400


def test_predict_fn_checks_what_a_custom_input_fn_hands_over(shipped_model):
    with pytest.raises(ValueError, match="row 1, column 2 is nan; features must be finite"):
        inference.predict_fn(np.array([[1.0, 2, 3, 4], [1, 2, np.nan, 4]]), shipped_model)
    with pytest.raises(ValueError, match="must be 2-D"):
        inference.predict_fn(np.ones(4), shipped_model)


def test_predict_fn_accepts_the_bare_estimator_of_a_custom_model_fn():
    estimator = joblib.load(REPO_ROOT / "artifacts" / "model.joblib")
    answer = inference.predict_fn(SAMPLE_ROWS, estimator)  # lists too, from a custom input_fn
    assert answer["predictions"][:3] == ["qc_pass", "qc_fail", "qc_pass"]


@pytest.mark.parametrize("accept", [None, "", "*/*", "application/json",
                                    "text/html, application/json;q=0.9", "application/*"])
def test_output_follows_the_contract(shipped_model, accept):
    answer = inference.predict_fn(inference.input_fn(
        json.dumps({"data": SAMPLE_ROWS}), "application/json"), shipped_model)
    body, content_type = inference.output_fn(answer, accept)
    assert content_type == "application/json"
    document = json.loads(body)
    assert response_problems(document, len(SAMPLE_ROWS), ["qc_pass", "qc_fail"]) == []
    assert np.allclose(document["probabilities"],
                       shipped_model.estimator.predict_proba(SAMPLE_ROWS))


@pytest.mark.parametrize("accept", ["text/csv", "application/x-npy", "text/html"])
def test_unsupported_accept_is_406(shipped_model, accept):
    answer = inference.predict_fn(np.asarray(SAMPLE_ROWS, dtype=float), shipped_model)
    with pytest.raises(ValueError, match="Unsupported Accept.*application/json") as caught:
        inference.output_fn(answer, accept)
    assert caught.value.status_code == 406


def test_stdlib_json_fallback_gives_the_same_answers(shipped_model, monkeypatch):
    body = json.dumps({"data": SAMPLE_ROWS})
    with_orjson = inference.output_fn(inference.predict_fn(
        inference.input_fn(body, "application/json"), shipped_model), None)[0]
    monkeypatch.setattr(inference, "orjson", None)
    without = inference.output_fn(inference.predict_fn(
        inference.input_fn(body, "application/json"), shipped_model), None)[0]
    assert json.loads(with_orjson) == json.loads(without)
    with pytest.raises(ValueError, match="Malformed JSON: .*line 1, column"):
        inference.input_fn(b'{"data": [[1,]]}', "application/json")


def test_handlers_work_from_a_bundle_copy(tmp_path):
    """The file is self-contained: a copy next to a model serves like the original."""
    shutil.copy(REPO_ROOT / "artifacts" / "model.joblib", tmp_path / "model.joblib")
    model = inference.model_fn(str(tmp_path))
    body, _ = inference.output_fn(inference.predict_fn(
        inference.input_fn(b'{"data": [[2.5, 180, 101.3, 0.2]]}', "application/json"), model),
        "application/json")
    assert json.loads(body)["predictions"] == ["qc_pass"]


# --- integrity --------------------------------------------------------------------------------

def test_model_fn_refuses_a_model_file_that_is_not_the_registered_one(tmp_path, monkeypatch):
    """In AWS's prebuilt image only this file runs: it checks the digest before unpickling."""
    marker = tmp_path / "unpickled"
    (tmp_path / "model.joblib").write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() +
                                            b"'\ntR.")
    registered = hashlib.sha256((REPO_ROOT / "artifacts" / "model.joblib").read_bytes())
    monkeypatch.setenv("MODEL_JOBLIB_SHA256", registered.hexdigest())
    with pytest.raises(ValueError, match="has sha256 [0-9a-f]{64}, not the .* registered in "
                                         "MODEL_JOBLIB_SHA256"):
        inference.model_fn(str(tmp_path))
    assert not marker.exists()


def test_model_fn_loads_a_model_file_with_the_registered_sha256(tmp_path, monkeypatch):
    shipped = (REPO_ROOT / "artifacts" / "model.joblib").read_bytes()
    (tmp_path / "model.joblib").write_bytes(shipped)
    monkeypatch.setenv("MODEL_JOBLIB_SHA256", hashlib.sha256(shipped).hexdigest().upper())
    assert inference.model_fn(str(tmp_path)).n_features == 4


# --- many numeric rows: the fast paths (simdjson, else orjson + np.fromiter) against the checked one

FAST_PATHS = ("simdjson", "orjson")  # simdjson absent (AWS's prebuilt image): orjson's fromiter


@contextlib.contextmanager
def _without(package: str | None):
    """inference.py as where this optional package is not installed (None: as it is)."""
    installed = getattr(inference, package) if package else None
    if package:
        setattr(inference, package, None)
    try:
        yield
    finally:
        if package:
            setattr(inference, package, installed)


def _fast_path(name: str):
    """input_fn with simdjson, or as where it is not installed."""
    return _without("simdjson" if name == "orjson" else None)


def _checked_outcome(body: bytes | str):
    """What the value-by-value path (np.asarray and its checks) makes of a JSON body."""
    def checked():
        rows, what = inference.json_rows(inference._decode_json(body))
        return inference._rows_to_matrix(rows, what, strict=inference._may_hold_booleans(body))
    return _outcome(checked)


def _outcome(call):
    try:
        matrix = call()
    except inference.InferenceInputError as exc:
        return "refused", str(exc)
    return "matrix", matrix.dtype.str, matrix.shape, matrix.tobytes()


_numbers = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                     st.just(-0.0))
_many_rows = st.integers(1, 5).flatmap(
    lambda width: st.lists(st.lists(_numbers, min_size=width, max_size=width),
                           min_size=inference._FLAT_FROM_ROWS, max_size=60))
# JSON number texts as people write them (json.dumps writes only Python's repr): exponents in
# either case and sign, -0, long mantissas, values that underflow to 0 or overflow float64
_number_texts = st.from_regex(r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?\Z")
_many_text_rows = st.integers(1, 5).flatmap(
    lambda width: st.lists(st.lists(_number_texts, min_size=width, max_size=width),
                           min_size=8, max_size=60))


@pytest.mark.parametrize("path", FAST_PATHS)
@settings(max_examples=150, deadline=None)
@given(rows=_many_rows, bare=st.booleans(), as_bytes=st.booleans())
def test_many_numeric_rows_give_bit_for_bit_the_matrix_of_the_checked_path(path, rows, bare,
                                                                           as_bytes):
    body = json.dumps(rows if bare else {"data": rows})
    body = body.encode() if as_bytes else body

    with _fast_path(path):
        matrix = inference.input_fn(body, "application/json")

    assert _outcome(lambda: matrix) == _checked_outcome(body)
    assert np.array_equal(matrix, np.asarray(rows, dtype=np.float64))


@pytest.mark.parametrize("path", FAST_PATHS)
@settings(max_examples=150, deadline=None)
@given(rows=_many_text_rows, bare=st.booleans(), spaces=st.sampled_from(["", " ", "\n  "]))
def test_number_texts_get_the_checked_paths_answer_to_the_bit(path, rows, bare, spaces):
    separator = "," + spaces
    array = "[" + separator.join("[" + separator.join(row) + "]" for row in rows) + "]"
    body = f'{spaces}{array}{spaces}' if bare else f'{{{spaces}"data":{spaces}{array}}}'

    with _fast_path(path):
        outcome = _outcome(lambda: inference.input_fn(body, "application/json"))

    assert outcome == _checked_outcome(body)


def _with(rows: list, index: int, value) -> list:
    changed = [list(row) for row in rows]
    changed[index] = value
    return changed


_FORTY = [[float(i), i + 0.5, -i, 1e-3 * i] for i in range(40)]


@pytest.mark.parametrize("rows", [
    pytest.param(_with(_FORTY, 33, [1.0, 2.0]), id="ragged"),
    pytest.param(_with(_with(_FORTY, 32, [1, 2, 3]), 33, [1, 2, 3, 4, 5]), id="ragged-same-total"),
    pytest.param(_with(_FORTY, 35, 7), id="a-number-as-a-row"),
    pytest.param(_with(_FORTY, 36, [[1, 2], 3, 4, 5]), id="nested-list"),
    pytest.param(_with(_FORTY, 36, [[1, 2, 3, 4]]), id="a-row-in-a-list"),
    pytest.param(_with(_FORTY, 37, [1, "2", 3, 4]), id="string"),
    pytest.param(_with(_FORTY, 38, [1, True, 3, 4]), id="boolean"),
    pytest.param(_with(_FORTY, 39, [1, None, 3, 4]), id="null"),
    pytest.param(_with(_FORTY, 31, [1, {}, 3, 4]), id="object"),
    pytest.param([[]] * 40, id="empty-rows"),
    pytest.param([[0.5] * 4] + [[]] * 39, id="empty-rows-after-the-first"),
    pytest.param(_with(_FORTY, 34, [1, 10**400, 3, 4]), id="int-beyond-float"),  # orjson: 400
    pytest.param(_with(_FORTY, 30, [1, 2**70, 3, -2**64]), id="ints-beyond-int64"),
    pytest.param(_with(_FORTY, 30, [1, 2**64 - 1, 3, -2**63]), id="ints-at-the-64-bit-ends"),
])
@pytest.mark.parametrize("bare", [False, True])
@pytest.mark.parametrize("path", FAST_PATHS)
def test_many_rows_with_an_unusual_value_get_the_checked_paths_answer(rows, bare, path):
    body = json.dumps(rows if bare else {"data": rows})

    with _fast_path(path):
        outcome = _outcome(lambda: inference.input_fn(body, "application/json"))

    assert outcome == _checked_outcome(body)


# --- one row: Python floats straight to the matrix (_one_row_matrix) against the checked path

_row_values = st.one_of(_numbers, st.booleans(), st.none(), st.text(max_size=3),
                        st.lists(st.floats(), max_size=2))


def _decoder(name: str):
    """orjson, or the standard library's json as where orjson is absent (AWS's prebuilt image):
    that one reads NaN, Infinity and 1e999, which orjson refuses."""
    return _without("orjson" if name == "json" else None)


DECODERS = ("orjson", "json")
_one_row_texts = st.lists(_number_texts | st.sampled_from(["NaN", "Infinity", "-Infinity"]),
                          min_size=1, max_size=6)


@pytest.mark.parametrize("decoder", DECODERS)
@settings(max_examples=300, deadline=None)
@given(row=st.lists(_row_values, max_size=6) | st.lists(_numbers, min_size=1, max_size=6),
       bare=st.booleans(), as_bytes=st.booleans())
def test_one_row_gets_the_checked_paths_answer_to_the_bit(decoder, row, bare, as_bytes):
    body = json.dumps([row] if bare else {"data": [row]})
    body = body.encode() if as_bytes else body

    with _decoder(decoder):
        outcome = _outcome(lambda: inference.input_fn(body, "application/json"))
        assert outcome == _checked_outcome(body)


@pytest.mark.parametrize("decoder", DECODERS)
@settings(max_examples=200, deadline=None)
@given(row=_one_row_texts, bare=st.booleans())
def test_one_row_of_number_texts_gets_the_checked_paths_answer(decoder, row, bare):
    array = "[[" + ", ".join(row) + "]]"  # 1e999 and the like overflow to infinity: refused
    body = array if bare else f'{{"data": {array}}}'

    with _decoder(decoder):
        outcome = _outcome(lambda: inference.input_fn(body, "application/json"))
        assert outcome == _checked_outcome(body)


@pytest.mark.parametrize("path", FAST_PATHS)
@settings(max_examples=100, deadline=None)
@given(row=st.lists(_numbers, min_size=110, max_size=150), bare=st.booleans())
def test_one_wide_row_gets_the_checked_paths_answer_with_simdjson_tried_first(path, row, bare):
    body = json.dumps([row] if bare else {"data": [row]})
    assert len(body) >= inference._SIMDJSON_FROM_BYTES

    with _fast_path(path):
        outcome = _outcome(lambda: inference.input_fn(body, "application/json"))

    assert outcome == _checked_outcome(body)


@pytest.mark.parametrize("row, taken", [
    ([0.5, 1.2, -0.3, 2.0], True),
    ([-0.0], True),
    ([1e308, 1e308], False),  # finite values whose sum is not: the checked path (which accepts)
    ([1, 2.0], False),  # an int: the checked path
    ([True, 2.0], False),
    ([], False),
    ("0.5", False),
])
def test_the_one_row_path_takes_only_finite_floats(row, taken):
    matrix = inference._one_row_matrix(row)
    assert (matrix is not None) == taken
    if taken:
        assert matrix.dtype == np.float64 and matrix.shape == (1, len(row))
        assert matrix.tobytes() == np.asarray([row], dtype=np.float64).tobytes()


_NUMERIC_BODY = json.dumps({"data": _FORTY})


@pytest.mark.parametrize("body", [
    pytest.param("\ufeff" + _NUMERIC_BODY, id="utf8-bom"),  # simdjson skips it; orjson refuses
    pytest.param(_NUMERIC_BODY + " x", id="trailing-garbage"),
    pytest.param(_NUMERIC_BODY[:-1], id="truncated"),
    pytest.param(_NUMERIC_BODY.replace("data", "rows"), id="another-key"),
    pytest.param(_NUMERIC_BODY.replace("]]", "],]]"), id="trailing-comma"),
    pytest.param(_NUMERIC_BODY.replace("[[", "[[01, "), id="leading-zero"),
    pytest.param(_NUMERIC_BODY.replace("[[", "[[1.8e308, "), id="float-overflow"),
    pytest.param(_NUMERIC_BODY.replace("[[", "[[NaN, "), id="nan"),
    pytest.param(_NUMERIC_BODY[:-1] + ', "data": [[1, 2, 3, 4]]}', id="duplicate-key"),
])
@pytest.mark.parametrize("path", FAST_PATHS)
def test_malformed_numeric_json_gets_the_checked_paths_answer(body, path):
    with _fast_path(path):
        outcome = _outcome(lambda: inference.input_fn(body, "application/json"))

    assert outcome == _checked_outcome(body)


def test_simdjson_reads_plain_numeric_rows_itself():
    """The differential tests above would pass with a fast path that never answers: it does."""
    for body in (_NUMERIC_BODY, json.dumps(_FORTY), json.dumps({"data": [[1, -0, 2**64 - 1]] * 9})):
        parsed = inference._simdjson_matrix(body.encode())
        assert _outcome(lambda parsed=parsed: parsed[0]) == _checked_outcome(body)


def test_a_parser_still_held_by_a_document_is_replaced():
    raw = _NUMERIC_BODY.encode()
    assert inference._simdjson_matrix(raw) is not None  # the thread's parser exists now
    held = inference._parsers.parser.parse(b"[[1.0]]")  # it refuses to parse while this lives

    assert inference._simdjson_matrix(raw) is None  # refused, so the checked path answers
    assert inference._simdjson_matrix(raw) is not None  # with a new parser
    assert held.as_list() == [[1.0]]


def test_threads_parse_with_parsers_of_their_own():
    bodies = [json.dumps({"data": [[float(i + j), i, j, -j] for j in range(40)]}).encode()
              for i in range(64)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(inference._simdjson_matrix, bodies * 4))

    assert all(result is not None for result in results)
    for body, (matrix, _) in zip(bodies * 4, results, strict=True):
        assert np.array_equal(matrix, np.asarray(json.loads(body)["data"]))


def test_many_rows_with_a_string_are_refused_naming_it():
    body = json.dumps({"data": _with(_FORTY, 37, [1, "2", 3, 4])})

    with pytest.raises(inference.InferenceInputError, match=r"row 37, column 1 holds \"2\""):
        inference.input_fn(body, "application/json")
