"""Aurora global-database replication lag in CloudWatch, as AWS publishes it.

AWS publishes `AuroraGlobalDBReplicationLag` (milliseconds) in the `AWS/RDS` namespace for each
secondary cluster of a global database, dimension `DBClusterIdentifier`, in the secondary's
Region, about once a minute:
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-monitoring.html
moto publishes no service metrics at all, so `drkit verify --deep` would only ever see "no data".
This extension publishes one datapoint a minute, from the minute the cluster became a secondary
(created as one, or demoted by a switchover or failover) in, each time the metric is read with
GetMetricStatistics, so the metric follows the roles: after a switchover it is published for the
old primary, in its Region, and no longer for the new one ("replication lag [is] only available
for secondary Regions. Thus, a failover changes how to view those metrics", see
aurora-global-database-disaster-recovery.html). The value is `timings.aurora_replication_lag_ms`
(change it in place, or DRKIT_SANDBOX_AURORA_REPLICATION_LAG_MS): a new value read within the
current minute adds a datapoint at that moment, so a test can make the lag high. Primaries,
standalone clusters and an old primary not yet rejoined after a failover get no datapoints.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from moto.cloudwatch.models import CloudWatchBackend
from moto.core.utils import utcnow
from moto.rds.models import rds_backends

from drkit.sandbox.extensions.rds_failover import awaiting_rejoin, secondary_since
from drkit.sandbox.extensions.rds_global import _global_of, _same
from drkit.sandbox.timings import SandboxTimings

NAMESPACE = "AWS/RDS"
METRIC = "AuroraGlobalDBReplicationLag"
_MARK = "_drkit_aurora_lag_installed"


def install(timings: SandboxTimings) -> None:
    if getattr(CloudWatchBackend, _MARK, False):
        return
    setattr(CloudWatchBackend, _MARK, True)
    original = CloudWatchBackend.get_metric_statistics

    def get_metric_statistics(self: CloudWatchBackend, namespace: str, metric_name: str, start_time: datetime,
                              end_time: datetime, period: int, stats: list[str], dimensions: Any,
                              unit: str | None = None) -> Any:
        if namespace == NAMESPACE and metric_name == METRIC:
            _publish_lag(self, dimensions, timings)
        return original(self, namespace, metric_name, start_time, end_time, period, stats, dimensions, unit)

    CloudWatchBackend.get_metric_statistics = get_metric_statistics  # type: ignore[method-assign]


def _publish_lag(backend: CloudWatchBackend, dimensions: Any, timings: SandboxTimings) -> None:
    cluster_id = next((d["Value"] for d in dimensions or [] if d.get("Name") == "DBClusterIdentifier"), None)
    cluster = rds_backends[backend.account_id][backend.region_name].clusters.get(cluster_id or "")
    if cluster is None:
        return
    global_cluster = _global_of(cluster)
    member = global_cluster and next((m for m in global_cluster.members if _same(m, cluster)), None)
    if member is None or member.is_writer or awaiting_rejoin(member):
        return
    published: dict = backend.__dict__.setdefault("_drkit_lag_published", {})
    value = timings.aurora_replication_lag_ms
    now = utcnow()
    current = _minute(now)
    minute = _minute(secondary_since(member))
    while minute <= now:
        key = (cluster_id, minute)
        if key not in published or (minute == current and published[key] != value):
            stamp = minute if key not in published else now  # a changed lag: a datapoint now
            published[key] = value
            backend.put_metric_data(NAMESPACE, [{
                "MetricName": METRIC, "Value": value, "Unit": "Milliseconds",
                "Timestamp": stamp, "Dimensions": [{"Name": "DBClusterIdentifier", "Value": cluster_id}],
            }])
        minute += timedelta(minutes=1)


def _minute(moment: datetime) -> datetime:
    """The start of the minute `moment` is in (datapoints are stamped per minute)."""
    return moment.replace(second=0, microsecond=0)
