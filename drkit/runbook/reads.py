"""What runbooks read, by name from the config (never only from the state): the Aurora topology,
the replication lag, the DynamoDB replica, S3 replication, Lambda concurrency and each region's
API. Read-only; every AWS call goes through the gateway, in the region named.

Names, not state ids: a failover may run from a stale replica of the state, or with no state at
all (`--no-state`), and drkit's names are fixed per env.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from drkit.aws import AwsGateway
from drkit.config import Config

LAG_METRIC = "AuroraGlobalDBReplicationLag"
API_STAGE = "prod"


def global_cluster(config: Config, aws: AwsGateway, region: str) -> dict[str, Any] | None:
    """DescribeGlobalClusters for drkit's global database, asked in `region` (any member's region
    answers: a failover asks the healthy one)."""
    found = aws.call("rds", region, "describe_global_clusters", GlobalClusterIdentifier=config.names.global_cluster,
                     missing_ok="GlobalClusterNotFoundFault")
    clusters = (found or {}).get("GlobalClusters", [])
    return clusters[0] if clusters else None


def members(global_raw: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """ARN -> {writer, sync}. SynchronizationStatus is AWS's (connected | pending-resync); a
    member AWS reports without one is 'unknown'."""
    return {m["DBClusterArn"]: {"writer": bool(m.get("IsWriter")), "sync": m.get("SynchronizationStatus", "unknown")}
            for m in (global_raw or {}).get("GlobalClusterMembers", [])}


def failover_state(global_raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """FailoverState while a switchover or failover runs (AWS drops it when done)."""
    state = (global_raw or {}).get("FailoverState") or None
    if state and str(state.get("Status", "")).lower() in ("", "cancelling-done", "done"):
        return None
    return state


def db_cluster(config: Config, aws: AwsGateway, role: str) -> dict[str, Any] | None:
    found = aws.call("rds", config.region(role), "describe_db_clusters",
                     DBClusterIdentifier=config.names.aurora_cluster(role), missing_ok="DBClusterNotFoundFault")
    clusters = (found or {}).get("DBClusters", [])
    return clusters[0] if clusters else None


def replication_lag_ms(config: Config, aws: AwsGateway, role: str, minutes: int = 10) -> dict[str, Any]:
    """The lag AWS publishes for the secondary cluster of `role` (in its own region): the latest
    and the largest over the window; None when there is no datapoint (never read as zero).
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-monitoring.html"""
    now = datetime.now(timezone.utc)
    points = aws.call("cloudwatch", config.region(role), "get_metric_statistics", Namespace="AWS/RDS",
                      MetricName=LAG_METRIC, Dimensions=[{"Name": "DBClusterIdentifier",
                                                          "Value": config.names.aurora_cluster(role)}],
                      StartTime=now - timedelta(minutes=minutes), EndTime=now + timedelta(minutes=1), Period=60,
                      Statistics=["Maximum"]).get("Datapoints", [])
    if not points:
        return {"latest": None, "max": None, "points": 0}
    latest = max(points, key=lambda p: p["Timestamp"])
    return {"latest": float(latest["Maximum"]), "max": max(float(p["Maximum"]) for p in points),
            "points": len(points), "at": latest["Timestamp"]}


def dynamodb_replica_status(config: Config, aws: AwsGateway, role: str) -> str | None:
    """The table's status in `role`'s region (ACTIVE once its replica serves)."""
    found = aws.call("dynamodb", config.region(role), "describe_table", TableName=config.names.dynamodb_table,
                     missing_ok="ResourceNotFoundException")
    return (found or {}).get("Table", {}).get("TableStatus")


def s3_replication_enabled(config: Config, aws: AwsGateway) -> bool:
    found = aws.call("s3", config.primary_region, "get_bucket_replication", Bucket=config.names.bucket("primary"),
                     missing_ok=("ReplicationConfigurationNotFoundError", "NoSuchBucket"))
    rules = (found or {}).get("ReplicationConfiguration", {}).get("Rules", [])
    return any(rule.get("Status") == "Enabled" for rule in rules)


def lambda_concurrency(config: Config, aws: AwsGateway, role: str) -> int | None:
    """The concurrency the payment function can use in `role`'s region: its reserved concurrency if
    set, else the account's unreserved concurrency there."""
    function = config.names.lambda_function(role)
    reserved = aws.call("lambda", config.region(role), "get_function_concurrency", FunctionName=function,
                        missing_ok="ResourceNotFoundException")
    if reserved and reserved.get("ReservedConcurrentExecutions") is not None:
        return int(reserved["ReservedConcurrentExecutions"])
    limits = aws.call("lambda", config.region(role), "get_account_settings").get("AccountLimit", {})
    value = limits.get("UnreservedConcurrentExecutions", limits.get("ConcurrentExecutions"))
    return int(value) if value is not None else None


def rest_api_id(config: Config, aws: AwsGateway, role: str) -> str | None:
    """The payment API's id in `role`'s region, found by its name."""
    name = config.names.api(role)
    for api in aws.paginate("apigateway", config.region(role), "get_rest_apis", "items"):
        if api.get("name") == name:
            return str(api["id"])
    return None


@dataclass(frozen=True)
class ApiAnswer:
    status: int  # 0: no answer at all
    body: dict[str, Any]
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def call_api(config: Config, api_id: str, role: str, path: str, *, method: str = "GET", body: Any = None,
             headers: dict[str, str] | None = None, timeout: float = 10.0) -> ApiAnswer:
    """An HTTPS request to the stage as a client sends it: `https://<id>.execute-api.<region>.
    amazonaws.com/prod<path>`. Against a sandbox (--endpoint-url) the same request goes to the
    sandbox with that Host, which serves it as API Gateway would (and fails it during an outage)."""
    host = f"{api_id}.execute-api.{config.region(role)}.amazonaws.com"
    url = f"https://{host}/{API_STAGE}{path}"
    sent = {"Content-Type": "application/json", **(headers or {})}
    if config.endpoint_url:
        url = f"{config.endpoint_url.rstrip('/')}/{API_STAGE}{path}"
        sent["Host"] = host
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (https, or a sandbox)
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return ApiAnswer(0, {}, f"no answer from {host}: {getattr(exc, 'reason', exc)}")
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        parsed = {"raw": raw[:200].decode(errors="replace")}
    return ApiAnswer(status, parsed if isinstance(parsed, dict) else {"value": parsed})
