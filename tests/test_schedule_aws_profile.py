"""The whole stack on the sandbox's `aws` profile (AWS's typical durations, scaled 1/1200), on
real time: order and overlap as the scheduler promises them, read from the pipeline's events,
and the result read back from AWS (moto). No wall-clock limits."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import fields

import boto3
import pytest

from drkit.clock import SystemClock
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runner import Runner
from drkit.sandbox.extensions import active_timings, install_all
from drkit.sandbox.timings import SandboxTimings
from drkit.waiters import WaitPolicy
from steps import all_steps
from tests.conftest import DR, PRIMARY, owned_filters

SCALE = 1200.0


@pytest.fixture
def aws_profile(moto):
    saved = {f.name: getattr(active_timings(), f.name) for f in fields(SandboxTimings)}
    # (The scaled policy's timeout is raised to 30 s below, so these windows stay wide on a
    # loaded machine.)
    # The DynamoDB replica, which nothing needs, lasts longer than the network the Aurora chain
    # needs: the chain must not wait for it.
    # The NAT gateway too, which the security groups and Aurora do not need (Step.reads).
    install_all(SandboxTimings.aws(SCALE, dynamodb_replica_creating=6.0, nat_pending=4.0, s3_replication=0,
                                   dynamodb_replication=0, clock=time.monotonic))
    yield
    install_all(SandboxTimings(**saved))


def test_whole_stack_starts_each_step_when_what_it_needs_is_done(aws_profile, tmp_path):
    config = build_config({"env": "sched", "state": str(tmp_path / "sched.state.json")}, environ={})
    steps = all_steps()
    interrupt = threading.Event()
    runner = Runner(config, steps, clock=SystemClock(interrupt), log=make_logger("json", level="error"),
                    wait_policy=dataclasses.replace(WaitPolicy().scaled(SCALE), timeout=30.0))
    spans: dict[str, list[float]] = {}
    lock = threading.Lock()

    def on_event(kind, step, result):
        with lock:
            if kind == "started":
                spans[step.key] = [time.monotonic(), float("inf")]
            elif kind in ("done", "failed"):
                spans[step.key][1] = time.monotonic()

    runner.on_event = on_event
    for operation, reverse in ((runner.provision, False), (runner.teardown, True)):
        spans.clear()
        outcome = operation()
        assert outcome.ok, [str(r.error) for r in outcome.failed]
        needs = runner.pipeline.prerequisites(steps, reverse=reverse)
        by_key = {s.key: s for s in steps}
        for key, before in needs.items():  # order: never before what it needs is done
            whole = [b for b in before if reverse or b not in by_key[key].reads()]
            assert all(spans[b][1] <= spans[key][0] for b in whole), (key, whole)
        if not reverse:
            # overlap: the Aurora chain's first link started while the DynamoDB replica was creating
            assert spans["ensure_security_groups:primary"][0] < spans["ensure_global_table:global"][1]
            assert spans["ensure_global_cluster:primary"][0] < spans["ensure_global_table:global"][1]
            # and did not wait for the NAT gateway either: only for the VPC's id and subnets
            for role in ("primary", "dr"):
                assert spans[f"ensure_security_groups:{role}"][0] < spans[f"ensure_vpc:{role}"][1]
            assert spans["ensure_global_cluster:primary"][0] < spans["ensure_vpc:primary"][1]
            assert spans["ensure_global_cluster:primary"][1] <= spans["ensure_replica:dr"][0]
            for region in (PRIMARY, DR):
                rds = boto3.client("rds", region_name=region)
                assert [c["Status"] for c in rds.describe_db_clusters()["DBClusters"]] == ["available"]
                assert [i["DBInstanceStatus"] for i in rds.describe_db_instances()["DBInstances"]] == ["available"]
            replicas = boto3.client("dynamodb", region_name=PRIMARY).describe_table(
                TableName="payment-transactions-sched")["Table"]["Replicas"]
            assert [r["ReplicaStatus"] for r in replicas] == ["ACTIVE"]
        else:
            # the secondary's teardown and the DynamoDB table's run side by side
            assert spans["ensure_global_table:global"][0] < spans["ensure_replica:dr"][1]
    for region in (PRIMARY, DR):
        assert boto3.client("ec2", region_name=region).describe_vpcs(Filters=owned_filters("sched"))["Vpcs"] == []
        assert boto3.client("rds", region_name=region).describe_db_clusters()["DBClusters"] == []
