"""RDS identifiers as AWS keeps them: one resource per identifier, reusable once it is gone.

AWS behaviour emulated (moto 5.2 overwrites the existing object, or fails on a snapshot name):
- CreateDBCluster for an identifier that exists (in any state, `deleting` included) fails with
  DBClusterAlreadyExistsFault and changes nothing; CreateGlobalCluster with
  GlobalClusterAlreadyExistsFault (global cluster identifiers are unique across Regions);
  CreateDBSubnetGroup with DBSubnetGroupAlreadyExists. (CreateDBInstance already fails with
  DBInstanceAlreadyExists in moto.)
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateGlobalCluster.html
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBSubnetGroup.html
- DeleteDBCluster removes the cluster's automated backups unless DeleteAutomatedBackups is false
  (the default is to remove them), so a cluster re-created under the same identifier -- within
  the same minute, too -- gets its automated snapshot without a name collision. (moto names it
  `rds:<id>-YYYY-MM-DD-HH-MM` and failed with DBClusterSnapshotAlreadyExistsFault.)
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html
- ModifyDBSubnetGroup replaces the group's subnets (and description) and keeps the group; moto
  removed the group from the backend.
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBSubnetGroup.html
"""

from __future__ import annotations

from typing import Any

from moto.rds.exceptions import DBSubnetGroupNotFoundError, RDSClientError
from moto.rds.models import DBCluster, DBSubnetGroup, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_rds_identity_installed"


def install(timings: SandboxTimings) -> None:
    if getattr(RDSBackend, _MARK, False):
        return
    setattr(RDSBackend, _MARK, True)

    original_create_cluster = RDSBackend.create_db_cluster

    def create_db_cluster(self: RDSBackend, kwargs: dict[str, Any]) -> DBCluster:
        identifier = str(kwargs["db_cluster_identifier"]).lower()
        if identifier in self.clusters:
            raise RDSClientError("DBClusterAlreadyExistsFault", "DB Cluster already exists")
        return original_create_cluster(self, kwargs)

    RDSBackend.create_db_cluster = create_db_cluster  # type: ignore[method-assign]

    original_create_global = RDSBackend.create_global_cluster

    def create_global_cluster(self: RDSBackend, global_cluster_identifier: str, *args: Any, **kwargs: Any) -> Any:
        wanted = global_cluster_identifier.lower()
        for backend in list(rds_backends[self.account_id].values()):
            if wanted in backend.global_clusters:
                raise RDSClientError(
                    "GlobalClusterAlreadyExistsFault", f"Global cluster {global_cluster_identifier} already exists"
                )
        return original_create_global(self, global_cluster_identifier, *args, **kwargs)

    RDSBackend.create_global_cluster = create_global_cluster  # type: ignore[method-assign]

    original_create_subnet_group = RDSBackend.create_subnet_group

    def create_subnet_group(self: RDSBackend, subnet_name: str, *args: Any, **kwargs: Any) -> DBSubnetGroup:
        if subnet_name in self.subnet_groups:
            raise RDSClientError("DBSubnetGroupAlreadyExists", f"The DB subnet group '{subnet_name}' already exists.")
        return original_create_subnet_group(self, subnet_name, *args, **kwargs)

    RDSBackend.create_subnet_group = create_subnet_group  # type: ignore[method-assign]

    def modify_db_subnet_group(self: RDSBackend, subnet_name: str, description: str, subnets: list[Any]) -> DBSubnetGroup:
        subnet_group = self.subnet_groups.get(subnet_name)
        if subnet_group is None:
            raise DBSubnetGroupNotFoundError(subnet_name)
        subnet_group.subnets = subnets
        if description is not None:
            subnet_group.description = description
        return subnet_group

    RDSBackend.modify_db_subnet_group = modify_db_subnet_group  # type: ignore[method-assign]

    original_delete_cluster = RDSResponse.delete_db_cluster

    def response_delete_db_cluster(self: RDSResponse) -> Any:
        identifier = str(self.params.get("DBClusterIdentifier") or "").lower()
        result = original_delete_cluster(self)
        keep = str(self.params.get("DeleteAutomatedBackups", "true")).lower() == "false"
        if not keep:
            _forget_automated_snapshots(self.backend, identifier)
        return result

    RDSResponse.delete_db_cluster = response_delete_db_cluster  # type: ignore[method-assign]

    original_save_backup = DBCluster.save_automated_backup

    def save_automated_backup(self: DBCluster) -> None:
        # A retained automated snapshot of an earlier cluster of this name is not this cluster's:
        # AWS would never make the new cluster fail on it.
        _forget_automated_snapshots(self.backend, self.db_cluster_identifier, only_of_other=self)
        original_save_backup(self)

    DBCluster.save_automated_backup = save_automated_backup  # type: ignore[method-assign]


def _forget_automated_snapshots(backend: RDSBackend, identifier: str, only_of_other: DBCluster | None = None) -> None:
    for name, snapshot in list(backend.cluster_snapshots.items()):
        if getattr(snapshot, "snapshot_type", "") != "automated":
            continue
        if str(getattr(snapshot.cluster, "db_cluster_identifier", "")).lower() != identifier.lower():
            continue
        if only_of_other is not None and snapshot.cluster is only_of_other:
            continue
        backend.cluster_snapshots.pop(name, None)
