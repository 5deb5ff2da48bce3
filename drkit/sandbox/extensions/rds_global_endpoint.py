"""The Aurora global database writer endpoint in DescribeGlobalClusters.

AWS gives every Aurora global database a writer endpoint, `<name>.global-<id>.global.rds.amazonaws.com`,
that always points at the writer of the current primary cluster, so it follows a switchover or a
failover without any change on the client's side; DescribeGlobalClusters returns it as `Endpoint`.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-connecting.html
moto returns no `Endpoint`; this adds it (a stable name per global cluster).
"""

from __future__ import annotations

from moto.rds.models import GlobalCluster

from drkit.sandbox.timings import SandboxTimings


def install(timings: SandboxTimings) -> None:
    if isinstance(getattr(GlobalCluster, "endpoint", None), property):
        return
    GlobalCluster.endpoint = property(  # type: ignore[attr-defined]
        lambda self: f"{self.global_cluster_identifier}.global-{self.unique_identifier}.global.rds.amazonaws.com")
