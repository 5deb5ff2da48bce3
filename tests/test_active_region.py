"""The stack knows which region is active (issue 9): after a switchover to DR (Aurora writer,
region switch, state) verify of the whole stack is clean and provision makes no mutating call;
a writer or a switch that disagrees with the state is a finding, both ways; switching back is
clean again; teardown after a switchover leaves nothing. Read back with boto3."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.active_stack import (
    DR, PRIMARY, Stack, dns_role, flip_switch, make_active, members, provisioned_stack, set_state_active,
    switch_alarm_state, switch_writer,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # Health is not what these tests judge: the checks stay healthy without probing on each read.
    yield from provisioned_stack(tmp_path_factory.mktemp("active"), "act", route53_health_interval=10**9)


def audit_lines(stack: Stack) -> list[str]:
    path = Path(str(stack.config.state_path).replace(".state.json", ".audit.jsonl"))
    return path.read_text().splitlines() if path.exists() else []


def findings(stack: Stack) -> set[tuple]:
    outcome = stack.runner.verify()
    assert not outcome.failed, [f"{r.step.key}: {r.error}" for r in outcome.failed]
    return {(c.step, c.attribute, c.expected, c.actual) for c in outcome.changes}


def assert_converged(stack: Stack, active: str) -> None:
    """verify finds nothing, deep verify's checks pass, and provision makes no mutating call."""
    runner = stack.runner
    assert findings(stack) == set()
    deep = runner.verify(deep=True)
    assert deep.probes and all(p.ok for p in deep.probes), [p.describe() for p in deep.probes]
    secondary = "dr" if active == "primary" else "primary"
    lag = next(p for p in deep.probes if "Aurora replication lag" in p.check)
    assert stack.config.names.aurora_cluster(secondary) in lag.check and lag.region == stack.config.region(secondary)
    switch = next(s for s in deep.statuses if s.check == "region switch")
    assert switch.measured == f"{active} active"

    before = audit_lines(stack)
    runner.aws.stats.__init__()
    outcome = runner.provision()
    assert outcome.ok and outcome.changes == [] and not outcome.applied
    assert runner.aws.stats.mutating == 0, runner.aws.stats.mutating_calls
    assert audit_lines(stack) == before


def test_after_a_switchover_to_dr_verify_is_clean_and_provision_changes_nothing(stack):
    make_active(stack, "dr")
    config = stack.config
    assert members(config) == {config.names.aurora_cluster("dr"): True, config.names.aurora_cluster("primary"): False}
    assert switch_alarm_state(config) == "ALARM" and dns_role(stack) == "dr"
    state = json.loads(config.state_path.read_text())
    assert state["active"]["role"] == "dr" and state["transitions"][-1]["to"] == "dr"
    assert_converged(stack, "dr")


def test_switching_back_to_primary_is_clean_again(stack):
    make_active(stack, "dr")
    make_active(stack, "primary")
    config = stack.config
    assert members(config)[config.names.aurora_cluster("primary")] is True
    assert switch_alarm_state(config) == "OK" and dns_role(stack) == "primary"
    assert_converged(stack, "primary")


def test_a_writer_that_disagrees_with_the_state_is_a_finding_both_ways(stack):
    make_active(stack, "primary")
    primary_step, dr_step = "ensure_global_cluster:primary", "ensure_replica:dr"

    switch_writer(stack, "dr")  # the state still says primary
    assert findings(stack) == {(primary_step, "is_writer", True, False), (dr_step, "is_writer", False, True)}
    assert stack.runner.plan().changes == []  # provision never moves the writer

    flip_switch(stack, "dr")
    set_state_active(stack, "dr")
    assert findings(stack) == set()

    switch_writer(stack, "primary")  # the state still says dr
    assert findings(stack) == {(primary_step, "is_writer", False, True), (dr_step, "is_writer", True, False)}
    make_active(stack, "primary")
    assert findings(stack) == set()


def test_a_region_switch_that_disagrees_with_the_state_is_a_finding(stack):
    make_active(stack, "primary")
    flip_switch(stack, "dr")  # DNS moved, the state did not
    step = "ensure_failover_records:global"
    assert findings(stack) == {(step, "region_switch", "primary", "dr")}
    finding = next(c for c in stack.runner.verify().changes if c.attribute == "region_switch")
    assert finding.region == DR and "ALARM" in finding.note

    flip_switch(stack, "primary")
    assert findings(stack) == set()
    make_active(stack, "dr")
    flip_switch(stack, "primary")  # the state says dr
    assert findings(stack) == {(step, "region_switch", "dr", "primary")}
    make_active(stack, "primary")


# Last in this module: it tears the stack down (each xdist worker runs a module's tests in order).
def test_teardown_after_a_switchover_leaves_nothing(stack):
    make_active(stack, "dr")
    config = stack.config
    outcome = stack.runner.teardown()
    assert outcome.ok, [f"{r.step.key}: {r.error}" for r in outcome.failed]
    for region in (PRIMARY, DR):
        rds = boto3.client("rds", region_name=region)
        assert [c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]] == []
        assert [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]] == []
        alarms = boto3.client("cloudwatch", region_name=region).describe_alarms(AlarmNamePrefix="drkit-")
        assert alarms["MetricAlarms"] == []
    assert boto3.client("rds", region_name=PRIMARY).describe_global_clusters()["GlobalClusters"] == []
    assert boto3.client("route53").list_health_checks()["HealthChecks"] == []
    assert config.names.aurora_cluster("dr") not in json.dumps(json.loads(config.state_path.read_text())["steps"])
