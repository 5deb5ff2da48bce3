"""Go/no-go gates: every reason not to go, listed at once (never only the first), read-only.

The switchover gate follows AWS's prerequisites for a switchover (both clusters available, same
engine version, the target a connected secondary) and the payment service's own: lag under the
threshold (no data is no-go, never "zero"), the target region's API, DynamoDB replica, S3
replication and Lambda concurrency ready to take the active region's traffic.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html#aurora-global-database-disaster-recovery.managed-failover
"""

from __future__ import annotations

from typing import Any

from drkit.errors import DrkitError
from drkit.runbook import reads
from drkit.runbook.context import Direction, RunContext
from drkit.runbook.registry import gate

DEFAULT_LAG_THRESHOLD_MS = 1000.0


def _clusters(rc: RunContext, d: Direction, reasons: list[str]) -> dict[str, Any]:
    found = {}
    for role in (d.frm, d.to):
        name = rc.config.names.aurora_cluster(role)
        cluster = reads.db_cluster(rc.config, rc.aws, role)
        if cluster is None:
            reasons.append(f"Aurora cluster {name} does not exist in {rc.region(role)}")
            continue
        if cluster.get("Status") != "available":
            reasons.append(f"Aurora cluster {name} is {cluster.get('Status')}, not available")
        if not cluster.get("DBClusterMembers"):
            reasons.append(f"Aurora cluster {name} has no instance (a headless cluster cannot take writes)")
        found[role] = cluster
    return found


@gate("switchover")
def switchover_gate(rc: RunContext, d: Direction) -> list[str]:
    reasons: list[str] = []
    clusters = _clusters(rc, d, reasons)
    versions = {role: c.get("EngineVersion") for role, c in clusters.items()}
    if len(set(versions.values())) > 1:
        reasons.append("engine versions differ: " + ", ".join(f"{rc.region(r)} {v}" for r, v in versions.items()))
    raw = reads.global_cluster(rc.config, rc.aws, rc.region(d.to))
    members = reads.members(raw)
    if raw is None:
        reasons.append(f"global database {rc.config.names.global_cluster} not found")
    elif reads.failover_state(raw):
        reasons.append(f"a switchover or failover is already running ({raw.get('Status')})")
    target = clusters.get(d.to)
    if target is not None and raw is not None:
        member = members.get(target["DBClusterArn"])
        if member is None:
            reasons.append(f"{rc.config.names.aurora_cluster(d.to)} is not a member of {rc.config.names.global_cluster}")
        elif member["writer"]:
            reasons.append(f"{rc.config.names.aurora_cluster(d.to)} is already the writer")
        elif member["sync"] != "connected":
            reasons.append(f"{rc.config.names.aurora_cluster(d.to)} SynchronizationStatus is {member['sync']}, not connected")
    threshold = float(rc.facts.get("lag_threshold_ms", DEFAULT_LAG_THRESHOLD_MS))
    lag = reads.replication_lag_ms(rc.config, rc.aws, d.to, minutes=5)
    if lag["latest"] is None:
        reasons.append(f"no replication lag data for {rc.config.names.aurora_cluster(d.to)} in the last 5 minutes "
                       "(no data is no-go)")
    elif lag["latest"] >= threshold:
        reasons.append(f"replication lag {lag['latest']:.0f} ms is not under {threshold:.0f} ms")
    else:
        rc.measure("replication_lag_ms", lag["latest"], "ms", f"{rc.config.names.aurora_cluster(d.to)} before the switch")
    reasons += _target_ready(rc, d)
    if not reads.s3_replication_enabled(rc.config, rc.aws):
        reasons.append(f"S3 replication of {rc.config.names.bucket('primary')} is not enabled")
    have = {role: reads.lambda_concurrency(rc.config, rc.aws, role) for role in (d.frm, d.to)}
    if have[d.to] is None or (have[d.frm] is not None and have[d.to] < have[d.frm]):
        reasons.append(f"Lambda concurrency in {rc.region(d.to)} ({have[d.to]}) is below {rc.region(d.frm)}'s "
                       f"({have[d.frm]})")
    return reasons


def _target_ready(rc: RunContext, d: Direction) -> list[str]:
    """The target region's API answers /health and its DynamoDB replica is ACTIVE."""
    reasons = []
    try:
        from drkit.runbook.traffic_actions import _api

        answer = reads.call_api(rc.config, _api(rc, d.to), d.to, "/health")
        if not answer.ok:
            reasons.append(f"the {rc.region(d.to)} API is not healthy: /health -> {answer.status} "
                           f"{answer.error or answer.body}")
    except DrkitError as exc:
        reasons.append(exc.one_line())
    status = reads.dynamodb_replica_status(rc.config, rc.aws, d.to)
    if status != "ACTIVE":
        reasons.append(f"DynamoDB table {rc.config.names.dynamodb_table} in {rc.region(d.to)} is {status}, not ACTIVE")
    return reasons


@gate("failover")
def failover_gate(rc: RunContext, d: Direction) -> list[str]:
    """Confirm the outage (the source API's /health fails, as Route 53's checkers see it), and that
    the target can take over. Records the last replication lag seen as the RPO estimate. No AWS
    call goes to the source region (the step runs with avoid='source')."""
    reasons: list[str] = []
    try:
        source_api = rc.state.outputs(f"ensure_rest_api:{d.frm}").get("api_id")
        answer = reads.call_api(rc.config, source_api, d.frm, "/health", timeout=5.0) if source_api else None
        if answer is None:
            reasons.append(f"cannot confirm the outage: no API of {rc.region(d.frm)} is recorded"
                           + (" (--no-state: only the state knows it)" if rc.options.no_state else "")
                           + " (use --force)")
        elif answer.ok:
            reasons.append(f"no outage confirmed: {rc.region(d.frm)}'s API answers /health {answer.status} "
                           "(use switchover, or --force)")
        rc.record("fact", name="source_health", value=(answer.status if answer else None),
                  detail=(answer.error if answer else "no API recorded for the source"))
    except DrkitError as exc:
        rc.record("fact", name="source_health", value=None, detail=exc.one_line())
    target = reads.db_cluster(rc.config, rc.aws, d.to)
    if target is None:
        reasons.append(f"Aurora cluster {rc.config.names.aurora_cluster(d.to)} does not exist in {rc.region(d.to)}")
    elif target.get("Status") != "available":
        reasons.append(f"Aurora cluster {rc.config.names.aurora_cluster(d.to)} is {target.get('Status')}")
    reasons += _target_ready(rc, d)
    lag = reads.replication_lag_ms(rc.config, rc.aws, d.to, minutes=60)
    if lag["latest"] is None:
        rc.measure("rpo_seconds", None, "s", "no replication lag data in the hour before the failover: RPO unknown")
    else:
        rc.measure("rpo_seconds", round(lag["latest"] / 1000.0, 3), "s",
                   f"last AuroraGlobalDBReplicationLag seen for {rc.config.names.aurora_cluster(d.to)}: "
                   f"{lag['latest']:.0f} ms")
    return reasons


@gate("failback")
def failback_gate(rc: RunContext, d: Direction) -> list[str]:
    """The old region is reachable again and its cluster is back in the global database (after a
    managed failover AWS adds it back as a secondary when its region recovers)."""
    reasons: list[str] = []
    try:
        old = reads.db_cluster(rc.config, rc.aws, d.to)
    except DrkitError as exc:
        return [f"{rc.region(d.to)} cannot be reached yet: {exc.one_line()}"]
    name = rc.config.names.aurora_cluster(d.to)
    if old is None:
        reasons.append(f"Aurora cluster {name} does not exist in {rc.region(d.to)}: rebuild it with "
                       f"`drkit provision` before failing back")
    elif not old.get("GlobalClusterIdentifier"):
        reasons.append(f"{name} is not in the global database (it was detached); rebuild it as a secondary "
                       "first (README: failing back after detach-and-promote)")
    writer = reads.db_cluster(rc.config, rc.aws, d.frm)
    if writer is None or writer.get("Status") != "available":
        reasons.append(f"the active cluster {rc.config.names.aurora_cluster(d.frm)} is "
                       f"{(writer or {}).get('Status', 'missing')}")
    return reasons
