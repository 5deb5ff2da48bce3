"""The data-plane region switch: which region the public name answers, set without Route 53's
control plane and without calling the region traffic leaves (AWS's "standby takes over primary"
pattern, as ARC Region switch does it).

The PRIMARY failover record's health check is CALCULATED: healthy only when both its children
are -- the primary API's HTTPS check AND an alarm-based check on the *switch alarm*. The switch
alarm lives in the DR region and watches the metric `drkit/RegionSwitch DrActive` (dimension
`Environment`), which `activate()` publishes there with PutMetricData, a CloudWatch data-plane
call. `activate("dr")` publishes 1: within a minute the alarm is ALARM, the alarm-based check and
so the PRIMARY record are unhealthy, and Route 53 answers the SECONDARY (DR) record.
`activate("primary")` publishes 0: the alarm returns to OK and the PRIMARY record is answered
again while the primary API is healthy.

No data never flips traffic by itself: the alarm treats missing data as `ignore` (it keeps its
state until the runbook publishes again) and the alarm-based check's InsufficientDataHealthStatus
is `LastKnownStatus` (a new check with no data is healthy). Route 53's fail-open rule (both
records unhealthy -> PRIMARY is answered) cannot refuse both regions: whatever the switch says,
an unhealthy DR API makes the PRIMARY record the answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from drkit.aws import AwsGateway
from drkit.config import Config
from drkit.errors import UserInputError

NAMESPACE = "drkit/RegionSwitch"
METRIC = "DrActive"
ROLES = ("primary", "dr")


def alarm_name(config: Config) -> str:
    return f"drkit-region-switch-{config.env}"


def dimensions(config: Config) -> list[dict[str, str]]:
    return [{"Name": "Environment", "Value": config.env}]


def role_of(config: Config, region: str) -> str:
    """'primary' or 'dr' for a role name or a region name; a one-line error otherwise."""
    if region in ROLES:
        return region
    for role in ROLES:
        if config.region(role) == region:
            return role
    raise UserInputError(f"region {region!r} is neither the primary ({config.primary_region}) "
                         f"nor the DR region ({config.dr_region})")


def activate(config: Config, aws: AwsGateway, region: str) -> dict[str, Any]:
    """Make `region` ('primary', 'dr' or a region name) the one DNS answers. One PutMetricData in
    the DR region, where the switch alarm lives; no Route 53 call, no call into the primary.
    (Failing back to the primary writes to the DR region: with DR impaired too, Route 53's fail
    open already answers the primary.)"""
    role = role_of(config, region)
    value = 1.0 if role == "dr" else 0.0
    aws.call("cloudwatch", config.dr_region, "put_metric_data", Namespace=NAMESPACE, resource=alarm_name(config),
             MetricData=[{"MetricName": METRIC, "Dimensions": dimensions(config), "Value": value,
                          "Unit": "Count", "Timestamp": datetime.now(timezone.utc)}])
    return {"activated": role, "region": config.region(role), "switch_value": value,
            "switch_region": config.dr_region, "alarm": alarm_name(config)}


def active_of(alarm_state: str | None) -> str:
    """The role the switch makes DNS answer, from the switch alarm's state: ALARM is 'dr';
    OK, INSUFFICIENT_DATA (no data yet: missing data is ignored) or no alarm is 'primary'."""
    return "dr" if alarm_state == "ALARM" else "primary"


def read(config: Config, aws: AwsGateway) -> dict[str, Any]:
    """What the switch says now: the alarm's state and the last value published (reads only, in
    the DR region). `active` is 'dr' when the alarm is in ALARM, else 'primary'."""
    found = aws.call("cloudwatch", config.dr_region, "describe_alarms", AlarmNames=[alarm_name(config)])
    alarms = found.get("MetricAlarms", [])
    state = alarms[0]["StateValue"] if alarms else None
    now = datetime.now(timezone.utc)
    points = aws.call("cloudwatch", config.dr_region, "get_metric_statistics", Namespace=NAMESPACE,
                      MetricName=METRIC, Dimensions=dimensions(config), StartTime=now - timedelta(hours=23),
                      EndTime=now + timedelta(minutes=1), Period=60, Statistics=["Maximum"]).get("Datapoints", [])
    last = max(points, key=lambda p: p["Timestamp"])["Maximum"] if points else None
    return {"alarm": alarm_name(config), "alarm_state": state, "last_value": last,
            "active": active_of(state)}
