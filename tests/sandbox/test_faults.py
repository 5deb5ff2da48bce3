"""Contract tests: injected faults look to a client as AWS's own failures do.

A lost response is a request AWS committed whose answer the client never got (it sees a 5xx,
then retries). A throttle refuses a request before AWS does anything.
https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/throttling.html
Every assertion about a side effect reads AWS (moto) back with boto3.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from drkit.sandbox import SANDBOX_CREDENTIALS, SandboxServer
from drkit.sandbox.faults import armed_faults
from drkit.sandbox.faults_http import RemoteFaults

REGION = "us-east-1"
NO_RETRY = Config(retries={"total_max_attempts": 1})


def client(service: str, **extra):
    return boto3.client(service, region_name=REGION, config=NO_RETRY, **extra)


def error_of(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]


def vpc_count(ec2) -> int:
    return len([v for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")])


@pytest.fixture
def faults(aws):
    with armed_faults() as injector:
        yield injector


def test_lost_response_commits_the_side_effect_and_answers_500(faults):
    ec2 = client("ec2")
    faults.lost_response("ec2", "CreateVpc")
    assert error_of(lambda: ec2.create_vpc(CidrBlock="10.0.0.0/16")) == ("InternalError", 500)
    assert [v["CidrBlock"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")] == ["10.0.0.0/16"]
    assert [(i["kind"], i["service"], i["operation"], i["status"]) for i in faults.injected()] == [
        ("lost_response", "ec2", "CreateVpc", 500)
    ]
    assert faults.injected()[0]["processed_status"] == 200


def test_lost_response_counts_nth_and_times_per_operation(faults):
    ec2 = client("ec2")
    faults.lost_response("ec2", "CreateVpc", nth=2, times=2)
    outcomes = []
    for i in range(4):
        ec2.describe_vpcs()  # another operation: not counted
        try:
            ec2.create_vpc(CidrBlock=f"10.{i}.0.0/16")
            outcomes.append("ok")
        except ClientError as err:
            outcomes.append(err.response["Error"]["Code"])
    assert outcomes == ["ok", "InternalError", "InternalError", "ok"]
    assert vpc_count(ec2) == 4  # every request was processed


@pytest.mark.parametrize(
    "service, operation, call, read_back",
    [
        ("rds", "CreateDBSubnetGroup", None, None),  # query protocol, Action form parameter
        ("dynamodb", "CreateTable", None, None),  # JSON protocol, X-Amz-Target
        ("s3", "PutObject", None, None),  # REST-XML, method + path (virtual-hosted bucket)
        ("route53", "CreateHostedZone", None, None),  # REST-XML, versioned path
    ],
)
def test_lost_response_finds_the_operation_in_every_protocol(faults, service, operation, call, read_back):
    if service == "rds":
        ec2 = client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
                   for i, z in enumerate("ab")]
        call = lambda: client("rds").create_db_subnet_group(  # noqa: E731
            DBSubnetGroupName="g", DBSubnetGroupDescription="d", SubnetIds=subnets)
        read_back = lambda: [g["DBSubnetGroupName"] for g in client("rds").describe_db_subnet_groups()["DBSubnetGroups"]]  # noqa: E731
        expected = ["g"]
    elif service == "dynamodb":
        call = lambda: client("dynamodb").create_table(  # noqa: E731
            TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        read_back = lambda: client("dynamodb").list_tables()["TableNames"]  # noqa: E731
        expected = ["t"]
    elif service == "s3":
        client("s3").create_bucket(Bucket="drkit-faults")
        call = lambda: client("s3").put_object(Bucket="drkit-faults", Key="a/b.txt", Body=b"x")  # noqa: E731
        read_back = lambda: [o["Key"] for o in client("s3").list_objects_v2(Bucket="drkit-faults")["Contents"]]  # noqa: E731
        expected = ["a/b.txt"]
    else:
        call = lambda: client("route53").create_hosted_zone(Name="example.com", CallerReference="r1")  # noqa: E731
        read_back = lambda: [z["Name"] for z in client("route53").list_hosted_zones()["HostedZones"]]  # noqa: E731
        expected = ["example.com."]
    faults.lost_response(service, operation)
    code, status = error_of(call)
    assert (code, status) == ("InternalError", 500)
    assert read_back() == expected
    assert [i["operation"] for i in faults.injected()] == [operation]


def test_rest_operations_are_told_apart_by_query_and_headers(faults):
    s3 = client("s3")
    s3.create_bucket(Bucket="drkit-faults")
    s3.put_object(Bucket="drkit-faults", Key="k", Body=b"x")
    faults.lost_response("s3", "PutObjectTagging")
    faults.lost_response("s3", "CopyObject")
    s3.put_object(Bucket="drkit-faults", Key="k2", Body=b"y")  # PutObject: not armed
    assert error_of(lambda: s3.put_object_tagging(Bucket="drkit-faults", Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}))[1] == 500
    assert error_of(lambda: s3.copy_object(Bucket="drkit-faults", Key="k3", CopySource="drkit-faults/k"))[1] == 500
    assert s3.get_object_tagging(Bucket="drkit-faults", Key="k")["TagSet"] == [{"Key": "a", "Value": "b"}]
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="drkit-faults")["Contents"]) == ["k", "k2", "k3"]
    assert [i["operation"] for i in faults.injected()] == ["PutObjectTagging", "CopyObject"]


@pytest.mark.parametrize(
    "service, code, status",
    [("ec2", "RequestLimitExceeded", 503), ("rds", "Throttling", 400), ("dynamodb", "ThrottlingException", 400),
     ("s3", "SlowDown", 503), ("cloudwatch", "Throttling", 400), ("lambda", "TooManyRequestsException", 429)],
)
def test_throttle_refuses_before_processing_with_the_services_own_error(faults, service, code, status):
    calls = {
        "ec2": (lambda: client("ec2").create_vpc(CidrBlock="10.0.0.0/16"), lambda: vpc_count(client("ec2"))),
        "rds": (lambda: client("rds").create_db_cluster_parameter_group(
            DBClusterParameterGroupName="p", DBParameterGroupFamily="aurora-postgresql15", Description="d"),
            lambda: len([g for g in client("rds").describe_db_cluster_parameter_groups()["DBClusterParameterGroups"]
                         if g["DBClusterParameterGroupName"] == "p"])),
        "dynamodb": (lambda: client("dynamodb").create_table(
            TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST"),
            lambda: len(client("dynamodb").list_tables()["TableNames"])),
        "s3": (lambda: client("s3").create_bucket(Bucket="drkit-throttled"),
               lambda: len(client("s3").list_buckets()["Buckets"])),
        "cloudwatch": (lambda: client("cloudwatch").put_metric_alarm(
            AlarmName="a", MetricName="m", Namespace="n", Statistic="Sum", Period=60, EvaluationPeriods=1,
            Threshold=1.0, ComparisonOperator="GreaterThanThreshold"),
            lambda: len(client("cloudwatch").describe_alarms()["MetricAlarms"])),
        "lambda": (lambda: client("lambda").delete_function(FunctionName="nope"), lambda: 0),
    }
    call, count = calls[service]
    faults.throttle(1.0, services=[service])
    assert error_of(call) == (code, status)
    faults.clear()
    assert count() == 0  # refused before AWS did anything


@pytest.mark.parametrize("status", [503, 429])
def test_bare_throttle_has_no_error_code_botocore_can_parse(faults, status):
    ec2 = client("ec2")
    faults.throttle(1.0, services=["ec2"], bare_status=status)
    with pytest.raises(ClientError) as err:
        ec2.create_vpc(CidrBlock="10.0.0.0/16")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    # botocore falls back to the status as the code (5xx) or finds no code at all (4xx HTML).
    assert err.value.response.get("Error", {}).get("Code", "") in ("", str(status))
    faults.clear()
    assert vpc_count(ec2) == 0


def test_throttle_is_random_but_repeatable_with_a_seed_and_limited_to_its_services(faults):
    ec2 = client("ec2")

    def pattern() -> list[bool]:
        faults.clear()
        faults.throttle(0.5, seed=42, services=["ec2"])
        refused = []
        for i in range(12):
            try:
                ec2.create_vpc(CidrBlock="10.0.0.0/16")
                refused.append(False)
            except ClientError:
                refused.append(True)
        return refused

    first = pattern()
    assert True in first and False in first
    assert pattern() == first
    client("sts").get_caller_identity()  # another service: never throttled
    assert {i["service"] for i in faults.injected()} == {"ec2"}
    faults.clear()
    assert vpc_count(ec2) == 2 * first.count(False)


def test_clear_disarms_and_forgets(faults):
    ec2 = client("ec2")
    faults.lost_response("ec2", "CreateVpc", times=5)
    faults.throttle(1.0, services=["rds"])
    error_of(lambda: ec2.create_vpc(CidrBlock="10.0.0.0/16"))
    faults.clear()
    assert faults.injected() == [] and faults.armed() == []
    ec2.create_vpc(CidrBlock="10.1.0.0/16")
    client("rds").describe_db_clusters()
    assert vpc_count(ec2) == 2 and faults.injected() == []


def test_faults_over_http_are_armed_through_the_control_endpoint(fast_timings):
    with SandboxServer() as server:
        remote = RemoteFaults(server.endpoint_url)
        remote.clear()
        ec2 = client("ec2", endpoint_url=server.endpoint_url, **SANDBOX_CREDENTIALS)
        s3 = client("s3", endpoint_url=server.endpoint_url, **SANDBOX_CREDENTIALS)
        try:
            remote.lost_response("ec2", "CreateVpc")
            assert error_of(lambda: ec2.create_vpc(CidrBlock="10.9.0.0/16")) == ("InternalError", 500)
            assert "10.9.0.0/16" in [v["CidrBlock"] for v in ec2.describe_vpcs()["Vpcs"]]
            s3.create_bucket(Bucket="drkit-http-faults")
            remote.lost_response("s3", "PutObject")
            assert error_of(lambda: s3.put_object(Bucket="drkit-http-faults", Key="k", Body=b"x"))[1] == 500
            assert s3.get_object(Bucket="drkit-http-faults", Key="k")["Body"].read() == b"x"
            remote.throttle(1.0, services=["ec2"], operations=["CreateSubnet"])
            vpc = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.9.0.0/16"][0]
            assert error_of(lambda: ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")) == ("RequestLimitExceeded", 503)
            assert ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"] == []
            assert [(i["kind"], i["operation"]) for i in remote.injected()] == [
                ("lost_response", "CreateVpc"), ("lost_response", "PutObject"), ("throttle", "CreateSubnet")]
        finally:
            remote.clear()
        assert remote.injected() == [] and remote.armed() == []
        ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")
