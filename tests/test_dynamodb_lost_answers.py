"""ensure_global_table survives one lost answer on each of its mutating calls: the run that met
it converges with no duplicate and no error, and teardown leaves nothing -- read back with boto3."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from steps.dynamodb import EnsureGlobalTable
from tests.conftest import DR, PRIMARY
from tests.lost_answers import lose_matching_answer as lose_answer
from tests.test_dynamodb_step import TABLE, ddb, describe, make_runner, owned_tags, pitr, tables, tags  # noqa: F401


def replica_update(action: str):
    return lambda params: any(action in u for u in params.get("ReplicaUpdates", []))


PROVISION = [
    pytest.param(PRIMARY, "CreateTable", lambda p: True, id="create_table"),
    pytest.param(PRIMARY, "UpdateContinuousBackups", lambda p: True, id="pitr-table"),
    pytest.param(PRIMARY, "UpdateTable", replica_update("Create"), id="replica-create"),
    pytest.param(DR, "TagResource", lambda p: True, id="tag-replica"),
    pytest.param(DR, "UpdateContinuousBackups", lambda p: True, id="pitr-replica"),
]


@pytest.mark.parametrize("region,operation,when", PROVISION)
def test_provision_converges_in_one_run_after_a_lost_answer(moto, make_runner, region, operation, when):
    runner = make_runner()
    lost = lose_answer(runner.aws, "dynamodb", region, operation, when=when)
    outcome = runner.provision()
    assert outcome.ok, [r.error for r in outcome.failed]
    assert lost.lost == 1
    assert tables(PRIMARY) == [TABLE] and tables(DR) == [TABLE]
    for where, other, resource in ((PRIMARY, DR, "table"), (DR, PRIMARY, "replica")):
        assert describe(where)["Replicas"] == [{"RegionName": other, "ReplicaStatus": "ACTIVE"}]
        assert pitr(where) == "ENABLED" and tags(where) == owned_tags(resource)
    assert runner.verify().changes == []
    assert runner.teardown().ok
    assert tables(PRIMARY) == [] and tables(DR) == []


TEARDOWN = [
    pytest.param(PRIMARY, "UpdateTable", replica_update("Delete"), id="replica-delete"),
    pytest.param(PRIMARY, "DeleteTable", lambda p: True, id="delete_table"),
]


@pytest.mark.parametrize("region,operation,when", TEARDOWN)
def test_teardown_leaves_nothing_after_a_lost_answer(moto, make_runner, region, operation, when):
    assert make_runner().provision().ok
    runner = make_runner()
    lost = lose_answer(runner.aws, "dynamodb", region, operation, when=when)
    outcome = runner.teardown()
    assert outcome.ok, [r.error for r in outcome.failed]
    assert lost.lost == 1
    assert tables(PRIMARY) == [] and tables(DR) == []
    assert runner.plan_teardown().changes == []


def test_a_lost_answer_to_a_stream_repair_is_judged_by_the_table(moto, make_runner):
    """Enabling a stream that exists is a ValidationException: the resend must not happen."""
    ddb(PRIMARY).create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}],
        Tags=[{"Key": k, "Value": v} for k, v in owned_tags("table").items()],
    )
    runner = make_runner()
    lost = lose_answer(runner.aws, "dynamodb", PRIMARY, "UpdateTable", when=lambda p: "StreamSpecification" in p)
    outcome = runner.provision()
    assert outcome.ok, [r.error for r in outcome.failed]
    assert lost.lost == 1 and lost.calls == 1  # judged by a fresh DescribeTable, never resent
    assert describe(PRIMARY)["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert tables(DR) == [TABLE]


def test_pitr_is_enabled_only_once_continuous_backups_read_enabled(moto, make_runner):
    """Right after a table turns ACTIVE, AWS reports ContinuousBackupsStatus DISABLED for a while
    and refuses UpdateContinuousBackups: drkit waits for ENABLED before asking."""
    runner = make_runner()
    calls: list[tuple[str, str, str]] = []
    for region in (PRIMARY, DR):
        left = SimpleNamespace(disabled=2)

        def backups_not_ready(model, region=region, left=left, **_: Any):
            calls.append((region, model.name, "DISABLED" if left.disabled else "ENABLED"))
            if model.name == "DescribeContinuousBackups" and left.disabled:
                left.disabled -= 1
                body = {"ContinuousBackupsDescription": {
                    "ContinuousBackupsStatus": "DISABLED",
                    "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"}},
                    "ResponseMetadata": {"HTTPStatusCode": 200}}
                return SimpleNamespace(status_code=200, headers={}), body
            if model.name == "UpdateContinuousBackups" and left.disabled:
                body = {"Error": {"Code": "ContinuousBackupsUnavailableException",
                                  "Message": "Backups are being enabled for the table"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}
                return SimpleNamespace(status_code=400, headers={}), body
            return None

        for resend in (True, False):
            runner.aws.client("dynamodb", region, resend=resend).meta.events.register(
                "before-call.dynamodb", backups_not_ready)
    # Observe reads each region's backups once before anything exists (not found): start counting
    # DISABLED answers only once the tables exist, as AWS would give them.
    outcome = runner.provision()
    assert outcome.ok, [r.error for r in outcome.failed]
    updates = [c for c in calls if c[1] == "UpdateContinuousBackups"]
    assert [region for region, _, _ in updates] == [PRIMARY, DR]
    assert all(status == "ENABLED" for _, _, status in updates), updates  # never asked too early
    assert pitr(PRIMARY) == "ENABLED" and pitr(DR) == "ENABLED"


def test_replica_encryption_is_repaired_on_the_table_in_the_primary_region(moto, make_runner, monkeypatch):
    """The encryption type is a global-table setting that AWS carries to each replica: the repair
    is an UpdateTable on the table, never one in the replica's region. (moto ignores
    SSESpecification in UpdateTable, so only the call can be checked.)"""
    runner = make_runner()
    assert runner.provision().ok
    original = EnsureGlobalTable._describe
    monkeypatch.setattr(EnsureGlobalTable, "_describe", lambda self, ctx, region: {
        **original(self, ctx, region), "SSEDescription": {"Status": "DISABLED"}})
    assert {(c.key, c.attribute, c.region) for c in runner.verify().changes} == {
        ("table", "encryption", PRIMARY), ("replica", "encryption", DR)}
    updates: list[tuple[str, dict]] = []
    for region in (PRIMARY, DR):
        for resend in (True, False):
            runner.aws.client("dynamodb", region, resend=resend).meta.events.register(
                "provide-client-params.dynamodb.UpdateTable",
                lambda params, region=region, **_: updates.append((region, dict(params))))
    assert runner.provision().ok
    assert [region for region, _ in updates] == [PRIMARY, PRIMARY]  # the table's, then the replica's repair
    assert all(p["SSESpecification"] == {"Enabled": True, "SSEType": "KMS"} for _, p in updates)
