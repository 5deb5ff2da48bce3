"""The sandbox's region outage switch: a region that is down refuses every request (or only the
named services') as a connection failure; the other region answers; `up` brings it back."""

from __future__ import annotations

import boto3
import botocore.config
import pytest
from botocore.exceptions import EndpointConnectionError

from drkit.sandbox.region_outage import region_outage

ONE_ATTEMPT = botocore.config.Config(retries={"total_max_attempts": 1})


def client(service: str, region: str):
    return boto3.client(service, region_name=region, config=ONE_ATTEMPT)


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
