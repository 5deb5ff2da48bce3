"""ensure_vpc survives one lost answer on each of its mutating calls: one run converges, with no
duplicate and nothing leaked, read back from AWS (moto) with boto3."""

from __future__ import annotations

import pytest

from tests.conftest import PRIMARY, owned_filters
from tests.lost_answers import faults, lose_answer  # noqa: F401  (a fixture)

STEP = ["ensure_vpc:primary"]
EXPECTED = {"vpcs": 1, "subnets": 4, "internet_gateways": 1, "addresses": 1, "nat_gateways": 1, "route_tables": 2,
            "associations": 4}


def inventory(ec2, env: str) -> dict[str, int]:
    client, filters = ec2(PRIMARY), owned_filters(env, "primary")
    tables = client.describe_route_tables(Filters=filters)["RouteTables"]
    return {
        "vpcs": len(client.describe_vpcs(Filters=filters)["Vpcs"]),
        "subnets": len(client.describe_subnets(Filters=filters)["Subnets"]),
        "internet_gateways": len(client.describe_internet_gateways(Filters=filters)["InternetGateways"]),
        "addresses": len(client.describe_addresses(Filters=filters)["Addresses"]),
        "nat_gateways": len([n for n in client.describe_nat_gateways(Filters=filters)["NatGateways"]
                             if n["State"] != "deleted"]),
        "route_tables": len(tables),
        "associations": sum(1 for t in tables for a in t.get("Associations", []) if not a.get("Main")),
    }


PROVISION_OPERATIONS = [
    "create_vpc", "modify_vpc_attribute", "create_subnet", "create_internet_gateway", "attach_internet_gateway",
    "allocate_address", "create_nat_gateway", "create_route_table", "create_route", "associate_route_table",
]
# Calls of each operation in one provision of the primary network: a call with a `settled`
# look-up is never resent after its lost answer; one with a token or to a value is resent (+1).
CALLS = {"create_vpc": 1, "modify_vpc_attribute": 2, "create_subnet": 4, "create_internet_gateway": 1,
         "attach_internet_gateway": 1, "allocate_address": 1, "create_nat_gateway": 2, "create_route_table": 3,
         "create_route": 2, "associate_route_table": 4}
TEARDOWN_OPERATIONS = [
    "disassociate_route_table", "delete_route_table", "delete_nat_gateway", "release_address",
    "detach_internet_gateway", "delete_internet_gateway", "delete_subnet", "delete_vpc",
]


@pytest.mark.parametrize("operation", PROVISION_OPERATIONS)
def test_provision_survives_a_lost_answer(moto, make_runner, ec2, operation, faults):
    env = f"lost-{operation.replace('_', '-')}"[:20].rstrip("-")
    runner = make_runner(env, parallel=1)
    fault = lose_answer(faults, operation)
    outcome = runner.provision(STEP)
    assert outcome.ok, [str(r.error) for r in outcome.failed]
    assert fault["lost"] == 1
    assert fault["calls"] == CALLS[operation]
    assert inventory(ec2, env) == EXPECTED
    assert runner.verify(STEP).changes == []


@pytest.mark.parametrize("operation", TEARDOWN_OPERATIONS)
def test_teardown_survives_a_lost_answer(moto, make_runner, ec2, operation, faults):
    env = f"lost-{operation.replace('_', '-')}"[:20].rstrip("-")
    runner = make_runner(env, parallel=1)
    assert runner.provision(STEP).ok
    fault = lose_answer(faults, operation)
    outcome = runner.teardown(STEP)
    assert outcome.ok, [str(r.error) for r in outcome.failed]
    assert fault["lost"] == 1
    assert set(inventory(ec2, env).values()) == {0}
    assert runner.plan_teardown(STEP).changes == []


def test_moving_a_subnet_back_survives_a_lost_answer(moto, make_runner, ec2, faults):
    """ReplaceRouteTableAssociation has no token: resent, its old association id is gone."""
    runner = make_runner("lost-replace", parallel=1)
    assert runner.provision(STEP).ok
    client = ec2(PRIMARY)
    subnet = client.describe_subnets(Filters=owned_filters("lost-replace", "primary") + [
        {"Name": "tag:drkit:resource", "Values": ["private-subnet-2"]}])["Subnets"][0]["SubnetId"]
    vpc_id = client.describe_vpcs(Filters=owned_filters("lost-replace", "primary"))["Vpcs"][0]["VpcId"]
    stray = client.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    current = client.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])
    association = next(a["RouteTableAssociationId"] for t in current["RouteTables"] for a in t["Associations"]
                       if a.get("SubnetId") == subnet)
    client.replace_route_table_association(AssociationId=association, RouteTableId=stray)
    fault = lose_answer(faults, "replace_route_table_association")

    outcome = runner.provision(STEP)
    assert outcome.ok, [str(r.error) for r in outcome.failed]
    assert fault["lost"] == 1
    assert inventory(ec2, "lost-replace") == EXPECTED
    assert runner.verify(STEP).changes == []
