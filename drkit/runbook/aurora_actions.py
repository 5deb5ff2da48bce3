"""Runbook actions and checks on the Aurora global database: switchover, failover (managed, else
detach and promote), the unplanned-failover snapshot, and resynchronisation.

SwitchoverGlobalCluster is called in the current primary's region with the target by ARN, and
FailoverGlobalCluster (AllowDataLoss) in the target's region: without AllowDataLoss AWS treats a
failover as a switchover, which needs the dead primary. Neither has a waiter: drkit polls
DescribeGlobalClusters until FailoverState is gone and the target IsWriter; a status it does not
know means "still in progress". Neither has an idempotency token: a lost answer is settled by
reading whether the operation is running or done, never by sending it again.
https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_SwitchoverGlobalCluster.html
https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverGlobalCluster.html
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html
"""

from __future__ import annotations

from typing import Any

from drkit.errors import DrkitError, InterruptedRun
from drkit.runbook import reads
from drkit.runbook.context import Direction, RunContext
from drkit.runbook.registry import Verdict, action, check

FAILOVER_SNAPSHOT_PREFIX = "rds:unplanned-global-failover"
KEPT_SNAPSHOT_PREFIX = "drkit-ugf"  # "unplanned global failover": the name must fit in 63 characters  # drkit's manual copy (drkit.iam_policy grants on it)


def _arn(rc: RunContext, role: str) -> str:
    found = reads.db_cluster(rc.config, rc.aws, role)
    if found is None:
        raise DrkitError(f"the Aurora cluster {rc.config.names.aurora_cluster(role)} does not exist in "
                         f"{rc.region(role)}")
    return str(found["DBClusterArn"])


def _operation_toward(rc: RunContext, d: Direction) -> Any:
    """For a lost answer: the global cluster if the operation toward `d.to` runs or is done."""
    raw = reads.global_cluster(rc.config, rc.aws, rc.region(d.to))
    target = _arn(rc, d.to)
    state = reads.failover_state(raw)
    if state and state.get("ToDbClusterArn") == target:
        return {"GlobalCluster": raw}
    return {"GlobalCluster": raw} if reads.members(raw).get(target, {}).get("writer") else None


# Switchover --------------------------------------------------------------------------------------


def _switchover_calls(rc: RunContext, d: Direction) -> list[str]:
    return [f"rds SwitchoverGlobalCluster in {rc.region(d.frm)} (GlobalClusterIdentifier="
            f"{rc.config.names.global_cluster}, TargetDbClusterIdentifier=<ARN of "
            f"{rc.config.names.aurora_cluster(d.to)} in {rc.region(d.to)}>)",
            f"rds DescribeGlobalClusters in {rc.region(d.to)} (polled until FailoverState is gone and the target IsWriter)"]


def _switchover_change(rc: RunContext, d: Direction) -> str:
    return (f"the writer of {rc.config.names.global_cluster} moves from {rc.config.names.aurora_cluster(d.frm)} "
            f"({rc.region(d.frm)}) to {rc.config.names.aurora_cluster(d.to)} ({rc.region(d.to)}); writes pause for "
            "the switchover (typically a minute or two)")


@action("aurora.switchover", planned=_switchover_calls, change=_switchover_change,
        preconditions="both clusters available; the target a connected secondary (the gate checks)")
def switchover(rc: RunContext, d: Direction, spec: Any) -> str:
    raw = reads.global_cluster(rc.config, rc.aws, rc.region(d.frm))
    target = _arn(rc, d.to)
    running = reads.failover_state(raw)
    if running and running.get("ToDbClusterArn") == target:
        return "a switchover to the target was already running (resumed)"
    rc.measure("rpo_seconds", 0, "s", "a switchover waits until the target has caught up: no data is lost")
    rc.aws.call("rds", rc.region(d.frm), "switchover_global_cluster", GlobalClusterIdentifier=rc.config.names.global_cluster,
                TargetDbClusterIdentifier=target, settled=lambda: _operation_toward(rc, d),
                resource=rc.config.names.global_cluster)
    return f"SwitchoverGlobalCluster accepted: {rc.config.names.aurora_cluster(d.to)} becomes the writer"


@check("aurora.target_is_writer")
def target_is_writer(rc: RunContext, d: Direction) -> Verdict:
    """Asked in the target's region only: a failover never reads the impaired region."""
    target_name = rc.config.names.aurora_cluster(d.to)
    cluster = reads.db_cluster(rc.config, rc.aws, d.to)
    if cluster is None:
        return Verdict(False, f"{target_name} not found", failed=f"{target_name} does not exist in {rc.region(d.to)}")
    if not cluster.get("GlobalClusterIdentifier") and cluster.get("Status") == "available":
        return Verdict(True, f"{target_name} is a standalone writable cluster (detached and promoted)")
    raw = reads.global_cluster(rc.config, rc.aws, rc.region(d.to))
    state = reads.failover_state(raw)
    if state:
        return Verdict(False, f"{state.get('Status', 'in progress')} ({raw.get('Status') if raw else '?'})")
    member = reads.members(raw).get(cluster["DBClusterArn"])
    if member and member["writer"]:
        return Verdict(True, f"{target_name} in {rc.region(d.to)} is the writer")
    return Verdict(False, f"{target_name} is {'a reader' if member else 'not a member'}; global cluster "
                          f"{(raw or {}).get('Status', 'not found')}")


# Failover ----------------------------------------------------------------------------------------


def _failover_calls(rc: RunContext, d: Direction) -> list[str]:
    return [f"rds FailoverGlobalCluster in {rc.region(d.to)} (GlobalClusterIdentifier={rc.config.names.global_cluster}, "
            f"TargetDbClusterIdentifier=<ARN of {rc.config.names.aurora_cluster(d.to)}>, AllowDataLoss=true)",
            f"rds DescribeGlobalClusters / DescribeDBClusters in {rc.region(d.to)} (polled)",
            f"only if the managed failover cannot complete: rds RemoveFromGlobalCluster in {rc.region(d.to)} "
            f"(DbClusterIdentifier=<ARN of {rc.config.names.aurora_cluster(d.to)}>), then DescribeDBClusters until available"]


def _failover_change(rc: RunContext, d: Direction) -> str:
    return (f"{rc.config.names.aurora_cluster(d.to)} ({rc.region(d.to)}) becomes the writer WITH POSSIBLE DATA LOSS "
            f"(writes not yet replicated from {rc.region(d.frm)} are lost); no call is made into {rc.region(d.frm)}")


@action("aurora.failover", planned=_failover_calls, change=_failover_change,
        preconditions="the source region is impaired (the gate confirms it, or --force); the target cluster available")
def failover(rc: RunContext, d: Direction, spec: Any) -> str:
    """Managed failover first; if AWS refuses it or it does not finish within half the step's
    timeout, detach the target and promote it (RemoveFromGlobalCluster), the documented fallback."""
    target = _arn(rc, d.to)
    region = rc.region(d.to)
    try:
        raw = reads.global_cluster(rc.config, rc.aws, region)
        running = reads.failover_state(raw)
        if not (running and running.get("ToDbClusterArn") == target):
            rc.aws.call("rds", region, "failover_global_cluster", GlobalClusterIdentifier=rc.config.names.global_cluster,
                        TargetDbClusterIdentifier=target, AllowDataLoss=True, settled=lambda: _operation_toward(rc, d),
                        resource=rc.config.names.global_cluster)
        rc.waiter.until(f"Aurora failover to {rc.config.names.aurora_cluster(d.to)}",
                        lambda: target_is_writer(rc, d), lambda v: v.ok, describe=lambda v: v.detail,
                        failed=lambda v: v.failed, timeout=spec.timeout / 2)
        rc.remember("failover_path", "managed")
        return "FailoverGlobalCluster (AllowDataLoss) completed"
    except InterruptedRun:
        raise
    except DrkitError as exc:  # refused, or not done within its budget (WaitTimeoutError)
        reason = exc.one_line()
    rc.echo(f"  managed failover did not complete ({reason}); detaching and promoting "
            f"{rc.config.names.aurora_cluster(d.to)}")
    rc.aws.call("rds", region, "remove_from_global_cluster", GlobalClusterIdentifier=rc.config.names.global_cluster,
                DbClusterIdentifier=target, missing_ok=("GlobalClusterNotFoundFault",),
                settled=lambda: _detached(rc, d), resource=target)
    rc.remember("failover_path", "detach-and-promote", reason=reason)
    return f"detached and promoted {rc.config.names.aurora_cluster(d.to)} (managed failover: {reason})"


def _detached(rc: RunContext, d: Direction) -> Any:
    cluster = reads.db_cluster(rc.config, rc.aws, d.to)
    return {"GlobalCluster": {}} if cluster and not cluster.get("GlobalClusterIdentifier") else None


# Failback ----------------------------------------------------------------------------------------


def _snapshot_name(rc: RunContext, d: Direction) -> str:
    """`drkit-ugf-<cluster>-<run's 8 hex>`: unique per run, within RDS's 63 characters."""
    return f"{KEPT_SNAPSHOT_PREFIX}-{rc.config.names.aurora_cluster(d.to)}-{rc.run_id.rsplit('-', 1)[-1]}"


def _failover_snapshots(rc: RunContext, d: Direction) -> list[dict[str, Any]]:
    found = rc.aws.call("rds", rc.region(d.to), "describe_db_cluster_snapshots",
                        DBClusterIdentifier=rc.config.names.aurora_cluster(d.to), SnapshotType="automated")
    return [s for s in found.get("DBClusterSnapshots", [])
            if str(s.get("DBClusterSnapshotIdentifier", "")).startswith(FAILOVER_SNAPSHOT_PREFIX)]


def _snapshot_applies(rc: RunContext, d: Direction) -> str | None:
    return None if _failover_snapshots(rc, d) else (
        f"AWS took no {FAILOVER_SNAPSHOT_PREFIX}-* snapshot of {rc.config.names.aurora_cluster(d.to)} (no unplanned "
        "failover, or the old primary could not be snapshotted)")


@action("aurora.keep_failover_snapshot", destructive=False, applies=_snapshot_applies,
        planned=lambda rc, d: [f"rds DescribeDBClusterSnapshots in {rc.region(d.to)} (SnapshotType=automated)",
                               f"rds CopyDBClusterSnapshot in {rc.region(d.to)} -> {_snapshot_name(rc, d)} (tagged)"],
        change=lambda rc, d: f"copy the unplanned-failover snapshot to the manual snapshot {_snapshot_name(rc, d)}",
        preconditions="the old primary's region is reachable again")
def keep_failover_snapshot(rc: RunContext, d: Direction, spec: Any) -> str:
    """AWS's `rds:unplanned-global-failover-*` snapshot is a system snapshot that expires with the
    backup retention period: a manual copy keeps the writes the failover lost, for reconciliation.
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html"""
    source = sorted(_failover_snapshots(rc, d), key=lambda s: str(s.get("SnapshotCreateTime", "")))[-1]
    name = _snapshot_name(rc, d)
    rc.aws.call("rds", rc.region(d.to), "copy_db_cluster_snapshot",
                SourceDBClusterSnapshotIdentifier=source["DBClusterSnapshotArn"], TargetDBClusterSnapshotIdentifier=name,
                CopyTags=False, Tags=[{"Key": "ManagedBy", "Value": "drkit"}, {"Key": "Environment", "Value": rc.config.env},
                                      {"Key": "drkit:run", "Value": rc.run_id}],
                settled=lambda: _manual_copy(rc, d), resource=name)
    rc.remember("failover_snapshot", name)
    return f"copied {source['DBClusterSnapshotIdentifier']} to {name}"


def _manual_copy(rc: RunContext, d: Direction) -> dict[str, Any] | None:
    found = rc.aws.call("rds", rc.region(d.to), "describe_db_cluster_snapshots",
                        DBClusterSnapshotIdentifier=_snapshot_name(rc, d), missing_ok="DBClusterSnapshotNotFoundFault")
    snapshots = (found or {}).get("DBClusterSnapshots", [])
    return {"DBClusterSnapshot": snapshots[0]} if snapshots else None


@check("aurora.failover_snapshot_kept")
def failover_snapshot_kept(rc: RunContext, d: Direction) -> Verdict:
    found = _manual_copy(rc, d)
    if not found:
        return Verdict(False, f"no manual snapshot {_snapshot_name(rc, d)} yet")
    status = found["DBClusterSnapshot"].get("Status")
    return Verdict(status == "available", f"{_snapshot_name(rc, d)} is {status}")


@check("aurora.synchronized")
def synchronized(rc: RunContext, d: Direction) -> Verdict:
    """Both clusters are members again and every secondary is `connected` (after an unplanned
    failover AWS adds the old primary back as a secondary and resynchronises it)."""
    raw = reads.global_cluster(rc.config, rc.aws, rc.region(d.to))
    members = reads.members(raw)
    names = {arn.rsplit(":", 1)[-1]: m for arn, m in members.items()}
    missing = [rc.config.names.aurora_cluster(r) for r in (d.frm, d.to) if rc.config.names.aurora_cluster(r) not in names]
    if missing:
        return Verdict(False, f"not in the global database yet: {', '.join(missing)}")
    if reads.failover_state(raw):
        return Verdict(False, "a switchover or failover is running")
    lagging = [f"{n} {m['sync']}" for n, m in names.items() if not m["writer"] and m["sync"] != "connected"]
    return Verdict(not lagging, "; ".join(lagging) or "every secondary connected")
