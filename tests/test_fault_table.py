"""The fault table: one lost answer on each mutating operation of the whole stack, in provision and
in teardown. AWS carries the call out and the client gets a 500 (what a timeout after commit looks
like). Each run must converge in one go with no duplicate, and teardown must leave nothing --
proved by reading AWS back with boto3. Also: throttling at 15% over the whole stack.

Each row runs only the step family that makes the operation, with the steps it depends on, so the
table stays fast; `test_the_table_covers_every_mutating_operation` keeps it complete: a new
mutating call in any step fails it until the call has its row.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from drkit.aws import is_mutating
from drkit.sandbox.faults import armed_faults
from steps import all_steps
from tests.conftest import DR, PRIMARY, reader

# (service, API operation) -> the step family that makes it. Provision and teardown separately.
PROVISION = {
    ("ec2", "CreateVpc"): "ensure_vpc",
    ("ec2", "ModifyVpcAttribute"): "ensure_vpc",
    ("ec2", "CreateSubnet"): "ensure_vpc",
    ("ec2", "CreateInternetGateway"): "ensure_vpc",
    ("ec2", "AttachInternetGateway"): "ensure_vpc",
    ("ec2", "AllocateAddress"): "ensure_vpc",
    ("ec2", "CreateNatGateway"): "ensure_vpc",
    ("ec2", "CreateRouteTable"): "ensure_vpc",
    ("ec2", "CreateRoute"): "ensure_vpc",
    ("ec2", "AssociateRouteTable"): "ensure_vpc",
    ("ec2", "CreateSecurityGroup"): "ensure_security_groups",
    ("ec2", "AuthorizeSecurityGroupIngress"): "ensure_security_groups",
    ("ec2", "RevokeSecurityGroupEgress"): "ensure_security_groups",
    ("secretsmanager", "CreateSecret"): "ensure_db_secret",
    ("rds", "CreateDBSubnetGroup"): "ensure_global_cluster",
    ("rds", "CreateGlobalCluster"): "ensure_global_cluster",
    ("rds", "CreateDBCluster"): "ensure_replica",
    ("rds", "CreateDBInstance"): "ensure_replica",
    ("dynamodb", "CreateTable"): "ensure_global_table",
    ("dynamodb", "UpdateTable"): "ensure_global_table",
    ("dynamodb", "UpdateContinuousBackups"): "ensure_global_table",
    ("dynamodb", "TagResource"): "ensure_global_table",
    ("s3", "CreateBucket"): "ensure_bucket",
    ("s3", "PutBucketVersioning"): "ensure_bucket",
    ("s3", "PutBucketEncryption"): "ensure_bucket",
    ("s3", "PutPublicAccessBlock"): "ensure_bucket",
    ("s3", "PutBucketPolicy"): "ensure_bucket",
    ("iam", "CreateRole"): "ensure_replication_role",
    ("iam", "PutRolePolicy"): "ensure_replication_role",
    ("s3", "PutBucketReplication"): "ensure_bucket_replication",
    ("logs", "CreateLogGroup"): "ensure_function",
    ("logs", "PutRetentionPolicy"): "ensure_function",
    ("lambda", "CreateFunction"): "ensure_function",
    ("apigateway", "CreateRestApi"): "ensure_rest_api",
    ("apigateway", "CreateResource"): "ensure_rest_api",
    ("apigateway", "PutMethod"): "ensure_rest_api",
    ("apigateway", "PutIntegration"): "ensure_rest_api",
    ("apigateway", "CreateDeployment"): "ensure_rest_api",
    ("apigateway", "CreateStage"): "ensure_rest_api",
    ("apigateway", "UpdateStage"): "ensure_rest_api",
    ("lambda", "AddPermission"): "ensure_rest_api",
    ("route53", "CreateHostedZone"): "ensure_hosted_zone",
    ("route53", "ChangeTagsForResource"): "ensure_hosted_zone",
    ("acm", "RequestCertificate"): "ensure_certificate",
    ("route53", "ChangeResourceRecordSets"): "ensure_certificate",
    ("apigateway", "CreateDomainName"): "ensure_custom_domain",
    ("apigateway", "CreateBasePathMapping"): "ensure_custom_domain",
    ("route53", "CreateHealthCheck"): "ensure_failover_records",
    ("cloudwatch", "PutMetricAlarm"): "ensure_failover_records",
    ("kms", "CreateKey"): "ensure_alerts",
    ("kms", "EnableKeyRotation"): "ensure_alerts",
    ("kms", "CreateAlias"): "ensure_alerts",
    ("sns", "CreateTopic"): "ensure_alerts",
    ("cloudwatch", "PutDashboard"): "ensure_dashboard",
}
TEARDOWN = {
    ("ec2", "DeleteVpc"): "ensure_vpc",
    ("ec2", "DeleteSubnet"): "ensure_vpc",
    ("ec2", "DetachInternetGateway"): "ensure_vpc",
    ("ec2", "DeleteInternetGateway"): "ensure_vpc",
    ("ec2", "ReleaseAddress"): "ensure_vpc",
    ("ec2", "DeleteNatGateway"): "ensure_vpc",
    ("ec2", "DisassociateRouteTable"): "ensure_vpc",
    ("ec2", "DeleteRouteTable"): "ensure_vpc",
    ("ec2", "DeleteSecurityGroup"): "ensure_security_groups",
    ("secretsmanager", "RemoveRegionsFromReplication"): "ensure_db_secret",
    ("secretsmanager", "DeleteSecret"): "ensure_db_secret",
    ("rds", "RemoveFromGlobalCluster"): "ensure_replica",
    ("rds", "DeleteDBInstance"): "ensure_replica",
    ("rds", "DeleteDBCluster"): "ensure_replica",
    ("rds", "DeleteGlobalCluster"): "ensure_global_cluster",
    ("rds", "DeleteDBSubnetGroup"): "ensure_global_cluster",
    ("dynamodb", "UpdateTable"): "ensure_global_table",
    ("dynamodb", "DeleteTable"): "ensure_global_table",
    ("s3", "DeleteBucketReplication"): "ensure_bucket_replication",
    ("s3", "DeleteBucket"): "ensure_bucket",
    ("iam", "DeleteRolePolicy"): "ensure_replication_role",
    ("iam", "DeleteRole"): "ensure_replication_role",
    ("lambda", "DeleteFunction"): "ensure_function",
    ("logs", "DeleteLogGroup"): "ensure_function",
    ("lambda", "RemovePermission"): "ensure_rest_api",
    ("apigateway", "DeleteRestApi"): "ensure_rest_api",
    ("apigateway", "DeleteBasePathMapping"): "ensure_custom_domain",
    ("apigateway", "DeleteDomainName"): "ensure_custom_domain",
    ("acm", "DeleteCertificate"): "ensure_certificate",
    ("route53", "ChangeResourceRecordSets"): "ensure_certificate",
    ("route53", "DeleteHostedZone"): "ensure_hosted_zone",
    ("route53", "DeleteHealthCheck"): "ensure_failover_records",
    ("cloudwatch", "DeleteAlarms"): "ensure_failover_records",
    ("kms", "DeleteAlias"): "ensure_alerts",
    ("kms", "ScheduleKeyDeletion"): "ensure_alerts",
    ("sns", "DeleteTopic"): "ensure_alerts",
    ("cloudwatch", "DeleteDashboards"): "ensure_dashboard",
}


def with_prerequisites(family: str) -> list:
    """The steps of `family` and, transitively, every step they depend on, in pipeline order."""
    steps = all_steps()
    by_key = {s.key: s for s in steps}
    wanted = {s.key for s in steps if s.name == family}
    frontier = list(wanted)
    while frontier:
        for dep in by_key[frontier.pop()].depends_on():
            if dep not in wanted:
                wanted.add(dep)
                frontier.append(dep)
    return [s for s in steps if s.key in wanted]


def api_name(service: str, operation: str) -> str:
    return reader(service).meta.method_to_api_mapping[operation]


def inventory(env: str) -> Counter:
    """Everything this env's drkit tags or names mark, read back from AWS, per kind and region."""
    found: Counter = Counter()
    tag_filters = [{"Name": "tag:ManagedBy", "Values": ["drkit"]}, {"Name": "tag:Environment", "Values": [env]}]
    for region in (PRIMARY, DR):
        ec2 = reader("ec2", region)
        for kind, call, key in (("vpc", ec2.describe_vpcs, "Vpcs"), ("subnet", ec2.describe_subnets, "Subnets"),
                                ("igw", ec2.describe_internet_gateways, "InternetGateways"),
                                ("eip", ec2.describe_addresses, "Addresses"),
                                ("route_table", ec2.describe_route_tables, "RouteTables"),
                                ("security_group", ec2.describe_security_groups, "SecurityGroups")):
            found[(kind, region)] += len(call(Filters=tag_filters)[key])
        nats = ec2.describe_nat_gateways(Filters=tag_filters)["NatGateways"]
        found[("nat", region)] += len([n for n in nats if n["State"] != "deleted"])
        rds = reader("rds", region)
        found[("db_cluster", region)] += len([c for c in rds.describe_db_clusters()["DBClusters"]
                                              if c["DBClusterIdentifier"].endswith(env)])
        found[("db_instance", region)] += len([i for i in rds.describe_db_instances()["DBInstances"]
                                               if i["DBInstanceIdentifier"].endswith(f"{env}-1")])
        found[("db_subnet_group", region)] += len([g for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]
                                                   if g["DBSubnetGroupName"].endswith(env)])
        found[("global_cluster", region)] += len([g for g in rds.describe_global_clusters()["GlobalClusters"]
                                                  if g["GlobalClusterIdentifier"].endswith(env)])
        found[("table", region)] += len([t for t in reader("dynamodb", region).list_tables()
                                         ["TableNames"] if t.endswith(env)])
        found[("secret", region)] += len([s for s in reader("secretsmanager", region)
                                          .list_secrets(IncludePlannedDeletion=True)["SecretList"]
                                          if f"/{env}/" in s["Name"]])
        found[("function", region)] += len([f for f in reader("lambda", region).list_functions()
                                            ["Functions"] if f["FunctionName"].endswith(env)])
        found[("log_group", region)] += len([g for g in reader("logs", region).describe_log_groups(
            logGroupNamePrefix="/aws/lambda/")["logGroups"] if g["logGroupName"].endswith(env)])
        gateway = reader("apigateway", region)
        found[("rest_api", region)] += len([a for a in gateway.get_rest_apis()["items"] if a["name"].endswith(env)])
        found[("domain_name", region)] += len([d for d in gateway.get_domain_names()["items"]
                                               if f"payments-{env}." in d["domainName"]])
        found[("certificate", region)] += len([c for c in reader("acm", region).list_certificates()
                                               ["CertificateSummaryList"] if f"payments-{env}." in c["DomainName"]])
    found[("bucket", "any")] += len([b for b in reader("s3").list_buckets()["Buckets"]
                                     if b["Name"].endswith(env)])
    found[("health_check", "any")] += len([c for c in reader("route53").list_health_checks()["HealthChecks"]
                                           if c["CallerReference"].startswith(f"drkit-{env}-")])
    for region in (PRIMARY, DR):
        found[("alarm", region)] += len([a for a in reader("cloudwatch", region).describe_alarms()
                                         ["MetricAlarms"] if a["AlarmName"].endswith(f"-{env}")])
    for region in (PRIMARY, DR):
        kms = reader("kms", region)
        found[("kms_key", region)] += len([k for k in kms.list_keys()["Keys"] if kms.describe_key(KeyId=k["KeyId"])
                                           ["KeyMetadata"]["KeyState"] == "Enabled" and f" {env} " in
                                           kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"].get("Description", "")])
        found[("topic", region)] += len([t for t in reader("sns", region).list_topics()["Topics"]
                                         if t["TopicArn"].endswith(f"-{env}")])
        found[("dashboard", region)] += len([d for d in reader("cloudwatch", region)
                                             .list_dashboards()["DashboardEntries"] if d["DashboardName"].endswith(f"-{env}")])
    found[("hosted_zone", "any")] += len([z for z in reader("route53").list_hosted_zones()["HostedZones"]
                                          if z["Name"].startswith(f"payments-{env}.")])
    found[("role", "any")] += len([r for r in reader("iam").list_roles()["Roles"]
                                   if r["RoleName"].endswith(env)])
    return +found  # drop zero counts


_EXPECTED: dict[str, Counter] = {}


def expected_inventory(make_runner, family: str) -> Counter:
    """What a clean provision of `family` (with its prerequisites) leaves, measured once."""
    if family not in _EXPECTED:
        env = f"x{len(_EXPECTED)}"
        runner = make_runner(env, steps=with_prerequisites(family), force=True)
        assert runner.provision().ok
        _EXPECTED[family] = inventory(env)
        assert runner.teardown().ok and inventory(env) == Counter()
    return _EXPECTED[family]


def run_ok(outcome: Any) -> None:
    assert outcome.ok, [f"{r.step.key}: {r.error}" for r in outcome.failed]


@pytest.mark.parametrize("service,operation", sorted(PROVISION), ids=lambda v: v)
def test_one_lost_answer_in_provision_converges_in_one_run(moto, make_runner, service, operation):
    family = PROVISION[(service, operation)]
    expected = expected_inventory(make_runner, family)
    runner = make_runner("f", steps=with_prerequisites(family), force=True)
    with armed_faults() as faults:
        faults.lost_response(service, operation)
        run_ok(runner.provision())
        assert [i["operation"] for i in faults.injected()] == [operation], "the fault never fired"
    assert inventory("f") == expected, "a duplicate or a missing resource"
    assert runner.verify().changes == []
    run_ok(runner.teardown())
    assert inventory("f") == Counter()


@pytest.mark.parametrize("service,operation", sorted(TEARDOWN), ids=lambda v: v)
def test_one_lost_answer_in_teardown_leaves_nothing(moto, make_runner, service, operation):
    family = TEARDOWN[(service, operation)]
    runner = make_runner("t", steps=with_prerequisites(family), force=True)
    run_ok(runner.provision())
    with armed_faults() as faults:
        faults.lost_response(service, operation)
        run_ok(runner.teardown())
        assert [i["operation"] for i in faults.injected()] == [operation], "the fault never fired"
    assert inventory("t") == Counter()


def test_whole_stack_under_15_percent_throttling(moto, make_runner):
    runner = make_runner("th", steps=all_steps(), force=True)
    with armed_faults() as faults:
        faults.throttle(0.15, seed=7)
        run_ok(runner.provision())
        assert runner.provision().changes == []
        run_ok(runner.teardown())
        assert len(faults.injected()) > 20
    assert inventory("th") == Counter()


def test_the_table_covers_every_mutating_operation(moto, make_runner):
    """A whole-stack provision and teardown: every mutating call it makes has its row above."""
    runner = make_runner("cov", steps=all_steps(), force=True)
    run_ok(runner.provision())
    provisioned = {(s, api_name(s, op)) for s, _, op in runner.aws.stats.mutating_calls if is_mutating(op)}
    runner.aws.stats.__init__()
    run_ok(runner.teardown())
    torn_down = {(s, api_name(s, op)) for s, _, op in runner.aws.stats.mutating_calls}
    assert sorted(provisioned - set(PROVISION)) == [], "add these to PROVISION"
    assert sorted(torn_down - set(TEARDOWN)) == [], "add these to TEARDOWN"

