"""The failover runbook when the state's own region is down (issue 11), against the served sandbox,
read back with boto3: with the home bucket's region out, the failover runs from the replica,
journals to the replica and a local file, calls nothing in the impaired region (its own state
bucket included), and `reconcile` later copies the journal home and records the active region;
with neither bucket reachable, `--no-state` fails over from names and tags alone, journals
locally and says what it could not record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drkit.aws import AwsGateway
from drkit.cli import main
from drkit.clock import SystemClock
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runbook import run as runbooks
from drkit.runbook.context import Options
from drkit.runner import Runner
from drkit.sandbox import SANDBOX_CREDENTIALS
from drkit.sandbox.extensions.s3_replication import flush_replication
from drkit.sandbox.outage import RemoteOutage
from drkit.state import State
from drkit.storage.bootstrap import init_state_buckets
from drkit.waiters import WaitPolicy, Waiter
from steps import all_steps
from tests.runbook_stack import DR, PRIMARY, client, server  # noqa: F401

PREFIX = "team"


def s3_runner(server, env: str) -> Runner:
    """A Runner as a fresh `drkit` process would build it: the state in S3, its home bucket in the
    primary region (so that the primary's outage takes the state's home down too)."""
    config = build_config({"env": env, "state": f"s3://{env}-state/{PREFIX}?region={PRIMARY}",
                           "endpoint_url": server.endpoint_url}, environ={})
    return Runner(config, all_steps(), log=make_logger("json", level="error"), force=True,
                  credentials=dict(SANDBOX_CREDENTIALS), wait_policy=WaitPolicy(first_interval=0.1, max_interval=0.5))


@pytest.fixture
def s3_stack(server, tmp_path, monkeypatch, request) -> Runner:
    """A provisioned stack whose state is in S3 (`drkit state init` first), replicated."""
    monkeypatch.chdir(tmp_path)  # the S3 state's local files (.drkit/s3/...) land here
    env = "dg" + str(abs(hash(request.node.name)) % 10**6)
    runner = s3_runner(server, env)
    init = AwsGateway(endpoint_url=server.endpoint_url, credentials=dict(SANDBOX_CREDENTIALS))
    init_state_buckets(runner.config, runner.config.state_location, init, Waiter(SystemClock(), lambda line: None),
                       make_logger("json", level="error"))
    outcome = runner.provision()
    assert outcome.ok, [str(r.error) for r in outcome.failed]
    flush_replication()
    return runner


def keys(server, bucket: str, region: str, prefix: str) -> list[str]:
    """The object names (under the state prefix) in a state bucket, read with boto3."""
    found = client(server, "s3", region).list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/{prefix}")
    return sorted(item["Key"][len(PREFIX) + 1:] for item in found.get("Contents", []))


def body(server, bucket: str, region: str, name: str) -> Any:
    return json.loads(client(server, "s3", region).get_object(Bucket=bucket, Key=f"{PREFIX}/{name}")["Body"].read())


def record_calls(runner: Runner) -> list[tuple[str, str, str, str]]:
    """Every AWS call of the run's gateway and of the state storage's own gateway."""
    calls: list[tuple[str, str, str, str]] = []
    runner.aws.listeners.append(lambda service, region, op: calls.append(("run", service, region, op)))
    runner.storage.aws.listeners.append(lambda service, region, op: calls.append(("state", service, region, op)))
    return calls


def dr_cluster_is_writer(server, runner: Runner) -> bool:
    """The DR cluster takes writes: the global database's writer, or detached and standalone."""
    rds = client(server, "rds", DR)
    cluster = rds.describe_db_clusters(DBClusterIdentifier=runner.config.names.aurora_cluster("dr"))["DBClusters"][0]
    found = rds.describe_global_clusters(GlobalClusterIdentifier=runner.config.names.global_cluster)["GlobalClusters"]
    members = found[0]["GlobalClusterMembers"] if found else []
    return any(m["IsWriter"] and m["DBClusterArn"] == cluster["DBClusterArn"] for m in members) or \
        not cluster.get("GlobalClusterIdentifier")


def test_failover_with_the_state_region_down_runs_from_the_replica_then_reconciles(server, s3_stack, tmp_path):
    env = s3_stack.config.env
    home, replica = f"{env}-state", f"{env}-state-replica"
    assert body(server, replica, DR, "state.json") == body(server, home, PRIMARY, "state.json")  # replicated

    failing = s3_runner(server, env)  # the operator's `drkit runbook run failover --yes`
    calls = record_calls(failing)
    lines: list[str] = []
    outage = RemoteOutage(server.endpoint_url)
    outage.begin(PRIMARY, aws_apis=True)
    try:
        result = runbooks.start(failing, "failover", Options(yes=True), echo=lines.append)
        assert result.result == "ok", lines
        assert failing.storage.degraded
        run_id = result.run_id
        stream = f"journals/failover/{run_id}"
        journal = keys(server, replica, DR, stream + "/")  # read while the home region is still out
        reports = keys(server, replica, DR, f"reports/{run_id}")
    finally:
        outage.end(PRIMARY)

    # Nothing in the impaired region: the run's calls none; the state storage's, the one read
    # (before the run) that found the home bucket unreachable, and nothing after it.
    assert [c for c in calls if c[2] == PRIMARY or c[1] == "route53"] == [("state", "s3", PRIMARY, "get_object")]
    assert [c for c in calls if c[0] == "run" and c[1] == "sts"] == [("run", "sts", DR, "get_caller_identity")]
    assert dr_cluster_is_writer(server, s3_stack)

    # Journaled to the replica and to a local file; the report too; the home bucket has none yet.
    records = result.records
    assert journal == [f"{stream}/{i:06d}.json" for i in range(len(records))]
    pending = tmp_path / ".drkit/s3" / home / PREFIX / "pending" / PREFIX
    assert sorted(p.name for p in (pending / stream).iterdir()) == [f"{i:06d}.json" for i in range(len(records))]
    assert reports == [f"reports/{run_id}.{kind}" for kind in ("json", "md", "svg")]
    where = result.report["json"]
    in_replica, kept = where.split(" and ")
    assert in_replica == f"s3://{replica}/{PREFIX}/reports/{run_id}.json"
    assert Path(kept).resolve() == pending / f"reports/{run_id}.json"
    figures = json.loads(Path(kept).read_text())
    assert figures["result"] == "ok" and figures["state_active"]["recorded"] is False
    assert any(r["type"] == "fact" and r["name"] == "lock" and r["value"] == "not held" for r in records)
    active = [r for r in records if r["type"] == "state.active"]
    assert [(a["to_role"], a["region"], a["recorded"]) for a in active] == [("dr", DR, False)]
    assert any("NOT RECORDED in the state" in line for line in lines), lines
    assert keys(server, home, PRIMARY, "journals/") == [] and "active" not in body(server, home, PRIMARY, "state.json")

    # The home region is back: reconcile copies the journal home and records the active region.
    url = s3_stack.config.state_url
    reconciled = CliRunner().invoke(main, ["state", "reconcile", "--env", env, "--state", url,
                                           "--endpoint-url", server.endpoint_url], catch_exceptions=False)
    assert reconciled.exit_code == 0, reconciled.output
    copied = reconciled.stdout.splitlines()[1:-1]
    assert set(journal + reports) <= {line.strip() for line in copied}
    said = reconciled.stdout.splitlines()[-1]
    assert said.startswith(f"active region now {DR} (dr): journaled by failover run {run_id}"), said
    assert keys(server, home, PRIMARY, stream + "/") == journal
    state = body(server, home, PRIMARY, "state.json")
    assert state["active"]["role"] == "dr" and state["active"]["region"] == DR
    assert [(t["from"], t["to"], t["run_id"], t["runbook"]) for t in state["transitions"]] == \
        [("primary", "dr", run_id, "failover")]
    assert not (tmp_path / ".drkit").exists()
    assert keys(server, replica, DR, "reconcile/") == []
    back = s3_runner(server, env)
    assert back.reconcile() == ([], [])  # a second reconcile changes nothing

    outcome = back.verify()
    assert outcome.ok and not outcome.changes, [c.describe() for c in outcome.changes]


def test_failover_with_no_state_when_neither_bucket_answers(server, s3_stack, tmp_path):
    env = s3_stack.config.env
    home, replica = f"{env}-state", f"{env}-state-replica"
    failing = s3_runner(server, env)
    calls = record_calls(failing)
    lines: list[str] = []
    outage = RemoteOutage(server.endpoint_url)
    outage.begin(PRIMARY, aws_apis=True)
    outage.begin(DR, aws_apis=True, services=["s3"])  # the replica's region answers, but not its S3
    try:
        result = runbooks.start(failing, "failover", Options(yes=True, force=True, no_state=True, to=DR),
                                echo=lines.append)
    finally:
        outage.end()
    assert result.result == "ok", lines
    run_id = result.run_id
    assert [c for c in calls if c[0] == "state" or c[2] == PRIMARY or c[1] == "route53"] == []
    assert dr_cluster_is_writer(server, s3_stack)

    # Without the state the outage cannot be confirmed (the source API is known only from it):
    # the gate's one reason is overridden with --force, journaled.
    records = result.records
    overrides = [r for r in records if r["type"] == "override"]
    assert len(overrides) == 1 and len(overrides[0]["reasons"]) == 1, overrides
    assert "cannot confirm the outage" in overrides[0]["reasons"][0]
    # The canary found the target's API by its name (no state to read its id from).
    assert any(r["type"] == "step.end" and r["step"] == "prove-writes" and r["result"] == "ok" for r in records)

    # Said what it could not record; journal, audit and report on local disk only.
    assert any("NOT RECORDED in the state (--no-state)" in line and DR in line for line in lines), lines
    active = [r for r in records if r["type"] == "state.active"]
    assert [(a["to_role"], a["recorded"]) for a in active] == [("dr", False)]
    local = failing.storage.offline()
    assert local.streams("journals/failover") == [f"journals/failover/{run_id}"]
    assert local.read_records(f"journals/failover/{run_id}") == records
    audited = [r["operation"] for r in local.read_records(f"audit/{run_id}")]
    assert "failover_global_cluster" in audited or "remove_from_global_cluster" in audited, audited
    report = Path(result.report["md"]).resolve()
    assert report == tmp_path / ".drkit/s3" / home / PREFIX / "reports" / f"{run_id}.md"
    assert "NOT recorded in the state" in report.read_text()
    for bucket, region in ((home, PRIMARY), (replica, DR)):
        assert keys(server, bucket, region, "journals/") == [] and keys(server, bucket, region, f"audit/{run_id}") == []

    # Both buckets back: reconcile copies it all home and records the active region.
    copied, applied = s3_runner(server, env).reconcile()
    assert f"journals/failover/{run_id}/{len(records) - 1:06d}.json" in copied
    assert f"reports/{run_id}.md" in copied and any(name.startswith(f"audit/{run_id}/") for name in copied)
    home_journal = [body(server, home, PRIMARY, f"journals/failover/{run_id}/{i:06d}.json")
                    for i in range(len(records))]
    assert home_journal == records
    assert [(a["run_id"], a["to_role"]) for a in applied] == [(run_id, "dr")]
    assert body(server, home, PRIMARY, "state.json")["active"]["role"] == "dr"
    assert not (tmp_path / ".drkit").exists()


def test_journaled_active_region_changes_apply_once_oldest_first_and_never_over_a_later_one(tmp_path):
    """Reconcile's apply step alone: the same record met twice (the replica's copy and the local
    one), a record already recorded, and one older than the state's latest transition."""
    config = build_config({"env": "unit", "state": str(tmp_path / "unit.state.json")}, environ={})
    state = State.new(config.state_path, config, persist=False)

    def active(run_id: str, to_role: str, at: str, recorded: bool = False) -> dict[str, Any]:
        return {"type": "state.active", "run_id": run_id, "runbook": "failover", "at": at, "to_role": to_role,
                "region": config.region(to_role), "recorded": recorded}

    first = active("run-1", "dr", "2026-12-02T10:00:00.000Z")
    again = active("run-2", "primary", "2026-12-02T11:00:00.000Z")
    applied = state.apply_journaled([again, first, dict(first), active("run-0", "dr", "2026-12-02T09:00:00.000Z", True),
                                     {"type": "step.end", "run_id": "run-1"}])
    assert [a["run_id"] for a in applied] == ["run-1", "run-2"]
    assert [(t["to"], t["run_id"]) for t in state.transitions()] == [("dr", "run-1"), ("primary", "run-2")]
    assert state.apply_journaled([first, again]) == []  # run again: nothing changes
    assert state.apply_journaled([active("run-late", "dr", "2026-12-02T10:30:00.000Z")]) == []  # older than run-2's
    assert state.active_role() == "primary"
