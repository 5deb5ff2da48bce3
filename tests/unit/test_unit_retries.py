"""The gateway's retries, without AWS: each kind of "not yet" has its own time budget, a lost
answer is looked up before a resend, an idempotency token is reused by every attempt, and
missing_ok accepts only the codes it is given."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from drkit.aws import AwsGateway, RetryPolicy
from drkit.clock import FakeClock
from drkit.errors import AwsCallError
from drkit.retries import THROTTLED, Budgets, busy, classify, in_use, is_throttle, outcome_unknown, propagating

REGION = "us-east-1"


@pytest.fixture
def gateway() -> AwsGateway:
    return AwsGateway(credentials={"aws_access_key_id": "k", "aws_secret_access_key": "s"}, clock=FakeClock(),
                      retry=RetryPolicy(botocore_max_attempts=1))


def stub(gateway: AwsGateway, service: str, *, resend: bool = True) -> Stubber:
    stubber = Stubber(gateway.client(service, REGION, resend=resend))
    stubber.activate()
    return stubber


def sent_params(gateway: AwsGateway, service: str, *, resend: bool = True) -> list[dict]:
    seen: list[dict] = []
    gateway.client(service, REGION, resend=resend).meta.events.register(
        "before-parameter-build", lambda params, **_: seen.append(dict(params)))
    return seen


def test_a_lost_create_answer_is_looked_up_not_resent(gateway):
    stubber = stub(gateway, "ec2", resend=False)
    stubber.add_client_error("create_vpc", "InternalError", http_status_code=500)
    found = {"Vpc": {"VpcId": "vpc-1"}}
    looked = []
    result = gateway.call("ec2", REGION, "create_vpc", CidrBlock="10.0.0.0/16",
                          settled=lambda: looked.append(1) or found)
    assert result == found and looked == [1]
    stubber.assert_no_pending_responses()  # exactly one CreateVpc was sent


def test_a_lost_create_answer_with_nothing_found_is_resent(gateway):
    stubber = stub(gateway, "ec2", resend=False)
    stubber.add_client_error("create_vpc", "InternalError", http_status_code=500)
    stubber.add_response("create_vpc", {"Vpc": {"VpcId": "vpc-2"}})
    result = gateway.call("ec2", REGION, "create_vpc", CidrBlock="10.0.0.0/16", settled=lambda: None)
    assert result["Vpc"]["VpcId"] == "vpc-2"
    # The look-up kept looking for settle_seconds before the resend (eventual consistency).
    assert sum(gateway.clock.sleeps) >= gateway.retry.settle_seconds


def test_an_error_after_a_lost_answer_is_judged_by_a_fresh_read(gateway):
    """AlreadyExists after our own lost answer: the read decides, not the error text."""
    stubber = stub(gateway, "rds", resend=False)
    stubber.add_client_error("create_db_cluster", "InternalError", http_status_code=500)
    stubber.add_client_error("create_db_cluster", "DBClusterAlreadyExistsFault", http_status_code=400)
    answers = iter([None, None, None, None, None, None, None, None, None, None, None, None,
                    {"DBCluster": {"DBClusterIdentifier": "c"}}])
    result = gateway.call("rds", REGION, "create_db_cluster", DBClusterIdentifier="c", Engine="aurora-postgresql",
                          settled=lambda: next(answers, {"DBCluster": {"DBClusterIdentifier": "c"}}))
    assert result == {"DBCluster": {"DBClusterIdentifier": "c"}}


def test_already_exists_without_a_lost_answer_is_an_error(gateway):
    stubber = stub(gateway, "rds", resend=False)
    stubber.add_client_error("create_db_cluster", "DBClusterAlreadyExistsFault", http_status_code=400)
    with pytest.raises(AwsCallError, match="DBClusterAlreadyExistsFault"):
        gateway.call("rds", REGION, "create_db_cluster", DBClusterIdentifier="c", Engine="aurora-postgresql",
                     settled=lambda: {"found": True})


def test_an_idempotency_token_is_made_once_and_reused_by_every_attempt(gateway):
    stubber = stub(gateway, "ec2")
    seen = sent_params(gateway, "ec2")
    stubber.add_client_error("create_route_table", "InternalError", http_status_code=500)
    stubber.add_client_error("create_route_table", "RequestLimitExceeded", http_status_code=503)
    stubber.add_response("create_route_table", {"RouteTable": {"RouteTableId": "rtb-1"}})
    gateway.call("ec2", REGION, "create_route_table", VpcId="vpc-1")
    tokens = {p.get("ClientToken") for p in seen}
    assert len(seen) == 3 and len(tokens) == 1 and None not in tokens


def test_a_given_token_is_kept(gateway):
    stubber = stub(gateway, "ec2")
    seen = sent_params(gateway, "ec2")
    stubber.add_response("create_nat_gateway", {"NatGateway": {"NatGatewayId": "nat-1"}})
    gateway.call("ec2", REGION, "create_nat_gateway", SubnetId="s", ClientToken="mine")
    assert seen[0]["ClientToken"] == "mine"


def test_missing_ok_with_a_code_accepts_only_that_code(gateway):
    stubber = stub(gateway, "ec2")
    stubber.add_client_error("release_address", "InvalidAllocationID.NotFound", http_status_code=400)
    stubber.add_client_error("release_address", "InvalidNetworkInterfaceID.NotFound", http_status_code=400)
    assert gateway.call("ec2", REGION, "release_address", AllocationId="a",
                        missing_ok="InvalidAllocationID.NotFound") is None
    with pytest.raises(AwsCallError, match="InvalidNetworkInterfaceID.NotFound"):
        gateway.call("ec2", REGION, "release_address", AllocationId="a", missing_ok="InvalidAllocationID.NotFound")


def test_an_explicit_not_yet_outranks_missing_ok(gateway):
    stubber = stub(gateway, "s3")
    stubber.add_client_error("get_bucket_tagging", "NoSuchBucket", http_status_code=404)
    stubber.add_response("get_bucket_tagging", {"TagSet": [{"Key": "k", "Value": "v"}]})
    found = gateway.call("s3", REGION, "get_bucket_tagging", Bucket="b", missing_ok=True,
                         not_yet=(propagating("NoSuchBucket"),))
    assert found["TagSet"] == [{"Key": "k", "Value": "v"}]


def test_each_kind_has_its_own_time_budget(gateway):
    stubber = stub(gateway, "ec2")
    for _ in range(400):
        stubber.add_client_error("delete_subnet", "DependencyViolation", http_status_code=400)
    with pytest.raises(AwsCallError, match=r"still in use after \d+s"):
        gateway.call("ec2", REGION, "delete_subnet", SubnetId="s", not_yet=(in_use("DependencyViolation", budget=600),))
    # It kept trying for the whole budget (on the fake clock), not for a fixed number of attempts.
    assert 600 <= gateway.clock.now < 600 + gateway.retry.max_seconds + 1


def test_a_broad_code_is_retried_only_with_its_message(gateway):
    kind = propagating("InvalidRequest", message="versioning")
    stubber = stub(gateway, "s3")
    stubber.add_client_error("put_bucket_replication", "InvalidRequest", "Some other problem", http_status_code=400)
    with pytest.raises(AwsCallError, match="Some other problem"):
        gateway.call("s3", REGION, "put_bucket_replication", Bucket="b", ReplicationConfiguration={
            "Role": "r", "Rules": []}, not_yet=(kind,))
    assert gateway.clock.sleeps == []


def test_limit_exceeded_is_a_quota_not_a_throttle(gateway):
    stubber = stub(gateway, "secretsmanager")
    stubber.add_client_error("create_secret", "LimitExceededException", http_status_code=400)
    with pytest.raises(AwsCallError, match="LimitExceededException"):
        gateway.call("secretsmanager", REGION, "create_secret", Name="n")
    assert gateway.clock.sleeps == []


@pytest.mark.parametrize("status", [429, 503])
def test_a_throttle_whose_code_cannot_be_parsed_is_retried(gateway, status):
    stubber = stub(gateway, "ec2")
    stubber.add_client_error("describe_vpcs", "", http_status_code=status)
    stubber.add_client_error("describe_vpcs", str(status), http_status_code=status)
    stubber.add_response("describe_vpcs", {"Vpcs": []})
    assert gateway.call("ec2", REGION, "describe_vpcs")["Vpcs"] == []


class _Error(Exception):
    pass


@pytest.mark.parametrize("code,status,expected", [
    ("Throttling", 400, "throttling"),
    ("RequestLimitExceeded", 503, "throttling"),
    ("DependencyViolation", 400, "in use"),
    ("InvalidDBClusterStateFault", 400, "busy"),
    ("InvalidVpcID.NotFound", 400, "not found after create"),
    ("AccessDenied", 403, None),
    ("LimitExceededException", 400, None),
])
def test_classify(code, status, expected):
    from botocore.exceptions import ClientError

    exc = ClientError({"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")
    kind = classify(exc, mutating=True, deleting=False, missing_ok=False,
                    not_yet=(in_use("DependencyViolation"), busy("InvalidDBClusterStateFault")),
                    not_found=code.endswith("NotFound"))
    assert (kind.kind if kind else None) == expected


def test_outcome_unknown_and_throttle_are_told_apart():
    from botocore.exceptions import ClientError, ReadTimeoutError

    def err(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert outcome_unknown(err("InternalError", 500)) and not is_throttle(err("InternalError", 500))
    assert is_throttle(err("", 503)) and not outcome_unknown(err("", 503))
    assert outcome_unknown(ReadTimeoutError(endpoint_url="https://ec2"))
    assert not outcome_unknown(err("InvalidParameterValue", 400))


def test_budgets_backoff_is_jittered_and_capped():
    budgets = Budgets(base=0.5, cap=20.0)
    delays = [budgets.next_delay() for _ in range(30)]
    assert all(0.1 <= d <= 20.0 for d in delays) and len(set(delays)) > 1
    assert budgets.allow(THROTTLED, 0.0) and not budgets.allow(THROTTLED, THROTTLED.budget + 1)


@pytest.mark.parametrize("error", ["endpoint", "connect-timeout"])
def test_a_connection_that_cannot_be_made_is_one_unreachable_error(gateway, monkeypatch, error):
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    from drkit.errors import EndpointUnreachableError

    exc = (EndpointConnectionError(endpoint_url="https://ec2.us-east-1.amazonaws.com") if error == "endpoint"
           else ConnectTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com"))

    def refuse(**_):
        raise exc

    monkeypatch.setattr(gateway.client("ec2", REGION), "describe_vpcs", refuse)
    with pytest.raises(EndpointUnreachableError, match="cannot reach AWS ec2 in us-east-1"):
        gateway.call("ec2", REGION, "describe_vpcs")
