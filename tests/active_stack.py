"""A whole stack provisioned once per test module (seconds in-process), and a switchover done the
way a runbook does it, with boto3 and drkit's own pieces: SwitchoverGlobalCluster in the primary
region, waited until FailoverState is gone; the region switch; the state's active region.

Tests using it must bring the stack to the topology they need first (`make_active`), never
count on another test having run: pytest-xdist may give a module's tests to several workers,
each with its own stack."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from drkit import region_switch
from drkit.aws import RetryPolicy
from drkit.clock import FakeClock
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runner import Runner
from drkit.sandbox.extensions import install_all
from drkit.sandbox.timings import SandboxTimings
from drkit.state import load_state
from steps import all_steps

PRIMARY, DR = "us-east-1", "us-east-2"
ACCOUNT = "123456789012"  # moto's default account
SWITCHOVER_POLLS = 30


@dataclass
class Stack:
    runner: Runner
    clock: FakeClock

    @property
    def config(self) -> Any:
        return self.runner.config


def provisioned_stack(tmp_path: Path, env: str, **timings: Any) -> Iterator[Stack]:
    """Fake credentials, the sandbox on a fake clock (as tests/conftest.py sets them up, for a
    whole module), and the whole stack provisioned in it. `timings` override the sandbox's
    (route53_health_interval: how often, in fake seconds, a health check really probes its API:
    each probe invokes the payment Lambda in a child process, a second per status read)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE", "DRKIT_STATE", "DRKIT_CONFIG"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", PRIMARY)
        clock = FakeClock()
        install_all(SandboxTimings(nat_pending=30, nat_deleting=60, rds_creating=300, rds_deleting=60,
                                   rds_promoting=120, dynamodb_replica_creating=60, dynamodb_replica_deleting=60,
                                   s3_replication=5, dynamodb_replication=1, clock=clock.monotonic, **timings))
        with mock_aws():
            config = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json")}, environ={})
            runner = Runner(config, all_steps(), clock=clock, log=make_logger("json", level="warning"),
                            retry=RetryPolicy(botocore_max_attempts=1))
            outcome = runner.provision()
            assert outcome.ok, [f"{r.step.key}: {r.error}" for r in outcome.failed]
            yield Stack(runner, clock)


def members(config: Any) -> dict[str, bool]:
    """The global database's members, read with boto3: cluster name -> IsWriter."""
    found = boto3.client("rds", region_name=PRIMARY).describe_global_clusters(
        GlobalClusterIdentifier=config.names.global_cluster)["GlobalClusters"][0]
    return {m["DBClusterArn"].rsplit(":", 1)[1]: m["IsWriter"] for m in found["GlobalClusterMembers"]}


def switch_writer(stack: Stack, role: str) -> None:
    """Make `role`'s cluster the writer with SwitchoverGlobalCluster (called in the primary region,
    the target named by ARN), then wait until the global cluster reports no FailoverState."""
    config, rds = stack.config, boto3.client("rds", region_name=PRIMARY)
    target = config.names.aurora_cluster(role)
    if members(config)[target]:
        return
    arn = boto3.client("rds", region_name=config.region(role)).describe_db_clusters(
        DBClusterIdentifier=target)["DBClusters"][0]["DBClusterArn"]
    rds.switchover_global_cluster(GlobalClusterIdentifier=config.names.global_cluster, TargetDbClusterIdentifier=arn)
    for _ in range(SWITCHOVER_POLLS):
        found = rds.describe_global_clusters(GlobalClusterIdentifier=config.names.global_cluster)["GlobalClusters"][0]
        if "FailoverState" not in found:
            break
        stack.clock.sleep(60)  # the sandbox's switchover advances on the shared fake clock
    assert members(config)[target], members(config)


def set_state_active(stack: Stack, role: str) -> None:
    state = load_state(stack.config)
    state.set_active(role, stack.config.region(role), run_id=f"test-{role}", runbook="test-switchover",
                     at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


def flip_switch(stack: Stack, role: str) -> None:
    """region_switch.activate, a minute after any earlier flip. The switch alarm takes the Maximum
    of each minute (on real time, in the sandbox as on AWS), so a flip back within the same minute
    would still read ALARM: a runbook waits for the alarm. Here the minute passes by ageing the
    switch's earlier datapoints by two periods (not by waiting)."""
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[ACCOUNT][DR]
    for datum in backend.metric_data:
        if datum.namespace == region_switch.NAMESPACE:
            datum.timestamp = datum.timestamp - timedelta(minutes=2)
    region_switch.activate(stack.config, stack.runner.aws, role)
    assert switch_alarm_state(stack.config) == ("ALARM" if role == "dr" else "OK")


def make_active(stack: Stack, role: str) -> None:
    """What a switchover runbook does: the writer, then DNS (the region switch), then the state."""
    switch_writer(stack, role)
    flip_switch(stack, role)
    set_state_active(stack, role)


def switch_alarm_state(config: Any) -> str:
    return boto3.client("cloudwatch", region_name=DR).describe_alarms(
        AlarmNames=[region_switch.alarm_name(config)])["MetricAlarms"][0]["StateValue"]


def dns_role(stack: Stack) -> str:
    """Which region's custom domain Route 53 answers for the API name now (TestDNSAnswer, boto3)."""
    outputs = stack.runner.outputs()
    data = boto3.client("route53", region_name=PRIMARY).test_dns_answer(
        HostedZoneId=outputs["ensure_hosted_zone:global"]["route53_zone_id"],
        RecordName=stack.config.names.api_hostname, RecordType="A")["RecordData"]
    answers = [d.rstrip(".").lower() for d in data]
    for role in ("primary", "dr"):
        if outputs[f"ensure_custom_domain:{role}"]["custom_domain_target"].rstrip(".").lower() in answers:
            return role
    return f"unknown {answers}"
