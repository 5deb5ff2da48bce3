"""Contract tests: EC2 creates that take a ClientToken are idempotent, as on AWS.

https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html
"""

from __future__ import annotations

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from drkit.sandbox.extensions.ec2_idempotency import IDEMPOTENT_CREATES
from drkit.sandbox.faults import armed_faults

REGION, OTHER = "us-east-1", "us-west-2"
NO_RETRY = Config(retries={"total_max_attempts": 1})


def ec2(region: str = REGION, config: Config = NO_RETRY):
    return boto3.client("ec2", region_name=region, config=config)


def vpc(client) -> str:
    return client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]


def route_tables(client, vpc_id: str) -> list[str]:
    tables = client.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    return sorted(t["RouteTableId"] for t in tables if not any(a.get("Main") for a in t.get("Associations", [])))


def test_every_drkit_create_with_an_idempotency_token_is_covered():
    model = botocore.session.get_session().get_service_model("ec2")
    drkit_creates = ["CreateVpc", "CreateSubnet", "CreateInternetGateway", "AllocateAddress",
                     "CreateSecurityGroup", "CreateRouteTable", "CreateNatGateway"]
    with_token = [op for op in drkit_creates
                  if any(m.metadata.get("idempotencyToken") for m in model.operation_model(op).input_shape.members.values())]
    assert with_token == ["CreateRouteTable", "CreateNatGateway"]
    assert set(with_token) <= {operation for _, _, operation in IDEMPOTENT_CREATES}


def test_same_token_and_parameters_return_the_first_route_table(aws):
    client = ec2()
    vpc_id = vpc(client)
    first = client.create_route_table(VpcId=vpc_id, ClientToken="t-1")
    again = client.create_route_table(VpcId=vpc_id, ClientToken="t-1")
    assert again["RouteTable"]["RouteTableId"] == first["RouteTable"]["RouteTableId"]
    assert again["ClientToken"] == "t-1"
    assert route_tables(client, vpc_id) == [first["RouteTable"]["RouteTableId"]]


def test_same_token_with_other_parameters_is_a_mismatch_and_creates_nothing(aws):
    client = ec2()
    vpc_id = vpc(client)
    client.create_route_table(VpcId=vpc_id, ClientToken="t-1")
    with pytest.raises(ClientError) as err:
        client.create_route_table(VpcId=vpc_id, ClientToken="t-1",
                                  TagSpecifications=[{"ResourceType": "route-table", "Tags": [{"Key": "a", "Value": "b"}]}])
    assert err.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    assert len(route_tables(client, vpc_id)) == 1


def test_tokens_are_per_region_and_calls_without_one_are_not_deduplicated(aws):
    here, there = ec2(), ec2(OTHER)
    vpc_here, vpc_there = vpc(here), vpc(there)
    here.create_route_table(VpcId=vpc_here, ClientToken="t-1")
    there.create_route_table(VpcId=vpc_there, ClientToken="t-1")
    assert len(route_tables(there, vpc_there)) == 1
    here.create_route_table(VpcId=vpc_here)  # botocore fills in a fresh token per call
    here.create_route_table(VpcId=vpc_here)
    assert len(route_tables(here, vpc_here)) == 3


def test_same_token_returns_the_first_nat_gateway(aws):
    client = ec2()
    vpc_id = vpc(client)
    subnet = client.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    allocation = client.allocate_address(Domain="vpc")["AllocationId"]
    first = client.create_nat_gateway(SubnetId=subnet, AllocationId=allocation, ClientToken="n-1")["NatGateway"]
    again = client.create_nat_gateway(SubnetId=subnet, AllocationId=allocation, ClientToken="n-1")["NatGateway"]
    assert again["NatGatewayId"] == first["NatGatewayId"]
    nats = client.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"]
    assert [n["NatGatewayId"] for n in nats] == [first["NatGatewayId"]]
    with pytest.raises(ClientError) as err:
        other = client.create_subnet(VpcId=vpc_id, CidrBlock="10.0.2.0/24")["Subnet"]["SubnetId"]
        client.create_nat_gateway(SubnetId=other, AllocationId=allocation, ClientToken="n-1")
    assert err.value.response["Error"]["Code"] == "IdempotentParameterMismatch"


def test_botocore_retry_after_a_lost_response_creates_one_route_table(aws):
    # The issue this exists for: AWS committed the create, the answer was lost, botocore retried
    # with the same auto-filled token, and AWS returned the first route table.
    client = ec2(config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
    vpc_id = vpc(client)
    with armed_faults() as faults:
        faults.lost_response("ec2", "CreateRouteTable")
        created = client.create_route_table(VpcId=vpc_id)
        assert [i["operation"] for i in faults.injected()] == ["CreateRouteTable"]
    assert created["ResponseMetadata"]["RetryAttempts"] == 1
    assert route_tables(client, vpc_id) == [created["RouteTable"]["RouteTableId"]]
