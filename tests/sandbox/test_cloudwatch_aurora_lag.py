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
