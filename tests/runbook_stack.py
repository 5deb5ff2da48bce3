"""A whole stack in the HTTP sandbox for the runbook tests: the runbooks call each region's API
over HTTP (canary payments, /health), which only the served sandbox answers. One server per test
module; each test provisions its own env, so tests stay independent under xdist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest

from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runbook import run as runbooks
from drkit.runbook.context import Options
from drkit.runner import Runner
from drkit.sandbox import SANDBOX_CREDENTIALS, SandboxServer
from drkit.waiters import WaitPolicy
from steps import all_steps

PRIMARY, DR = "us-east-1", "us-east-2"


@pytest.fixture(scope="module")
def server():
    """The served sandbox, its alarm periods a second long (a minute on AWS): a drill switches the
    region back within seconds, which on AWS waits for the next period."""
    from drkit.sandbox.extensions import active_timings

    with SandboxServer() as served:  # starting it re-reads the timings from the environment: scale after
        timings = active_timings()
        saved = timings.cloudwatch_period_scale
        timings.cloudwatch_period_scale = 60.0
        try:
            yield served
        finally:
            timings.cloudwatch_period_scale = saved


def new_runner(server: SandboxServer, tmp_path: Path, env: str) -> Runner:
    config = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json"), "endpoint_url": server.endpoint_url},
                          environ={})
    return Runner(config, all_steps(), log=make_logger("json", level="error"), force=True,
                  credentials=dict(SANDBOX_CREDENTIALS), wait_policy=WaitPolicy(first_interval=0.1, max_interval=0.5))


@pytest.fixture
def stack(server, tmp_path, request) -> Runner:
    """A provisioned stack in its own env (named after the test)."""
    env = "rb" + str(abs(hash(request.node.name)) % 10**6)
    runner = new_runner(server, tmp_path, env)
    outcome = runner.provision()
    assert outcome.ok, [str(r.error) for r in outcome.failed]
    return runner


def client(server: SandboxServer, service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=server.endpoint_url, **SANDBOX_CREDENTIALS)


def writer_region(server: SandboxServer, runner: Runner) -> str | None:
    """Which region's cluster is the writer, read from AWS (moto)."""
    found = client(server, "rds", DR).describe_global_clusters(GlobalClusterIdentifier=runner.config.names.global_cluster)
    for member in found["GlobalClusters"][0]["GlobalClusterMembers"]:
        if member["IsWriter"]:
            return member["DBClusterArn"].split(":")[3]
    return None


def dns_answers(server: SandboxServer, runner: Runner) -> str:
    """The region whose custom domain Route 53 answers for the public name now."""
    outputs = runner.outputs()
    zone = outputs["ensure_hosted_zone:global"]["route53_zone_id"]
    data = client(server, "route53", PRIMARY).test_dns_answer(
        HostedZoneId=zone, RecordName=runner.config.names.api_hostname, RecordType="A")["RecordData"]
    for role, region in (("primary", PRIMARY), ("dr", DR)):
        target = outputs[f"ensure_custom_domain:{role}"]["custom_domain_target"].rstrip(".").lower()
        if any(target in d.lower() for d in data):
            return region
    return f"unknown {data}"


def run(runner: Runner, name: str, **options: Any) -> runbooks.RunResult:
    lines: list[str] = []
    return runbooks.start(runner, name, Options(yes=True, **options), echo=lines.append)


def report(runner: Runner, result: runbooks.RunResult) -> dict[str, Any]:
    return json.loads(Path(result.report["json"]).read_text())


def mutating_calls_of(runner: Runner, work: Callable[[], Any]) -> list[tuple[str, str, str]]:
    before = len(runner.aws.stats.mutating_calls)
    work()
    return runner.aws.stats.mutating_calls[before:]
