"""Where the stack stands now, for `drkit status` and for the runbooks: which region is active
(the state's, since when, made so by which run), each region's health (its API's Route 53
health check, its Aurora cluster, whether its AWS APIs answer at all), the Aurora replication
lag, what DNS answers, what the region switch says, and the runbooks still in progress.

Read-only: no mutating call, no lock, no state write. Every part is read on its own, so a region
that cannot be reached is reported as unreachable while the rest is still read -- that is when
an operator needs this most. A region that failed once is not asked again in the same read (each
attempt would wait out botocore's connect timeouts again). With an S3 state whose home region is
down, the storage reads the replica (drkit/storage/s3.py) and the document says so.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from drkit import region_switch
from drkit.config import Config
from drkit.errors import AwsCallError, DrkitError
from drkit.state import State
from drkit.storage.base import Storage
from drkit.storage.s3 import is_unreachable
from steps.aurora import LAG_WINDOW, lag_datapoints
from steps.aurora_rds import members_of, name_of
from steps.failover_records import STEP as FAILOVER_STEP, dns_answer, route53_region

ROLES = ("primary", "dr")
UNREACHABLE = "unreachable"
# Route 53 calls an endpoint healthy when more than 18% of its checkers do.
# https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html
HEALTHY_SHARE = 0.18
# After botocore's and drkit's retries, a read that timed out or lost its connection: the
# region does not answer (a connection refused is EndpointUnreachableError, 5xx is_unreachable).
_NO_ANSWER_CODES = frozenset({"ReadTimeoutError", "ConnectionClosedError"})


class RegionUnreachable(DrkitError):
    """A region whose AWS APIs did not answer this read (or an earlier one of it)."""

    def __init__(self, region: str, cause: str) -> None:
        super().__init__(f"{region} unreachable: {cause}")
        self.region = region


class Reads:
    """The gateway's `call`, remembering which regions did not answer: later reads there fail at
    once instead of waiting for connect timeouts again. Has the gateway's call signature, so
    drkit.region_switch and steps' read helpers take it in place of the gateway."""

    def __init__(self, aws: Any) -> None:
        self.aws = aws
        self.down: dict[str, str] = {}

    def call(self, service: str, region: str, operation: str, **params: Any) -> Any:
        if region in self.down:
            raise RegionUnreachable(region, self.down[region])
        try:
            return self.aws.call(service, region, operation, **params)
        except DrkitError as exc:
            if not (is_unreachable(exc) or (isinstance(exc, AwsCallError) and exc.code in _NO_ANSWER_CODES)):
                raise
            self.down[region] = exc.one_line()
            raise RegionUnreachable(region, exc.one_line()) from exc


def _part(read: Callable[[], Any]) -> Any:
    """One part of the document, or what kept it from being read."""
    try:
        return read()
    except RegionUnreachable as exc:
        return {"error": exc.message, UNREACHABLE: exc.region}
    except DrkitError as exc:
        return {"error": exc.one_line()}


def read_status(config: Config, aws: Any, state: State, storage: Storage | None = None) -> dict[str, Any]:
    """The status document (the keys README's `drkit status --json` lists). Never raises for
    AWS answers: what could not be read says so in its part."""
    reads = Reads(aws)
    active = state.active_role()
    became = next((t for t in reversed(state.transitions()) if t.get("to") == active), None)
    outputs = state.all_outputs()
    aurora = _part(lambda: _aurora(config, reads, active))
    regions = {role: _region(config, reads, outputs, aurora, role) for role in ROLES}
    lag = _part(lambda: _lag(config, reads, aurora, active))
    document = {
        "env": config.env,
        "read_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "active_role": active,
        "active_region": config.region(active),
        "since": became.get("at") if became else None,
        "activated_by": {"run_id": became.get("run_id"), "runbook": became.get("runbook")} if became else None,
        "regions": regions,
        "aurora": aurora,
        "replication_lag_ms": lag.get("latest_ms") if "error" not in lag else None,
        "replication_lag": lag,
        "dns_answers": _part(lambda: _dns(config, reads, outputs)),
        "region_switch": _part(lambda: region_switch.read(config, reads)),
        **runbooks_in_progress(storage),
    }
    # Last: reading the journals may be what found the state's home region down.
    document["state"] = {"location": storage.name if storage is not None else str(state.path),
                         "degraded": bool(storage is not None and storage.degraded)}
    return document


# Parts ---------------------------------------------------------------------------------------
def _aurora(config: Config, reads: Reads, active: str) -> dict[str, Any]:
    """The global database: its status, the writer's role, a switchover or failover under way.
    Read in the active region first, else in the other: a global database is described in the
    regions of its members, so one region down does not hide which cluster writes."""
    order = (active, *[r for r in ROLES if r != active])
    for tried, role in enumerate(order, 1):
        try:
            answer = reads.call("rds", config.region(role), "describe_global_clusters",
                                GlobalClusterIdentifier=config.names.global_cluster, missing_ok=True)
            break
        except RegionUnreachable:
            if tried == len(order):
                raise
    clusters = (answer or {}).get("GlobalClusters", [])
    found = clusters[0] if clusters else None
    if not found:
        return {"global_cluster": config.names.global_cluster, "status": "not found", "writer_role": None,
                "members": {}, "failover_state": None}
    writers = {name_of(arn): writes for arn, writes in members_of(found).items()}
    writer_role = next((r for r in ROLES if writers.get(config.names.aurora_cluster(r))), None)
    return {"global_cluster": found["GlobalClusterIdentifier"], "status": found.get("Status"),
            "writer_role": writer_role, "members": writers, "failover_state": found.get("FailoverState")}


def _region(config: Config, reads: Reads, outputs: dict[str, dict[str, Any]], aurora: dict[str, Any],
            role: str) -> dict[str, Any]:
    region, cluster = config.region(role), config.names.aurora_cluster(role)
    found = _part(lambda: reads.call("rds", region, "describe_db_clusters", DBClusterIdentifier=cluster,
                                     missing_ok="DBClusterNotFoundFault"))
    if found is None or "error" not in found:
        clusters = (found or {}).get("DBClusters", [])
        aurora_status = clusters[0]["Status"] if clusters else "not found"
    else:
        aurora_status = UNREACHABLE if found.get(UNREACHABLE) else f"error: {found['error']}"
    members = aurora.get("members") or {}
    return {
        "region": region,
        "api": UNREACHABLE if region in reads.down else "reachable",
        **({"error": reads.down[region]} if region in reads.down else {}),
        "health_check": _part(lambda: _health(config, reads, outputs, role)),
        "aurora_cluster": cluster,
        "aurora_status": aurora_status,
        "aurora_writer": members.get(cluster) if cluster in members else None,
    }


def _health(config: Config, reads: Reads, outputs: dict[str, dict[str, Any]], role: str) -> dict[str, Any]:
    """This region's API as Route 53's checkers see it (GetHealthCheckStatus, read in Route 53's
    control-plane region)."""
    check = outputs.get(f"{FAILOVER_STEP}:global", {}).get(f"{role}_health_check_id")
    if not check:
        return {"id": None, "status": "not provisioned"}
    found = reads.call("route53", route53_region(config), "get_health_check_status", HealthCheckId=check,
                       missing_ok="NoSuchHealthCheck")
    if found is None:
        return {"id": check, "status": "not found"}
    reports = [o.get("StatusReport", {}).get("Status", "") for o in found.get("HealthCheckObservations", [])]
    healthy = sum(1 for r in reports if r.startswith("Success"))
    verdict = "unknown" if not reports else "healthy" if healthy / len(reports) > HEALTHY_SHARE else "unhealthy"
    return {"id": check, "status": verdict, "checkers_healthy": healthy, "checkers": len(reports),
            "report": reports[0] if reports else None}


def _lag(config: Config, reads: Reads, aurora: dict[str, Any], active: str) -> dict[str, Any]:
    """AuroraGlobalDBReplicationLag of the secondary (the member that is not the writer; if that
    could not be read, the role that is not active), in its own region: the newest minute's
    Maximum and the worst over the window deep verify uses."""
    writer = aurora.get("writer_role") if "error" not in aurora else None
    secondary = next(r for r in ROLES if r != (writer or active))
    region, cluster = config.region(secondary), config.names.aurora_cluster(secondary)
    now = datetime.now(timezone.utc)
    points = lag_datapoints(reads, region, cluster, now - LAG_WINDOW, now)
    newest = max(points, key=lambda p: p["Timestamp"]) if points else None
    return {"cluster": cluster, "region": region, "latest_ms": newest["Maximum"] if newest else None,
            "max_ms": max(p["Maximum"] for p in points) if points else None,
            "window_minutes": int(LAG_WINDOW.total_seconds() // 60), "datapoints": len(points)}


def _dns(config: Config, reads: Reads, outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What Route 53 answers for the API's public name now (TestDNSAnswer), and whose region
    that is."""
    zone = outputs.get("ensure_hosted_zone:global", {}).get("route53_zone_id")
    hostname = config.names.api_hostname
    if not zone:
        return {"hostname": hostname, "records": [], "role": None, "region": None, "note": "no hosted zone yet"}
    records = dns_answer(reads, zone, hostname, route53_region(config))
    role = next((r for r in ROLES if (outputs.get(f"ensure_custom_domain:{r}", {}).get("custom_domain_target") or "")
                 .rstrip(".").lower() in records), None)
    return {"hostname": hostname, "records": records, "role": role, "region": config.region(role) if role else None}


def runbooks_in_progress(storage: Storage | None) -> dict[str, Any]:
    """Runbook runs whose journal (journals/<runbook>/<run-id>) has a `run.start` and does not end
    with `run.end`: still running, or stopped half-way. Journals without `run.start` (the record of
    broken locks) are not runbook runs."""
    if storage is None:
        return {"runbooks_in_progress": []}
    try:
        streams = storage.streams("journals")
        runs = []
        for stream in streams:
            records = storage.read_records(stream)
            start = next((r for r in records if r.get("type") == "run.start"), None)
            if start is None or records[-1].get("type") == "run.end":
                continue
            last = records[-1]
            _, runbook, run_id = (stream.split("/", 2) + ["", ""])[:3]
            runs.append({"runbook": start.get("runbook") or runbook, "run_id": start.get("run_id") or run_id,
                         "started_at": start.get("at"), "records": len(records),
                         "last": {k: last[k] for k in ("type", "at", "step") if k in last}})
    except DrkitError as exc:
        return {"runbooks_in_progress": None, "runbooks_error": exc.one_line()}
    return {"runbooks_in_progress": runs}
