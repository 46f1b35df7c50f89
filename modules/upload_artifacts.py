"""Step 2 of packaging: put `model.tar.gz` in S3 under a content-addressed key.

The key is `<stack>/<repo>/<branch>/models/<first 16 hex digits of the sha256>/model.tar.gz`, so
the same bundle always lands on the same key and a re-run finds it instead of uploading again.
The upload goes through boto3's transfer manager (multipart and parallel parts for big models,
retries per part), with server-side encryption and an S3-verified SHA-256 checksum. A re-run
skips the upload only when S3's own checksum of the object at that key (HeadObject with
ChecksumMode) is the bundle's; user metadata, which anyone may set, is not trusted for that.

Before anything is written the bucket is checked: it must exist, be reachable and be in the
deploy region (SageMaker reads model data only from a bucket in the endpoint's region).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

from utils import output
from utils.aws_errors import error_code
from utils.errors import AwsError, ValidationError

SSE_ALGORITHM = "AES256"
SHA256_METADATA_KEY = "sha256"  # a label for people; the idempotency check uses S3's checksum
KEY_PREFIX_DIGITS = 16
MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024
MAX_CONCURRENCY = 4
_MISSING_CODES = {"404", "NoSuchBucket", "NotFound"}
_FORBIDDEN_CODES = {"403", "AccessDenied", "Forbidden"}
_LEGACY_LOCATIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}


def model_s3_key(stack: str, repo_name: str, branch: str, sha256: str) -> str:
    return f"{stack}/{repo_name}/{branch}/models/{sha256[:KEY_PREFIX_DIGITS]}/model.tar.gz"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str, what: str = "S3 object URI") -> tuple[str, str]:
    """(bucket, key) of an s3://bucket/key URI; both parts must be non-empty."""
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if not match:
        raise ValidationError(f"Not an {what}: {uri!r}", hint="Expected s3://bucket/key.")
    return match.group(1), match.group(2)


def check_bucket(s3: Any, bucket: str, region: str) -> None:
    """The bucket exists, we may use it, and it lives in `region`; else a clear error."""
    from botocore.exceptions import ClientError

    try:
        response = s3.head_bucket(Bucket=bucket)
        bucket_region = response.get("BucketRegion") or _bucket_location(s3, bucket)
    except ClientError as exc:
        bucket_region = _region_header(exc)
        code = error_code(exc)
        if code in _MISSING_CODES:
            raise _bucket_missing(bucket, region) from None
        if code in _FORBIDDEN_CODES:
            raise AwsError(f"Access to S3 bucket '{bucket}' was denied (HeadBucket: {code})",
                           hint=["Check that DATA_BUCKET is your bucket and that your identity "
                                 "may s3:ListBucket and s3:PutObject on it.",
                                 "Check which identity you are using: aws sts get-caller-identity"]
                           ) from None
        if not bucket_region:
            raise
    if bucket_region != region:
        # Exit 3 like a missing bucket: the name is well-formed, AWS's answer makes it unusable.
        raise AwsError(
            f"S3 bucket '{bucket}' is in {bucket_region}, not in {region}",
            details=["SageMaker only reads model data from a bucket in the endpoint's region."],
            hint=[f"Set DATA_BUCKET to a bucket in {region}, or create one: "
                  f"aws s3 mb s3://<name> --region {region}",
                  f"Or package for {bucket_region}: export AWS_REGION={bucket_region}"])


def _bucket_location(s3: Any, bucket: str) -> str:
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return _LEGACY_LOCATIONS.get(location, location)


def _region_header(exc: Any) -> str | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return headers.get("x-amz-bucket-region")


def _bucket_missing(bucket: str, region: str) -> AwsError:
    return AwsError(f"S3 bucket '{bucket}' does not exist",
                    hint=[f"Create it in {region}: aws s3 mb s3://{bucket} --region {region}",
                          "Or set DATA_BUCKET to the name of an existing bucket in that region."])


def stored_checksum(s3: Any, bucket: str, key: str) -> str | None:
    """S3's own SHA-256 checksum of the object at `key` ("" when it has none); None when absent.

    S3 computes it from the bytes it received (ChecksumAlgorithm SHA256 on upload) and nobody can
    set it; user metadata such as x-amz-meta-sha256 can say anything, so it is never trusted.
    """
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if error_code(exc) in _MISSING_CODES | {"NoSuchKey"}:
            return None
        raise
    return head.get("ChecksumSHA256") or ""


def expected_checksum(path: Path) -> str:
    """The ChecksumSHA256 that S3 records for `path` as upload_model_to_s3 sends it.

    One PutObject below MULTIPART_THRESHOLD: base64 of the file's sha256. Above it, parts of
    MULTIPART_CHUNK bytes, and S3's composite checksum: base64 of the sha256 of the parts'
    digests, then "-<number of parts>".
    """
    if Path(path).stat().st_size < MULTIPART_THRESHOLD:
        with open(path, "rb") as handle:
            return _b64(hashlib.file_digest(handle, "sha256").digest())
    digests = []
    with open(path, "rb") as handle:
        while part := handle.read(MULTIPART_CHUNK):
            digests.append(hashlib.sha256(part).digest())
    return f"{_b64(hashlib.sha256(b''.join(digests)).digest())}-{len(digests)}"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def upload_model_to_s3(s3: Any, bundle_path: Path, bucket: str, key: str, *,
                       sha256: str) -> str:
    """Upload `bundle_path` to `bucket/key` (encrypted, checksum-verified); return its s3:// URI."""
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD,
                            multipart_chunksize=MULTIPART_CHUNK, max_concurrency=MAX_CONCURRENCY)
    extra = {"ServerSideEncryption": SSE_ALGORITHM, "ContentType": "application/gzip",
             "Metadata": {SHA256_METADATA_KEY: sha256}, "ChecksumAlgorithm": "SHA256"}
    try:
        s3.upload_file(str(bundle_path), bucket, key, ExtraArgs=extra, Config=config)
    except S3UploadFailedError as exc:
        # The transfer manager wraps the ClientError in its own exception type.
        raise AwsError(f"Upload to {s3_uri(bucket, key)} failed: {exc}",
                       hint="Check that your identity may s3:PutObject on the bucket "
                            "(and kms:GenerateDataKey if the bucket enforces KMS).") from None
    return s3_uri(bucket, key)


def delete_uploaded_model(s3: Any, bucket: str, key: str) -> None:
    """Remove an object this run uploaded (rollback when registration fails)."""
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:  # noqa: BLE001 - rollback must not hide the original error
        output.print_warning(f"Could not remove {s3_uri(bucket, key)}: {exc}")
