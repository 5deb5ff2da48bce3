"""How the Aurora and secret steps handle what real AWS does that a happy path never shows:
"not a member" answers, deletes refused while busy, clusters not yet visible after a create,
a switchover before teardown, modifications still pending, failed states, a minor version AWS
upgraded, the DR KMS key read without side effects, a Failed secret replica, and a restore
refused after a forced delete. Each is proved by reading AWS (moto) back with boto3."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from drkit.step import FAILED
from steps.aurora_rds import step_status, why_not
from tests.aurora_helpers import error_answer, fake_answers, hook
from tests.conftest import DR, PRIMARY
from tests.test_aurora_step import (  # noqa: F401  (fixture)
    SECRET, cluster, global_cluster, instance, make_aurora_runner, rds, secrets,
)
from steps.secrets import EnsureDbSecret


def members() -> dict[str, bool]:
    return {m["DBClusterArn"]: m["IsWriter"] for m in global_cluster()["GlobalClusterMembers"]}


def nothing_left() -> None:
    for region in (PRIMARY, DR):
        assert rds(region).describe_db_clusters()["DBClusters"] == []
        assert rds(region).describe_db_instances()["DBInstances"] == []
    assert rds(PRIMARY).describe_global_clusters()["GlobalClusters"] == []


def rds_mutations(runner) -> list[tuple[str, str]]:
    return [(region, op) for service, region, op in runner.aws.stats.mutating_calls if service == "rds"]


# RemoveFromGlobalCluster -------------------------------------------------------------------
def test_not_a_member_answer_is_believed_when_a_read_agrees(moto, make_aurora_runner):
    runner = make_aurora_runner()
    assert runner.provision().ok
    dr_arn = cluster(DR, "aurora-dr-test")["DBClusterArn"]

    def detached_meanwhile(_params: Any, **__: Any) -> tuple:
        # Someone (a runbook) detached it a moment before; AWS answers with its broad code.
        boto3.client("rds", region_name=DR).remove_from_global_cluster(
            GlobalClusterIdentifier="aurora-global-test", DbClusterIdentifier=dr_arn)
        return error_answer("InvalidParameterValue", f"Cluster {dr_arn} is not found in global cluster aurora-global-test")

    fake_answers(runner, "rds", DR, "RemoveFromGlobalCluster", lambda params: detached_meanwhile(params))
    done = runner.teardown()
    assert done.ok, [r.error for r in done.failed]
    nothing_left()


def test_not_a_member_answer_while_still_listed_is_reported_not_waited_out(moto, make_aurora_runner, clock):
    runner = make_aurora_runner()
    assert runner.provision().ok
    fake_answers(runner, "rds", DR, "RemoveFromGlobalCluster",
                 lambda _: error_answer("InvalidParameterValue", "Cluster x is not found in global cluster y"))
    started = clock.monotonic()
    done = runner.teardown(["ensure_replica"])
    [failed] = done.failed
    assert "still lists it" in failed.error.message
    assert clock.monotonic() - started < 60  # reported at once, not retried for minutes
    assert cluster(DR, "aurora-dr-test")["DBClusterArn"] in members()  # nothing was deleted
    assert instance(DR, "aurora-dr-test-1")["DBInstanceStatus"] == "available"


# Deletes refused while busy ------------------------------------------------------------------
@pytest.mark.parametrize("region,operation,code", [
    (DR, "DeleteDBInstance", "InvalidDBInstanceState"),
    (DR, "DeleteDBCluster", "InvalidDBClusterStateFault"),
    (PRIMARY, "DeleteGlobalCluster", "InvalidGlobalClusterStateFault"),
])
def test_a_delete_refused_while_busy_is_retried(moto, make_aurora_runner, region, operation, code):
    runner = make_aurora_runner()
    assert runner.provision().ok
    refusals = iter([error_answer(code, "a backup is in progress")] * 3)
    fake_answers(runner, "rds", region, operation, lambda _: next(refusals, None))
    done = runner.teardown()
    assert done.ok, [r.error for r in done.failed]
    assert next(refusals, "spent") == "spent"  # all three refusals were met, then it went through
    nothing_left()


# Just created, not yet visible -----------------------------------------------------------------
def test_a_cluster_not_yet_visible_after_its_create_is_waited_for(moto, make_aurora_runner):
    runner = make_aurora_runner()
    created = {"done": False}
    hook(runner, "rds", PRIMARY, "after-call.rds.CreateDBCluster", lambda **_: created.update(done=True))
    not_visible = iter([error_answer("DBClusterNotFoundFault", "DBCluster aurora-primary-test not found.", 404)] * 3)
    fake_answers(runner, "rds", PRIMARY, "DescribeDBClusters",
                 lambda _: next(not_visible, None) if created["done"] else None)
    outcome = runner.provision()
    assert outcome.ok, [r.error for r in outcome.failed]
    assert next(not_visible, "spent") == "spent"
    assert len(rds(PRIMARY).describe_db_clusters()["DBClusters"]) == 1
    assert cluster(PRIMARY, "aurora-primary-test")["Status"] == "available"


def test_a_cluster_that_never_appears_after_its_create_fails_after_two_minutes(moto, make_aurora_runner, clock):
    runner = make_aurora_runner()
    created: dict[str, float] = {}
    hook(runner, "rds", PRIMARY, "after-call.rds.CreateDBCluster",
         lambda **_: created.setdefault("at", clock.monotonic()))
    fake_answers(runner, "rds", PRIMARY, "DescribeDBClusters",
                 lambda _: error_answer("DBClusterNotFoundFault", "not found.", 404) if created else None)
    outcome = runner.provision()
    failed = {r.step.key: r.error.message for r in outcome.failed}
    assert "it no longer exists" in failed["ensure_global_cluster:primary"]
    # Not-found means "not visible yet" for 2 minutes; the wait starts once the instance, created
    # alongside the cluster, is available (300 s in these tests' sandbox).
    assert 120 <= clock.monotonic() - created["at"] < 300 + 300


# Teardown after a switchover ----------------------------------------------------------------
def test_teardown_after_a_switchover_detaches_the_secondary_first(moto, make_aurora_runner, clock):
    runner = make_aurora_runner()
    assert runner.provision().ok
    dr_arn = cluster(DR, "aurora-dr-test")["DBClusterArn"]
    primary_arn = cluster(PRIMARY, "aurora-primary-test")["DBClusterArn"]
    rds(DR).switchover_global_cluster(GlobalClusterIdentifier="aurora-global-test", TargetDbClusterIdentifier=dr_arn)
    clock.sleep(3600)
    assert members() == {dr_arn: True, primary_arn: False}

    detached_while: list[dict[str, bool]] = []
    for region in (PRIMARY, DR):
        hook(runner, "rds", region, "before-call.rds.RemoveFromGlobalCluster",
             lambda **_: detached_while.append(members()))
    planned = runner.plan_teardown().changes
    membership = next(c for c in planned if c.kind == "global_cluster_membership" and c.region == DR)
    assert "it is the writer" in membership.note

    done = runner.teardown()
    assert done.ok, [r.error for r in done.failed]
    # The secondary (the old primary) left first, in its own region; the writer left last, alone.
    detaches = [(region, op) for region, op in rds_mutations(runner) if op == "remove_from_global_cluster"]
    assert detaches == [(PRIMARY, "remove_from_global_cluster"), (DR, "remove_from_global_cluster")]
    assert detached_while == [{dr_arn: True, primary_arn: False}, {dr_arn: True}]
    nothing_left()


# Modifications are waited for until applied --------------------------------------------------
def test_a_modification_is_waited_for_until_it_reads_back(moto, make_aurora_runner):
    runner = make_aurora_runner()
    assert runner.provision().ok
    rds(DR).modify_db_instance(DBInstanceIdentifier="aurora-dr-test-1", DBInstanceClass="db.r6g.large",
                               ApplyImmediately=True)
    modified = {"done": False}
    pending = iter(range(3))

    def still_pending(parsed: dict, **_: Any) -> None:
        # AWS reads `available` with the old class for a while, the new one under PendingModifiedValues.
        if modified["done"] and next(pending, None) is not None:
            for found in parsed.get("DBInstances", []):
                found.update(DBInstanceClass="db.r6g.large", PendingModifiedValues={"DBInstanceClass": "db.r5.large"})

    hook(runner, "rds", DR, "after-call.rds.ModifyDBInstance", lambda **_: modified.update(done=True))
    hook(runner, "rds", DR, "after-call.rds.DescribeDBInstances", still_pending)
    assert runner.provision().ok
    assert next(pending, "spent") == "spent"  # drkit kept reading until the change had applied
    assert instance(DR, "aurora-dr-test-1")["DBInstanceClass"] == "db.r5.large"


# Failed states ------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["insufficient-capacity", "incompatible-create", "migration-failed",
                                    "inaccessible-encryption-credentials", "incompatible-network"])
def test_failed_states_are_failures_not_pending(status):
    assert step_status(status) == FAILED
    assert why_not("available")(status) == f"it is {status}"


def test_an_instance_that_fails_to_create_is_reported_at_once(moto, make_aurora_runner, clock):
    runner = make_aurora_runner()

    def insufficient_capacity(parsed: dict, **_: Any) -> None:
        for found in parsed.get("DBInstances", []):
            found["DBInstanceStatus"] = "insufficient-capacity"

    hook(runner, "rds", DR, "after-call.rds.DescribeDBInstances", insufficient_capacity)
    started = clock.monotonic()
    outcome = runner.provision()
    [failed] = outcome.failed
    assert failed.step.key == "ensure_replica:dr" and "it is insufficient-capacity" in failed.error.message
    assert clock.monotonic() - started < 1800  # not waited out to the hour's timeout


# Minor versions AWS applied -----------------------------------------------------------------
def test_a_newer_minor_version_is_a_finding_never_a_downgrade_or_a_refusal(moto, make_aurora_runner):
    runner = make_aurora_runner()
    assert runner.provision().ok

    def upgraded(parsed: dict, **_: Any) -> None:
        for found in parsed.get("DBClusters", []) + parsed.get("GlobalClusters", []):
            found["EngineVersion"] = "14.9"

    for region in (PRIMARY, DR):
        hook(runner, "rds", region, "after-call.rds.DescribeDBClusters", upgraded)
        hook(runner, "rds", region, "after-call.rds.DescribeGlobalClusters", upgraded)
    runner.aws.stats.__init__()
    outcome = runner.provision()
    assert outcome.ok and outcome.changes == [], [c.describe() for c in outcome.changes]
    assert runner.aws.stats.mutating == 0
    findings = {(f.step, f.kind, f.attribute, f.expected, f.actual) for f in runner.verify().changes}
    assert findings == {
        ("ensure_global_cluster:primary", "global_cluster", "engine_version", "14.6", "14.9"),
        ("ensure_global_cluster:primary", "db_cluster", "engine_version", "14.6", "14.9"),
        ("ensure_replica:dr", "db_cluster", "engine_version", "14.6", "14.9"),
    }
    assert all("newer minor version (AWS upgraded it)" in f.note for f in runner.verify().changes)


# The DR KMS key ---------------------------------------------------------------------------------
def test_plan_verify_and_teardown_never_create_the_aws_managed_key(moto, make_aurora_runner):
    kms = boto3.client("kms", region_name=DR)
    runner = make_aurora_runner()
    assert runner.plan().ok
    assert kms.list_keys()["Keys"] == []  # DescribeKey on alias/aws/rds would have created it
    assert "kms.describe_key" not in runner.aws.stats.by_operation

    assert runner.provision().ok  # the create may make AWS create it
    key = kms.describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"]
    assert cluster(DR, "aurora-dr-test")["KmsKeyId"] == key

    checker = make_aurora_runner()
    assert checker.verify().changes == []
    assert checker.teardown().ok
    assert "kms.describe_key" not in checker.aws.stats.by_operation


# Secrets --------------------------------------------------------------------------------------
def test_a_failed_secret_replica_is_repaired_by_provision(moto, make_aurora_runner):
    # A secret of that name already in the DR region makes the replica fail.
    blocker = secrets(DR).create_secret(Name=SECRET, SecretString="{}")
    runner = make_aurora_runner(steps=[EnsureDbSecret()])
    assert runner.provision().ok
    [status] = secrets().describe_secret(SecretId=SECRET)["ReplicationStatus"]
    assert status["Status"] == "Failed"
    [finding] = runner.verify().changes
    assert finding.attribute == "failed_replicas" and DR in finding.actual

    secrets(DR).delete_secret(SecretId=blocker["ARN"], ForceDeleteWithoutRecovery=True)
    assert runner.provision().ok
    [status] = secrets().describe_secret(SecretId=SECRET)["ReplicationStatus"]
    assert (status["Region"], status["Status"]) == (DR, "InSync")
    replica = json.loads(secrets(DR).get_secret_value(SecretId=SECRET)["SecretString"])
    assert replica == json.loads(secrets().get_secret_value(SecretId=SECRET)["SecretString"])
    assert runner.verify().changes == []


@pytest.mark.parametrize("refusal", ["not found", "marked for deletion"])
def test_a_refused_restore_after_a_forced_delete_falls_back_to_create(moto, make_aurora_runner, refusal):
    runner = make_aurora_runner(steps=[EnsureDbSecret()])
    assert runner.provision().ok
    old = secrets().describe_secret(SecretId=SECRET)["ARN"]
    assert runner.teardown().ok  # scheduled for deletion: the next provision will try to restore it

    again = make_aurora_runner(steps=[EnsureDbSecret()])

    def forced_meanwhile(_: Any) -> tuple | None:
        # A forced delete (another run's `teardown --force`) lands just before the restore.
        secrets().delete_secret(SecretId=old, ForceDeleteWithoutRecovery=True)
        if refusal == "not found":
            return None  # moto answers ResourceNotFoundException itself
        return error_answer("InvalidRequestException", "You can't perform this operation on the secret because it "
                                                       "was marked for deletion.")

    fake_answers(again, "secretsmanager", PRIMARY, "RestoreSecret", forced_meanwhile)
    outcome = again.provision()
    assert outcome.ok, [r.error for r in outcome.failed]
    described = secrets().describe_secret(SecretId=SECRET)
    assert described["ARN"] != old and described.get("DeletedDate") is None
    assert [r["Region"] for r in described["ReplicationStatus"]] == [DR]
    assert again.verify().changes == []
