"""The sandbox's `aws` timing profile: each transitional state lasts AWS's typical duration
(drkit/durations.py, each figure citing its source) divided by the scale, read back from the
emulated APIs on a fake clock."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from drkit.clock import FakeClock
from drkit.durations import AWS_TYPICAL, BY_KEY
from drkit.sandbox.extensions import install_all
from drkit.sandbox.timings import SandboxTimings, aws_field_seconds

PRIMARY = "us-east-1"


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock(now=1000.0)


@pytest.fixture
def at_scale_60(fake):
    timings = install_all(SandboxTimings.aws(60, clock=fake.monotonic))
    with mock_aws():
        yield timings


def test_every_figure_names_its_source_and_a_sandbox_field_that_exists() -> None:
    fields = set(SandboxTimings.__dataclass_fields__)
    for entry in AWS_TYPICAL:
        assert entry.seconds > 0 and len(entry.source) > 20, entry.key
        assert entry.sandbox_field is None or entry.sandbox_field in fields, entry.key


def test_profile_values_are_the_table_scaled() -> None:
    profile = SandboxTimings.aws(60)
    assert profile.nat_pending == BY_KEY["nat_pending"].seconds / 60 == 1.5
    assert profile.dynamodb_replica_creating == 8.0
    creating = [BY_KEY[k].seconds for k in ("aurora_cluster_creating", "aurora_instance_creating",
                                            "aurora_secondary_creating")]
    assert profile.rds_creating == sum(creating) / len(creating) / 60 == aws_field_seconds()["rds_creating"] / 60
    # Switchover and failover have their own field, not the many minutes of `rds_creating`.
    switching = [BY_KEY[k].seconds for k in ("aurora_global_switchover", "aurora_global_failover")]
    assert profile.rds_switchover == sum(switching) / len(switching) / 60 == 2.0


@pytest.mark.parametrize("environ, expected_nat", [
    ({"DRKIT_SANDBOX_PROFILE": "aws"}, 1.5),
    ({"DRKIT_SANDBOX_PROFILE": "aws", "DRKIT_SANDBOX_SCALE": "30"}, 3.0),
    ({"DRKIT_SANDBOX_PROFILE": "aws", "DRKIT_SANDBOX_NAT_PENDING": "7"}, 7.0),  # a single value still wins
    ({}, 0.5),
])
def test_from_env(environ, expected_nat) -> None:
    assert SandboxTimings.from_env(environ).nat_pending == expected_nat


@pytest.mark.parametrize("environ, message", [
    ({"DRKIT_SANDBOX_PROFILE": "slow"}, "DRKIT_SANDBOX_PROFILE must be one of default, aws"),
    ({"DRKIT_SANDBOX_PROFILE": "aws", "DRKIT_SANDBOX_SCALE": "fast"}, "DRKIT_SANDBOX_SCALE must be a number"),
    ({"DRKIT_SANDBOX_PROFILE": "aws", "DRKIT_SANDBOX_SCALE": "0"}, "DRKIT_SANDBOX_SCALE must be positive"),
])
def test_bad_profile_settings_are_refused(environ, message) -> None:
    with pytest.raises(ValueError, match=message):
        SandboxTimings.from_env(environ)


def test_nat_gateway_is_pending_for_the_scaled_aws_figure(at_scale_60, fake) -> None:
    ec2 = boto3.client("ec2", region_name=PRIMARY)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip)["NatGateway"]["NatGatewayId"]

    def state() -> str:
        return ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"]

    fake.now += 1.4
    assert state() == "pending"
    fake.now += 0.2  # past 90 s / 60
    assert state() == "available"


def test_aurora_cluster_is_creating_for_the_scaled_aws_figure(at_scale_60, fake) -> None:
    rds = boto3.client("rds", region_name=PRIMARY)
    rds.create_db_cluster(DBClusterIdentifier="c1", Engine="aurora-postgresql", MasterUsername="u",
                          MasterUserPassword="password-123")

    def status() -> str:
        return rds.describe_db_clusters(DBClusterIdentifier="c1")["DBClusters"][0]["Status"]

    fake.now += 9.9
    assert status() == "creating"
    fake.now += 0.2  # past 600 s / 60
    assert status() == "available"
