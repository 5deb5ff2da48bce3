"""ensure_security_groups: the Aurora group's egress, lost answers, and teardown's judgement of
the network interfaces still using a group. Read back from AWS (moto) with boto3."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.aws import RetryPolicy
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runner import Runner
from steps.security_groups import EnsureSecurityGroups, rules_of
from steps.vpc import EnsureVpc
from tests.conftest import PRIMARY, owned_filters
from tests.lost_answers import faults, lose_answer  # noqa: F401  (a fixture)

ALL_EGRESS = [{"protocol": "-1", "from_port": None, "to_port": None, "source": "0.0.0.0/0"}]
SG_STEP = ["ensure_security_groups:primary"]


@pytest.fixture
def make_sg_runner(tmp_path: Path, clock):
    def factory(env: str = "test") -> Runner:
        config = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json"), "parallel": 1}, environ={})
        return Runner(config, [EnsureVpc("primary"), EnsureSecurityGroups("primary")], clock=clock,
                      log=make_logger("json", level="warning"), retry=RetryPolicy(botocore_max_attempts=1))

    return factory


def groups(ec2, env: str = "test") -> dict[str, dict]:
    found = ec2(PRIMARY).describe_security_groups(Filters=owned_filters(env))["SecurityGroups"]
    return {g["GroupName"]: g for g in found}


def test_aurora_egress_is_revoked_at_creation_and_repaired(moto, make_sg_runner, ec2):
    runner = make_sg_runner()
    assert runner.provision().ok
    aurora = groups(ec2)["aurora-sg-primary-test"]
    assert rules_of(aurora["IpPermissionsEgress"]) == []
    ec2(PRIMARY).authorize_security_group_egress(GroupId=aurora["GroupId"], IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    findings = runner.verify().changes
    assert [(f.key, f.attribute, f.expected) for f in findings] == [("aurora-sg", "egress", [])]
    assert runner.provision().ok
    assert rules_of(groups(ec2)["aurora-sg-primary-test"]["IpPermissionsEgress"]) == []
    assert runner.verify().changes == []


@pytest.mark.parametrize("operation", [
    "create_security_group", "authorize_security_group_ingress", "revoke_security_group_egress",
])
def test_provision_survives_a_lost_answer(moto, make_sg_runner, ec2, operation, faults):
    env = {"create_security_group": "lostcreate", "authorize_security_group_ingress": "lostauth",
           "revoke_security_group_egress": "lostrevoke"}[operation]
    runner = make_sg_runner(env)
    assert runner.provision(["ensure_vpc:primary"]).ok
    fault = lose_answer(faults, operation)
    outcome = runner.provision(SG_STEP)
    assert outcome.ok, [str(r.error) for r in outcome.failed]
    assert fault["lost"] == 1
    # A create (one per group) or authorize is looked up, not resent; a revoke is resent (NotFound = done).
    assert fault["calls"] == {"authorize_security_group_ingress": 1}.get(operation, 2)
    found = groups(ec2, env)
    assert sorted(found) == [f"aurora-sg-primary-{env}", f"lambda-sg-primary-{env}"]  # no duplicate group
    assert rules_of(found[f"aurora-sg-primary-{env}"]["IpPermissions"])[0]["from_port"] == 5432
    assert rules_of(found[f"aurora-sg-primary-{env}"]["IpPermissionsEgress"]) == []
    assert runner.verify().changes == []


def test_a_repair_survives_a_lost_authorize_answer(moto, make_sg_runner, ec2, faults):
    """The resend is answered InvalidPermission.Duplicate; the read, not the error, decides."""
    runner = make_sg_runner()
    assert runner.provision().ok
    lambda_ = groups(ec2)["lambda-sg-primary-test"]["GroupId"]
    ec2(PRIMARY).revoke_security_group_egress(GroupId=lambda_, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    fault = lose_answer(faults, "authorize_security_group_egress")
    assert runner.provision().ok
    assert fault["lost"] == 1 and fault["calls"] == 1  # looked up, not resent
    assert rules_of(groups(ec2)["lambda-sg-primary-test"]["IpPermissionsEgress"]) == ALL_EGRESS


def test_teardown_survives_a_lost_delete_answer(moto, make_sg_runner, ec2, faults):
    runner = make_sg_runner()
    assert runner.provision().ok
    fault = lose_answer(faults, "delete_security_group")
    outcome = runner.teardown(SG_STEP)
    assert outcome.ok, [str(r.error) for r in outcome.failed]
    assert fault["lost"] == 1
    assert groups(ec2) == {}


def _instance_in_group(ec2, group_id: str) -> tuple[str, str]:
    client = ec2(PRIMARY)
    subnet = client.describe_subnets(Filters=owned_filters("test", "primary"))["Subnets"][0]["SubnetId"]
    instance = client.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet,
                                    SecurityGroupIds=[group_id])["Instances"][0]
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    return instance["InstanceId"], eni


def test_teardown_fails_fast_naming_interfaces_nothing_is_deleting(moto, make_sg_runner, ec2, clock):
    """An instance drkit does not own still uses the group: waiting 20 minutes helps nobody."""
    runner = make_sg_runner()
    assert runner.provision().ok
    group_id = groups(ec2)["aurora-sg-primary-test"]["GroupId"]
    instance_id, eni = _instance_in_group(ec2, group_id)
    started = clock.now

    outcome = runner.teardown(SG_STEP)

    assert not outcome.ok
    message = str(outcome.failed[0].error)
    assert eni in message and instance_id in message and "not deleting" in message
    assert clock.now - started < 60
    assert group_id in {g["GroupId"] for g in ec2(PRIMARY).describe_security_groups()["SecurityGroups"]}


def test_teardown_waits_for_a_lambda_interface_still_attached(moto, make_sg_runner, ec2, clock):
    """A Lambda hyperplane ENI stays in-use for a while after its function is deleted: wait."""
    runner = make_sg_runner()
    assert runner.provision().ok
    client = ec2(PRIMARY)
    group_id = groups(ec2)["lambda-sg-primary-test"]["GroupId"]
    subnet = client.describe_subnets(Filters=owned_filters("test", "primary"))["Subnets"][0]["SubnetId"]
    eni = client.create_network_interface(SubnetId=subnet, Groups=[group_id],
                                          Description="AWS Lambda VPC ENI-payment-fn-1a2b3c")["NetworkInterface"]
    instance = client.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]
    attachment = client.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                                 InstanceId=instance["InstanceId"], DeviceIndex=1)["AttachmentId"]
    assert client.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])[
        "NetworkInterfaces"][0]["Status"] == "in-use"
    progress = []

    def lambda_lets_go(line: str) -> None:
        progress.append(line)
        if clock.now - started >= 25 * 60:  # AWS removes it 20-40 minutes after the function is gone
            client.detach_network_interface(AttachmentId=attachment)
            client.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])

    runner.waiter.progress = lambda_lets_go
    started = clock.now
    outcome = runner.teardown(SG_STEP)

    assert outcome.ok, [str(r.error) for r in outcome.failed]
    assert any(eni["NetworkInterfaceId"] in line and "AWS Lambda VPC ENI" in line for line in progress)
    assert group_id not in {g["GroupId"] for g in client.describe_security_groups()["SecurityGroups"]}
