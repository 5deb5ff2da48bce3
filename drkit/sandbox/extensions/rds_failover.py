"""Aurora global database DR operations as AWS runs them: switchover, failover, detach-and-promote.

moto 5.2 implements neither switchover nor failover, reports no SynchronizationStatus, and cuts a
snapshot ARN whose name holds a colon (`rds:...`). Emulated here (each point cites its AWS page;
state moves lazily on the injectable clock and on every RDS request, no background threads):

- SwitchoverGlobalCluster, and FailoverGlobalCluster with AllowDataLoss (failover) or with
  Switchover or neither (switchover); TargetDbClusterIdentifier is an ARN. The global cluster is
  `switching-over` / `failing-over` and reports FailoverState (Status, FromDbClusterArn,
  ToDbClusterArn, IsDataLossAllowed) for `timings.rds_switchover` seconds; then the target is the
  writer, the old primary a read-only secondary, and FailoverState is gone.
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_SwitchoverGlobalCluster.html
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverGlobalCluster.html
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverState.html
- GlobalClusterMembers[].SynchronizationStatus is `connected`, or `pending-resync` for an old
  primary after a failover until it has rejoined and resynced.
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_GlobalClusterMember.html
- Regional outages (drkit.sandbox.outage, RDS APIs out): switchovers are for a global database
  whose clusters are all healthy, so one with either cluster's Region out is refused
  (InvalidDBClusterStateFault; the sandbox's choice, AWS documents no error for it). A failover
  needs only the target's Region: sent there, it succeeds while the old primary's Region is out.
  The old primary cannot be demoted meanwhile: it stays a member, not the writer, `pending-resync`.
  Once its Region answers again Aurora adds it back as a secondary, first taking a snapshot of its
  old storage volume named `rds:unplanned-global-failover-<old primary>-<timestamp>`, a system
  (SnapshotType `automated`) snapshot subject to the old primary's backup retention, which can be
  copied to a manual one; the rejoined secondary is `pending-resync` for `rds_switchover` seconds,
  then `connected`. A failover with the old primary's Region up rejoins it at once the same way.
  Switching over to or from a member still `pending-resync` is refused
  (InvalidGlobalClusterStateFault): AWS has you fail back "after the original topology is restored".
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html#aurora-global-database-failover.managed-unplanned
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBClusterSnapshots.html
- RemoveFromGlobalCluster takes the member's ARN (any Region) and detaches it: a secondary becomes
  a standalone writable (IsWriter) cluster, `promoting` for `timings.rds_promoting` seconds, then
  `available`; it is no longer listed in GlobalClusterMembers. The primary cannot be removed while
  secondaries remain (InvalidGlobalClusterStateFault). Nothing in the primary's Region is needed,
  so detach-and-promote works from the secondary's Region while the primary's is out.
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RemoveFromGlobalCluster.html
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-managing.html#aurora-global-database-detaching
- A DB cluster snapshot ARN names the snapshot after the sixth colon (`...:cluster-snapshot:rds:x`):
  CopyDBClusterSnapshot finds an automated snapshot by that ARN (as a cross-Region copy needs).
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-copy-snapshot.html
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.rds.exceptions import (
    DBClusterNotFoundError,
    InvalidDBClusterStateFault,
    InvalidParameterCombination,
    InvalidParameterValue,
)
from moto.rds.models import DBCluster, GlobalCluster, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

from drkit.sandbox.extensions.rds_global import (
    InvalidGlobalClusterState,
    _all_global_clusters,
    _detach,
    _find_cluster,
    _find_global,
    _lock,
    _same,
    global_status,
)
from drkit.sandbox.outage import active_outages
from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_rds_failover_installed"
_timings: SandboxTimings | None = None
SNAPSHOT_PREFIX = "rds:unplanned-global-failover-"


def _t() -> SandboxTimings:
    assert _timings is not None, "rds_failover extension is not installed"
    return _timings


def _region_of(cluster: DBCluster) -> str:
    return str(cluster.db_cluster_arn.split(":")[3])


def _rds_out(cluster: DBCluster) -> bool:
    return active_outages().apis_out(_region_of(cluster), "rds")


def _member(gc: GlobalCluster, cluster: DBCluster) -> DBCluster | None:
    """The global cluster's own object for `cluster` (moto may hold another one for it)."""
    return next((m for m in gc.members if _same(m, cluster)), None)


# --- members: synchronization and rejoining --------------------------------------------------


def synchronization_status(member: DBCluster) -> str:
    resync = member.__dict__.get("_drkit_resync")
    if resync is None:
        return "connected"
    if resync["awaiting_rejoin"] or _t().elapsed_since(resync["since"]) < _t().rds_switchover:
        return "pending-resync"
    member.__dict__["_drkit_resync"] = None
    return "connected"


def secondary_since(member: DBCluster) -> datetime:
    """When the cluster last became a replicating secondary (its creation, unless a role change)."""
    return member.__dict__.get("_drkit_secondary_since") or member.created


def awaiting_rejoin(member: DBCluster) -> bool:
    resync = member.__dict__.get("_drkit_resync")
    return bool(resync and resync["awaiting_rejoin"])


def _rejoin(member: DBCluster) -> None:
    """The old primary's Region answers again: snapshot its old volume, then resync it."""
    resync = member.__dict__["_drkit_resync"]
    account, region = member.db_cluster_arn.split(":")[4], _region_of(member)
    backend = rds_backends[account][region]
    name = f"{SNAPSHOT_PREFIX}{member.db_cluster_identifier}-{resync['failed_at']:%Y-%m-%d-%H-%M}"
    if member.db_cluster_identifier in backend.clusters and name not in backend.cluster_snapshots:
        backend.create_db_cluster_snapshot(member.db_cluster_identifier, name, snapshot_type="automated")
    member.__dict__["_drkit_resync"] = {"awaiting_rejoin": False, "since": _t().now()}
    member.__dict__["_drkit_secondary_since"] = datetime.now(timezone.utc).replace(tzinfo=None)


def advance(gc: GlobalCluster) -> None:
    """Finish an operation whose time is up; rejoin old primaries whose Region is back."""
    with _lock:  # described from the HTTP server's threads too
        op = gc.__dict__.get("_drkit_failover")
        if op is not None and _t().elapsed_since(op["since"]) >= _t().rds_switchover:
            gc.__dict__["_drkit_failover"] = None
            old, new = _member(gc, op["from"]), _member(gc, op["to"])
            if new is not None:
                if old is not None and not _same(old, new):
                    old.is_writer = False
                    old.__dict__["_drkit_secondary_since"] = datetime.now(timezone.utc).replace(tzinfo=None)
                    if op["data_loss"]:
                        old.__dict__["_drkit_resync"] = {"awaiting_rejoin": True, "failed_at": op["failed_at"]}
                new.is_writer = True
                new.__dict__["_drkit_resync"] = None
        for member in gc.members:
            if awaiting_rejoin(member) and not _rds_out(member):
                _rejoin(member)


# --- switchover / failover -------------------------------------------------------------------


def _status(self: GlobalCluster) -> str:
    base = global_status(self)
    if base == "deleting":
        return base
    advance(self)
    op = self.__dict__.get("_drkit_failover")
    if op is not None:
        return "failing-over" if op["data_loss"] else "switching-over"
    return base


def _failover_state(self: GlobalCluster) -> dict[str, Any] | None:
    advance(self)
    op = self.__dict__.get("_drkit_failover")
    if op is None:
        return None  # FailoverState is present only while an operation is in progress
    return {
        "Status": "failing-over" if op["data_loss"] else "switching-over",
        "FromDbClusterArn": op["from"].db_cluster_arn,
        "ToDbClusterArn": op["to"].db_cluster_arn,
        "IsDataLossAllowed": op["data_loss"],
    }


def _check_reachable(cluster: DBCluster) -> None:
    if _rds_out(cluster):
        raise InvalidDBClusterStateFault(
            f"DB cluster {cluster.db_cluster_arn} cannot be reached: its Region {_region_of(cluster)} is "
            "impaired (sandbox outage)."
        )
    if cluster.status != "available":
        raise InvalidDBClusterStateFault(
            f"DB cluster {cluster.db_cluster_arn} is in {cluster.status} state but expected it to be available."
        )


def _start(responder: RDSResponse, data_loss: bool) -> GlobalCluster:
    params = responder.params
    account = responder.current_account
    _, gc = _find_global(account, params["GlobalClusterIdentifier"])
    advance(gc)
    if gc.__dict__.get("_drkit_failover") is not None:
        raise InvalidGlobalClusterState(
            f"Global cluster {gc.global_cluster_identifier} is not in a valid state for this "
            f"operation: {gc.status}"
        )
    target_id = params["TargetDbClusterIdentifier"]
    target = _member(gc, _find_cluster(account, responder.region, target_id))
    if target is None:
        raise DBClusterNotFoundError(
            target_id,
            f"The DB cluster {target_id} is not a member of global cluster {gc.global_cluster_identifier}",
        )
    if target.is_writer:
        raise InvalidParameterValue(
            f"DB cluster {target_id} is already the primary cluster of global cluster "
            f"{gc.global_cluster_identifier}"
        )
    writer = next((m for m in gc.members if m.is_writer), None)
    involved = [target] if data_loss or writer is None else [target, writer]
    for cluster in involved:
        _check_reachable(cluster)
        if awaiting_rejoin(cluster) or (not data_loss and synchronization_status(cluster) != "connected"):
            raise InvalidGlobalClusterState(
                f"DB cluster {cluster.db_cluster_arn} of global cluster {gc.global_cluster_identifier} is "
                "pending-resync: wait until it is connected"
            )
    gc.__dict__["_drkit_failover"] = {
        "from": writer or target,
        "to": target,
        "data_loss": data_loss,
        "since": _t().now(),
        "failed_at": datetime.now(timezone.utc),
    }
    return gc


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    return str(value).lower() == "true"


# --- installation ----------------------------------------------------------------------------


def install(timings: SandboxTimings) -> None:
    global _timings
    if getattr(RDSBackend, _MARK, False):
        return
    setattr(RDSBackend, _MARK, True)
    _timings = timings

    GlobalCluster.status = property(_status, GlobalCluster.status.fset)  # type: ignore[assignment,attr-defined]
    GlobalCluster.failover_state = property(_failover_state)  # type: ignore[attr-defined]
    moto_members = GlobalCluster.global_cluster_members.fget  # type: ignore[attr-defined]

    def global_cluster_members(self: GlobalCluster) -> list[dict[str, Any]]:
        advance(self)
        described = moto_members(self)
        for entry, member in zip(described, self.members):
            entry["SynchronizationStatus"] = synchronization_status(member)
        return list(described)

    GlobalCluster.global_cluster_members = property(global_cluster_members)  # type: ignore[assignment]

    original_call_action = RDSResponse.call_action

    def call_action(self: RDSResponse) -> Any:
        with _lock:
            for gc in _all_global_clusters():
                advance(gc)
        return original_call_action(self)

    RDSResponse.call_action = call_action  # type: ignore[method-assign]

    def switchover_global_cluster(self: RDSResponse) -> ActionResult:
        with _lock:
            gc = _start(self, data_loss=False)
        return ActionResult({"GlobalCluster": gc})

    def failover_global_cluster(self: RDSResponse) -> ActionResult:
        allow_data_loss = _flag(self.params.get("AllowDataLoss"))
        if allow_data_loss and _flag(self.params.get("Switchover")):
            raise InvalidParameterCombination("AllowDataLoss and Switchover cannot both be specified.")
        with _lock:
            gc = _start(self, data_loss=bool(allow_data_loss))
        return ActionResult({"GlobalCluster": gc})

    RDSResponse.switchover_global_cluster = switchover_global_cluster  # type: ignore[attr-defined]
    RDSResponse.failover_global_cluster = failover_global_cluster  # type: ignore[attr-defined]

    def remove_from_global_cluster(
        self: RDSBackend, global_cluster_identifier: str, db_cluster_identifier: str
    ) -> GlobalCluster:
        with _lock:
            _, gc = _find_global(self.account_id, global_cluster_identifier)
            cluster = _find_cluster(self.account_id, self.region_name, db_cluster_identifier)
            member = _member(gc, cluster)
            if member is None:
                raise DBClusterNotFoundError(
                    db_cluster_identifier,
                    f"The DB cluster {db_cluster_identifier} is not a member of global cluster "
                    f"{gc.global_cluster_identifier}",
                )
            if member.is_writer and len(gc.members) > 1:
                raise InvalidGlobalClusterState(
                    "The primary cluster of a global cluster can't be removed while the global "
                    "cluster has secondary clusters; remove the secondary clusters first."
                )
            was_secondary = not member.is_writer
            _detach(gc, cluster)
            for detached in (member, cluster):
                detached.is_writer = True  # a standalone cluster with full read/write capability
                detached.__dict__["_drkit_resync"] = None
            if was_secondary and _t().rds_promoting > 0:
                cluster.status = "promoting"
            return gc

    RDSBackend.remove_from_global_cluster = remove_from_global_cluster  # type: ignore[method-assign]

    original_get_snapshot = RDSBackend.get_snapshot

    def get_snapshot(self: RDSBackend, identifier: str, resource_type: Any, not_found_exception: Any) -> Any:
        if identifier.startswith("arn:") and identifier.count(":") > 6:
            parts = identifier.split(":", 6)  # arn:partition:rds:region:account:cluster-snapshot:NAME
            backend = rds_backends[parts[4]][parts[3]]
            return original_get_snapshot(backend, parts[6], resource_type, not_found_exception)
        return original_get_snapshot(self, identifier, resource_type, not_found_exception)

    RDSBackend.get_snapshot = get_snapshot  # type: ignore[method-assign]
