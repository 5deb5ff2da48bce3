"""ensure_rest_api, ensure_hosted_zone, ensure_certificate and ensure_custom_domain against moto
and drkit's sandbox, proved by reading AWS back with boto3."""

from __future__ import annotations

import json

import pytest

from drkit.errors import DrkitError
from drkit.outputs import flat_outputs
from drkit.sandbox.extensions import active_timings
from tests.compute_stack import client, lose_answers, make_compute_runner

ALL = None  # every step of the runner
PRIMARY = ["ensure_vpc", "ensure_security_groups", "ensure_global_table", "ensure_function", "ensure_rest_api",
           "ensure_hosted_zone", "ensure_certificate", "ensure_custom_domain"]
HOST = "api.payments-test.example.com"


@pytest.fixture
def runner(moto, tmp_path, clock):
    return make_compute_runner(tmp_path, clock, roles=("primary",))


@pytest.fixture
def both(moto, tmp_path, clock):
    return make_compute_runner(tmp_path, clock)


def api_of(role: str = "primary") -> dict:
    apis = client("apigateway", role).get_rest_apis()["items"]
    return next(a for a in apis if a["name"] == f"payment-api-{role}-test")


def routes(api_id: str, role: str = "primary") -> dict:
    gateway = client("apigateway", role)
    found = {}
    for resource in gateway.get_resources(restApiId=api_id)["items"]:
        for method in resource.get("resourceMethods", {}):
            integration = gateway.get_method(restApiId=api_id, resourceId=resource["id"], httpMethod=method)
            found[(resource["path"], method)] = integration["methodIntegration"]
    return found


def statements(role: str = "primary") -> dict:
    policy = json.loads(client("lambda", role).get_policy(FunctionName=f"payment-processor-{role}-test")["Policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def zone_of() -> dict:
    zones = client("route53").list_hosted_zones_by_name(DNSName="payments-test.example.com.")["HostedZones"]
    return next(z for z in zones if z["Name"] == "payments-test.example.com.")


def test_provision_serves_one_public_name_from_each_region(both):
    outcome = both.provision()
    assert outcome.ok, [(r.step.key, r.error) for r in outcome.failed]
    zone = zone_of()
    zone_id = zone["Id"].split("/")[-1]
    zone_tags = client("route53").list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)
    assert {t["Key"]: t["Value"] for t in zone_tags["ResourceTagSet"]["Tags"]}["ManagedBy"] == "drkit"

    for role, region in (("primary", "us-east-1"), ("dr", "us-east-2")):
        api = api_of(role)
        assert api["endpointConfiguration"]["types"] == ["REGIONAL"] and api["tags"]["drkit:step"] == "ensure_rest_api"
        function_arn = client("lambda", role).get_function(
            FunctionName=f"payment-processor-{role}-test")["Configuration"]["FunctionArn"]
        uri = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
        found = routes(api["id"], role)
        assert set(found) == {("/payment", "POST"), ("/health", "GET")}
        assert all(i["type"] == "AWS_PROXY" and i["uri"] == uri and i["httpMethod"] == "POST" for i in found.values())

        stage = client("apigateway", role).get_stage(restApiId=api["id"], stageName="prod")
        assert stage["methodSettings"]["*/*"]["throttlingBurstLimit"] == 100
        assert stage["methodSettings"]["*/*"]["throttlingRateLimit"] == 50.0
        deployment = client("apigateway", role).get_deployment(restApiId=api["id"], deploymentId=stage["deploymentId"])
        assert deployment["description"].startswith("drkit definition sha256:")

        arns = sorted(s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in statements(role).values())
        assert arns == [f"arn:aws:execute-api:{region}:123456789012:{api['id']}/prod/GET/health",
                        f"arn:aws:execute-api:{region}:123456789012:{api['id']}/prod/POST/payment"]
        assert all(s["Principal"] == {"Service": "apigateway.amazonaws.com"} for s in statements(role).values())

        acm = client("acm", role)
        certificates = acm.list_certificates(CertificateStatuses=["ISSUED", "PENDING_VALIDATION"])["CertificateSummaryList"]
        assert [(c["DomainName"], c["Status"]) for c in certificates] == [(HOST, "ISSUED")]
        domain = client("apigateway", role).get_domain_name(domainName=HOST)
        assert domain["regionalCertificateArn"] == certificates[0]["CertificateArn"]  # this region's certificate
        assert domain["endpointConfiguration"]["types"] == ["REGIONAL"] and domain["securityPolicy"] == "TLS_1_2"
        mappings = client("apigateway", role).get_base_path_mappings(domainName=HOST)["items"]
        assert [(m["restApiId"], m["stage"]) for m in mappings] == [(api["id"], "prod")]

    records = client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert len([r for r in records if r["Type"] == "CNAME"]) == 1  # both certificates ask for the same one

    flat = flat_outputs(both.config, both.outputs())
    assert flat["primary_api_endpoint"] == f"https://{api_of()['id']}.execute-api.us-east-1.amazonaws.com/prod/payment"
    assert flat["dr_api_endpoint"].startswith(f"https://{api_of('dr')['id']}.execute-api.us-east-2.amazonaws.com/")
    assert flat["primary_lambda_function_name"] == "payment-processor-primary-test"
    assert flat["dr_lambda_function_name"] == "payment-processor-dr-test"
    assert flat["route53_zone_id"] == zone_id and flat["route53_fqdn"] == HOST
    assert flat["public_api_url"] == f"https://{HOST}/payment"
    assert flat["primary_custom_domain_target"].endswith(".execute-api.us-east-1.amazonaws.com")
    assert flat["dr_custom_domain_target"].endswith(".execute-api.us-east-2.amazonaws.com")

    assert both.verify().changes == []
    both.aws.stats.__init__()
    assert both.provision().changes == []
    assert both.aws.stats.mutating == 0

    assert both.teardown().ok
    for role in ("primary", "dr"):
        assert [a for a in client("apigateway", role).get_rest_apis()["items"]] == []
        assert client("apigateway", role).get_domain_names()["items"] == []
        assert client("acm", role).list_certificates()["CertificateSummaryList"] == []
        assert client("lambda", role).list_functions()["Functions"] == []
    assert client("route53").list_hosted_zones()["HostedZones"] == []


def test_a_new_deployment_only_when_the_definition_changed(runner):
    assert runner.provision(PRIMARY).ok
    api_id = api_of()["id"]
    gateway = client("apigateway")
    first = gateway.get_stage(restApiId=api_id, stageName="prod")["deploymentId"]
    health = next(r for r in gateway.get_resources(restApiId=api_id)["items"] if r["path"] == "/health")
    gateway.put_integration(restApiId=api_id, resourceId=health["id"], httpMethod="GET", type="MOCK")
    findings = runner.verify(PRIMARY).changes
    assert [(c.kind, c.attribute) for c in findings] == [("api_definition", "routes")]
    runner.aws.stats.__init__()
    assert runner.provision(PRIMARY).ok
    assert runner.aws.stats.by_operation["apigateway.create_deployment"] == 0  # same definition, same digest
    assert gateway.get_stage(restApiId=api_id, stageName="prod")["deploymentId"] == first
    assert routes(api_id)[("/health", "GET")]["type"] == "AWS_PROXY"


def test_a_removed_permission_and_throttling_are_restored(runner):
    assert runner.provision(PRIMARY).ok
    lam, api_id = client("lambda"), api_of()["id"]
    sid = next(iter(statements()))
    lam.remove_permission(FunctionName="payment-processor-primary-test", StatementId=sid)
    client("apigateway").update_stage(restApiId=api_id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "10000"}])
    findings = {(c.kind, c.attribute) for c in runner.verify(PRIMARY).changes}
    assert findings == {("lambda_permission", "source_arns"), ("api_stage", "throttling")}
    assert runner.provision(PRIMARY).ok
    assert sid in statements() and len(statements()) == 2
    assert runner.verify(PRIMARY).changes == []


def test_an_undelegated_zone_stops_with_the_ns_records_to_add(runner, clock):
    timings = active_timings()
    timings.acm_zones_delegated = False
    try:
        started = clock.monotonic()
        outcome = runner.provision(PRIMARY)
    finally:
        timings.acm_zones_delegated = True
    failed = {r.step.key: r.error for r in outcome.failed}
    error = failed["ensure_certificate:primary"]
    assert isinstance(error, DrkitError)
    servers = zone_of() and client("route53").get_hosted_zone(Id=zone_of()["Id"])["DelegationSet"]["NameServers"]
    assert "not delegated" in str(error) and all(ns in error.hint for ns in servers)
    assert clock.monotonic() - started < 3600  # gave up, never waited forever
    # Once delegated, the same run resumes and finishes.
    assert runner.provision(PRIMARY).ok


def test_the_caller_reference_is_in_the_state_before_the_zone_is_created(runner):
    seen = []

    def before(params, **_):
        state = json.loads(runner.config.state_path.read_text())
        seen.append((params["CallerReference"],
                     state["steps"]["ensure_hosted_zone:global"]["resources"]["zone-caller-reference"]["id"]))

    runner.aws.session.events.register("provide-client-params.route53.CreateHostedZone", before)
    assert runner.provision(["ensure_hosted_zone"]).ok
    assert len(seen) == 1 and seen[0][0] == seen[0][1]
    assert zone_of()["CallerReference"] == seen[0][0]
    assert runner.teardown(["ensure_hosted_zone"]).ok
    assert runner.provision(["ensure_hosted_zone"]).ok  # a new zone gets a new reference
    assert len(seen) == 2 and seen[1][0] != seen[0][0]


PROVISION_CALLS = [
    ("apigateway", "create_rest_api"), ("apigateway", "create_resource"), ("apigateway", "put_method"),
    ("apigateway", "put_integration"), ("apigateway", "create_deployment"), ("apigateway", "create_stage"),
    ("apigateway", "update_stage"), ("lambda", "add_permission"), ("route53", "create_hosted_zone"),
    ("route53", "change_tags_for_resource"), ("acm", "request_certificate"),
    ("route53", "change_resource_record_sets"), ("apigateway", "create_domain_name"),
    ("apigateway", "create_base_path_mapping"),
]
TEARDOWN_CALLS = [
    ("apigateway", "delete_base_path_mapping"), ("apigateway", "delete_domain_name"), ("acm", "delete_certificate"),
    ("route53", "change_resource_record_sets"), ("lambda", "remove_permission"), ("apigateway", "delete_rest_api"),
    ("route53", "delete_hosted_zone"),
]


@pytest.mark.parametrize("service,operation", PROVISION_CALLS)
def test_a_lost_answer_while_provisioning_converges_in_one_run_with_no_duplicate(runner, service, operation):
    lost = lose_answers(runner, service, operation)
    outcome = runner.provision(PRIMARY)
    assert outcome.ok, [(r.step.key, r.error) for r in outcome.failed]
    assert lost, f"{operation} was never called"
    assert len(client("apigateway").get_rest_apis()["items"]) == 1
    assert len(client("apigateway").get_deployments(restApiId=api_of()["id"])["items"]) == 1
    assert len(client("acm").list_certificates()["CertificateSummaryList"]) == 1
    assert len(client("route53").list_hosted_zones()["HostedZones"]) == 1
    assert len(statements()) == 2
    assert runner.verify(PRIMARY).changes == []


@pytest.mark.parametrize("service,operation", TEARDOWN_CALLS)
def test_a_lost_answer_while_tearing_down_leaves_nothing(runner, service, operation):
    assert runner.provision(PRIMARY).ok
    lost = lose_answers(runner, service, operation)
    outcome = runner.teardown()
    assert outcome.ok, [(r.step.key, r.error) for r in outcome.failed]
    assert lost, f"{operation} was never called"
    assert client("apigateway").get_rest_apis()["items"] == []
    assert client("apigateway").get_domain_names()["items"] == []
    assert client("acm").list_certificates()["CertificateSummaryList"] == []
    assert client("route53").list_hosted_zones()["HostedZones"] == []
