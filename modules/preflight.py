"""Artifact pre-flight: catch a bad model in seconds, before anything is uploaded or registered.

Checks, in order (independent problems are reported together):
1. the artifacts directory holds model.joblib, inference.py and requirements.txt;
2. inference.py defines model_fn, input_fn, predict_fn and output_fn (read with `ast`: the user's
   code is never imported into this process); requirements.txt parses and pins scikit-learn;
   the --sample-data file, when given, is a valid request;
3. in a child process with a deadline (model.joblib is a pickle): the model loads and is a fitted
   scikit-learn linear classifier with predict_proba and n_features_in_; CLASS_LABELS has one
   label per class; requirements.txt pins the scikit-learn version the model was saved with;
4. a smoke run in that child: the four handlers answer the sample rows (or generated rows of the
   model's width) and the answer follows the inference contract (utils/contract.py).

Every failure names the file, what is wrong and what to do, and raises ValidationError (exit 2).
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modules.bundle_artifacts import HANDLER_FILE, MODEL_FILE, REQUIREMENTS_FILE
from utils import contract
from utils.env_validation import is_secret
from utils.errors import ValidationError, venv_hint

REQUIRED_FILES = (MODEL_FILE, HANDLER_FILE, REQUIREMENTS_FILE)
# handler -> the positional arguments the serving container passes
HANDLER_ARITY = {"model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2}
DEFAULT_TIMEOUT = 60.0
GENERATED_ROWS = 5
CHILD_SCRIPT = Path(__file__).with_name("_preflight_child.py")
LINEAR_EXAMPLES = ("LogisticRegression, SGDClassifier(loss='log_loss'), "
                   "SVC(kernel='linear', probability=True) or CalibratedClassifierCV(LinearSVC())")


# Stands for the version in hints written before the model is loaded; replaced by the real one
# (the model's own scikit-learn) once the child has loaded it.
SAVED_VERSION = "<version the model was saved with>"


@dataclass(frozen=True)
class Problem:
    file: Path | str
    what: str
    todo: str

    def lines(self) -> list[str]:
        return [f"{self.file}: {self.what}", f"  -> {self.todo}"]


@dataclass(frozen=True)
class ModelFacts:
    estimator: str
    final_estimator: str
    linear: str
    n_features: int
    classes: list[str]
    saved_sklearn_version: str
    sklearn_version_here: str


@dataclass(frozen=True)
class PreflightReport:
    model: ModelFacts
    sklearn_pin: str
    rows_source: str
    rows: list[list[float]]
    response: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


class PreflightFailed(ValidationError):
    """One or more artifact problems; nothing has been uploaded or registered."""

    def __init__(self, problems: list[Problem], artifacts_dir: Path) -> None:
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        details = [line for problem in problems for line in problem.lines()]
        super().__init__(f"Pre-flight check of the model artifacts in {artifacts_dir} failed "
                         f"({count})", details=details,
                         hint="Nothing was uploaded or registered. Fix the above and run again.")
        self.problems = problems


# --- step 1: files -------------------------------------------------------------------------------

def check_artifact_files(artifacts_dir: Path) -> dict[str, Path]:
    """The three artifact paths; all missing ones reported at once."""
    if not artifacts_dir.is_dir():
        raise PreflightFailed([Problem(artifacts_dir, "the artifacts directory does not exist",
                                       "Pass --artifacts-dir DIR (or set ARTIFACTS_DIR) to a "
                                       "directory holding " + ", ".join(REQUIRED_FILES) + ".")],
                              artifacts_dir)
    paths = {name: artifacts_dir / name for name in REQUIRED_FILES}
    problems = [Problem(path, "file not found", _missing_file_todo(name))
                for name, path in paths.items() if not path.is_file()]
    if problems:
        raise PreflightFailed(problems, artifacts_dir)
    return paths


def _missing_file_todo(name: str) -> str:
    return {
        MODEL_FILE: "Save the trained model with joblib.dump(model, 'model.joblib') "
                    "(see artifacts/train_model.py).",
        HANDLER_FILE: "Add the SageMaker handlers (copy artifacts/inference.py as a start).",
        REQUIREMENTS_FILE: "Add a requirements.txt pinning scikit-learn==<the version you "
                           "trained with>.",
    }[name]


# --- step 2: static checks -----------------------------------------------------------------------

def handler_problems(path: Path) -> list[Problem]:
    """Missing or mis-declared handlers in inference.py, found by parsing (never importing) it."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        return [Problem(path, f"syntax error on line {exc.lineno}: {exc.msg}",
                        "Fix the syntax (python -m py_compile inference.py shows it).")]
    except (OSError, ValueError) as exc:
        return [Problem(path, f"cannot be read as Python source: {exc}",
                        "Save it as UTF-8 Python source.")]
    definitions = _top_level_names(tree.body)
    problems = []
    missing = [name for name in HANDLER_ARITY if name not in definitions]
    if missing:
        problems.append(Problem(path, f"does not define {', '.join(missing)}",
                                "Define all four handlers at module level: model_fn(model_dir), "
                                "input_fn(body, content_type), predict_fn(data, model), "
                                "output_fn(prediction, accept)."))
    for name, arity in HANDLER_ARITY.items():
        problem = _signature_problem(definitions.get(name), name, arity)
        if problem:
            problems.append(Problem(path, problem, "The serving container calls it as "
                                    f"{name}({_ARGS[name]}): make the signature accept that."))
    return problems


_ARGS = {"model_fn": "model_dir", "input_fn": "body, content_type", "predict_fn": "data, model",
         "output_fn": "prediction, accept"}


def _top_level_names(body: list[ast.stmt]) -> dict[str, ast.AST | None]:
    """Names bound at module level (defs, assignments, imports; also inside if/try/with)."""
    names: dict[str, ast.AST | None] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update({t.id: None for t in targets if isinstance(t, ast.Name)})
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update({(a.asname or a.name).split(".")[0]: None for a in node.names})
        for block in ("body", "orelse", "finalbody", "handlers"):
            if isinstance(node, (ast.If, ast.Try, ast.With)) and hasattr(node, block):
                inner = getattr(node, block)
                if block == "handlers":
                    inner = [stmt for handler in inner for stmt in handler.body]
                names.update(_top_level_names(inner))
    return names


def _signature_problem(node: ast.AST | None, name: str, arity: int) -> str | None:
    if isinstance(node, ast.AsyncFunctionDef):
        return f"{name} is 'async def'; the container calls it synchronously"
    if not isinstance(node, ast.FunctionDef):
        return None  # bound some other way: trust it, the smoke run will call it
    args = node.args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    if required > arity or (positional < arity and args.vararg is None):
        return f"{name} takes {positional} positional argument(s), the container passes {arity}"
    return None


def parse_sklearn_pin(path: Path) -> tuple[str | None, list[Problem]]:
    """The exact scikit-learn version requirements.txt pins, or problems saying why there is none."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins: list[str] = []
    problems: list[Problem] = []
    for number, line in _requirement_lines(path):
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            problems.append(Problem(path, f"line {number} is not a valid requirement: {exc}",
                                    "Use pip's format, e.g. scikit-learn==1.9.1."))
            continue
        name = canonicalize_name(requirement.name)
        if name == "sklearn":
            problems.append(Problem(path, f"line {number} names 'sklearn', a deprecated "
                                    "placeholder package", "Name the real package: "
                                    "scikit-learn==<version>."))
        elif name == "scikit-learn":
            pin = _exact_version(requirement)
            if pin is None:
                problems.append(Problem(path, f"line {number}: '{line}' does not pin one exact "
                                        "scikit-learn version", "Pin it exactly "
                                        "(scikit-learn==" + SAVED_VERSION + "): a "
                                        "pickled model only loads reliably on that version."))
            else:
                pins.append(pin)
    if not pins and not problems:
        problems.append(Problem(path, "does not list scikit-learn",
                                "Add scikit-learn==" + SAVED_VERSION + "."))
    if len(set(pins)) > 1:
        problems.append(Problem(path, f"pins scikit-learn more than once ({', '.join(pins)})",
                                "Keep one scikit-learn line."))
    return (pins[0] if pins and not problems else None), problems


def _requirement_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, requirement) pairs: comments, blanks and pip options skipped."""
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(),
                                 start=1):
        text = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        text, pending = (pending + text).strip(), ""
        if text and not text.startswith("-"):
            lines.append((start, text))
    return lines


def _exact_version(requirement: Any) -> str | None:
    specifiers = list(requirement.specifier)
    if requirement.url or len(specifiers) != 1:
        return None
    spec = specifiers[0]
    if spec.operator not in ("==", "===") or "*" in spec.version:
        return None
    return spec.version


def load_sample_rows(path: Path) -> tuple[list[list[float]] | None, list[Problem]]:
    """The rows of a --sample-data file (a contract request), or why they cannot be used."""
    todo = 'Give a JSON file like {"data": [[1.0, 2.0, 3.0]]} with rows of the model\'s features.'
    if not path.is_file():
        return None, [Problem(path, "sample data file not found", todo)]
    try:
        body = path.read_bytes()
        contract.check_payload_size(body, source=str(path))
        rows = contract.validate_request(contract.parse_json_text(body.decode("utf-8"), str(path)),
                                         source=str(path))
    except ValidationError as exc:
        return None, [Problem(path, exc.message, " ".join(exc.hints) or todo)]
    except UnicodeDecodeError:
        return None, [Problem(path, "is not UTF-8 text", todo)]
    return rows, []


# --- step 3 and 4: the child process -------------------------------------------------------------

def run_child(artifacts_dir: Path, *, rows: list[list[float]] | None, smoke: bool,
              class_labels: list[str] | None, timeout: float,
              env: Mapping[str, str]) -> dict[str, Any]:
    """Load the model (and run the handlers) in a child process, killed after `timeout` seconds."""
    with tempfile.TemporaryDirectory(prefix="deploy-model-preflight-") as scratch:
        request_path, result_path = Path(scratch, "request.json"), Path(scratch, "result.json")
        request_path.write_text(json.dumps({
            "model_dir": str(artifacts_dir), "code_dir": str(artifacts_dir),
            "program": HANDLER_FILE, "rows": rows, "generated_rows": GENERATED_ROWS,
            "smoke": smoke}))
        try:
            completed = _run_with_deadline(
                [sys.executable, str(CHILD_SCRIPT), str(request_path), str(result_path)],
                child_env(env, artifacts_dir, class_labels), timeout, cwd=scratch)
        except subprocess.TimeoutExpired:
            raise PreflightFailed([Problem(
                artifacts_dir / MODEL_FILE,
                f"loading the model{' and running the handlers' if smoke else ''} did not finish "
                f"within {timeout:g} s", "Check that model.joblib is not huge and that the "
                "handlers do not block (network, input()); or raise the limit with "
                "--preflight-timeout.")], artifacts_dir) from None
        try:
            return json.loads(result_path.read_text())
        except (OSError, ValueError):  # no result, or half of one: the child died
            raise _child_crashed(artifacts_dir, completed) from None


def child_env(env: Mapping[str, str], artifacts_dir: Path,
              class_labels: list[str] | None) -> dict[str, str]:
    """The child's environment: the caller's, minus secrets (the smoke run needs no AWS access),
    plus what the serving container would set."""
    child = {key: value for key, value in env.items() if not is_secret(key)}
    child.update({"SAGEMAKER_PROGRAM": HANDLER_FILE,
                  "SAGEMAKER_SUBMIT_DIRECTORY": str(artifacts_dir),
                  "PYTHONDONTWRITEBYTECODE": "1"})
    child.pop("CLASS_LABELS", None)
    if class_labels:
        child["CLASS_LABELS"] = ",".join(class_labels)
    return child


def _run_with_deadline(command: list[str], env: dict[str, str], timeout: float,
                       cwd: str) -> subprocess.CompletedProcess:
    # Own process group, so a timeout or Ctrl-C also ends anything the pickle or handlers started.
    process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               errors="replace", start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        _kill_group(process)  # always: the pickle or the handlers may have started processes
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    process.wait()


def _child_crashed(artifacts_dir: Path, completed: subprocess.CompletedProcess) -> PreflightFailed:
    tail = (completed.stderr or "").strip().splitlines()[-5:]
    return PreflightFailed([Problem(
        artifacts_dir / MODEL_FILE, f"the process loading the model died (exit code "
        f"{completed.returncode}){': ' + ' | '.join(tail) if tail else ''}",
        "Check that model.joblib is a joblib file written by scikit-learn and that it does not "
        "exhaust memory.")], artifacts_dir)


# --- judging what the child found ----------------------------------------------------------------

def model_problems(result: dict[str, Any], model_path: Path,
                   class_labels: list[str] | None) -> list[Problem]:
    load = result.get("load") or {}
    if not load.get("ok"):
        error = str(load.get("error", "unknown error"))
        if "No module named 'sklearn'" in error or "No module named 'joblib'" in error:
            return [Problem(model_path, f"cannot be loaded in this Python: {error}", venv_hint())]
        return [Problem(model_path, f"cannot be loaded: {error}",
                        "Re-save it with joblib.dump(model, 'model.joblib') using the "
                        "scikit-learn version you pin in requirements.txt.")]
    facts = result.get("model") or {"error": "no description"}
    if "error" in facts:
        return [Problem(model_path, f"loads, but cannot be inspected: {facts['error']}",
                        "Save a fitted scikit-learn estimator (or Pipeline) with joblib.dump.")]
    estimator = facts["final_estimator"].rsplit(".", 1)[-1]
    problems = []
    if not facts["linear"]:
        problems.append(Problem(model_path, f"{facts['final_estimator']} is not a linear "
                                "classifier", f"Train a linear model from sklearn.linear_model "
                                f"or a linear SVM, e.g. {LINEAR_EXAMPLES}."))
    if not facts["classifier"]:
        problems.append(Problem(model_path, f"{estimator} is not a classifier", "Use a "
                                f"classifier (the contract returns class probabilities), e.g. "
                                f"{LINEAR_EXAMPLES}."))
    elif not facts["predict_proba"]:
        problems.append(Problem(model_path, f"{estimator} has no predict_proba",
                                "The contract returns probabilities: use e.g. LogisticRegression, "
                                "SGDClassifier(loss='log_loss') or CalibratedClassifierCV."))
    if facts["classifier"] and (not facts["n_features"] or not facts["classes"]):
        problems.append(Problem(model_path, f"{estimator} is not fitted (no n_features_in_ or "
                                "classes_)", "Fit the model before saving it."))
    if class_labels is not None and facts["classes"] and \
            len(class_labels) != len(facts["classes"]):
        problems.append(Problem("CLASS_LABELS", f"has {len(class_labels)} label(s) "
                                f"({','.join(class_labels)}) but the model has "
                                f"{len(facts['classes'])} classes ({', '.join(facts['classes'])})",
                                "Give one label per class, in the order of the model's classes_."))
    return problems


def name_saved_version(problems: list[Problem], result: dict[str, Any]) -> list[Problem]:
    """Hints that say 'pin the version the model was saved with' name it, once it is known."""
    if not (result.get("load") or {}).get("ok") or "error" in (result.get("model") or {"error": 1}):
        return problems
    saved = saved_sklearn_version(result)
    return [Problem(p.file, p.what, p.todo.replace(SAVED_VERSION, saved)) for p in problems]


def saved_sklearn_version(result: dict[str, Any]) -> str:
    """The scikit-learn version the model was pickled with (no warning on load: this one's)."""
    saved = result["load"].get("saved_sklearn_versions") or []
    return saved[0] if len(saved) == 1 else (", ".join(saved) if saved
                                             else result["model"]["sklearn_version_here"])


def pin_problems(pin: str, saved: str, requirements_path: Path) -> list[Problem]:
    from packaging.version import InvalidVersion, Version

    try:
        same = Version(pin) == Version(saved)
    except InvalidVersion:
        same = pin == saved
    if same:
        return []
    return [Problem(requirements_path, f"pins scikit-learn=={pin}, but model.joblib was saved "
                    f"with scikit-learn {saved}", f"Pin scikit-learn=={saved} (the version the "
                    f"serving container must run), or retrain and save the model with scikit-learn "
                    f"{pin}.")]


def smoke_problems(result: dict[str, Any], paths: dict[str, Path],
                   labels: list[str] | None) -> list[Problem]:
    smoke = result.get("smoke")
    if smoke is None:
        return [Problem(paths[HANDLER_FILE], "the smoke run did not happen",
                        "Re-run; if it persists, report it as a bug.")]
    if not smoke["ok"]:
        where = f" ({smoke['location']})" if smoke.get("location") else ""
        return [Problem(paths[HANDLER_FILE], f"the smoke run failed in {smoke['stage']}{where}: "
                        f"{smoke['error']}", "Fix the handler so it answers "
                        '{"data": [[...]]} requests (application/json).')]
    found = contract.response_problems(smoke["response"], len(smoke["rows"]), labels)
    return [Problem(paths[HANDLER_FILE], f"the smoke run's answer breaks the inference contract: "
                    f"{problem}", "Return predictions, probabilities, class_indices and "
                    "confidence_scores, one entry per row (see the README).") for problem in found]


# --- the whole pre-flight ------------------------------------------------------------------------

def run_preflight(artifacts_dir: Path, *, class_labels: list[str] | None = None,
                  sample_data: Path | None = None, timeout: float = DEFAULT_TIMEOUT,
                  env: Mapping[str, str]) -> PreflightReport:
    """All the checks above; raises PreflightFailed listing every problem found."""
    artifacts_dir = Path(artifacts_dir).resolve() if Path(artifacts_dir).exists() \
        else Path(artifacts_dir)
    paths = check_artifact_files(artifacts_dir)
    problems = handler_problems(paths[HANDLER_FILE])
    pin, pin_issues = parse_sklearn_pin(paths[REQUIREMENTS_FILE])
    problems += pin_issues
    rows = None
    if sample_data is not None:
        rows, sample_issues = load_sample_rows(Path(sample_data))
        problems += sample_issues
    result = run_child(artifacts_dir, rows=rows, smoke=not problems, class_labels=class_labels,
                       timeout=timeout, env=env)
    problems = name_saved_version(problems, result)
    problems += model_problems(result, paths[MODEL_FILE], class_labels)
    if problems:
        raise PreflightFailed(problems, artifacts_dir)
    return _finish(result, paths, pin, rows, sample_data, class_labels, artifacts_dir)


def _finish(result: dict[str, Any], paths: dict[str, Path], pin: str,
            rows: list[list[float]] | None, sample_data: Path | None,
            class_labels: list[str] | None, artifacts_dir: Path) -> PreflightReport:
    facts = result["model"]
    saved = saved_sklearn_version(result)
    problems = pin_problems(pin, saved, paths[REQUIREMENTS_FILE])
    if rows is not None and len(rows[0]) != facts["n_features"]:
        problems.append(Problem(sample_data, f"rows have {len(rows[0])} features, the model "
                                f"expects {facts['n_features']}", "Give rows of "
                                f"{facts['n_features']} numbers each."))
    if not problems:
        problems = smoke_problems(result, paths, class_labels)
    if problems:
        raise PreflightFailed(problems, artifacts_dir)
    return PreflightReport(
        model=ModelFacts(facts["type"], facts["final_estimator"], facts["linear"],
                         facts["n_features"], facts["classes"], saved,
                         facts["sklearn_version_here"]),
        sklearn_pin=pin, rows_source=str(sample_data) if sample_data else "generated",
        rows=result["smoke"]["rows"], response=result["smoke"]["response"],
        warnings=_version_warnings(saved, facts["sklearn_version_here"]))


def _version_warnings(saved: str, here: str) -> list[str]:
    if saved == here:
        return []
    return [f"model.joblib was saved with scikit-learn {saved} but this tool runs {here}: the "
            f"smoke run used {here}; the container will install {saved}."]
