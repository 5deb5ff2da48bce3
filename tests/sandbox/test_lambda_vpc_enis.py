"""Contract: a Lambda function in a VPC owns hyperplane ENIs that outlive it for a while, and
block deleting their security groups and subnets until Lambda removes them (lambda_vpc_enis.py).
https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#vpc-managing-eni"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from drkit.package import build_zip

REGION = "us-east-1"


@pytest.fixture
def vpc_function(aws):
    aws.lambda_eni_linger = 1.0
    ec2, lam, iam = (boto3.client(s, region_name=REGION) for s in ("ec2", "lambda", "iam"))
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    group = ec2.create_security_group(GroupName="fn", Description="fn", VpcId=vpc)["GroupId"]
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    config = lam.create_function(FunctionName="fn", Runtime="python3.14", Role=role, Handler="payment.handler",
                                 Code={"ZipFile": build_zip({"payment.py": b"def handler(e, c): return 1\n"})},
                                 VpcConfig={"SubnetIds": subnets, "SecurityGroupIds": [group]})
    return ec2, lam, vpc, subnets, group, config


def enis(ec2, group):
    return ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group]}])["NetworkInterfaces"]


def test_a_vpc_function_has_lambda_enis_in_its_subnets_with_its_groups(vpc_function):
    ec2, _, vpc, subnets, group, config = vpc_function
    found = enis(ec2, group)
    assert sorted(e["SubnetId"] for e in found) == sorted(subnets)
    for eni in found:
        assert eni["InterfaceType"] == "lambda"
        assert eni["Description"].startswith("AWS Lambda VPC ENI-fn-")
        assert [g["GroupId"] for g in eni["Groups"]] == [group]
    assert config["VpcConfig"]["VpcId"] == vpc


def test_enis_outlive_the_function_and_block_the_group_and_subnets_until_removed(vpc_function, sandbox_clock):
    ec2, lam, vpc, subnets, group, _ = vpc_function
    lam.delete_function(FunctionName="fn")
    assert len(enis(ec2, group)) == 2
    for delete in (lambda: ec2.delete_security_group(GroupId=group), lambda: ec2.delete_subnet(SubnetId=subnets[0]),
                   lambda: ec2.delete_vpc(VpcId=vpc)):
        with pytest.raises(ClientError) as refused:
            delete()
        assert refused.value.response["Error"]["Code"] == "DependencyViolation"
    sandbox_clock.advance(1.0)
    assert enis(ec2, group) == []
    ec2.delete_security_group(GroupId=group)
    for subnet in subnets:
        ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_vpc(VpcId=vpc)


def test_a_function_outside_a_vpc_has_no_eni(aws):
    ec2, lam, iam = (boto3.client(s, region_name=REGION) for s in ("ec2", "lambda", "iam"))
    before = len(ec2.describe_network_interfaces()["NetworkInterfaces"])
    role = iam.create_role(RoleName="plain", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam.create_function(FunctionName="plain", Runtime="python3.14", Role=role, Handler="payment.handler",
                        Code={"ZipFile": build_zip({"payment.py": b""})})
    assert len(ec2.describe_network_interfaces()["NetworkInterfaces"]) == before
