"""utils/package-model.py end to end against moto (in-process): main(argv, env), its output, its
exit codes, and what it leaves in S3 and the model registry."""
# ruff: noqa: F811 - fixtures imported from tests/packaging_support.py are test arguments

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from modules import bundle_package, upload_artifacts
from tests.conftest import ACCOUNT_ENV, REGION, REPO_ROOT, load_script
from tests.packaging_support import (  # noqa: F401
    BUCKET,
    DEFAULT_IMAGE,
    SECRET_VALUES,
    artifacts_copy,
    aws_account,
    bucket_keys,
    cached_preflight,
    create_bucket,
    good_artifacts,
    random_forest,
    registry_state,
)

SCRIPT = load_script("utils/package-model.py")
EMPTY = {"groups": [], "packages": []}


@pytest.fixture
def env(good_artifacts):
    return {**ACCOUNT_ENV, "ARTIFACTS_DIR": str(good_artifacts)}


@pytest.fixture
def package(capsys, cached_preflight, aws_account):
    """Run package-model's main(); returns (exit code, stdout, stderr)."""
    def run(argv=(), env=None):
        code = SCRIPT.main(list(argv), env)
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


def describe(sagemaker, arn):
    return sagemaker.describe_model_package(ModelPackageName=arn)


def test_first_run_bundles_uploads_registers_and_approves(package, env, aws_account, tmp_path):
    arn_file = tmp_path / "model_arn.txt"
    code, out, err = package(["--output-file", str(arn_file)], env)
    assert code == 0, err
    arn = arn_file.read_text().strip()
    assert arn_file.read_text() == arn + "\n"
    assert arn == ("arn:aws:sagemaker:ca-central-1:123456789012:model-package/"
                   "plmscwinferencemodelgroup/1")  # as moto returns it (lower-cased group)
    for text in ("SageMaker Model Packaging", "--- Configuration ---", "Pre-flight",
                 "Step 1/5: Bundling", "Step 2/5: Uploading", "Step 3/5: Model package group",
                 "Step 4/5: Registering", "Step 5/5: Approving", arn):
        assert text in out, text
    described = describe(aws_account["sagemaker"], arn)
    assert described["ModelApprovalStatus"] == "Approved"
    container = described["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == DEFAULT_IMAGE
    sha = container["Environment"]["MODEL_SHA256"]
    key = f"plmscw/dev/inference-data/models/{sha[:16]}/model.tar.gz"
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/{key}"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    # The model file's own digest, which the container checks before unpickling it.
    model_file = hashlib.sha256((Path(env["ARTIFACTS_DIR"]) / "model.joblib").read_bytes())
    assert container["Environment"]["MODEL_JOBLIB_SHA256"] == model_file.hexdigest()
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Environment"]["AI_INPUT_QUEUE_URL"] == ACCOUNT_ENV["AI_INPUT_QUEUE_URL"]
    assert "CLASS_LABELS" not in container["Environment"]
    spec = described["InferenceSpecification"]
    assert spec["SupportedRealtimeInferenceInstanceTypes"] == ["ml.c5.2xlarge"]
    assert "application/json" in spec["SupportedContentTypes"]
    assert sha in described["ModelPackageDescription"]
    s3 = aws_account["s3"]
    assert bucket_keys(s3) == [key]
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "AES256" and head["Metadata"]["sha256"] == sha
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha


def test_repackaging_unchanged_artifacts_is_idempotent(package, env, aws_account):
    first_code, first_out, _ = package(["--json"], env)
    first = json.loads(first_out)
    last_modified = aws_account["s3"].head_object(
        Bucket=BUCKET, Key=first["model_data_url"].split(f"{BUCKET}/", 1)[1])["LastModified"]
    code, out, err = package(["--json"], env)
    second = json.loads(out)
    assert (first_code, code) == (0, 0)
    assert second["model_package_arn"] == first["model_package_arn"]
    assert second["reused_existing_package"] and not second["uploaded"]
    assert first["uploaded"] and not first["reused_existing_package"]
    assert len(registry_state(aws_account["sagemaker"])["packages"]) == 1
    assert aws_account["s3"].head_object(
        Bucket=BUCKET, Key=first["model_data_url"].split(f"{BUCKET}/", 1)[1]
    )["LastModified"] == last_modified
    assert "Nothing to upload" in err and "re-using version 1" in err


def test_an_object_with_forged_metadata_at_the_key_is_replaced_by_the_bundle(package, env,
                                                                             aws_account):
    """The sha256 metadata can be set by anyone with PutObject; S3's own checksum decides."""
    first = json.loads(package(["--json"], env)[1])
    key = first["model_data_url"].split(f"{BUCKET}/", 1)[1]
    s3 = aws_account["s3"]
    bundle = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"not the model", ChecksumAlgorithm="SHA256",
                  Metadata={"sha256": first["sha256"]})
    code, out, err = package(["--json"], env)
    assert code == 0, err
    assert "Nothing to upload" not in err
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == bundle
    assert json.loads(out)["model_package_arn"] == first["model_package_arn"]


def test_a_pending_package_is_approved_on_repackaging(package, env, aws_account):
    arn = json.loads(package(["--json"], env)[1])["model_package_arn"]
    sagemaker = aws_account["sagemaker"]
    sagemaker.update_model_package(ModelPackageArn=arn,
                                   ModelApprovalStatus="PendingManualApproval")
    code, out, _ = package(["--json"], env)
    assert code == 0 and json.loads(out)["model_package_arn"] == arn
    assert describe(sagemaker, arn)["ModelApprovalStatus"] == "Approved"


def test_a_rejected_package_is_not_reapproved(package, env, aws_account):
    arn = json.loads(package(["--json"], env)[1])["model_package_arn"]
    sagemaker = aws_account["sagemaker"]
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    keys = bucket_keys(aws_account["s3"])
    code, out, err = package([], env)
    assert code == 2
    assert "was Rejected" in err and arn in err and "Traceback" not in err
    assert describe(sagemaker, arn)["ModelApprovalStatus"] == "Rejected"
    assert len(registry_state(sagemaker)["packages"]) == 1
    assert bucket_keys(aws_account["s3"]) == keys


def test_changed_settings_register_a_new_version(package, env, aws_account):
    first = json.loads(package(["--json"], env)[1])
    second = json.loads(package(["--json", "--class-labels", "ok,bad"], env)[1])
    assert second["model_package_version"] == 2 and not second["reused_existing_package"]
    assert not second["uploaded"]  # same bundle: the object is already there
    assert second["model_data_url"] == first["model_data_url"]
    assert second["environment"]["CLASS_LABELS"] == "ok,bad"


def test_json_mode_prints_exactly_one_document(package, env):
    code, out, err = package(["--json"], env)
    assert code == 0
    doc = json.loads(out)  # the whole of stdout is one JSON document
    assert doc["model_package_arn"].startswith("arn:aws:sagemaker:ca-central-1:123456789012:")
    assert doc["approval_status"] == "Approved" and doc["instance_type"] == "ml.c5.2xlarge"
    assert doc["model"]["n_features"] == 4 and doc["smoke_run"]["rows"] == 5
    assert "Step 1/5" in err and "Step 1/5" not in out


def test_json_mode_failure_is_one_error_document(package, env, aws_account):
    code, out, err = package(["--json"], {**env, "DATA_BUCKET": "no-such-bucket"})
    assert code == 3
    doc = json.loads(out)
    assert doc["exit_code"] == 3 and "does not exist" in doc["error"]
    assert "ERROR" in err


def test_all_missing_env_vars_at_once_and_nothing_touched(package, aws_account, capsys):
    code, out, err = package([], {})
    assert code == 2
    for name in ("AWS_REGION", "AWS_ACCOUNT", "DATA_BUCKET", "AI_INPUT_QUEUE_URL",
                 "SAGEMAKER_EXECUTION_ROLE_ARN"):
        assert name in err
    assert "Traceback" not in err + out
    assert registry_state(aws_account["sagemaker"]) == EMPTY
    assert bucket_keys(aws_account["s3"]) == []


def test_malformed_values_are_refused(package, env, aws_account):
    bad = {**env, "AWS_REGION": "mars-north-1", "SAGEMAKER_EXECUTION_ROLE_ARN": "role/x",
           "DATA_BUCKET": "Bad_Bucket"}
    code, out, err = package(["-g", "has_underscore"], bad)
    assert code == 2
    for text in ("AWS_REGION='mars-north-1'", "SAGEMAKER_EXECUTION_ROLE_ARN='role/x'",
                 "DATA_BUCKET='Bad_Bucket'", "--model-package-group-name 'has_underscore'"):
        assert text in err
    assert registry_state(aws_account["sagemaker"]) == EMPTY


def test_missing_artifacts_dir(package, env, aws_account, tmp_path):
    code, out, err = package(["--artifacts-dir", str(tmp_path / "nope")], env)
    assert code == 2
    assert f"{tmp_path / 'nope'}: the artifacts directory does not exist" in err
    assert registry_state(aws_account["sagemaker"]) == EMPTY and bucket_keys(aws_account["s3"]) == []


def test_missing_artifact_file(package, env, aws_account, artifacts_copy):
    directory = artifacts_copy()
    (directory / "requirements.txt").unlink()
    code, out, err = package(["--artifacts-dir", str(directory)], env)
    assert code == 2 and f"{directory / 'requirements.txt'}: file not found" in err
    assert registry_state(aws_account["sagemaker"]) == EMPTY and bucket_keys(aws_account["s3"]) == []


def test_preflight_failure_touches_nothing(package, env, aws_account, artifacts_copy):
    directory = artifacts_copy(model=random_forest())
    code, out, err = package(["--artifacts-dir", str(directory)], env)
    assert code == 2
    assert "RandomForestClassifier is not a linear classifier" in err
    assert "Nothing was uploaded or registered" in err and "Traceback" not in err
    assert registry_state(aws_account["sagemaker"]) == EMPTY and bucket_keys(aws_account["s3"]) == []


def test_missing_bucket(package, env, aws_account):
    code, out, err = package([], {**env, "DATA_BUCKET": "no-such-bucket"})
    assert code == 3
    assert "S3 bucket 'no-such-bucket' does not exist" in err
    assert "aws s3 mb s3://no-such-bucket --region ca-central-1" in err
    assert registry_state(aws_account["sagemaker"]) == EMPTY


def test_bucket_in_another_region(package, env, aws_account):
    import boto3

    create_bucket(boto3.client("s3", region_name="us-west-2"), "bucket-in-oregon", "us-west-2")
    code, out, err = package([], {**env, "DATA_BUCKET": "bucket-in-oregon"})
    assert code == 3
    assert "S3 bucket 'bucket-in-oregon' is in us-west-2, not in ca-central-1" in err
    assert registry_state(aws_account["sagemaker"]) == EMPTY


def test_missing_image_says_to_build_it(package, env, aws_account):
    code, out, err = package(["--stack", "otherstack"], env)
    assert code == 3
    assert ("Could not find image: 123456789012.dkr.ecr.ca-central-1.amazonaws.com/"
            "otherstack-inference:latest") in err
    assert "ECR repository 'otherstack-inference' does not exist" in err
    assert "artifacts/ecr-image-setup.sh" in err
    assert registry_state(aws_account["sagemaker"]) == EMPTY and bucket_keys(aws_account["s3"]) == []


def test_image_outside_the_account_is_not_checked(package, env, aws_account):
    image = "public.ecr.aws/acme/qc-serving:1.0"
    code, out, err = package(["--json", "--image-uri", image], env)
    assert code == 0, err
    arn = json.loads(out)["model_package_arn"]
    container = describe(aws_account["sagemaker"], arn)["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == image
    assert "not checked" in err


def test_prebuilt_sklearn_image(package, env, aws_account):
    code, out, err = package(["--json", "--sklearn-image-version", "1.9-0"], env)
    assert code == 0, err
    result = json.loads(out)
    assert result["image_uri"] == \
        "341280168497.dkr.ecr.ca-central-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    # The image pip-installs code/requirements.txt at start: nothing it has, no pins.
    key = result["model_data_url"].split(f"{BUCKET}/", 1)[1]
    archive = aws_account["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        requirements = tar.extractfile("code/requirements.txt").read().decode()
        assert tar.extractfile("code/inference.py").read() == \
            (Path(env["ARTIFACTS_DIR"]) / "inference.py").read_bytes()
    assert [line for line in requirements.splitlines() if not line.startswith("#")] == []
    assert "leaves out what it has or does not need: scikit-learn==" in err
    assert "answers 500, not 4xx, for bad input" in err
    assert result["sha256"] != json.loads(package(["--json"], env)[1])["sha256"]


def test_prebuilt_image_older_than_the_models_sklearn_is_refused(package, env, aws_account):
    # The test model is saved with this venv's scikit-learn (1.9.x); image 1.2-1 runs 1.2.
    code, out, err = package(["--sklearn-image-version", "1.2-1"], env)
    assert code == 2
    assert "newer than AWS's prebuilt scikit-learn image 1.2-1 (scikit-learn 1.2)" in err
    assert "--sklearn-image-version 1.9-0" in err and "Traceback" not in err
    assert registry_state(aws_account["sagemaker"]) == EMPTY and bucket_keys(aws_account["s3"]) == []


def test_flags_beat_env_vars_beat_defaults(package, env, aws_account, tmp_path):
    from tests.packaging_support import push_image

    push_image(aws_account["ecr"], "envstack-inference")
    push_image(aws_account["ecr"], "flagstack-inference")
    arn_file = tmp_path / "from-env.txt"
    env_vars = {**env, "STACK": "envstack", "REPO_NAME": "prod", "MODEL_ARN_FILE": str(arn_file),
                "MODEL_PACKAGE_GROUP_NAME": "EnvGroup", "INSTANCE_TYPE": "ml.m5.large"}
    by_env = json.loads(package(["--json"], env_vars)[1])
    assert by_env["model_data_url"].startswith(f"s3://{BUCKET}/envstack/prod/inference-data/")
    assert by_env["model_package_group_name"] == "EnvGroup"
    assert by_env["instance_type"] == "ml.m5.large" and arn_file.exists()
    by_flag = json.loads(package(["--json", "-s", "flagstack", "-g", "FlagGroup",
                                  "-t", "ml.c5.xlarge", "--repo-name", "qa"], env_vars)[1])
    assert by_flag["model_data_url"].startswith(f"s3://{BUCKET}/flagstack/qa/inference-data/")
    assert by_flag["model_package_group_name"] == "FlagGroup"
    assert by_flag["instance_type"] == "ml.c5.xlarge"


def test_local_instance_type_registers_the_default(package, env, aws_account):
    code, out, err = package(["--json", "-t", "local"], env)
    assert code == 0 and json.loads(out)["instance_type"] == "ml.c5.2xlarge"
    assert "'local' is for serving on this machine" in err


def test_failed_registration_removes_the_bundle_and_the_group(package, env, aws_account,
                                                              monkeypatch):
    def refuse(*args, **kwargs):
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad"}},
                          "CreateModelPackage")

    monkeypatch.setattr(bundle_package, "register_model_package", refuse)
    code, out, err = package([], env)
    assert code == 3 and "CreateModelPackage failed: ValidationException: bad" in err
    assert bucket_keys(aws_account["s3"]) == []
    assert registry_state(aws_account["sagemaker"]) == EMPTY


def test_failed_approval_leaves_nothing(package, env, aws_account, monkeypatch):
    def refuse(*args, **kwargs):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}},
                          "UpdateModelPackage")

    monkeypatch.setattr(bundle_package, "approve_model_package", refuse)
    code, out, err = package(["--json"], env)
    assert code == 3 and json.loads(out)["exit_code"] == 3
    assert aws_account["double"].calls["CreateModelPackage"] == 1  # registered, then removed
    assert bucket_keys(aws_account["s3"]) == []
    assert registry_state(aws_account["sagemaker"]) == EMPTY


def test_failed_registration_keeps_an_existing_group(package, env, aws_account, monkeypatch):
    aws_account["sagemaker"].create_model_package_group(
        ModelPackageGroupName="PLMSCWInferenceModelGroup")
    monkeypatch.setattr(bundle_package, "register_model_package",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    code, out, err = package([], env)
    assert code == 130
    assert registry_state(aws_account["sagemaker"]) == {
        "groups": ["PLMSCWInferenceModelGroup"], "packages": []}
    assert bucket_keys(aws_account["s3"]) == []


def test_ctrl_c_during_upload_leaves_nothing(package, env, aws_account, monkeypatch):
    real = upload_artifacts.upload_model_to_s3

    def upload_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(upload_artifacts, "upload_model_to_s3", upload_then_interrupt)
    code, out, err = package([], env)
    assert code == 130 and "Interrupted" in err
    assert bucket_keys(aws_account["s3"]) == []
    assert registry_state(aws_account["sagemaker"]) == EMPTY


def test_output_file_is_replaced_atomically(package, env, tmp_path):
    arn_file = tmp_path / "model_arn.txt"
    arn_file.write_text("stale\n")
    code, out, err = package(["-o", str(arn_file)], env)
    assert code == 0
    assert arn_file.read_text().startswith("arn:aws:sagemaker:")
    assert [p.name for p in tmp_path.iterdir()] == ["model_arn.txt"]


def test_sample_data_drives_the_smoke_run(package, env, tmp_path):
    sample = tmp_path / "sample.json"
    sample.write_text('{"data": [[1, 2, 3, 4], [4, 3, 2, 1]]}')
    code, out, err = package(["--json", "--sample-data", str(sample)], env)
    assert code == 0
    assert json.loads(out)["smoke_run"] == {"rows": 2, "source": str(sample),
                                            "predictions": json.loads(out)["smoke_run"]["predictions"]}
    assert len(json.loads(out)["smoke_run"]["predictions"]) == 2


def test_secrets_never_appear_in_any_output(package, env, aws_account, monkeypatch):
    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)
    secret_env = {**env, **SECRET_VALUES, "AWS_ACCESS_KEY_ID": "testing"}
    outputs = [package([], secret_env), package(["--json"], secret_env),
               package([], {**secret_env, "DATA_BUCKET": "no-such-bucket"}),
               package(["--json"], {k: v for k, v in secret_env.items() if k != "AWS_REGION"})]
    monkeypatch.setattr(bundle_package, "register_model_package",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    outputs.append(package(["--debug", "-g", "OtherGroup"], secret_env))  # with a traceback
    assert [code for code, _, _ in outputs] == [0, 0, 3, 2, 1]
    assert "Traceback" in outputs[-1][2]
    everything = "".join(out + err for _, out, err in outputs)
    for value in SECRET_VALUES.values():
        assert value not in everything
    assert "AWS_SECRET_ACCESS_KEY" in everything  # shown as set, masked
    assert "session token" in everything  # the credential source, not the token


def test_as_a_subprocess_missing_env_and_help():
    script = str(REPO_ROOT / "utils/package-model.py")
    clean = {"PATH": os.environ["PATH"], "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, env=clean,
                            timeout=60, cwd="/")
    assert result.returncode == 2
    assert "Missing Required Environment Variables" in result.stderr
    assert "Traceback" not in result.stderr
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True,
                            env=clean, timeout=60)
    assert helped.returncode == 0
    for text in ("MODEL_ARN_FILE", "SKLEARN_IMAGE_VERSION", "default: plmscw", "exit codes:",
                 "AI_INPUT_QUEUE_URL"):
        assert text in helped.stdout


def test_no_temporary_files_are_left_behind(env, aws_account, artifacts_copy, tmp_path,
                                            monkeypatch, capsys):
    """The bundle's work directory, the pre-flight's scratch directory and the ARN file's temporary
    twin are gone after a success and after failures at each stage (real pre-flight, no cache)."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    arn_dir = tmp_path / "out"
    arn_dir.mkdir()
    broken = artifacts_copy(model=random_forest())
    runs = [([], {**env, "DATA_BUCKET": "no-such-bucket"}, 3),  # fails after bundling
            (["--artifacts-dir", str(broken)], env, 2),  # fails in the pre-flight
            (["-o", str(arn_dir / "arn.txt")], env, 0)]
    for argv, run_env, expected in runs:
        assert SCRIPT.main(argv, run_env) == expected, capsys.readouterr().err
        assert list(scratch.iterdir()) == [], argv
    assert [p.name for p in arn_dir.iterdir()] == ["arn.txt"]


def test_region_of_the_package_arn_and_account(package, env):
    doc = json.loads(package(["--json"], env)[1])
    assert doc["model_package_arn"].split(":")[3:5] == [REGION, "123456789012"]


def test_dry_run_checks_everything_and_changes_nothing(package, env, aws_account, tmp_path):
    arn_file = tmp_path / "model_arn.txt"
    code, out, err = package(["--dry-run", "--output-file", str(arn_file)], env)
    assert code == 0, err
    assert "Dry run: nothing was uploaded or registered" in out
    assert "create model package group PLMSCWInferenceModelGroup" in out
    assert "register a new version in PLMSCWInferenceModelGroup and approve it" in out
    assert f"write its ARN to {arn_file}" in out
    assert registry_state(aws_account["sagemaker"]) == EMPTY
    assert bucket_keys(aws_account["s3"]) == [] and not arn_file.exists()


def test_dry_run_after_a_run_says_it_would_reuse_the_package(package, env, aws_account):
    code, out, err = package(["--json"], env)
    assert code == 0, err
    arn = json.loads(out)["model_package_arn"]
    before = registry_state(aws_account["sagemaker"])
    code, out, err = package(["--dry-run", "--json"], env)
    assert code == 0, err
    plan = json.loads(out)
    assert plan["dry_run"] is True and plan["existing_model_package_arn"] == arn
    assert plan["would_upload"] is False and plan["group_exists"] is True
    assert plan["actions"][-1] == f"re-use {arn} (unchanged artifacts and settings)"
    assert registry_state(aws_account["sagemaker"]) == before


def test_dry_run_still_refuses_a_missing_bucket(package, env, aws_account):
    code, out, err = package(["--dry-run"], {**env, "DATA_BUCKET": "no-such-bucket"})
    assert code == 3 and "no-such-bucket" in err
    assert registry_state(aws_account["sagemaker"]) == EMPTY
