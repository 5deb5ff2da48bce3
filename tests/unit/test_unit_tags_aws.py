"""drkit.tags helpers and drkit.aws's pure classifiers."""

from __future__ import annotations

import pytest

from drkit.aws import is_mutating, is_not_found
from drkit.tags import (
    ec2_tag_filters, from_aws, is_owned, missing_tags, ownership_tags, resource_tags, tag_specifications, to_aws,
)


@pytest.mark.parametrize(
    "tags, aws",
    [
        ({}, []),
        ({"Name": "x"}, [{"Key": "Name", "Value": "x"}]),
        ({"b": "2", "a": "1", "C": "3"},
         [{"Key": "C", "Value": "3"}, {"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]),
        ({"drkit:step": "ensure_vpc", "empty": ""},
         [{"Key": "drkit:step", "Value": "ensure_vpc"}, {"Key": "empty", "Value": ""}]),
    ],
)
def test_to_aws_sorted_and_roundtrip(tags: dict, aws: list) -> None:
    assert to_aws(tags) == aws
    assert from_aws(aws) == tags
    assert from_aws(to_aws(tags)) == tags


@pytest.mark.parametrize("tag_list, expected", [(None, {}), ([], {}), ((), {}),
                                                 ([{"Key": "k", "Value": "v", "Extra": "ignored"}], {"k": "v"})])
def test_from_aws_edge_cases(tag_list, expected) -> None:
    assert from_aws(tag_list) == expected


def test_tag_specifications() -> None:
    assert tag_specifications("vpc", {"b": "2", "a": "1"}) == [
        {"ResourceType": "vpc", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}]


@pytest.mark.parametrize(
    "tags, expected",
    [
        ({}, []),
        ({"ManagedBy": "drkit", "Environment": "dev"},
         [{"Name": "tag:Environment", "Values": ["dev"]}, {"Name": "tag:ManagedBy", "Values": ["drkit"]}]),
        (ownership_tags("dev", "primary", "ensure_vpc"), [
            {"Name": "tag:DR-Role", "Values": ["primary"]},
            {"Name": "tag:Environment", "Values": ["dev"]},
            {"Name": "tag:ManagedBy", "Values": ["drkit"]},
            {"Name": "tag:Project", "Values": ["DisasterRecovery"]},
            {"Name": "tag:drkit:step", "Values": ["ensure_vpc"]},
        ]),
    ],
)
def test_ec2_tag_filters(tags, expected) -> None:
    assert ec2_tag_filters(tags) == expected


def test_resource_tags() -> None:
    assert resource_tags("dev", "dr", "ensure_vpc", "vpc", "vpc-dr-dev") == {
        "Name": "vpc-dr-dev", "Environment": "dev", "Project": "DisasterRecovery", "ManagedBy": "drkit",
        "DR-Role": "dr", "drkit:step": "ensure_vpc", "drkit:resource": "vpc"}


@pytest.mark.parametrize(
    "desired, actual, expected",
    [
        ({}, {"x": "1"}, {}),
        ({"a": "1"}, {"a": "1"}, {}),
        ({"a": "1"}, {"a": "1", "user": "mine"}, {}),
        ({"a": "1"}, {}, {"a": "1"}),
        ({"a": "1", "b": "2"}, {"a": "9", "b": "2"}, {"a": "1"}),
        ({"a": "1", "b": "2"}, {"A": "1"}, {"a": "1", "b": "2"}),
        ({"a": ""}, {}, {"a": ""}),
    ],
)
def test_missing_tags(desired, actual, expected) -> None:
    assert missing_tags(desired, actual) == expected


OWNED = {"ManagedBy": "drkit", "Environment": "dev", "drkit:step": "ensure_vpc"}


@pytest.mark.parametrize(
    "tags, env, step, expected",
    [
        (OWNED, "dev", "ensure_vpc", True),
        ({**OWNED, "Other": "x", "DR-Role": "dr"}, "dev", "ensure_vpc", True),
        (OWNED, "prod", "ensure_vpc", False),
        (OWNED, "dev", "ensure_db", False),
        ({**OWNED, "ManagedBy": "terraform"}, "dev", "ensure_vpc", False),
        ({k: v for k, v in OWNED.items() if k != "ManagedBy"}, "dev", "ensure_vpc", False),
        ({k: v for k, v in OWNED.items() if k != "Environment"}, "dev", "ensure_vpc", False),
        ({k: v for k, v in OWNED.items() if k != "drkit:step"}, "dev", "ensure_vpc", False),
        ({}, "dev", "ensure_vpc", False),
        ({**OWNED, "ManagedBy": "DRKIT"}, "dev", "ensure_vpc", False),
    ],
)
def test_is_owned(tags, env, step, expected) -> None:
    assert is_owned(tags, env, step) is expected


@pytest.mark.parametrize(
    "operation, mutating",
    [
        ("describe_vpcs", False), ("describe_nat_gateways", False), ("get_bucket_replication", False),
        ("list_roles", False), ("head_bucket", False), ("lookup_events", False), ("search_resources", False),
        ("batch_get_item", False), ("test_dns_answer", False), ("scan", False), ("query", False),
        ("filter_log_events", False),
        ("create_vpc", True), ("delete_vpc", True), ("modify_vpc_attribute", True), ("put_object", True),
        ("create_tags", True), ("attach_internet_gateway", True), ("release_address", True),
        ("batch_write_item", True), ("update_item", True), ("scan_provisioned_products", True),
        ("query_objects", True), ("allocate_address", True), ("invoke", True),
        ("getaway", True), ("describe", True),
    ],
)
def test_is_mutating(operation: str, mutating: bool) -> None:
    assert is_mutating(operation) is mutating


@pytest.mark.parametrize(
    "code, not_found",
    [
        ("InvalidVpcID.NotFound", True), ("InvalidSubnetID.NotFound", True), ("InvalidAllocationID.NotFound", True),
        ("NatGatewayNotFound", True), ("DBClusterNotFoundFault", True), ("GlobalClusterNotFoundFault", True),
        ("ResourceNotFoundException", True), ("NotFoundException", True), ("NoSuchBucket", True),
        ("NoSuchEntity", True), ("NoSuchHostedZone", True), ("404", True), ("NotFound", True),
        ("AccessDenied", False), ("DependencyViolation", False), ("ThrottlingException", False),
        ("InvalidParameterValue", False), ("", False), ("405", False), ("NotFoundButMore", False),
        ("Gateway.NotAttached", False), ("NoSuch", True), ("nosuchbucket", False),
    ],
)
def test_is_not_found(code: str, not_found: bool) -> None:
    assert is_not_found(code) is not_found
