"""One lost answer on each mutating call of the Aurora and secret steps (the request is carried
out, the answer is a 500): provision and teardown still converge in one run, the call is never
resent into a second resource or an error, and teardown leaves nothing. Read back with boto3."""

from __future__ import annotations

import json

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from drkit.runner import audit_path
from tests.aurora_helpers import lose_answer
from tests.conftest import DR, PRIMARY
from tests.test_aurora_step import SECRET, make_aurora_runner, rds, secrets  # noqa: F401  (fixture)

PROVISION_CALLS = [
    ("secretsmanager", PRIMARY, "CreateSecret"),
    ("rds", PRIMARY, "CreateDBSubnetGroup"),
    ("rds", PRIMARY, "CreateGlobalCluster"),
    ("rds", PRIMARY, "CreateDBCluster"),
    ("rds", PRIMARY, "CreateDBInstance"),
    ("rds", DR, "CreateDBSubnetGroup"),
    ("rds", DR, "CreateDBCluster"),
    ("rds", DR, "CreateDBInstance"),
]

TEARDOWN_CALLS = [
    ("rds", DR, "RemoveFromGlobalCluster"),
    ("rds", DR, "DeleteDBInstance"),
    ("rds", DR, "DeleteDBCluster"),
    ("rds", DR, "DeleteDBSubnetGroup"),
    ("rds", PRIMARY, "RemoveFromGlobalCluster"),
    ("rds", PRIMARY, "DeleteDBInstance"),
    ("rds", PRIMARY, "DeleteDBCluster"),
    ("rds", PRIMARY, "DeleteGlobalCluster"),
    ("rds", PRIMARY, "DeleteDBSubnetGroup"),
    ("secretsmanager", PRIMARY, "RemoveRegionsFromReplication"),
    ("secretsmanager", PRIMARY, "DeleteSecret"),
]

# Deletes whose resend is harmless: a subnet group answers DBSubnetGroupNotFoundFault, accepted.
RESENT_SAFELY = {"DeleteDBSubnetGroup"}


def recovered(runner) -> list[str]:
    """Operations the audit file marks as answered by a fresh read after a lost answer."""
    lines = [json.loads(line) for line in audit_path(runner.config).read_text().splitlines()]
    return [line["operation"] for line in lines if line.get("recovered")]


def aurora_left(region: str) -> tuple[list, list, list]:
    client = rds(region)
    return ([c["DBClusterIdentifier"] for c in client.describe_db_clusters()["DBClusters"]],
            [i["DBInstanceIdentifier"] for i in client.describe_db_instances()["DBInstances"]],
            [g["DBSubnetGroupName"] for g in client.describe_db_subnet_groups()["DBSubnetGroups"]
             if g["DBSubnetGroupName"].startswith("aurora-")])


@pytest.mark.parametrize("service,region,operation", PROVISION_CALLS, ids=lambda v: str(v))
def test_provision_survives_a_lost_answer(moto, make_aurora_runner, service, region, operation):
    runner = make_aurora_runner()
    calls = lose_answer(runner, service, region, operation)
    outcome = runner.provision()
    assert outcome.ok, [r.error for r in outcome.failed]
    assert (calls.lost, calls.sent) == (1, 1)  # looked up, never resent
    assert recovered(runner) == [xform_name(operation)]

    # Exactly one of everything, and verify finds nothing to change.
    assert aurora_left(PRIMARY) == (["aurora-primary-test"], ["aurora-primary-test-1"], ["aurora-subnets-primary-test"])
    assert aurora_left(DR) == (["aurora-dr-test"], ["aurora-dr-test-1"], ["aurora-subnets-dr-test"])
    assert [g["GlobalClusterIdentifier"] for g in rds(PRIMARY).describe_global_clusters()["GlobalClusters"]] == [
        "aurora-global-test"]
    assert [s["Name"] for s in secrets().list_secrets()["SecretList"]] == [SECRET]
    assert runner.verify().changes == []


@pytest.mark.parametrize("service,region,operation", TEARDOWN_CALLS, ids=lambda v: str(v))
def test_teardown_survives_a_lost_answer(moto, make_aurora_runner, service, region, operation):
    runner = make_aurora_runner(force=True)
    assert runner.provision().ok
    calls = lose_answer(runner, service, region, operation)
    done = runner.teardown()
    assert done.ok, [r.error for r in done.failed]
    if operation in RESENT_SAFELY:  # gone already: the resend's not-found is the answer
        assert (calls.lost, calls.sent, recovered(runner)) == (1, 2, [])
    else:
        assert (calls.lost, calls.sent) == (1, 1)
        assert recovered(runner) == [xform_name(operation)]

    for where in (PRIMARY, DR):
        assert aurora_left(where) == ([], [], [])
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            secrets(where).describe_secret(SecretId=SECRET)
    assert rds(PRIMARY).describe_global_clusters()["GlobalClusters"] == []
    assert runner.plan_teardown().changes == []

