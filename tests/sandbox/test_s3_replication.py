"""Contract tests: S3 replication in the sandbox behaves as on AWS.

Each test names the AWS page that documents the behaviour it asserts.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from drkit.sandbox.extensions.s3_replication import flush_replication

PRIMARY, DR = "us-east-1", "us-west-2"
SOURCE, DEST, OTHER = "drkit-src", "drkit-dst", "drkit-dst-2"
ROLE = "arn:aws:iam::123456789012:role/replication"

_clients: dict[str, object] = {}


def s3(region: str = PRIMARY):
    """Clients are slow to create; moto intercepts them whenever a mock is active, so reuse them."""
    if region not in _clients:
        _clients[region] = boto3.client("s3", region_name=region)
    return _clients[region]


def bucket(name: str, region: str, versioned: bool = True) -> None:
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3(region).create_bucket(Bucket=name, **kwargs)
    if versioned:
        s3(region).put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def rule(**overrides) -> dict:
    base = {
        "ID": "to-dr",
        "Priority": 1,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": f"arn:aws:s3:::{DEST}"},
    }
    base.update(overrides)
    return base


def replicate(*rules: dict) -> None:
    s3().put_bucket_replication(Bucket=SOURCE, ReplicationConfiguration={"Role": ROLE, "Rules": list(rules)})


@pytest.fixture
def buckets(aws):
    bucket(SOURCE, PRIMARY)
    bucket(DEST, DR)
    return aws


def status(bucket_name: str, key: str, region: str = PRIMARY) -> str | None:
    return s3(region).head_object(Bucket=bucket_name, Key=key).get("ReplicationStatus")


def test_get_bucket_replication_returns_exactly_what_was_put(buckets):
    # GetBucketReplication returns the configuration: rules with ID, Priority, Filter,
    # DeleteMarkerReplication and Destination (ReplicationTime, Metrics, StorageClass...).
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketReplication.html
    config = {
        "Role": ROLE,
        "Rules": [
            rule(
                ID="logs",
                Priority=7,
                Filter={"And": {"Prefix": "logs/", "Tags": [{"Key": "dr", "Value": "yes"}]}},
                Destination={
                    "Bucket": f"arn:aws:s3:::{DEST}",
                    "StorageClass": "STANDARD_IA",
                    "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
                    "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": 15}},
                },
            ),
            rule(ID="data", Priority=3, Filter={"Prefix": "data/"}, DeleteMarkerReplication={"Status": "Enabled"}),
        ],
    }
    s3().put_bucket_replication(Bucket=SOURCE, ReplicationConfiguration=config)
    assert s3().get_bucket_replication(Bucket=SOURCE)["ReplicationConfiguration"] == config


def test_a_rule_without_id_gets_one(buckets):
    # "ID: A unique identifier for the rule" - assigned by S3 when omitted.
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ReplicationRule.html
    replicate({k: v for k, v in rule().items() if k != "ID"})
    got = s3().get_bucket_replication(Bucket=SOURCE)["ReplicationConfiguration"]["Rules"][0]
    assert got["ID"]


def test_versioning_is_required_on_source_and_destination(aws):
    # "Both source and destination buckets must have versioning enabled" (InvalidRequest).
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication.html#replication-requirements
    bucket(SOURCE, PRIMARY, versioned=False)
    bucket(DEST, DR, versioned=False)
    with pytest.raises(ClientError) as err:
        replicate(rule())
    assert err.value.response["Error"]["Code"] == "InvalidRequest"
    assert "Versioning must be 'Enabled' on the bucket" in err.value.response["Error"]["Message"]

    s3().put_bucket_versioning(Bucket=SOURCE, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(ClientError) as err:
        replicate(rule())
    assert err.value.response["Error"]["Code"] == "InvalidRequest"
    assert err.value.response["Error"]["Message"] == "Destination bucket must have versioning enabled."


def test_destination_bucket_must_exist(aws):
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication.html#replication-requirements
    bucket(SOURCE, PRIMARY)
    with pytest.raises(ClientError) as err:
        replicate(rule())
    assert err.value.response["Error"]["Code"] == "InvalidRequest"


def test_v2_rules_need_priority_and_delete_marker_replication(buckets):
    # "If you specify the Filter element, you must also include the Priority and
    # DeleteMarkerReplication elements."
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-add-config.html
    for missing in ("Priority", "DeleteMarkerReplication"):
        with pytest.raises(ClientError) as err:
            replicate({k: v for k, v in rule().items() if k != missing})
        assert err.value.response["Error"]["Code"] == "InvalidRequest"


def test_new_versions_are_copied_pending_then_completed_replica(buckets, wait_until):
    # Source objects report PENDING, then COMPLETED; the copy in the destination reports REPLICA
    # and keeps the key, body, metadata, tags, version ID and creation time.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication.html#replication-scenario
    buckets.s3_replication = 0.2
    replicate(rule())
    put = s3().put_object(
        Bucket=SOURCE, Key="data/a.json", Body=b'{"a": 1}', Metadata={"owner": "drkit"},
        ContentType="application/json", Tagging="tier=gold",
    )
    assert status(SOURCE, "data/a.json") == "PENDING"
    assert s3().get_object(Bucket=SOURCE, Key="data/a.json")["ReplicationStatus"] == "PENDING"
    with pytest.raises(ClientError):
        s3(DR).head_object(Bucket=DEST, Key="data/a.json")

    assert wait_until(lambda: status(SOURCE, "data/a.json") == "COMPLETED", timeout=1.0)
    copy = s3(DR).get_object(Bucket=DEST, Key="data/a.json")
    source = s3().head_object(Bucket=SOURCE, Key="data/a.json")
    assert copy["Body"].read() == b'{"a": 1}'
    assert copy["ReplicationStatus"] == "REPLICA"
    assert copy["Metadata"] == {"owner": "drkit"}
    assert copy["ContentType"] == "application/json"
    assert copy["VersionId"] == put["VersionId"]
    assert copy["LastModified"] == source["LastModified"]
    assert s3(DR).get_object_tagging(Bucket=DEST, Key="data/a.json")["TagSet"] == [{"Key": "tier", "Value": "gold"}]


def test_only_objects_a_rule_matches_are_replicated(buckets):
    # A rule's Filter (prefix, tags) selects the objects it replicates; others get no status.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-add-config.html#replication-config-optional-filter
    replicate(
        rule(ID="data", Filter={"Prefix": "data/"}),
        rule(ID="tagged", Priority=2, Filter={"Tag": {"Key": "dr", "Value": "yes"}}),
    )
    s3().put_object(Bucket=SOURCE, Key="data/1", Body=b"1")
    s3().put_object(Bucket=SOURCE, Key="tmp/2", Body=b"2")
    s3().put_object(Bucket=SOURCE, Key="tmp/3", Body=b"3", Tagging="dr=yes")
    assert status(SOURCE, "tmp/2") is None
    flush_replication()
    keys = [o["Key"] for o in s3(DR).list_objects_v2(Bucket=DEST).get("Contents", [])]
    assert keys == ["data/1", "tmp/3"]


def test_disabled_rules_and_existing_objects_are_not_replicated(buckets):
    # Only objects created after the configuration is added are replicated, by Enabled rules.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-what-is-isnot-replicated.html
    s3().put_object(Bucket=SOURCE, Key="before", Body=b"0")
    replicate(rule(Status="Disabled"))
    s3().put_object(Bucket=SOURCE, Key="after", Body=b"1")
    flush_replication()
    assert s3(DR).list_objects_v2(Bucket=DEST)["KeyCount"] == 0
    assert status(SOURCE, "after") is None


def test_highest_priority_rule_wins_and_sets_storage_class(buckets):
    # "objects will be replicated according to the rule with the highest priority"
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-add-config.html#replication-config-min-rule-config
    replicate(
        rule(ID="low", Priority=1, Filter={"Prefix": "star"}),
        rule(
            ID="high", Priority=2, Filter={"Prefix": "starship"},
            Destination={"Bucket": f"arn:aws:s3:::{DEST}", "StorageClass": "STANDARD_IA"},
        ),
    )
    s3().put_object(Bucket=SOURCE, Key="starship-x", Body=b"x")
    flush_replication()
    assert s3(DR).head_object(Bucket=DEST, Key="starship-x")["StorageClass"] == "STANDARD_IA"
    assert len(s3(DR).list_object_versions(Bucket=DEST)["Versions"]) == 1


def test_multiple_destinations_complete_when_all_are_copied(buckets):
    # "The header of the source object only returns a value of COMPLETED when replication is
    # successful to all destinations."
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html#replication-status-multiple-destinations
    bucket(OTHER, PRIMARY)
    replicate(rule(ID="a"), rule(ID="b", Priority=2, Destination={"Bucket": f"arn:aws:s3:::{OTHER}"}))
    s3().put_object(Bucket=SOURCE, Key="k", Body=b"v")
    flush_replication()
    assert status(SOURCE, "k") == "COMPLETED"
    assert status(DEST, "k", DR) == "REPLICA"
    assert status(OTHER, "k") == "REPLICA"


def test_failed_when_the_destination_is_gone(buckets):
    # Objects transition to FAILED for issues such as bucket permissions / a missing bucket.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html
    replicate(rule())
    s3().put_object(Bucket=SOURCE, Key="k", Body=b"v")
    s3(DR).put_bucket_versioning(Bucket=DEST, VersioningConfiguration={"Status": "Suspended"})
    flush_replication()
    assert status(SOURCE, "k") == "FAILED"


def test_delete_markers_replicate_only_when_enabled(buckets):
    # V2 rules replicate delete markers only with DeleteMarkerReplication Enabled; deleting a
    # specific version is never replicated.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-what-is-isnot-replicated.html#replication-delete-op
    replicate(
        rule(ID="keep", Filter={"Prefix": "keep/"}),
        rule(ID="mirror", Priority=2, Filter={"Prefix": "mirror/"}, DeleteMarkerReplication={"Status": "Enabled"}),
    )
    for key in ("keep/a", "mirror/a"):
        s3().put_object(Bucket=SOURCE, Key=key, Body=b"v")
    flush_replication()
    for key in ("keep/a", "mirror/a"):
        s3().delete_object(Bucket=SOURCE, Key=key)
    flush_replication()
    assert s3(DR).head_object(Bucket=DEST, Key="keep/a")["ReplicationStatus"] == "REPLICA"
    with pytest.raises(ClientError) as err:
        s3(DR).head_object(Bucket=DEST, Key="mirror/a")
    assert err.value.response["Error"]["Code"] == "404"
    markers = s3(DR).list_object_versions(Bucket=DEST, Prefix="mirror/")["DeleteMarkers"]
    source_markers = s3().list_object_versions(Bucket=SOURCE, Prefix="mirror/")["DeleteMarkers"]
    assert [m["VersionId"] for m in markers] == [m["VersionId"] for m in source_markers]

    # A DELETE of a specific version is not replicated.
    version = s3().list_object_versions(Bucket=SOURCE, Prefix="keep/")["Versions"][0]["VersionId"]
    s3().delete_object(Bucket=SOURCE, Key="keep/a", VersionId=version)
    flush_replication()
    assert s3(DR).head_object(Bucket=DEST, Key="keep/a")["VersionId"] == version


def test_replicas_are_not_replicated_again(buckets):
    # "Objects in the source bucket that are replicas that were created by another replication
    # rule" are not replicated - two-way replication does not loop.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-what-is-isnot-replicated.html
    replicate(rule())
    s3(DR).put_bucket_replication(
        Bucket=DEST,
        ReplicationConfiguration={"Role": ROLE, "Rules": [rule(Destination={"Bucket": f"arn:aws:s3:::{SOURCE}"})]},
    )
    s3().put_object(Bucket=SOURCE, Key="k", Body=b"v")
    flush_replication()
    flush_replication()
    assert len(s3().list_object_versions(Bucket=SOURCE)["Versions"]) == 1
    assert len(s3(DR).list_object_versions(Bucket=DEST)["Versions"]) == 1
    assert status(DEST, "k", DR) == "REPLICA"


def test_pending_copies_do_not_survive_a_reset(buckets):
    # Sandbox contract (moto reset = a fresh account): copies still in flight when the emulated
    # AWS is reset never land in buckets created afterwards.
    from drkit.sandbox import reset

    buckets.s3_replication = 5
    replicate(rule())
    s3().put_object(Bucket=SOURCE, Key="old", Body=b"v")
    reset()
    bucket(SOURCE, PRIMARY)
    bucket(DEST, DR)
    flush_replication()
    assert s3(DR).list_objects_v2(Bucket=DEST)["KeyCount"] == 0


def test_sse_kms_objects_need_an_explicit_opt_in(buckets):
    # "To replicate objects encrypted with KMS key stored in AWS KMS, you must explicitly enable
    # the option" (SourceSelectionCriteria.SseKmsEncryptedObjects).
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-what-is-isnot-replicated.html
    replicate(rule())
    s3().put_object(Bucket=SOURCE, Key="kms", Body=b"v", ServerSideEncryption="aws:kms")
    s3().put_object(Bucket=SOURCE, Key="sse-s3", Body=b"v", ServerSideEncryption="AES256")
    flush_replication()
    assert status(SOURCE, "kms") is None
    assert s3(DR).head_object(Bucket=DEST, Key="sse-s3")["ServerSideEncryption"] == "AES256"

    replicate(
        rule(
            SourceSelectionCriteria={"SseKmsEncryptedObjects": {"Status": "Enabled"}},
            Destination={
                "Bucket": f"arn:aws:s3:::{DEST}",
                "EncryptionConfiguration": {"ReplicaKmsKeyID": "arn:aws:kms:us-west-2:123456789012:key/dr"},
            },
        )
    )
    s3().put_object(Bucket=SOURCE, Key="kms2", Body=b"v", ServerSideEncryption="aws:kms")
    flush_replication()
    copy = s3(DR).head_object(Bucket=DEST, Key="kms2")
    assert copy["ServerSideEncryption"] == "aws:kms"
    assert copy["SSEKMSKeyId"] == "arn:aws:kms:us-west-2:123456789012:key/dr"


def test_create_bucket_applies_the_tags_of_its_configuration(aws):
    # CreateBucketConfiguration.Tags are applied as the bucket is created.
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucketConfiguration.html
    s3 = boto3.client("s3", region_name="us-east-2")
    s3.create_bucket(Bucket="tagged-at-birth", CreateBucketConfiguration={
        "LocationConstraint": "us-east-2", "Tags": [{"Key": "ManagedBy", "Value": "drkit"}, {"Key": "x", "Value": "1"}]})
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket="tagged-at-birth")["TagSet"]}
    assert tags == {"ManagedBy": "drkit", "x": "1"}
