"""package-model.py's settings: flag > env var > default, and every problem reported at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modules import package_settings
from modules.package_settings import parse_class_labels, settings_from_args
from tests.conftest import ACCOUNT_ENV, REPO_ROOT, load_script
from utils import output
from utils.errors import ValidationError

SCRIPT = load_script("utils/package-model.py")


def settings(argv=(), env=None):
    env = dict(ACCOUNT_ENV) if env is None else env
    parser = SCRIPT.build_parser()
    args = parser.parse_with_env(list(argv), env)
    return settings_from_args(args, env, parser.value_sources)


def test_defaults_are_the_originals():
    s = settings()
    assert (s.stack, s.repo_name, s.branch) == ("plmscw", "dev", "inference-data")
    assert s.group_name == "PLMSCWInferenceModelGroup" and s.instance_type == "ml.c5.2xlarge"
    assert s.artifacts_dir == REPO_ROOT / "artifacts"
    assert s.output_file is None and s.image_uri is None and s.sklearn_image_version is None
    assert s.preflight_timeout == 60.0 and s.class_labels is None and s.sample_data is None
    assert s.region == "ca-central-1" and s.account == "123456789012"


# parser dest -> (flag, env var, flag value, env value, settings field, default as settings holds it)
FLAGS = {
    "stack": ("-s", "STACK", "teststack", "envstack", "stack", "plmscw"),
    "instance_type": ("-t", "INSTANCE_TYPE", "ml.m5.large", "ml.c5.xlarge", "instance_type",
                      "ml.c5.2xlarge"),
    "model_package_group_name": ("-g", "MODEL_PACKAGE_GROUP_NAME", "FlagGroup", "EnvGroup",
                                 "group_name", "PLMSCWInferenceModelGroup"),
    "repo_name": ("--repo-name", "REPO_NAME", "prod", "staging", "repo_name", "dev"),
    "import_branch_name": ("--import-branch-name", "IMPORT_BRANCH_NAME", "feature/x",
                           "inference-v2", "branch", "inference-data"),
    "output_file": ("-o", "MODEL_ARN_FILE", "/tmp/flag-arn.txt", "/tmp/env-arn.txt",
                    "output_file", None),
    "artifacts_dir": ("--artifacts-dir", "ARTIFACTS_DIR", "/flag/artifacts", "/env/artifacts",
                      "artifacts_dir", REPO_ROOT / "artifacts"),
    "image_uri": ("--image-uri", "IMAGE_URI", "docker.io/a/b:1", "docker.io/a/b:2", "image_uri",
                  None),
    "sklearn_image_version": ("--sklearn-image-version", "SKLEARN_IMAGE_VERSION", "1.2-1",
                              "1.0-1", "sklearn_image_version", None),
    "sample_data": ("--sample-data", "SAMPLE_DATA", "/flag.json", "/env.json", "sample_data",
                    None),
    "class_labels": ("--class-labels", "CLASS_LABELS", "ok,bad", "good,poor", "class_labels",
                     None),
    "preflight_timeout": ("--preflight-timeout", "PREFLIGHT_TIMEOUT", "5", "7",
                          "preflight_timeout", 60.0),
}
_AS_SETTINGS = {"output_file": Path, "artifacts_dir": Path, "sample_data": Path,
                "class_labels": lambda raw: raw.split(","), "preflight_timeout": float}


# on/off options: parser dest -> (flag, env var, settings field)
SWITCHES = {"dry_run": ("--dry-run", "DRY_RUN", "dry_run")}


def test_every_option_has_a_flag_an_env_var_and_a_precedence_test():
    options = {option.dest: option.env for option in SCRIPT.build_parser()._env_options}
    assert options == {**{dest: spec[1] for dest, spec in FLAGS.items()},
                       **{dest: spec[1] for dest, spec in SWITCHES.items()}}


@pytest.mark.parametrize("dest", sorted(SWITCHES))
def test_switch_flag_or_env_var_turns_it_on(dest):
    flag, env_name, field = SWITCHES[dest]
    assert getattr(settings([]), field) is False
    assert getattr(settings([], {**ACCOUNT_ENV, env_name: "1"}), field) is True
    assert getattr(settings([], {**ACCOUNT_ENV, env_name: "0"}), field) is False
    assert getattr(settings([flag], {**ACCOUNT_ENV, env_name: "0"}), field) is True


@pytest.mark.parametrize("dest", sorted(FLAGS))
def test_flag_beats_env_var_beats_default(dest):
    flag, env_name, flag_value, env_value, field, default = FLAGS[dest]
    convert = _AS_SETTINGS.get(dest, str)
    env = {**ACCOUNT_ENV, env_name: env_value}
    assert getattr(settings([]), field) == default
    assert getattr(settings([], env), field) == convert(env_value)
    assert getattr(settings([flag, flag_value], env), field) == convert(flag_value)


def test_all_missing_env_vars_are_reported_at_once():
    with pytest.raises(ValidationError) as caught:
        settings([], {})
    text = "\n".join(caught.value.details)
    for name in ("AWS_REGION", "AWS_ACCOUNT", "DATA_BUCKET", "AI_INPUT_QUEUE_URL",
                 "SAGEMAKER_EXECUTION_ROLE_ARN"):
        assert f"- {name}: " in text
    assert caught.value.exit_code == 2


def test_env_and_flag_problems_come_together():
    env = {**ACCOUNT_ENV, "AWS_ACCOUNT": "12345", "AI_INPUT_QUEUE_URL": "http://localhost/q"}
    with pytest.raises(ValidationError) as caught:
        settings(["-s", "Bad_Stack", "-g", "bad_group", "--repo-name", "../etc",
                  "--import-branch-name", "a b", "-t", "ml.c5.huge"], env)
    text = "\n".join(caught.value.details)
    assert "AWS_ACCOUNT='12345' must be a 12-digit AWS account ID" in text
    assert "AI_INPUT_QUEUE_URL='http://localhost/q' must be an SQS queue URL" in text
    assert "--stack 'Bad_Stack'" in text
    assert "--model-package-group-name 'bad_group'" in text
    assert "--repo-name '../etc'" in text and "--import-branch-name 'a b'" in text
    assert "--instance-type: Invalid instance type: 'ml.c5.huge' is not a SageMaker" in text


def test_unknown_instance_type_gets_suggestions():
    [problem] = package_settings.instance_type_problems("ml.c5.2xlarg")
    assert "Did you mean ml.c5.2xlarge" in problem


def test_instance_type_must_start_with_ml():
    [problem] = package_settings.instance_type_problems("c5.2xlarge")
    assert "Invalid instance type: 'c5.2xlarge' must start with 'ml.'" in problem


def test_local_instance_type_is_ignored_saying_so(capsys):
    s = settings(["-t", "local"])
    assert s.instance_type == "ml.c5.2xlarge"
    assert any("'local' is for serving on this machine" in note for note in s.notes)


def test_gpu_instance_type_warns():
    s = settings(["-t", "ml.g5.xlarge"])
    assert s.instance_type == "ml.g5.xlarge"
    assert "GPU/accelerator" in s.warnings[0]


def test_output_file_directory_must_exist(tmp_path):
    with pytest.raises(ValidationError) as caught:
        settings(["-o", str(tmp_path / "missing" / "arn.txt")])
    assert "does not exist" in "\n".join(caught.value.details)
    with pytest.raises(ValidationError) as caught:
        settings(["-o", str(tmp_path)])
    assert "is a directory" in "\n".join(caught.value.details)


def test_image_uri_and_sklearn_version_exclude_each_other():
    with pytest.raises(ValidationError) as caught:
        settings(["--image-uri", "docker.io/a/b:1", "--sklearn-image-version", "1.2-1"])
    assert "both given (as flags)" in "\n".join(caught.value.details)
    env = {**ACCOUNT_ENV, "IMAGE_URI": "docker.io/a/b:1", "SKLEARN_IMAGE_VERSION": "1.2-1"}
    with pytest.raises(ValidationError) as caught:
        settings([], env)
    assert "both given (as environment variables)" in "\n".join(caught.value.details)


def test_a_flag_beats_the_other_options_env_var():
    env = {**ACCOUNT_ENV, "IMAGE_URI": "docker.io/a/b:1"}
    s = settings(["--sklearn-image-version", "1.2-1"], env)
    assert (s.image_uri, s.sklearn_image_version) == (None, "1.2-1")
    assert "ignoring IMAGE_URI" in s.notes[0]
    env = {**ACCOUNT_ENV, "SKLEARN_IMAGE_VERSION": "1.2-1"}
    s = settings(["--image-uri", "docker.io/a/b:1"], env)
    assert (s.image_uri, s.sklearn_image_version) == ("docker.io/a/b:1", None)


@pytest.mark.parametrize("raw, expected", [
    (None, None), ("", None), ("qc_pass,qc_fail", ["qc_pass", "qc_fail"]),
    (" ok , not ok ", ["ok", "not ok"]),
])
def test_class_labels(raw, expected):
    assert parse_class_labels(raw) == (expected, [])


@pytest.mark.parametrize("raw", ["a,,b", "a,a", ","])
def test_bad_class_labels(raw):
    labels, [problem] = parse_class_labels(raw)
    assert labels is None and "--class-labels" in problem


def test_class_labels_from_env():
    assert settings([], {**ACCOUNT_ENV, "CLASS_LABELS": "ok,bad"}).class_labels == ["ok", "bad"]


def test_region_falls_back_to_aws_default_region():
    env = {k: v for k, v in ACCOUNT_ENV.items() if k != "AWS_REGION"}
    assert settings([], {**env, "AWS_DEFAULT_REGION": "ca-central-1"}).region == "ca-central-1"


def test_print_settings_masks_secrets_and_shows_the_image(capsys):
    env = {**ACCOUNT_ENV, "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
           "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEXAMPLE", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}
    output.configure_output(json_mode=False, env=env)
    package_settings.print_settings(settings([], env), env)
    out = capsys.readouterr().out
    assert "wJalrXUtnFEMI" not in out and "IQoJb3JpZ2luX2Vj" not in out and "AKIAEXAMPLE" not in out
    assert "AWS_SECRET_ACCESS_KEY" in out and "****" in out
    assert "123456789012.dkr.ecr.ca-central-1.amazonaws.com/plmscw-inference:latest" in out


@pytest.mark.parametrize("argv, expected", [
    (["--image-uri", "123456789012.dkr.ecr.us-west-2.amazonaws.com/qc:latest"],
     "The image is in ECR in us-west-2, but the package is for ca-central-1"),
    (["--image-uri", "has space:1"], "Invalid image URI"),
    (["--sklearn-image-version", "latest"], "Invalid scikit-learn image version: 'latest'"),
])
def test_image_problems_are_found_before_any_work(argv, expected):
    with pytest.raises(ValidationError) as caught:
        settings(argv)
    assert expected in "\n".join(caught.value.details)


def test_output_file_directory_must_be_writable(tmp_path, monkeypatch):
    # Permission bits do not stop root (the test may run as root): ask os.access's answer.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path
                        else real_access(path, mode))
    with pytest.raises(ValidationError) as caught:
        settings(["-o", str(tmp_path / "arn.txt")])
    assert f"directory {str(tmp_path)!r} is not writable" in "\n".join(caught.value.details)
