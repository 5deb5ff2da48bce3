"""Aurora clusters, instances and global databases as AWS runs them.

moto 5.2 makes clusters and instances `available` at once and keeps global-database members it
cannot find in the request's Region (members are compared by ARN here, never by object identity).
This extension emulates (each point cites the AWS page it follows):

- Transitional states, computed lazily from the injectable clock: a new DB cluster or DB instance
  is `creating` for `timings.rds_creating` seconds, then `available`; a deleted one is `deleting`
  for `timings.rds_deleting` seconds (0: gone at once), then no longer described.
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/accessing-monitoring.html#Overview.DBInstance.Status
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Aurora.Status.html
- DeleteDBCluster fails with InvalidDBClusterStateFault while the cluster still has instances that
  are not being deleted ("Cluster cannot be deleted, it still contains DB instances in non-deleting
  state."). A primary (writer) member of a global database cannot be deleted while the global
  database has other members (InvalidGlobalClusterStateFault "Unable to delete cluster that is a
  primary member of global cluster while there are other global cluster members"), nor can the last
  instance of that primary be deleted (InvalidDBClusterStateFault "Cannot delete the last instance
  of the master cluster. Delete the replica cluster before deleting the last master cluster
  instance."). Deleting a secondary removes it from the global database's members, in any Region.
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-managing.html#aurora-global-database-deleting
- DeleteGlobalCluster fails with InvalidGlobalClusterStateFault while members remain, and with
  GlobalClusterNotFoundFault for an unknown identifier; a deleted global cluster is `deleting` for
  `timings.rds_global_deleting` seconds before it is gone; DescribeGlobalClusters honours
  GlobalClusterIdentifier. Global databases are found from every Region.
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteGlobalCluster.html
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeGlobalClusters.html
The DR operations (switchover, failover, detach-and-promote) and the members'
SynchronizationStatus are in rds_failover.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.responses import ActionResult
from moto.rds.exceptions import (
    DBClusterNotFoundError,
    DBClusterToBeDeletedHasActiveMembers,
    InvalidDBClusterStateFault,
    InvalidDBInstanceStateFault,
    InvalidParameterCombination,
    RDSClientError,
)
from moto.rds.models import DBCluster, DBInstance, GlobalCluster, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_rds_global_installed"
_timings: SandboxTimings | None = None
_lock = threading.RLock()


class GlobalClusterNotFoundFault(RDSClientError):
    def __init__(self, identifier: str) -> None:
        super().__init__("GlobalClusterNotFoundFault", f"Global cluster {identifier} not found.")


class InvalidGlobalClusterState(RDSClientError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidGlobalClusterStateFault", message)


def _t() -> SandboxTimings:
    assert _timings is not None, "rds_global extension is not installed"
    return _timings


def _promoting_seconds() -> float:
    return float(_t().rds_promoting)


# --- lazy states -----------------------------------------------------------------------------


def _set_state(obj: Any, value: str) -> None:
    obj.__dict__["_drkit_state"] = value
    obj.__dict__["_drkit_since"] = _t().now()


def _lazy_state(obj: Any, fallback: str) -> str:
    state = obj.__dict__.get("_drkit_state")
    if state is None:
        return fallback
    t = _t()
    since = obj.__dict__.get("_drkit_since", 0.0)
    if state == "creating" and t.elapsed_since(since) >= t.rds_creating:
        state = "available"
        _set_state(obj, state)
    elif state == "promoting" and t.elapsed_since(since) >= _promoting_seconds():
        state = "available"
        _set_state(obj, state)
    return state


def _cluster_status(self: DBCluster) -> str:
    raw = self.__dict__.get("_status", "available")
    return _lazy_state(self, "available" if raw == "creating" else raw)


def _cluster_set_status(self: DBCluster, value: str) -> None:
    self.__dict__["_status"] = value
    _set_state(self, value)


def _instance_status(self: DBInstance) -> str:
    return _lazy_state(self, self.__dict__.get("_drkit_raw_status", "available"))


def _instance_set_status(self: DBInstance, value: str) -> None:
    self.__dict__["_drkit_raw_status"] = value
    _set_state(self, value)


def _sweep() -> None:
    """Forget clusters and instances whose deletion has lasted `rds_deleting` seconds."""
    t = _t()
    with _lock:
        for account_id in list(rds_backends.keys()):
            for backend in list(rds_backends[account_id].values()):
                for key, db in list(backend.databases.items()):
                    if db.__dict__.get("_drkit_state") == "deleting" and t.elapsed_since(
                        db.__dict__.get("_drkit_since", 0.0)
                    ) >= t.rds_deleting:
                        backend.databases.pop(key, None)
                for key, cluster in list(backend.clusters.items()):
                    if cluster.__dict__.get("_drkit_state") == "deleting" and t.elapsed_since(
                        cluster.__dict__.get("_drkit_since", 0.0)
                    ) >= t.rds_deleting:
                        backend.clusters.pop(key, None)
        for gc in _all_global_clusters():
            since = gc.__dict__.get("_drkit_deleting_since")
            if since is not None and t.elapsed_since(since) >= t.rds_global_deleting:
                gc.backend.global_clusters.pop(gc.global_cluster_identifier, None)


# --- global clusters across Regions ----------------------------------------------------------


def _all_global_clusters(account_id: str | None = None) -> list[GlobalCluster]:
    found: list[GlobalCluster] = []
    accounts = [account_id] if account_id else list(rds_backends.keys())
    for acct in accounts:
        for backend in list(rds_backends[acct].values()):
            found.extend(backend.global_clusters.values())
    return found


def _find_global(account_id: str, identifier: str) -> tuple[RDSBackend, GlobalCluster]:
    wanted = (identifier or "").lower()
    for backend in list(rds_backends[account_id].values()):
        for gc in backend.global_clusters.values():
            if gc.global_cluster_identifier == wanted or gc.global_cluster_arn.lower() == wanted:
                return backend, gc
    raise GlobalClusterNotFoundFault(identifier)


def _find_cluster(account_id: str, region: str, identifier: str) -> DBCluster:
    """A DB cluster by ARN (any Region of the sandbox) or by identifier in the request's Region."""
    if identifier.startswith("arn:"):
        parts = identifier.split(":")
        region, account_id, name = parts[3], parts[4], parts[-1]
    else:
        name = identifier
    cluster = rds_backends[account_id][region].clusters.get(name.lower())
    if cluster is None:
        raise DBClusterNotFoundError(identifier)
    return cluster


def _same(a: DBCluster, b: DBCluster) -> bool:
    """Members are the same cluster when their ARNs are: moto may hold another object for it."""
    return bool(a.db_cluster_arn == b.db_cluster_arn)


def _global_of(cluster: DBCluster) -> GlobalCluster | None:
    for gc in _all_global_clusters(cluster.backend.account_id):
        if any(_same(member, cluster) for member in gc.members):
            return gc
    return None


def _detach(gc: GlobalCluster, cluster: DBCluster) -> None:
    gc.members = [member for member in gc.members if not _same(member, cluster)]
    cluster.global_cluster_identifier = None


# --- global cluster status --------------------------------------------------------------------


def global_status(self: GlobalCluster) -> str:
    """`deleting` once DeleteGlobalCluster was accepted, else the status moto set (rds_failover
    reports a switchover or failover in progress on top of this)."""
    if self.__dict__.get("_drkit_deleting_since") is not None:
        return "deleting"
    return str(self.__dict__.get("_drkit_status", "available"))


def _global_set_status(self: GlobalCluster, value: str) -> None:
    self.__dict__["_drkit_status"] = value


# --- installation ----------------------------------------------------------------------------


def install(timings: SandboxTimings) -> None:
    global _timings
    if getattr(RDSBackend, _MARK, False):
        return
    setattr(RDSBackend, _MARK, True)
    _timings = timings

    DBCluster.status = property(_cluster_status, _cluster_set_status)  # type: ignore[assignment]
    DBInstance.status = property(_instance_status, _instance_set_status)  # type: ignore[assignment]
    GlobalCluster.status = property(global_status, _global_set_status)  # type: ignore[assignment]

    original_call_action = RDSResponse.call_action

    def call_action(self: RDSResponse) -> Any:
        _sweep()
        return original_call_action(self)

    RDSResponse.call_action = call_action  # type: ignore[method-assign]

    original_create_cluster = RDSBackend.create_db_cluster

    def create_db_cluster(self: RDSBackend, kwargs: dict[str, Any]) -> DBCluster:
        cluster = original_create_cluster(self, kwargs)
        cluster.status = "creating" if _t().rds_creating > 0 else "available"
        return cluster

    RDSBackend.create_db_cluster = create_db_cluster  # type: ignore[method-assign]

    original_create_instance = RDSBackend.create_db_instance

    def create_db_instance(self: RDSBackend, db_kwargs: dict[str, Any]) -> DBInstance:
        database = original_create_instance(self, db_kwargs)
        database.status = "creating" if _t().rds_creating > 0 else "available"
        return database

    RDSBackend.create_db_instance = create_db_instance  # type: ignore[method-assign]

    original_delete_instance = RDSBackend.delete_db_instance

    def delete_db_instance(
        self: RDSBackend,
        db_instance_identifier: str,
        final_db_snapshot_identifier: str | None = None,
        skip_final_snapshot: bool | None = False,
        delete_automated_backups: bool | None = True,
    ) -> DBInstance:
        existing = self.databases.get(db_instance_identifier)
        if existing is not None and existing.status == "deleting":
            raise InvalidDBInstanceStateFault(f"Instance {db_instance_identifier} is already being deleted.")
        cluster_id = getattr(existing, "db_cluster_identifier", None) if existing is not None else None
        cluster = self.clusters.get(cluster_id) if cluster_id else None
        if cluster is not None:
            gc = _global_of(cluster)
            live = [m for m in cluster._members if m.status != "deleting"]
            if gc is not None and cluster.is_writer and len(gc.members) > 1 and len(live) == 1:
                raise InvalidDBClusterStateFault(
                    "Cannot delete the last instance of the master cluster. Delete the replica "
                    "cluster before deleting the last master cluster instance."
                )
        database = original_delete_instance(
            self,
            db_instance_identifier,
            final_db_snapshot_identifier=final_db_snapshot_identifier,
            skip_final_snapshot=skip_final_snapshot,
            delete_automated_backups=delete_automated_backups,
        )
        database.status = "deleting"
        if _t().rds_deleting > 0:
            self.databases[db_instance_identifier] = database  # described as deleting until swept
        return database

    RDSBackend.delete_db_instance = delete_db_instance  # type: ignore[method-assign]

    def delete_db_cluster(self: RDSBackend, cluster_identifier: str, snapshot_name: str | None = None) -> DBCluster:
        cluster = self.clusters.get(cluster_identifier)
        if cluster is None:
            raise DBClusterNotFoundError(cluster_identifier)
        if cluster.status == "deleting":
            raise InvalidDBClusterStateFault(f"DB cluster {cluster_identifier} is already being deleted.")
        if cluster.deletion_protection:
            raise InvalidParameterCombination(
                "Cannot delete protected Cluster, please disable deletion protection and try again."
            )
        if any(member.status != "deleting" for member in cluster._members):
            raise DBClusterToBeDeletedHasActiveMembers()
        with _lock:
            gc = _global_of(cluster)
            if gc is not None:
                if cluster.is_writer and len(gc.members) > 1:
                    raise InvalidGlobalClusterState(
                        "Unable to delete cluster that is a primary member of global cluster while "
                        "there are other global cluster members"
                    )
                _detach(gc, cluster)
        if cluster.manage_master_user_password:
            cluster.master_user_secret.delete_secret()
        if snapshot_name:
            self.create_db_cluster_snapshot(cluster_identifier, snapshot_name)
        cluster.status = "deleting"
        if _t().rds_deleting <= 0:
            self.clusters.pop(cluster_identifier)
        return cluster

    RDSBackend.delete_db_cluster = delete_db_cluster  # type: ignore[method-assign]

    original_create_global = RDSBackend.create_global_cluster

    def create_global_cluster(
        self: RDSBackend,
        global_cluster_identifier: str,
        source_db_cluster_identifier: str | None,
        engine: str | None,
        engine_version: str | None,
        storage_encrypted: bool | None,
        deletion_protection: bool | None,
    ) -> GlobalCluster:
        # The source cluster may be in any Region (moto only looks in the Region that stores
        # global clusters); it becomes the primary (writer) member.
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateGlobalCluster.html
        source = None
        if source_db_cluster_identifier and source_db_cluster_identifier.startswith("arn:"):
            source = _find_cluster(self.account_id, self.region_name, source_db_cluster_identifier)
            if _global_of(source) is not None:
                raise InvalidDBClusterStateFault(
                    f"Source cluster {source_db_cluster_identifier} is already part of a global cluster"
                )
        if source is not None and source.backend is not self:
            if engine is not None:
                raise InvalidParameterCombination(
                    "When creating global cluster from existing db cluster, value for engineName "
                    "should not be specified since it will be inherited from source cluster"
                )
            gc = original_create_global(
                self, global_cluster_identifier, None, source.engine, source.engine_version,
                storage_encrypted, deletion_protection,
            )
            source.global_cluster_identifier = gc.global_cluster_arn
            gc.members.append(source)
        else:
            gc = original_create_global(
                self, global_cluster_identifier, source_db_cluster_identifier, engine, engine_version,
                storage_encrypted, deletion_protection,
            )
        if len(gc.members) == 1:
            gc.members[0].is_writer = True
        return gc

    RDSBackend.create_global_cluster = create_global_cluster  # type: ignore[method-assign]

    # CreateGlobalCluster keeps its Tags (DescribeGlobalClusters returns them as TagList), and a
    # global cluster's ARN (arn:aws:rds::ACCOUNT:global-cluster:NAME, no Region) can be tagged.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateGlobalCluster.html
    # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Tagging.html
    original_response_create_global = RDSResponse.create_global_cluster

    def response_create_global_cluster(self: RDSResponse) -> Any:
        result = original_response_create_global(self)
        created = result.result["GlobalCluster"] if hasattr(result, "result") else None
        if created is None:
            created = _find_global(self.current_account, self.params["GlobalClusterIdentifier"])[1]
        created.add_tags(self.params.get("Tags") or [])
        return result

    RDSResponse.create_global_cluster = response_create_global_cluster  # type: ignore[method-assign]

    original_resource_for_tagging = RDSBackend._get_resource_for_tagging

    def resource_for_tagging(self: RDSBackend, arn: str) -> Any:
        if ":global-cluster:" in arn:
            return _find_global(self.account_id, arn.rsplit(":", 1)[1])[1]
        return original_resource_for_tagging(self, arn)

    RDSBackend._get_resource_for_tagging = resource_for_tagging  # type: ignore[method-assign]

    def delete_global_cluster(self: RDSBackend, global_cluster_identifier: str) -> GlobalCluster:
        with _lock:
            backend, gc = _find_global(self.account_id, global_cluster_identifier)
            if gc.__dict__.get("_drkit_deleting_since") is not None:
                raise InvalidGlobalClusterState(f"Global Cluster {gc.global_cluster_arn} is already being deleted")
            if gc.members:
                raise InvalidGlobalClusterState(f"Global Cluster {gc.global_cluster_arn} is not empty")
            if gc.deletion_protection:
                raise InvalidParameterCombination(
                    "Cannot delete protected Global Cluster, please disable deletion protection and "
                    "try again."
                )
            if _t().rds_global_deleting > 0:
                gc.__dict__["_drkit_deleting_since"] = _t().now()  # `deleting`, then swept away
            else:
                backend.global_clusters.pop(gc.global_cluster_identifier)
            return gc

    RDSBackend.delete_global_cluster = delete_global_cluster  # type: ignore[method-assign]

    def describe_global_clusters(self: RDSResponse) -> ActionResult:
        identifier = self.params.get("GlobalClusterIdentifier")
        if identifier:
            clusters = [_find_global(self.current_account, identifier)[1]]
        else:
            clusters = _all_global_clusters(self.current_account)
        return ActionResult({"GlobalClusters": clusters})

    RDSResponse.describe_global_clusters = describe_global_clusters  # type: ignore[method-assign]
