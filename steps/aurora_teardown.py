"""Teardown of an Aurora step: leave the global database, then delete instance, cluster, group.

"Deleting an Amazon Aurora global database": each cluster is first removed from the global
database, then its instance is deleted (wait until gone), then the cluster (no final snapshot,
wait until gone). The writer may not leave while other members remain, and which cluster is the
writer is read from DescribeGlobalClusters (IsWriter), never assumed from the step: after a
switchover the DR cluster is the writer. RemoveFromGlobalCluster is sent in the detached
cluster's own region, with its ARN.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-deleting.html
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-detaching.html
https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RemoveFromGlobalCluster.html
"""

from __future__ import annotations

from typing import Any, ClassVar

from drkit.errors import AwsCallError, DrkitError
from drkit.step import DELETE, Change, Step, StepContext, decide_teardown
from drkit.tags import from_aws, is_owned
from steps.aurora_rds import (
    CLUSTER, DELETE_BUSY, GONE, MEMBERSHIP, SUBNET_GROUP_IN_USE, members_of, name_of, region_of, why_not,
)

# What RDS answers a RemoveFromGlobalCluster for a cluster that is not (or no longer) a member:
# the code is broad, so the message decides (terraform-provider-aws treats it as detached).
NOT_A_MEMBER = (("InvalidParameterValue", "is not found in global cluster"), ("DBClusterNotFoundFault", ""),
                ("GlobalClusterNotFoundFault", ""))


def _not_a_member(error: AwsCallError) -> bool:
    return any(error.code == code and fragment in error.message for code, fragment in NOT_A_MEMBER)


class AuroraTeardown(Step):
    """Teardown handlers of AuroraStep (its reads and waits are AuroraStep's)."""

    # The step that owns the other member of the global database.
    peer_step: ClassVar[str] = ""
    # Whether this step, finding its cluster the writer, detaches a peer cluster of drkit's first.
    # ensure_replica does (teardown deletes the primary's side right after it); ensure_global_cluster
    # does not (a DR cluster still there means ensure_replica is being kept: refuse).
    detaches_peer_first: ClassVar[bool] = False

    def plan_teardown(self, ctx: StepContext) -> list[Change]:
        observation = self.observe(ctx)
        changes = decide_teardown(self.key, ctx.region, self.desired(ctx, observation), observation)
        cluster = observation.get(CLUSTER)
        members = observation.facts.get("members", {})
        if cluster.exists and cluster.owned and cluster.attrs.get("arn") in members:
            note = f"detach it from {cluster.attrs['global_cluster']} first"
            others = [arn for arn in members if arn != cluster.attrs["arn"]]
            if members[cluster.attrs["arn"]] and others:
                note += f"; it is the writer, so {', '.join(name_of(a) for a in others)} must leave before it"
            changes.insert(0, Change(self.key, ctx.region, "global_cluster_membership", MEMBERSHIP, cluster.id, DELETE,
                                     resource_id=cluster.attrs["arn"], note=note))
        return changes

    # Leaving the global database -----------------------------------------------------------
    def delete_global_cluster_membership(self, ctx: StepContext, change: Change) -> None:
        """Detach this cluster, after any other member if this one is the writer."""
        arn = change.resource_id
        members = members_of(self._describe_global(ctx))
        if arn not in members:  # a resumed teardown: already detached (its promotion is waited for later)
            return
        others = [other for other in members if other != arn]
        if members[arn] and others:
            for other in others:
                self._detach_peer(ctx, other)
        self._detach(ctx, arn)

    def _detach_peer(self, ctx: StepContext, arn: str) -> None:
        """Detach another member before this step's writer, if drkit may: never the writer first."""
        global_id = ctx.config.names.global_cluster
        found = self._describe_cluster(ctx, name_of(arn), region_of(arn))
        owned = found is not None and is_owned(from_aws(found.get("TagList")), ctx.config.env, self.peer_step)
        if not self.detaches_peer_first and owned:
            raise DrkitError(
                f"{self.key}: {global_id} still has secondary cluster(s) {arn}",
                hint="tear down ensure_replica first (a plain `drkit teardown` does)",
            )
        if not owned:
            raise DrkitError(
                f"{self.key}: this step's cluster is the writer of {global_id}, and its other member {arn} is "
                f"not drkit's; the writer cannot leave while another member remains",
                hint="switch the writer back first (see the runbook), or detach that cluster yourself",
            )
        ctx.log.info("aurora.detach_peer_first", step=self.key, cluster=arn,
                     why="this step's cluster is the writer (after a switchover or failover)")
        self._detach(ctx, arn)

    def _detach(self, ctx: StepContext, arn: str) -> None:
        """RemoveFromGlobalCluster in the member's own region, then wait until it is a standalone,
        available cluster. An answer that it is not a member is believed only if a read agrees."""
        identifier, region, global_id = name_of(arn), region_of(arn), ctx.config.names.global_cluster
        self._settle(self._cluster_status(ctx, identifier, region),
                     lambda: self._wait_cluster(ctx, identifier, region=region))

        def detached() -> dict[str, Any] | None:
            found = self._describe_global(ctx)
            return {"GlobalCluster": found or {}} if arn not in members_of(found) else None

        try:
            ctx.aws.call("rds", region, "remove_from_global_cluster", GlobalClusterIdentifier=global_id,
                         DbClusterIdentifier=arn, settled=detached, resource=identifier)
        except AwsCallError as error:
            if not _not_a_member(error):
                raise
            if detached() is None:
                raise DrkitError(
                    f"{self.key}: RDS says {identifier} is not a member of {global_id} ({error.code}: "
                    f"{error.message}), yet {global_id} still lists it",
                    hint="check the global database in the RDS console; drkit does not wait this out",
                ) from None

        def progress() -> tuple[str, bool]:
            return self._cluster_status(ctx, identifier, region), arn in members_of(self._describe_global(ctx))

        ctx.waiter.until(
            f"Aurora cluster {identifier} in {region} to leave {global_id}",
            progress, lambda seen: seen == ("available", False),
            describe=lambda seen: f"{seen[0]}, {'still' if seen[1] else 'no longer'} a member",
            failed=lambda seen: why_not("available")(seen[0]),
        )

    # Deleting ------------------------------------------------------------------------------
    def delete_db_cluster(self, ctx: StepContext, change: Change) -> None:
        identifier = change.resource_id
        status = self._cluster_status(ctx, identifier)
        self._settle(status, lambda: self._wait_cluster(ctx, identifier))
        if status not in ("deleting", GONE):
            ctx.call("rds", "delete_db_cluster", DBClusterIdentifier=identifier, SkipFinalSnapshot=True,
                     missing_ok="DBClusterNotFoundFault", not_yet=DELETE_BUSY, resource=identifier,
                     settled=lambda: self._going(self._cluster_status(ctx, identifier)))
        # Its subnet group (and security group) stay in use until the cluster is gone.
        self._wait_cluster(ctx, identifier, GONE)

    def delete_db_instance(self, ctx: StepContext, change: Change) -> None:
        identifier, cluster = change.resource_id, self._name(ctx, CLUSTER)
        # A teardown resumed mid-promotion finds the detached cluster still `promoting`.
        self._settle(self._cluster_status(ctx, cluster), lambda: self._wait_cluster(ctx, cluster))
        status = self._instance_status(ctx, identifier)
        self._settle(status, lambda: self._wait_instance(ctx, identifier))
        if status not in ("deleting", GONE):
            ctx.call("rds", "delete_db_instance", DBInstanceIdentifier=identifier, SkipFinalSnapshot=True,
                     missing_ok="DBInstanceNotFound", not_yet=DELETE_BUSY, resource=identifier,
                     settled=lambda: self._going(self._instance_status(ctx, identifier)))
        # A cluster cannot be deleted while it holds an instance that is not yet being deleted,
        # and the next call is exactly that: wait until the instance is gone.
        self._wait_instance(ctx, identifier, GONE)

    def delete_db_subnet_group(self, ctx: StepContext, change: Change) -> None:
        ctx.call("rds", "delete_db_subnet_group", DBSubnetGroupName=change.resource_id,
                 missing_ok="DBSubnetGroupNotFoundFault", not_yet=SUBNET_GROUP_IN_USE, resource=change.resource_id)

    @staticmethod
    def _going(status: str) -> dict[str, Any] | None:
        """For a lost delete answer: a response-shaped value once the resource is on its way out."""
        return {"Status": status} if status in ("deleting", GONE) else None
