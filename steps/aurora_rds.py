"""What the Aurora steps know about RDS and KMS, apart from any step: names of the parts,
statuses and what they mean, global-database membership, engine versions, the DR KMS key.
"""

from __future__ import annotations

from typing import Any, Callable

from drkit.errors import DrkitError
from drkit.retries import busy
from drkit.step import AVAILABLE, DELETING, FAILED, PENDING, StepContext

ENGINE = "aurora-postgresql"
DEFAULT_ENGINE_VERSION = "14.6"
DEFAULT_INSTANCE_CLASS = "db.r5.large"
BACKUP_RETENTION_DAYS = 1
# The DR region's AWS managed RDS key; a customer managed key (its ARN) can be passed instead.
DEFAULT_DR_KMS_KEY = "alias/aws/rds"
# Instances do not take minor upgrades on their own: AWS schedules them per cluster, in each
# region's maintenance window, so the primary and the secondary would run different minors for
# a while -- and managed switchover/failover needs both on the same version. drkit pins the
# version; AWS may still force a minor (end of support, security), which verify reports.
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-upgrade.html
AUTO_MINOR_VERSION_UPGRADE = False

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
    "incompatible-create", "incompatible-network", "incompatible-option-group", "incompatible-parameters",
    "incompatible-restore", "insufficient-capacity", "restore-error", "storage-full", "stopped", "stopping",
    "migration-failed", "cloning-failed",
})

# A subnet group is "in use" until RDS has finished forgetting the deleted cluster.
SUBNET_GROUP_IN_USE = (busy("InvalidDBSubnetGroupStateFault"),)
# Right after a modification the status may still read `available` before it turns `modifying`,
# so a second modification can meet the first one still being applied.
STILL_BUSY = (busy("InvalidDBClusterStateFault", "InvalidDBInstanceState"),)
# Deletes meet the resource (or its global database) in a state that refuses them for a while:
# a backup, a promotion, an instance still going away, members still detaching.
DELETE_BUSY = (busy("InvalidDBClusterStateFault", "InvalidDBInstanceState", "InvalidGlobalClusterStateFault"),)
# How long a cluster or instance created a moment ago may be missing from describe.
VISIBLE_AFTER_CREATE = 120.0

# Values kept in the state beside a resource's id (never secrets): outputs are read from there.
RECORDED_EXTRAS = ("arn", "endpoint", "reader_endpoint")


def step_status(raw: str) -> str:
    """An RDS status as drkit's step model sees it."""
    if raw == "available":
        return AVAILABLE
    if raw == "deleting":
        return DELETING
    if raw in BROKEN:
        return FAILED
    return PENDING


def why_not(target: str, *, still_appearing: Callable[[], bool] = lambda: False) -> Callable[[str], str | None]:
    """For a wait: the reason a status means `target` will never be reached. `still_appearing`:
    whether a resource created a moment ago may still be missing from describe (not a reason)."""

    def reason(status: str) -> str | None:
        if target == GONE:
            return None
        if status in BROKEN:
            return f"it is {status}"
        if status == "deleting":
            return "it is being deleted"
        if status == GONE:
            return None if still_appearing() else "it no longer exists"
        return None

    return reason


def members_of(global_raw: dict[str, Any] | None) -> dict[str, bool]:
    """The global database's member clusters: ARN -> whether it is the writer."""
    return {m["DBClusterArn"]: bool(m.get("IsWriter")) for m in (global_raw or {}).get("GlobalClusterMembers", [])}


def region_of(arn: str) -> str:
    return arn.split(":")[3]


def name_of(arn: str) -> str:
    return arn.rsplit(":", 1)[1]


def newer_minor(desired: str, actual: str | None) -> bool:
    """Whether `actual` is a later minor of `desired`'s major ("14.9" for "14.6"): AWS upgrades
    minors itself (forced upgrades at end of support), and drkit never downgrades."""
    try:
        want = [int(p) for p in desired.split(".")]
        have = [int(p) for p in (actual or "").split(".")]
    except ValueError:
        return False
    return len(have) > 1 and have[0] == want[0] and have[1:] > want[1:]


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


def kms_key_arn(ctx: StepContext, key: str) -> str | None:
    """The ARN of `key` (key ARN, alias name or alias ARN, key id) in the step's region, read
    without side effects: DescribeKey on an AWS managed alias (alias/aws/rds) *creates* that key,
    so an alias is looked up with ListAliases, which gives its TargetKeyId once the key exists
    and none before. None: no such key (yet). Only a create may call `create_kms_key_arn`.
    https://docs.aws.amazon.com/kms/latest/APIReference/API_ListAliases.html
    https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html
    """
    if key.startswith("arn:") and ":key/" in key:
        return key
    alias = key.split(":", 5)[5] if key.startswith("arn:") else key
    if not alias.startswith("alias/"):  # a key id: DescribeKey has no side effect on one
        found = ctx.call("kms", "describe_key", KeyId=key, missing_ok="NotFoundException")
        return found["KeyMetadata"]["Arn"] if found else None
    params: dict[str, Any] = {}
    while True:
        page = ctx.call("kms", "list_aliases", **params)
        for entry in page.get("Aliases", []):
            if entry.get("AliasName") == alias:
                target = entry.get("TargetKeyId")
                # arn:aws:kms:REGION:ACCOUNT:alias/NAME -> arn:aws:kms:REGION:ACCOUNT:key/TARGET
                return f"{entry['AliasArn'].rsplit(':', 1)[0]}:key/{target}" if target else None
        if not page.get("Truncated") or not page.get("NextMarker"):
            return None
        params = {"Marker": page["NextMarker"]}


def create_kms_key_arn(ctx: StepContext, key: str) -> str:
    """For a create only: DescribeKey, which makes AWS create its managed key if the region has
    none yet (the create needs it either way)."""
    found = ctx.call("kms", "describe_key", KeyId=key, missing_ok="NotFoundException")
    if not found:
        raise DrkitError(f"the KMS key {key} does not exist in {ctx.region}",
                         hint="pass a key of the DR region, or use the default alias/aws/rds")
    return found["KeyMetadata"]["Arn"]
