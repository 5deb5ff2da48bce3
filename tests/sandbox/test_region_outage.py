"""The sandbox's region outage switch: a region that is down refuses every request (or only the
named services') as a connection failure (in-process) or a 503 (over HTTP); the other region
answers; `up` brings it back. One switch serves region_outage(), active_outages() and the sandbox's
HTTP middleware."""

from __future__ import annotations

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from drkit.sandbox import SandboxServer
from drkit.sandbox.outage import RemoteOutage, active_outages
from drkit.sandbox.region_outage import region_outage

ONE_ATTEMPT = botocore.config.Config(retries={"total_max_attempts": 1})


def client(service: str, region: str, **extra):
    return boto3.client(service, region_name=region, config=ONE_ATTEMPT, **extra)


def test_a_region_that_is_down_cannot_be_reached_and_the_other_can(aws):
    client("s3", "us-east-2").create_bucket(Bucket="outage-b", CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
    with region_outage() as outage:
        outage.down("us-east-2")
        with pytest.raises(EndpointConnectionError):
            client("s3", "us-east-2").head_bucket(Bucket="outage-b")
        with pytest.raises(EndpointConnectionError):
            client("ec2", "us-east-2").describe_vpcs()
        assert client("ec2", "us-east-1").describe_vpcs()["Vpcs"] is not None
        assert ("us-east-2", "s3") in outage.refused
        outage.up("us-east-2")
        assert client("s3", "us-east-2").head_bucket(Bucket="outage-b")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_an_outage_can_be_limited_to_some_services(aws):
    with region_outage() as outage:
        outage.down("us-east-1", services=["s3"])
        with pytest.raises(EndpointConnectionError):
            client("s3", "us-east-1").list_buckets()
        assert client("ec2", "us-east-1").describe_vpcs()["Vpcs"] is not None
    assert client("s3", "us-east-1").list_buckets()["Buckets"] == []  # every region is up again on exit


def test_one_switch_for_every_user(aws):
    # region_outage() and active_outages() are the same switch: an outage begun either way refuses
    # in-process requests and is what the HTTP middleware and the emulated services read.
    with region_outage() as outage:
        assert outage is active_outages()
        outage.down("us-east-2")
        assert active_outages().is_out("us-east-2") and active_outages().apis_out("us-east-2", "rds")
        outage.up()
        active_outages().begin("us-east-2", aws_apis=True)
        with pytest.raises(EndpointConnectionError):
            client("rds", "us-east-2").describe_db_clusters()
        active_outages().begin("us-east-2")  # only its API hosts: its AWS APIs answer
        assert client("rds", "us-east-2").describe_db_clusters()["DBClusters"] == []
        outage.down("us-east-2", services=["sqs"])
        assert not active_outages().is_out("us-east-2")  # its execute-api hosts still answer
    assert active_outages().regions() == {}


def test_a_running_sandbox_reads_the_same_switch():
    # Over HTTP a refused request is 503 ServiceUnavailable in its protocol's wire format (JSON for
    # SQS, XML for RDS's query protocol), so botocore reads it as a ClientError.
    with SandboxServer() as server, region_outage() as outage:
        outage.down("us-east-2", services=["sqs", "rds"])
        assert RemoteOutage(server.endpoint_url).regions() == {
            "us-east-2": {"aws_apis": True, "services": ["rds", "sqs"]}}
        sqs = client("sqs", "us-east-2", endpoint_url=server.endpoint_url)
        for call in (sqs.list_queues, client("rds", "us-east-2", endpoint_url=server.endpoint_url).describe_db_clusters):
            with pytest.raises(ClientError) as refused:
                call()
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert "Topics" in client("sns", "us-east-2", endpoint_url=server.endpoint_url).list_topics()
        RemoteOutage(server.endpoint_url).end("us-east-2")
        assert outage.regions() == {} and "QueueUrls" not in sqs.list_queues()
