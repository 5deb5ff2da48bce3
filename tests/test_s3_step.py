"""ensure_bucket, ensure_replication_role and ensure_bucket_replication against moto (with drkit's
S3 replication and bucket-policy extensions), proved by reading AWS back with boto3."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import ClientError

from drkit.aws import RetryPolicy
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.outputs import flat_outputs
from drkit.runner import Runner
from drkit.tags import to_aws
from drkit.sandbox.extensions.s3_replication import flush_replication
from steps.s3 import EnsureBucket, EnsureBucketReplication, EnsureReplicationRole
from tests.conftest import DR, PRIMARY

PRIMARY_BUCKET, DR_BUCKET = "dr-primary-bucket-test", "dr-secondary-bucket-test"
ROLE_NAME = "s3-replication-role-test"
BUCKETS = [("primary", PRIMARY, PRIMARY_BUCKET), ("dr", DR, DR_BUCKET)]
ALL_BLOCKED = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
               "RestrictPublicBuckets": True}


def s3_steps() -> list:
    return [EnsureBucket("primary"), EnsureBucket("dr"), EnsureReplicationRole("global"),
            EnsureBucketReplication("global")]


@pytest.fixture
def make_s3_runner(tmp_path: Path, clock) -> Callable[..., Runner]:
    def factory(env: str = "test") -> Runner:
        config = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json")}, environ={})
        return Runner(config, s3_steps(), clock=clock, log=make_logger("json", level="warning"),
                      retry=RetryPolicy(botocore_max_attempts=1))

    return factory


@pytest.fixture
def s3() -> Callable[[str], Any]:
    return lambda region=PRIMARY: boto3.client("s3", region_name=region)


@pytest.fixture
def iam() -> Any:
    return boto3.client("iam", region_name=PRIMARY)


@pytest.fixture
def provisioned(moto, make_s3_runner) -> Runner:
    runner = make_s3_runner()
    outcome = runner.provision()
    assert outcome.ok, [(r.step.key, r.error) for r in outcome.failed]
    return runner


def tags_of(client, bucket: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in client.get_bucket_tagging(Bucket=bucket)["TagSet"]}


def error_code(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"]


def fake_errors(runner: Runner, service: str, region: str, operation: str, times: int, code: str,
                status: int = 400, message: str | None = None) -> SimpleNamespace:
    """Answer the next `times` calls of `operation` with `code` before they reach the sandbox."""
    left = SimpleNamespace(count=times)

    def before_call(model, **_):
        if model.name == operation and left.count > 0:
            left.count -= 1
            return (SimpleNamespace(status_code=status, headers={}),
                    {"Error": {"Code": code, "Message": message or f"injected {code}"},
                     "ResponseMetadata": {"HTTPStatusCode": status}})
        return None

    runner.aws.client(service, region).meta.events.register(f"before-call.{service}", before_call)
    return left


def on_create_calls(runner: Runner, service: str, region: str, event: str, handler: Callable[..., Any]) -> None:
    """Hook a create: calls with `settled` go through the gateway's client that does not resend."""
    for resend in (True, False):
        runner.aws.client(service, region, resend=resend).meta.events.register(event, handler)


# Create ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role,region,bucket", BUCKETS)
def test_provision_builds_each_bucket_as_the_seed_specifies(provisioned, s3, role, region, bucket):
    client = s3(region)
    assert client.get_bucket_location(Bucket=bucket)["LocationConstraint"] == (None if region == PRIMARY else region)
    assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == ALL_BLOCKED
    policy = json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"] == [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }]
    assert tags_of(client, bucket) == {
        "Name": bucket, "Environment": "test", "Project": "DisasterRecovery", "ManagedBy": "drkit",
        "DR-Role": role, "drkit:step": "ensure_bucket", "drkit:resource": "bucket",
    }


def test_create_bucket_carries_location_and_tags_in_the_create_call(moto, make_s3_runner):
    runner = make_s3_runner()
    sent: dict[str, dict] = {}
    for region in (PRIMARY, DR):
        def capture(params, region=region, **_):
            sent[region] = dict(params)  # returns None: botocore keeps the params as they are

        on_create_calls(runner, "s3", region, "provide-client-params.s3.CreateBucket", capture)
    assert runner.provision().ok
    tags = {"Name": PRIMARY_BUCKET, "ManagedBy": "drkit", "Environment": "test", "DR-Role": "primary"}
    primary = sent[PRIMARY]["CreateBucketConfiguration"]
    assert "LocationConstraint" not in primary  # us-east-1 takes none
    assert tags.items() <= {t["Key"]: t["Value"] for t in primary["Tags"]}.items()
    dr = sent[DR]["CreateBucketConfiguration"]
    assert dr["LocationConstraint"] == DR
    assert {t["Key"]: t["Value"] for t in dr["Tags"]}["Name"] == DR_BUCKET


def test_replication_role_may_do_only_what_replication_needs(provisioned, iam):
    role = iam.get_role(RoleName=ROLE_NAME)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == {
        "Name": ROLE_NAME, "Environment": "test", "Project": "DisasterRecovery", "ManagedBy": "drkit",
        "DR-Role": "global", "drkit:step": "ensure_replication_role", "drkit:resource": "role",
    }
    assert iam.list_attached_role_policies(RoleName=ROLE_NAME)["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName=ROLE_NAME)["PolicyNames"] == ["s3-replication"]
    document = iam.get_role_policy(RoleName=ROLE_NAME, PolicyName="s3-replication")["PolicyDocument"]
    granted = {tuple(s["Resource"]): sorted(s["Action"]) for s in document["Statement"]}
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in document["Statement"])
    assert granted == {
        (f"arn:aws:s3:::{PRIMARY_BUCKET}",): ["s3:GetReplicationConfiguration", "s3:ListBucket"],
        (f"arn:aws:s3:::{PRIMARY_BUCKET}/*",):
            ["s3:GetObjectVersionAcl", "s3:GetObjectVersionForReplication", "s3:GetObjectVersionTagging"],
        (f"arn:aws:s3:::{DR_BUCKET}/*",): ["s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags"],
    }


def test_primary_replicates_the_whole_bucket_to_dr_with_rtc(provisioned, s3, iam):
    role_arn = iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
    configuration = s3(PRIMARY).get_bucket_replication(Bucket=PRIMARY_BUCKET)["ReplicationConfiguration"]
    assert configuration == {
        "Role": role_arn,
        "Rules": [{
            "ID": "drkit-primary-to-dr", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "Destination": {
                "Bucket": f"arn:aws:s3:::{DR_BUCKET}",
                "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
                "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": 15}},
            },
        }],
    }
    dr_replication = error_code(lambda: s3(DR).get_bucket_replication(Bucket=DR_BUCKET))
    assert dr_replication == "ReplicationConfigurationNotFoundError"
    outputs = flat_outputs(provisioned.config, provisioned.outputs())
    assert outputs["primary_bucket_name"] == PRIMARY_BUCKET
    assert outputs["dr_bucket_name"] == DR_BUCKET
    assert outputs["replication_role_arn"] == role_arn


def test_objects_and_delete_markers_written_to_primary_appear_in_dr(provisioned, s3):
    primary, dr = s3(PRIMARY), s3(DR)
    put = primary.put_object(Bucket=PRIMARY_BUCKET, Key="audit/2024-01-01.log", Body=b"payment 42 settled")
    assert primary.head_object(Bucket=PRIMARY_BUCKET, Key="audit/2024-01-01.log")["ReplicationStatus"] == "PENDING"
    flush_replication()
    assert primary.head_object(Bucket=PRIMARY_BUCKET, Key="audit/2024-01-01.log")["ReplicationStatus"] == "COMPLETED"
    replica = dr.get_object(Bucket=DR_BUCKET, Key="audit/2024-01-01.log")
    assert replica["ReplicationStatus"] == "REPLICA"
    assert replica["VersionId"] == put["VersionId"]
    assert replica["Body"].read() == b"payment 42 settled"

    marker = primary.delete_object(Bucket=PRIMARY_BUCKET, Key="audit/2024-01-01.log")
    flush_replication()
    markers = dr.list_object_versions(Bucket=DR_BUCKET)["DeleteMarkers"]
    assert [m["VersionId"] for m in markers] == [marker["VersionId"]]


def test_a_request_without_tls_is_denied(provisioned, s3):
    # In-process requests go to https:// endpoints (secure transport); an http:// endpoint is not.
    s3(PRIMARY).put_object(Bucket=PRIMARY_BUCKET, Key="over-tls", Body=b"ok")
    insecure = boto3.client("s3", region_name=PRIMARY, endpoint_url="http://s3.amazonaws.com")
    denied = {"AccessDenied", "403"}  # the sandbox answers a bare 403
    assert error_code(lambda: insecure.put_object(Bucket=PRIMARY_BUCKET, Key="plain", Body=b"no")) in denied
    assert error_code(lambda: insecure.get_object(Bucket=PRIMARY_BUCKET, Key="over-tls")) in denied
    assert error_code(lambda: s3(PRIMARY).head_object(Bucket=PRIMARY_BUCKET, Key="plain")) == "404"


# Verify, drift, convergence ----------------------------------------------------------------------

def test_verify_is_clean_then_reports_each_bucket_drift_and_provision_repairs_it(provisioned, s3):
    runner, primary, dr = provisioned, s3(PRIMARY), s3(DR)
    assert runner.verify().changes == []

    dr.put_bucket_versioning(Bucket=DR_BUCKET, VersioningConfiguration={"Status": "Suspended"})
    primary.put_bucket_encryption(Bucket=PRIMARY_BUCKET, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    primary.delete_public_access_block(Bucket=PRIMARY_BUCKET)
    reader = {"Sid": "AuditReader", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
              "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{DR_BUCKET}/*"}
    dr.put_bucket_policy(Bucket=DR_BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [reader]}))
    tags = tags_of(primary, PRIMARY_BUCKET)
    del tags["Project"]
    tags["CostCenter"] = "payments"  # someone else's tag: drkit keeps it
    primary.put_bucket_tagging(Bucket=PRIMARY_BUCKET, Tagging={"TagSet": to_aws(tags)})

    findings = runner.verify().changes
    assert {(f.step, f.attribute) for f in findings} == {
        ("ensure_bucket:dr", "versioning"), ("ensure_bucket:primary", "encryption"),
        ("ensure_bucket:primary", "public_access_block"), ("ensure_bucket:dr", "tls_only_policy"),
        ("ensure_bucket:primary", "tags"),
    }
    versioning = next(f for f in findings if f.attribute == "versioning")
    assert versioning.region == DR and versioning.expected == "Enabled" and versioning.actual == "Suspended"

    assert runner.provision().ok
    assert runner.verify().changes == []
    assert dr.get_bucket_versioning(Bucket=DR_BUCKET)["Status"] == "Enabled"
    assert primary.get_public_access_block(Bucket=PRIMARY_BUCKET)["PublicAccessBlockConfiguration"] == ALL_BLOCKED
    statements = json.loads(dr.get_bucket_policy(Bucket=DR_BUCKET)["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["AuditReader", "DenyInsecureTransport"]
    assert tags_of(primary, PRIMARY_BUCKET)["CostCenter"] == "payments"
    assert tags_of(primary, PRIMARY_BUCKET)["Project"] == "DisasterRecovery"


def test_role_and_replication_drift_is_reported_and_repaired_with_one_put(provisioned, s3, iam):
    runner, primary = provisioned, s3(PRIMARY)
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="s3-replication", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    iam.update_assume_role_policy(RoleName=ROLE_NAME, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    iam.untag_role(RoleName=ROLE_NAME, TagKeys=["Project"])
    configuration = primary.get_bucket_replication(Bucket=PRIMARY_BUCKET)["ReplicationConfiguration"]
    rule = configuration["Rules"][0]
    rule["DeleteMarkerReplication"] = {"Status": "Disabled"}
    rule["Destination"] = {"Bucket": rule["Destination"]["Bucket"]}  # no RTC, no metrics
    primary.put_bucket_replication(Bucket=PRIMARY_BUCKET, ReplicationConfiguration=configuration)

    findings = runner.verify().changes
    assert {(f.key, f.attribute) for f in findings} == {
        ("role-policy", "document"), ("role", "trust_policy"), ("role", "tags"),
        ("replication", "delete_marker_replication"), ("replication", "replication_time_minutes"),
        ("replication", "metrics_event_threshold_minutes"),
    }

    runner.aws.stats.__init__()
    assert runner.provision().ok
    assert runner.aws.stats.by_operation["s3.put_bucket_replication"] == 1
    assert runner.verify().changes == []
    rule = primary.get_bucket_replication(Bucket=PRIMARY_BUCKET)["ReplicationConfiguration"]["Rules"][0]
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert rule["Destination"]["ReplicationTime"] == {"Status": "Enabled", "Time": {"Minutes": 15}}
    document = iam.get_role_policy(RoleName=ROLE_NAME, PolicyName="s3-replication")["PolicyDocument"]
    assert "s3:*" not in json.dumps(document)


def test_converged_rerun_makes_no_mutating_call(provisioned):
    provisioned.aws.stats.__init__()
    outcome = provisioned.provision()
    assert outcome.ok and outcome.changes == [] and not outcome.applied
    assert provisioned.aws.stats.mutating == 0, provisioned.aws.stats.mutating_calls
    # One read per bucket setting (6 per bucket), 2 for the role, 1 for the replication.
    assert provisioned.aws.stats.total == 15, provisioned.aws.stats.by_operation


def test_lost_state_adopts_what_exists_without_duplicates(provisioned, make_s3_runner, s3, iam):
    recorded = json.loads(provisioned.config.state_path.read_text())
    provisioned.config.state_path.unlink()

    runner = make_s3_runner()
    # The role's ARN is unknown to the replication step until the role step has run: no drift.
    assert runner.plan().changes == []
    assert runner.verify().changes == []
    runner.aws.stats.__init__()
    assert runner.provision().ok
    assert runner.aws.stats.mutating == 0, runner.aws.stats.mutating_calls
    adopted = json.loads(runner.config.state_path.read_text())
    for step in ("ensure_bucket:primary", "ensure_bucket:dr", "ensure_replication_role:global",
                 "ensure_bucket_replication:global"):
        assert adopted["steps"][step] == recorded["steps"][step], step
    assert sorted(b["Name"] for b in s3(PRIMARY).list_buckets()["Buckets"]) == [PRIMARY_BUCKET, DR_BUCKET]
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == [ROLE_NAME]
    assert runner.verify().changes == []


# Names drkit does not own ------------------------------------------------------------------------

@pytest.mark.parametrize("tags", [[], [{"Key": "ManagedBy", "Value": "drkit"}, {"Key": "Environment", "Value": "other"},
                                       {"Key": "drkit:step", "Value": "ensure_bucket"}]])
def test_a_bucket_of_that_name_that_is_not_drkits_is_refused_and_left_alone(moto, make_s3_runner, s3, iam, tags):
    client = s3(PRIMARY)
    client.create_bucket(Bucket=PRIMARY_BUCKET)
    if tags:
        client.put_bucket_tagging(Bucket=PRIMARY_BUCKET, Tagging={"TagSet": tags})
    runner = make_s3_runner()

    outcome = runner.provision()
    error = next(r.error for r in outcome.results if r.step.key == "ensure_bucket:primary")
    assert PRIMARY_BUCKET in error.message and "not drkit's" in error.message
    assert runner.aws.stats.mutating == 0  # refused while planning: nothing anywhere was created
    verify_error = next(r.error for r in runner.verify().results if r.step.key == "ensure_bucket:primary")
    assert PRIMARY_BUCKET in verify_error.message

    outcome = runner.teardown()
    assert outcome.ok
    skipped = [c for c in outcome.changes if c.action == "skip"]
    assert [(c.step, c.name) for c in skipped] == [("ensure_bucket:primary", PRIMARY_BUCKET)]
    if tags:
        assert client.get_bucket_tagging(Bucket=PRIMARY_BUCKET)["TagSet"] == tags
    else:
        assert error_code(lambda: client.get_bucket_tagging(Bucket=PRIMARY_BUCKET)) == "NoSuchTagSet"
    assert error_code(lambda: client.get_bucket_policy(Bucket=PRIMARY_BUCKET)) == "NoSuchBucketPolicy"
    assert "Status" not in client.get_bucket_versioning(Bucket=PRIMARY_BUCKET)
    assert iam.list_roles()["Roles"] == []


def test_a_bucket_name_taken_by_another_account_is_reported(moto, make_s3_runner):
    runner = make_s3_runner()
    fake_errors(runner, "s3", DR, "HeadBucket", 10, "403", status=403)
    outcome = runner.plan()
    error = next(r.error for r in outcome.results if r.step.key == "ensure_bucket:dr")
    assert DR_BUCKET in error.message and "another account" in error.message


def create_meanwhile(runner: Runner, role: str, region: str, bucket: str, tags: list[dict[str, str]]) -> None:
    """Have the bucket appear (created by this account, outside drkit) just before drkit's
    CreateBucket reaches S3: outside us-east-1 S3 answers BucketAlreadyOwnedByYou, in us-east-1
    200 OK (its legacy behaviour, which the sandbox shares)."""
    def created_meanwhile(model, **_):
        client = boto3.client("s3", region_name=region)
        location = {} if region == PRIMARY else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        client.create_bucket(Bucket=bucket, **location)
        if tags:
            client.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})

    on_create_calls(runner, "s3", region, "before-call.s3.CreateBucket", created_meanwhile)


@pytest.mark.parametrize("role,region,bucket", BUCKETS)
def test_a_bucket_created_meanwhile_is_adopted_only_when_drkits(moto, make_s3_runner, s3, role, region, bucket):
    """A create whose response was lost is retried: the bucket then already exists."""
    runner = make_s3_runner()
    create_meanwhile(runner, role, region, bucket, [
        {"Key": "ManagedBy", "Value": "drkit"}, {"Key": "Environment", "Value": "test"},
        {"Key": "drkit:step", "Value": "ensure_bucket"}])
    assert runner.provision().ok
    assert runner.verify().changes == []
    assert tags_of(s3(region), bucket)["DR-Role"] == role


@pytest.mark.parametrize("role,region,bucket", BUCKETS)
def test_a_bucket_created_meanwhile_without_drkit_tags_is_refused(moto, make_s3_runner, s3, role, region, bucket):
    runner = make_s3_runner()
    create_meanwhile(runner, role, region, bucket, [])
    outcome = runner.provision()
    error = next(r.error for r in outcome.results if r.step.key == f"ensure_bucket:{role}")
    assert bucket in error.message and "not drkit's" in error.message
    assert error_code(lambda: s3(region).get_bucket_tagging(Bucket=bucket)) == "NoSuchTagSet"
    assert "Status" not in s3(region).get_bucket_versioning(Bucket=bucket)
    assert f"ensure_bucket:{role}" not in json.loads(runner.config.state_path.read_text())["steps"]


def test_a_botocore_without_create_bucket_tags_tags_the_new_bucket_next(moto, make_s3_runner, s3, monkeypatch):
    """botocore < 2025 cannot send CreateBucketConfiguration.Tags: the bucket is tagged right after."""
    monkeypatch.setattr(EnsureBucket, "_create_takes_tags", lambda self, ctx: False)
    runner = make_s3_runner()
    sent: list[dict] = []
    for region in (PRIMARY, DR):
        on_create_calls(runner, "s3", region, "provide-client-params.s3.CreateBucket",
                        lambda params, **_: sent.append(dict(params)))
    assert runner.provision().ok
    assert all("Tags" not in p.get("CreateBucketConfiguration", {}) for p in sent) and len(sent) == 2
    for role, region, bucket in BUCKETS:
        assert tags_of(s3(region), bucket)["DR-Role"] == role
    assert runner.verify().changes == []


def test_a_run_killed_right_after_create_bucket_resumes_by_adopting_it(moto, make_s3_runner, s3):
    class Killed(BaseException):
        pass

    def kill(model, **_):
        raise Killed()

    victim = make_s3_runner()
    on_create_calls(victim, "s3", DR, "after-call.s3.CreateBucket", kill)
    with pytest.raises(Killed):
        victim.provision(["ensure_bucket:dr"])
    resumed = make_s3_runner()
    assert resumed.provision().ok
    assert resumed.aws.stats.by_operation["s3.create_bucket"] == 1  # the primary's only
    assert resumed.verify().changes == []
    assert s3(DR).get_bucket_versioning(Bucket=DR_BUCKET)["Status"] == "Enabled"


# Eventual consistency ----------------------------------------------------------------------------

def test_replication_waits_for_versioning_and_retries_while_s3_has_not_propagated_it(moto, make_s3_runner, clock):
    runner = make_s3_runner()
    # On a fresh provision only the replication step's wait reads the DR bucket's versioning:
    # answer it twice as S3 would before versioning has propagated.
    answers = iter([{"Status": "Suspended"}, {}])

    def not_yet(model, **_):
        value = next(answers, None)
        if value is None:
            return None
        return SimpleNamespace(status_code=200, headers={}), {**value, "ResponseMetadata": {"HTTPStatusCode": 200}}

    runner.aws.client("s3", DR).meta.events.register("before-call.s3.GetBucketVersioning", not_yet)
    # AWS's own words for each bucket (the source's, then the destination's).
    rejected = fake_errors(runner, "s3", PRIMARY, "PutBucketReplication", 1, "InvalidRequest",
                           message="Versioning must be 'Enabled' on the bucket to apply a replication configuration")
    fake_errors(runner, "s3", PRIMARY, "PutBucketReplication", 1, "InvalidRequest",
                message="Destination bucket must have versioning enabled.")
    assert runner.provision().ok
    assert next(answers, None) is None and rejected.count == 0
    assert len(clock.sleeps) >= 4  # two polls of the versioning wait, two retries of the put
    assert runner.verify().changes == []


def test_a_new_bucket_not_visible_yet_is_waited_for_not_refused(moto, make_s3_runner, s3):
    """Reads right after CreateBucket may answer NoSuchBucket; in us-east-1 the tags read then is
    what proves the bucket is drkit's, so "no bucket" must not be read as "no tags"."""
    runner = make_s3_runner()
    missing = fake_errors(runner, "s3", PRIMARY, "GetBucketTagging", 2, "NoSuchBucket", status=404)
    assert runner.provision().ok
    assert missing.count == 0
    assert tags_of(s3(PRIMARY), PRIMARY_BUCKET)["ManagedBy"] == "drkit"


def test_role_policy_put_is_retried_while_iam_does_not_know_the_new_role(moto, make_s3_runner, iam):
    runner = make_s3_runner()
    missing = fake_errors(runner, "iam", PRIMARY, "PutRolePolicy", 2, "NoSuchEntity", status=404)
    assert runner.provision().ok
    assert missing.count == 0
    assert iam.list_role_policies(RoleName=ROLE_NAME)["PolicyNames"] == ["s3-replication"]


# Teardown ----------------------------------------------------------------------------------------

def test_teardown_removes_exactly_what_drkit_owns(moto, make_s3_runner, s3, iam):
    other_env = make_s3_runner("other")
    assert other_env.provision().ok
    lookalike = f"{PRIMARY_BUCKET}-archive"
    s3(PRIMARY).create_bucket(Bucket=lookalike)
    runner = make_s3_runner()
    assert runner.provision().ok
    for key in ("a", "b"):
        s3(PRIMARY).put_object(Bucket=PRIMARY_BUCKET, Key=key, Body=b"v1")
        s3(PRIMARY).put_object(Bucket=PRIMARY_BUCKET, Key=key, Body=b"v2")
    s3(PRIMARY).delete_object(Bucket=PRIMARY_BUCKET, Key="a")
    flush_replication()  # the DR bucket holds replicas and a replicated delete marker

    outcome = runner.teardown()
    assert outcome.ok, [(r.step.key, r.error) for r in outcome.failed]
    for region, bucket in ((PRIMARY, PRIMARY_BUCKET), (DR, DR_BUCKET)):
        assert error_code(lambda: s3(region).head_bucket(Bucket=bucket)) == "404"
    assert error_code(lambda: iam.get_role(RoleName=ROLE_NAME)) == "NoSuchEntity"
    s3(PRIMARY).head_bucket(Bucket=lookalike)
    assert other_env.verify().changes == []
    assert runner.plan_teardown().changes == []

    order = [(c.step, c.key) for c in outcome.changes]
    assert order.index(("ensure_bucket_replication:global", "replication")) < order.index(
        ("ensure_bucket:primary", "bucket"))
    assert order.index(("ensure_replication_role:global", "role-policy")) < order.index(
        ("ensure_replication_role:global", "role"))


def test_teardown_empties_more_than_a_page_of_versions_in_batches_of_at_most_1000(provisioned, s3):
    """The sandbox refuses, as S3 does, to delete a bucket that still holds a version or marker."""
    client = s3(DR)
    for _ in range(600):  # one key's versions span two pages
        client.put_object(Bucket=DR_BUCKET, Key="audit.log", Body=b"x")
    for _ in range(401):
        client.delete_object(Bucket=DR_BUCKET, Key="audit.log")
    batches: list[int] = []
    provisioned.aws.client("s3", DR).meta.events.register(
        "provide-client-params.s3.DeleteObjects", lambda params, **_: batches.append(len(params["Delete"]["Objects"])))

    assert provisioned.teardown().ok
    assert sum(batches) == 1001 and max(batches) <= 1000 and len(batches) == 2
    assert error_code(lambda: client.head_bucket(Bucket=DR_BUCKET)) == "404"


def test_deep_verify_times_a_canary_object_and_removes_every_version_of_it(moto, make_s3_runner, s3, clock):
    runner = make_s3_runner()
    assert runner.provision().ok
    [probe] = runner.verify(deep=True).probes
    # The sandbox completes replication after s3_replication = 5 fake seconds.
    assert probe.ok is True and probe.region == DR and probe.measured.startswith("COMPLETED in ")
    assert float(probe.measured.split()[2][:-1]) >= 5.0
    assert_no_canary_left(s3)


def assert_no_canary_left(s3) -> None:
    for region, bucket in ((PRIMARY, PRIMARY_BUCKET), (DR, DR_BUCKET)):
        listed = s3(region).list_object_versions(Bucket=bucket)
        assert listed.get("Versions", []) == [] and listed.get("DeleteMarkers", []) == [], bucket


def test_deep_verify_fails_when_objects_do_not_replicate(moto, make_s3_runner, s3):
    runner = make_s3_runner()
    assert runner.provision().ok
    s3(DR).put_bucket_versioning(Bucket=DR_BUCKET, VersioningConfiguration={"Status": "Suspended"})
    # Only the replication step is verified: the bucket step would report the versioning drift.
    [probe] = runner.verify(["ensure_bucket_replication"], deep=True).probes
    assert probe.ok is False and probe.measured == "source status FAILED"
    assert probe.detail == "the copy is missing from the DR bucket"
    assert_no_canary_left(s3)


def test_deep_verify_fails_at_once_for_an_object_no_rule_replicates(moto, make_s3_runner, s3, clock):
    """S3 gives a source object a ReplicationStatus only if a rule makes it eligible."""
    runner = make_s3_runner()
    assert runner.provision().ok

    def not_eligible(**_):  # the primary client heads only the source object
        return SimpleNamespace(status_code=200, headers={}), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    runner.aws.client("s3", PRIMARY).meta.events.register("before-call.s3.HeadObject", not_eligible)
    slept = sum(clock.sleeps)
    [probe] = runner.verify(["ensure_bucket_replication"], deep=True).probes
    assert probe.ok is False and "no rule applies" in probe.measured
    assert sum(clock.sleeps) == slept  # not the 15 minutes of a timeout
    flush_replication()  # the sandbox did replicate the canary: the cleanup removed it from both
    assert_no_canary_left(s3)


def test_deep_verify_removes_its_canary_when_the_probe_errs(moto, make_s3_runner, s3):
    runner = make_s3_runner()
    assert runner.provision().ok
    # A 500 is an unknown outcome the gateway retries: an answer it reports is a 403.
    fake_errors(runner, "s3", PRIMARY, "HeadObject", 1, "AccessDenied", status=403)
    outcome = runner.verify(["ensure_bucket_replication"], deep=True)
    assert "AccessDenied" in outcome.failed[0].error.message
    flush_replication()
    assert_no_canary_left(s3)
