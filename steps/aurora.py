"""ensure_global_cluster and ensure_replica: the Aurora PostgreSQL global database.

ensure_global_cluster (primary region) owns the primary's DB subnet group, the global cluster
`aurora-global-<env>` (created empty, engine and version fixed there), the primary cluster that
joins it with the master credentials from ensure_db_secret, and its writer instance.
ensure_replica (DR region) owns the DR subnet group and the secondary cluster, which joins the
global cluster without credentials (it replicates the primary's storage), encrypted with a KMS
key of its own region, and its instance.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-creating.html

Every cluster and instance is waited for until `available` (tens of minutes on AWS, with
progress lines); a re-run that finds one still `creating` waits for it instead of creating
another. `verify` also checks the topology: exactly these two members, the primary the writer,
the DR cluster a reader, one engine version.

Teardown follows "Deleting an Amazon Aurora global database": each cluster is first removed from
the global database (the secondary is promoted to a standalone cluster: wait for that), then its
instance is deleted (wait until gone), then the cluster (no final snapshot, wait until gone); the
DR side goes first (ensure_replica depends on ensure_global_cluster), then the primary, then the
empty global cluster (wait until gone), then the subnet groups.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-deleting.html
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-detaching.html
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from drkit.errors import AwsCallError, DrkitError
from drkit.retries import busy
from drkit.step import (
    AVAILABLE, CREATE, DELETE, DELETING, FAILED, PENDING, UPDATE, Assessment, Change, Desired, Observation,
    Observed, ProbeResult, Step, StepContext, decide_teardown, known,
)
from drkit.tags import from_aws, is_owned, resource_tags, to_aws
from steps.secrets import MASTER_USERNAME, master_credentials, withholding

ENGINE = "aurora-postgresql"
DEFAULT_ENGINE_VERSION = "14.6"
DEFAULT_INSTANCE_CLASS = "db.r5.large"
BACKUP_RETENTION_DAYS = 1
# The DR region's AWS managed RDS key; a customer managed key (its ARN) can be passed instead.
DEFAULT_DR_KMS_KEY = "alias/aws/rds"

SUBNET_GROUP = "db-subnet-group"
GLOBAL_CLUSTER = "global-cluster"
CLUSTER = "cluster"
INSTANCE = "instance"
MEMBERSHIP = "global-membership"  # teardown's first change: leave the global database

GONE = "gone"  # what drkit calls a (global) cluster or instance that describe no longer returns

# Statuses a cluster or instance does not leave by waiting: drkit reports them instead.
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Aurora.Status.html
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/accessing-monitoring.html#Overview.DBInstance.Status
BROKEN = frozenset({
    "failed", "inaccessible-encryption-credentials", "inaccessible-encryption-credentials-recoverable",
    "incompatible-network", "incompatible-option-group", "incompatible-parameters", "incompatible-restore",
    "restore-error", "storage-full", "stopped", "stopping",
})

# A subnet group is "in use" until RDS has finished forgetting the deleted cluster.
SUBNET_GROUP_IN_USE = (busy("InvalidDBSubnetGroupStateFault"),)
# Right after a modification the status may still read `available` before it turns `modifying`,
# so a second modification can meet the first one still being applied.
STILL_BUSY = (busy("InvalidDBClusterStateFault", "InvalidDBInstanceState"),)

# Values kept in the state beside a resource's id (never secrets): outputs are read from there.
RECORDED_EXTRAS = ("arn", "endpoint", "reader_endpoint")
LAG_LIMIT_MS = 1000.0  # the seed's RPO: under a second
LAG_WINDOW = timedelta(minutes=10)


def step_status(raw: str) -> str:
    """An RDS status as drkit's step model sees it."""
    if raw == "available":
        return AVAILABLE
    if raw == "deleting":
        return DELETING
    if raw in BROKEN:
        return FAILED
    return PENDING


def why_not(target: str) -> Callable[[str], str | None]:
    """For a wait: the reason a status means `target` will never be reached."""

    def reason(status: str) -> str | None:
        if target == GONE:
            return None
        if status in BROKEN:
            return f"it is {status}"
        if status in ("deleting", GONE):
            return "it is being deleted" if status == "deleting" else "it no longer exists"
        return None

    return reason


def members_of(global_raw: dict[str, Any] | None) -> dict[str, bool]:
    """The global database's member clusters: ARN -> whether it is the writer."""
    return {m["DBClusterArn"]: bool(m.get("IsWriter")) for m in (global_raw or {}).get("GlobalClusterMembers", [])}


def check_offered(ctx: StepContext, region: str, engine_version: str, instance_class: str) -> None:
    """Fail before anything is created if `region` cannot run this global database.

    DescribeOrderableDBInstanceOptions answers per region, engine version and instance class,
    and says (SupportsGlobalDatabases) whether that combination may join a global database.
    The exact version and class filters leave a handful of rows (one per storage type).
    https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_OrderableDBInstanceOption.html
    """
    rows = ctx.aws.paginate("rds", region, "describe_orderable_db_instance_options", "OrderableDBInstanceOptions",
                            Engine=ENGINE, EngineVersion=engine_version, DBInstanceClass=instance_class)
    options = [o for o in rows if o.get("EngineVersion") == engine_version and o.get("DBInstanceClass") == instance_class]
    wanted = f"{ENGINE} {engine_version} on {instance_class}"
    if not options:
        raise DrkitError(
            f"{region} does not offer {wanted}",
            hint=f"pick a version and class that `aws rds describe-orderable-db-instance-options --engine {ENGINE} "
                 f"--region {region}` lists",
        )
    if all(o.get("SupportsGlobalDatabases") is False for o in options):
        raise DrkitError(
            f"{wanted} cannot be part of an Aurora global database in {region}",
            hint="pick an engine version and instance class that support global databases",
        )


class AuroraStep(Step):
    """What both sides of the global database share: subnet group, cluster, instance, waits."""

    CLUSTER_IMMUTABLE = frozenset({"engine", "engine_version", "global_cluster", "storage_encrypted", "db_subnet_group"})

    def __init__(self, role: str, *, engine_version: str = DEFAULT_ENGINE_VERSION,
                 instance_class: str = DEFAULT_INSTANCE_CLASS) -> None:
        super().__init__(role)
        self.engine_version = engine_version
        self.instance_class = instance_class

    def depends_on(self) -> tuple[str, ...]:
        return (f"ensure_vpc:{self.role}", f"ensure_security_groups:{self.role}")

    def reads(self) -> dict[str, tuple[str, ...]]:
        # A DB subnet group needs the private subnets (in two AZs at least), not their routes
        # or the NAT gateway: https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBSubnetGroup.html
        return {f"ensure_vpc:{self.role}": ("vpc_id", "private_subnet_ids"),
                f"ensure_security_groups:{self.role}": ("aurora_security_group_id",)}

    # Names ---------------------------------------------------------------------------------
    def _name(self, ctx: StepContext, key: str) -> str:
        names = ctx.config.names
        return {
            SUBNET_GROUP: names.db_subnet_group(self.role),
            GLOBAL_CLUSTER: names.global_cluster,
            CLUSTER: names.aurora_cluster(self.role),
            INSTANCE: names.aurora_instance(self.role),
        }[key]

    def _tags(self, ctx: StepContext, key: str, name: str) -> dict[str, str]:
        """drkit's tags; the global cluster spans both regions, so its DR-Role is `global`."""
        role = "global" if key == GLOBAL_CLUSTER else self.dr_role
        return resource_tags(ctx.config.env, role, self.name, key, name)

    def _desired(self, ctx: StepContext, kind: str, key: str, attrs: dict, immutable: frozenset = frozenset()) -> Desired:
        name = self._name(ctx, key)
        return Desired(kind, key, name, attrs, self._tags(ctx, key, name), immutable)

    # Reading AWS ---------------------------------------------------------------------------
    def _describe_global(self, ctx: StepContext) -> dict[str, Any] | None:
        """Global clusters are read in the primary region, where drkit creates them."""
        found = ctx.aws.call("rds", ctx.config.primary_region, "describe_global_clusters",
                             GlobalClusterIdentifier=ctx.config.names.global_cluster, missing_ok=True)
        clusters = (found or {}).get("GlobalClusters", [])
        return clusters[0] if clusters else None

    def _describe_cluster(self, ctx: StepContext, identifier: str) -> dict[str, Any] | None:
        found = ctx.call("rds", "describe_db_clusters", DBClusterIdentifier=identifier, missing_ok=True)
        clusters = (found or {}).get("DBClusters", [])
        return clusters[0] if clusters else None

    def _describe_instance(self, ctx: StepContext, identifier: str) -> dict[str, Any] | None:
        found = ctx.call("rds", "describe_db_instances", DBInstanceIdentifier=identifier, missing_ok=True)
        instances = (found or {}).get("DBInstances", [])
        return instances[0] if instances else None

    def _owned(self, ctx: StepContext, tags: dict[str, str]) -> bool:
        return is_owned(tags, ctx.config.env, self.name)

    def _observe_common(self, ctx: StepContext, members: dict[str, bool]) -> dict[str, Observed]:
        """This side's subnet group, cluster and instance, as found by their names."""
        resources: dict[str, Observed] = {}
        group = self._observe_subnet_group(ctx)
        if group is not None:
            resources[SUBNET_GROUP] = group
        cluster = self._describe_cluster(ctx, self._name(ctx, CLUSTER))
        if cluster is not None:
            resources[CLUSTER] = self._observed_cluster(ctx, cluster, members)
        instance = self._describe_instance(ctx, self._name(ctx, INSTANCE))
        if instance is not None:
            resources[INSTANCE] = self._observed_instance(ctx, instance)
        return resources

    def _observed_cluster(self, ctx: StepContext, cluster: dict[str, Any], members: dict[str, bool]) -> Observed:
        tags = from_aws(cluster.get("TagList"))
        attrs = {
            "engine": cluster.get("Engine"),
            "engine_version": cluster.get("EngineVersion"),
            "global_cluster": ctx.config.names.global_cluster if cluster["DBClusterArn"] in members else None,
            "storage_encrypted": bool(cluster.get("StorageEncrypted")),
            "kms_key_id": cluster.get("KmsKeyId"),
            "backup_retention_period": cluster.get("BackupRetentionPeriod"),
            "deletion_protection": bool(cluster.get("DeletionProtection")),
            "db_subnet_group": cluster.get("DBSubnetGroup"),
            "vpc_security_group_ids": sorted(
                g["VpcSecurityGroupId"] for g in cluster.get("VpcSecurityGroups", []) if g.get("Status") != "removing"
            ),
            "master_username": cluster.get("MasterUsername"),
            "status": cluster["Status"],
            "arn": cluster["DBClusterArn"],
            "endpoint": cluster.get("Endpoint"),
            "reader_endpoint": cluster.get("ReaderEndpoint"),
        }
        return Observed("db_cluster", CLUSTER, cluster["DBClusterIdentifier"], step_status(cluster["Status"]), attrs,
                        tags, self._owned(ctx, tags))

    def _observed_instance(self, ctx: StepContext, instance: dict[str, Any]) -> Observed:
        tags = from_aws(instance.get("TagList"))
        attrs = {
            "engine": instance.get("Engine"),
            "db_cluster_identifier": instance.get("DBClusterIdentifier"),
            "db_instance_class": instance.get("DBInstanceClass"),
            "publicly_accessible": bool(instance.get("PubliclyAccessible")),
            "status": instance["DBInstanceStatus"],
            "arn": instance.get("DBInstanceArn"),
        }
        return Observed("db_instance", INSTANCE, instance["DBInstanceIdentifier"],
                        step_status(instance["DBInstanceStatus"]), attrs, tags, self._owned(ctx, tags))

    def _observe_subnet_group(self, ctx: StepContext) -> Observed | None:
        found = ctx.call("rds", "describe_db_subnet_groups", DBSubnetGroupName=self._name(ctx, SUBNET_GROUP),
                         missing_ok=True)
        groups = (found or {}).get("DBSubnetGroups", [])
        if not groups:
            return None
        group = groups[0]
        # DescribeDBSubnetGroups returns no tags: ownership needs this second read.
        tags = from_aws(ctx.call("rds", "list_tags_for_resource", ResourceName=group["DBSubnetGroupArn"]).get("TagList"))
        attrs = {
            "vpc_id": group.get("VpcId"),
            "subnet_ids": sorted(s["SubnetIdentifier"] for s in group.get("Subnets", [])),
            "arn": group["DBSubnetGroupArn"],
        }
        return Observed("db_subnet_group", SUBNET_GROUP, group["DBSubnetGroupName"], AVAILABLE, attrs, tags,
                        self._owned(ctx, tags))

    # Desired (shared parts) ----------------------------------------------------------------
    def _private_subnets(self, ctx: StepContext) -> list[str] | None:
        subnets = ctx.dependency_output(f"ensure_vpc:{self.role}", "private_subnet_ids")
        return sorted(subnets) if subnets else None

    def _aurora_sg(self, ctx: StepContext) -> str | None:
        return ctx.dependency_output(f"ensure_security_groups:{self.role}", "aurora_security_group_id")

    def _require(self, value: Any, what: str) -> Any:
        if not value:
            raise DrkitError(f"{self.key}: {what} must exist first")
        return value

    def _subnet_group_desired(self, ctx: StepContext) -> Desired:
        return self._desired(ctx, "db_subnet_group", SUBNET_GROUP, known({
            "vpc_id": ctx.dependency_output(f"ensure_vpc:{self.role}", "vpc_id"),
            "subnet_ids": self._private_subnets(ctx),
        }), frozenset({"vpc_id"}))

    def _cluster_attrs(self, ctx: StepContext) -> dict[str, Any]:
        security_group = self._aurora_sg(ctx)
        return known({
            "engine": ENGINE,
            "engine_version": self.engine_version,
            "global_cluster": ctx.config.names.global_cluster,
            "storage_encrypted": True,
            "backup_retention_period": BACKUP_RETENTION_DAYS,
            "deletion_protection": False,
            "db_subnet_group": self._name(ctx, SUBNET_GROUP),
            "vpc_security_group_ids": [security_group] if security_group else None,
        })

    def _instance_desired(self, ctx: StepContext) -> Desired:
        return self._desired(ctx, "db_instance", INSTANCE, {
            "engine": ENGINE,
            "db_cluster_identifier": self._name(ctx, CLUSTER),
            "db_instance_class": self.instance_class,
            "publicly_accessible": False,
        }, frozenset({"engine", "db_cluster_identifier"}))

    def assess(self, ctx: StepContext) -> Assessment:
        """Before planning to create a cluster, make sure the region can run it at all."""
        assessment = super().assess(ctx)
        if any(c.action == CREATE and c.kind in ("global_cluster", "db_cluster") for c in assessment.changes):
            check_offered(ctx, ctx.region, self.engine_version, self.instance_class)
        return assessment

    # State ---------------------------------------------------------------------------------
    def recorded_extras(self, observed: Observed) -> dict[str, Any]:
        """The ARN and endpoints the outputs need (a lost state file loses them too)."""
        return {k: observed.attrs[k] for k in RECORDED_EXTRAS if observed.attrs.get(k)}

    def _recorded(self, ctx: StepContext, key: str, extra: str) -> Any:
        return (ctx.state.resource(self.key, key) or {}).get(extra)

    # Teardown plan: leave the global database first ------------------------------------------
    def plan_teardown(self, ctx: StepContext) -> list[Change]:
        observation = self.observe(ctx)
        changes = decide_teardown(self.key, ctx.region, self.desired(ctx, observation), observation)
        cluster = observation.get(CLUSTER)
        if cluster.exists and cluster.owned and cluster.attrs.get("global_cluster"):
            changes.insert(0, Change(
                self.key, ctx.region, "global_cluster_membership", MEMBERSHIP, cluster.id, DELETE,
                resource_id=cluster.attrs["arn"], note=f"detach it from {cluster.attrs['global_cluster']} first",
            ))
        return changes

    # Waiting -------------------------------------------------------------------------------
    def _cluster_status(self, ctx: StepContext, identifier: str) -> str:
        found = self._describe_cluster(ctx, identifier)
        return found["Status"] if found else GONE

    def _instance_status(self, ctx: StepContext, identifier: str) -> str:
        found = self._describe_instance(ctx, identifier)
        return found["DBInstanceStatus"] if found else GONE

    def _wait_cluster(self, ctx: StepContext, identifier: str, target: str = "available") -> None:
        ctx.waiter.until(f"Aurora cluster {identifier} in {ctx.region} to be {target}",
                         lambda: self._cluster_status(ctx, identifier), lambda status: status == target,
                         failed=why_not(target))

    def _wait_instance(self, ctx: StepContext, identifier: str, target: str = "available") -> None:
        ctx.waiter.until(f"Aurora instance {identifier} in {ctx.region} to be {target}",
                         lambda: self._instance_status(ctx, identifier), lambda status: status == target,
                         failed=why_not(target))

    def _clear_the_way(self, ctx: StepContext, change: Change, status: Callable[[], str],
                       wait_gone: Callable[[], None]) -> None:
        """RDS names are unique: before creating, a predecessor must be gone. One being deleted
        is waited out; one that is broken is left for a human."""
        if not change.resource_id:
            return
        current = status()
        if current == "deleting":
            wait_gone()
        elif current != GONE:
            raise DrkitError(
                f"{self.key}: {change.kind.replace('_', ' ')} {change.name} is {current}; drkit does not replace it in place",
                hint="repair it in the RDS console, or tear down and provision again",
            )

    def _settle(self, status: str, wait_available: Callable[[], None]) -> None:
        """RDS refuses most changes while a resource is creating, modifying or promoting."""
        if status not in ("available", "deleting", GONE) and status not in BROKEN:
            wait_available()

    # Apply: subnet group -------------------------------------------------------------------
    def create_db_subnet_group(self, ctx: StepContext, change: Change) -> None:
        subnet_ids = self._require(self._private_subnets(ctx), f"the private subnets of ensure_vpc:{self.role}")
        group = ctx.call("rds", "create_db_subnet_group", DBSubnetGroupName=change.name,
                         DBSubnetGroupDescription=f"Private subnets of {ctx.config.names.vpc(self.role)} for Aurora",
                         SubnetIds=subnet_ids, Tags=to_aws(self._tags(ctx, change.key, change.name)),
                         resource=change.name)["DBSubnetGroup"]
        ctx.record(change.key, "db_subnet_group", group["DBSubnetGroupName"], arn=group["DBSubnetGroupArn"])

    def update_db_subnet_group(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            return self._retag(ctx, change)
        ctx.call("rds", "modify_db_subnet_group", DBSubnetGroupName=change.resource_id,
                 SubnetIds=self._require(self._private_subnets(ctx), f"the private subnets of ensure_vpc:{self.role}"),
                 resource=change.resource_id)

    def delete_db_subnet_group(self, ctx: StepContext, change: Change) -> None:
        ctx.call("rds", "delete_db_subnet_group", DBSubnetGroupName=change.resource_id, missing_ok=True,
                 not_yet=SUBNET_GROUP_IN_USE, resource=change.resource_id)

    def _retag(self, ctx: StepContext, change: Change) -> None:
        ctx.call("rds", "add_tags_to_resource", ResourceName=self._recorded(ctx, change.key, "arn"),
                 Tags=to_aws(change.expected), resource=change.resource_id)

    # Apply: cluster ------------------------------------------------------------------------
    def _create_cluster(self, ctx: StepContext, change: Change, **role_specific: Any) -> None:
        self._clear_the_way(ctx, change, lambda: self._cluster_status(ctx, change.name),
                            lambda: self._wait_cluster(ctx, change.name, GONE))
        security_group = self._require(self._aurora_sg(ctx), f"the Aurora group of ensure_security_groups:{self.role}")
        cluster = ctx.call(
            "rds", "create_db_cluster", DBClusterIdentifier=change.name, Engine=ENGINE, EngineVersion=self.engine_version,
            GlobalClusterIdentifier=ctx.config.names.global_cluster, DBSubnetGroupName=self._name(ctx, SUBNET_GROUP),
            VpcSecurityGroupIds=[security_group], StorageEncrypted=True, BackupRetentionPeriod=BACKUP_RETENTION_DAYS,
            DeletionProtection=False, Tags=to_aws(self._tags(ctx, change.key, change.name)), resource=change.name,
            **role_specific,
        )["DBCluster"]
        observed = self._observed_cluster(ctx, cluster, {})
        ctx.record(CLUSTER, "db_cluster", observed.id, **self.recorded_extras(observed))
        # No wait here: the instance is created while the cluster is still `creating`, as the
        # console and the Aurora guide's CLI procedure do (create-db-cluster, then at once
        # create-db-instance), and create_db_instance waits for both. That overlaps the two
        # longest waits of each region (minutes each on AWS).
        # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Aurora.CreateInstance.html

    def wait_db_cluster(self, ctx: StepContext, change: Change) -> None:
        self._wait_cluster(ctx, change.resource_id)

    def update_db_cluster(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            return self._retag(ctx, change)
        parameter = {
            "backup_retention_period": "BackupRetentionPeriod",
            "deletion_protection": "DeletionProtection",
            "vpc_security_group_ids": "VpcSecurityGroupIds",
        }[change.attribute]
        self._settle(self._cluster_status(ctx, change.resource_id), lambda: self._wait_cluster(ctx, change.resource_id))
        ctx.call("rds", "modify_db_cluster", DBClusterIdentifier=change.resource_id, ApplyImmediately=True,
                 not_yet=STILL_BUSY, resource=change.resource_id, **{parameter: change.expected})
        self._wait_cluster(ctx, change.resource_id)

    def delete_global_cluster_membership(self, ctx: StepContext, change: Change) -> None:
        """Detach this cluster (by ARN) and wait until it is a standalone, available cluster."""
        identifier, global_id = change.name, ctx.config.names.global_cluster
        self._before_detach(ctx, change.resource_id)
        self._settle(self._cluster_status(ctx, identifier), lambda: self._wait_cluster(ctx, identifier))
        ctx.call("rds", "remove_from_global_cluster", GlobalClusterIdentifier=global_id,
                 DbClusterIdentifier=change.resource_id, missing_ok=True, resource=identifier)

        def detached() -> tuple[str, bool]:
            return self._cluster_status(ctx, identifier), change.resource_id in members_of(self._describe_global(ctx))

        ctx.waiter.until(
            f"Aurora cluster {identifier} in {ctx.region} to leave {global_id}",
            detached, lambda seen: seen == ("available", False),
            describe=lambda seen: f"{seen[0]}, {'still' if seen[1] else 'no longer'} a member",
            failed=lambda seen: why_not("available")(seen[0]),
        )

    def _before_detach(self, ctx: StepContext, cluster_arn: str) -> None:
        """A hook for the primary, which may only leave once it is the last member."""

    def delete_db_cluster(self, ctx: StepContext, change: Change) -> None:
        identifier = change.resource_id
        status = self._cluster_status(ctx, identifier)
        self._settle(status, lambda: self._wait_cluster(ctx, identifier))
        if status not in ("deleting", GONE):
            ctx.call("rds", "delete_db_cluster", DBClusterIdentifier=identifier, SkipFinalSnapshot=True,
                     missing_ok=True, resource=identifier)
        # Its subnet group (and security group) stay in use until the cluster is gone.
        self._wait_cluster(ctx, identifier, GONE)

    # Apply: instance -----------------------------------------------------------------------
    def create_db_instance(self, ctx: StepContext, change: Change) -> None:
        self._clear_the_way(ctx, change, lambda: self._instance_status(ctx, change.name),
                            lambda: self._wait_instance(ctx, change.name, GONE))
        cluster = self._name(ctx, CLUSTER)

        def create() -> dict[str, Any]:
            return ctx.call(
                "rds", "create_db_instance", DBInstanceIdentifier=change.name, DBClusterIdentifier=cluster,
                Engine=ENGINE, DBInstanceClass=self.instance_class, PubliclyAccessible=False,
                Tags=to_aws(self._tags(ctx, change.key, change.name)), resource=change.name,
            )["DBInstance"]

        try:
            instance = create()
        except AwsCallError as exc:
            # Should a region refuse an instance in a cluster that is still `creating`, wait the
            # cluster out and create the instance then, as before.
            if exc.code != "InvalidDBClusterStateFault":
                raise
            self._wait_cluster(ctx, cluster)
            instance = create()
        observed = self._observed_instance(ctx, instance)
        ctx.record(INSTANCE, "db_instance", observed.id, **self.recorded_extras(observed))
        self._wait_instance(ctx, change.name)
        self._wait_cluster(ctx, cluster)  # created alongside it (see _create_cluster)

    def wait_db_instance(self, ctx: StepContext, change: Change) -> None:
        self._wait_instance(ctx, change.resource_id)

    def update_db_instance(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            return self._retag(ctx, change)
        parameter = {"db_instance_class": "DBInstanceClass", "publicly_accessible": "PubliclyAccessible"}[change.attribute]
        self._settle(self._instance_status(ctx, change.resource_id), lambda: self._wait_instance(ctx, change.resource_id))
        ctx.call("rds", "modify_db_instance", DBInstanceIdentifier=change.resource_id, ApplyImmediately=True,
                 not_yet=STILL_BUSY, resource=change.resource_id, **{parameter: change.expected})
        self._wait_instance(ctx, change.resource_id)

    def delete_db_instance(self, ctx: StepContext, change: Change) -> None:
        identifier, cluster = change.resource_id, self._name(ctx, CLUSTER)
        # A teardown resumed mid-promotion finds the detached cluster still `promoting`.
        self._settle(self._cluster_status(ctx, cluster), lambda: self._wait_cluster(ctx, cluster))
        status = self._instance_status(ctx, identifier)
        self._settle(status, lambda: self._wait_instance(ctx, identifier))
        if status not in ("deleting", GONE):
            ctx.call("rds", "delete_db_instance", DBInstanceIdentifier=identifier, SkipFinalSnapshot=True,
                     missing_ok=True, resource=identifier)
        # A cluster cannot be deleted while it holds an instance that is not yet being deleted,
        # and the next call is exactly that: wait until the instance is gone.
        self._wait_instance(ctx, identifier, GONE)

    # Checks --------------------------------------------------------------------------------
    def _finding(self, ctx: StepContext, kind: str, key: str, name: str, attribute: str, expected: Any, actual: Any,
                 note: str) -> Change:
        return Change(self.key, ctx.region, kind, key, name, UPDATE, attribute=attribute, expected=expected,
                      actual=actual, note=note)


class EnsureGlobalCluster(AuroraStep):
    """The global cluster and the primary (writer) cluster with its instance."""

    name = "ensure_global_cluster"

    def __init__(self, role: str = "primary", **options: Any) -> None:
        super().__init__(role, **options)

    def depends_on(self) -> tuple[str, ...]:
        return (*super().depends_on(), "ensure_db_secret:global")

    def observe(self, ctx: StepContext) -> Observation:
        global_raw = self._describe_global(ctx)
        members = members_of(global_raw)
        resources = self._observe_common(ctx, members)
        if global_raw is not None:
            tags = from_aws(global_raw.get("TagList"))
            attrs = {
                "engine": global_raw.get("Engine"),
                "engine_version": global_raw.get("EngineVersion"),
                "storage_encrypted": bool(global_raw.get("StorageEncrypted")),
                "deletion_protection": bool(global_raw.get("DeletionProtection")),
                "status": global_raw.get("Status"),
                "arn": global_raw.get("GlobalClusterArn"),
            }
            resources[GLOBAL_CLUSTER] = Observed(
                "global_cluster", GLOBAL_CLUSTER, global_raw["GlobalClusterIdentifier"],
                step_status(str(global_raw.get("Status"))), attrs, tags, self._owned(ctx, tags),
            )
        return Observation(resources, {"members": members})

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        return [
            self._subnet_group_desired(ctx),
            self._desired(ctx, "global_cluster", GLOBAL_CLUSTER, {
                "engine": ENGINE,
                "engine_version": self.engine_version,
                "storage_encrypted": True,
                "deletion_protection": False,
            }, frozenset({"engine", "engine_version", "storage_encrypted"})),
            self._desired(ctx, "db_cluster", CLUSTER, {**self._cluster_attrs(ctx), "master_username": MASTER_USERNAME},
                          self.CLUSTER_IMMUTABLE | {"master_username"}),
            self._instance_desired(ctx),
        ]

    def checks(self, ctx: StepContext, observation: Observation) -> list[Change]:
        cluster = observation.get(CLUSTER)
        members = observation.facts.get("members", {})
        if not cluster.exists or cluster.attrs["arn"] not in members or members[cluster.attrs["arn"]]:
            return []
        return [self._finding(ctx, "db_cluster", CLUSTER, cluster.id, "is_writer", True, False,
                              "the primary is a reader: after a switchover or failover, switch back (see the runbook)")]

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {
            "global_cluster_id": ctx.recorded_id(GLOBAL_CLUSTER),
            "global_cluster_arn": self._recorded(ctx, GLOBAL_CLUSTER, "arn"),
            "engine_version": self.engine_version,
            "primary_cluster_id": ctx.recorded_id(CLUSTER),
            "primary_cluster_arn": self._recorded(ctx, CLUSTER, "arn"),
            "primary_aurora_endpoint": self._recorded(ctx, CLUSTER, "endpoint"),
            "primary_aurora_reader_endpoint": self._recorded(ctx, CLUSTER, "reader_endpoint"),
            "primary_instance_id": ctx.recorded_id(INSTANCE),
            "primary_db_subnet_group": ctx.recorded_id(SUBNET_GROUP),
        }

    # Apply: global cluster -----------------------------------------------------------------
    def _global_status(self, ctx: StepContext) -> str:
        found = self._describe_global(ctx)
        return str(found["Status"]) if found else GONE

    def _wait_global(self, ctx: StepContext, target: str = "available") -> None:
        ctx.waiter.until(f"Aurora global cluster {ctx.config.names.global_cluster} to be {target}",
                         lambda: self._global_status(ctx), lambda status: status == target, failed=why_not(target))

    def create_global_cluster(self, ctx: StepContext, change: Change) -> None:
        self._clear_the_way(ctx, change, lambda: self._global_status(ctx), lambda: self._wait_global(ctx, GONE))
        created = ctx.call(
            "rds", "create_global_cluster", GlobalClusterIdentifier=change.name, Engine=ENGINE,
            EngineVersion=self.engine_version, StorageEncrypted=True, DeletionProtection=False,
            Tags=to_aws(self._tags(ctx, change.key, change.name)), resource=change.name,
        )["GlobalCluster"]
        ctx.record(change.key, "global_cluster", created["GlobalClusterIdentifier"], arn=created["GlobalClusterArn"])
        self._wait_global(ctx)

    def wait_global_cluster(self, ctx: StepContext, change: Change) -> None:
        self._wait_global(ctx)

    def update_global_cluster(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            return self._retag(ctx, change)
        ctx.call("rds", "modify_global_cluster", GlobalClusterIdentifier=change.resource_id,
                 DeletionProtection=change.expected, resource=change.resource_id)

    def delete_global_cluster(self, ctx: StepContext, change: Change) -> None:
        # "The primary and secondary clusters must already be detached or destroyed first."
        # A resumed teardown finds it `deleting`: that is waited out, not deleted twice.
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteGlobalCluster.html
        if self._global_status(ctx) not in ("deleting", GONE):
            ctx.call("rds", "delete_global_cluster", GlobalClusterIdentifier=change.resource_id, missing_ok=True,
                     resource=change.resource_id)
        self._wait_global(ctx, GONE)

    # Apply: primary cluster ----------------------------------------------------------------
    def create_db_cluster(self, ctx: StepContext, change: Change) -> None:
        secret_arn = ctx.dependency_output("ensure_db_secret:global", "db_secret_arn")
        if not secret_arn:
            raise DrkitError(f"{self.key}: the master password secret of ensure_db_secret:global must exist first")
        # RDS cannot manage the master password of a global database member: it comes from
        # drkit's own secret, and only the primary takes credentials.
        username, password = master_credentials(ctx, secret_arn)
        with withholding(password, f"creating Aurora cluster {change.name}"):
            self._create_cluster(ctx, change, MasterUsername=username, MasterUserPassword=password)

    def _before_detach(self, ctx: StepContext, cluster_arn: str) -> None:
        # "You can't detach (remove) the primary ... until after you remove all secondaries."
        others = [arn for arn in members_of(self._describe_global(ctx)) if arn != cluster_arn]
        if others:
            raise DrkitError(
                f"{self.key}: {ctx.config.names.global_cluster} still has secondary cluster(s) {', '.join(others)}",
                hint="tear down ensure_replica first (a plain `drkit teardown` does)",
            )


class EnsureReplica(AuroraStep):
    """The secondary (read-only) cluster in the DR region and its instance."""

    name = "ensure_replica"

    def __init__(self, role: str = "dr", *, kms_key: str = DEFAULT_DR_KMS_KEY, **options: Any) -> None:
        """kms_key: the key (id, ARN or alias) that encrypts the secondary in the DR region."""
        super().__init__(role, **options)
        self.kms_key = kms_key

    def depends_on(self) -> tuple[str, ...]:
        return ("ensure_global_cluster:primary", *super().depends_on())

    def observe(self, ctx: StepContext) -> Observation:
        global_raw = self._describe_global(ctx)
        members = members_of(global_raw)
        resources = self._observe_common(ctx, members)
        # An encrypted secondary in another region needs a key of that region; resolving the
        # alias to its ARN lets verify compare exactly what RDS reports. For an AWS managed
        # alias, DescribeKey also creates the key if the region has none yet. A key that is
        # gone must not stop a teardown, so it is only required for the create.
        # https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html
        key = ctx.call("kms", "describe_key", KeyId=self.kms_key, missing_ok=True)
        return Observation(resources, {
            "kms_key_arn": key["KeyMetadata"]["Arn"] if key else None,
            "members": members,
            "global_engine_version": (global_raw or {}).get("EngineVersion"),
        })

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        cluster_attrs = {**self._cluster_attrs(ctx), **known({"kms_key_id": observation.facts["kms_key_arn"]})}
        return [
            self._subnet_group_desired(ctx),
            self._desired(ctx, "db_cluster", CLUSTER, cluster_attrs, self.CLUSTER_IMMUTABLE | {"kms_key_id"}),
            self._instance_desired(ctx),
        ]

    def checks(self, ctx: StepContext, observation: Observation) -> list[Change]:
        """The topology: exactly the primary and this cluster, this one a reader, one version."""
        cluster = observation.get(CLUSTER)
        members = observation.facts.get("members", {})
        global_id = ctx.config.names.global_cluster
        if not cluster.exists or not members:
            return []
        findings = []
        # The primary's ARN differs from this one's only in region and name.
        arn = cluster.attrs["arn"].split(":")
        arn[3], arn[-1] = ctx.config.primary_region, ctx.config.names.aurora_cluster("primary")
        expected_members = sorted({":".join(arn), cluster.attrs["arn"]})
        if sorted(members) != expected_members:
            findings.append(self._finding(ctx, "global_cluster", GLOBAL_CLUSTER, global_id, "members",
                                          expected_members, sorted(members),
                                          "the global database must hold exactly the primary and the DR cluster"))
        if members.get(cluster.attrs["arn"]):
            findings.append(self._finding(ctx, "db_cluster", CLUSTER, cluster.id, "is_writer", False, True,
                                          "the DR cluster is the writer: after a switchover or failover, switch back "
                                          "(see the runbook)"))
        global_version = observation.facts.get("global_engine_version")
        if global_version and cluster.attrs["engine_version"] != global_version:
            findings.append(self._finding(ctx, "db_cluster", CLUSTER, cluster.id, "engine_version", global_version,
                                          cluster.attrs["engine_version"], "members of a global database must run "
                                          "the same engine version"))
        return findings

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {
            "dr_cluster_id": ctx.recorded_id(CLUSTER),
            "dr_cluster_arn": self._recorded(ctx, CLUSTER, "arn"),
            "dr_aurora_endpoint": self._recorded(ctx, CLUSTER, "endpoint"),
            "dr_aurora_reader_endpoint": self._recorded(ctx, CLUSTER, "reader_endpoint"),
            "dr_instance_id": ctx.recorded_id(INSTANCE),
            "dr_db_subnet_group": ctx.recorded_id(SUBNET_GROUP),
        }

    def probe(self, ctx: StepContext) -> list[ProbeResult]:
        """Read the replication lag AWS publishes for the secondary (AuroraGlobalDBReplicationLag,
        milliseconds, in the secondary's region) and compare its maximum with 1 s. No datapoint
        is reported as no data, never as a pass.
        https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-monitoring.html"""
        cluster = ctx.config.names.aurora_cluster(self.role)
        now = datetime.now(timezone.utc)
        points = ctx.call("cloudwatch", "get_metric_statistics", Namespace="AWS/RDS",
                          MetricName="AuroraGlobalDBReplicationLag",
                          Dimensions=[{"Name": "DBClusterIdentifier", "Value": cluster}],
                          StartTime=now - LAG_WINDOW, EndTime=now, Period=60, Statistics=["Maximum"])["Datapoints"]
        check = f"Aurora replication lag of {cluster} is under {LAG_LIMIT_MS:.0f} ms"
        if not points:
            return [ProbeResult(self.key, ctx.region, check, None,
                                f"no datapoints in the last {LAG_WINDOW.seconds // 60} minutes")]
        worst = max(p["Maximum"] for p in points)
        return [ProbeResult(self.key, ctx.region, check, worst < LAG_LIMIT_MS,
                            f"max {worst:.0f} ms over {len(points)} minute(s)")]

    def create_db_cluster(self, ctx: StepContext, change: Change) -> None:
        # A secondary takes no credentials (it replicates the primary's storage), and an
        # encrypted cross-region secondary must name a KMS key of its own region.
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
        key = self._require(change.expected.get("kms_key_id"), f"the KMS key {self.kms_key} in {ctx.region}")
        self._create_cluster(ctx, change, KmsKeyId=key)
