"""The pre-flight child's logic, called in-process (the child process itself is covered by
tests/functional/test_preflight.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from modules import _preflight_child as child
from tests.packaging_support import training_data


@pytest.mark.parametrize("estimator, kind", [
    (LogisticRegression(), "sklearn.linear_model"),
    (SGDClassifier(loss="log_loss"), "sklearn.linear_model"),
    (LinearSVC(), "linear SVM"),
    (SVC(kernel="linear"), "linear SVM"),
    (SVC(kernel="rbf"), None),
    (RandomForestClassifier(), None),
    (CalibratedClassifierCV(LinearSVC()), "linear SVM (calibrated)"),
    (CalibratedClassifierCV(), "linear SVM (calibrated)"),
    (CalibratedClassifierCV(RandomForestClassifier()), None),
])
def test_linear_kind(estimator, kind):
    assert child.linear_kind(estimator) == kind


def fitted(estimator):
    features, labels = training_data()
    return estimator.fit(features, labels)


def test_describe_a_fitted_pipeline():
    facts = child.describe_model(fitted(make_pipeline(StandardScaler(), LogisticRegression())))
    assert facts["type"] == "sklearn.pipeline.Pipeline"
    assert facts["final_estimator"].endswith("LogisticRegression")
    assert facts["pipeline"] and facts["classifier"] and facts["predict_proba"] and facts["usable"]
    assert facts["n_features"] == 4 and facts["classes"] == ["0", "1"]
    assert json.dumps(facts)  # travels as JSON


@pytest.mark.parametrize("estimator, expected", [
    (LinearRegression(), {"classifier": False, "usable": False}),
    (LinearSVC(), {"predict_proba": False, "usable": False}),
    (SGDClassifier(loss="hinge"), {"predict_proba": False, "usable": False}),
])
def test_describe_models_that_cannot_serve_the_contract(estimator, expected):
    facts = child.describe_model(fitted(estimator))
    assert {key: facts[key] for key in expected} == expected


def test_describe_an_unfitted_model():
    facts = child.describe_model(LogisticRegression())
    assert facts["n_features"] is None and facts["classes"] is None and not facts["usable"]


def test_describe_something_that_is_not_an_estimator():
    facts = child.describe_model({"weights": [1, 2]})
    assert facts["linear"] is None and not facts["classifier"] and not facts["usable"]


def test_generated_rows_are_reproducible_and_shaped():
    rows = child.generate_rows(3, 5)
    assert rows == child.generate_rows(3, 5)
    assert len(rows) == 5 and all(len(row) == 3 for row in rows)


@pytest.mark.parametrize("answer", [
    b'{"a": 1}', '{"a": 1}', (b'{"a": 1}', "application/json"),
    bytearray(b'{"a": 1}'), ['{"a": 1}', "application/json"],
])
def test_decode_answer_accepts_a_body_or_a_body_with_content_type(answer):
    assert child._decode_answer(answer) == {"a": 1}


def test_decode_answer_refuses_unserialised_objects():
    with pytest.raises(TypeError, match="expected the serialized JSON body"):
        child._decode_answer({"a": 1})


def test_location_points_into_the_users_program(tmp_path):
    program = tmp_path / "inference.py"
    program.write_text("def predict_fn(data, model):\n    raise ValueError('boom')\n")
    namespace: dict = {}
    exec(compile(program.read_text(), str(program), "exec"), namespace)
    with pytest.raises(ValueError) as caught:
        namespace["predict_fn"](None, None)
    assert child._location_in(program, caught.value) == "inference.py, line 2, in predict_fn"
    assert child._location_in(Path("/elsewhere.py"), caught.value) is None
