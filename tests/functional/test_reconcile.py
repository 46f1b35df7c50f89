"""utils/reconcile.py against in-process moto: what it calls an orphan, and what it never touches.

The orphans here are made the way a killed deploy leaves them (a model and a config with the
tool's tags and no endpoint using them); tests/integration/test_kill9.py makes them by really
SIGKILLing deploys.
"""

from __future__ import annotations

import pytest

from tests.conftest import load_script
from tests.deploy_support import one_json_document, register_package, timing
from tests.deploy_support import run_deploy as deploy_main
from tests.sagemaker_double import resources

reconcile_script = load_script("utils/reconcile.py")
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"


@pytest.fixture
def aws(aws):
    """The shared double, with one Approved package registered: `aws.arn`."""
    aws.arn = register_package(aws.sagemaker)
    return aws


@pytest.fixture
def env(account_env, tmp_path):
    return {**account_env, "NO_COLOR": "1", "DEPLOY_MODEL_STATE_DIR": str(tmp_path / "state")}


def deploy(aws, env, name, *args):
    assert deploy_main(["-a", aws.arn, "-e", name, *args], env, timing()) == 0


def leftovers(aws, endpoint, run_id, *, config=True, release=None, managed=True):
    """A model (and config) as a deploy of `endpoint` killed before CreateEndpoint leaves them."""
    tags = [{"Key": "EndpointName", "Value": endpoint}, {"Key": "DeployRunId", "Value": run_id}]
    if managed:
        tags.append({"Key": "ManagedBy", "Value": "deploy-model"})
    if release is not None:
        tags.append({"Key": "DeployRelease", "Value": str(release)})
    name = f"{endpoint}-{run_id}"
    sm = aws.sagemaker
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                    Containers=[{"ModelPackageName": aws.arn}], Tags=tags)
    if config:
        sm.create_endpoint_config(EndpointConfigName=name, Tags=tags, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.c5.2xlarge",
            "InitialInstanceCount": 1}])
    return name


def reconcile(env, capsys, *args):
    code = reconcile_script.main(["--scope", "sagemaker", "--json", *args], env)
    return code, one_json_document(capsys.readouterr().out)


def test_dry_run_lists_exactly_the_orphans_and_apply_removes_only_them(aws, env, capsys):
    deploy(aws, env, "qc-live")
    orphan = leftovers(aws, "qc-live", "20260101-000000-deadbeef")
    gone_endpoint = leftovers(aws, "qc-gone", "20260101-000000-0badcafe", release=1)
    model_only = leftovers(aws, "qc-live", "20260101-000000-feedf00d", config=False)
    foreign = leftovers(aws, "qc-live", "20260101-000000-0f0f0f0f", managed=False)
    before = resources(aws.sagemaker)
    capsys.readouterr()

    code, doc = reconcile(env, capsys, "--grace-period", "0")
    assert code == 0 and doc["dry_run"] is True
    expected = sorted([f"endpoint-config {orphan}", f"model {orphan}",
                       f"endpoint-config {gone_endpoint}", f"model {gone_endpoint}",
                       f"model {model_only}"])
    assert sorted(doc["would_remove"]) == expected
    assert resources(aws.sagemaker) == before  # a dry run changes nothing
    assert doc["kept"]["in_use"] == 2  # qc-live's config and model
    assert doc["not_managed_by_tool"] == 2  # the untagged model and config

    code, doc = reconcile(env, capsys, "--grace-period", "0", "--apply")
    assert code == 0 and sorted(doc["removed"]) == expected and doc["left_behind"] == []
    # Configs go before the models they name.
    assert doc["removed"].index(f"endpoint-config {orphan}") < doc["removed"].index(
        f"model {orphan}")
    after = resources(aws.sagemaker)
    assert after["endpoints"] == ["qc-live"]
    assert after["configs"] == sorted(set(before["configs"]) - {orphan, gone_endpoint})
    assert foreign in after["configs"] and foreign in after["models"]
    assert after["models"] == sorted(set(before["models"]) - {orphan, gone_endpoint, model_only})

    code, doc = reconcile(env, capsys, "--grace-period", "0", "--apply")
    assert code == 0 and doc["orphans"] == [] and doc["removed"] == []


def test_kept_releases_of_an_existing_endpoint_stay(aws, env, capsys):
    deploy(aws, env, "qc-rel")
    aws.update_takes(1)
    deploy(aws, env, "qc-rel")  # release 1 is kept (--keep-releases 3 by default)
    before = resources(aws.sagemaker)
    assert len(before["configs"]) == 2
    capsys.readouterr()
    code, doc = reconcile(env, capsys, "--grace-period", "0", "--apply")
    assert code == 0 and doc["orphans"] == []
    # Release 1's config is a kept release; its model is named by a config that stays.
    assert doc["kept"]["kept_release"] == 1 and doc["kept"]["in_use"] == 3
    assert resources(aws.sagemaker) == before


def test_the_grace_period_protects_a_deploy_in_progress(aws, env, capsys):
    name = leftovers(aws, "qc-new", "20260101-000000-deadbeef")
    code, doc = reconcile(env, capsys, "--apply")  # default: 60 minutes
    assert code == 0 and doc["orphans"] == [] and doc["grace_period_minutes"] == 60
    # The config is too new; its model is named by that config, so in use.
    assert doc["kept"]["within_grace_period"] == 1 and doc["kept"]["in_use"] == 1
    assert name in resources(aws.sagemaker)["models"]
    code, doc = reconcile({**env, "RECONCILE_GRACE_PERIOD": "0"}, capsys)
    assert len(doc["orphans"]) == 2 and doc["grace_period_minutes"] == 0


def test_apply_leaves_a_resource_whose_run_id_changed_since_it_was_found(aws, env, capsys,
                                                                          monkeypatch):
    """The read-back before each delete: a resource re-tagged between survey and delete stays."""
    from modules import reconcile as module

    name = leftovers(aws, "qc-race", "20260101-000000-deadbeef", config=False)
    real = module.survey_sagemaker

    def survey_then_retag(sagemaker, **kwargs):
        found = real(sagemaker, **kwargs)
        arn = sagemaker.describe_model(ModelName=name)["ModelArn"]
        sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "DeployRunId", "Value": "other"}])
        return found

    monkeypatch.setattr(module, "survey_sagemaker", survey_then_retag)
    code, doc = reconcile(env, capsys, "--grace-period", "0", "--apply")
    assert name in resources(aws.sagemaker)["models"]
    assert code == 0 and doc["removed"] == []


def test_flags_and_environment(env, capsys):
    parser = reconcile_script.build_parser()
    args = parser.parse_with_env([], {})
    assert (args.apply, args.grace_period, args.limit, args.scope) == (False, 60.0, 100, "all")
    args = parser.parse_with_env([], {"RECONCILE_APPLY": "1", "RECONCILE_GRACE_PERIOD": "5",
                                      "RECONCILE_LIMIT": "3", "RECONCILE_SCOPE": "local"})
    assert (args.apply, args.grace_period, args.limit, args.scope) == (True, 5.0, 3, "local")
    assert parser.parse_with_env(["--dry-run"], {"RECONCILE_APPLY": "1"}).apply is False
    with pytest.raises(SystemExit) as exit_info:
        reconcile_script.main(["--grace-period", "-1"], env)
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        reconcile_script.main(["--apply", "--dry-run"], env)
    assert exit_info.value.code == 2


def test_limit_bounds_the_deletes_and_says_what_is_left(aws, env, capsys):
    for token in ("00000001", "00000002"):
        leftovers(aws, "qc-lim", f"20260101-000000-{token}", config=False)
    code, doc = reconcile(env, capsys, "--grace-period", "0", "--apply", "--limit", "1")
    assert code == 3
    assert len(doc["removed"]) == 1 and len(doc["left_behind"]) == 1
    assert len(resources(aws.sagemaker)["models"]) == 1


# --- local mode: a stand-in server (a script at .../artifacts/serve that only sleeps) -------------


@pytest.fixture
def fake_server(tmp_path):
    """Start processes that look like local mode's model server to /proc (command line, own
    session); tests/integration/test_kill9.py uses the real one."""
    import subprocess
    import sys

    script = tmp_path / "bin" / "artifacts" / "serve"
    script.parent.mkdir(parents=True)
    script.write_text("import time\ntime.sleep(120)\n")
    started = []

    def start(model_dir):
        process = subprocess.Popen([sys.executable, str(script), "--host", "127.0.0.1",
                                    "--port", "1", "--model-dir", str(model_dir)],
                                   start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def local_state(tmp_path, name):
    from utils import local_endpoints

    state = tmp_path / "state"
    directory = local_endpoints.endpoints_root(state) / name
    (directory / ".next-1234" / "model").mkdir(parents=True)
    return state, directory


def wait_until_listed(state, pid):
    import time

    from utils import local_endpoints

    for _ in range(100):  # the child's command line is its own once it has exec'd
        if any(s.pid == pid for s in local_endpoints.find_server_processes(state)):
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} never showed up as a server")


def test_local_server_without_record_is_found_and_stopped_others_untouched(
        tmp_path, env, capsys, fake_server):
    from utils import local_endpoints

    state, directory = local_state(tmp_path, "qc-orphan")
    orphan = fake_server(directory / ".next-1234" / "model")
    # A recorded, running server of another endpoint, and a server of another state dir.
    _, kept_dir = local_state(tmp_path, "qc-kept")
    kept = fake_server(kept_dir / "model")
    local_endpoints.write_record(kept_dir, {
        "endpoint_name": "qc-kept", "pid": kept.pid, "port": 1,
        "pid_start_time": local_endpoints.process_start_time(kept.pid)})
    elsewhere = fake_server(tmp_path / "other-state" / "endpoints" / "qc-orphan" / "model")
    wait_until_listed(state, orphan.pid)

    code = reconcile_script.main(["--scope", "local", "--json"], env)
    doc = one_json_document(capsys.readouterr().out)
    assert code == 0 and doc["would_remove"] == ["local server qc-orphan"]
    assert doc["orphans"][0]["pid"] == orphan.pid and orphan.poll() is None

    code = reconcile_script.main(["--scope", "local", "--json", "--apply"], env)
    doc = one_json_document(capsys.readouterr().out)
    assert code == 0 and doc["removed"] == ["local server qc-orphan"]
    assert orphan.wait(timeout=15) is not None and not directory.exists()
    assert kept.poll() is None and elsewhere.poll() is None and kept_dir.is_dir()

    assert reconcile_script.main(["--scope", "local", "--json"], env) == 0
    assert one_json_document(capsys.readouterr().out)["orphans"] == []


def test_local_stale_record_and_unrecorded_files_are_removed(tmp_path, env, capsys):
    from utils import local_endpoints

    _, leftover = local_state(tmp_path, "qc-files")  # killed before its server started
    state, directory = local_state(tmp_path, "qc-stale")
    local_endpoints.write_record(directory, {"endpoint_name": "qc-stale", "pid": 2**22 + 1,
                                             "port": 1, "pid_start_time": "1"})
    assert reconcile_script.main(["--scope", "local", "--json"], env) == 0
    expected = ["local record qc-stale", "local files qc-files"]
    assert one_json_document(capsys.readouterr().out)["would_remove"] == expected
    assert directory.is_dir() and leftover.is_dir()
    assert reconcile_script.main(["--scope", "local", "--json", "--apply"], env) == 0
    assert one_json_document(capsys.readouterr().out)["removed"] == expected
    assert not directory.exists() and not leftover.exists()


def test_a_server_whose_start_time_changed_is_not_stopped(tmp_path, fake_server, monkeypatch):
    """Pid reuse between finding a server and stopping it: the start time no longer matches."""
    from modules.reconcile import Orphan, remove_local_orphans

    state, directory = local_state(tmp_path, "qc-reused")
    process = fake_server(directory / "model")
    stopped = []
    found = Orphan("local server", "qc-reused", "test", pid=process.pid, start_time="0")
    removed, left = remove_local_orphans(state, [found], stopped.append)
    assert (removed, left, stopped) == ([], [found], [])
    assert process.poll() is None


def test_autoscaling_of_an_endpoint_deleted_behind_the_tools_back_is_deregistered(
        aws, env, capsys):
    from tests.deploy_support import client

    deploy(aws, env, "qc-sc", "--autoscale", "1-3")
    autoscaling = client("application-autoscaling")
    # Someone else's target of a gone endpoint: no deploy-model policy, so not provably ours.
    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId="endpoint/qc-other/variant/AllTraffic",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1, MaxCapacity=2)
    aws.sagemaker.delete_endpoint(EndpointName="qc-sc")  # not through utils/delete_endpoint.py
    capsys.readouterr()
    code, doc = reconcile(env, capsys, "--grace-period", "0")
    target = "scalable target endpoint/qc-sc/variant/AllTraffic"
    assert target in doc["would_remove"] and len(doc["would_remove"]) == 3  # + config, model

    code, doc = reconcile(env, capsys, "--grace-period", "0", "--apply")
    assert code == 0 and doc["removed"][0] == target
    left = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [t["ResourceId"] for t in left] == ["endpoint/qc-other/variant/AllTraffic"]
    assert autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")[
        "ScalingPolicies"] == []
    assert resources(aws.sagemaker) == {"endpoints": [], "configs": [], "models": []}
