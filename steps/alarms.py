"""ensure_alarms: CloudWatch alarms, each in the region where AWS publishes its metric, notifying
that region's alerts topic (steps/alerts.py).

Per region (`ensure_alarms:primary`, `ensure_alarms:dr`):
- Aurora global replication lag > 1 s (`AuroraGlobalDBReplicationLag`, milliseconds, Maximum) on
  *this region's* cluster. AWS publishes the metric only for the secondary, in its own region. Both
  clusters are alarmed with missing data as not breaching, so the alarms follow a switchover or
  failover by themselves: the cluster that is secondary now has data, the writer has none (OK).
  An alarm on the DR cluster only would go silent after a switchover, exactly when the old
  primary is the one replicating; an alarm that followed the active role would need a
  PutMetricAlarm per switchover. Nothing here depends on the active region.
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-monitoring.html
- Lambda Errors and Throttles (Sum > 0 in a minute) of this region's function, API Gateway 5XXError
  (Sum > 0) of this region's REST API stage.
The alarms on each region's Route 53 health check (HealthCheckStatus, published only in us-east-1)
belong to ensure_failover_records, beside their checks.
PutMetricAlarm is a put (idempotent); its Tags apply only on creation, so tag drift is repaired
with TagResource.
"""

from __future__ import annotations

from typing import Any

from drkit.step import Change, Desired, Observation, Observed, Step, StepContext, known
from drkit.tags import from_aws, is_owned, to_aws
from steps.alerts import STEP as ALERTS_STEP
from steps.rest_api import STAGE_NAME

STEP = "ensure_alarms"


def alarm_specs(ctx: StepContext, role: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(key, region, PutMetricAlarm parameters without actions/tags) for `role`'s alarms."""
    names, env = ctx.config.names, ctx.config.env
    region = ctx.config.region(role)

    def alarm(metric_ns: str, metric: str, dims: list[dict[str, str]], statistic: str, comparison: str,
              threshold: float, missing: str, description: str) -> dict[str, Any]:
        return {"Namespace": metric_ns, "MetricName": metric, "Dimensions": dims, "Statistic": statistic,
                "Period": 60, "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Threshold": threshold,
                "ComparisonOperator": comparison, "TreatMissingData": missing, "AlarmDescription": description}

    function = [{"Name": "FunctionName", "Value": names.lambda_function(role)}]
    specs = [
        ("aurora-replication-lag", region, alarm(
            "AWS/RDS", "AuroraGlobalDBReplicationLag", [{"Name": "DBClusterIdentifier", "Value": names.aurora_cluster(role)}],
            "Maximum", "GreaterThanThreshold", 1000.0, "notBreaching",
            f"drkit {env}: Aurora global replication lag of {names.aurora_cluster(role)} over 1 s (while it is the secondary)")),
        ("lambda-errors", region, alarm("AWS/Lambda", "Errors", function, "Sum", "GreaterThanThreshold", 0.0,
                                        "notBreaching", f"drkit {env}: {names.lambda_function(role)} errors")),
        ("lambda-throttles", region, alarm("AWS/Lambda", "Throttles", function, "Sum", "GreaterThanThreshold", 0.0,
                                           "notBreaching", f"drkit {env}: {names.lambda_function(role)} throttled")),
        ("api-5xx", region, alarm("AWS/ApiGateway", "5XXError", [{"Name": "ApiName", "Value": names.api(role)},
                                                                 {"Name": "Stage", "Value": STAGE_NAME}],
                                  "Sum", "GreaterThanThreshold", 0.0, "notBreaching",
                                  f"drkit {env}: {names.api(role)} 5XX answers")),
    ]
    return specs


class EnsureAlarms(Step):
    name = STEP

    def depends_on(self) -> tuple[str, ...]:
        return (f"{ALERTS_STEP}:primary", f"{ALERTS_STEP}:dr")

    def alarm_name(self, ctx: StepContext, key: str) -> str:
        return f"drkit-{self.role}-{key}-{ctx.config.env}"

    def _specs(self, ctx: StepContext) -> list[tuple[str, str, dict[str, Any]]]:
        return alarm_specs(ctx, self.role)

    def _topic(self, ctx: StepContext, region: str) -> str | None:
        for role in ("primary", "dr"):
            if ctx.config.region(role) == region:
                return ctx.dependency_output(f"{ALERTS_STEP}:{role}", "alerts_topic_arn")
        return None

    def observe(self, ctx: StepContext) -> Observation:
        resources: dict[str, Observed] = {}
        by_region: dict[str, list[str]] = {}
        for key, region, _ in self._specs(ctx):
            by_region.setdefault(region, []).append(key)
        for region, keys in by_region.items():
            names = {self.alarm_name(ctx, k): k for k in keys}
            found = ctx.aws.call("cloudwatch", region, "describe_alarms", AlarmNames=sorted(names))["MetricAlarms"]
            for alarm in found:
                key = names[alarm["AlarmName"]]
                tags = from_aws(ctx.aws.call("cloudwatch", region, "list_tags_for_resource",
                                             ResourceARN=alarm["AlarmArn"]).get("Tags"))
                resources[key] = Observed("alarm", key, alarm["AlarmName"], attrs=observed_attrs(alarm), tags=tags,
                                          owned=is_owned(tags, ctx.config.env, self.name))
        return Observation(resources)

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        wanted = []
        for key, region, params in self._specs(ctx):
            topic = self._topic(ctx, region)
            attrs = {**wanted_attrs(params), "actions": [topic] if topic else []}
            name = self.alarm_name(ctx, key)
            wanted.append(Desired("alarm", key, name, known(attrs), ctx.tags_for(key, name), region=region))
        return wanted

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {"alarm_names": sorted(self.alarm_name(ctx, k) for k, _, _ in self._specs(ctx) if ctx.recorded_id(k))}

    def _put(self, ctx: StepContext, key: str, tags: dict[str, str] | None = None) -> str:
        spec = next(s for s in self._specs(ctx) if s[0] == key)
        _, region, params = spec
        topic = self._topic(ctx, region)
        actions = [topic] if topic else []
        name = self.alarm_name(ctx, key)
        extra = {"Tags": to_aws(tags)} if tags else {}
        ctx.aws.call("cloudwatch", region, "put_metric_alarm", AlarmName=name, ActionsEnabled=True,
                     AlarmActions=actions, OKActions=actions, resource=name, **params, **extra)
        return name

    def create_alarm(self, ctx: StepContext, change: Change) -> None:
        name = self._put(ctx, change.key, ctx.tags_for(change.key, change.name))
        ctx.record(change.key, "alarm", name)

    def update_alarm(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            arn = ctx.aws.call("cloudwatch", change.region, "describe_alarms",
                               AlarmNames=[change.resource_id])["MetricAlarms"][0]["AlarmArn"]
            ctx.aws.call("cloudwatch", change.region, "tag_resource", ResourceARN=arn, Tags=to_aws(change.expected),
                         resource=change.resource_id)
        else:
            self._put(ctx, change.key)

    def delete_alarm(self, ctx: StepContext, change: Change) -> None:
        ctx.aws.call("cloudwatch", change.region, "delete_alarms", AlarmNames=[change.resource_id],
                     resource=change.resource_id)


def wanted_attrs(params: dict[str, Any]) -> dict[str, Any]:
    return {"namespace": params["Namespace"], "metric": params["MetricName"],
            "dimensions": sorted(params["Dimensions"], key=lambda d: d["Name"]), "statistic": params["Statistic"],
            "period": params["Period"], "evaluation_periods": params["EvaluationPeriods"],
            "threshold": params["Threshold"], "comparison": params["ComparisonOperator"],
            "treat_missing_data": params["TreatMissingData"]}


def observed_attrs(alarm: dict[str, Any]) -> dict[str, Any]:
    return {"namespace": alarm.get("Namespace"), "metric": alarm.get("MetricName"),
            "dimensions": sorted(alarm.get("Dimensions", []), key=lambda d: d["Name"]),
            "statistic": alarm.get("Statistic"), "period": alarm.get("Period"),
            "evaluation_periods": alarm.get("EvaluationPeriods"), "threshold": alarm.get("Threshold"),
            "comparison": alarm.get("ComparisonOperator"), "treat_missing_data": alarm.get("TreatMissingData"),
            "actions": sorted(alarm.get("AlarmActions", []))}
