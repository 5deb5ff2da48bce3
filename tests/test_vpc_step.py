"""ensure_vpc against moto, proved by reading AWS back with boto3."""

from __future__ import annotations

import pytest

from tests.conftest import DR, PRIMARY, owned_filters


def _by_name(items: list[dict]) -> dict[str, dict]:
    return {next(t["Value"] for t in i.get("Tags", []) if t["Key"] == "Name"): i for i in items}


@pytest.mark.parametrize("region,role,octet", [(PRIMARY, "primary", 0), (DR, "dr", 1)])
def test_provision_builds_the_seed_network(moto, make_runner, ec2, region, role, octet):
    outcome = make_runner().provision()
    assert outcome.ok, outcome.failed
    client = ec2(region)
    filters = owned_filters("test", role)

    vpcs = client.describe_vpcs(Filters=filters)["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == [f"10.{octet}.0.0/16"]
    vpc_id = vpcs[0]["VpcId"]
    tags = {t["Key"]: t["Value"] for t in vpcs[0]["Tags"]}
    assert tags == {
        "Name": f"vpc-{role}-test", "Environment": "test", "Project": "DisasterRecovery", "ManagedBy": "drkit",
        "DR-Role": role, "drkit:step": "ensure_vpc", "drkit:resource": "vpc",
    }
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        value = client.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)
        assert value[attribute[0].upper() + attribute[1:]]["Value"] is True

    subnets = _by_name(client.describe_subnets(Filters=filters)["Subnets"])
    private = [subnets[f"private-subnet-{i}-{role}-test"] for i in (1, 2, 3)]
    public = subnets[f"public-subnet-{role}-test"]
    assert [s["CidrBlock"] for s in private] == [f"10.{octet}.{i}.0/24" for i in (1, 2, 3)]
    assert public["CidrBlock"] == f"10.{octet}.10.0/24"
    assert len({s["AvailabilityZone"] for s in private}) == 3
    assert all(s["VpcId"] == vpc_id for s in [*private, public])

    igws = client.describe_internet_gateways(Filters=filters)["InternetGateways"]
    assert len(igws) == 1 and igws[0]["Attachments"][0]["VpcId"] == vpc_id

    eips = client.describe_addresses(Filters=filters)["Addresses"]
    nats = client.describe_nat_gateways(Filters=filters)["NatGateways"]
    assert len(eips) == 1 and len(nats) == 1
    nat = nats[0]
    assert nat["State"] == "available"
    assert nat["SubnetId"] == public["SubnetId"]
    assert nat["NatGatewayAddresses"][0]["AllocationId"] == eips[0]["AllocationId"]

    tables = _by_name(client.describe_route_tables(Filters=filters)["RouteTables"])
    public_rt, private_rt = tables[f"public-rt-{role}-test"], tables[f"private-rt-{role}-test"]

    def default_route(table):
        return next(r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")

    assert default_route(public_rt)["GatewayId"] == igws[0]["InternetGatewayId"]
    assert default_route(private_rt)["NatGatewayId"] == nat["NatGatewayId"]
    assert {a["SubnetId"] for a in public_rt["Associations"]} == {public["SubnetId"]}
    assert {a["SubnetId"] for a in private_rt["Associations"]} == {s["SubnetId"] for s in private}


def test_provision_waits_for_the_nat_gateway(moto, make_runner, clock):
    """The sandbox keeps NATs pending for 30 (fake) seconds; provision must wait it out."""
    make_runner().provision()
    assert sum(clock.sleeps) >= 30


def test_verify_is_clean_after_provision_and_reports_each_drift(moto, make_runner, ec2):
    runner = make_runner()
    runner.provision()
    assert runner.verify().changes == []

    client = ec2(PRIMARY)
    vpc_id = client.describe_vpcs(Filters=owned_filters("test", "primary"))["Vpcs"][0]["VpcId"]
    client.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})
    client.delete_tags(Resources=[vpc_id], Tags=[{"Key": "Project"}])
    tables = client.describe_route_tables(Filters=owned_filters("test", "primary"))["RouteTables"]
    private_rt = next(t for t in tables if any(tag["Value"] == "private-rt-primary-test" for tag in t["Tags"]))
    client.delete_route(RouteTableId=private_rt["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")

    findings = runner.verify().changes
    found = {(f.key, f.attribute) for f in findings}
    assert found == {("vpc", "enable_dns_hostnames"), ("vpc", "tags"), ("private-route-table", "default_route")}
    route = next(f for f in findings if f.attribute == "default_route")
    assert route.region == PRIMARY and route.actual is None and route.expected.startswith("nat-")

    runner.provision()
    assert runner.verify().changes == []
    value = client.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
    assert value["EnableDnsHostnames"]["Value"] is True


def test_changed_cidr_is_refused_before_any_change(moto, make_runner, tmp_path, ec2):
    make_runner().provision()
    config_file = tmp_path / "drkit.toml"
    config_file.write_text('[network.primary]\nvpc_cidr = "10.5.0.0/16"\n'
                           'private_subnet_cidrs = ["10.5.1.0/24", "10.5.2.0/24", "10.5.3.0/24"]\n'
                           'public_subnet_cidr = "10.5.10.0/24"\n')
    from drkit.config import build_config
    from drkit.errors import RefusedChangeError

    runner = make_runner()
    runner.config = build_config({"env": "test", "state": str(runner.config.state_path)},
                                 config_file=config_file, environ={})
    runner.aws.stats.__init__()
    with pytest.raises(RefusedChangeError, match="cidr_block"):
        runner.provision()
    assert runner.aws.stats.mutating == 0
    vpcs = ec2(PRIMARY).describe_vpcs(Filters=owned_filters("test", "primary"))["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.0.0.0/16"]


def test_teardown_removes_everything_drkit_owns_and_nothing_else(moto, make_runner, ec2):
    client = ec2(PRIMARY)
    foreign = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]  # same CIDR, no drkit tags
    other_env = make_runner("other")
    other_env.provision()
    runner = make_runner()
    runner.provision()

    outcome = runner.teardown()
    assert outcome.ok
    for region in (PRIMARY, DR):
        c = ec2(region)
        filters = owned_filters("test")
        assert c.describe_vpcs(Filters=filters)["Vpcs"] == []
        assert c.describe_subnets(Filters=filters)["Subnets"] == []
        assert c.describe_internet_gateways(Filters=filters)["InternetGateways"] == []
        assert c.describe_addresses(Filters=filters)["Addresses"] == []
        assert c.describe_route_tables(Filters=filters)["RouteTables"] == []
        assert all(n["State"] == "deleted" for n in c.describe_nat_gateways(Filters=filters)["NatGateways"])
    remaining = {v["VpcId"] for v in client.describe_vpcs()["Vpcs"]}
    assert foreign in remaining
    assert any(v["IsDefault"] for v in client.describe_vpcs()["Vpcs"])
    assert other_env.verify().changes == []  # the other env is intact
    assert runner.plan_teardown().changes == []  # and a second teardown has nothing to do


def test_teardown_order_is_one_aws_accepts(moto, make_runner):
    """The sandbox refuses, as AWS does, to release a NAT's EIP, detach the IGW or delete the
    public subnet while the NAT still exists; teardown must wait for the NAT to be deleted."""
    runner = make_runner()
    runner.provision()
    outcome = runner.teardown()
    assert outcome.ok, [r.error for r in outcome.failed]
    order = [c.key for r in outcome.results if r.step.key == "ensure_vpc:primary" for c in r.changes]
    assert order.index("nat-gateway") < order.index("nat-eip") < order.index("internet-gateway")
    assert order.index("internet-gateway") < order.index("public-subnet") < order.index("vpc")


def test_teardown_resumes_while_the_nat_is_deleting(moto, make_runner, ec2):
    runner = make_runner()
    runner.provision()
    client = ec2(PRIMARY)
    nat = client.describe_nat_gateways(Filters=owned_filters("test", "primary"))["NatGateways"][0]
    client.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])  # as if a killed teardown had started
    assert runner.teardown().ok
    assert client.describe_vpcs(Filters=owned_filters("test"))["Vpcs"] == []
