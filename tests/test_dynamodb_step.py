"""ensure_global_table against moto and drkit's global-tables extension, proved by reading both
regions back with boto3."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import boto3
import pytest

from drkit.aws import RetryPolicy
from drkit.config import build_config
from drkit.errors import RefusedChangeError
from drkit.logs import make_logger
from drkit.runner import Runner
from drkit.sandbox.extensions.dynamodb_replicas import flush_replication
from steps.dynamodb import EnsureGlobalTable, table_settings
from tests.conftest import DR, PRIMARY

STEP = "ensure_global_table:global"
TABLE = "payment-transactions-test"


@pytest.fixture
def make_runner(tmp_path: Path, clock) -> Callable[..., Runner]:
    def factory(env: str = "test") -> Runner:
        config = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json")}, environ={})
        return Runner(config, [EnsureGlobalTable("global")], clock=clock, log=make_logger("json", level="warning"),
                      retry=RetryPolicy(botocore_max_attempts=1))

    return factory


def ddb(region: str) -> Any:
    return boto3.client("dynamodb", region_name=region)


def describe(region: str, name: str = TABLE) -> dict:
    return ddb(region).describe_table(TableName=name)["Table"]


def tags(region: str, name: str = TABLE) -> dict[str, str]:
    arn = describe(region, name)["TableArn"]
    return {t["Key"]: t["Value"] for t in ddb(region).list_tags_of_resource(ResourceArn=arn)["Tags"]}


def pitr(region: str, name: str = TABLE) -> str:
    answer = ddb(region).describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    return answer["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]


def tables(region: str) -> list[str]:
    return ddb(region).list_tables()["TableNames"]


def owned_tags(resource: str) -> dict[str, str]:
    return {"Name": TABLE, "Environment": "test", "Project": "DisasterRecovery", "ManagedBy": "drkit",
            "DR-Role": "global", "drkit:step": "ensure_global_table", "drkit:resource": resource}


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in drkit may catch it."""


def test_provision_builds_the_global_table_in_both_regions(moto, make_runner, clock):
    runner = make_runner()
    outcome = runner.provision()
    assert outcome.ok, outcome.failed

    for region, other, resource in ((PRIMARY, DR, "table"), (DR, PRIMARY, "replica")):
        table = describe(region)
        assert table["TableStatus"] == "ACTIVE"
        assert table["KeySchema"] == [{"AttributeName": "transactionId", "KeyType": "HASH"}]
        assert table["AttributeDefinitions"] == [{"AttributeName": "transactionId", "AttributeType": "S"}]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        assert table["SSEDescription"]["Status"] == "ENABLED" and table["SSEDescription"]["SSEType"] == "KMS"
        assert f":{region}:" in table["SSEDescription"]["KMSMasterKeyArn"]  # each region's own key
        assert table["GlobalTableVersion"] == "2019.11.21"
        assert table["Replicas"] == [{"RegionName": other, "ReplicaStatus": "ACTIVE"}]
        assert pitr(region) == "ENABLED"
        assert tags(region) == owned_tags(resource)
    # The sandbox keeps the replica CREATING for 60 (fake) seconds: provision waited it out.
    assert sum(clock.sleeps) >= 60
    assert runner.outputs()[STEP] == {
        "dynamodb_table_name": TABLE,
        "dynamodb_table_arn": describe(PRIMARY)["TableArn"],
        "dynamodb_replica_regions": [DR],
    }


def test_a_write_in_the_primary_is_read_from_the_dr_replica(moto, make_runner):
    assert make_runner().provision().ok
    item = {"transactionId": {"S": "tx-1"}, "amount": {"N": "42"}}
    ddb(PRIMARY).put_item(TableName=TABLE, Item=item)
    key = {"transactionId": {"S": "tx-1"}}
    assert "Item" not in ddb(DR).get_item(TableName=TABLE, Key=key)  # replication is asynchronous
    flush_replication()
    assert ddb(DR).get_item(TableName=TABLE, Key=key)["Item"] == item


def test_verify_is_clean_after_provision_and_reports_each_drift(moto, make_runner):
    runner = make_runner()
    assert runner.provision().ok
    assert runner.verify().changes == []

    ddb(PRIMARY).update_table(TableName=TABLE, BillingMode="PROVISIONED",
                              ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    ddb(DR).update_continuous_backups(TableName=TABLE,
                                      PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
    ddb(DR).untag_resource(ResourceArn=describe(DR)["TableArn"], TagKeys=["Project"])

    findings = runner.verify().changes
    assert {(f.key, f.attribute, f.region) for f in findings} == {
        # Billing mode is a synchronized global-table setting: AWS applies it to the replica too.
        ("table", "billing_mode", PRIMARY), ("replica", "billing_mode", DR),
        ("replica", "point_in_time_recovery", DR), ("replica", "tags", DR),
    }
    billing = next(f for f in findings if f.attribute == "billing_mode" and f.region == PRIMARY)
    assert (billing.expected, billing.actual) == ("PAY_PER_REQUEST", "PROVISIONED")

    assert runner.provision().ok
    assert runner.verify().changes == []
    assert describe(PRIMARY)["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert pitr(DR) == "ENABLED"
    assert tags(DR) == owned_tags("replica")


def test_converged_rerun_makes_no_mutating_call(moto, make_runner):
    runner = make_runner()
    assert runner.provision().ok
    runner.aws.stats.__init__()
    outcome = runner.provision()
    assert outcome.ok and outcome.changes == [] and not outcome.applied
    assert runner.aws.stats.mutating == 0, runner.aws.stats.mutating_calls
    # Per region: describe_table, describe_continuous_backups, list_tags_of_resource.
    assert runner.aws.stats.total == 6, runner.aws.stats.by_operation


def test_lost_state_adopts_both_ends_without_duplicates(moto, make_runner):
    first = make_runner()
    assert first.provision().ok
    recorded = json.loads(first.config.state_path.read_text())["steps"][STEP]
    first.config.state_path.unlink()

    runner = make_runner()
    runner.aws.stats.__init__()
    assert runner.provision().ok
    assert runner.aws.stats.mutating == 0, runner.aws.stats.mutating_calls
    adopted = json.loads(runner.config.state_path.read_text())["steps"][STEP]
    assert adopted["resources"] == recorded["resources"]
    assert adopted["outputs"] == recorded["outputs"]
    assert tables(PRIMARY) == [TABLE] and tables(DR) == [TABLE]


def _kill_after_replica_create(runner: Runner) -> None:
    """Let UpdateTable(ReplicaUpdates=Create) succeed at AWS, then kill the run before drkit sees it."""
    seen: dict[str, bool] = {}

    def before(params, **_):
        seen["replica_create"] = bool(params.get("ReplicaUpdates"))

    def after(**_):
        if seen.get("replica_create"):
            raise Killed()

    for resend in (True, False):  # a call with `settled` goes through the client that does not resend
        events = runner.aws.client("dynamodb", PRIMARY, resend=resend).meta.events
        events.register("provide-client-params.dynamodb.UpdateTable", before)
        events.register("after-call.dynamodb.UpdateTable", after)


def test_a_run_killed_before_the_replica_is_tagged_resumes_and_tags_it(moto, make_runner):
    """The replica is born untagged and CREATING; it is found by name, waited for, then tagged."""
    victim = make_runner()
    _kill_after_replica_create(victim)
    with pytest.raises(Killed):
        victim.provision()
    assert describe(DR)["TableStatus"] == "CREATING" and tags(DR) == {}

    resumed = make_runner()
    plan = {(c.key, c.action, c.attribute) for c in resumed.plan().changes}
    assert ("replica", "wait", "status") in plan and ("replica", "update", "tags") in plan
    assert ("replica", "create", None) not in plan
    assert resumed.provision().ok
    assert tables(DR) == [TABLE]
    assert tags(DR) == owned_tags("replica") and pitr(DR) == "ENABLED"
    assert resumed.verify().changes == []


def test_teardown_removes_an_untagged_replica_of_drkits_table(moto, make_runner):
    victim = make_runner()
    _kill_after_replica_create(victim)
    with pytest.raises(Killed):
        victim.provision()
    outcome = make_runner().teardown()
    assert outcome.ok, [r.error for r in outcome.failed]
    assert tables(PRIMARY) == [] and tables(DR) == []


def test_teardown_removes_exactly_what_drkit_owns(moto, make_runner):
    other_env = make_runner("other")
    assert other_env.provision().ok
    # A similar name without drkit's tags, in each region.
    for region in (PRIMARY, DR):
        ddb(region).create_table(TableName=f"{TABLE}-archive", BillingMode="PAY_PER_REQUEST",
                                 KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}])
    runner = make_runner()
    assert runner.provision().ok

    outcome = runner.teardown()
    assert outcome.ok, [r.error for r in outcome.failed]
    for region in (PRIMARY, DR):
        assert sorted(tables(region)) == ["payment-transactions-other", f"{TABLE}-archive"]
    assert other_env.verify().changes == []
    assert runner.plan_teardown().changes == []
    assert runner.outputs().get(STEP, {}) == {}


def test_teardown_removes_the_replica_and_waits_before_deleting_the_table(moto, make_runner, clock):
    runner = make_runner()
    assert runner.provision().ok
    runner.aws.stats.__init__()
    slept = sum(clock.sleeps)
    outcome = runner.teardown()
    assert outcome.ok, [r.error for r in outcome.failed]
    assert [c.key for r in outcome.results for c in r.changes] == ["replica", "table"]
    # Every attempt is counted: a DeleteTable while the table is still UPDATING (the sandbox keeps
    # the replica DELETING for a while) would fail with ResourceInUseException and show up twice.
    assert runner.aws.stats.mutating_calls == [
        ("dynamodb", PRIMARY, "update_table"),  # ReplicaUpdates Delete
        ("dynamodb", PRIMARY, "delete_table"),
    ]
    assert sum(clock.sleeps) > slept
    assert tables(PRIMARY) == [] and tables(DR) == []


def test_a_standalone_table_in_the_dr_region_is_refused_before_any_change(moto, make_runner):
    """DynamoDB cannot turn an existing table into a replica: drkit refuses, and touches nothing."""
    ddb(DR).create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}])
    runner = make_runner()
    with pytest.raises(RefusedChangeError, match="it exists but is not drkit.s"):
        runner.provision()
    assert runner.aws.stats.mutating == 0
    assert tables(PRIMARY) == []
    teardown = runner.plan_teardown().changes
    assert [(c.key, c.action, c.region) for c in teardown] == [("replica", "skip", DR)]


def test_a_found_table_without_stream_pitr_or_kms_is_repaired_before_the_replica(moto, make_runner):
    """A table carrying drkit's tags (a lost state file) but no stream, no PITR and the AWS owned
    key: each is a finding, and each is repaired on the table before the replica is added."""
    ddb(PRIMARY).create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}],
        Tags=[{"Key": k, "Value": v} for k, v in owned_tags("table").items()],
    )
    runner = make_runner()
    findings = {(f.key, f.attribute): (f.expected, f.actual) for f in runner.verify().changes}
    assert findings[("table", "stream")] == ("NEW_AND_OLD_IMAGES", None)
    assert findings[("table", "encryption")] == ("KMS", "DEFAULT")
    assert findings[("table", "point_in_time_recovery")] == (True, False)

    updates: list[dict] = []
    for resend in (True, False):
        runner.aws.client("dynamodb", PRIMARY, resend=resend).meta.events.register(
            "provide-client-params.dynamodb.UpdateTable", lambda params, **_: updates.append(dict(params)))
    assert runner.provision().ok
    assert [sorted(set(u) - {"TableName"}) for u in updates] == [
        ["StreamSpecification"], ["SSESpecification"], ["ReplicaUpdates"],
    ]
    assert updates[0]["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert updates[1]["SSESpecification"] == {"Enabled": True, "SSEType": "KMS"}
    for region in (PRIMARY, DR):
        assert describe(region)["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert pitr(region) == "ENABLED"
    # moto's UpdateTable ignores SSESpecification, so the repaired encryption cannot be read back.


@pytest.mark.parametrize("sse,expected", [
    (None, "DEFAULT"),
    ({"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": "arn:aws:kms:us-east-1:1:key/k"}, "KMS"),
    ({"Status": "DISABLED", "SSEType": "KMS"}, "DEFAULT"),
])
def test_encryption_is_read_as_the_consoles_encryption_type(sse, expected):
    table = {"KeySchema": [{"AttributeName": "transactionId", "KeyType": "HASH"}],
             "AttributeDefinitions": [{"AttributeName": "transactionId", "AttributeType": "S"}]}
    if sse:
        table["SSEDescription"] = sse
    settings = table_settings(table, None)
    assert settings["encryption"] == expected
    assert settings["key_schema"] == "HASH transactionId:S"
    assert settings["billing_mode"] == "PROVISIONED" and settings["stream"] is None
    assert settings["point_in_time_recovery"] is None


def canaries(region: str, table: str = "payment-transactions-deep") -> list[dict]:
    return ddb(region).scan(TableName=table)["Items"]


def test_deep_verify_measures_replication_and_removes_its_canary(moto, make_runner):
    runner = make_runner("deep")
    assert runner.provision().ok
    reads: list[dict] = []
    runner.aws.client("dynamodb", DR).meta.events.register(
        "provide-client-params.dynamodb.GetItem", lambda params, **_: reads.append(dict(params)))
    [probe] = runner.verify(deep=True).probes
    assert probe.ok is True and probe.region == DR
    # The sandbox propagates writes after dynamodb_replication = 1 fake second.
    assert probe.measured.startswith("replicated in ") and float(probe.measured.split()[2][:-1]) >= 1.0
    assert reads and all(r["ConsistentRead"] is True for r in reads)  # arrival in DR, not a stale read
    flush_replication()
    assert canaries(PRIMARY) == [] and canaries(DR) == []


def test_deep_verify_fails_when_the_item_never_arrives_and_removes_its_canary(moto, make_runner):
    runner = make_runner("deep")
    assert runner.provision().ok

    def never_there(**_):
        return SimpleNamespace(status_code=200, headers={}), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    runner.aws.client("dynamodb", DR).meta.events.register("before-call.dynamodb.GetItem", never_there)
    [probe] = runner.verify(deep=True).probes
    assert probe.ok is False and probe.measured == "not replicated after 60s"
    flush_replication()
    assert canaries(PRIMARY) == [] and canaries(DR) == []


def test_deep_verify_removes_its_canary_when_the_probe_errs(moto, make_runner):
    runner = make_runner("deep")
    assert runner.provision().ok

    def denied(**_):
        error = {"Error": {"Code": "AccessDeniedException", "Message": "injected"},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        return SimpleNamespace(status_code=400, headers={}), error

    runner.aws.client("dynamodb", DR).meta.events.register("before-call.dynamodb.GetItem", denied)
    outcome = runner.verify(deep=True)
    assert "AccessDeniedException" in outcome.failed[0].error.message
    flush_replication()
    assert canaries(PRIMARY) == [] and canaries(DR) == []
