"""Idempotency and crash safety, against moto: what a re-run, a lost state file, a crash at any
instant, throttling and eventual consistency do -- proved by reading AWS back."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from drkit.sandbox import reset
from tests.conftest import DR, PRIMARY, owned_filters

EXPECTED_PER_REGION = {"vpcs": 1, "subnets": 4, "igws": 1, "eips": 1, "nats": 1, "route_tables": 2}


def inventory(ec2, env: str = "test") -> dict[str, dict[str, int]]:
    """What drkit's tags mark as this env's, per region, read from AWS."""
    counts = {}
    for region in (PRIMARY, DR):
        c = ec2(region)
        f = owned_filters(env)
        counts[region] = {
            "vpcs": len(c.describe_vpcs(Filters=f)["Vpcs"]),
            "subnets": len(c.describe_subnets(Filters=f)["Subnets"]),
            "igws": len(c.describe_internet_gateways(Filters=f)["InternetGateways"]),
            "eips": len(c.describe_addresses(Filters=f)["Addresses"]),
            "nats": len([n for n in c.describe_nat_gateways(Filters=f)["NatGateways"] if n["State"] != "deleted"]),
            "route_tables": len(c.describe_route_tables(Filters=f)["RouteTables"]),
        }
    return counts


def test_converged_rerun_makes_no_mutating_call(moto, make_runner):
    runner = make_runner()
    runner.provision()
    runner.aws.stats.__init__()
    outcome = runner.provision()
    assert outcome.ok and outcome.changes == [] and not outcome.applied
    assert runner.aws.stats.mutating == 0, runner.aws.stats.mutating_calls
    # About one read per resource: 10 resources per region, 8 reads.
    assert runner.aws.stats.total <= 20


def test_lost_state_adopts_what_exists_without_duplicates(moto, make_runner, ec2, tmp_path):
    first = make_runner()
    first.provision()
    recorded = json.loads(first.config.state_path.read_text())
    first.config.state_path.unlink()

    runner = make_runner()
    runner.aws.stats.__init__()
    outcome = runner.provision()
    assert outcome.ok
    assert runner.aws.stats.mutating == 0
    assert inventory(ec2) == {PRIMARY: EXPECTED_PER_REGION, DR: EXPECTED_PER_REGION}
    adopted = json.loads(runner.config.state_path.read_text())
    assert adopted["steps"]["ensure_vpc:primary"]["resources"] == recorded["steps"]["ensure_vpc:primary"]["resources"]
    assert adopted["steps"]["ensure_vpc:dr"]["outputs"]["vpc_id"] == recorded["steps"]["ensure_vpc:dr"]["outputs"]["vpc_id"]


def test_stale_state_id_is_found_again_by_tags(moto, make_runner, ec2):
    runner = make_runner()
    runner.provision()
    state = json.loads(runner.config.state_path.read_text())
    state["steps"]["ensure_vpc:primary"]["resources"]["vpc"]["id"] = "vpc-00000000000000000"
    runner.config.state_path.write_text(json.dumps(state))
    again = make_runner()
    assert again.provision().ok
    assert inventory(ec2)[PRIMARY] == EXPECTED_PER_REGION
    assert again.verify().changes == []


def _twin_vpc(client, env: str = "test", role: str = "primary") -> tuple[str, str]:
    """A second VPC carrying the first one's drkit tags: what a resent create leaves behind."""
    original = client.describe_vpcs(Filters=owned_filters(env, role))["Vpcs"][0]
    twin = client.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": t["Key"], "Value": t["Value"]} for t in original["Tags"]]}
    ])["Vpc"]["VpcId"]
    return original["VpcId"], twin


def test_a_duplicate_is_planned_for_removal_and_provision_removes_it(moto, make_runner, ec2):
    runner = make_runner()
    runner.provision()
    client = ec2(PRIMARY)
    original, twin = _twin_vpc(client)
    planned = runner.plan().changes
    assert [(c.action, c.attribute, c.resource_id) for c in planned] == [("delete", "duplicate", twin)]
    assert original in planned[0].describe() and "duplicate" in planned[0].describe()
    assert runner.provision().ok
    ids = {v["VpcId"] for v in client.describe_vpcs(Filters=owned_filters("test", "primary"))["Vpcs"]}
    assert ids == {original}
    assert runner.verify().changes == []


def test_teardown_deletes_every_copy_of_a_duplicated_resource(moto, make_runner, ec2):
    runner = make_runner()
    runner.provision()
    _twin_vpc(ec2(PRIMARY))
    assert runner.teardown().ok
    assert inventory(ec2) == {region: {k: 0 for k in EXPECTED_PER_REGION} for region in (PRIMARY, DR)}


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in drkit may catch it."""


def mutating_calls_of_a_full_provision(make_runner) -> int:
    runner = make_runner("count", parallel=1)
    runner.provision()
    return runner.aws.stats.mutating


def kill_after(runner, n: int) -> None:
    """Let the n-th mutating AWS call succeed at AWS, then kill the run before drkit sees it."""
    seen = SimpleNamespace(count=0)

    def after_call(model, **_):
        from drkit.aws import is_mutating

        name = "".join("_" + ch.lower() if ch.isupper() else ch for ch in model.name).lstrip("_")
        if is_mutating(name):
            seen.count += 1
            if seen.count == n:
                raise Killed()

    for region in (PRIMARY, DR):
        for resend in (True, False):  # calls with a `settled` look-up use the client that never resends
            runner.aws.client("ec2", region, resend=resend).meta.events.register("after-call.ec2", after_call)


def test_a_run_killed_after_any_mutating_call_resumes_without_duplicates_or_leaks(moto, make_runner, ec2):
    """Cut the primary region's provision after each of its mutating calls in turn (the call
    done at AWS, drkit never told), resume, and check nothing is duplicated or leaked."""
    step = ["ensure_vpc:primary"]
    counter = make_runner("count", parallel=1)
    counter.provision(step)
    total = counter.aws.stats.mutating
    assert total >= 15
    counter.teardown(step)
    for n in range(1, total + 1):
        reset()  # a clean emulator per cut point keeps moto's tag scans short
        env = f"kill{n}"
        victim = make_runner(env, parallel=1)
        kill_after(victim, n)
        with pytest.raises(Killed):
            victim.provision(step)
        # (A real SIGKILL also leaves the lock behind: tests/test_cli.py kills a real process.)
        resumed = make_runner(env)
        assert resumed.provision(step).ok, n
        assert inventory(ec2, env)[PRIMARY] == EXPECTED_PER_REGION, n
        assert resumed.verify(step).changes == [], n


def _throttle(runner, operations: set[str], times: int, code: str = "RequestLimitExceeded"):
    remaining = {op: times for op in operations}

    def before_call(model, **_):
        if remaining.get(model.name, 0) > 0:
            remaining[model.name] -= 1
            response = SimpleNamespace(status_code=400, headers={})
            return response, {"Error": {"Code": code, "Message": "Request limit exceeded."},
                              "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    for region in (PRIMARY, DR):
        for resend in (True, False):  # calls with a `settled` look-up use the client that never resends
            runner.aws.client("ec2", region, resend=resend).meta.events.register("before-call.ec2", before_call)
    return remaining


def test_throttling_is_survived_with_backoff_on_the_injected_clock(moto, make_runner, ec2, clock):
    runner = make_runner()
    remaining = _throttle(runner, {"DescribeVpcs", "CreateSubnet", "CreateNatGateway", "DescribeNatGateways"}, 3)
    assert runner.provision().ok
    assert all(v == 0 for v in remaining.values())
    assert inventory(ec2) == {PRIMARY: EXPECTED_PER_REGION, DR: EXPECTED_PER_REGION}
    assert len(clock.sleeps) >= 3 * 4


def test_not_found_right_after_create_is_retried(moto, make_runner, ec2):
    """EC2 is eventually consistent: a subnet create may not see a VPC created a moment ago."""
    runner = make_runner()
    _throttle(runner, {"CreateSubnet"}, 2, code="InvalidVpcID.NotFound")
    assert runner.provision().ok
    assert inventory(ec2)[PRIMARY] == EXPECTED_PER_REGION


def test_throttling_beyond_the_retry_budget_fails_clearly(moto, make_runner):
    runner = make_runner()
    _throttle(runner, {"DescribeVpcs"}, 100)
    outcome = runner.plan()
    assert outcome.failed
    message = outcome.failed[0].error.one_line()
    assert "describe_vpcs" in message and "RequestLimitExceeded" in message


def test_a_nat_being_deleted_is_replaced_on_provision(moto, make_runner, ec2):
    runner = make_runner()
    runner.provision()
    client = ec2(PRIMARY)
    old = client.describe_nat_gateways(Filters=owned_filters("test", "primary"))["NatGateways"][0]["NatGatewayId"]
    client.delete_nat_gateway(NatGatewayId=old)
    plan = {(c.key, c.action) for c in runner.plan().changes}
    assert ("nat-gateway", "create") in plan
    # The old NAT keeps its EIP until it is deleted, so a new NAT needs... the same EIP once freed.
    assert runner.provision().ok
    nats = [n for n in client.describe_nat_gateways(Filters=owned_filters("test", "primary"))["NatGateways"]
            if n["State"] not in ("deleted", "deleting")]
    assert len(nats) == 1 and nats[0]["NatGatewayId"] != old
    assert runner.verify().changes == []


def test_ctrl_c_stops_every_step_promptly_and_a_rerun_resumes(moto, make_runner, ec2):
    """Ctrl-C reaches the main thread while the workers wait for their NATs: the run must stop
    (not finish the steps), keep the state current, and a re-run must finish the job."""
    import _thread

    from drkit.errors import InterruptedRun

    runner = make_runner()
    fired = []

    def progress(line: str) -> None:
        if not fired:
            fired.append(line)
            _thread.interrupt_main()  # what the terminal's Ctrl-C does
        runner.interrupt.wait(10)  # hold every worker here until drkit has seen the interrupt

    runner.waiter.progress = progress
    with pytest.raises(InterruptedRun):
        runner.provision()
    assert "NAT gateway" in fired[0]
    recorded = json.loads(runner.config.state_path.read_text())
    assert any("nat-gateway" in s.get("resources", {}) for s in recorded["steps"].values())
    # Neither region went on past its NAT wait.
    assert not any("private-route-table" in s.get("resources", {}) for s in recorded["steps"].values())
    assert not runner.config.state_path.with_name(runner.config.state_path.name + ".lock").exists()

    assert make_runner().provision().ok
    assert inventory(ec2) == {PRIMARY: EXPECTED_PER_REGION, DR: EXPECTED_PER_REGION}
