"""Shadow tests: --shadow deploys the package as a ShadowProductionVariant beside the one live
variant (a copy of --shadow-sampling % of the requests), --promote makes it the production
variant, --remove-variant ends the test; moto ignores shadow variants, the double keeps them."""

from __future__ import annotations

import pytest

from tests.deploy_support import (
    live_config,
    main,
    one_json_document,
    register_package,
)


def package_of(aws, model_name):
    return aws.sagemaker.describe_model(ModelName=model_name)["Containers"][0]["ModelPackageName"]


@pytest.fixture
def shadowed(aws, env, capsys):
    v1, v2 = register_package(aws.sagemaker), register_package(aws.sagemaker)
    assert main(["-a", v1, "-e", "qc-prod"], env) == 0
    capsys.readouterr()
    code = main(["-a", v2, "-e", "qc-prod", "--shadow", "--shadow-sampling", "20", "--json"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return v1, v2, one_json_document(captured.out)


def test_shadow_serves_a_copy_of_the_requests_beside_the_production_variant(aws, shadowed):
    v1, v2, document = shadowed
    config = live_config(aws.sagemaker)
    [production] = config["ProductionVariants"]
    [shadow] = config["ShadowProductionVariants"]
    assert (production["VariantName"], shadow["VariantName"]) == ("AllTraffic", "shadow")
    assert package_of(aws, production["ModelName"]) == v1
    assert package_of(aws, shadow["ModelName"]) == v2
    # SageMaker samples by the shadow's weight relative to the production variant's.
    assert shadow["InitialVariantWeight"] / production["InitialVariantWeight"] == pytest.approx(0.2)
    endpoint = aws.sagemaker.describe_endpoint(EndpointName="qc-prod")
    assert [v["VariantName"] for v in endpoint["ShadowProductionVariants"]] == ["shadow"]
    assert aws.update_requests[-1]["DeploymentConfig"] is None
    assert document["traffic"] == {"change": "shadow", "variant": "shadow", "weight": None,
                                   "weights": None, "shadow_sampling": 20}
    assert [v["shadow"] for v in document["variants"]] == [True, False]


def test_dry_run_shows_the_sampling(aws, env, capsys):
    v1 = register_package(aws.sagemaker)
    assert main(["-a", v1, "-e", "qc-prod"], env) == 0
    capsys.readouterr()
    assert main(["-a", v1, "-e", "qc-prod", "--shadow", "--shadow-sampling", "5", "--dry-run"],
                env) == 0
    captured = capsys.readouterr()
    assert "shadow, a copy of 5 % of the requests" in captured.out + captured.err
    assert "ShadowProductionVariants" not in live_config(aws.sagemaker)


def test_promote_makes_the_shadow_the_production_variant(aws, env, shadowed, capsys):
    _, v2, _ = shadowed
    assert main(["-e", "qc-prod", "--promote", "shadow"], env) == 0, capsys.readouterr().err
    config = live_config(aws.sagemaker)
    [variant] = config["ProductionVariants"]
    assert variant["VariantName"] == "shadow" and package_of(aws, variant["ModelName"]) == v2
    assert not config.get("ShadowProductionVariants")
    assert "ShadowProductionVariants" not in aws.sagemaker.describe_endpoint(
        EndpointName="qc-prod")


def test_remove_variant_ends_the_shadow_test(aws, env, shadowed, capsys):
    v1, _, _ = shadowed
    assert main(["-e", "qc-prod", "--remove-variant", "shadow"], env) == 0
    config = live_config(aws.sagemaker)
    assert not config.get("ShadowProductionVariants")
    assert package_of(aws, config["ProductionVariants"][0]["ModelName"]) == v1


def test_removing_the_production_variant_of_a_shadow_test_is_refused(aws, env, shadowed,
                                                                     capsys):
    assert main(["-e", "qc-prod", "--remove-variant", "AllTraffic"], env) == 2
    assert "--promote shadow" in capsys.readouterr().err


def test_a_plain_deploy_does_not_silently_drop_the_shadow(aws, env, shadowed, capsys):
    v1, _, _ = shadowed
    updates = len(aws.update_requests)
    assert main(["-a", v1, "-e", "qc-prod"], env) == 3
    assert "a deploy would drop it" in capsys.readouterr().err
    assert len(aws.update_requests) == updates


def test_a_second_shadow_is_refused(aws, env, shadowed, capsys):
    v1, _, _ = shadowed
    assert main(["-a", v1, "-e", "qc-prod", "--shadow"], env) == 2
    assert "already serves a variant shadow" in capsys.readouterr().err


def test_a_shadow_beside_two_variants_is_refused(aws, env, capsys):
    v1 = register_package(aws.sagemaker)
    assert main(["-a", v1, "-e", "qc-prod"], env) == 0
    assert main(["-a", v1, "-e", "qc-prod", "--add-variant", "b", "--weight", "1"], env) == 0
    capsys.readouterr()
    assert main(["-a", v1, "-e", "qc-prod", "--shadow"], env) == 2
    assert "A shadow test needs an endpoint with one variant" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--shadow", "--shadow-sampling", "0"], "1-100 %"),
    (["--shadow", "--shadow-sampling", "101"], "1-100 %"),
    (["--shadow-sampling", "10"], "--shadow-sampling needs --shadow"),
    (["--shadow", "--add-variant", "c", "--weight", "1"], "exclude each other"),
    (["--shadow", "--serverless-memory", "1024"], "serves one variant, not 2"),
])
def test_bad_shadow_input_is_refused_before_any_aws_call(aws, env, capsys, argv, says):
    arn = register_package(aws.sagemaker)
    before = sum(aws.calls.values())
    assert main(["-a", arn, "-e", "qc-prod", *argv], env) == 2
    assert says in capsys.readouterr().err
    assert sum(aws.calls.values()) == before
