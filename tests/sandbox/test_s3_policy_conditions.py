"""Contract tests: bucket policies with a Condition are evaluated as on AWS.

Each test names the AWS page that documents the behaviour it asserts.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import boto3

from drkit.sandbox.timings import SandboxTimings
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from drkit.sandbox import SANDBOX_CREDENTIALS, make_app
from drkit.sandbox.extensions.s3_policy_conditions import RequestContext, condition_matches

BUCKET = "drkit-tls-only"
REGION = "us-east-1"

_clients: dict[str | None, object] = {}


def s3(endpoint_url: str | None = None):
    """Clients are slow to create; moto intercepts them whenever a mock is active, so reuse them."""
    if endpoint_url not in _clients:
        _clients[endpoint_url] = boto3.client(
            "s3", region_name=REGION, endpoint_url=endpoint_url, config=Config(retries={"max_attempts": 1})
        )
    return _clients[endpoint_url]


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


TLS_ONLY = {
    # The standard policy from AWS's S3 security best practices.
    "Sid": "AllowSSLRequestsOnly",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


@pytest.fixture
def tls_bucket(aws):
    s3().create_bucket(Bucket=BUCKET)
    s3().put_bucket_policy(Bucket=BUCKET, Policy=policy(TLS_ONLY))
    return aws


def status_of(call) -> int:
    try:
        return call()["ResponseMetadata"]["HTTPStatusCode"]
    except ClientError as err:
        return err.response["ResponseMetadata"]["HTTPStatusCode"]


def test_tls_only_policy_allows_the_owner_over_https(tls_bucket):
    # aws:SecureTransport is true for requests over TLS; boto3's default endpoint is https, and
    # in-process moto sees that URL, so the Deny does not apply.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html#transit
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-securetransport
    s3().put_object(Bucket=BUCKET, Key="k", Body=b"v")
    assert s3().get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"v"
    s3().delete_object(Bucket=BUCKET, Key="k")


def test_tls_only_policy_denies_plain_http_in_process(tls_bucket):
    # The same request to an http:// endpoint is not secure transport: explicit Deny (403).
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
    assert status_of(lambda: s3("http://s3.amazonaws.com").put_object(Bucket=BUCKET, Key="k", Body=b"v")) == 403
    assert status_of(lambda: s3().put_object(Bucket=BUCKET, Key="k", Body=b"v")) == 200
    assert status_of(lambda: s3("http://s3.amazonaws.com").get_object(Bucket=BUCKET, Key="k")) == 403


def sandbox_http_client(timings: SandboxTimings | None = None):
    """An S3 client whose requests are served by the sandbox's WSGI app (what SandboxServer and
    `python -m drkit.sandbox` serve) at an http:// address, without opening a socket."""
    from werkzeug.test import Client

    app = Client(make_app(timings))

    class Body:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def stream(self, **_: object):
            yield self.data

        def read(self, *_: object) -> bytes:
            return self.data

    def send(request, **_: object) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body.read() if hasattr(request.body, "read") else request.body
        answer = app.open(
            url.path + (f"?{url.query}" if url.query else ""), method=request.method,
            headers=dict(request.headers), data=body, base_url=f"{url.scheme}://{url.netloc}",
            environ_overrides={"REMOTE_ADDR": "127.0.0.1"},
        )
        return AWSResponse(request.url, answer.status_code, dict(answer.headers), Body(answer.get_data()))

    client = boto3.client(
        "s3", region_name=REGION, endpoint_url="http://127.0.0.1:5000",
        config=Config(retries={"max_attempts": 1}), **SANDBOX_CREDENTIALS,
    )
    client.meta.events.register("before-send.s3", send)
    return client


def test_tls_only_policy_denies_plain_http_to_the_sandbox_server_when_told_to(tls_bucket, fast_timings):
    # Plain HTTP is not secure transport...
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-securetransport
    fast_timings.loopback_http_is_tls = False
    client = sandbox_http_client(fast_timings)
    assert status_of(lambda: client.put_object(Bucket=BUCKET, Key="k", Body=b"v")) == 403
    assert status_of(lambda: client.list_objects_v2(Bucket=BUCKET)) == 200  # same backends as in-process


def test_the_sandbox_server_stands_in_for_https_by_default(tls_bucket):
    # ...but the sandbox's loopback HTTP server stands in for AWS's HTTPS endpoints, so by default
    # (make_app() with no timings) a TLS-only policy lets drkit's requests through, as on AWS.
    client = sandbox_http_client()
    assert status_of(lambda: client.put_object(Bucket=BUCKET, Key="k", Body=b"v")) == 200


def test_a_statement_whose_condition_does_not_match_neither_allows_nor_denies(tls_bucket):
    # A statement applies only when its Condition is true; an Allow that does not apply does not
    # turn into a Deny, and the owner keeps access.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html
    allow_from_vpce = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
        "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}},
    }
    s3().put_bucket_policy(Bucket=BUCKET, Policy=policy(TLS_ONLY, allow_from_vpce))
    s3().put_object(Bucket=BUCKET, Key="k", Body=b"v")
    assert s3().get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"v"


def test_deny_unencrypted_uploads(tls_bucket):
    # StringNotEquals on a key the request lacks is true (negated operator), so an upload without
    # x-amz-server-side-encryption is denied; with the header it is allowed.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
    deny_unencrypted = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
        "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
    }
    s3().put_bucket_policy(Bucket=BUCKET, Policy=policy(TLS_ONLY, deny_unencrypted))
    assert status_of(lambda: s3().put_object(Bucket=BUCKET, Key="plain", Body=b"v")) == 403
    assert status_of(
        lambda: s3().put_object(Bucket=BUCKET, Key="sealed", Body=b"v", ServerSideEncryption="AES256")
    ) == 200


@pytest.mark.parametrize(
    ("operator", "key", "expected", "context", "result"),
    [
        # Missing keys: false for positive operators, true for negated ones, IfExists and Null.
        ("Bool", "aws:SecureTransport", "false", {}, False),
        ("StringNotLike", "aws:UserAgent", "curl*", {}, True),
        ("StringEqualsIfExists", "aws:Referer", "x", {}, True),
        ("Null", "aws:SourceIp", "true", {}, True),
        ("Null", "aws:SourceIp", "false", {"aws:SourceIp": "10.0.0.1"}, True),
        # Values of one key are ORed; negated operators need no value to match.
        ("StringEquals", "aws:PrincipalAccount", ["1", "2"], {"aws:PrincipalAccount": "2"}, True),
        ("StringNotEquals", "aws:PrincipalAccount", ["1", "2"], {"aws:PrincipalAccount": "2"}, False),
        ("StringLike", "s3:prefix", "home/*", {"s3:prefix": "home/alice"}, True),
        ("StringEqualsIgnoreCase", "aws:UserAgent", "BOTO", {"aws:UserAgent": "boto"}, True),
        ("IpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:SourceIp": "10.1.2.3"}, True),
        ("NotIpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:SourceIp": "192.168.0.1"}, True),
        ("NumericLessThanEquals", "s3:max-keys", "10", {"s3:max-keys": "10"}, True),
        ("DateGreaterThan", "aws:CurrentTime", "2020-01-01T00:00:00Z", {"aws:CurrentTime": "2024-05-01T00:00:00Z"}, True),
        ("Bool", "aws:SecureTransport", False, {"aws:SecureTransport": "false"}, True),
        ("ArnLike", "aws:SourceArn", "arn:aws:s3:::logs-*", {"aws:SourceArn": "arn:aws:s3:::logs-1"}, True),
        # Set operators on multi-valued keys.
        ("ForAnyValue:StringEquals", "aws:TagKeys", ["a", "b"], {"aws:TagKeys": ["c", "b"]}, True),
        ("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b"], {"aws:TagKeys": ["a", "c"]}, False),
        ("ForAllValues:StringEquals", "aws:TagKeys", ["a"], {}, True),
    ],
)
def test_condition_operators(operator, key, expected, context, result):
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
    assert condition_matches(operator, key, expected, RequestContext(context)) is result
