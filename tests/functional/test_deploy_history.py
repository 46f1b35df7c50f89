"""--history shows what each release serves (variants, weights, capacity, serverless, data
capture) and what the endpoint serves now (live weights, instance counts, autoscaling read from
Application Auto Scaling), in the table and in --json. moto plays SageMaker and Application Auto
Scaling, the double UpdateEndpoint, weights and shadow variants."""

from __future__ import annotations

import pytest

from tests.deploy_support import deploy_ok, main, one_json_document, register_package

pytestmark = pytest.mark.usefixtures("with_autoscaling")  # aws.autoscaling in every test


def deploy(env, capsys, *argv):
    return deploy_ok(capsys, env, *argv)


def history(env, capsys, endpoint="qc-prod"):
    return one_json_document(deploy(env, capsys, "-e", endpoint, "--history", "--json"))


def test_history_shows_each_releases_variants_and_the_live_weights(aws, env, capsys):
    v1, v2 = register_package(aws.sagemaker), register_package(aws.sagemaker)
    deploy(env, capsys, "-a", v1, "-e", "qc-prod", "--instance-count", "2")
    deploy(env, capsys, "-a", v2, "-e", "qc-prod", "--add-variant", "challenger",
           "--weight", "0.25")
    doc = history(env, capsys)
    by_number = {r["release"]: r for r in doc["releases"]}
    assert {v["name"]: (v["weight"], v["instance_count"])
            for v in by_number[1]["variants"]} == {"AllTraffic": (1.0, 2)}
    assert {v["name"]: v["weight"] for v in by_number[2]["variants"]} == {
        "challenger": 0.25, "AllTraffic": 1.0}
    assert {v["name"]: v["weight"] for v in doc["live_variants"]} == {
        "challenger": 0.25, "AllTraffic": 1.0}
    text = deploy(env, capsys, "-e", "qc-prod", "--history")
    assert "challenger 20 % (1 x ml.c5.2xlarge); AllTraffic 80 % (2 x ml.c5.2xlarge)" in text
    assert "AllTraffic 100 % (2 x ml.c5.2xlarge)" in text
    now = text[text.index("Serving now"):].splitlines()
    assert any(line.split()[:4] == ["challenger", "0.25", "(20", "%)"] for line in now)


def test_set_weights_is_a_release_shown_with_its_weights(aws, env, capsys):
    v1, v2 = register_package(aws.sagemaker), register_package(aws.sagemaker)
    deploy(env, capsys, "-a", v1, "-e", "qc-prod")
    deploy(env, capsys, "-a", v2, "-e", "qc-prod", "--add-variant", "challenger", "--weight", "1")
    out = deploy(env, capsys, "-e", "qc-prod", "--set-weights", "AllTraffic=3,challenger=1",
                 "--json")
    assert one_json_document(out)["release"] == 3
    doc = history(env, capsys)
    assert doc["live_release"] == 3
    live = doc["releases"][0]
    assert (live["release"], live["kind"], live["state"]) == (3, "weights", "live")
    assert {v["name"]: v["weight"] for v in live["variants"]} == {
        "AllTraffic": 3.0, "challenger": 1.0}
    # The same config as release 2, which keeps the weights it was deployed with.
    second = doc["releases"][1]
    assert second["config_name"] == live["config_name"]
    assert {v["name"]: v["weight"] for v in second["variants"]} == {
        "AllTraffic": 1.0, "challenger": 1.0}
    text = deploy(env, capsys, "-e", "qc-prod", "--history")
    assert "challenger 25 % (1 x ml.c5.2xlarge); AllTraffic 75 % (1 x ml.c5.2xlarge)" in text


def test_history_shows_serverless_capture_shadow_and_the_live_autoscaling(aws, env, capsys):
    arn = register_package(aws.sagemaker)
    deploy(env, capsys, "-a", arn, "-e", "qc-prod", "--serverless-memory", "2048",
           "--max-concurrency", "5")
    deploy(env, capsys, "-a", arn, "-e", "qc-prod", "--instance-count", "2", "--autoscale",
           "2-6", "--data-capture", "s3://qc-capture/prod", "--capture-percent", "20")
    deploy(env, capsys, "-a", arn, "-e", "qc-prod", "--shadow", "--shadow-sampling", "50")
    text = deploy(env, capsys, "-e", "qc-prod", "--history")
    serves = dict(line.split(None, 1) for line in
                  text[text.index("SERVES"):text.index("Serving now")].splitlines()[2:]
                  if line[:1].isdigit())
    assert serves["1"].strip() == "AllTraffic 100 % (serverless (2048 MB, 5 concurrent))"
    assert serves["2"].strip() == ("AllTraffic 100 % (2 x ml.c5.2xlarge); capture "
                                   "s3://qc-capture/prod (20 %)")
    assert serves["3"].strip() == ("AllTraffic 100 % (2 x ml.c5.2xlarge); shadow shadow of "
                                   "50 % (1 x ml.c5.2xlarge); capture s3://qc-capture/prod (20 %)")
    now = [line.split() for line in text[text.index("Serving now"):].splitlines()[3:]]
    assert now[0][:5] == ["AllTraffic", "1", "(100", "%)", "2/2"]
    assert " ".join(now[0][7:]) == "2-6 instances, target 1000 invocations per instance per minute"
    assert now[1][:3] == ["shadow", "(shadow)", "0.5"] and now[1][-1] == "none"
    doc = history(env, capsys)
    assert doc["releases"][2]["variants"][0]["serverless"] == {
        "memory_mb": 2048, "max_concurrency": 5, "provisioned_concurrency": None}
    assert doc["live_variants"][0]["autoscaling"]["min_capacity"] == 2


def test_history_without_permission_to_read_autoscaling_still_lists_the_releases(
        aws, env, capsys, monkeypatch):
    from botocore.exceptions import ClientError

    arn = register_package(aws.sagemaker)
    deploy(env, capsys, "-a", arn, "-e", "qc-prod")

    def refused(*args, **kwargs):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                          "DescribeScalableTargets")

    monkeypatch.setattr("modules.deploy_releases.read_scaling", refused)
    main(["-e", "qc-prod", "--history"], env)
    captured = capsys.readouterr()
    assert "Could not read the autoscaling" in captured.err
    assert "unknown" in captured.out and "1        live" in captured.out


def weights(aws, endpoint="qc-prod"):
    current = aws.sagemaker.describe_endpoint(EndpointName=endpoint)
    return {v["VariantName"]: v["CurrentWeight"] for v in current["ProductionVariants"]}


@pytest.fixture
def reweighted(aws, env, capsys):
    """Release 1: AllTraffic; 2: + challenger at 1:1; 3: --set-weights 3:1."""
    v1, v2 = register_package(aws.sagemaker), register_package(aws.sagemaker)
    deploy(env, capsys, "-a", v1, "-e", "qc-prod")
    deploy(env, capsys, "-a", v2, "-e", "qc-prod", "--add-variant", "challenger", "--weight", "1")
    deploy(env, capsys, "-e", "qc-prod", "--set-weights", "AllTraffic=3,challenger=1")
    return aws.sagemaker.describe_endpoint(EndpointName="qc-prod")["EndpointConfigName"]


def test_rollback_after_set_weights_sets_the_previous_weights_back_without_a_new_fleet(
        aws, env, capsys, reweighted):
    updates = len(aws.update_requests)
    doc = one_json_document(deploy(env, capsys, "-e", "qc-prod", "--rollback", "--json"))
    assert (doc["release"], doc["rollback_to"], doc["status"]) == (4, 2, "InService")
    assert weights(aws) == {"AllTraffic": 1.0, "challenger": 1.0}
    assert len(aws.update_requests) == updates  # no UpdateEndpoint: the same config
    live = history(env, capsys)["releases"][0]
    assert (live["release"], live["kind"], live["config_name"]) == (4, "rollback to 2",
                                                                    reweighted)
    # And back to release 3's weights.
    doc = one_json_document(deploy(env, capsys, "-e", "qc-prod", "--to-release", "3",
                                   "--json"))
    assert doc["release"] == 5 and weights(aws) == {"AllTraffic": 3.0, "challenger": 1.0}


def test_rollback_to_a_reweighted_release_on_another_config_switches_then_sets_its_weights(
        aws, env, capsys, reweighted):
    deploy(env, capsys, "-e", "qc-prod", "--promote", "challenger")  # release 4
    doc = one_json_document(deploy(env, capsys, "-e", "qc-prod", "--to-release", "3", "--json"))
    assert aws.sagemaker.describe_endpoint(EndpointName="qc-prod")[
        "EndpointConfigName"] == reweighted
    assert weights(aws) == {"AllTraffic": 3.0, "challenger": 1.0}
    assert (doc["release"], doc["rollback_to"]) == (6, 3)
    kinds = {r["release"]: r["kind"] for r in history(env, capsys)["releases"]}
    assert (kinds[5], kinds[6]) == ("rollback to 2", "rollback to 3")


def test_rollback_to_the_weights_it_serves_is_refused(aws, env, capsys, reweighted):
    assert main(["-e", "qc-prod", "--to-release", "3"], env) == 3
    assert "already serves release 3's config" in capsys.readouterr().err
