"""The artifact pre-flight end to end: real child processes on real (tiny) trained models."""
# ruff: noqa: F811 - fixtures imported from tests/packaging_support.py are test arguments

from __future__ import annotations

import json
import os
import pickle
import time

import joblib
import pytest
import sklearn.base

from modules.preflight import PreflightFailed, run_preflight
from tests.conftest import REPO_ROOT
from tests.packaging_support import (  # noqa: F401
    artifacts_copy,
    good_artifacts,
    logistic_pipeline,
    random_forest,
    requirements_text,
)

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
INFERENCE = (REPO_ROOT / "artifacts" / "inference.py").read_text()


def problems_of(failure: pytest.ExceptionInfo) -> str:
    return "\n".join(failure.value.details)


def test_good_artifacts_pass_with_generated_rows(good_artifacts):
    before = sorted(p.name for p in good_artifacts.iterdir())
    report = run_preflight(good_artifacts, env=ENV)
    assert report.model.linear == "sklearn.linear_model"
    assert report.model.final_estimator.endswith("LogisticRegression")
    assert (report.model.n_features, report.model.classes) == (4, ["0", "1"])
    assert report.model.saved_sklearn_version == sklearn.__version__ == report.sklearn_pin
    assert report.rows_source == "generated" and len(report.rows) == 5
    assert len(report.response["predictions"]) == 5
    assert set(report.response["predictions"]) <= {"qc_pass", "qc_fail"}
    assert report.warnings == []
    # The user's code ran, but left nothing behind (no __pycache__).
    assert sorted(p.name for p in good_artifacts.iterdir()) == before


def test_sample_data_and_class_labels_are_used(good_artifacts, tmp_path):
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"data": [[3, 2, 0, 0], [-3, -2, 0, 0], [0.1, 0.2, 0.3, 0.4]]}))
    report = run_preflight(good_artifacts, sample_data=sample, class_labels=["good", "bad"],
                           env=ENV)
    assert report.rows_source == str(sample) and len(report.rows) == 3
    assert report.response["predictions"][:2] == ["bad", "good"]


def test_sample_rows_of_the_wrong_width_are_refused(good_artifacts, tmp_path):
    sample = tmp_path / "sample.json"
    sample.write_text('{"data": [[1, 2, 3]]}')
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(good_artifacts, sample_data=sample, env=ENV)
    assert f"{sample}: rows have 3 features, the model expects 4" in problems_of(caught)


def test_corrupt_joblib(artifacts_copy):
    directory = artifacts_copy(model_bytes=b"this is not a pickle")
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, env=ENV)
    text = problems_of(caught)
    assert f"{directory / 'model.joblib'}: cannot be loaded" in text
    assert "joblib.dump" in text
    assert caught.value.exit_code == 2


def test_non_linear_model_is_refused(artifacts_copy):
    directory = artifacts_copy(model=random_forest())
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, env=ENV)
    text = problems_of(caught)
    assert "RandomForestClassifier is not a linear classifier" in text
    assert "LogisticRegression" in text  # what to use instead


def test_static_problems_and_model_problems_are_reported_together(artifacts_copy):
    inference = INFERENCE.replace("def output_fn(", "def renamed_output_fn(")
    directory = artifacts_copy(model=logistic_pipeline().steps[0][1],  # a bare StandardScaler
                               inference=inference, requirements="scikit-learn>=1.5\n")
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, env=ENV)
    text = problems_of(caught)
    assert f"{directory / 'inference.py'}: does not define output_fn" in text
    assert f"{directory / 'requirements.txt'}: line 1: 'scikit-learn>=1.5' does not pin" in text
    assert "StandardScaler is not a linear classifier" in text
    assert "3 problems" in caught.value.message or "4 problems" in caught.value.message


def test_requirements_pin_must_be_the_models_version(artifacts_copy):
    directory = artifacts_copy(requirements=requirements_text("1.5.2"))
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, env=ENV)
    assert (f"pins scikit-learn==1.5.2, but model.joblib was saved with scikit-learn "
            f"{sklearn.__version__}") in problems_of(caught)


def _saved_with(version: str, monkeypatch):
    """A model pickled as if by scikit-learn `version` (its pickles record the version)."""
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", version)
        model = logistic_pipeline()
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"model-{version}-{os.getpid()}")
        joblib.dump(model, path)
    data = open(path, "rb").read()
    os.unlink(path)
    return data


def test_the_saved_version_is_read_from_the_pickle(artifacts_copy, monkeypatch):
    directory = artifacts_copy(model_bytes=_saved_with("1.5.2", monkeypatch))
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, env=ENV)
    assert (f"pins scikit-learn=={sklearn.__version__}, but model.joblib was saved with "
            "scikit-learn 1.5.2") in problems_of(caught)


def test_matching_an_older_pin_passes_with_a_warning(artifacts_copy, monkeypatch):
    directory = artifacts_copy(model_bytes=_saved_with("1.5.2", monkeypatch),
                               requirements=requirements_text("1.5.2"))
    report = run_preflight(directory, env=ENV)
    assert report.sklearn_pin == report.model.saved_sklearn_version == "1.5.2"
    assert "saved with scikit-learn 1.5.2 but this tool runs" in report.warnings[0]


def test_class_labels_must_have_one_label_per_class(good_artifacts):
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(good_artifacts, class_labels=["a", "b", "c"], env=ENV)
    assert "CLASS_LABELS: has 3 label(s) (a,b,c) but the model has 2 classes" in \
        problems_of(caught)


def test_a_handler_that_raises_is_named_with_its_line(artifacts_copy):
    inference = INFERENCE.replace(
        "def predict_fn(data: Any, model: Any) -> dict[str, Any]:\n",
        "def predict_fn(data: Any, model: Any) -> dict[str, Any]:\n"
        "    raise RuntimeError('model server out of coffee')\n")
    assert inference != INFERENCE
    directory = artifacts_copy(inference=inference)
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, env=ENV)
    text = problems_of(caught)
    assert "the smoke run failed in predict_fn (inference.py, line" in text
    assert "RuntimeError: model server out of coffee" in text


def test_an_inference_py_that_fails_to_import(artifacts_copy):
    inference = INFERENCE.replace("import io\n", "import io\nimport not_a_real_module_xyz\n", 1)
    directory = artifacts_copy(inference=inference)
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, env=ENV)
    assert "failed in import (inference.py, line " in problems_of(caught)
    assert "ModuleNotFoundError: No module named 'not_a_real_module_xyz'" in problems_of(caught)


def test_an_answer_that_breaks_the_contract(artifacts_copy):
    inference = INFERENCE.replace('"probabilities": probabilities,',
                                  '"probabilities": probabilities * 0.5,')
    assert inference != INFERENCE
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(artifacts_copy(inference=inference), env=ENV)
    text = problems_of(caught)
    assert "answer breaks the inference contract" in text and "sum to 0.5" in text


def test_a_hanging_handler_is_stopped_at_the_deadline(artifacts_copy):
    marker = "deploy-model-test-hang-9f3b"
    # model_fn starts a grandchild (as a pickle or handler might) and then hangs.
    inference = INFERENCE.replace(
        "def model_fn(model_dir: str) -> LoadedModel:\n",
        "def model_fn(model_dir: str) -> LoadedModel:\n"
        "    import subprocess, sys, time\n"
        f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', {marker!r}])\n"
        "    time.sleep(120)\n")
    directory = artifacts_copy(inference=inference)
    started = time.monotonic()
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, timeout=4, env=ENV)
    assert time.monotonic() - started < 30
    assert "did not finish within 4 s" in problems_of(caught)
    assert "--preflight-timeout" in problems_of(caught)
    assert _all_gone(marker)  # the whole process group was stopped


def test_processes_left_by_the_handlers_are_stopped(artifacts_copy):
    marker = "deploy-model-test-orphan-5c1d"
    inference = INFERENCE.replace(
        "def model_fn(model_dir: str) -> LoadedModel:\n",
        "def model_fn(model_dir: str) -> LoadedModel:\n"
        "    import subprocess, sys\n"
        f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', {marker!r}],\n"
        "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n")
    report = run_preflight(artifacts_copy(inference=inference), env=ENV)
    assert len(report.response["predictions"]) == 5
    assert _all_gone(marker)


class _ExitOnLoad:
    def __reduce__(self):
        return (os._exit, (3,))


def test_a_pickle_that_kills_its_process(artifacts_copy):
    directory = artifacts_copy(model_bytes=pickle.dumps(_ExitOnLoad()))
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, env=ENV)
    assert "the process loading the model died (exit code 3)" in problems_of(caught)


def test_secrets_do_not_reach_the_users_code(artifacts_copy, tmp_path):
    seen = tmp_path / "seen-env.json"
    inference = INFERENCE.replace(
        "def model_fn(model_dir: str) -> LoadedModel:\n",
        "def model_fn(model_dir: str) -> LoadedModel:\n"
        f"    open({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))\n")
    env = {**ENV, "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "t0ken",
           "AWS_REGION": "ca-central-1"}
    run_preflight(artifacts_copy(inference=inference), env=env)
    child_env = json.loads(seen.read_text())
    assert "AWS_SECRET_ACCESS_KEY" not in child_env and "AWS_SESSION_TOKEN" not in child_env
    assert child_env["AWS_REGION"] == "ca-central-1"
    assert child_env["SAGEMAKER_PROGRAM"] == "inference.py"


def _all_gone(text: str, within: float = 5.0) -> bool:
    """No live process names `text` (SIGKILL is delivered asynchronously: allow a moment)."""
    deadline = time.monotonic() + within
    while _processes_running(text):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _processes_running(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if text.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("requirements", ["scikit-learn>=1.5\n", "numpy\n"])
def test_requirements_hints_name_the_version_the_model_was_saved_with(artifacts_copy,
                                                                      requirements):
    import sklearn

    directory = artifacts_copy(requirements=requirements)
    with pytest.raises(PreflightFailed) as caught:
        run_preflight(directory, env=ENV)
    text = problems_of(caught)
    assert f"scikit-learn=={sklearn.__version__}" in text  # the test model is saved with this one
    assert "<version the model was saved with>" not in text
