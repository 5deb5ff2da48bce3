"""ensure_failover_records: health checks, the region-switch alarm and the failover records, read
back with boto3; DNS answers per the health checks and the switch; drift repaired; a crash
between CreateHealthCheck and the state write resumed without a second check; teardown."""

from __future__ import annotations

import boto3
import pytest

from drkit import region_switch
from drkit.sandbox.outage import active_outages
from drkit.errors import RefusedChangeError
from drkit.step import CREATE
from steps.alerts import EnsureAlerts
from steps.failover_records import EnsureFailoverRecords, dns_answer
from tests.compute_stack import Code, compute_steps, lose_answers, network
from drkit.aws import RetryPolicy
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runner import Runner
from drkit.state import load_state

STEP = "ensure_failover_records:global"


@pytest.fixture(autouse=True)
def no_outage():
    active_outages().end()
    yield
    active_outages().end()


def make_runner(tmp_path, clock, env: str = "test") -> Runner:
    nets = {role: network(role) for role in ("primary", "dr")}
    config = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json")}, environ={})
    steps = compute_steps(("primary", "dr"), Code(), nets) + [EnsureAlerts("primary"), EnsureAlerts("dr"),
                                                             EnsureFailoverRecords("global")]
    return Runner(config, steps, clock=clock, log=make_logger("json", level="warning"),
                  retry=RetryPolicy(botocore_max_attempts=1))


def ok(outcome):
    assert outcome.ok, [f"{r.step.key}: {r.error}" for r in outcome.failed]
    return outcome


def outputs(runner):
    return runner.outputs()


def health_checks():
    return boto3.client("route53").list_health_checks()["HealthChecks"]


def answer(runner) -> str:
    out = runner.outputs()
    zone = out["ensure_hosted_zone:global"]["route53_zone_id"]
    data = dns_answer(runner.aws, zone, runner.config.names.api_hostname)
    for role in ("primary", "dr"):
        if out[f"ensure_custom_domain:{role}"]["custom_domain_target"].rstrip(".").lower() in data:
            return role
    return f"unknown {data}"


def test_create_verify_converge_and_read_back(moto, tmp_path, clock):
    runner = make_runner(tmp_path, clock)
    ok(runner.provision())
    checks = {c["Id"]: c["HealthCheckConfig"] for c in health_checks()}
    assert sorted(c["Type"] for c in checks.values()) == ["CALCULATED", "CLOUDWATCH_METRIC", "HTTPS", "HTTPS"]
    out = runner.outputs()[STEP]
    primary = checks[out["primary_health_check_id"]]
    api = runner.outputs()["ensure_rest_api:primary"]["api_id"]
    assert primary["FullyQualifiedDomainName"] == f"{api}.execute-api.us-east-1.amazonaws.com"
    assert (primary["ResourcePath"], primary["RequestInterval"], primary["FailureThreshold"], primary["EnableSNI"]) == \
        ("/prod/health", 30, 3, True)
    assert len(primary["Regions"]) >= 3
    gate = checks[out["primary_gate_health_check_id"]]
    assert sorted(gate["ChildHealthChecks"]) == sorted([out["primary_health_check_id"],
                                                        out["region_switch_health_check_id"]])
    assert gate["HealthThreshold"] == 2
    switch = checks[out["region_switch_health_check_id"]]
    assert switch["AlarmIdentifier"] == {"Region": "us-east-2", "Name": "drkit-region-switch-test"}
    assert switch["InsufficientDataHealthStatus"] == "LastKnownStatus"
    alarm = boto3.client("cloudwatch", region_name="us-east-2").describe_alarms(
        AlarmNames=["drkit-region-switch-test"])["MetricAlarms"][0]
    assert (alarm["TreatMissingData"], alarm["Namespace"], alarm["MetricName"]) == \
        ("ignore", "drkit/RegionSwitch", "DrActive")
    zone = runner.outputs()["ensure_hosted_zone:global"]["route53_zone_id"]
    records = [r for r in boto3.client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
               if r["Name"] == "api.payments-test.example.com." and r["Type"] == "A"]
    by_role = {r["Failover"]: r for r in records}
    assert by_role["PRIMARY"]["HealthCheckId"] == out["primary_gate_health_check_id"]
    assert by_role["SECONDARY"]["HealthCheckId"] == out["dr_health_check_id"]
    dr_target = runner.outputs()["ensure_custom_domain:dr"]["custom_domain_target"]
    assert by_role["SECONDARY"]["AliasTarget"]["DNSName"].rstrip(".") == dr_target.rstrip(".")
    assert all(r["AliasTarget"]["EvaluateTargetHealth"] for r in records)
    health_alarms = {a["AlarmName"]: a for a in boto3.client("cloudwatch", region_name="us-east-1").describe_alarms(
        AlarmNamePrefix="drkit-")["MetricAlarms"]}
    for role in ("primary", "dr"):
        alarm = health_alarms[f"drkit-{role}-health-check-test"]
        assert alarm["Dimensions"] == [{"Name": "HealthCheckId", "Value": out[f"{role}_health_check_id"]}]
        assert alarm["AlarmActions"] == [runner.outputs()["ensure_alerts:primary"]["alerts_topic_arn"]]
    verified = ok(runner.verify())
    assert verified.changes == []
    statuses = {s.check: s for s in verified.statuses}
    assert statuses["DNS answer"].region == "us-east-1"
    assert statuses["region switch"].measured == "primary active"
    runner.aws.stats.__init__()
    ok(runner.provision())
    assert runner.aws.stats.mutating == 0


def test_switch_and_outage_move_dns_and_fail_open(moto, tmp_path, clock):
    runner = make_runner(tmp_path, clock)
    ok(runner.provision())
    assert answer(runner) == "primary"
    calls_before = list(runner.aws.stats.mutating_calls)
    region_switch.activate(runner.config, runner.aws, "dr")
    made = runner.aws.stats.mutating_calls[len(calls_before):]
    assert made == [("cloudwatch", "us-east-2", "put_metric_data")]  # no Route 53, nothing in us-east-1
    assert answer(runner) == "dr"
    assert region_switch.read(runner.config, runner.aws)["active"] == "dr"
    # DNS moved but the state still says primary is active: a finding (steps/failover_records.py).
    moved = {(c.attribute, c.expected, c.actual) for c in ok(runner.verify()).changes}
    assert moved == {("region_switch", "primary", "dr")}
    load_state(runner.config).set_active("dr", "us-east-2", run_id="run-1", runbook="test", at="2026-12-02T00:00:00Z")
    assert ok(runner.verify()).changes == []  # failed over, and recorded in the state: not drift
    region_switch.activate(runner.config, runner.aws, "primary")
    # Same minute: the period's Maximum still says DR; the next minute's datapoint decides.
    active_outages().begin("us-east-1")
    for _ in range(3):
        result = answer(runner)
    assert result == "dr"
    active_outages().begin("us-east-2")
    for _ in range(3):
        result = answer(runner)
    assert result == "primary"  # both unhealthy: Route 53 fails open to the PRIMARY record


def test_drift_in_health_check_record_and_alarm_is_repaired(moto, tmp_path, clock):
    runner = make_runner(tmp_path, clock)
    ok(runner.provision())
    out = runner.outputs()[STEP]
    route53 = boto3.client("route53")
    route53.update_health_check(HealthCheckId=out["dr_health_check_id"], FailureThreshold=5)
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-2")
    cloudwatch.put_metric_alarm(AlarmName="drkit-region-switch-test", Namespace="drkit/RegionSwitch",
                                MetricName="DrActive", Statistic="Maximum", Period=60, EvaluationPeriods=1,
                                Dimensions=[{"Name": "Environment", "Value": "test"}],
                                Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
                                TreatMissingData="missing")
    zone = runner.outputs()["ensure_hosted_zone:global"]["route53_zone_id"]
    secondary = next(r for r in route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
                     if r.get("SetIdentifier") == "dr")
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT",
        "ResourceRecordSet": {**secondary, "HealthCheckId": out["primary_health_check_id"]}}]})
    found = {(c.kind, c.attribute) for c in runner.verify().changes}
    assert found == {("health_check", "failure_threshold"), ("alarm", "treat_missing_data"),
                     ("failover_record", "health_check_id")}
    ok(runner.provision())
    assert runner.verify().changes == []
    assert route53.get_health_check(HealthCheckId=out["dr_health_check_id"])["HealthCheck"][
        "HealthCheckConfig"]["FailureThreshold"] == 3


def test_a_type_change_is_a_refused_replacement(moto, tmp_path, clock):
    runner = make_runner(tmp_path, clock)
    ok(runner.provision())
    step = next(s for s in runner.pipeline.select([STEP]))
    original = step.desired

    def http_desired(ctx, observation):
        wanted = original(ctx, observation)
        return [w if w.key != "health-check-dr" else type(w)(w.kind, w.key, w.name, {**w.attrs, "request_interval": 10},
                                                              w.tags, w.immutable, w.region) for w in wanted]

    step.desired = http_desired
    assert [c.action for c in runner.plan([STEP]).changes] == ["replace"]
    with pytest.raises(RefusedChangeError):
        runner.provision([STEP])


def test_crash_between_create_and_state_write_resumes_without_a_second_check(moto, tmp_path, clock, monkeypatch):
    runner = make_runner(tmp_path, clock)
    ok(runner.provision())
    ok(runner.teardown([STEP]))
    assert health_checks() == []
    step = next(s for s in runner.pipeline.select([STEP]))
    original = type(step).create_health_check

    def crash_after_create(self, ctx, change):
        if change.key == "health-check-dr":
            reference = self._new_reference(ctx, change.key)
            self._create_check(ctx, change, reference, self._check_config(ctx, change.key))
            raise RuntimeError("killed between CreateHealthCheck and the state write")
        return original(self, ctx, change)

    monkeypatch.setattr(type(step), "create_health_check", crash_after_create)
    assert not runner.provision([STEP]).ok
    assert len(health_checks()) == 2  # the primary's, and the dr one nobody recorded
    monkeypatch.setattr(type(step), "create_health_check", original)
    ok(runner.provision([STEP]))
    assert len(health_checks()) == 4
    assert runner.verify([STEP]).changes == []


@pytest.mark.parametrize("service,operation", [
    ("route53", "create_health_check"), ("route53", "change_tags_for_resource"),
    ("route53", "change_resource_record_sets"), ("cloudwatch", "put_metric_alarm")])
def test_one_lost_answer_in_provision_converges(moto, tmp_path, clock, service, operation):
    runner = make_runner(tmp_path, clock)
    ok(runner.provision([s.key for s in runner.pipeline.select(None) if s.key != STEP]))
    lost = lose_answers(runner, service, operation)
    ok(runner.provision([STEP]))
    assert lost, "the fault never fired"
    assert len(health_checks()) == 4
    assert runner.verify().changes == []


@pytest.mark.parametrize("service,operation", [
    ("route53", "delete_health_check"), ("route53", "change_resource_record_sets"), ("cloudwatch", "delete_alarms")])
def test_one_lost_answer_in_teardown_leaves_nothing(moto, tmp_path, clock, service, operation):
    runner = make_runner(tmp_path, clock)
    ok(runner.provision())
    lost = lose_answers(runner, service, operation)
    ok(runner.teardown([STEP]))
    assert lost, "the fault never fired"
    assert health_checks() == []
    assert boto3.client("cloudwatch", region_name="us-east-2").describe_alarms()["MetricAlarms"] == []
    zone = runner.outputs()["ensure_hosted_zone:global"]["route53_zone_id"]
    assert [r for r in boto3.client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
            if r["Type"] == "A"] == []
    assert CREATE  # noqa: the import documents what the plan would say


def test_a_duplicate_health_check_is_deleted_by_provision(moto, tmp_path, clock):
    """A resend whose first answer was lost and not yet visible leaves a second check with drkit's
    tags for the same key: provably drkit's, so provision deletes it and keeps the recorded one."""
    runner = make_runner(tmp_path, clock)
    ok(runner.provision())
    route53 = boto3.client("route53")
    kept = runner.outputs()[STEP]["dr_health_check_id"]
    config = route53.get_health_check(HealthCheckId=kept)["HealthCheck"]["HealthCheckConfig"]
    extra = route53.create_health_check(CallerReference="resent", HealthCheckConfig={
        k: config[k] for k in ("Type", "FullyQualifiedDomainName", "Port", "ResourcePath", "RequestInterval",
                               "FailureThreshold", "EnableSNI", "Regions")})["HealthCheck"]["Id"]
    tags = route53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=kept)["ResourceTagSet"]["Tags"]
    route53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=extra, AddTags=tags)
    planned = [(c.action, c.attribute, c.resource_id) for c in runner.plan([STEP]).changes]
    assert planned == [("delete", "duplicate", extra)]
    ok(runner.provision([STEP]))
    ids = {c["Id"] for c in health_checks()}
    assert kept in ids and extra not in ids and len(ids) == 4
