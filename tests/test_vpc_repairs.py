"""ensure_vpc: a failed NAT replaced and deleted, zones CreateSubnet refuses, pinned zones, and
an Elastic IP released only when it really is. Read back from AWS (moto) with boto3."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from tests.conftest import PRIMARY, owned_filters

STEP = ["ensure_vpc:primary"]


def nats(ec2, env: str = "test") -> list[dict]:
    return ec2(PRIMARY).describe_nat_gateways(Filters=owned_filters(env, "primary"))["NatGateways"]


def test_a_failed_nat_is_deleted_when_it_is_replaced(moto, make_runner, ec2):
    runner = make_runner(parallel=1)
    assert runner.provision(STEP).ok
    failed_id = nats(ec2)[0]["NatGatewayId"]
    ec2_backends[DEFAULT_ACCOUNT_ID][PRIMARY].nat_gateways[failed_id].state = "failed"

    outcome = runner.provision(STEP)

    assert outcome.ok, [str(r.error) for r in outcome.failed]
    states = {n["NatGatewayId"]: n["State"] for n in nats(ec2)}
    assert states[failed_id] == "deleted"  # not left `failed`, tagged as drkit's, for an hour
    assert [s for i, s in states.items() if i != failed_id] == ["available"]
    assert runner.verify(STEP).changes == []


def _refuse_zone(runner, zone: str) -> list[str]:
    """CreateSubnet refuses `zone` as AWS does in some accounts; returns the zones tried."""
    tried: list[str] = []

    def before_call(params, model, **_):
        if model.name != "CreateSubnet":
            return None
        asked = params["body"]["AvailabilityZone"]  # the serialized EC2 query
        tried.append(asked)
        if asked != zone:
            return None
        message = (f"Value ({zone}) for parameter availabilityZone is invalid. Subnets can currently only be "
                   "created in the following availability zones: us-east-1a, us-east-1c, us-east-1d.")
        return SimpleNamespace(status_code=400, headers={}), {
            "Error": {"Code": "InvalidParameterValue", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    for resend in (True, False):
        runner.aws.client("ec2", PRIMARY, resend=resend).meta.events.register("before-call.ec2.CreateSubnet", before_call)
    return tried


def subnet_zones(ec2, env: str = "test") -> dict[str, str]:
    subnets = ec2(PRIMARY).describe_subnets(Filters=owned_filters(env, "primary"))["Subnets"]
    return {next(t["Value"] for t in s["Tags"] if t["Key"] == "drkit:resource"): s["AvailabilityZone"] for s in subnets}


def test_a_zone_createsubnet_refuses_is_skipped_and_remembered(moto, make_runner, ec2):
    runner = make_runner(parallel=1)
    tried = _refuse_zone(runner, "us-east-1b")

    outcome = runner.provision(STEP)

    assert outcome.ok, [str(r.error) for r in outcome.failed]
    zones = subnet_zones(ec2)
    assert zones == {"private-subnet-1": "us-east-1a", "private-subnet-2": "us-east-1c",
                     "private-subnet-3": "us-east-1d", "public-subnet": "us-east-1a"}
    assert tried.count("us-east-1b") == 1  # remembered: no later subnet tries it again
    assert runner.verify(STEP).changes == []


def test_pinned_zones_by_id_are_used_in_their_order(moto, make_runner, ec2, tmp_path):
    offered = ec2(PRIMARY).describe_availability_zones()["AvailabilityZones"]
    by_name = {z["ZoneName"]: z["ZoneId"] for z in offered}
    pinned = ["us-east-1d", "us-east-1b", "us-east-1f"]
    config = tmp_path / "drkit.toml"
    ids = ", ".join(f'"{by_name[z]}"' for z in pinned[1:])
    config.write_text(f'[network.primary]\navailability_zones = ["us-east-1d", {ids}]\n')
    runner = make_runner(parallel=1)
    from drkit.config import build_config

    runner.config = build_config({"env": "test", "state": str(runner.config.state_path)}, config_file=config,
                                 environ={})
    assert runner.provision(STEP).ok
    zones = subnet_zones(ec2)
    assert [zones[f"private-subnet-{i}"] for i in (1, 2, 3)] == pinned
    assert zones["public-subnet"] == "us-east-1d"


def _lose_teardown_release(runner, code: str, message: str, times: int = 1) -> dict:
    seen = {"release": 0}

    def before_call(model, **_):
        if model.name != "ReleaseAddress":
            return None
        seen["release"] += 1
        if seen["release"] <= times:
            return SimpleNamespace(status_code=400, headers={}), {
                "Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    for resend in (True, False):
        runner.aws.client("ec2", PRIMARY, resend=resend).meta.events.register("before-call.ec2.ReleaseAddress",
                                                                              before_call)
    return seen


@pytest.mark.parametrize("code,message", [
    ("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID 'eni-0abc' does not exist"),
    ("AuthFailure", "You do not have permission to access the specified resource."),
])
def test_release_address_right_after_the_nat_is_retried_not_taken_for_released(moto, make_runner, ec2, code, message):
    runner = make_runner(parallel=1)
    assert runner.provision(STEP).ok
    seen = _lose_teardown_release(runner, code, message)

    outcome = runner.teardown(STEP)

    assert outcome.ok, [str(r.error) for r in outcome.failed]
    assert seen["release"] == 2
    assert ec2(PRIMARY).describe_addresses(Filters=owned_filters("test", "primary"))["Addresses"] == []


def test_release_waits_until_describe_shows_no_association(moto, make_runner, ec2):
    """EC2 is eventually consistent: the address may still show its NAT's association."""
    runner = make_runner(parallel=1)
    assert runner.provision(STEP).ok
    events: list[str] = []
    stale_reads = {"left": 2, "by_id": False}

    def note_lookup(params, **_):  # teardown's observe reads by tags; only a read by id is the poll
        stale_reads["by_id"] = "AllocationIds" in params

    def after_describe(parsed, model, **_):
        if (model.name == "DescribeAddresses" and stale_reads["by_id"] and parsed.get("Addresses")
                and stale_reads["left"] > 0):
            stale_reads["left"] -= 1
            parsed["Addresses"][0]["AssociationId"] = "eipassoc-stale"
            events.append("associated")
        elif model.name == "ReleaseAddress":
            events.append("release")

    for resend in (True, False):
        events_of = runner.aws.client("ec2", PRIMARY, resend=resend).meta.events
        events_of.register("before-parameter-build.ec2.DescribeAddresses", note_lookup)
        events_of.register("after-call.ec2", after_describe)

    assert runner.teardown(STEP).ok
    assert events == ["associated", "associated", "release"]
    assert ec2(PRIMARY).describe_addresses(Filters=owned_filters("test", "primary"))["Addresses"] == []
