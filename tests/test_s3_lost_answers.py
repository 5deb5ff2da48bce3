"""The S3 steps survive one lost answer on each of their mutating calls (the run that met it
converges, no duplicate, teardown leaves nothing), and the create path without s3:TagResource keeps
its crash safety -- all read back with boto3."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from steps.s3 import REPLICATION_NOT_YET_VALID, EnsureBucket
from drkit.sandbox.extensions.s3_replication import flush_replication
from tests.conftest import DR, PRIMARY
from tests.lost_answers import lose_matching_answer as lose_answer
from tests.test_s3_step import (  # noqa: F401  (fixtures)
    BUCKETS, DR_BUCKET, PRIMARY_BUCKET, ROLE_NAME, error_code, fake_errors, iam, make_s3_runner, on_create_calls, s3,
    tags_of,
)


def buckets() -> list[str]:
    return sorted(b["Name"] for b in boto3.client("s3", region_name=PRIMARY).list_buckets()["Buckets"])


def roles() -> list[str]:
    return [r["RoleName"] for r in boto3.client("iam", region_name=PRIMARY).list_roles()["Roles"]]


def assert_provisioned(runner) -> None:
    assert buckets() == [PRIMARY_BUCKET, DR_BUCKET] and roles() == [ROLE_NAME]
    for role, region, bucket in BUCKETS:
        assert tags_of(boto3.client("s3", region_name=region), bucket)["DR-Role"] == role
    assert runner.verify().changes == []


PROVISION = [(service, region, operation)
             for region in (PRIMARY, DR)
             for service, operation in (("s3", "CreateBucket"), ("s3", "PutBucketVersioning"),
                                        ("s3", "PutBucketEncryption"), ("s3", "PutPublicAccessBlock"),
                                        ("s3", "PutBucketPolicy"))] + [
    ("iam", PRIMARY, "CreateRole"), ("iam", PRIMARY, "PutRolePolicy"), ("s3", PRIMARY, "PutBucketReplication"),
]


CASES = [pytest.param(*case, True, id="-".join(case)) for case in PROVISION] + [
    pytest.param("s3", region, "CreateBucket", False, id=f"s3-{region}-CreateBucket-tags-after-create")
    for region in (PRIMARY, DR)]


@pytest.mark.parametrize("service,region,operation,create_tags", CASES)
def test_provision_converges_in_one_run_after_a_lost_answer(moto, make_s3_runner, monkeypatch, service, region,
                                                            operation, create_tags):
    monkeypatch.setattr(EnsureBucket, "_create_takes_tags", lambda self, ctx: create_tags)
    runner = make_s3_runner()
    lost = lose_answer(runner.aws, service, region, operation)
    outcome = runner.provision()
    assert outcome.ok, [(r.step.key, r.error) for r in outcome.failed]
    assert lost.lost == 1
    assert_provisioned(runner)
    assert runner.teardown().ok
    assert buckets() == [] and roles() == []


@pytest.mark.parametrize("create_tags", [True, False], ids=["tags-in-create", "tags-after-create"])
def test_a_lost_put_bucket_tagging_converges(moto, make_s3_runner, monkeypatch, create_tags):
    monkeypatch.setattr(EnsureBucket, "_create_takes_tags", lambda self, ctx: create_tags)
    runner = make_s3_runner()
    lost = lose_answer(runner.aws, "s3", DR, "PutBucketTagging")
    assert runner.provision().ok
    assert lost.lost == (0 if create_tags else 1)
    assert_provisioned(runner)


TEARDOWN = [
    ("s3", PRIMARY, "DeleteBucketReplication"), ("s3", PRIMARY, "DeleteObjects"), ("s3", DR, "DeleteObjects"),
    ("s3", PRIMARY, "DeleteBucket"), ("s3", DR, "DeleteBucket"), ("iam", PRIMARY, "DeleteRolePolicy"),
    ("iam", PRIMARY, "DeleteRole"),
]


@pytest.mark.parametrize("service,region,operation", TEARDOWN, ids=lambda v: v)
def test_teardown_leaves_nothing_after_a_lost_answer(moto, make_s3_runner, s3, service, region, operation):
    assert make_s3_runner().provision().ok
    for key in ("a", "b"):
        s3(PRIMARY).put_object(Bucket=PRIMARY_BUCKET, Key=key, Body=b"v1")
        s3(PRIMARY).put_object(Bucket=PRIMARY_BUCKET, Key=key, Body=b"v2")
    flush_replication()
    runner = make_s3_runner()
    lost = lose_answer(runner.aws, service, region, operation)
    outcome = runner.teardown()
    assert outcome.ok, [(r.step.key, r.error) for r in outcome.failed]
    assert lost.lost == 1
    assert buckets() == [] and roles() == []
    assert runner.plan_teardown().changes == []


# Without s3:TagResource ---------------------------------------------------------------------------

def deny_tags_in_create(runner, region: str) -> list[dict]:
    """S3's answer to CreateBucket with Tags for a caller without s3:TagResource: AccessDenied,
    and no bucket."""
    sent: list[dict] = []

    def refuse(params, **_: Any):
        sent.append(dict(params))

    def before(model, params, **_: Any):
        from types import SimpleNamespace
        if b"<Tagging>" in (params.get("body") or b"") or b"<Tags>" in (params.get("body") or b""):
            return SimpleNamespace(status_code=403, headers={}), {
                "Error": {"Code": "AccessDenied", "Message": "User is not authorized to perform: s3:TagResource"},
                "ResponseMetadata": {"HTTPStatusCode": 403}}
        return None

    on_create_calls(runner, "s3", region, "provide-client-params.s3.CreateBucket", refuse)
    on_create_calls(runner, "s3", region, "before-call.s3.CreateBucket", before)
    return sent


@pytest.mark.parametrize("role,region,bucket", BUCKETS)
def test_without_tag_resource_the_bucket_is_created_then_tagged(moto, make_s3_runner, s3, role, region, bucket):
    runner = make_s3_runner()
    sent = deny_tags_in_create(runner, region)
    outcome = runner.provision()
    assert outcome.ok, [(r.step.key, r.error) for r in outcome.failed]
    assert [("Tags" in p.get("CreateBucketConfiguration", {})) for p in sent] == [True, False]
    assert tags_of(s3(region), bucket)["DR-Role"] == role
    assert runner.verify().changes == []


class Killed(BaseException):
    """Stands for SIGKILL."""


@pytest.mark.parametrize("role,region,bucket", BUCKETS)
def test_a_run_killed_between_an_untagged_create_and_its_tags_resumes(moto, make_s3_runner, s3, role, region,
                                                                      bucket):
    """The bucket was recorded (pending) before the create: untagged, it is still drkit's."""
    victim = make_s3_runner()
    deny_tags_in_create(victim, region)

    def kill(**_: Any):
        raise Killed()

    for resend in (True, False):
        victim.aws.client("s3", region, resend=resend).meta.events.register("before-call.s3.PutBucketTagging", kill)
    with pytest.raises(Killed):
        victim.provision([f"ensure_bucket:{role}"])
    assert error_code(lambda: s3(region).get_bucket_tagging(Bucket=bucket)) == "NoSuchTagSet"
    recorded = json.loads(victim.config.state_path.read_text())["steps"][f"ensure_bucket:{role}"]
    assert recorded["resources"]["bucket"] == {"kind": "bucket", "id": bucket, "pending": True}

    resumed = make_s3_runner()
    plan = resumed.plan().changes
    assert [(c.step, c.action, c.attribute) for c in plan if c.step == f"ensure_bucket:{role}"][0] == (
        f"ensure_bucket:{role}", "update", "versioning")
    assert resumed.provision().ok
    assert tags_of(s3(region), bucket)["DR-Role"] == role
    assert resumed.verify().changes == []
    assert "pending" not in json.loads(resumed.config.state_path.read_text())["steps"][f"ensure_bucket:{role}"][
        "resources"]["bucket"]


def test_teardown_removes_a_pending_untagged_bucket(moto, make_s3_runner, s3):
    victim = make_s3_runner()
    deny_tags_in_create(victim, DR)

    def kill(**_: Any):
        raise Killed()

    for resend in (True, False):
        victim.aws.client("s3", DR, resend=resend).meta.events.register("before-call.s3.PutBucketTagging", kill)
    with pytest.raises(Killed):
        victim.provision(["ensure_bucket:dr"])
    assert make_s3_runner().teardown().ok
    assert buckets() == []


def test_a_pending_record_never_vouches_for_a_bucket_with_anothers_tags(moto, make_s3_runner, s3):
    victim = make_s3_runner()
    deny_tags_in_create(victim, DR)

    def kill(**_: Any):
        raise Killed()

    for resend in (True, False):
        victim.aws.client("s3", DR, resend=resend).meta.events.register("before-call.s3.PutBucketTagging", kill)
    with pytest.raises(Killed):
        victim.provision(["ensure_bucket:dr"])
    theirs = [{"Key": "Owner", "Value": "analytics"}]
    s3(DR).put_bucket_tagging(Bucket=DR_BUCKET, Tagging={"TagSet": theirs})
    runner = make_s3_runner()
    outcome = runner.provision(["ensure_bucket:dr"])
    assert "not drkit's" in outcome.failed[0].error.message
    assert s3(DR).get_bucket_tagging(Bucket=DR_BUCKET)["TagSet"] == theirs
    assert "Status" not in s3(DR).get_bucket_versioning(Bucket=DR_BUCKET)
    teardown = runner.teardown()
    assert [c.action for c in teardown.changes if c.step == "ensure_bucket:dr"] == ["skip"]
    s3(DR).head_bucket(Bucket=DR_BUCKET)


# Reads that lag, and what a 403 means ---------------------------------------------------------------

def test_tags_that_lag_a_us_east_1_create_do_not_refuse_drkits_own_bucket(moto, make_s3_runner, s3):
    """In us-east-1 only the tags sent with the create prove a bucket is new: a tag read that
    still says NoSuchTagSet is waited for, not taken as "not drkit's"."""
    runner = make_s3_runner()
    lose_answer(runner.aws, "s3", PRIMARY, "CreateBucket")  # S3 cannot say whether it is new
    lagging = fake_errors(runner, "s3", PRIMARY, "GetBucketTagging", 2, "NoSuchTagSet", status=404)
    assert runner.provision().ok
    assert lagging.count == 0
    assert tags_of(s3(PRIMARY), PRIMARY_BUCKET)["ManagedBy"] == "drkit"


def test_a_403_on_head_bucket_names_both_causes(moto, make_s3_runner):
    runner = make_s3_runner()
    fake_errors(runner, "s3", DR, "HeadBucket", 10, "403", status=403)
    error = next(r.error for r in runner.plan().results if r.step.key == "ensure_bucket:dr")
    assert "another account" in error.message and "s3:ListBucket" in error.message


@pytest.mark.parametrize("message,retried", [
    ("Versioning must be 'Enabled' on the bucket to apply a replication configuration", True),
    ("Destination bucket must have versioning enabled.", True),
    ("The XML you provided was not well-formed or did not validate against our published schema", False),
])
def test_put_bucket_replication_retries_only_awss_versioning_refusals(message, retried):
    [kind] = REPLICATION_NOT_YET_VALID
    assert kind.matches("InvalidRequest", message) is retried
