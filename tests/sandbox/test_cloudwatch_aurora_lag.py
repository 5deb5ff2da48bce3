"""Contract test: the sandbox publishes AuroraGlobalDBReplicationLag for secondaries, as AWS does.

https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-monitoring.html
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3

from tests.sandbox.test_rds_global import DR, PRIMARY, global_db  # noqa: F401  (fixture)


def lag_datapoints(region: str, cluster: str) -> list[dict]:
    now = datetime.now(timezone.utc)
    return boto3.client("cloudwatch", region_name=region).get_metric_statistics(
        Namespace="AWS/RDS", MetricName="AuroraGlobalDBReplicationLag",
        Dimensions=[{"Name": "DBClusterIdentifier", "Value": cluster}],
        StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1), Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]


def test_lag_is_published_for_the_secondary_only(global_db, fast_timings):  # noqa: F811
    fast_timings.aurora_replication_lag_ms = 250.0
    points = lag_datapoints(DR, "app-secondary")
    assert points and all(p["Maximum"] == 250.0 and p["Unit"] == "Milliseconds" for p in points)
    assert lag_datapoints(DR, "app-secondary") == points  # read twice, published once
    assert lag_datapoints(PRIMARY, "app-primary") == []  # a writer has no global replication lag
    assert lag_datapoints(PRIMARY, "app-secondary") == []  # published in the secondary's region


def test_a_detached_cluster_has_no_global_replication_lag(global_db):  # noqa: F811
    primary_arn, secondary_arn = global_db
    boto3.client("rds", region_name=PRIMARY).remove_from_global_cluster(
        GlobalClusterIdentifier="drkit-global", DbClusterIdentifier=secondary_arn)
    assert lag_datapoints(DR, "app-secondary") == []


def test_lag_follows_the_roles_after_a_switchover(global_db, wait_until):  # noqa: F811
    # "Some CloudWatch metrics, such as replication lag, are only available for secondary Regions.
    # Thus, a switchover changes how to view those metrics."
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html
    primary_arn, secondary_arn = global_db
    rds = boto3.client("rds", region_name=DR)
    rds.switchover_global_cluster(GlobalClusterIdentifier="drkit-global", TargetDbClusterIdentifier=secondary_arn)
    assert wait_until(lambda: not rds.describe_global_clusters()["GlobalClusters"][0].get("FailoverState"), timeout=1.0)
    assert lag_datapoints(PRIMARY, "app-primary")  # the old primary is the secondary now, in its Region
    assert lag_datapoints(DR, "app-secondary") == []  # the new primary has none
    assert lag_datapoints(DR, "app-primary") == []


def test_the_lag_can_be_made_high(global_db, fast_timings):  # noqa: F811
    # The metric is what the runbooks read before a switchover ("the larger the lag value, the
    # longer the switchover will take") and to pick the failover target.
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html
    assert {p["Maximum"] for p in lag_datapoints(DR, "app-secondary")} == {120.0}
    fast_timings.aurora_replication_lag_ms = 45000.0
    assert max(p["Maximum"] for p in lag_datapoints(DR, "app-secondary")) == 45000.0
