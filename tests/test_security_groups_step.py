"""ensure_security_groups against moto, proved by reading AWS back with boto3."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.aws import RetryPolicy
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runner import Runner
from drkit.state import load_state
from drkit.step import Change
from steps.security_groups import EnsureSecurityGroups, rules_of
from steps.vpc import EnsureVpc
from tests.conftest import DR, PRIMARY, owned_filters

ALL_EGRESS = [{"protocol": "-1", "from_port": None, "to_port": None, "source": "0.0.0.0/0"}]


@pytest.fixture
def make_sg_runner(tmp_path: Path, clock):
    def factory(env: str = "test") -> Runner:
        config = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json")}, environ={})
        steps = [EnsureVpc("primary"), EnsureVpc("dr"), EnsureSecurityGroups("primary"), EnsureSecurityGroups("dr")]
        return Runner(config, steps, clock=clock, log=make_logger("json", level="warning"),
                      retry=RetryPolicy(botocore_max_attempts=1))

    return factory


def groups(ec2, region: str, env: str = "test") -> dict[str, dict]:
    found = ec2(region).describe_security_groups(Filters=owned_filters(env))["SecurityGroups"]
    return {g["GroupName"]: g for g in found}


@pytest.mark.parametrize("region,role,cidr", [(PRIMARY, "primary", "10.0.0.0/16"), (DR, "dr", "10.1.0.0/16")])
def test_provision_creates_both_groups_with_exactly_their_rules(moto, make_sg_runner, ec2, region, role, cidr):
    runner = make_sg_runner()
    assert runner.provision().ok
    vpc_id = ec2(region).describe_vpcs(Filters=owned_filters("test", role))["Vpcs"][0]["VpcId"]
    found = groups(ec2, region)
    aurora, lambda_ = found[f"aurora-sg-{role}-test"], found[f"lambda-sg-{role}-test"]

    assert aurora["VpcId"] == lambda_["VpcId"] == vpc_id
    assert rules_of(aurora["IpPermissions"]) == [{"protocol": "tcp", "from_port": 5432, "to_port": 5432, "source": cidr}]
    assert rules_of(lambda_["IpPermissions"]) == []
    assert rules_of(aurora["IpPermissionsEgress"]) == []  # a database answers its clients; it calls out to nobody
    assert rules_of(lambda_["IpPermissionsEgress"]) == ALL_EGRESS
    tags = {t["Key"]: t["Value"] for t in aurora["Tags"]}
    assert tags == {
        "Name": f"aurora-sg-{role}-test", "Environment": "test", "Project": "DisasterRecovery", "ManagedBy": "drkit",
        "DR-Role": role, "drkit:step": "ensure_security_groups", "drkit:resource": "aurora-sg",
    }
    outputs = runner.outputs()[f"ensure_security_groups:{role}"]
    assert outputs == {"aurora_security_group_id": aurora["GroupId"], "lambda_security_group_id": lambda_["GroupId"]}

    assert runner.verify().changes == []
    runner.aws.stats.__init__()
    assert runner.provision().changes == []
    assert runner.aws.stats.mutating == 0
    assert runner.aws.stats.by_operation["ec2.describe_security_groups"] == 2  # one per region


def test_extra_and_missing_rules_are_findings_and_provision_restores_exactly(moto, make_sg_runner, ec2):
    runner = make_sg_runner()
    runner.provision()
    client = ec2(PRIMARY)
    found = groups(ec2, PRIMARY)
    aurora, lambda_ = found["aurora-sg-primary-test"]["GroupId"], found["lambda-sg-primary-test"]["GroupId"]
    client.authorize_security_group_ingress(GroupId=aurora, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    client.revoke_security_group_ingress(GroupId=aurora, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}])
    client.authorize_security_group_ingress(GroupId=lambda_, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}])
    client.revoke_security_group_egress(GroupId=lambda_, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    findings = {(f.key, f.attribute) for f in runner.verify().changes}
    assert findings == {("aurora-sg", "ingress"), ("lambda-sg", "ingress"), ("lambda-sg", "egress")}

    assert runner.provision().ok
    assert runner.verify().changes == []
    after = groups(ec2, PRIMARY)
    assert rules_of(after["aurora-sg-primary-test"]["IpPermissions"]) == [
        {"protocol": "tcp", "from_port": 5432, "to_port": 5432, "source": "10.0.0.0/16"}]
    assert rules_of(after["lambda-sg-primary-test"]["IpPermissions"]) == []
    assert rules_of(after["lambda-sg-primary-test"]["IpPermissionsEgress"]) == ALL_EGRESS


def test_a_rule_a_stale_read_missed_is_not_an_error(moto, make_sg_runner, ec2):
    """EC2 reads are eventually consistent: a rule added a moment ago may not be described yet,
    and authorizing it again is answered with InvalidPermission.Duplicate."""
    runner = make_sg_runner()
    runner.provision()
    step = next(s for s in runner.pipeline.steps if s.key == "ensure_security_groups:primary")
    group = groups(ec2, PRIMARY)["aurora-sg-primary-test"]
    wanted = rules_of(group["IpPermissions"])
    stale = Change(step.key, PRIMARY, "security_group", "aurora-sg", group["GroupName"], "update",
                   attribute="ingress", expected=wanted, actual=[], resource_id=group["GroupId"])
    runner.aws.stats.__init__()
    step.apply(runner.context(step, load_state(runner.config, persist=False)), stale)
    assert runner.aws.stats.by_operation["ec2.authorize_security_group_ingress"] == 1  # tried, and already there
    assert rules_of(groups(ec2, PRIMARY)["aurora-sg-primary-test"]["IpPermissions"]) == wanted


def test_lost_state_adopts_the_groups(moto, make_sg_runner, ec2):
    first = make_sg_runner()
    first.provision()
    ids = first.outputs()["ensure_security_groups:dr"]
    first.config.state_path.unlink()
    again = make_sg_runner()
    again.aws.stats.__init__()
    assert again.provision().ok
    assert again.aws.stats.mutating == 0
    assert again.outputs()["ensure_security_groups:dr"] == ids
    assert len(groups(ec2, DR)) == 2


def test_teardown_waits_for_network_interfaces_and_spares_what_is_not_its_own(moto, make_sg_runner, ec2):
    runner = make_sg_runner()
    runner.provision()
    client = ec2(PRIMARY)
    found = groups(ec2, PRIMARY)
    aurora, lambda_ = found["aurora-sg-primary-test"], found["lambda-sg-primary-test"]
    vpc_id = aurora["VpcId"]
    # Another env's group, tagged like drkit's, in the same VPC; and our Aurora group with its
    # ownership tags removed by hand: teardown must leave both.
    other_tags = [{"Key": t["Key"], "Value": "other" if t["Key"] == "Environment" else t["Value"]} for t in aurora["Tags"]]
    foreign = client.create_security_group(GroupName="aurora-sg-primary-other", Description="x", VpcId=vpc_id,
                                           TagSpecifications=[{"ResourceType": "security-group", "Tags": other_tags}])["GroupId"]
    client.delete_tags(Resources=[aurora["GroupId"]], Tags=[{"Key": "ManagedBy"}])
    # A Lambda hyperplane ENI still holds the Lambda group (AWS refuses the delete until it is gone).
    subnet = client.describe_subnets(Filters=owned_filters("test", "primary"))["Subnets"][0]["SubnetId"]
    eni = client.create_network_interface(SubnetId=subnet, Groups=[lambda_["GroupId"]])["NetworkInterface"]
    progress = []

    def eni_goes_away(line: str) -> None:
        progress.append(line)
        client.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])

    runner.waiter.progress = eni_goes_away
    outcome = runner.teardown(["ensure_security_groups:primary"])

    assert outcome.ok, outcome.failed
    assert any(eni["NetworkInterfaceId"] in line for line in progress)
    remaining = {g["GroupId"] for g in client.describe_security_groups()["SecurityGroups"]}
    assert lambda_["GroupId"] not in remaining
    assert {foreign, aurora["GroupId"]} <= remaining
    skipped = [c for c in outcome.changes if c.action == "skip"]
    assert [c.key for c in skipped] == ["aurora-sg"]
