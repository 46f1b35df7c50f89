"""Data capture: set on a create or an update, kept by every later update (read back from the
live config), dropped only with --no-data-capture; bad input refused before any AWS call."""

from __future__ import annotations

import pytest

from tests.deploy_support import (
    EMPTY,
    live_config,
    main,
    one_json_document,
    register_package,
)
from tests.sagemaker_double import resources

CAPTURE = "s3://qc-capture/endpoints/qc-prod"


def test_create_with_data_capture_captures_input_and_output(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    code = main(["-a", arn, "-e", "qc-prod", "--data-capture", CAPTURE, "--capture-percent", "20",
                 "--json"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    capture = live_config(aws.sagemaker)["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 20
    assert capture["DestinationS3Uri"] == CAPTURE
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert one_json_document(captured.out)["data_capture"] == {
        "destination": CAPTURE, "percent": 20, "modes": ["Input", "Output"]}


def test_capture_settings_come_from_the_environment_too(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    env = {**env, "DATA_CAPTURE": CAPTURE, "CAPTURE_PERCENT": "5"}
    assert main(["-a", arn, "-e", "qc-prod", "--capture-percent", "7"], env) == 0
    capture = live_config(aws.sagemaker)["DataCaptureConfig"]
    assert (capture["DestinationS3Uri"], capture["InitialSamplingPercentage"]) == (CAPTURE, 7)


def test_an_update_keeps_the_live_capture_and_says_so(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-prod", "--data-capture", CAPTURE,
                 "--capture-percent", "30"], env) == 0
    first = live_config(aws.sagemaker)
    capsys.readouterr()
    code = main(["-a", arn, "-e", "qc-prod", "-t", "ml.m5.large"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    second = live_config(aws.sagemaker)
    assert second["EndpointConfigName"] != first["EndpointConfigName"]
    assert second["DataCaptureConfig"] == first["DataCaptureConfig"]
    assert f"kept from {first['EndpointConfigName']}" in captured.err + captured.out


def test_dry_run_of_an_update_shows_the_kept_capture_and_changes_nothing(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-prod", "--data-capture", CAPTURE], env) == 0
    before = resources(aws.sagemaker)
    capsys.readouterr()
    assert main(["-a", arn, "-e", "qc-prod", "--dry-run", "--json"], env) == 0
    captured = capsys.readouterr()
    assert f"{CAPTURE} (100 %, input and output), kept from" in captured.err
    assert one_json_document(captured.out)["data_capture"]["destination"] == CAPTURE
    assert resources(aws.sagemaker) == before


def test_no_data_capture_drops_it_and_a_new_destination_replaces_it(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-prod", "--data-capture", CAPTURE], env) == 0
    assert main(["-a", arn, "-e", "qc-prod", "--data-capture", "s3://qc-capture/v2",
                 "--capture-percent", "50"], env) == 0
    capture = live_config(aws.sagemaker)["DataCaptureConfig"]
    assert (capture["DestinationS3Uri"], capture["InitialSamplingPercentage"]) == (
        "s3://qc-capture/v2", 50)
    capsys.readouterr()
    assert main(["-a", arn, "-e", "qc-prod", "--no-data-capture"], env) == 0
    captured = capsys.readouterr()
    assert "none (--no-data-capture drops the capture" in captured.out + captured.err
    assert not live_config(aws.sagemaker).get("DataCaptureConfig")
    # Nothing to keep any more: the next update captures nothing either.
    assert main(["-a", arn, "-e", "qc-prod"], env) == 0
    assert not live_config(aws.sagemaker).get("DataCaptureConfig")


def test_a_serverless_update_of_a_capturing_endpoint_needs_no_data_capture(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    assert main(["-a", arn, "-e", "qc-prod", "--data-capture", CAPTURE], env) == 0
    before = resources(aws.sagemaker)
    capsys.readouterr()
    assert main(["-a", arn, "-e", "qc-prod", "--serverless-memory", "1024"], env) == 2
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert "a serverless endpoint cannot" in err and "--no-data-capture" in err
    assert resources(aws.sagemaker) == before
    assert main(["-a", arn, "-e", "qc-prod", "--serverless-memory", "1024",
                 "--no-data-capture"], env) == 0
    assert "ServerlessConfig" in live_config(aws.sagemaker)["ProductionVariants"][0]


@pytest.mark.parametrize("argv, env_extra, says", [
    (["--data-capture", "qc-capture/prefix"], {}, "is not an S3 URI"),
    (["--data-capture", "https://qc-capture.s3.amazonaws.com/p"], {}, "is not an S3 URI"),
    (["--data-capture", "s3://"], {}, "names no bucket"),
    (["--data-capture", "s3:///prefix"], {}, "names no bucket"),
    (["--data-capture", "s3://QC_Capture/p"], {}, "is not a valid S3 bucket name"),
    (["--data-capture", "s3://ab/p"], {}, "is not a valid S3 bucket name"),
    (["--data-capture", "s3://qc-capture/a b"], {}, "contains spaces"),
    (["--data-capture", "s3://qc-capture/a//b"], {}, "empty path segment"),
    (["--data-capture", "s3://qc-capture/" + "p" * 500], {}, "at most 512"),
    (["--data-capture", CAPTURE, "--capture-percent", "0"], {}, "1-100 %"),
    (["--data-capture", CAPTURE, "--capture-percent", "101"], {}, "1-100 %"),
    (["--capture-percent", "10"], {}, "--capture-percent needs --data-capture"),
    ([], {"CAPTURE_PERCENT": "10"}, "--capture-percent needs --data-capture"),
    (["--data-capture", CAPTURE, "--no-data-capture"], {}, "exclude each other"),
    (["--data-capture", CAPTURE, "--serverless-memory", "1024"], {},
     "Data capture is not available on serverless endpoints"),
])
def test_bad_capture_input_is_refused_before_any_aws_call(aws, env, capsys, argv, env_extra,
                                                          says):
    arn = register_package(aws.sagemaker)
    before = sum(aws.calls.values())
    code = main(["-a", arn, "-e", "qc-prod", *argv], {**env, **env_extra})
    assert code == 2
    assert says in capsys.readouterr().err
    assert sum(aws.calls.values()) == before
    assert resources(aws.sagemaker) == EMPTY


def test_the_capture_modes_are_sagemakers():
    import botocore.session

    from modules.traffic_settings import CAPTURE_MODES

    model = botocore.session.get_session().get_service_model("sagemaker")
    assert set(CAPTURE_MODES) <= set(model.shape_for("CaptureMode").enum)
