"""Contract tests: Aurora clusters and global databases in the sandbox behave as on AWS.

Each test names the AWS page that documents the behaviour it asserts.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

PRIMARY, DR = "us-east-1", "us-west-2"
ENGINE = "aurora-postgresql"
GLOBAL = "drkit-global"

_clients: dict[str, object] = {}


def rds(region: str):
    """Clients are slow to create; moto intercepts them whenever a mock is active, so reuse them."""
    if region not in _clients:
        _clients[region] = boto3.client("rds", region_name=region)
    return _clients[region]


def create_cluster(region: str, name: str, **extra) -> dict:
    params = {"DBClusterIdentifier": name, "Engine": ENGINE}
    if "GlobalClusterIdentifier" not in extra:
        params.update(MasterUsername="drkit", MasterUserPassword="not-a-secret-1")
    params.update(extra)
    return rds(region).create_db_cluster(**params)["DBCluster"]


def create_instance(region: str, cluster: str, name: str) -> dict:
    return rds(region).create_db_instance(
        DBInstanceIdentifier=name, DBClusterIdentifier=cluster, Engine=ENGINE, DBInstanceClass="db.r6g.large"
    )["DBInstance"]


def cluster_status(region: str, name: str) -> str:
    return rds(region).describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]["Status"]


def instance_status(region: str, name: str) -> str:
    return rds(region).describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"]


def global_cluster(region: str = PRIMARY) -> dict:
    return rds(region).describe_global_clusters(GlobalClusterIdentifier=GLOBAL)["GlobalClusters"][0]


def members(region: str = PRIMARY) -> dict[str, bool]:
    """Member ARN -> IsWriter."""
    return {m["DBClusterArn"]: m["IsWriter"] for m in global_cluster(region)["GlobalClusterMembers"]}


def error_code(call) -> str:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"]


@pytest.fixture
def global_db(aws, wait_until):
    """A global database: primary cluster (1 instance) in PRIMARY, secondary (1 instance) in DR."""
    primary = create_cluster(PRIMARY, "app-primary")
    create_instance(PRIMARY, "app-primary", "app-primary-1")
    rds(PRIMARY).create_global_cluster(GlobalClusterIdentifier=GLOBAL, SourceDBClusterIdentifier=primary["DBClusterArn"])
    secondary = create_cluster(DR, "app-secondary", GlobalClusterIdentifier=GLOBAL)
    create_instance(DR, "app-secondary", "app-secondary-1")
    assert wait_until(
        lambda: all(cluster_status(r, c) == "available" for r, c in ((PRIMARY, "app-primary"), (DR, "app-secondary")))
        and instance_status(DR, "app-secondary-1") == "available"
    )
    return primary["DBClusterArn"], secondary["DBClusterArn"]


def test_clusters_and_instances_are_creating_then_available(aws, wait_until):
    # A new DB cluster / DB instance is `creating` before it is `available`.
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Aurora.Status.html
    aws.rds_creating = 0.2
    assert create_cluster(PRIMARY, "c1")["Status"] == "creating"
    assert create_instance(PRIMARY, "c1", "c1-1")["DBInstanceStatus"] == "creating"
    assert cluster_status(PRIMARY, "c1") == "creating"
    assert instance_status(PRIMARY, "c1-1") == "creating"
    assert wait_until(lambda: cluster_status(PRIMARY, "c1") == "available", timeout=1.0)
    assert wait_until(lambda: instance_status(PRIMARY, "c1-1") == "available", timeout=1.0)


def test_deleting_takes_time_then_the_resources_are_gone(aws, wait_until):
    # A deleted DB instance/cluster is `deleting` until it is gone; a cluster can be deleted once its
    # instances are all being deleted.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html
    aws.rds_deleting = 0.2
    create_cluster(PRIMARY, "c1")
    create_instance(PRIMARY, "c1", "c1-1")
    answer = rds(PRIMARY).delete_db_instance(DBInstanceIdentifier="c1-1", SkipFinalSnapshot=True)["DBInstance"]
    assert answer["DBInstanceStatus"] == "deleting"
    assert instance_status(PRIMARY, "c1-1") == "deleting"
    cluster = rds(PRIMARY).delete_db_cluster(DBClusterIdentifier="c1", SkipFinalSnapshot=True)["DBCluster"]
    assert cluster["Status"] == "deleting"
    assert wait_until(lambda: not rds(PRIMARY).describe_db_clusters()["DBClusters"], timeout=1.0)
    assert rds(PRIMARY).describe_db_instances()["DBInstances"] == []
    assert error_code(lambda: rds(PRIMARY).describe_db_clusters(DBClusterIdentifier="c1")) == "DBClusterNotFoundFault"


def test_a_cluster_with_instances_cannot_be_deleted(aws):
    # "Cluster cannot be deleted, it still contains DB instances in non-deleting state."
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html#API_DeleteDBCluster_Errors
    create_cluster(PRIMARY, "c1")
    create_instance(PRIMARY, "c1", "c1-1")
    with pytest.raises(ClientError) as err:
        rds(PRIMARY).delete_db_cluster(DBClusterIdentifier="c1", SkipFinalSnapshot=True)
    assert err.value.response["Error"]["Code"] == "InvalidDBClusterStateFault"
    assert "still contains DB instances" in err.value.response["Error"]["Message"]


def test_members_are_reported_with_their_roles(global_db):
    # GlobalClusterMembers lists every member cluster (any Region) and which one is the writer.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_GlobalClusterMember.html
    primary, secondary = global_db
    assert members(PRIMARY) == {primary: True, secondary: False}
    assert members(DR) == members(PRIMARY)


def test_remove_secondary_from_another_region_detaches_it(global_db, wait_until):
    # RemoveFromGlobalCluster (DbClusterIdentifier = ARN): the secondary becomes a standalone
    # cluster with read/write capability and is no longer a member.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RemoveFromGlobalCluster.html
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-managing.html#aurora-global-database-detaching
    primary, secondary = global_db
    answer = rds(PRIMARY).remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=secondary)
    assert [m["DBClusterArn"] for m in answer["GlobalCluster"]["GlobalClusterMembers"]] == [primary]
    assert members(DR) == {primary: True}
    assert cluster_status(DR, "app-secondary") == "promoting"
    assert wait_until(lambda: cluster_status(DR, "app-secondary") == "available", timeout=1.0)
    # It is now a writable primary of its own: it can head a new global database.
    rds(DR).create_global_cluster(GlobalClusterIdentifier="drkit-global-2", SourceDBClusterIdentifier=secondary)
    new = rds(DR).describe_global_clusters(GlobalClusterIdentifier="drkit-global-2")["GlobalClusters"][0]
    assert new["GlobalClusterMembers"][0]["IsWriter"] is True


def test_the_primary_cannot_be_removed_while_secondaries_remain(global_db):
    # "If any secondary clusters are still associated with the global database, you can't remove
    # the primary cluster."
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-managing.html#aurora-global-database-detaching
    primary, _ = global_db
    code = error_code(
        lambda: rds(PRIMARY).remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=primary)
    )
    assert code == "InvalidGlobalClusterStateFault"


def test_the_last_instance_of_the_primary_cannot_be_deleted_while_secondaries_remain(global_db):
    # "InvalidDBClusterStateFault: Cannot delete the last instance of the master cluster. Delete the
    # replica cluster before deleting the last master cluster instance."
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-managing.html#aurora-global-database-deleting
    code = error_code(lambda: rds(PRIMARY).delete_db_instance(DBInstanceIdentifier="app-primary-1", SkipFinalSnapshot=True))
    assert code == "InvalidDBClusterStateFault"
    assert instance_status(PRIMARY, "app-primary-1") == "available"


def test_deleting_the_primary_cluster_is_refused_while_others_remain(aws):
    # "InvalidGlobalClusterStateFault: Unable to delete cluster that is a primary member of global
    # cluster while there are other global cluster members"
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-managing.html#aurora-global-database-deleting
    primary = create_cluster(PRIMARY, "p")
    rds(PRIMARY).create_global_cluster(GlobalClusterIdentifier=GLOBAL, SourceDBClusterIdentifier=primary["DBClusterArn"])
    create_cluster(DR, "s", GlobalClusterIdentifier=GLOBAL)
    with pytest.raises(ClientError) as err:
        rds(PRIMARY).delete_db_cluster(DBClusterIdentifier="p", SkipFinalSnapshot=True)
    assert err.value.response["Error"]["Code"] == "InvalidGlobalClusterStateFault"
    assert "primary member of global cluster" in err.value.response["Error"]["Message"]


def test_deleting_a_secondary_removes_it_from_the_global_database(global_db, wait_until):
    # Deleting a secondary cluster (after its instances) removes it from the global database, which
    # can then be emptied and deleted.
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-managing.html#aurora-global-database-deleting
    primary, secondary = global_db
    rds(DR).delete_db_instance(DBInstanceIdentifier="app-secondary-1", SkipFinalSnapshot=True)
    rds(DR).delete_db_cluster(DBClusterIdentifier="app-secondary", SkipFinalSnapshot=True)
    assert members() == {primary: True}
    assert error_code(lambda: rds(PRIMARY).delete_global_cluster(GlobalClusterIdentifier=GLOBAL)) == (
        "InvalidGlobalClusterStateFault"  # the primary is still a member
    )
    rds(PRIMARY).remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=primary)
    rds(DR).delete_global_cluster(GlobalClusterIdentifier=GLOBAL)  # from any Region
    assert wait_until(lambda: rds(PRIMARY).describe_global_clusters()["GlobalClusters"] == [], timeout=1.0)
    assert error_code(lambda: global_cluster()) == "GlobalClusterNotFoundFault"


def test_global_cluster_tags_are_kept_and_can_be_changed_by_arn(aws):
    # CreateGlobalCluster takes Tags, DescribeGlobalClusters returns them as TagList, and the
    # global cluster's ARN works with AddTagsToResource / ListTagsForResource.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateGlobalCluster.html
    created = rds(PRIMARY).create_global_cluster(
        GlobalClusterIdentifier="tagged-global", Engine=ENGINE, Tags=[{"Key": "ManagedBy", "Value": "drkit"}]
    )["GlobalCluster"]
    found = rds(PRIMARY).describe_global_clusters(GlobalClusterIdentifier="tagged-global")["GlobalClusters"][0]
    assert found["TagList"] == [{"Key": "ManagedBy", "Value": "drkit"}]
    rds(DR).add_tags_to_resource(ResourceName=created["GlobalClusterArn"], Tags=[{"Key": "Project", "Value": "DR"}])
    tags = rds(PRIMARY).list_tags_for_resource(ResourceName=created["GlobalClusterArn"])["TagList"]
    assert {t["Key"]: t["Value"] for t in tags} == {"ManagedBy": "drkit", "Project": "DR"}
