"""ensure_dashboard: a CloudWatch dashboard per region with the seed's widgets.

Primary (`drkit-primary-<env>`): Aurora global replication lag (both clusters: the metric exists
for whichever is the secondary), S3 replication latency (Replication Time Control metrics of the
primary -> DR rule), API 4XX/5XX, Lambda errors and throttles. DR (`drkit-dr-<env>`): replicated
writes (DynamoDB ReplicationLatency both ways: into the DR region, published in the primary
region, and back into the primary, published in the DR region, where the writes start while DR
is active), S3 bytes pending replication and the DR bucket's size, the DR API and Lambda.
Nothing depends on which region is active (the widgets show both directions), so a switchover
changes no dashboard. The body is generated deterministically (sorted keys, fixed order), so a
converged run compares equal and makes no call. PutDashboard replaces the whole body; dashboards
take no tags, so the name is the proof of ownership.
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_monitoring.html
(ReplicationLatency "is emitted for every source- and destination-Region pair")
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html
"""

from __future__ import annotations

import json
from typing import Any

from drkit.step import Change, Desired, Observation, Observed, Step, StepContext
from steps.rest_api import STAGE_NAME
from steps.s3 import REPLICATION_RULE_ID

STEP = "ensure_dashboard"
DASHBOARD = "dashboard"


def _widget(x: int, y: int, title: str, region: str, metrics: list[list[Any]], stat: str = "Sum") -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {"title": title, "region": region, "metrics": metrics, "stat": stat, "period": 60,
                           "view": "timeSeries"}}


def dashboard_body(config: Any, role: str) -> str:
    names, region = config.names, config.region(role)
    function, api = names.lambda_function(role), names.api(role)
    api_widget = _widget(0, 6, f"API {api} 4XX / 5XX", region, [
        ["AWS/ApiGateway", "4XXError", "ApiName", api, "Stage", STAGE_NAME],
        ["AWS/ApiGateway", "5XXError", "ApiName", api, "Stage", STAGE_NAME]])
    lambda_widget = _widget(12, 6, f"Lambda {function} errors / throttles", region, [
        ["AWS/Lambda", "Errors", "FunctionName", function], ["AWS/Lambda", "Throttles", "FunctionName", function]])
    if role == "primary":
        widgets = [
            _widget(0, 0, "Aurora global replication lag (ms)", config.primary_region, [
                ["AWS/RDS", "AuroraGlobalDBReplicationLag", "DBClusterIdentifier", names.aurora_cluster("dr"),
                 {"region": config.dr_region}],
                ["AWS/RDS", "AuroraGlobalDBReplicationLag", "DBClusterIdentifier", names.aurora_cluster("primary")]],
                stat="Maximum"),
            _widget(12, 0, "S3 replication latency (s)", config.primary_region, [
                ["AWS/S3", "ReplicationLatency", "SourceBucket", names.bucket("primary"), "DestinationBucket",
                 names.bucket("dr"), "RuleId", REPLICATION_RULE_ID]], stat="Maximum"),
            api_widget, lambda_widget]
    else:
        widgets = [
            _widget(0, 0, "Replicated writes: DynamoDB replication latency into DR / into primary (ms)",
                    config.primary_region, [
                        ["AWS/DynamoDB", "ReplicationLatency", "TableName", names.dynamodb_table, "ReceivingRegion",
                         config.dr_region],
                        ["AWS/DynamoDB", "ReplicationLatency", "TableName", names.dynamodb_table, "ReceivingRegion",
                         config.primary_region, {"region": config.dr_region}]], stat="Average"),
            _widget(12, 0, "S3 bytes pending replication / DR bucket size", config.primary_region, [
                ["AWS/S3", "BytesPendingReplication", "SourceBucket", names.bucket("primary"), "DestinationBucket",
                 names.bucket("dr"), "RuleId", REPLICATION_RULE_ID],
                ["AWS/S3", "BucketSizeBytes", "BucketName", names.bucket("dr"), "StorageType", "StandardStorage",
                 {"region": config.dr_region, "period": 86400}]], stat="Maximum"),
            api_widget, lambda_widget]
    return json.dumps({"widgets": widgets}, sort_keys=True, separators=(",", ":"))


class EnsureDashboard(Step):
    name = STEP

    def dashboard_name(self, ctx: StepContext) -> str:
        return f"drkit-{self.role}-{ctx.config.env}"

    def observe(self, ctx: StepContext) -> Observation:
        name = self.dashboard_name(ctx)
        found = ctx.call("cloudwatch", "get_dashboard", DashboardName=name, missing_ok="ResourceNotFound")
        if found is None:
            return Observation({})
        try:
            body = json.loads(found.get("DashboardBody") or "{}")
        except ValueError:
            body = None
        return Observation({DASHBOARD: Observed("dashboard", DASHBOARD, name, attrs={"body": body})})

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        return [Desired("dashboard", DASHBOARD, self.dashboard_name(ctx),
                        {"body": json.loads(dashboard_body(ctx.config, self.role))})]

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {"dashboard_name": ctx.recorded_id(DASHBOARD)}

    def _put(self, ctx: StepContext, name: str) -> None:
        ctx.call("cloudwatch", "put_dashboard", DashboardName=name, DashboardBody=dashboard_body(ctx.config, self.role),
                 resource=name)

    def create_dashboard(self, ctx: StepContext, change: Change) -> None:
        self._put(ctx, change.name)
        ctx.record(DASHBOARD, "dashboard", change.name)

    def update_dashboard(self, ctx: StepContext, change: Change) -> None:
        self._put(ctx, change.resource_id)

    def delete_dashboard(self, ctx: StepContext, change: Change) -> None:
        ctx.call("cloudwatch", "delete_dashboards", DashboardNames=[change.resource_id], missing_ok="ResourceNotFound",
                 resource=change.resource_id)
