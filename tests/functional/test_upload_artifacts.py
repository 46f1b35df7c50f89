"""Step 2 against moto's S3: bucket checks, the encrypted, checksum-verified upload, rollback."""

from __future__ import annotations

import base64
import hashlib

import boto3
import pytest
from moto import mock_aws

from modules import upload_artifacts
from modules.upload_artifacts import (
    check_bucket,
    delete_uploaded_model,
    expected_checksum,
    model_s3_key,
    parse_s3_uri,
    stored_checksum,
    upload_model_to_s3,
)
from tests.conftest import REGION
from tests.packaging_support import BUCKET, bucket_keys, create_bucket
from utils.errors import AwsError, ValidationError


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        create_bucket(client)
        yield client


@pytest.fixture
def bundle(tmp_path):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"\x1f\x8b" + b"bundle-bytes" * 1000)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_key_is_content_addressed():
    sha = "ab" * 32
    assert model_s3_key("plmscw", "dev", "inference-data", sha) == \
        f"plmscw/dev/inference-data/models/{'ab' * 8}/model.tar.gz"


def test_parse_s3_uri():
    assert parse_s3_uri("s3://bucket/a/b.tar.gz") == ("bucket", "a/b.tar.gz")
    for not_an_object in ("https://bucket/a", "s3://bucket/", "s3://bucket", "s3:///key"):
        with pytest.raises(ValidationError):
            parse_s3_uri(not_an_object)


def test_bucket_in_the_region_passes(s3):
    check_bucket(s3, BUCKET, REGION)


def test_missing_bucket_says_how_to_create_it(s3):
    with pytest.raises(AwsError) as caught:
        check_bucket(s3, "no-such-bucket-here", REGION)
    assert caught.value.message == "S3 bucket 'no-such-bucket-here' does not exist"
    assert "aws s3 mb s3://no-such-bucket-here --region ca-central-1" in caught.value.hints[0]
    assert caught.value.exit_code == 3


@pytest.mark.parametrize("bucket_region", ["us-west-2", "us-east-1"])
def test_bucket_in_another_region_is_refused(s3, bucket_region):
    other = boto3.client("s3", region_name=bucket_region)
    if bucket_region == "us-east-1":
        other.create_bucket(Bucket="bucket-elsewhere")
    else:
        create_bucket(other, "bucket-elsewhere", bucket_region)
    with pytest.raises(AwsError) as caught:
        check_bucket(s3, "bucket-elsewhere", REGION)
    assert caught.value.exit_code == 3  # as the README's troubleshooting section says
    assert caught.value.message == f"S3 bucket 'bucket-elsewhere' is in {bucket_region}, not in {REGION}"
    assert any("DATA_BUCKET" in hint for hint in caught.value.hints)


def test_region_falls_back_to_get_bucket_location(s3):
    class NoRegionHeader:
        def head_bucket(self, **kwargs):
            return {}

        def get_bucket_location(self, **kwargs):
            return {"LocationConstraint": None}

    with pytest.raises(AwsError, match="is in us-east-1"):
        check_bucket(NoRegionHeader(), BUCKET, REGION)


def test_forbidden_bucket_is_an_access_error(s3):
    from botocore.exceptions import ClientError

    class Forbidden:
        def head_bucket(self, **kwargs):
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")

    with pytest.raises(AwsError) as caught:
        check_bucket(Forbidden(), BUCKET, REGION)
    assert "was denied" in caught.value.message
    assert any("s3:PutObject" in hint for hint in caught.value.hints)


def test_upload_is_encrypted_checksummed_and_records_the_sha256(s3, bundle):
    path, sha = bundle
    key = model_s3_key("plmscw", "dev", "inference-data", sha)
    uri = upload_model_to_s3(s3, path, BUCKET, key, sha256=sha)
    assert uri == f"s3://{BUCKET}/{key}"
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["Metadata"] == {"sha256": sha}
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(sha)).decode()
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == path.read_bytes()
    assert stored_checksum(s3, BUCKET, key) == expected_checksum(path)


def test_forged_metadata_does_not_make_another_object_the_bundle(s3, bundle):
    """Anyone with PutObject can write x-amz-meta-sha256; only S3's checksum is trusted."""
    path, sha = bundle
    s3.put_object(Bucket=BUCKET, Key="k/model.tar.gz", Body=b"something else",
                  Metadata={"sha256": sha}, ChecksumAlgorithm="SHA256")
    assert stored_checksum(s3, BUCKET, "k/model.tar.gz") != expected_checksum(path)


def test_an_object_without_a_sha256_checksum_is_never_taken_for_the_bundle(s3, bundle):
    path, sha = bundle
    s3.put_object(Bucket=BUCKET, Key="k/model.tar.gz", Body=path.read_bytes(),
                  Metadata={"sha256": sha})
    assert stored_checksum(s3, BUCKET, "k/model.tar.gz") == ""


def test_large_bundles_go_multipart(s3, tmp_path, monkeypatch):
    monkeypatch.setattr(upload_artifacts, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(upload_artifacts, "MULTIPART_CHUNK", 5 * 1024 * 1024)
    path = tmp_path / "big.tar.gz"
    path.write_bytes(bytes(range(256)) * (12 * 1024 * 4))  # 12 MB: three parts
    upload_model_to_s3(s3, path, BUCKET, "big/model.tar.gz", sha256="x")
    assert s3.get_object(Bucket=BUCKET, Key="big/model.tar.gz")["Body"].read() == path.read_bytes()
    assert s3.head_object(Bucket=BUCKET, Key="big/model.tar.gz")["ETag"].endswith('-3"')
    # S3's composite checksum of the three parts. The emulator (moto 5.2) computes the same
    # digest but drops the "-3" that S3 appends, so it only shows the arithmetic is S3's.
    expected = expected_checksum(path)
    assert expected.endswith("-3")
    assert stored_checksum(s3, BUCKET, "big/model.tar.gz") in (expected, expected[:-2])


def test_stored_checksum_of_a_missing_object_is_none(s3):
    assert stored_checksum(s3, BUCKET, "nothing/here") is None


def test_failed_upload_is_an_aws_error(s3, bundle):
    path, sha = bundle
    with pytest.raises(AwsError) as caught:
        upload_model_to_s3(s3, path, "bucket-that-does-not-exist", "k/model.tar.gz", sha256=sha)
    assert caught.value.message.startswith(
        "Upload to s3://bucket-that-does-not-exist/k/model.tar.gz failed")


def test_delete_uploaded_model(s3, bundle):
    path, sha = bundle
    upload_model_to_s3(s3, path, BUCKET, "k/model.tar.gz", sha256=sha)
    delete_uploaded_model(s3, BUCKET, "k/model.tar.gz")
    assert bucket_keys(s3) == []


def test_delete_failure_only_warns(capsys):
    class Broken:
        def delete_object(self, **kwargs):
            raise RuntimeError("network down")

    delete_uploaded_model(Broken(), BUCKET, "k")
    assert "Could not remove s3://" in capsys.readouterr().err
