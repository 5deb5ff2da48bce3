"""ensure_alerts, ensure_alarms, ensure_dashboard: read back with boto3, converged re-run with no
mutating call, drift repaired, an alarm notifies its encrypted topic, teardown leaves nothing."""

from __future__ import annotations

import json

import boto3
import pytest

from drkit.aws import RetryPolicy
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runner import Runner
from steps.alarms import EnsureAlarms
from steps.alerts import EnsureAlerts, allows_cloudwatch
from steps.dashboards import EnsureDashboard
from steps.failover_records import EnsureFailoverRecords
from tests.compute_stack import Code, compute_steps, lose_answers, network

PRIMARY, DR = "us-east-1", "us-east-2"


def make_runner(tmp_path, clock, env: str = "test", **config) -> Runner:
    nets = {role: network(role) for role in ("primary", "dr")}
    built = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json")}, environ={})
    if config:
        built = type(built)(**{**built.__dict__, **config})
    steps = compute_steps(("primary", "dr"), Code(), nets) + [
        EnsureFailoverRecords("global"), EnsureAlerts("primary"), EnsureAlerts("dr"), EnsureAlarms("primary"),
        EnsureAlarms("dr"), EnsureDashboard("primary"), EnsureDashboard("dr")]
    return Runner(built, steps, clock=clock, log=make_logger("json", level="warning"),
                  retry=RetryPolicy(botocore_max_attempts=1))


def ok(outcome):
    assert outcome.ok, [f"{r.step.key}: {r.error}" for r in outcome.failed]
    return outcome


def alarms(region):
    return {a["AlarmName"]: a for a in boto3.client("cloudwatch", region_name=region).describe_alarms()["MetricAlarms"]}


def test_topics_keys_alarms_dashboards_read_back_and_converge(moto, tmp_path, clock):
    runner = make_runner(tmp_path, clock, alerts_email="oncall@example.com")
    ok(runner.provision())
    out = runner.outputs()
    for role, region in (("primary", PRIMARY), ("dr", DR)):
        topic = out[f"ensure_alerts:{role}"]["alerts_topic_arn"]
        sns, kms = boto3.client("sns", region_name=region), boto3.client("kms", region_name=region)
        key_id = sns.get_topic_attributes(TopicArn=topic)["Attributes"]["KmsMasterKeyId"]
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert meta["KeyManager"] == "CUSTOMER" and meta["Arn"].split(":")[3] == region
        assert allows_cloudwatch(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
        assert kms.get_key_rotation_status(KeyId=meta["KeyId"])["KeyRotationEnabled"]
        subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "oncall@example.com")]
        here = alarms(region)
        lag = here[f"drkit-{role}-aurora-replication-lag-test"]
        assert (lag["MetricName"], lag["Threshold"], lag["TreatMissingData"]) == \
            ("AuroraGlobalDBReplicationLag", 1000.0, "notBreaching")
        assert lag["Dimensions"] == [{"Name": "DBClusterIdentifier", "Value": f"aurora-{role}-test"}]
        assert lag["AlarmActions"] == [topic]
        assert {f"drkit-{role}-{k}-test" for k in ("lambda-errors", "lambda-throttles", "api-5xx")} <= set(here)
        body = json.loads(boto3.client("cloudwatch", region_name=region).get_dashboard(
            DashboardName=f"drkit-{role}-test")["DashboardBody"])
        assert len(body["widgets"]) == 4
    health = alarms(PRIMARY)  # Route 53 metrics exist only in us-east-1 (ensure_failover_records' alarms)
    for role in ("primary", "dr"):
        check = out["ensure_failover_records:global"][f"{role}_health_check_id"]
        alarm = health[f"drkit-{role}-health-check-test"]
        assert alarm["Dimensions"] == [{"Name": "HealthCheckId", "Value": check}]
        assert alarm["AlarmActions"] == [out["ensure_alerts:primary"]["alerts_topic_arn"]]
    assert ok(runner.verify()).changes == []
    runner.aws.stats.__init__()
    ok(runner.provision())
    assert runner.aws.stats.mutating == 0, runner.aws.stats.mutating_calls


def test_alarm_drift_repaired_and_an_alarm_notifies_its_topic(moto, tmp_path, clock):
    runner = make_runner(tmp_path, clock)
    ok(runner.provision())
    cloudwatch = boto3.client("cloudwatch", region_name=DR)
    cloudwatch.put_metric_alarm(AlarmName="drkit-dr-lambda-errors-test", Namespace="AWS/Lambda", MetricName="Errors",
                                Dimensions=[{"Name": "FunctionName", "Value": "payment-processor-dr-test"}],
                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=50,
                                ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
    boto3.client("cloudwatch", region_name=PRIMARY).put_dashboard(DashboardName="drkit-primary-test",
                                                                  DashboardBody='{"widgets": []}')
    found = {(c.step, c.attribute) for c in runner.verify().changes}
    assert found == {("ensure_alarms:dr", "threshold"), ("ensure_alarms:dr", "actions"),
                     ("ensure_dashboard:primary", "body")}
    ok(runner.provision())
    assert runner.verify().changes == []
    topic = runner.outputs()["ensure_alerts:dr"]["alerts_topic_arn"]
    sqs = boto3.client("sqs", region_name=DR)
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", region_name=DR).subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=[{
        "MetricName": "Errors", "Value": 3, "Dimensions": [{"Name": "FunctionName", "Value": "payment-processor-dr-test"}]}])
    message = json.loads(json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])["Message"])
    assert (message["AlarmName"], message["NewStateValue"]) == ("drkit-dr-lambda-errors-test", "ALARM")


def test_teardown_leaves_nothing_and_schedules_the_keys(moto, tmp_path, clock):
    runner = make_runner(tmp_path, clock)
    ok(runner.provision())
    keys = {r: runner.outputs()[f"ensure_alerts:{role}"]["alerts_key_arn"] for role, r in (("primary", PRIMARY), ("dr", DR))}
    lost = lose_answers(runner, "kms", "schedule_key_deletion")
    ok(runner.teardown())
    assert lost
    for region, key in keys.items():
        assert boto3.client("kms", region_name=region).describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == \
            "PendingDeletion"
        assert alarms(region) == {}
        assert boto3.client("sns", region_name=region).list_topics()["Topics"] == []
        assert boto3.client("cloudwatch", region_name=region).list_dashboards()["DashboardEntries"] == []
    assert boto3.client("route53").list_health_checks()["HealthChecks"] == []
    assert runner.plan_teardown().changes == []


@pytest.mark.parametrize("service,operation", [("kms", "create_key"), ("kms", "create_alias"),
                                               ("sns", "create_topic"), ("cloudwatch", "put_dashboard")])
def test_one_lost_answer_in_provision_converges(moto, tmp_path, clock, service, operation):
    runner = make_runner(tmp_path, clock)
    lost = lose_answers(runner, service, operation)
    ok(runner.provision())
    assert lost
    for region in (PRIMARY, DR):
        kms = boto3.client("kms", region_name=region)
        assert len(kms.list_keys()["Keys"]) == 1, "a duplicate key"
    assert runner.verify().changes == []
