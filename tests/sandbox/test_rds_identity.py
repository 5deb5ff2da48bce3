"""Contract tests: one RDS resource per identifier, reusable once gone; subnet groups modify in
place; global databases are `deleting` before they are gone. Each test cites the AWS page."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from drkit.sandbox.faults import armed_faults
from tests.sandbox.test_rds_global import (
    DR,
    ENGINE,
    GLOBAL,
    PRIMARY,
    cluster_status,
    create_cluster,
    create_instance,
    error_code,
    global_db,  # noqa: F401 (fixture)
    members,
    rds,
)


def subnets(region: str = PRIMARY) -> list[str]:
    ec2 = boto3.client("ec2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{region}{z}")["Subnet"]["SubnetId"]
            for i, z in enumerate("abc")]


def group_subnets(name: str) -> list[str]:
    group = rds(PRIMARY).describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"][0]
    return sorted(s["SubnetIdentifier"] for s in group["Subnets"])


def test_creating_an_existing_cluster_fails_and_changes_nothing(aws):
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html (DBClusterAlreadyExistsFault)
    first = create_cluster(PRIMARY, "c1", DatabaseName="first")
    assert error_code(lambda: create_cluster(PRIMARY, "c1", DatabaseName="second")) == "DBClusterAlreadyExistsFault"
    clusters = rds(PRIMARY).describe_db_clusters()["DBClusters"]
    assert [(c["DbClusterResourceId"], c.get("DatabaseName")) for c in clusters] == [(first["DbClusterResourceId"], "first")]


def test_creating_an_existing_instance_fails_and_changes_nothing(aws):
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html (DBInstanceAlreadyExists)
    create_cluster(PRIMARY, "c1")
    first = create_instance(PRIMARY, "c1", "c1-1")
    assert error_code(lambda: create_instance(PRIMARY, "c1", "c1-1")) == "DBInstanceAlreadyExists"
    assert [i["DbiResourceId"] for i in rds(PRIMARY).describe_db_instances()["DBInstances"]] == [first["DbiResourceId"]]
    cluster = rds(PRIMARY).describe_db_clusters(DBClusterIdentifier="c1")["DBClusters"][0]
    assert [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"]] == ["c1-1"]


def test_creating_an_existing_global_cluster_fails_from_any_region(aws):
    # Global cluster identifiers are account-wide.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateGlobalCluster.html (GlobalClusterAlreadyExistsFault)
    first = rds(PRIMARY).create_global_cluster(GlobalClusterIdentifier=GLOBAL, Engine=ENGINE)["GlobalCluster"]
    for region in (PRIMARY, DR):
        assert error_code(lambda: rds(region).create_global_cluster(GlobalClusterIdentifier=GLOBAL, Engine=ENGINE)) == \
            "GlobalClusterAlreadyExistsFault"
    found = rds(DR).describe_global_clusters()["GlobalClusters"]
    assert [g["GlobalClusterResourceId"] for g in found] == [first["GlobalClusterResourceId"]]


def test_creating_an_existing_subnet_group_fails_and_changes_nothing(aws):
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBSubnetGroup.html (DBSubnetGroupAlreadyExists)
    ids = subnets()
    rds(PRIMARY).create_db_subnet_group(DBSubnetGroupName="g", DBSubnetGroupDescription="first", SubnetIds=ids[:2])
    assert error_code(lambda: rds(PRIMARY).create_db_subnet_group(
        DBSubnetGroupName="g", DBSubnetGroupDescription="second", SubnetIds=ids[1:])) == "DBSubnetGroupAlreadyExists"
    group = rds(PRIMARY).describe_db_subnet_groups(DBSubnetGroupName="g")["DBSubnetGroups"][0]
    assert group["DBSubnetGroupDescription"] == "first" and group_subnets("g") == sorted(ids[:2])


def test_modify_subnet_group_replaces_its_subnets_and_keeps_the_group(aws):
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBSubnetGroup.html
    ids = subnets()
    rds(PRIMARY).create_db_subnet_group(DBSubnetGroupName="g", DBSubnetGroupDescription="d", SubnetIds=ids[:2])
    rds(PRIMARY).modify_db_subnet_group(DBSubnetGroupName="g", SubnetIds=ids[1:])
    assert group_subnets("g") == sorted(ids[1:])
    assert rds(PRIMARY).describe_db_subnet_groups(DBSubnetGroupName="g")["DBSubnetGroups"][0]["DBSubnetGroupDescription"] == "d"
    assert error_code(lambda: rds(PRIMARY).modify_db_subnet_group(DBSubnetGroupName="nope", SubnetIds=ids)) == \
        "DBSubnetGroupNotFoundFault"


def test_a_cluster_can_be_recreated_right_after_it_is_gone(aws, wait_until):
    # DeleteDBCluster removes automated backups by default, so nothing of the old cluster blocks
    # the identifier once the cluster is gone (moto's automated snapshot name used to collide).
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html (DeleteAutomatedBackups)
    first = create_cluster(PRIMARY, "c1")
    rds(PRIMARY).delete_db_cluster(DBClusterIdentifier="c1", SkipFinalSnapshot=True)
    assert wait_until(lambda: not rds(PRIMARY).describe_db_clusters()["DBClusters"], timeout=1.0)
    second = create_cluster(PRIMARY, "c1")
    assert second["DbClusterResourceId"] != first["DbClusterResourceId"]
    assert [c["DbClusterResourceId"] for c in rds(PRIMARY).describe_db_clusters()["DBClusters"]] == [second["DbClusterResourceId"]]


def test_a_retried_secondary_create_after_a_lost_response_leaves_one_removable_member(global_db, wait_until):
    # The secondary's CreateDBCluster was committed but its answer lost; the retry is refused with
    # DBClusterAlreadyExistsFault, and the member stays one cluster that can be removed by ARN.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RemoveFromGlobalCluster.html
    primary, _ = global_db
    client = boto3.client("rds", region_name=DR, config=Config(retries={"mode": "standard", "total_max_attempts": 2}))
    with armed_faults() as faults:
        faults.lost_response("rds", "CreateDBCluster")
        assert error_code(lambda: client.create_db_cluster(
            DBClusterIdentifier="app-secondary-2", Engine=ENGINE, GlobalClusterIdentifier=GLOBAL)) == \
            "DBClusterAlreadyExistsFault"
        assert [i["operation"] for i in faults.injected()] == ["CreateDBCluster"]
    arn = rds(DR).describe_db_clusters(DBClusterIdentifier="app-secondary-2")["DBClusters"][0]["DBClusterArn"]
    assert wait_until(lambda: cluster_status(DR, "app-secondary-2") == "available")
    assert arn in members()
    rds(PRIMARY).remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=arn)
    assert arn not in members(PRIMARY) and arn not in members(DR)
    assert primary in members()


def test_a_deleted_global_cluster_is_deleting_then_gone(aws):
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_GlobalCluster.html (Status)
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteGlobalCluster.html
    now = [1000.0]
    aws.clock = lambda: now[0]  # a hand-driven clock: the sandbox fixture restores the real one
    aws.rds_global_deleting = 30
    rds(PRIMARY).create_global_cluster(GlobalClusterIdentifier=GLOBAL, Engine=ENGINE)
    answer = rds(PRIMARY).delete_global_cluster(GlobalClusterIdentifier=GLOBAL)["GlobalCluster"]
    assert answer["Status"] == "deleting"
    now[0] += 29
    assert rds(DR).describe_global_clusters(GlobalClusterIdentifier=GLOBAL)["GlobalClusters"][0]["Status"] == "deleting"
    assert error_code(lambda: rds(PRIMARY).delete_global_cluster(GlobalClusterIdentifier=GLOBAL)) == \
        "InvalidGlobalClusterStateFault"
    assert error_code(lambda: rds(PRIMARY).create_global_cluster(GlobalClusterIdentifier=GLOBAL, Engine=ENGINE)) == \
        "GlobalClusterAlreadyExistsFault"
    now[0] += 1
    assert rds(PRIMARY).describe_global_clusters()["GlobalClusters"] == []
    assert error_code(lambda: rds(PRIMARY).describe_global_clusters(GlobalClusterIdentifier=GLOBAL)) == \
        "GlobalClusterNotFoundFault"
    rds(PRIMARY).create_global_cluster(GlobalClusterIdentifier=GLOBAL, Engine=ENGINE)  # the name is free again


def test_members_are_matched_by_arn_even_if_moto_holds_another_object_for_them(global_db):
    # moto replaced the stored cluster object on a repeated create; the global database then kept
    # the old one and answered "not a member" while still listing it. Membership is by ARN.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_GlobalClusterMember.html
    import copy

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    _, secondary = global_db
    clusters = rds_backends[DEFAULT_ACCOUNT_ID][DR].clusters
    clusters["app-secondary"] = copy.copy(clusters["app-secondary"])
    rds(PRIMARY).remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=secondary)
    assert secondary not in members()
