"""CloudWatch metric alarms that are evaluated, change state and notify their SNS topics.

moto stores alarms in state OK forever (and resets a re-put alarm). AWS behaviour emulated:
- a new alarm starts in INSUFFICIENT_DATA; PutMetricAlarm on an existing alarm keeps its state
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html);
- when data arrives for the alarm's metric (namespace, name, exactly its dimensions) the alarm is
  evaluated over its last `EvaluationPeriods` periods of `Period` seconds: a period's value is the
  alarm's statistic of its datapoints; ALARM when at least `DatapointsToAlarm` (default: all) of
  them breach the threshold, else OK. Missing periods follow `TreatMissingData`: `breaching`,
  `notBreaching`, `ignore` (all missing: the state is kept) or `missing` (all missing:
  INSUFFICIENT_DATA)
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html);
- a state change publishes the alarm's JSON notification to each SNS topic of the new state's
  actions (AlarmActions / OKActions / InsufficientDataActions), when actions are enabled.
Evaluation happens when data arrives (PutMetricData), not on a timer. Periods last
`Period / timings.cloudwatch_period_scale` real seconds (1: as on AWS; tests that switch regions
back and forth use 60, a minute per second).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from moto.cloudwatch.models import CloudWatchBackend
from moto.core.utils import utcnow

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_cloudwatch_alarms_installed"
_timings: dict[str, SandboxTimings] = {}
COMPARE = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def install(timings: SandboxTimings) -> None:
    _timings["t"] = timings
    if getattr(CloudWatchBackend, _MARK, False):
        return
    setattr(CloudWatchBackend, _MARK, True)
    put_alarm, put_data = CloudWatchBackend.put_metric_alarm, CloudWatchBackend.put_metric_data

    def put_metric_alarm(self: CloudWatchBackend, name: str, *args: Any, **kwargs: Any) -> Any:
        previous = self.alarms.get(name)
        alarm = put_alarm(self, name, *args, **kwargs)
        if previous is None:
            alarm.state_value, alarm.state_reason = "INSUFFICIENT_DATA", "Unchecked: Initial alarm creation"
        else:
            for attr in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history"):
                setattr(alarm, attr, getattr(previous, attr))
        return alarm

    def put_metric_data(self: CloudWatchBackend, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        put_data(self, namespace, metric_data)
        names = {m.get("MetricName") for m in metric_data}
        for alarm in list(self.alarms.values()):
            if alarm.namespace == namespace and alarm.metric_name in names:
                evaluate(self, alarm)

    CloudWatchBackend.put_metric_alarm = put_metric_alarm  # type: ignore[method-assign]
    CloudWatchBackend.put_metric_data = put_metric_data  # type: ignore[method-assign]


def evaluate(backend: CloudWatchBackend, alarm: Any) -> str:
    """Evaluate `alarm` now; change its state (and notify) if the outcome differs."""
    values = _period_values(backend, alarm)
    policy = alarm.treat_missing_data or "missing"
    present = [v for v in values if v is not None]
    if not present and policy in ("missing", "ignore"):
        new = alarm.state_value if policy == "ignore" else "INSUFFICIENT_DATA"
    else:
        compare = COMPARE[alarm.comparison_operator]
        missing_breaches = sum(1 for v in values if v is None) if policy == "breaching" else 0
        breaches = missing_breaches + sum(1 for v in present if compare(v, float(alarm.threshold)))
        needed = int(alarm.datapoints_to_alarm or alarm.evaluation_periods)
        new = "ALARM" if breaches >= needed else "OK"
    if new != alarm.state_value:
        reason = f"Threshold Crossed: {len(present)} datapoint(s) {present} against {alarm.threshold}"
        alarm.update_state(reason, json.dumps({"recentDatapoints": present}), new)
        _notify(backend, alarm)
    return new


def _period_values(backend: CloudWatchBackend, alarm: Any) -> list[float | None]:
    """The statistic of each of the last EvaluationPeriods periods, newest first (None: no data)."""
    scale = max(float(getattr(_timings.get("t"), "cloudwatch_period_scale", 1.0) or 1.0), 1.0)
    period = timedelta(seconds=int(alarm.period or 60) / scale)
    now = utcnow()
    wanted = sorted((d.name, d.value) for d in alarm.dimensions)
    points = [d for d in backend.metric_data if d.namespace == alarm.namespace and d.name == alarm.metric_name
              and sorted((x.name, x.value) for x in d.dimensions) == wanted]
    values: list[float | None] = []
    for k in range(int(alarm.evaluation_periods or 1)):
        end, start = now - period * k, now - period * (k + 1)
        inside = [float(p.value) for p in points if hasattr(p, "value") and start < _naive(p.timestamp) <= end]
        values.append(_statistic(alarm.statistic or "Average", inside) if inside else None)
    return values


def _naive(moment: Any) -> Any:
    return moment.replace(tzinfo=None) if getattr(moment, "tzinfo", None) else moment


def _statistic(name: str, values: list[float]) -> float:
    return {"Average": lambda: sum(values) / len(values), "Sum": lambda: sum(values), "Minimum": lambda: min(values),
            "Maximum": lambda: max(values), "SampleCount": lambda: float(len(values))}[name]()


def _notify(backend: CloudWatchBackend, alarm: Any) -> None:
    from moto.sns.models import sns_backends

    if not alarm.actions_enabled:
        return
    actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions,
               "INSUFFICIENT_DATA": alarm.insufficient_data_actions}[alarm.state_value] or []
    message = json.dumps({"AlarmName": alarm.name, "AlarmArn": alarm.alarm_arn, "NewStateValue": alarm.state_value,
                          "NewStateReason": alarm.state_reason, "Region": backend.region_name,
                          "Trigger": {"MetricName": alarm.metric_name, "Namespace": alarm.namespace,
                                      "Threshold": alarm.threshold}})
    for arn in actions:
        parts = arn.split(":")
        if len(parts) >= 6 and parts[2] == "sns":
            topics = sns_backends[parts[4]][parts[3]]
            if arn in topics.topics:
                topics.publish(message, arn=arn, subject=f"{alarm.state_value}: \"{alarm.name}\" in {parts[3]}")
