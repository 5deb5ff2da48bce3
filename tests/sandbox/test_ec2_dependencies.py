"""Contract tests: EC2 refuses to delete a security group or subnet that something still uses.

https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSubnet.html
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def net(aws):
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="app", Description="d", VpcId=vpc)["GroupId"]
    return ec2, vpc, subnet, group


def code_of(call) -> str:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"]


def groups(ec2, group_id: str) -> list[str]:
    found = ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroups"]
    return [g["GroupId"] for g in found]


def test_a_security_group_used_by_a_network_interface_cannot_be_deleted(net):
    ec2, _, subnet, group = net
    eni = ec2.create_network_interface(SubnetId=subnet, Groups=[group])["NetworkInterface"]["NetworkInterfaceId"]
    assert code_of(lambda: ec2.delete_security_group(GroupId=group)) == "DependencyViolation"
    assert groups(ec2, group) == [group]
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    ec2.delete_security_group(GroupId=group)
    assert groups(ec2, group) == []


def test_a_security_group_referenced_by_another_groups_rule_cannot_be_deleted(net):
    ec2, vpc, _, group = net
    db = ec2.create_security_group(GroupName="db", Description="d", VpcId=vpc)["GroupId"]
    rule = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": group}]}
    ec2.authorize_security_group_ingress(GroupId=db, IpPermissions=[rule])
    assert code_of(lambda: ec2.delete_security_group(GroupId=group)) == "DependencyViolation"
    assert groups(ec2, group) == [group]
    ec2.revoke_security_group_ingress(GroupId=db, IpPermissions=[rule])
    ec2.delete_security_group(GroupId=group)
    assert groups(ec2, group) == []


def test_a_subnet_with_a_network_interface_cannot_be_deleted(net):
    ec2, vpc, subnet, group = net
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    assert code_of(lambda: ec2.delete_subnet(SubnetId=subnet)) == "DependencyViolation"
    assert [s["SubnetId"] for s in ec2.describe_subnets(SubnetIds=[subnet])["Subnets"]] == [subnet]
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    ec2.delete_subnet(SubnetId=subnet)
    assert ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"] == []
