"""Contract: a DNS-validated ACM certificate stays PENDING_VALIDATION until its validation CNAME
is resolvable in a (delegated) public hosted zone, then becomes ISSUED (acm_validation.py).
https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html"""

from __future__ import annotations

import boto3
import pytest

from drkit.sandbox.extensions import active_timings

DOMAIN = "api.payments-c.example.com"


@pytest.fixture
def pending(aws):
    aws.acm_validation = 0.05
    acm, route53 = boto3.client("acm", region_name="us-east-2"), boto3.client("route53")
    zone = route53.create_hosted_zone(Name="payments-c.example.com", CallerReference="c")["HostedZone"]["Id"]
    arn = acm.request_certificate(DomainName=DOMAIN, ValidationMethod="DNS")["CertificateArn"]
    yield acm, route53, zone, arn
    aws.acm_zones_delegated = True


def status(acm, arn):
    return acm.describe_certificate(CertificateArn=arn)["Certificate"]["Status"]


def add_record(acm, route53, zone, arn, value=None):
    record = acm.describe_certificate(CertificateArn=arn)["Certificate"]["DomainValidationOptions"][0]["ResourceRecord"]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT",
        "ResourceRecordSet": {"Name": record["Name"], "Type": "CNAME", "TTL": 300,
                              "ResourceRecords": [{"Value": value or record["Value"]}]}}]})


def test_pending_without_its_record_then_issued_a_while_after_it_exists(pending, sandbox_clock, wait_until):
    acm, route53, zone, arn = pending
    sandbox_clock.advance(1.0)
    assert status(acm, arn) == "PENDING_VALIDATION"
    add_record(acm, route53, zone, arn)
    assert status(acm, arn) == "PENDING_VALIDATION"  # ACM sees it a little later
    assert wait_until(lambda: status(acm, arn) == "ISSUED")


def test_a_record_with_another_value_does_not_validate(pending, sandbox_clock):
    acm, route53, zone, arn = pending
    add_record(acm, route53, zone, arn, value="_other.acm-validations.aws.")
    sandbox_clock.advance(1.0)
    assert status(acm, arn) == "PENDING_VALIDATION"


def test_a_zone_nobody_delegated_to_never_validates(pending, sandbox_clock):
    acm, route53, zone, arn = pending
    active_timings().acm_zones_delegated = False
    add_record(acm, route53, zone, arn)
    sandbox_clock.advance(1.0)
    assert status(acm, arn) == "PENDING_VALIDATION"
