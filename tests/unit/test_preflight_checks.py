"""The pre-flight's checks that need no child process: handlers (ast), requirements pins, sample
data, and the judging of what the child reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from modules import preflight
from modules.preflight import (
    PreflightFailed,
    Problem,
    check_artifact_files,
    child_env,
    handler_problems,
    load_sample_rows,
    model_problems,
    parse_sklearn_pin,
    pin_problems,
    saved_sklearn_version,
    smoke_problems,
)

HANDLERS = """\
def model_fn(model_dir):
    return None
def input_fn(body, content_type):
    return body
def predict_fn(data, model):
    return data
def output_fn(prediction, accept):
    return prediction
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --- files ---------------------------------------------------------------------------------------

def test_missing_directory_says_how_to_point_at_one(tmp_path):
    with pytest.raises(PreflightFailed) as caught:
        check_artifact_files(tmp_path / "nope")
    text = " ".join(caught.value.details)
    assert "does not exist" in text and "--artifacts-dir" in text
    assert caught.value.exit_code == 2


def test_every_missing_file_is_named_with_what_to_do(tmp_path):
    (tmp_path / "inference.py").write_text(HANDLERS)
    with pytest.raises(PreflightFailed) as caught:
        check_artifact_files(tmp_path)
    details = caught.value.details
    assert f"{tmp_path / 'model.joblib'}: file not found" in details
    assert f"{tmp_path / 'requirements.txt'}: file not found" in details
    assert any("joblib.dump" in line for line in details)
    assert "1 problem" not in caught.value.message and "2 problems" in caught.value.message
    assert any("Nothing was uploaded" in hint for hint in caught.value.hints)


def test_present_files_are_returned(tmp_path):
    for name in preflight.REQUIRED_FILES:
        (tmp_path / name).write_text("x")
    assert check_artifact_files(tmp_path) == {n: tmp_path / n for n in preflight.REQUIRED_FILES}


# --- handlers ------------------------------------------------------------------------------------

def test_all_four_handlers_pass(tmp_path):
    assert handler_problems(write(tmp_path, "inference.py", HANDLERS)) == []


def test_missing_handlers_are_listed(tmp_path):
    path = write(tmp_path, "inference.py", "def model_fn(model_dir):\n    pass\n")
    [problem] = handler_problems(path)
    assert "input_fn, predict_fn, output_fn" in problem.what
    assert "model_fn(model_dir)" in problem.todo


def test_handlers_bound_by_import_assignment_or_in_blocks_count(tmp_path):
    source = """\
    from helpers import model_fn
    import helpers as input_fn
    try:
        from fast import predict_fn
    except ImportError:
        def predict_fn(data, model):
            return data
    if True:
        output_fn = print
    """
    assert handler_problems(write(tmp_path, "inference.py", source)) == []


def test_handlers_inside_a_function_or_class_do_not_count(tmp_path):
    source = HANDLERS.replace("def output_fn", "class Holder:\n  def output_fn")
    source = source.replace("    return prediction", "    def x(self): return 1")
    [problem] = handler_problems(write(tmp_path, "inference.py", source))
    assert "does not define output_fn" in problem.what


def test_async_and_wrong_arity_handlers_are_reported(tmp_path):
    source = HANDLERS.replace("def predict_fn(data, model)", "async def predict_fn(data, model)")
    source = source.replace("def input_fn(body, content_type)", "def input_fn(body)")
    source = source.replace("def model_fn(model_dir)", "def model_fn(model_dir, extra)")
    problems = handler_problems(write(tmp_path, "inference.py", source))
    whats = [p.what for p in problems]
    assert any("predict_fn is 'async def'" in w for w in whats)
    assert any("input_fn takes 1 positional argument(s), the container passes 2" in w
               for w in whats)
    assert any("model_fn takes 2" in w for w in whats)


def test_flexible_signatures_are_accepted(tmp_path):
    source = HANDLERS.replace("def input_fn(body, content_type)", "def input_fn(*args)")
    source = source.replace("def output_fn(prediction, accept)",
                            "def output_fn(prediction, accept='application/json', extra=None)")
    assert handler_problems(write(tmp_path, "inference.py", source)) == []


def test_syntax_error_names_the_line(tmp_path):
    [problem] = handler_problems(write(tmp_path, "inference.py", "def model_fn(:\n"))
    assert "syntax error on line 1" in problem.what
    assert "py_compile" in problem.todo


def test_handlers_are_not_executed(tmp_path):
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').write('x')\n" + HANDLERS
    assert handler_problems(write(tmp_path, "inference.py", source)) == []
    assert not marker.exists()


# --- requirements.txt ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, pin", [
    ("scikit-learn==1.9.1\n", "1.9.1"),
    ("# runtime\nnumpy>=2\nScikit_Learn == 1.9.1 ; python_version >= '3.9'  # pinned\n", "1.9.1"),
    ("--index-url https://example.org/simple\nscikit-learn===1.9.1\n", "1.9.1"),
    ("joblib \\\n  >=1.5\nscikit-learn \\\n  ==1.5.2\n", "1.5.2"),
])
def test_exact_pins_are_found(tmp_path, text, pin):
    assert parse_sklearn_pin(write(tmp_path, "requirements.txt", text)) == (pin, [])


@pytest.mark.parametrize("text, expected", [
    ("numpy>=2\n", "does not list scikit-learn"),
    ("scikit-learn>=1.5\n", "does not pin one exact"),
    ("scikit-learn\n", "does not pin one exact"),
    ("scikit-learn==1.*\n", "does not pin one exact"),
    ("scikit-learn>=1.5,==1.9.1\n", "does not pin one exact"),
    ("scikit-learn @ https://example.org/sklearn.whl\n", "does not pin one exact"),
    ("sklearn==0.0\n", "deprecated placeholder"),
    ("scikit-learn===1.9.1 extra words\n", "not a valid requirement"),
    ("scikit-learn==1.9.1\nscikit-learn==1.5.2\n", "more than once"),
])
def test_bad_or_missing_pins_are_problems(tmp_path, text, expected):
    path = write(tmp_path, "requirements.txt", text)
    pin, problems = parse_sklearn_pin(path)
    assert pin is None
    assert any(expected in p.what for p in problems), [p.what for p in problems]
    assert all(p.file == path for p in problems)


def test_pin_must_equal_the_saved_version(tmp_path):
    path = tmp_path / "requirements.txt"
    assert pin_problems("1.9.1", "1.9.1", path) == []
    assert pin_problems("1.9.1", "1.9.1.0", path) == []
    [problem] = pin_problems("1.5.2", "1.9.1", path)
    assert "pins scikit-learn==1.5.2, but model.joblib was saved with scikit-learn 1.9.1" in \
        problem.what
    assert "scikit-learn==1.9.1" in problem.todo


# --- sample data ---------------------------------------------------------------------------------

def test_sample_rows_are_read(tmp_path):
    path = write(tmp_path, "s.json", '{"data": [[1, 2.5], [3, 4]]}')
    assert load_sample_rows(path) == ([[1, 2.5], [3, 4]], [])


@pytest.mark.parametrize("text, expected", [
    ('{"data": [[1, 2]', "Invalid JSON"),
    ('{"rows": [[1]]}', "missing the 'data' key"),
    ('{"data": []}', "non-empty list"),
    ('{"data": [[1, "x"]]}', "non-numeric"),
])
def test_bad_sample_data_is_a_problem(tmp_path, text, expected):
    path = write(tmp_path, "s.json", text)
    rows, [problem] = load_sample_rows(path)
    assert rows is None and expected in problem.what and problem.file == path


def test_missing_or_binary_sample_data(tmp_path):
    assert "not found" in load_sample_rows(tmp_path / "none.json")[1][0].what
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in load_sample_rows(path)[1][0].what


# --- child environment ---------------------------------------------------------------------------

def test_child_env_drops_secrets_and_sets_the_containers_variables(tmp_path):
    env = {"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "tok",
           "AWS_ACCESS_KEY_ID": "AKIA", "CLASS_LABELS": "x,y", "HOME": "/root"}
    child = child_env(env, tmp_path, None)
    assert "AWS_SECRET_ACCESS_KEY" not in child and "AWS_SESSION_TOKEN" not in child
    assert "AWS_ACCESS_KEY_ID" not in child
    assert "CLASS_LABELS" not in child  # unset for this run: the handlers' default applies
    assert child["SAGEMAKER_PROGRAM"] == "inference.py"
    assert child["SAGEMAKER_SUBMIT_DIRECTORY"] == str(tmp_path)
    assert child["PYTHONDONTWRITEBYTECODE"] == "1" and child["PATH"] == "/bin"
    assert child_env(env, tmp_path, ["a", "b"])["CLASS_LABELS"] == "a,b"


# --- judging the child's findings ----------------------------------------------------------------

def facts(**overrides):
    base = {"type": "sklearn.pipeline.Pipeline",
            "final_estimator": "sklearn.linear_model._logistic.LogisticRegression",
            "pipeline": True, "linear": "sklearn.linear_model", "classifier": True,
            "predict_proba": True, "n_features": 4, "classes": ["0", "1"],
            "sklearn_version_here": "1.9.1", "usable": True}
    return {"load": {"ok": True, "saved_sklearn_versions": []}, "model": {**base, **overrides}}


MODEL = Path("/a/model.joblib")


def test_a_good_model_has_no_problems():
    assert model_problems(facts(), MODEL, None) == []
    assert model_problems(facts(), MODEL, ["qc_pass", "qc_fail"]) == []


def test_load_failure_is_reported_with_the_error():
    result = {"load": {"ok": False, "error": "UnpicklingError: invalid load key"}, "model": None}
    [problem] = model_problems(result, MODEL, None)
    assert problem.file == MODEL and "cannot be loaded: UnpicklingError" in problem.what


@pytest.mark.parametrize("overrides, expected", [
    ({"linear": None, "final_estimator": "sklearn.ensemble._forest.RandomForestClassifier"},
     "RandomForestClassifier is not a linear classifier"),
    ({"classifier": False, "final_estimator": "sklearn.linear_model._base.LinearRegression"},
     "LinearRegression is not a classifier"),
    ({"predict_proba": False, "final_estimator": "sklearn.svm._classes.LinearSVC",
      "linear": "linear SVM"}, "LinearSVC has no predict_proba"),
    ({"n_features": None, "classes": None}, "is not fitted"),
])
def test_model_problems(overrides, expected):
    problems = model_problems(facts(**overrides), MODEL, None)
    assert any(expected in p.what for p in problems), [p.what for p in problems]


def test_class_labels_must_match_the_class_count():
    [problem] = model_problems(facts(), MODEL, ["a", "b", "c"])
    assert problem.file == "CLASS_LABELS"
    assert "has 3 label(s)" in problem.what and "2 classes" in problem.what


def test_saved_version_comes_from_the_load_warning_else_the_running_version():
    assert saved_sklearn_version(facts()) == "1.9.1"
    result = facts()
    result["load"]["saved_sklearn_versions"] = ["1.5.2"]
    assert saved_sklearn_version(result) == "1.5.2"


def smoke(**fields):
    return {"smoke": {"ok": True, "rows": [[1.0] * 4, [2.0] * 4], **fields}}


PATHS = {"inference.py": Path("/a/inference.py")}
GOOD_ANSWER = {"predictions": ["qc_pass", "qc_fail"], "probabilities": [[0.9, 0.1], [0.2, 0.8]],
               "class_indices": [0, 1], "confidence_scores": [0.9, 0.8]}


def test_smoke_answer_following_the_contract_passes():
    assert smoke_problems(smoke(response=GOOD_ANSWER), PATHS, None) == []
    assert smoke_problems(smoke(response=GOOD_ANSWER), PATHS, ["qc_pass", "qc_fail"]) == []


def test_smoke_answer_breaking_the_contract_is_reported():
    answer = {**GOOD_ANSWER, "probabilities": [[0.5, 0.1], [0.2, 0.8]],
              "confidence_scores": [0.5, 0.8]}
    problems = smoke_problems(smoke(response=answer), PATHS, None)
    assert any("sum to 0.600000" in p.what for p in problems)
    assert all(p.file == PATHS["inference.py"] for p in problems)


def test_smoke_labels_are_checked_when_given():
    problems = smoke_problems(smoke(response=GOOD_ANSWER), PATHS, ["good", "bad"])
    assert any("does not match label 'good'" in p.what for p in problems)


def test_smoke_failure_names_the_handler_and_line():
    result = {"smoke": {"ok": False, "rows": [], "stage": "predict_fn",
                        "error": "ValueError: boom", "location": "inference.py, line 9, in predict_fn"}}
    [problem] = smoke_problems(result, PATHS, None)
    assert "failed in predict_fn (inference.py, line 9, in predict_fn): ValueError: boom" in \
        problem.what


def test_problem_lines_and_failure_message():
    problem = Problem("f.txt", "is wrong", "fix it")
    assert problem.lines() == ["f.txt: is wrong", "  -> fix it"]
    failure = PreflightFailed([problem, problem], Path("/art"))
    assert failure.message.endswith("(2 problems)") and failure.details == problem.lines() * 2


def test_a_model_that_loads_but_cannot_be_inspected():
    result = {"load": {"ok": True, "saved_sklearn_versions": []},
              "model": {"error": "AttributeError: boom", "usable": False}}
    [problem] = model_problems(result, MODEL, None)
    assert "loads, but cannot be inspected: AttributeError: boom" in problem.what
