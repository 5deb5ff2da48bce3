"""Each runbook end to end against the served sandbox, read back with boto3: roles really swapped,
DNS really answering the right region, the state's active region changed, a following provision
making no mutating call and verify clean; failover making no call into the impaired region and no
Route 53 control-plane call; the report holding measured figures."""

from __future__ import annotations

import json

import pytest

from drkit.runbook import run as runbooks
from drkit.runbook.context import Options
from drkit.runbook.engine import RunbookFailed
from drkit.sandbox.outage import RemoteOutage
from drkit.state import load_state
from tests.runbook_stack import (DR, PRIMARY, client, dns_answers, mutating_calls_of, report, run, server,  # noqa: F401
                                 stack, writer_region)


def converged(runner) -> None:
    """After a runbook: verify is clean and provision makes no mutating call."""
    outcome = runner.verify()
    assert outcome.ok and not outcome.changes, [c.describe() for c in outcome.changes]
    made = mutating_calls_of(runner, runner.provision)
    assert made == [], made


def test_switchover_moves_writer_dns_and_state_then_back(server, stack):
    planned = mutating_calls_of(stack, lambda: runbooks.dry_run(stack, "switchover", Options(dry_run=True)))
    assert planned == []
    assert writer_region(server, stack) == PRIMARY and dns_answers(server, stack) == PRIMARY

    result = run(stack, "switchover")
    assert result.result == "ok"
    assert writer_region(server, stack) == DR
    assert dns_answers(server, stack) == DR
    assert load_state(stack.config).active_role() == "dr"
    figures = report(stack, result)
    assert figures["rpo_seconds"] == 0
    assert figures["rto_seconds"] is not None and figures["rto_seconds"] > 0
    assert [t["step"] for t in figures["timeline"]] == ["gate", "aurora", "dns", "record", "prove-writes", "prove-health"]
    assert figures["verify"]["before"]["findings"] == 0 and figures["verify"]["after"]["findings"] == 0
    assert "<svg" in open(result.report["svg"]).read()
    converged(stack)

    back = run(stack, "switchover")  # the default target is the region that is not active
    assert (back.source, back.target) == ("dr", "primary")
    assert writer_region(server, stack) == PRIMARY and dns_answers(server, stack) == PRIMARY
    assert load_state(stack.config).active_role() == "primary"
    assert [t["to"] for t in load_state(stack.config).transitions()] == ["dr", "primary"]
    converged(stack)


def test_gate_lists_every_reason_and_changes_nothing(server, stack):
    from drkit.sandbox.extensions import active_timings

    ddb = client(server, "dynamodb", PRIMARY)
    ddb.update_table(TableName=stack.config.names.dynamodb_table, ReplicaUpdates=[{"Delete": {"RegionName": DR}}])
    saved = active_timings().aurora_replication_lag_ms
    active_timings().aurora_replication_lag_ms = 5000.0
    before = len(stack.aws.stats.mutating_calls)
    try:
        with pytest.raises(RunbookFailed) as failed:
            run(stack, "switchover")
    finally:
        active_timings().aurora_replication_lag_ms = saved
    message = failed.value.one_line()
    assert "replication lag" in message and "DynamoDB table" in message, message
    assert stack.aws.stats.mutating_calls[before:] == []  # the gate stopped it before any change
    assert writer_region(server, stack) == PRIMARY
    assert load_state(stack.config).active_role() == "primary"
    journal = [r for r in stack.storage.streams("journals/switchover")]
    records = stack.storage.read_records(journal[0])
    assert records[-1]["type"] == "run.end" and records[-1]["result"] == "failed"


def test_failover_acts_only_through_the_target_then_failback(server, stack):
    calls = []
    stack.aws.listeners.append(lambda service, region, op: calls.append((service, region, op)))
    outage = RemoteOutage(server.endpoint_url)
    outage.begin(PRIMARY, aws_apis=True)
    try:
        result = run(stack, "failover")
    finally:
        outage.end(PRIMARY)
    assert result.result == "ok"
    assert [c for c in calls if c[1] == PRIMARY or c[0] == "route53"] == []
    assert load_state(stack.config).active_role() == "dr"
    figures = report(stack, result)
    assert figures["rpo_seconds"] is not None and figures["rto_seconds"] is not None
    rds = client(server, "rds", DR)
    dr_cluster = rds.describe_db_clusters(DBClusterIdentifier=stack.config.names.aurora_cluster("dr"))["DBClusters"][0]
    members = rds.describe_global_clusters(GlobalClusterIdentifier=stack.config.names.global_cluster)["GlobalClusters"]
    assert any(m["IsWriter"] and m["DBClusterArn"] == dr_cluster["DBClusterArn"]
               for m in members[0]["GlobalClusterMembers"]) or not dr_cluster.get("GlobalClusterIdentifier")

    back = run(stack, "failback")
    assert back.result == "ok"
    assert writer_region(server, stack) == PRIMARY and dns_answers(server, stack) == PRIMARY
    assert load_state(stack.config).active_role() == "primary"
    converged(stack)


@pytest.mark.parametrize("kill_in", ["aurora.switchover", "dns.switch", "state.activate", "canary.payment"])
def test_a_run_killed_mid_step_resumes_to_the_same_end(server, stack, monkeypatch, kill_in):
    from drkit.runbook import registry

    registry.known()  # the action modules register themselves on import
    real = registry.ACTIONS[kill_in]

    def dies(rc, d, spec):
        real.run(rc, d, spec)  # the effect happened, then the process died before recording it
        raise SystemExit("killed")

    monkeypatch.setitem(registry.ACTIONS, kill_in, real.__class__(**{**real.__dict__, "run": dies}))
    with pytest.raises(SystemExit):
        run(stack, "switchover")
    monkeypatch.setitem(registry.ACTIONS, kill_in, real)
    lock = stack.config.state_path.with_name(stack.config.state_path.name + ".lock")
    lock.unlink(missing_ok=True)  # what `drkit state unlock` does once the holder is known dead
    run_id = stack.storage.streams("journals/switchover")[0].rsplit("/", 1)[1]
    resumed = runbooks.resume(stack, run_id, Options(yes=True), echo=lambda line: None)
    assert resumed.result == "ok"
    assert writer_region(server, stack) == DR and dns_answers(server, stack) == DR
    assert load_state(stack.config).active_role() == "dr"
    switchovers = [c for c in stack.aws.stats.mutating_calls if c[2] == "switchover_global_cluster"]
    assert len(switchovers) == 1
    records = stack.storage.read_records(f"journals/switchover/{run_id}")
    assert sum(1 for r in records if r["type"] == "run.start") == 2
    assert report(stack, resumed)["resumed"] == 1
    converged(stack)


def test_a_lost_switchover_answer_is_settled_by_reading_not_resending(server, stack):
    from drkit.sandbox.faults import armed_faults

    with armed_faults() as faults:
        lost = faults.lost_response("rds", "SwitchoverGlobalCluster")
        result = run(stack, "switchover")
    assert result.result == "ok" and lost.fired == 1 and lost.seen == 1
    assert writer_region(server, stack) == DR


def test_drill_switches_proves_and_switches_back(server, stack):
    result = run(stack, "drill")
    assert result.result == "ok"
    assert writer_region(server, stack) == PRIMARY and dns_answers(server, stack) == PRIMARY
    assert [t["to"] for t in load_state(stack.config).transitions()] == ["dr", "primary"]
    figures = report(stack, result)
    assert figures["rto_seconds"] is not None
    assert all(t["result"] == "ok" for t in figures["timeline"]), json.dumps(figures["timeline"])[:500]
    failover = run(stack, "drill", mode="failover")
    assert failover.result == "ok"
    assert writer_region(server, stack) == PRIMARY and dns_answers(server, stack) == PRIMARY
    assert report(stack, failover)["rpo_seconds"] is not None
    converged(stack)
