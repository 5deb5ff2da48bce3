"""The Aurora global database (ensure_db_secret, ensure_global_cluster, ensure_replica) against
moto and drkit's rds_global sandbox extension, proved by reading AWS back with boto3."""

from __future__ import annotations

import io
import json
import string
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from drkit.aws import RetryPolicy
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runner import Runner, audit_path
from steps.aurora import EnsureGlobalCluster, EnsureReplica
from steps.secrets import EnsureDbSecret, generate_master_password
from steps.security_groups import EnsureSecurityGroups
from steps.vpc import EnsureVpc
from tests.conftest import DR, PRIMARY, owned_filters

SECRET = "drkit/test/aurora-master-password"
VPC_OPERATIONS = {"describe_vpcs", "describe_subnets", "describe_internet_gateways", "describe_addresses",
                  "describe_nat_gateways", "describe_route_tables", "describe_vpc_attribute"}


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in drkit may catch it."""


def pipeline(**options: Any) -> list:
    return [EnsureVpc("primary"), EnsureVpc("dr"), EnsureSecurityGroups("primary"), EnsureSecurityGroups("dr"),
            EnsureDbSecret(), EnsureGlobalCluster(**options), EnsureReplica(**options)]


@pytest.fixture
def make_aurora_runner(tmp_path: Path, clock) -> Callable[..., Runner]:
    def factory(env: str = "test", *, steps: list | None = None, log: Any = None, force: bool = False) -> Runner:
        config = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json")}, environ={})
        return Runner(config, pipeline() if steps is None else steps, clock=clock,
                      log=log or make_logger("json", level="warning"), retry=RetryPolicy(botocore_max_attempts=1),
                      force=force)

    return factory


def rds(region: str) -> Any:
    return boto3.client("rds", region_name=region)


def secrets(region: str = PRIMARY) -> Any:
    return boto3.client("secretsmanager", region_name=region)


def tags_of(tag_list: list[dict]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list}


def drkit_tags(role: str, step: str, key: str, name: str) -> dict[str, str]:
    return {"Name": name, "Environment": "test", "Project": "DisasterRecovery", "ManagedBy": "drkit",
            "DR-Role": role, "drkit:step": step, "drkit:resource": key}


def cluster(region: str, name: str) -> dict:
    return rds(region).describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]


def instance(region: str, name: str) -> dict:
    return rds(region).describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]


def global_cluster() -> dict:
    return rds(PRIMARY).describe_global_clusters(GlobalClusterIdentifier="aurora-global-test")["GlobalClusters"][0]


def hook(runner: Runner, service: str, region: str, event: str, handler: Callable[..., Any]) -> None:
    """Register a botocore event handler on both of drkit's clients for (service, region): calls
    with `settled` use the one that never resends."""
    for resend in (True, False):
        runner.aws.client(service, region, resend=resend).meta.events.register(event, handler)


def capture(runner: Runner, region: str, operation: str) -> list[dict]:
    """The parameters of every `operation` (API name) drkit sends to RDS in `region`."""
    seen: list[dict] = []
    for resend in (True, False):  # creates with `settled` go through the client that never resends
        runner.aws.client("rds", region, resend=resend).meta.events.register(
            f"before-parameter-build.rds.{operation}", lambda params, **_: seen.append(dict(params)))
    return seen


def test_provision_builds_the_global_database_as_specified(moto, make_aurora_runner, ec2):
    runner = make_aurora_runner()
    created = capture(runner, PRIMARY, "CreateDBCluster")
    created_dr = capture(runner, DR, "CreateDBCluster")
    instances_created = {region: capture(runner, region, "CreateDBInstance") for region in (PRIMARY, DR)}
    outcome = runner.provision()
    assert outcome.ok, [r.error for r in outcome.failed]

    glob = global_cluster()
    primary, dr = cluster(PRIMARY, "aurora-primary-test"), cluster(DR, "aurora-dr-test")
    assert (glob["Engine"], glob["EngineVersion"], glob["StorageEncrypted"], glob["DeletionProtection"]) == (
        "aurora-postgresql", "14.6", True, False)
    assert {m["DBClusterArn"]: m["IsWriter"] for m in glob["GlobalClusterMembers"]} == {
        primary["DBClusterArn"]: True, dr["DBClusterArn"]: False}
    assert tags_of(glob["TagList"]) == drkit_tags("global", "ensure_global_cluster", "global-cluster", "aurora-global-test")

    for found, region, role, step in ((primary, PRIMARY, "primary", "ensure_global_cluster"),
                                      (dr, DR, "dr", "ensure_replica")):
        client, mine = ec2(region), owned_filters("test")
        groups = {g["GroupName"]: g["GroupId"] for g in client.describe_security_groups(Filters=mine)["SecurityGroups"]}
        subnets = {tags_of(s["Tags"])["Name"]: s["SubnetId"] for s in client.describe_subnets(Filters=mine)["Subnets"]}
        assert found["Status"] == "available"
        assert (found["Engine"], found["EngineVersion"]) == ("aurora-postgresql", "14.6")
        assert found["StorageEncrypted"] is True and found["DeletionProtection"] is False
        assert found["BackupRetentionPeriod"] == 1
        assert found["DBSubnetGroup"] == f"aurora-subnets-{role}-test"
        assert [g["VpcSecurityGroupId"] for g in found["VpcSecurityGroups"]] == [groups[f"aurora-sg-{role}-test"]]
        assert tags_of(found["TagList"]) == drkit_tags(role, step, "cluster", f"aurora-{role}-test")

        group = rds(region).describe_db_subnet_groups(DBSubnetGroupName=f"aurora-subnets-{role}-test")["DBSubnetGroups"][0]
        assert sorted(s["SubnetIdentifier"] for s in group["Subnets"]) == sorted(
            subnets[f"private-subnet-{i}-{role}-test"] for i in (1, 2, 3))
        group_tags = rds(region).list_tags_for_resource(ResourceName=group["DBSubnetGroupArn"])["TagList"]
        assert tags_of(group_tags) == drkit_tags(role, step, "db-subnet-group", f"aurora-subnets-{role}-test")

        writer_or_reader = instance(region, f"aurora-{role}-test-1")
        assert writer_or_reader["DBInstanceStatus"] == "available"
        assert writer_or_reader["DBClusterIdentifier"] == f"aurora-{role}-test"
        assert writer_or_reader["DBInstanceClass"] == "db.r5.large"
        assert writer_or_reader["PubliclyAccessible"] is False
        assert tags_of(writer_or_reader["TagList"]) == drkit_tags(role, step, "instance", f"aurora-{role}-test-1")

    # The secondary is encrypted with the DR region's own RDS key.
    dr_key = boto3.client("kms", region_name=DR).describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"]
    assert created_dr[0]["KmsKeyId"] == dr["KmsKeyId"] == dr_key

    # An Aurora instance takes its storage, engine version and credentials from its cluster.
    for region, role in ((PRIMARY, "primary"), (DR, "dr")):
        [params] = instances_created[region]
        assert set(params) == {"DBInstanceIdentifier", "DBClusterIdentifier", "Engine", "DBInstanceClass",
                               "PubliclyAccessible", "AutoMinorVersionUpgrade", "Tags"}
        assert params["DBClusterIdentifier"] == f"aurora-{role}-test"
        # Chosen, not defaulted: minors are upgraded deliberately, both sides at once.
        assert params["AutoMinorVersionUpgrade"] is False
        assert instance(region, f"aurora-{role}-test-1")["AutoMinorVersionUpgrade"] is False

    # Credentials: the secret's, given to the primary only; the secondary gets none.
    credentials = json.loads(secrets().get_secret_value(SecretId=SECRET)["SecretString"])
    assert [c["DBClusterIdentifier"] for c in created] == ["aurora-primary-test"]
    assert (created[0]["MasterUsername"], created[0]["MasterUserPassword"]) == (credentials["username"], credentials["password"])
    assert primary["MasterUsername"] == "dbadmin"
    assert [c["DBClusterIdentifier"] for c in created_dr] == ["aurora-dr-test"]
    assert not {"MasterUsername", "MasterUserPassword", "ManageMasterUserPassword"} & set(created_dr[0])

    # The secret lives in the primary region with a replica in the DR region.
    described = secrets().describe_secret(SecretId=SECRET)
    assert [r["Region"] for r in described["ReplicationStatus"]] == [DR]
    assert secrets(DR).describe_secret(SecretId=SECRET)["PrimaryRegion"] == PRIMARY
    assert tags_of(described["Tags"]) == drkit_tags("global", "ensure_db_secret", "db-secret", SECRET)

    outputs = runner.outputs()
    assert outputs["ensure_global_cluster:primary"]["primary_aurora_endpoint"] == primary["Endpoint"]
    assert outputs["ensure_global_cluster:primary"]["global_cluster_arn"] == glob["GlobalClusterArn"]
    assert outputs["ensure_replica:dr"]["dr_aurora_endpoint"] == dr["Endpoint"]
    assert outputs["ensure_db_secret:global"]["db_secret_arn"] == described["ARN"]
    assert runner.verify().changes == []


def test_converged_rerun_and_lost_state_change_nothing(moto, make_aurora_runner):
    runner = make_aurora_runner()
    runner.provision()
    recorded = runner.outputs()

    runner.aws.stats.__init__()
    outcome = runner.provision()
    assert outcome.ok and outcome.changes == [] and not outcome.applied
    assert runner.aws.stats.mutating == 0, runner.aws.stats.mutating_calls
    # About one read per resource: 12 resources (4 security groups, the secret, 2 subnet
    # groups, the global cluster, 2 clusters, 2 instances); subnet groups need a tag read.
    reads = sum(n for op, n in runner.aws.stats.by_operation.items() if op.split(".")[1] not in VPC_OPERATIONS)
    assert reads <= 14, runner.aws.stats.by_operation

    runner.config.state_path.unlink()
    adopted = make_aurora_runner()
    adopted.aws.stats.__init__()
    assert adopted.provision().ok
    assert adopted.aws.stats.mutating == 0, adopted.aws.stats.mutating_calls
    assert adopted.outputs() == recorded  # ARNs and endpoints found again
    assert [c["DBClusterIdentifier"] for c in rds(PRIMARY).describe_db_clusters()["DBClusters"]] == ["aurora-primary-test"]
    assert adopted.verify().changes == []


def test_drift_is_reported_then_repaired_and_roles_are_only_reported(moto, make_aurora_runner, clock):
    runner = make_aurora_runner()
    runner.provision()
    dr_arn = cluster(DR, "aurora-dr-test")["DBClusterArn"]
    rds(PRIMARY).modify_db_cluster(DBClusterIdentifier="aurora-primary-test", BackupRetentionPeriod=7,
                                   DeletionProtection=True, ApplyImmediately=True)
    rds(DR).modify_db_instance(DBInstanceIdentifier="aurora-dr-test-1", DBInstanceClass="db.r6g.large", ApplyImmediately=True)
    rds(DR).remove_tags_from_resource(ResourceName=dr_arn, TagKeys=["Project"])
    secrets().remove_regions_from_replication(SecretId=SECRET, RemoveReplicaRegions=[DR])

    findings = {(f.step, f.key, f.attribute) for f in runner.verify().changes}
    assert findings == {
        ("ensure_global_cluster:primary", "cluster", "backup_retention_period"),
        ("ensure_global_cluster:primary", "cluster", "deletion_protection"),
        ("ensure_replica:dr", "instance", "db_instance_class"),
        ("ensure_replica:dr", "cluster", "tags"),
        ("ensure_db_secret:global", "db-secret", "replica_regions"),
    }
    assert runner.provision().ok
    assert runner.verify().changes == []
    repaired = cluster(PRIMARY, "aurora-primary-test")
    assert (repaired["BackupRetentionPeriod"], repaired["DeletionProtection"]) == (1, False)
    assert instance(DR, "aurora-dr-test-1")["DBInstanceClass"] == "db.r5.large"
    assert tags_of(cluster(DR, "aurora-dr-test")["TagList"])["Project"] == "DisasterRecovery"
    assert [r["Region"] for r in secrets().describe_secret(SecretId=SECRET)["ReplicationStatus"]] == [DR]

    # A switchover makes the DR cluster the writer: verify says so; provision never switches back.
    rds(DR).switchover_global_cluster(GlobalClusterIdentifier="aurora-global-test", TargetDbClusterIdentifier=dr_arn)
    clock.sleep(3600)  # the sandbox completes the switchover on the shared fake clock
    roles = {(f.step, f.attribute, f.actual) for f in runner.verify().changes}
    assert roles == {("ensure_global_cluster:primary", "is_writer", False), ("ensure_replica:dr", "is_writer", True)}
    assert runner.plan().changes == []


# The instance is created while its cluster is still `creating` (steps/aurora.py), so a run
# killed in the instance's wait leaves both creating: the resumed run waits for both.
@pytest.mark.parametrize("waiting_for,region,create", [
    ("Aurora instance aurora-primary-test-1 in", PRIMARY, "create_db_cluster"),
    ("Aurora instance aurora-primary-test-1 in", PRIMARY, "create_db_instance"),
    ("Aurora instance aurora-dr-test-1 in", DR, "create_db_cluster"),
    ("Aurora instance aurora-dr-test-1 in", DR, "create_db_instance"),
])
def test_a_run_killed_while_waiting_resumes_without_a_second_one(moto, make_aurora_runner, waiting_for, region, create):
    victim = make_aurora_runner()

    def killed_while_waiting(line: str) -> None:
        if line.startswith(f"waiting for {waiting_for}"):
            raise Killed(line)

    victim.waiter.progress = killed_while_waiting
    with pytest.raises(Killed):
        victim.provision()

    resumed = make_aurora_runner()
    outcome = resumed.provision()
    assert outcome.ok, [r.error for r in outcome.failed]
    assert ("rds", region, create) not in resumed.aws.stats.mutating_calls
    waited = [(c.region, c.kind) for c in outcome.changes if c.action == "wait"]
    assert waited[-2:] == [(region, "db_cluster"), (region, "db_instance")]  # both found creating
    assert len(rds(region).describe_db_clusters()["DBClusters"]) == 1
    assert len(rds(region).describe_db_instances()["DBInstances"]) == 1
    assert resumed.verify().changes == []


def test_teardown_order_scope_and_the_password_never_written(moto, make_aurora_runner, ec2):
    log = io.StringIO()
    runner = make_aurora_runner(log=make_logger("json", stream=log, level="debug"))
    outcome = runner.provision()
    password = json.loads(secrets().get_secret_value(SecretId=SECRET)["SecretString"])["password"]
    # Another env's cluster and secret, tagged like drkit's: teardown must not touch them.
    foreign_tags = [{"Key": k, "Value": "other" if k == "Environment" else v}
                    for k, v in drkit_tags("primary", "ensure_global_cluster", "cluster", "aurora-primary-other").items()]
    rds(PRIMARY).create_db_cluster(DBClusterIdentifier="aurora-primary-other", Engine="aurora-postgresql",
                                   MasterUsername="other", MasterUserPassword="other-password-1", Tags=foreign_tags)
    secrets().create_secret(Name="drkit/other/aurora-master-password", SecretString="{}", Tags=foreign_tags)

    # The primary may not leave the global database while the secondary is in it.
    refused = runner.teardown(["ensure_global_cluster:primary"])
    assert refused.failed and "still has secondary" in refused.failed[0].error.message
    assert instance(PRIMARY, "aurora-primary-test-1")["DBInstanceStatus"] == "available"

    dr_status_at_delete: list[tuple[str, bool]] = []

    def record_dr_cluster(**_: Any) -> None:
        members = {m["DBClusterArn"] for m in global_cluster()["GlobalClusterMembers"]}
        found = cluster(DR, "aurora-dr-test")
        dr_status_at_delete.append((found["Status"], found["DBClusterArn"] in members))

    hook(runner, "rds", DR, "before-call.rds.DeleteDBInstance", record_dr_cluster)
    delete_secret: list[dict] = []
    hook(runner, "secretsmanager", PRIMARY, "before-parameter-build.secretsmanager.DeleteSecret", lambda params, **_: delete_secret.append(dict(params)))
    audit = audit_path(runner.config)
    already = len(audit.read_text().splitlines())
    secret_arn = secrets().describe_secret(SecretId=SECRET)["ARN"]

    done = runner.teardown()
    assert done.ok, [r.error for r in done.failed]

    calls = [json.loads(line) for line in audit.read_text().splitlines()[already:]]
    assert [(c["region"], c["operation"]) for c in calls if c["service"] == "rds"] == [
        (DR, "remove_from_global_cluster"), (DR, "delete_db_instance"), (DR, "delete_db_cluster"),
        (DR, "delete_db_subnet_group"),
        (PRIMARY, "remove_from_global_cluster"), (PRIMARY, "delete_db_instance"), (PRIMARY, "delete_db_cluster"),
        (PRIMARY, "delete_global_cluster"), (PRIMARY, "delete_db_subnet_group"),
    ]
    assert dr_status_at_delete == [("available", False)]  # promotion after detaching was waited out
    assert [c["operation"] for c in calls if c["service"] == "secretsmanager"] == [
        "remove_regions_from_replication", "delete_secret"]
    assert delete_secret == [{"SecretId": secret_arn, "RecoveryWindowInDays": 7}]

    for region in (PRIMARY, DR):
        left = [c["DBClusterIdentifier"] for c in rds(region).describe_db_clusters()["DBClusters"]]
        assert left == (["aurora-primary-other"] if region == PRIMARY else [])
        assert rds(region).describe_db_instances()["DBInstances"] == []
        groups = [g["DBSubnetGroupName"] for g in rds(region).describe_db_subnet_groups()["DBSubnetGroups"]]
        assert not [g for g in groups if g.startswith("aurora-subnets-")]
        assert ec2(region).describe_security_groups(Filters=owned_filters("test"))["SecurityGroups"] == []
    assert rds(PRIMARY).describe_global_clusters()["GlobalClusters"] == []
    assert secrets().describe_secret(SecretId=SECRET).get("DeletedDate") is not None
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        secrets(DR).describe_secret(SecretId=SECRET)
    assert secrets().describe_secret(SecretId="drkit/other/aurora-master-password").get("DeletedDate") is None
    assert runner.plan_teardown().changes == []

    # Waits were reported as they went.
    lines = log.getvalue()
    assert "waiting for Aurora instance aurora-primary-test-1 in us-east-1 to be available: creating" in lines
    assert "waiting for Aurora cluster aurora-dr-test in us-east-2 to leave aurora-global-test" in lines

    # The password is in the secret and in the one create call, nowhere drkit writes.
    assert password not in runner.config.state_path.read_text()
    assert password not in audit.read_text()
    assert password not in lines
    assert password not in json.dumps([c.as_dict() for c in outcome.changes + done.changes], default=str)
    assert password not in json.dumps(runner.outputs())


def test_an_error_that_quotes_the_password_is_withheld(moto, make_aurora_runner):
    """botocore's parameter validation quotes the value it rejects; drkit must not pass that on."""
    log = io.StringIO()
    steps = [EnsureVpc("primary"), EnsureSecurityGroups("primary"), EnsureDbSecret(), EnsureGlobalCluster()]
    runner = make_aurora_runner(steps=steps, log=make_logger("json", stream=log, level="debug"))

    def reject_the_password(params: dict, **_: Any) -> None:
        raise ParamValidationError(report=f"Invalid length for parameter MasterUserPassword, value: "
                                          f"{params['MasterUserPassword']}")

    hook(runner, "rds", PRIMARY, "before-parameter-build.rds.CreateDBCluster", reject_the_password)
    outcome = runner.provision()
    password = json.loads(secrets().get_secret_value(SecretId=SECRET)["SecretString"])["password"]
    [failed] = outcome.failed
    assert failed.step.key == "ensure_global_cluster:primary"
    assert "withheld" in str(failed.error) and password not in str(failed.error)
    assert failed.error.__cause__ is None and failed.error.__suppress_context__
    assert password not in log.getvalue()
    assert password not in runner.config.state_path.read_text()


def test_a_secret_scheduled_for_deletion_is_restored_by_provision(moto, make_aurora_runner):
    runner = make_aurora_runner(steps=[EnsureDbSecret()])
    runner.provision()
    first = secrets().get_secret_value(SecretId=SECRET)
    runner.teardown()
    assert secrets().describe_secret(SecretId=SECRET).get("DeletedDate") is not None
    assert runner.plan_teardown().changes == []  # already scheduled: nothing more to do

    again = make_aurora_runner(steps=[EnsureDbSecret()])
    assert again.provision().ok
    operations = [op for _, _, op in again.aws.stats.mutating_calls]
    assert operations == ["restore_secret", "replicate_secret_to_regions"]
    described = secrets().describe_secret(SecretId=SECRET)
    assert described.get("DeletedDate") is None and described["ARN"] == first["ARN"]
    assert [r["Region"] for r in described["ReplicationStatus"]] == [DR]
    assert secrets().get_secret_value(SecretId=SECRET)["SecretString"] == first["SecretString"]
    assert again.verify().changes == []


def test_forced_teardown_deletes_the_secret_and_its_replica_at_once(moto, make_aurora_runner):
    runner = make_aurora_runner(steps=[EnsureDbSecret()], force=True)
    runner.provision()
    assert runner.teardown().ok
    for region in (PRIMARY, DR):
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            secrets(region).describe_secret(SecretId=SECRET)
    assert secrets().list_secrets(IncludePlannedDeletion=True)["SecretList"] == []


def test_an_engine_version_a_region_does_not_offer_fails_before_any_change(moto, make_aurora_runner):
    runner = make_aurora_runner(steps=pipeline(engine_version="9.9"))
    outcome = runner.provision()
    # Each side checks its own region, both before the first change.
    assert {r.step.key: r.error.message for r in outcome.failed} == {
        "ensure_global_cluster:primary": f"{PRIMARY} does not offer aurora-postgresql 9.9 on db.r5.large",
        "ensure_replica:dr": f"{DR} does not offer aurora-postgresql 9.9 on db.r5.large",
    }
    assert runner.aws.stats.mutating == 0


def test_generated_passwords_are_ones_rds_accepts():
    # 8-41 printable ASCII characters, none of '/', '"', '@' or space.
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
    passwords = {generate_master_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in passwords:
        assert 8 <= len(password) <= 41
        assert set(password) <= set(string.printable) - set('/"@ \t\n\r\x0b\x0c')


def test_deep_verify_reads_the_replication_lag(moto, make_aurora_runner):
    runner = make_aurora_runner()
    assert runner.provision().ok
    [probe] = runner.verify(["ensure_replica"], deep=True).probes
    assert (probe.ok, probe.region, probe.measured) == (True, DR, "max 120 ms over 1 minute(s)")


def test_deep_verify_fails_a_lag_over_one_second(moto, make_aurora_runner):
    from drkit.sandbox.extensions import active_timings

    active_timings().aurora_replication_lag_ms = 1500.0
    runner = make_aurora_runner()
    assert runner.provision().ok
    [probe] = runner.verify(["ensure_replica"], deep=True).probes
    assert probe.ok is False and probe.measured == "max 1500 ms over 1 minute(s)"


def test_deep_verify_says_no_data_rather_than_passing(moto, make_aurora_runner):
    from drkit.state import load_state

    runner = make_aurora_runner()
    assert runner.provision().ok
    replica = next(s for s in runner.pipeline.steps if s.key == "ensure_replica:dr")
    rds(PRIMARY).remove_from_global_cluster(GlobalClusterIdentifier="aurora-global-test",
                                            DbClusterIdentifier=cluster(DR, "aurora-dr-test")["DBClusterArn"])
    [probe] = replica.probe(runner.context(replica, load_state(runner.config, persist=False)))
    assert probe.ok is None and probe.measured.startswith("no datapoints")


def test_the_instance_is_created_while_its_cluster_is_still_creating(moto, make_aurora_runner, clock):
    """The two longest waits of each region overlap: CreateDBInstance is sent before the
    cluster is `available` (and the step still ends with both available)."""
    runner = make_aurora_runner()
    seen: list[tuple[str, str]] = []

    def cluster_status_at_instance_create(params, **_):
        status = rds(PRIMARY if "primary" in params["DBClusterIdentifier"] else DR).describe_db_clusters(
            DBClusterIdentifier=params["DBClusterIdentifier"])["DBClusters"][0]["Status"]
        seen.append((params["DBClusterIdentifier"], status))

    for region in (PRIMARY, DR):
        for resend in (True, False):  # a create with `settled` goes through the client that never resends
            runner.aws.client("rds", region, resend=resend).meta.events.register(
                "provide-client-params.rds.CreateDBInstance", cluster_status_at_instance_create)
    assert runner.provision().ok
    assert seen == [("aurora-primary-test", "creating"), ("aurora-dr-test", "creating")]
    for region, name in ((PRIMARY, "aurora-primary-test"), (DR, "aurora-dr-test")):
        assert cluster(region, name)["Status"] == "available"
        assert instance(region, f"{name}-1")["DBInstanceStatus"] == "available"


def test_a_region_that_refuses_an_instance_in_a_creating_cluster_gets_it_once_the_cluster_is_available(
        moto, make_aurora_runner):
    runner = make_aurora_runner()
    refused: list[str] = []

    def before_call(model, **_):
        # The first CreateDBInstance finds its cluster `creating` and is refused, as a region
        # that does not accept it then would; the retry must come once the cluster is available.
        if model.name == "CreateDBInstance":
            status = rds(PRIMARY).describe_db_clusters(DBClusterIdentifier="aurora-primary-test")[
                "DBClusters"][0]["Status"]
            refused.append(status)
            if len(refused) == 1:
                return (SimpleNamespace(status_code=400, headers={}),
                        {"Error": {"Code": "InvalidDBClusterStateFault", "Message": "cluster is creating"},
                         "ResponseMetadata": {"HTTPStatusCode": 400}})
        return None

    for resend in (True, False):  # a create with `settled` goes through the client that never resends
        runner.aws.client("rds", PRIMARY, resend=resend).meta.events.register("before-call.rds", before_call)
    outcome = runner.provision()
    assert outcome.ok, [str(r.error) for r in outcome.failed]
    assert refused == ["creating", "available"]
    assert instance(PRIMARY, "aurora-primary-test-1")["DBInstanceStatus"] == "available"
    assert len(rds(PRIMARY).describe_db_instances()["DBInstances"]) == 1
