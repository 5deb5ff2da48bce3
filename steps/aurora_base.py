"""The part both Aurora steps share: the subnet group, a cluster and its instance, reading them,
creating and modifying them, and waiting for them (teardown: steps/aurora_teardown.py).

Every create that AWS gives no idempotency token passes `settled` (a describe by its name), so a
lost answer is looked up, never resent into a second resource or an AlreadyExists.
"""

from __future__ import annotations

from typing import Any, Callable

from drkit.errors import AwsCallError, DrkitError
from drkit.step import (
    AVAILABLE, CREATE, UPDATE, Assessment, Change, Desired, Observation, Observed, StepContext, known,
)
from drkit.tags import from_aws, is_owned, resource_tags, to_aws
from steps.aurora_rds import (
    AUTO_MINOR_VERSION_UPGRADE, BACKUP_RETENTION_DAYS, BROKEN, CLUSTER, DEFAULT_ENGINE_VERSION,
    DEFAULT_INSTANCE_CLASS, ENGINE, GLOBAL_CLUSTER, GONE, INSTANCE, RECORDED_EXTRAS, STILL_BUSY, SUBNET_GROUP,
    VISIBLE_AFTER_CREATE, check_offered, newer_minor, step_status, why_not,
)
from steps.aurora_teardown import AuroraTeardown


class AuroraStep(AuroraTeardown):
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

    def _describe_cluster(self, ctx: StepContext, identifier: str, region: str | None = None) -> dict[str, Any] | None:
        found = ctx.aws.call("rds", region or ctx.region, "describe_db_clusters", DBClusterIdentifier=identifier,
                             missing_ok="DBClusterNotFoundFault")
        clusters = (found or {}).get("DBClusters", [])
        return clusters[0] if clusters else None

    def _describe_instance(self, ctx: StepContext, identifier: str) -> dict[str, Any] | None:
        found = ctx.call("rds", "describe_db_instances", DBInstanceIdentifier=identifier,
                         missing_ok="DBInstanceNotFound")
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
            "auto_minor_version_upgrade": bool(instance.get("AutoMinorVersionUpgrade")),
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

    def _version(self, actual: str | None) -> str:
        """The version to want: the configured one, or a newer minor AWS has already applied
        (drkit never downgrades; verify reports it, see `_version_findings`)."""
        return actual if actual and newer_minor(self.engine_version, actual) else self.engine_version

    def _cluster_attrs(self, ctx: StepContext, observation: Observation) -> dict[str, Any]:
        security_group = self._aurora_sg(ctx)
        return known({
            "engine": ENGINE,
            "engine_version": self._version(observation.get(CLUSTER).attrs.get("engine_version")),
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
            "auto_minor_version_upgrade": AUTO_MINOR_VERSION_UPGRADE,
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


    # Waiting -------------------------------------------------------------------------------
    def _cluster_status(self, ctx: StepContext, identifier: str, region: str | None = None) -> str:
        found = self._describe_cluster(ctx, identifier, region)
        return found["Status"] if found else GONE

    def _instance_status(self, ctx: StepContext, identifier: str) -> str:
        found = self._describe_instance(ctx, identifier)
        return found["DBInstanceStatus"] if found else GONE

    def _appearing(self, ctx: StepContext, created: bool) -> Callable[[], bool]:
        """After a create, describe may not show the new resource yet: for VISIBLE_AFTER_CREATE
        seconds "not found" means "not visible yet", after that it means gone."""
        if not created:
            return lambda: False
        deadline = ctx.waiter.clock.monotonic() + VISIBLE_AFTER_CREATE
        return lambda: ctx.waiter.clock.monotonic() < deadline

    def _wait_cluster(self, ctx: StepContext, identifier: str, target: str = "available", *,
                      created: bool = False, region: str | None = None) -> None:
        ctx.waiter.until(f"Aurora cluster {identifier} in {region or ctx.region} to be {target}",
                         lambda: self._cluster_status(ctx, identifier, region), lambda status: status == target,
                         failed=why_not(target, still_appearing=self._appearing(ctx, created)))

    def _wait_instance(self, ctx: StepContext, identifier: str, target: str = "available", *,
                       created: bool = False) -> None:
        ctx.waiter.until(f"Aurora instance {identifier} in {ctx.region} to be {target}",
                         lambda: self._instance_status(ctx, identifier), lambda status: status == target,
                         failed=why_not(target, still_appearing=self._appearing(ctx, created)))

    def _wait_modified(self, ctx: StepContext, change: Change) -> None:
        """A modification is applied when the resource is available, RDS lists nothing under
        PendingModifiedValues and the attribute reads its new value: right after the call the
        status may still say `available` with the old value."""
        identifier, attribute = change.resource_id, change.attribute
        cluster = change.kind == "db_cluster"

        def poll() -> tuple[str, Any, list[str]]:
            raw = self._describe_cluster(ctx, identifier) if cluster else self._describe_instance(ctx, identifier)
            if raw is None:
                return GONE, None, []
            observed = self._observed_cluster(ctx, raw, {}) if cluster else self._observed_instance(ctx, raw)
            return observed.attrs["status"], observed.attrs.get(attribute), sorted(raw.get("PendingModifiedValues") or {})

        ctx.waiter.until(
            f"Aurora {'cluster' if cluster else 'instance'} {identifier} in {ctx.region} to apply {attribute}",
            poll, lambda seen: seen[0] == "available" and seen[1] == change.expected and not seen[2],
            describe=lambda seen: f"{seen[0]}, {attribute} {seen[1]!r}" + (f", pending {seen[2]}" if seen[2] else ""),
            failed=lambda seen: why_not("available")(seen[0]),
        )

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
    def _subnet_group_found(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        """For a lost CreateDBSubnetGroup answer: the group, shaped like the create's response."""
        found = ctx.call("rds", "describe_db_subnet_groups", DBSubnetGroupName=name,
                         missing_ok="DBSubnetGroupNotFoundFault")
        groups = (found or {}).get("DBSubnetGroups", [])
        return {"DBSubnetGroup": groups[0]} if groups else None

    def create_db_subnet_group(self, ctx: StepContext, change: Change) -> None:
        subnet_ids = self._require(self._private_subnets(ctx), f"the private subnets of ensure_vpc:{self.role}")
        group = ctx.call("rds", "create_db_subnet_group", DBSubnetGroupName=change.name,
                         DBSubnetGroupDescription=f"Private subnets of {ctx.config.names.vpc(self.role)} for Aurora",
                         SubnetIds=subnet_ids, Tags=to_aws(self._tags(ctx, change.key, change.name)),
                         settled=lambda: self._subnet_group_found(ctx, change.name), resource=change.name,
                         )["DBSubnetGroup"]
        ctx.record(change.key, "db_subnet_group", group["DBSubnetGroupName"], arn=group["DBSubnetGroupArn"])

    def update_db_subnet_group(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            return self._retag(ctx, change)
        ctx.call("rds", "modify_db_subnet_group", DBSubnetGroupName=change.resource_id,
                 SubnetIds=self._require(self._private_subnets(ctx), f"the private subnets of ensure_vpc:{self.role}"),
                 resource=change.resource_id)

    def _retag(self, ctx: StepContext, change: Change) -> None:
        ctx.call("rds", "add_tags_to_resource", ResourceName=self._recorded(ctx, change.key, "arn"),
                 Tags=to_aws(change.expected), resource=change.resource_id)

    # Apply: cluster ------------------------------------------------------------------------
    def _cluster_found(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        """For a lost CreateDBCluster answer: the cluster, shaped like the create's response."""
        found = self._describe_cluster(ctx, name)
        return {"DBCluster": found} if found else None

    def _create_cluster(self, ctx: StepContext, change: Change, **role_specific: Any) -> None:
        self._clear_the_way(ctx, change, lambda: self._cluster_status(ctx, change.name),
                            lambda: self._wait_cluster(ctx, change.name, GONE))
        security_group = self._require(self._aurora_sg(ctx), f"the Aurora group of ensure_security_groups:{self.role}")
        cluster = ctx.call(
            "rds", "create_db_cluster", DBClusterIdentifier=change.name, Engine=ENGINE,
            EngineVersion=change.expected.get("engine_version", self.engine_version),
            GlobalClusterIdentifier=ctx.config.names.global_cluster, DBSubnetGroupName=self._name(ctx, SUBNET_GROUP),
            VpcSecurityGroupIds=[security_group], StorageEncrypted=True, BackupRetentionPeriod=BACKUP_RETENTION_DAYS,
            DeletionProtection=False, Tags=to_aws(self._tags(ctx, change.key, change.name)),
            settled=lambda: self._cluster_found(ctx, change.name), resource=change.name, **role_specific,
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
        self._wait_modified(ctx, change)

    # Apply: instance -----------------------------------------------------------------------
    def _instance_found(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        """For a lost CreateDBInstance answer: the instance, shaped like the create's response."""
        found = self._describe_instance(ctx, name)
        return {"DBInstance": found} if found else None

    def create_db_instance(self, ctx: StepContext, change: Change) -> None:
        self._clear_the_way(ctx, change, lambda: self._instance_status(ctx, change.name),
                            lambda: self._wait_instance(ctx, change.name, GONE))
        cluster = self._name(ctx, CLUSTER)

        def create() -> dict[str, Any]:
            return ctx.call(
                "rds", "create_db_instance", DBInstanceIdentifier=change.name, DBClusterIdentifier=cluster,
                Engine=ENGINE, DBInstanceClass=self.instance_class, PubliclyAccessible=False,
                AutoMinorVersionUpgrade=AUTO_MINOR_VERSION_UPGRADE, Tags=to_aws(self._tags(ctx, change.key, change.name)),
                settled=lambda: self._instance_found(ctx, change.name), resource=change.name,
            )["DBInstance"]

        try:
            instance = create()
        except AwsCallError as exc:
            # Should a region refuse an instance in a cluster that is still `creating`, wait the
            # cluster out and create the instance then.
            if exc.code != "InvalidDBClusterStateFault":
                raise
            self._wait_cluster(ctx, cluster, created=True)
            instance = create()
        observed = self._observed_instance(ctx, instance)
        ctx.record(INSTANCE, "db_instance", observed.id, **self.recorded_extras(observed))
        self._wait_instance(ctx, change.name, created=True)
        self._wait_cluster(ctx, cluster, created=True)  # created alongside it (see _create_cluster)

    def wait_db_instance(self, ctx: StepContext, change: Change) -> None:
        self._wait_instance(ctx, change.resource_id)

    def update_db_instance(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            return self._retag(ctx, change)
        parameter = {"db_instance_class": "DBInstanceClass", "publicly_accessible": "PubliclyAccessible",
                     "auto_minor_version_upgrade": "AutoMinorVersionUpgrade"}[change.attribute]
        self._settle(self._instance_status(ctx, change.resource_id), lambda: self._wait_instance(ctx, change.resource_id))
        ctx.call("rds", "modify_db_instance", DBInstanceIdentifier=change.resource_id, ApplyImmediately=True,
                 not_yet=STILL_BUSY, resource=change.resource_id, **{parameter: change.expected})
        self._wait_modified(ctx, change)

    # Checks --------------------------------------------------------------------------------
    def _finding(self, ctx: StepContext, kind: str, key: str, name: str, attribute: str, expected: Any, actual: Any,
                 note: str) -> Change:
        return Change(self.key, ctx.region, kind, key, name, UPDATE, attribute=attribute, expected=expected,
                      actual=actual, note=note)

    def _version_findings(self, ctx: StepContext, observation: Observation, keys: tuple[str, ...]) -> list[Change]:
        """A newer minor than configured (AWS upgraded it): reported, never downgraded or refused."""
        findings = []
        for key in keys:
            have = observation.get(key)
            actual = have.attrs.get("engine_version") if have.exists else None
            if actual and newer_minor(self.engine_version, actual):
                findings.append(self._finding(
                    ctx, have.kind, key, have.id, "engine_version", self.engine_version, actual,
                    "newer minor version (AWS upgraded it); drkit does not downgrade: set engine_version to it"))
        return findings
