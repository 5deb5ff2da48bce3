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
another. `verify` also checks the topology: exactly these two members, one engine version, and
the writer the cluster of the *active* role (the state's active region, `ctx.active_role`:
'primary' until a runbook switched over or failed over). Names and home regions never change
with the role: `aurora-primary-<env>` stays in the primary region whichever cluster writes.
Nothing else is judged by role: backup retention, deletion protection, security groups, subnet
group and KMS key are settings of each cluster, which a switchover leaves as they are (it only
"promotes the specified secondary cluster ... and demotes the current primary cluster to a
secondary (read-only) cluster"), so a converged stack stays converged, and `provision` never
switches the writer back. https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_SwitchoverGlobalCluster.html

Teardown follows "Deleting an Amazon Aurora global database": each cluster is first removed from
the global database (the secondary is promoted to a standalone cluster: wait for that), then its
instance is deleted (wait until gone), then the cluster (no final snapshot, wait until gone); the
DR side goes first (ensure_replica depends on ensure_global_cluster), then the primary, then the
empty global cluster (wait until gone), then the subnet groups. The writer never leaves first:
after a switchover ensure_replica detaches drkit's primary cluster before its own
(steps/aurora_teardown.py). Shared parts: steps/aurora_base.py, steps/aurora_rds.py.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-deleting.html
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-detaching.html
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from drkit.errors import DrkitError
from drkit.step import Change, Desired, Observation, Observed, ProbeResult, StepContext, known
from drkit.tags import from_aws, to_aws
from steps.aurora_base import AuroraStep
from steps.aurora_rds import (  # noqa: F401  (names other modules and tests import from here)
    BROKEN, CLUSTER, DEFAULT_DR_KMS_KEY, DEFAULT_ENGINE_VERSION, DEFAULT_INSTANCE_CLASS, DELETE_BUSY, ENGINE,
    GLOBAL_CLUSTER, GONE, INSTANCE, MEMBERSHIP, SUBNET_GROUP, create_kms_key_arn, kms_key_arn, members_of,
    step_status, why_not,
)
from steps.secrets import MASTER_USERNAME, master_credentials, withholding

LAG_LIMIT_MS = 1000.0  # the seed's RPO: under a second
LAG_WINDOW = timedelta(minutes=10)


class EnsureGlobalCluster(AuroraStep):
    """The global cluster and the primary (writer) cluster with its instance."""

    name = "ensure_global_cluster"
    peer_step = "ensure_replica"

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
                "engine_version": self._version(observation.get(GLOBAL_CLUSTER).attrs.get("engine_version")),
                "storage_encrypted": True,
                "deletion_protection": False,
            }, frozenset({"engine", "engine_version", "storage_encrypted"})),
            self._desired(ctx, "db_cluster", CLUSTER, {**self._cluster_attrs(ctx, observation), "master_username": MASTER_USERNAME},
                          self.CLUSTER_IMMUTABLE | {"master_username"}),
            self._instance_desired(ctx),
        ]

    def checks(self, ctx: StepContext, observation: Observation) -> list[Change]:
        findings = self._version_findings(ctx, observation, (GLOBAL_CLUSTER, CLUSTER))
        return findings + writer_findings(self, ctx, observation)

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

    def _wait_global(self, ctx: StepContext, target: str = "available", *, created: bool = False) -> None:
        ctx.waiter.until(f"Aurora global cluster {ctx.config.names.global_cluster} to be {target}",
                         lambda: self._global_status(ctx), lambda status: status == target,
                         failed=why_not(target, still_appearing=self._appearing(ctx, created)))

    def _global_found(self, ctx: StepContext) -> dict[str, Any] | None:
        """For a lost CreateGlobalCluster answer: the global cluster, shaped like the response."""
        found = self._describe_global(ctx)
        return {"GlobalCluster": found} if found else None

    def create_global_cluster(self, ctx: StepContext, change: Change) -> None:
        self._clear_the_way(ctx, change, lambda: self._global_status(ctx), lambda: self._wait_global(ctx, GONE))
        created = ctx.call(
            "rds", "create_global_cluster", GlobalClusterIdentifier=change.name, Engine=ENGINE,
            EngineVersion=self.engine_version, StorageEncrypted=True, DeletionProtection=False,
            Tags=to_aws(self._tags(ctx, change.key, change.name)), settled=lambda: self._global_found(ctx),
            resource=change.name,
        )["GlobalCluster"]
        ctx.record(change.key, "global_cluster", created["GlobalClusterIdentifier"], arn=created["GlobalClusterArn"])
        self._wait_global(ctx, created=True)

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
            ctx.call("rds", "delete_global_cluster", GlobalClusterIdentifier=change.resource_id,
                     missing_ok="GlobalClusterNotFoundFault", not_yet=DELETE_BUSY, resource=change.resource_id,
                     settled=lambda: self._going(self._global_status(ctx)))
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


class EnsureReplica(AuroraStep):
    """The secondary (read-only) cluster in the DR region and its instance."""

    name = "ensure_replica"
    peer_step = "ensure_global_cluster"
    detaches_peer_first = True

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
        # An encrypted secondary in another region needs a key of that region; its ARN lets
        # verify compare exactly what RDS reports. Read without DescribeKey (which creates an
        # AWS managed key): plan, verify and teardown stay read-only; a key that is not there
        # (yet) is only required by the create.
        return Observation(resources, {
            "kms_key_arn": kms_key_arn(ctx, self.kms_key),
            "members": members,
            "global_engine_version": (global_raw or {}).get("EngineVersion"),
        })

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        cluster_attrs = {**self._cluster_attrs(ctx, observation), **known({"kms_key_id": observation.facts["kms_key_arn"]})}
        return [
            self._subnet_group_desired(ctx),
            self._desired(ctx, "db_cluster", CLUSTER, cluster_attrs, self.CLUSTER_IMMUTABLE | {"kms_key_id"}),
            self._instance_desired(ctx),
        ]

    def checks(self, ctx: StepContext, observation: Observation) -> list[Change]:
        """The topology: exactly the primary and this cluster, the writer the active role's, one
        version."""
        cluster = observation.get(CLUSTER)
        members = observation.facts.get("members", {})
        global_id = ctx.config.names.global_cluster
        if not cluster.exists or not members:
            return []
        findings = self._version_findings(ctx, observation, (CLUSTER,))
        # The primary's ARN differs from this one's only in region and name.
        arn = cluster.attrs["arn"].split(":")
        arn[3], arn[-1] = ctx.config.primary_region, ctx.config.names.aurora_cluster("primary")
        expected_members = sorted({":".join(arn), cluster.attrs["arn"]})
        if sorted(members) != expected_members:
            findings.append(self._finding(ctx, "global_cluster", GLOBAL_CLUSTER, global_id, "members",
                                          expected_members, sorted(members),
                                          "the global database must hold exactly the primary and the DR cluster"))
        findings += writer_findings(self, ctx, observation)
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
        milliseconds, in the secondary's region) and compare its maximum with 1 s. The secondary
        is the cluster of the role that is not active: after a switchover, the primary region's
        cluster (the probe only runs when verify found the writer where the state says). No
        datapoint is reported as no data, never as a pass.
        https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-monitoring.html"""
        secondary = "dr" if ctx.active_role == "primary" else "primary"
        cluster, region = ctx.config.names.aurora_cluster(secondary), ctx.config.region(secondary)
        now = datetime.now(timezone.utc)
        points = lag_datapoints(ctx.aws, region, cluster, now - LAG_WINDOW, now)
        check = f"Aurora replication lag of {cluster} is under {LAG_LIMIT_MS:.0f} ms"
        if not points:
            return [ProbeResult(self.key, region, check, None,
                                f"no datapoints in the last {LAG_WINDOW.seconds // 60} minutes")]
        worst = max(p["Maximum"] for p in points)
        return [ProbeResult(self.key, region, check, worst < LAG_LIMIT_MS,
                            f"max {worst:.0f} ms over {len(points)} minute(s)")]

    def create_db_cluster(self, ctx: StepContext, change: Change) -> None:
        # A secondary takes no credentials (it replicates the primary's storage), and an
        # encrypted cross-region secondary must name a KMS key of its own region.
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
        # The AWS managed key may not exist yet (plan cannot create it): resolving it here does.
        key = change.expected.get("kms_key_id") or create_kms_key_arn(ctx, self.kms_key)
        self._create_cluster(ctx, change, KmsKeyId=key)


def lag_datapoints(aws: Any, region: str, cluster: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """AuroraGlobalDBReplicationLag of `cluster` (a secondary) per minute, Maximum, read in its
    own region: AWS publishes it there, and only while the cluster is a secondary."""
    return aws.call("cloudwatch", region, "get_metric_statistics", Namespace="AWS/RDS",
                    MetricName="AuroraGlobalDBReplicationLag",
                    Dimensions=[{"Name": "DBClusterIdentifier", "Value": cluster}],
                    StartTime=start, EndTime=end, Period=60, Statistics=["Maximum"])["Datapoints"]


def writer_findings(step: AuroraStep, ctx: StepContext, observation: Observation) -> list[Change]:
    """A finding when this step's cluster is (or is not) the writer against the state's active
    role. Provision never repairs it: moving the writer is a runbook's switchover or failover,
    which also moves DNS and records the new active region."""
    cluster = observation.get(CLUSTER)
    members = observation.facts.get("members", {})
    if not cluster.exists or cluster.attrs["arn"] not in members:
        return []
    should_write, writes = step.role == ctx.active_role, members[cluster.attrs["arn"]]
    if should_write == writes:
        return []
    active = ctx.active_role
    note = (f"the state says the {active} region ({ctx.config.region(active)}) is active, so the writer should be "
            f"{ctx.config.names.aurora_cluster(active)}: finish or roll back the switchover/failover runbook")
    return [step._finding(ctx, "db_cluster", CLUSTER, cluster.id, "is_writer", should_write, writes, note)]
