"""Contract: the sandbox (moto 5.2) enforces S3 conditional writes and deletes as AWS documents
them, which drkit's S3 state lock and compare-and-swap state writes rely on.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
  PutObject with If-None-Match: * fails with 412 PreconditionFailed when the key exists;
  with If-Match: <etag> it fails with 412 when the current ETag differs, and with 404 NoSuchKey
  when there is no object.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html
  DeleteObject with If-Match: <etag> fails with 412 when the current ETag differs; conditions
  apply to the current version, so after a delete marker the key can be created again.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

BUCKET = "conditional-writes"


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return client


def code_of(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_if_none_match_creates_once(s3):
    s3.put_object(Bucket=BUCKET, Key="lock", Body=b"first", IfNoneMatch="*")
    assert code_of(lambda: s3.put_object(Bucket=BUCKET, Key="lock", Body=b"second", IfNoneMatch="*")) == (
        "PreconditionFailed", 412)
    assert s3.get_object(Bucket=BUCKET, Key="lock")["Body"].read() == b"first"


def test_if_match_swaps_only_the_version_read(s3):
    first = s3.put_object(Bucket=BUCKET, Key="state", Body=b"1")["ETag"]
    second = s3.put_object(Bucket=BUCKET, Key="state", Body=b"2", IfMatch=first)["ETag"]
    assert code_of(lambda: s3.put_object(Bucket=BUCKET, Key="state", Body=b"stale", IfMatch=first)) == (
        "PreconditionFailed", 412)
    assert s3.get_object(Bucket=BUCKET, Key="state")["ETag"] == second
    assert code_of(lambda: s3.put_object(Bucket=BUCKET, Key="missing", Body=b"x", IfMatch=first))[1] == 404


def test_conditional_delete_and_create_after_a_delete_marker(s3):
    etag = s3.put_object(Bucket=BUCKET, Key="lock", Body=b"a", IfNoneMatch="*")["ETag"]
    assert code_of(lambda: s3.delete_object(Bucket=BUCKET, Key="lock", IfMatch='"not-the-etag"')) == (
        "PreconditionFailed", 412)
    s3.delete_object(Bucket=BUCKET, Key="lock", IfMatch=etag)
    s3.put_object(Bucket=BUCKET, Key="lock", Body=b"b", IfNoneMatch="*")  # a delete marker is no object
    assert s3.get_object(Bucket=BUCKET, Key="lock")["Body"].read() == b"b"
