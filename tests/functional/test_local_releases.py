"""Local mode's --history and --rollback, with the real model server (as test_local_endpoint.py).

Releases are recorded in the endpoint's state directory; a rollback serves the earlier package
again through the same path as a local deploy (sha256 check, new server, then the switch).
"""

from __future__ import annotations

import json

from tests.conftest import REGION, load_script
from tests.functional.test_local_endpoint import (  # noqa: F401 - fixtures
    assert_nothing_left,
    aws,
    build_tarball,
    invoke_json,
    no_stray_servers,
    register,
    state_dir,
    trained,
)
from utils import local_endpoints


def main(env, *args):
    return load_script("deploy-model.py").main(list(args), env)


def history(capsys, env):
    capsys.readouterr()
    assert main(env, "-t", "local", "-e", "qc-local", "--history", "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_local_history_and_rollback_serve_the_earlier_package_again(
        aws, trained, tmp_path, state_dir, capsys):  # noqa: F811 - the imported fixtures
    _, rows, model_bytes = trained
    first = register(aws, build_tarball(tmp_path / "one.tar.gz", model_bytes))
    second = register(aws, build_tarball(tmp_path / "two.tar.gz", model_bytes,
                                         {"code/NOTES.txt": b"release two"}))
    env = {"AWS_REGION": REGION, "DEPLOY_MODEL_STATE_DIR": str(state_dir), "NO_COLOR": "1"}
    assert main(env, "-a", first, "-t", "local", "-e", "qc-local") == 0
    assert main(env, "-a", second, "-t", "local", "-e", "qc-local") == 0
    shown = history(capsys, env)
    assert [(r["release"], r["state"], r["model_package_arn"]) for r in shown["releases"]] == [
        (2, "live", second), (1, "previous", first)]
    assert shown["releases"][0]["caller"].startswith("arn:aws:sts::")
    assert main(env, "-t", "local", "-e", "qc-local", "--history") == 0
    text = capsys.readouterr().out  # local mode records no variants: no empty SERVES table
    assert "2        live" in text and "SERVES" not in text and "Serving now" not in text
    directory = state_dir / "endpoints" / "qc-local"
    before = local_endpoints.read_record(directory)["pid"]

    capsys.readouterr()
    assert main(env, "-t", "local", "-e", "qc-local", "--rollback", "--dry-run") == 0
    assert f"would replace the server of qc-local (pid {before}) with {first}" in (
        capsys.readouterr().out)
    assert local_endpoints.read_record(directory)["model_package_arn"] == second

    assert main(env, "-t", "local", "-e", "qc-local", "--rollback", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["release"], doc["rollback_to"], doc["model_package_arn"]) == (3, 1, first)
    record = local_endpoints.read_record(directory)
    assert record["model_package_arn"] == first and record["pid"] != before
    code, answer = invoke_json(capsys, state_dir, "qc-local", rows)
    assert code == 0 and len(answer["response"]["predictions"]) == len(rows)
    shown = history(capsys, env)
    assert [(r["release"], r["state"], r["rollback_to"]) for r in shown["releases"]] == [
        (3, "live", 1), (2, "previous", None), (1, "previous", None)]

    assert main(env, "-t", "local", "-e", "qc-local", "--to-release", "3") == 3  # served now
    assert "already serves release 3" in capsys.readouterr().err
    delete = load_script("utils/delete_endpoint.py").main
    assert delete(["-e", "qc-local"], env) == 0
    assert_nothing_left(state_dir, "qc-local")  # the records went with it


def test_local_history_of_an_unknown_endpoint_makes_no_aws_call(tmp_path, capsys):
    env = {"AWS_REGION": REGION, "DEPLOY_MODEL_STATE_DIR": str(tmp_path), "NO_COLOR": "1",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens: any AWS call would fail
    assert main(env, "-t", "local", "-e", "nobody", "--history", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["releases"] == [] and doc["endpoint_exists"] is False
