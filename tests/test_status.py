"""`drkit status` (drkit/status.py, drkit/cli/status.py): the active region and its transition,
each region's health, the replication lag, DNS and the region switch, runbooks in progress --
compared with what boto3 reads back; read-only; a region that is down is reported unreachable
(exit 0), also with an S3 state read from its replica (degraded mode)."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from drkit.aws import AwsGateway, RetryPolicy
from drkit.cli import main
from drkit.config import build_config
from drkit.iam_policy import policy
from drkit.logs import make_logger
from drkit.sandbox.region_outage import region_outage
from drkit.state import load_state
from drkit.status import read_status
from drkit.storage import open_storage
from drkit.storage.bootstrap import init_state_buckets
from drkit.waiters import Waiter
from tests.active_stack import DR, PRIMARY, Stack, dns_role, make_active, members, provisioned_stack
from tests.test_iam_policy import unmapped_or_denied

ENV = "stat"
KEYS = {"active_role", "active_region", "since", "regions", "replication_lag_ms", "dns_answers", "region_switch",
        "runbooks_in_progress"}
LAG_MS = 120.0  # what the sandbox publishes for a secondary (SandboxTimings.aurora_replication_lag_ms)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from provisioned_stack(tmp_path_factory.mktemp("status"), ENV, route53_health_interval=10**9)


def cli(*args: str):
    return CliRunner().invoke(main, ["status", *args, "--env", ENV], catch_exceptions=False)


def status_of(stack: Stack, *, retries: int = 1) -> tuple[dict, AwsGateway]:
    """read_status over a gateway of its own (its call counts), one attempt per call."""
    aws = AwsGateway(clock=stack.clock, retry=RetryPolicy(botocore_max_attempts=retries))
    storage = open_storage(stack.config)
    return read_status(stack.config, aws, load_state(stack.config, persist=False, storage=storage), storage), aws


def test_status_json_says_what_aws_says_and_makes_only_allowed_reads(stack, tmp_path, monkeypatch):
    make_active(stack, "primary")
    monkeypatch.chdir(tmp_path)
    result = cli("--json", "--state", str(stack.config.state_path))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert KEYS <= set(doc)
    assert (doc["active_role"], doc["active_region"]) == ("primary", PRIMARY)
    writers = members(stack.config)
    for role, region in (("primary", PRIMARY), ("dr", DR)):
        shown = doc["regions"][role]
        assert {"region", "health_check", "aurora_status", "api"} <= set(shown)
        cluster = boto3.client("rds", region_name=region).describe_db_clusters(
            DBClusterIdentifier=f"aurora-{role}-{ENV}")["DBClusters"][0]
        assert (shown["region"], shown["api"], shown["aurora_status"]) == (region, "reachable", cluster["Status"])
        assert shown["aurora_writer"] is writers[f"aurora-{role}-{ENV}"]
        check = boto3.client("route53").get_health_check_status(HealthCheckId=shown["health_check"]["id"])
        assert shown["health_check"]["checkers"] == len(check["HealthCheckObservations"]) >= 3
        assert shown["health_check"]["status"] == "healthy"
    assert doc["replication_lag_ms"] == LAG_MS and doc["replication_lag"]["cluster"] == f"aurora-dr-{ENV}"
    assert doc["dns_answers"]["role"] == dns_role(stack) == "primary"
    alarm = boto3.client("cloudwatch", region_name=DR).describe_alarms(
        AlarmNames=[f"drkit-region-switch-{ENV}"])["MetricAlarms"][0]
    assert (doc["region_switch"]["alarm_state"], doc["region_switch"]["active"]) == (alarm["StateValue"], "primary")
    assert doc["runbooks_in_progress"] == []

    document, aws = status_of(stack)
    assert aws.stats.mutating == 0 and aws.stats.total > 0
    assert unmapped_or_denied(set(aws.stats.by_operation), policy(stack.config)) == []


def test_after_a_switchover_status_names_the_run_and_a_runbook_in_progress(stack, tmp_path, monkeypatch):
    make_active(stack, "dr")
    storage = open_storage(stack.config)
    running, finished = storage.journal("failover", "run-a"), storage.journal("failover", "run-b")
    running.append({"type": "run.start", "runbook": "failover", "run_id": "run-a", "at": "2026-12-02T10:00:00Z"})
    running.append({"type": "step.start", "runbook": "failover", "run_id": "run-a", "at": "2026-12-02T10:00:05Z",
                    "step": "switch-dns"})
    finished.append({"type": "run.start", "runbook": "failover", "run_id": "run-b", "at": "2026-12-02T09:00:00Z"})
    finished.append({"type": "run.end", "runbook": "failover", "run_id": "run-b", "at": "2026-12-02T09:05:00Z"})
    storage.append_record("journals/unlock/run-c", {"broke": "someone's lock"})  # not a runbook run
    try:
        monkeypatch.chdir(tmp_path)
        doc = json.loads(cli("--json", "--state", str(stack.config.state_path)).stdout)
        transition = load_state(stack.config).transitions()[-1]
        assert (doc["active_role"], doc["active_region"], doc["since"]) == ("dr", DR, transition["at"])
        assert doc["activated_by"] == {"run_id": transition["run_id"], "runbook": transition["runbook"]}
        assert doc["regions"]["dr"]["aurora_writer"] is True and doc["regions"]["primary"]["aurora_writer"] is False
        assert doc["replication_lag"]["cluster"] == f"aurora-primary-{ENV}" and doc["replication_lag_ms"] == LAG_MS
        assert (doc["dns_answers"]["role"], doc["region_switch"]["active"]) == ("dr", "dr")
        assert [(r["runbook"], r["run_id"], r["last"]["step"]) for r in doc["runbooks_in_progress"]] == [
            ("failover", "run-a", "switch-dns")]

        text = cli("--state", str(stack.config.state_path))
        assert text.exit_code == 0
        assert text.stdout.splitlines()[0] == (f"Active region: dr ({DR}) since {transition['at']} "
                                               f"(run {transition['run_id']}, {transition['runbook']})")
        assert "Runbook in progress: failover run-a" in text.stdout and "run-b" not in text.stdout
    finally:
        running.append({"type": "run.end", "runbook": "failover", "run_id": "run-a", "at": "2026-12-02T10:09:00Z"})


@pytest.mark.parametrize("down", [PRIMARY, DR])
def test_a_region_that_is_down_is_reported_unreachable_and_the_rest_is_read(stack, down):
    make_active(stack, "primary")
    role_down, role_up = ("primary", "dr") if down == PRIMARY else ("dr", "primary")
    # Route 53's checks need several healthy rounds to recover from an earlier test's outage (its
    # hysteresis): start from DNS answering the primary again. Each TestDNSAnswer is one round.
    for _ in range(10):
        if dns_role(stack) == "primary":
            break
    assert dns_role(stack) == "primary"
    with region_outage() as outage:
        outage.down(down)
        doc, aws = status_of(stack)
    assert doc["regions"][role_down]["api"] == "unreachable" and doc["regions"][role_down]["error"]
    assert doc["regions"][role_down]["aurora_status"] == "unreachable"
    assert (doc["regions"][role_up]["api"], doc["regions"][role_up]["aurora_status"]) == ("reachable", "available")
    assert doc["active_role"] == "primary" and aws.stats.mutating == 0
    assert doc["aurora"]["writer_role"] == "primary"  # DescribeGlobalClusters answered in the other region
    if down == PRIMARY:  # Route 53's control plane is in us-east-1 too
        assert doc["dns_answers"]["unreachable"] == doc["regions"][role_up]["health_check"]["unreachable"] == PRIMARY
        assert doc["region_switch"]["active"] == "primary" and doc["replication_lag_ms"] == LAG_MS
    else:  # the switch alarm and the secondary's lag live in the DR region
        assert doc["region_switch"]["unreachable"] == doc["replication_lag"]["unreachable"] == DR
        assert doc["replication_lag_ms"] is None and doc["dns_answers"]["role"] == "primary"
    # One attempt at the region that is down, then it is not asked again.
    refused = [r for r in outage.refused if r[0] == down]
    assert len(refused) == 1, refused


def test_status_in_degraded_mode_reads_the_replica_and_exits_0(stack, tmp_path, monkeypatch):
    """An S3 state at home in the primary region, which is down: the state and the journals come
    from the replica in the DR region, the primary is reported unreachable, exit 0."""
    make_active(stack, "dr")
    url = f"s3://status-state/{ENV}?region={PRIMARY}"
    config = build_config({"env": ENV, "state": url}, environ={})
    gateway = AwsGateway(clock=stack.clock, retry=RetryPolicy(botocore_max_attempts=1))
    init_state_buckets(config, config.state_location, gateway, Waiter(stack.clock, lambda line: None),
                       make_logger("json", level="warning"))
    storage = open_storage(config, aws=gateway)
    storage.write_state(stack.config.state_path.read_text())
    storage.journal("switchover", "run-s3").append({"type": "run.start", "runbook": "switchover",
                                                    "run_id": "run-s3", "at": "2026-12-02T11:00:00Z"})
    stack.clock.sleep(10)  # S3 replication (the sandbox's, on the shared fake clock)
    replica = boto3.client("s3", region_name=DR).get_object(Bucket="status-state-replica", Key=f"{ENV}/state.json")
    assert json.loads(replica["Body"].read())["active"]["role"] == "dr"

    monkeypatch.chdir(tmp_path)
    with region_outage() as outage:
        outage.down(PRIMARY)
        result = cli("--json", "--state", url)
    assert result.exit_code == 0, result.output
    assert "degraded mode" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["state"] == {"location": config.state_location.url, "degraded": True}
    assert (doc["active_role"], doc["regions"]["primary"]["api"]) == ("dr", "unreachable")
    assert (doc["regions"]["dr"]["aurora_status"], doc["regions"]["dr"]["aurora_writer"]) == ("available", True)
    assert [r["run_id"] for r in doc["runbooks_in_progress"]] == ["run-s3"]
    assert list(tmp_path.iterdir()) == []  # read-only: nothing written locally either
