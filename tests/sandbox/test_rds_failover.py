"""Contract tests: an Aurora global database's DR operations in the sandbox behave as on AWS --
switchover, managed failover (also while the primary's Region is out, with the old primary's
rejoin and its point-of-failure snapshot), fail back, detach-and-promote.

Each test names the AWS page that documents the behaviour it asserts.
"""

from __future__ import annotations

import re

import boto3
import botocore.config
import pytest
from botocore.exceptions import EndpointConnectionError

from drkit.sandbox.region_outage import region_outage
from tests.sandbox.test_rds_global import (  # noqa: F401  (global_db is a fixture)
    DR,
    GLOBAL,
    PRIMARY,
    cluster_status,
    create_cluster,
    error_code,
    global_cluster,
    global_db,
    members,
    rds,
)

FAILOVER_SNAPSHOT = re.compile(r"^rds:unplanned-global-failover-app-primary-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}$")


def sync_status(region: str = DR) -> dict[str, str]:
    """Member ARN -> SynchronizationStatus."""
    return {m["DBClusterArn"]: m["SynchronizationStatus"] for m in global_cluster(region)["GlobalClusterMembers"]}


def failover_snapshots(region: str = PRIMARY) -> list[dict]:
    snapshots = rds(region).describe_db_cluster_snapshots(DBClusterIdentifier="app-primary", SnapshotType="automated")
    return [s for s in snapshots["DBClusterSnapshots"] if s["DBClusterSnapshotIdentifier"].startswith("rds:unplanned")]


def test_switchover_swaps_the_writer_and_reports_failover_state_while_in_progress(global_db, wait_until):
    # SwitchoverGlobalCluster: the secondary becomes the writer, the old primary a read-only
    # secondary; FailoverState is present only while the operation is in progress.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_SwitchoverGlobalCluster.html
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverState.html
    primary, secondary = global_db
    answer = rds(DR).switchover_global_cluster(GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=secondary)[
        "GlobalCluster"
    ]
    assert answer["Status"] == "switching-over"
    assert answer["FailoverState"] == {
        "Status": "switching-over",
        "FromDbClusterArn": primary,
        "ToDbClusterArn": secondary,
        "IsDataLossAllowed": False,
    }
    assert wait_until(lambda: "FailoverState" not in global_cluster(), timeout=1.0)
    assert global_cluster()["Status"] == "available"
    assert members() == {primary: False, secondary: True}


def test_failover_with_allow_data_loss(global_db, wait_until):
    # FailoverGlobalCluster with AllowDataLoss fails over (IsDataLossAllowed true); AllowDataLoss
    # and Switchover together are refused.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverGlobalCluster.html
    primary, secondary = global_db
    assert error_code(
        lambda: rds(DR).failover_global_cluster(
            GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=secondary, AllowDataLoss=True, Switchover=True
        )
    ) == "InvalidParameterCombination"
    answer = rds(DR).failover_global_cluster(
        GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=secondary, AllowDataLoss=True
    )["GlobalCluster"]
    assert answer["Status"] == "failing-over"
    assert answer["FailoverState"]["IsDataLossAllowed"] is True
    # A second operation while one is in progress is refused.
    assert error_code(
        lambda: rds(DR).switchover_global_cluster(GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=primary)
    ) == "InvalidGlobalClusterStateFault"
    assert wait_until(lambda: members() == {primary: False, secondary: True}, timeout=1.0)
    assert "FailoverState" not in global_cluster()


def test_switchover_target_must_be_a_secondary_member(global_db):
    # The target must be a secondary DB cluster of the global database (DBClusterNotFoundFault).
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_SwitchoverGlobalCluster.html#API_SwitchoverGlobalCluster_Errors
    outsider = create_cluster(DR, "outsider")
    code = error_code(
        lambda: rds(DR).switchover_global_cluster(
            GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=outsider["DBClusterArn"]
        )
    )
    assert code == "DBClusterNotFoundFault"
    assert error_code(
        lambda: rds(DR).switchover_global_cluster(GlobalClusterIdentifier="nope", TargetDbClusterIdentifier=outsider["DBClusterArn"])
    ) == "GlobalClusterNotFoundFault"


def test_switchover_takes_the_switchover_time_not_the_creating_time(global_db, aws, wait_until):
    # The operation is in progress (FailoverState present) for its own duration: AWS's RTO "can be
    # in the order of minutes", unlike the many minutes a cluster is `creating`.
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html
    primary, secondary = global_db
    aws.rds_creating, aws.rds_switchover = 60.0, 0.2
    rds(PRIMARY).switchover_global_cluster(GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=secondary)
    assert wait_until(lambda: global_cluster()["Status"] == "available", timeout=0.15) is False
    assert global_cluster()["FailoverState"]["Status"] == "switching-over"
    assert wait_until(lambda: "FailoverState" not in global_cluster(), timeout=0.1)
    assert members() == {primary: False, secondary: True}


def test_healthy_members_are_connected(global_db):
    # GlobalClusterMembers[].SynchronizationStatus: connected | pending-resync.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_GlobalClusterMember.html
    primary, secondary = global_db
    assert sync_status(PRIMARY) == {primary: "connected", secondary: "connected"}


def test_unplanned_failover_while_the_primary_region_is_out_then_rejoin_and_fail_back(global_db, aws, wait_until):
    # Managed failover (FailoverGlobalCluster --allow-data-loss, sent in the secondary's Region)
    # while the primary's Region is out; when that Region is healthy again Aurora adds the old
    # primary back as a secondary, first taking a snapshot of its old volume named
    # rds:unplanned-global-failover-<old primary>-<timestamp>, a system snapshot subject to the
    # old primary's backup retention that can be copied to a manual one; then fail back with a
    # switchover.
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html#aurora-global-database-failover.managed-unplanned
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBClusterSnapshots.html
    primary, secondary = global_db
    aws.rds_switchover = 0.2
    one_try = boto3.client("rds", region_name=PRIMARY, config=botocore.config.Config(retries={"total_max_attempts": 1}))
    with region_outage() as outage:
        outage.down(PRIMARY)
        with pytest.raises(EndpointConnectionError):
            one_try.describe_db_clusters()
        # A switchover needs a healthy primary; a failover does not.
        assert error_code(lambda: rds(DR).switchover_global_cluster(
            GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=secondary)) == "InvalidDBClusterStateFault"
        answer = rds(DR).failover_global_cluster(
            GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=secondary, AllowDataLoss=True)["GlobalCluster"]
        assert answer["FailoverState"]["IsDataLossAllowed"] is True
        assert wait_until(lambda: members(DR) == {primary: False, secondary: True}, timeout=0.5)
        assert wait_until(lambda: sync_status() != {primary: "pending-resync", secondary: "connected"},
                          timeout=5.0) is False  # however long the Region stays out
        assert ("us-east-1", "rds") in outage.refused
    # The Region is back: the old primary has rejoined, its point-of-failure snapshot taken.
    assert sync_status()[primary] == "pending-resync"
    [snapshot] = failover_snapshots()
    assert FAILOVER_SNAPSHOT.match(snapshot["DBClusterSnapshotIdentifier"])
    assert snapshot["SnapshotType"] == "automated" and snapshot["Status"] == "available"
    assert error_code(lambda: rds(PRIMARY).switchover_global_cluster(  # not yet resynced
        GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=primary)) == "InvalidGlobalClusterStateFault"
    assert wait_until(lambda: sync_status() == {primary: "connected", secondary: "connected"}, timeout=0.5)
    # Keep the snapshot beyond the retention period: copy it to a manual one, here and cross-Region.
    rds(PRIMARY).copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier=snapshot["DBClusterSnapshotIdentifier"],
                                          TargetDBClusterSnapshotIdentifier="lost-writes")
    rds(DR).copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier=snapshot["DBClusterSnapshotArn"],
                                     TargetDBClusterSnapshotIdentifier="lost-writes-dr")
    kept = rds(PRIMARY).describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
    assert [(s["DBClusterSnapshotIdentifier"], s["DBClusterIdentifier"]) for s in kept] == [("lost-writes", "app-primary")]
    assert rds(DR).describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="lost-writes-dr")["DBClusterSnapshots"]
    # Fail back: a switchover to the original primary, without data loss.
    rds(DR).switchover_global_cluster(GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=primary)
    assert wait_until(lambda: members() == {primary: True, secondary: False}, timeout=0.5)
    assert sync_status() == {primary: "connected", secondary: "connected"}
    assert len(failover_snapshots()) == 1  # a switchover takes no such snapshot


def test_a_failover_with_the_old_primary_region_up_rejoins_it_at_once(global_db, aws, wait_until):
    # Managed failover on a healthy global database (a DR test): the old primary is added back as a
    # secondary as soon as it is available, after its point-of-failure snapshot.
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html#aurora-global-database-failover.managed-unplanned
    primary, secondary = global_db
    rds(DR).failover_global_cluster(GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=secondary,
                                    AllowDataLoss=True)
    assert sync_status() == {primary: "connected", secondary: "connected"}  # nothing changed yet
    assert failover_snapshots() == []
    assert wait_until(lambda: members() == {primary: False, secondary: True}, timeout=1.0)
    assert sync_status()[primary] == "pending-resync"
    assert len(failover_snapshots()) == 1
    assert wait_until(lambda: sync_status()[primary] == "connected", timeout=1.0)


def test_detach_and_promote_from_the_secondary_region_while_the_primary_region_is_out(global_db, wait_until):
    # Manual failover: RemoveFromGlobalCluster of the secondary, sent in its own Region, makes it a
    # standalone writable cluster; nothing in the impaired primary Region is needed.
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html#aurora-global-database-failover.manual-unplanned
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RemoveFromGlobalCluster.html
    primary, secondary = global_db
    with region_outage() as outage:
        outage.down(PRIMARY)
        answer = rds(DR).remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=secondary)
        assert [m["DBClusterArn"] for m in answer["GlobalCluster"]["GlobalClusterMembers"]] == [primary]
        assert cluster_status(DR, "app-secondary") == "promoting"
        assert wait_until(lambda: cluster_status(DR, "app-secondary") == "available", timeout=1.0)
        # A writer of its own: it can head a new global database, all from the DR Region.
        rds(DR).create_global_cluster(GlobalClusterIdentifier="drkit-global-dr", SourceDBClusterIdentifier=secondary)
        new = rds(DR).describe_global_clusters(GlobalClusterIdentifier="drkit-global-dr")["GlobalClusters"][0]
        assert [(m["DBClusterArn"], m["IsWriter"]) for m in new["GlobalClusterMembers"]] == [(secondary, True)]
        assert create_cluster(DR, "app-secondary-2")["Status"] in ("creating", "available")  # DR RDS works
