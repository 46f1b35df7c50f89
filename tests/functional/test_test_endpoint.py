"""test_endpoint.py: input checks, local and SageMaker invocation, the contract check on answers.

Local answers that break the contract come from a stand-in server process: a few lines of
`http.server` started as `python <tmp>/artifacts/serve --port P`, so that the state directory's pid
check trusts it exactly as it trusts the real server. SageMaker answers come from moto.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.stub import Stubber

import test_endpoint
from modules import invoke_endpoint
from tests.model_server_harness import free_port
from utils import local_endpoints
from utils.contract import MAX_PAYLOAD_BYTES
from utils.errors import AwsError

ROWS = [[2.5, 180.0, 101.3, 0.2], [2.3, 190.0, 104.0, 0.35]]
VALID_ANSWER = {"predictions": ["qc_pass", "qc_fail"], "probabilities": [[0.9, 0.1], [0.25, 0.75]],
                "class_indices": [0, 1], "confidence_scores": [0.9, 0.75]}

STAND_IN_SERVER = r'''
import json, pathlib, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
here = pathlib.Path(sys.argv[0]).parent
port = int(sys.argv[sys.argv.index("--port") + 1])

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self._answer(200, "application/json", b"{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        (here / "last-request.json").write_text(json.dumps(
            {"content_type": self.headers["Content-Type"], "body": body.decode()}))
        answer = json.loads((here / "answer.json").read_text())
        self._answer(answer["status"], answer.get("type", "application/json"),
                     answer["body"].encode())

    def _answer(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


class StandIn:
    """A running stand-in server recorded as local endpoint `name`."""

    def __init__(self, root: Path, state_dir: Path, name: str) -> None:
        self.root = root
        self.port = free_port()
        script = root / "artifacts" / "serve"
        script.parent.mkdir(parents=True)
        script.write_text(STAND_IN_SERVER)
        self.answer(200, json.dumps(VALID_ANSWER))
        self.process = subprocess.Popen([sys.executable, str(script), "--host", "127.0.0.1",
                                         "--port", str(self.port)], start_new_session=True)
        self._wait_for_ping()
        self.directory = state_dir / "endpoints" / name
        local_endpoints.write_record(self.directory, {
            "endpoint_name": name, "pid": self.process.pid, "port": self.port,
            "url": f"http://127.0.0.1:{self.port}", "model_package_arn": "arn:test"})

    def answer(self, status: int, body: str, content_type: str = "application/json") -> None:
        (self.root / "artifacts" / "answer.json").write_text(
            json.dumps({"status": status, "body": body, "type": content_type}))

    def last_request(self) -> dict:
        return json.loads((self.root / "artifacts" / "last-request.json").read_text())

    def _wait_for_ping(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=1).close()
                return
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"DEPLOY_MODEL_STATE_DIR": str(tmp_path / "state"), "AWS_REGION": "ca-central-1",
            "NO_COLOR": "1"}


@pytest.fixture
def stand_in(tmp_path, env):
    server = StandIn(tmp_path / "stand-in", Path(env["DEPLOY_MODEL_STATE_DIR"]), "qc-local")
    yield server
    server.stop()


def _run(capsys, env, *argv: str) -> tuple[int, str, str]:
    code = test_endpoint.main(list(argv), env)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


DATA = json.dumps({"data": ROWS})


# --- input is checked before anything is sent ----------------------------------------------------


def test_bad_json_names_the_position_and_exits_2(capsys, env):
    code, out, err = _run(capsys, env, "-e", "qc", "-d", '{"data": [[1, 2],, [3, 4]]}')
    assert code == 2
    assert "Invalid JSON in --input-data" in err and "line 1, column 18" in err
    assert "Traceback" not in out + err


def test_bad_json_in_a_file_names_the_file_and_line(capsys, env, tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('{\n  "data": [\n    [1, 2]\n    [3, 4]\n  ]\n}\n')
    code, _, err = _run(capsys, env, "-e", "qc", "-d", str(path))
    assert code == 2 and str(path) in err and "line 4, column 5" in err


@pytest.mark.parametrize("payload, message", [
    ({"rows": ROWS}, "missing the 'data' key"),
    ({"data": []}, "non-empty list"),
    ({"data": [[1, 2], [3]]}, "row 1 has 1 values, row 0 has 2"),
    ({"data": [[1, "2"]]}, "non-numeric value '2'"),
    ({"data": [[1, True]]}, "non-numeric value True"),
])
def test_malformed_rows_are_refused_before_sending(capsys, env, stand_in, payload, message):
    code, _, err = _run(capsys, env, "-e", "qc-local", "-d", json.dumps(payload))
    assert code == 2 and message in err
    assert not (stand_in.root / "artifacts" / "last-request.json").exists()


def test_oversize_input_is_refused_with_the_limit(capsys, env, tmp_path, stand_in):
    rows = [[123456.789] * 50] * (MAX_PAYLOAD_BYTES // (50 * 11) + 10)
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"data": rows}))
    code, _, err = _run(capsys, env, "-e", "qc-local", "-d", str(path))
    assert code == 2 and "6,291,456 bytes" in err
    assert not (stand_in.root / "artifacts" / "last-request.json").exists()


def test_missing_input_file_is_a_usage_error(capsys, env):
    code, _, err = _run(capsys, env, "-e", "qc", "-d", "no-such-file.json")
    assert code == 2 and "neither an existing file nor JSON" in err


def test_required_arguments_can_come_from_the_environment(capsys, env, stand_in):
    code, out, _ = _run(capsys, {**env, "ENDPOINT_NAME": "qc-local", "INPUT_DATA": DATA})
    assert code == 0 and "qc_fail" in out
    with pytest.raises(SystemExit) as caught:
        test_endpoint.main([], env)
    assert caught.value.code == 2
    assert "-e/--endpoint-name" in capsys.readouterr().err


def test_invalid_endpoint_name_is_a_usage_error(capsys, env):
    code, _, err = _run(capsys, env, "-e", "bad_name", "-d", DATA)
    assert code == 2 and "Invalid endpoint name" in err


# --- local endpoints ---------------------------------------------------------------------------


def test_a_valid_local_answer_is_shown_as_a_table(capsys, env, stand_in):
    code, out, err = _run(capsys, env, "-e", "qc-local", "-d", DATA, "-v")
    assert code == 0, err
    assert f"local endpoint at http://127.0.0.1:{stand_in.port}" in out
    assert "row  prediction  confidence  probabilities" in out
    assert "1    qc_fail     0.7500      [0.2500, 0.7500]" in out
    assert "Latency:" in out and "Raw response" in out
    sent = stand_in.last_request()
    assert sent["content_type"] == "application/json"
    assert json.loads(sent["body"]) == {"data": ROWS}


def test_csv_sends_the_rows_as_csv_and_json_mode_prints_one_document(capsys, env, stand_in):
    code, out, err = _run(capsys, env, "-e", "qc-local", "-d", DATA, "--content-type", "csv",
                          "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["target"] == "local" and document["contract_ok"] is True
    assert document["response"] == VALID_ANSWER and document["content_type"] == "text/csv"
    assert stand_in.last_request() == {"content_type": "text/csv",
                                       "body": "2.5,180.0,101.3,0.2\n2.3,190.0,104.0,0.35\n"}


@pytest.mark.parametrize("answer, explanation", [
    ({"predictions": ["a", "b"]}, "missing key(s): probabilities, class_indices"),
    ({**VALID_ANSWER, "predictions": ["qc_pass"]}, "'predictions' has 1 entries, expected 2"),
    ({**VALID_ANSWER, "probabilities": [[0.9, 0.2], [0.25, 0.75]]}, "row 0: probabilities sum"),
    ({**VALID_ANSWER, "confidence_scores": [0.1, 0.75]}, "row 0: confidence 0.1"),
    ({**VALID_ANSWER, "class_indices": [0, 2]}, "row 1: class index 2 is out of range"),
])
def test_answers_breaking_the_contract_exit_4_with_the_reason(capsys, env, stand_in, answer,
                                                              explanation):
    stand_in.answer(200, json.dumps(answer))
    code, _, err = _run(capsys, env, "-e", "qc-local", "-d", DATA)
    assert code == 4
    assert "breaks the inference contract" in err and explanation in err
    assert "raw answer:" in err


def test_an_answer_that_is_not_json_exits_4(capsys, env, stand_in):
    stand_in.answer(200, "<html>oops</html>", "text/html")
    code, out, err = _run(capsys, env, "-e", "qc-local", "-d", DATA, "--json")
    assert code == 4
    document = json.loads(out)
    assert document["exit_code"] == 4 and "is not JSON" in document["error"]


@pytest.mark.parametrize("status, hint", [(400, "refused the request"), (500, "server failed")])
def test_an_error_answer_shows_the_servers_message_and_exits_3(capsys, env, stand_in, status, hint):
    stand_in.answer(status, json.dumps({"error": "expected 4 features per row, got 3"}))
    code, _, err = _run(capsys, env, "-e", "qc-local", "-d", DATA)
    assert code == 3
    assert f"answered HTTP {status}" in err
    assert "container message: expected 4 features per row, got 3" in err and hint in err


def test_a_local_endpoint_whose_server_died_is_reported_with_its_log(capsys, env, stand_in):
    (stand_in.directory / "server.log").write_text("Traceback ...\nMemoryError\n")
    stand_in.stop()
    code, _, err = _run(capsys, env, "-e", "qc-local", "-d", DATA)
    assert code == 3
    assert "is not running" in err and "| MemoryError" in err and "delete_endpoint.py" in err


# --- SageMaker (moto) --------------------------------------------------------------------------


def test_moto_runtime_canned_body_breaks_the_contract(capsys, env):
    from moto import mock_aws

    with mock_aws():
        code, out, err = _run(capsys, env, "-e", "qc-remote", "-d", DATA)
    assert code == 4
    assert "invoking SageMaker in ca-central-1" in out
    assert "SageMaker endpoint qc-remote is not JSON" in err and "raw answer: 'body'" in err


def test_a_valid_sagemaker_answer_passes(capsys, env):
    import requests
    from moto import mock_aws

    with mock_aws():
        requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
                      json={"region": "ca-central-1", "results": [
                          {"Body": json.dumps(VALID_ANSWER), "ContentType": "application/json"}]},
                      timeout=10)
        code, out, err = _run(capsys, env, "-e", "qc-remote", "-d", DATA, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["target"] == "sagemaker" and document["region"] == "ca-central-1"
    assert document["response"] == VALID_ANSWER


def test_region_falls_back_to_aws_default_region_then_ca_central_1(capsys, env):
    from moto import mock_aws

    without_region = {k: v for k, v in env.items() if k != "AWS_REGION"}
    with mock_aws():
        _, fallback, _ = _run(capsys, {**without_region, "AWS_DEFAULT_REGION": "eu-west-1"},
                              "-e", "qc-remote", "-d", DATA)
        _, default, _ = _run(capsys, without_region, "-e", "qc-remote", "-d", DATA)
        _, flag, _ = _run(capsys, env, "-e", "qc-remote", "-d", DATA, "--region", "us-west-2")
    assert "invoking SageMaker in eu-west-1" in fallback
    assert "invoking SageMaker in ca-central-1" in default
    assert "invoking SageMaker in us-west-2" in flag


def test_unknown_endpoint_without_credentials_says_both(capsys, env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = _run(capsys, env, "-e", "nowhere", "-d", DATA)
    assert code == 3
    assert "No AWS credentials found" in err and "No local endpoint named nowhere" in err


def test_an_invalid_region_for_a_remote_endpoint_is_a_usage_error(capsys, env):
    code, _, err = _run(capsys, {**env, "AWS_REGION": "mars-1"}, "-e", "nowhere", "-d", DATA)
    assert code == 2 and "mars-1" in err and "No local endpoint named nowhere" in err


# --- SageMaker errors the emulator cannot produce: botocore's Stubber plays them ----------------


def _stubbed_runtime():
    import boto3

    client = boto3.client("sagemaker-runtime", region_name="ca-central-1")
    return client, Stubber(client)


def _request():
    return invoke_endpoint.build_request({"data": ROWS}, "test", "json")


def test_a_container_error_shows_its_original_status_and_message():
    client, stubber = _stubbed_runtime()
    stubber.add_client_error(
        "invoke_endpoint", service_error_code="ModelError", http_status_code=424,
        service_message="Received client error (400) from primary with message ...",
        modeled_fields={"OriginalStatusCode": 400,
                        "OriginalMessage": '{"error": "expected 4 features per row, got 3"}',
                        "LogStreamArn": "arn:aws:logs:ca-central-1:123456789012:log-group:x"})
    with stubber, pytest.raises(AwsError) as caught:
        invoke_endpoint.invoke_sagemaker(client, "qc", _request(), region="ca-central-1",
                                         local_names=[])
    error = caught.value
    assert error.exit_code == 3 and "returned an error from its container" in error.message
    assert "container status: 400" in error.details
    assert "container message: expected 4 features per row, got 3" in error.details
    assert "refused the request" in error.hints[0]


def test_a_missing_sagemaker_endpoint_says_how_to_find_endpoints():
    client, stubber = _stubbed_runtime()
    stubber.add_client_error("invoke_endpoint", service_error_code="ValidationError",
                             service_message="Endpoint qc of account 123456789012 not found.",
                             http_status_code=400)
    with stubber, pytest.raises(AwsError) as caught:
        invoke_endpoint.invoke_sagemaker(client, "qc", _request(), region="ca-central-1",
                                         local_names=["qc-local"])
    hints = "\n".join(caught.value.hints)
    assert "Endpoint qc not found" in caught.value.message
    assert "aws sagemaker list-endpoints --region ca-central-1" in hints
    assert "Local endpoints on this machine: qc-local" in hints


@pytest.mark.parametrize("argv, message", [
    (["-e", "qc", "-d", '{"data": [[1, 2]'], "line 1, column 17"),  # bad input
    (["-d", DATA], "the following argument is required: -e/--endpoint-name"),  # bad arguments
    (["-e", "qc", "-d", DATA, "--content-type", "xml"], "invalid choice: 'xml'"),
    (["-e", "qc", "-d", DATA, "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
], ids=["bad-json", "missing-endpoint", "bad-content-type", "unknown-flag"])
def test_argument_and_input_errors_exit_2_without_importing_aws_libraries(tmp_path, argv,
                                                                          message):
    env = {k: v for k, v in os.environ.items() if k not in ("ENDPOINT_NAME", "INPUT_DATA")}
    result = subprocess.run([sys.executable, "-X", "importtime", "test_endpoint.py", *argv],
                            capture_output=True, text=True, env=env,
                            cwd=Path(test_endpoint.__file__).parent, timeout=60)
    assert result.returncode == 2 and message in result.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"boto3", "botocore", "sagemaker", "sagemaker_core"}, imported


def test_an_invalid_content_type_from_the_environment_is_a_usage_error(capsys, env):
    with pytest.raises(SystemExit) as caught:
        test_endpoint.main(["-e", "qc", "-d", DATA], {**env, "CONTENT_TYPE": "xml"})
    assert caught.value.code == 2 and "CONTENT_TYPE" in capsys.readouterr().err
