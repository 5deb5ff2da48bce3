"""`drkit iam-policy`: every call drkit makes is allowed by the policy it prints, on drkit's own
resources, and nothing is allowed on "*" that AWS can scope."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from drkit.cli import main
from drkit.config import build_config
from drkit.iam_policy import NEEDS_STAR_RESOURCE, OPERATION_ACTIONS, allowed_actions, policy
from drkit.iam_policy_split import MANAGED_POLICY_LIMIT, policy_size, split
from steps import all_steps

ROOT = Path(__file__).resolve().parents[1]


def unmapped_or_denied(calls, document) -> list[str]:
    allowed = allowed_actions(document)
    problems = []
    for call in sorted(calls):
        service, operation = call.split(".", 1)
        actions = OPERATION_ACTIONS.get((service, operation))
        if actions is None:
            problems.append(f"{call}: no row in drkit.iam_policy.OPERATION_ACTIONS")
        else:
            problems += [f"{call}: {a} is not allowed" for a in actions if a not in allowed]
    return problems


def test_the_whole_lifecycle_makes_only_calls_the_policy_allows(moto, make_runner):
    runner = make_runner("iam", steps=all_steps())
    assert runner.provision().ok
    assert runner.verify().ok
    verified = runner.verify(deep=True)
    assert verified.probes and all(p.ok for p in verified.probes), [p.describe() for p in verified.probes]
    assert runner.provision().ok
    assert runner.teardown().ok  # the secret is scheduled for deletion ...
    # Only the secret: moto refuses to recreate a cluster in the same minute (its automated
    # snapshot's name is taken), which real AWS does not.
    again = runner.provision(["ensure_db_secret"])
    assert again.ok, [(r.step.key, r.error) for r in again.results if r.error]  # ... and restored by the next provision
    runner.force = True
    assert runner.teardown().ok
    calls = set(runner.aws.stats.by_operation)
    assert {"dynamodb.update_table", "secretsmanager.restore_secret", "s3.put_bucket_replication",
            "cloudwatch.get_metric_statistics", "kms.describe_key", "kms.list_aliases", "s3.delete_object"} <= calls
    assert unmapped_or_denied(calls, policy(runner.config)) == []


def test_an_unmapped_call_fails_the_check():
    document = policy(build_config({}, environ={}))
    assert unmapped_or_denied({"ec2.run_instances"}, document) == [
        "ec2.run_instances: no row in drkit.iam_policy.OPERATION_ACTIONS"]


# Calls the lifecycle above does not make (drift repairs): found in the source instead.
_LITERAL_CALL = re.compile(
    r"""(?:\.call|\.paginate)\(\s*"(\w+)",\s*(?:[\w.\[\]()"]+,\s*)?"(\w+)\"""")


def test_every_call_written_in_the_steps_has_a_row():
    calls = set()
    for path in [*ROOT.glob("steps/*.py"), ROOT / "drkit" / "ec2.py", ROOT / "drkit" / "status.py",
                 ROOT / "drkit" / "region_switch.py", *ROOT.glob("drkit/runbook/*.py")]:
        for service, operation in _LITERAL_CALL.findall(path.read_text()):
            calls.add(f"{service}.{operation}")
    # Built at run time: f"{...}_security_group_{direction}", and the route repair's operation.
    calls |= {f"ec2.{verb}_security_group_{d}" for verb in ("authorize", "revoke") for d in ("ingress", "egress")}
    calls |= {"ec2.create_route", "ec2.replace_route"}
    calls |= {f"ec2.{kind}" for kind in ("describe_vpcs", "describe_subnets", "describe_internet_gateways",
                                          "describe_addresses", "describe_nat_gateways", "describe_route_tables",
                                          "describe_security_groups")}
    assert len(calls) > 80
    assert {"rds.switchover_global_cluster", "rds.failover_global_cluster", "rds.remove_from_global_cluster",
            "rds.copy_db_cluster_snapshot", "lambda.get_account_settings", "sts.get_caller_identity"} <= calls
    assert unmapped_or_denied(calls, policy(build_config({}, environ={}))) == []


AWS_HAS_NO_RESOURCE_FOR = {"rds:DescribeOrderableDBInstanceOptions", "cloudwatch:GetMetricStatistics", "kms:ListAliases",
                           "acm:ListCertificates", "route53:ListHostedZonesByName", "route53:CreateHostedZone",
                           "route53:ListHealthChecks", "route53:CreateHealthCheck", "route53:TestDNSAnswer",
                           "cloudwatch:PutMetricData", "kms:CreateKey", "kms:ListKeys", "lambda:GetAccountSettings"}


@pytest.mark.parametrize("account", ["*", "123456789012"])
def test_no_wildcard_action_and_star_resources_only_where_aws_requires_them(account):
    document = policy(build_config({"env": "prod"}, environ={}), account)
    assert document["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in document["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            service, _, name = action.partition(":")
            assert action != "*" and name and "*" not in name, action
        resources = statement["Resource"]
        if "*" in resources:
            assert resources == ["*"] and set(statement["Action"]) <= NEEDS_STAR_RESOURCE, statement["Sid"]
            # AWS scopes none of these to a resource type (Service Authorization Reference).
            assert all(a.startswith("ec2:Describe") or a in AWS_HAS_NO_RESOURCE_FOR for a in statement["Action"])
        else:
            for arn in resources:
                assert arn.startswith(("arn:aws:",)), arn
                # S3, API Gateway and Route 53 ARNs name no account.
                if account != "*" and not any(s in arn for s in (":s3:::", ":apigateway:", ":route53:::")):
                    assert f":{account}:" in arn, arn


def test_resources_are_drkits_names_in_drkits_regions_and_partition():
    document = policy(build_config({"env": "prod", "primary_region": "cn-north-1", "dr_region": "cn-northwest-1"},
                                   environ={}), "123456789012")
    arns = [a for s in document["Statement"] for a in s["Resource"] if a != "*"]
    assert all(a.startswith("arn:aws-cn:") for a in arns)
    assert {a.split(":")[3] for a in arns} <= {"", "cn-north-1", "cn-northwest-1"}
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["Buckets"]["Resource"] == ["arn:aws-cn:s3:::dr-primary-bucket-prod", "arn:aws-cn:s3:::dr-secondary-bucket-prod"]
    assert "arn:aws-cn:rds::123456789012:global-cluster:aurora-global-prod" in by_sid["Aurora"]["Resource"]
    assert by_sid["PassReplicationRoleToS3"]["Condition"] == {"StringEquals": {"iam:PassedToService": "s3.amazonaws.com"}}
    assert by_sid["PassReplicationRoleToS3"]["Resource"] == ["arn:aws-cn:iam::123456789012:role/s3-replication-role-prod"]
    assert by_sid["DynamoDbReplicationServiceLinkedRole"]["Condition"] == {
        "StringEquals": {"iam:AWSServiceName": "replication.dynamodb.amazonaws.com"}}
    assert by_sid["Ec2OnDrkitTagged"]["Condition"]["StringEquals"]["aws:ResourceTag/Environment"] == "prod"


def test_cli_prints_the_policy_for_env_and_regions_and_refuses_a_bad_account():
    runner = CliRunner()
    result = runner.invoke(main, ["iam-policy", "--env", "staging", "--dr-region", "us-west-2",
                                  "--account-id", "123456789012"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    arns = [a for s in document["Statement"] for a in s["Resource"]]
    assert "arn:aws:dynamodb:us-west-2:123456789012:table/payment-transactions-staging" in arns
    bad = runner.invoke(main, ["iam-policy", "--account-id", "12"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "--account-id" in bad.output


def test_runbook_snapshots_and_global_cluster_actions_are_on_drkits_arns_only():
    document = policy(build_config({"env": "prod"}, environ={}), "123456789012")
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    snapshots = by_sid["AuroraFailoverSnapshots"]
    assert snapshots["Action"] == ["rds:AddTagsToResource", "rds:CopyDBClusterSnapshot", "rds:DescribeDBClusterSnapshots"]
    assert snapshots["Resource"] == [
        "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:rds:unplanned-global-failover-aurora-primary-prod-*",
        "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:drkit-ugf-aurora-primary-prod-*",
        "arn:aws:rds:us-east-2:123456789012:cluster-snapshot:rds:unplanned-global-failover-aurora-dr-prod-*",
        "arn:aws:rds:us-east-2:123456789012:cluster-snapshot:drkit-ugf-aurora-dr-prod-*"]
    granting = {s["Sid"] for s in document["Statement"] if "rds:CopyDBClusterSnapshot" in s["Action"]}
    assert granting == {"AuroraFailoverSnapshots"}
    # Switchover and failover authorize on the global cluster and the target cluster (both required).
    for action in ("rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster", "rds:RemoveFromGlobalCluster"):
        resources = [r for s in document["Statement"] if action in s["Action"] for r in s["Resource"]]
        assert "arn:aws:rds::123456789012:global-cluster:aurora-global-prod" in resources
        assert {"arn:aws:rds:us-east-1:123456789012:cluster:aurora-primary-prod",
                "arn:aws:rds:us-east-2:123456789012:cluster:aurora-dr-prod"} <= set(resources)
    metric = [s for s in document["Statement"] if "cloudwatch:PutMetricData" in s["Action"]]
    assert [s["Condition"] for s in metric] == [{"StringEquals": {"cloudwatch:namespace": "drkit/RegionSwitch"}}]


@pytest.mark.parametrize("limit", [MANAGED_POLICY_LIMIT, 2000])
def test_split_parts_fit_the_limit_and_together_are_the_whole_policy(limit):
    document = policy(build_config({"env": "production"}, environ={}), "123456789012")
    assert policy_size(document) > MANAGED_POLICY_LIMIT  # why --split exists
    parts = split(document, limit)
    assert len(parts) > 1 and all(policy_size(p) <= limit for p in parts), [policy_size(p) for p in parts]
    assert [s for p in parts for s in p["Statement"]] == document["Statement"]
    assert all(p["Version"] == "2012-10-17" for p in parts)


def test_split_refuses_a_statement_over_the_limit_and_size_ignores_white_space():
    from drkit.errors import DrkitError

    document = {"Version": "2012-10-17", "Statement": [{"Sid": "Big", "Effect": "Allow", "Action": ["s3:GetObject"],
                                                         "Resource": [f"arn:aws:s3:::b/{i}" for i in range(300)]}]}
    assert policy_size(document) == len(json.dumps(document, separators=(",", ":")))
    with pytest.raises(DrkitError, match="'Big' alone"):
        split(document)


def test_cli_split_prints_named_managed_policies_and_the_default_stays_one_document():
    runner = CliRunner()
    whole = runner.invoke(main, ["iam-policy", "--env", "staging", "--account-id", "123456789012"])
    parts = runner.invoke(main, ["iam-policy", "--env", "staging", "--account-id", "123456789012", "--split"])
    assert whole.exit_code == 0 and parts.exit_code == 0, parts.output
    document, named = json.loads(whole.output), json.loads(parts.output)
    assert set(document) == {"Version", "Statement"}
    assert [p["PolicyName"] for p in named] == [f"drkit-operator-staging-{i}" for i in range(1, len(named) + 1)]
    assert len(named) <= 10  # a role's default quota of attached managed policies
    assert [s for p in named for s in p["PolicyDocument"]["Statement"]] == document["Statement"]
    assert all(policy_size(p["PolicyDocument"]) <= MANAGED_POLICY_LIMIT for p in named)


def test_the_s3_state_backend_makes_only_calls_the_policy_allows_on_its_own_objects(moto, clock, make_runner,
                                                                                   tmp_path, monkeypatch):
    """With `--state s3://...` the state, lock, audit log and runbook journals are S3 objects under
    the prefix, in the home bucket and (journals written while it is down) the replica."""
    from fnmatch import fnmatchcase

    import boto3

    from steps.secrets import EnsureDbSecret
    from tests.test_s3_state import HOME, make_buckets

    monkeypatch.chdir(tmp_path)
    make_buckets(clock)
    runner = make_runner(state=f"s3://{HOME}/prod", steps=[EnsureDbSecret()])
    assert runner.provision().ok
    runner.storage.journal("failover", "r1").append({"step": "noted"})
    assert runner.storage.read_records(runner.storage.streams("journals/failover")[0])
    calls = set(runner.storage.aws.stats.by_operation)
    assert {"s3.get_object", "s3.put_object", "s3.delete_object", "s3.list_objects_v2"} <= calls, calls
    document = policy(runner.config, "123456789012")
    assert unmapped_or_denied(calls, document) == []
    state = {s["Sid"]: s for s in document["Statement"]}["StateObjects"]
    keys = [o["Key"] for o in boto3.client("s3", region_name="us-east-2").list_objects_v2(Bucket=HOME)["Contents"]]
    assert any("journals/failover" in k for k in keys) and any(k.endswith("state.json") for k in keys)
    for key in keys:
        assert any(fnmatchcase(f"arn:aws:s3:::{HOME}/{key}", r) for r in state["Resource"]), key
    assert not any(fnmatchcase(f"arn:aws:s3:::{HOME}/other-env/state.json", r) for r in state["Resource"])
