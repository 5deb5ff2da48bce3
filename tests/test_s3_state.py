"""The state in S3 (issue 11), against moto with drkit's extensions, read back with boto3:
`drkit state init`, a whole provision -> verify -> teardown with nothing written to local disk,
compare-and-swap conflicts, a run whose lock was broken, migrate both ways, and the home region
down: reads from the replica, provision and teardown refused, journals reconciled later."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import botocore.client
import pytest
from click.testing import CliRunner

from drkit.aws import AwsGateway, RetryPolicy
from drkit.cli import main
from drkit.config import build_config
from drkit.errors import EXIT_LOCKED, StateConflictError, StateLockedError, StateLockLostError
from drkit.logs import make_logger
from drkit.sandbox.region_outage import region_outage
from drkit.state import load_state
from drkit.storage import open_storage
from drkit.storage.bootstrap import init_state_buckets, state_replication_role
from drkit.waiters import Waiter
from steps.secrets import EnsureDbSecret
from tests.conftest import DR, PRIMARY, owned_filters

HOME, REPLICA = "team-state", "team-state-replica"


def s3(region: str = DR):
    return boto3.client("s3", region_name=region)


def objects(bucket: str, region: str, prefix: str = "") -> dict[str, bytes]:
    """Every object version's body in a bucket, by key (latest last)."""
    client = s3(region)
    found: dict[str, bytes] = {}
    for version in client.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions", []):
        body = client.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
        found[f"{version['Key']}@{version['VersionId']}"] = body
    return found


def latest(bucket: str, key: str, region: str = DR) -> dict | None:
    try:
        return json.loads(s3(region).get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3(region).exceptions.NoSuchKey:
        return None


def make_buckets(clock, url: str = f"s3://{HOME}/prod") -> None:
    config = build_config({"env": "test", "state": url}, environ={})
    aws = AwsGateway(clock=clock, retry=RetryPolicy(botocore_max_attempts=1))
    init_state_buckets(config, config.state_location, aws, Waiter(clock, lambda line: None),
                       make_logger("json", level="warning"))


@pytest.fixture
def no_aws_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self, operation, params):
        raise AssertionError(f"AWS call {operation} made for bad input")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, to prove an S3 state writes nothing to local disk."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args: str, env: str = "test"):
    return CliRunner().invoke(main, [*args, "--env", env], catch_exceptions=False)


# state init ----------------------------------------------------------------------------------
def test_state_init_builds_both_buckets_as_drkit_builds_its_own_and_replicates(moto, clock, in_tmp):
    first = cli("state", "init", f"s3://{HOME}/prod")
    assert first.exit_code == 0, first.output
    assert f'state = "s3://{HOME}/prod?region={DR}&replica={REPLICA}"' in first.stdout
    for bucket, region in ((HOME, DR), (REPLICA, PRIMARY)):
        client = s3(region)
        assert client.head_bucket(Bucket=bucket)["BucketRegion"] == region
        assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        rule = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert all(client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
        [statement] = json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
        assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        tags = {t["Key"]: t["Value"] for t in client.get_bucket_tagging(Bucket=bucket)["TagSet"]}
        assert tags["ManagedBy"] == "drkit" and tags["Name"] == bucket and tags["Environment"] == "test"
    [rule] = s3(DR).get_bucket_replication(Bucket=HOME)["ReplicationConfiguration"]["Rules"]
    assert rule["Destination"]["Bucket"] == f"arn:aws:s3:::{REPLICA}"
    role = boto3.client("iam").get_role(RoleName=state_replication_role(HOME))["Role"]
    assert s3(DR).get_bucket_replication(Bucket=HOME)["ReplicationConfiguration"]["Role"] == role["Arn"]

    s3(DR).put_object(Bucket=HOME, Key="prod/probe", Body=b"x")
    clock.sleep(10)  # the sandbox replicates after 5 (fake) seconds
    assert s3(PRIMARY).get_object(Bucket=REPLICA, Key="prod/probe")["Body"].read() == b"x"

    again = cli("state", "init", f"s3://{HOME}/prod")
    assert again.exit_code == 0 and "already in place" in again.stdout
    assert list(in_tmp.iterdir()) == []


def test_state_init_refuses_a_region_that_is_neither_of_the_two(moto, no_aws_calls):
    result = cli("state", "init", f"s3://{HOME}/prod", "--region", "eu-west-1")
    assert result.exit_code == 2 and "neither the primary" in result.stderr


# A whole lifecycle ---------------------------------------------------------------------------
def test_provision_verify_teardown_on_s3_state_write_nothing_locally(moto, clock, make_runner, in_tmp):
    make_buckets(clock)
    runner = make_runner(state=f"s3://{HOME}/prod")  # type: ignore[arg-type]
    provisioned = runner.provision()
    assert provisioned.ok and provisioned.applied
    recorded = latest(HOME, "prod/state.json")
    for role, region in (("primary", PRIMARY), ("dr", DR)):
        [vpc] = boto3.client("ec2", region_name=region).describe_vpcs(Filters=owned_filters("test", role))["Vpcs"]
        assert recorded["steps"][f"ensure_vpc:{role}"]["resources"]["vpc"]["id"] == vpc["VpcId"]
    audit = [json.loads(body) for body in objects(HOME, DR, f"prod/audit/{runner.run_id}/").values()]
    assert len(audit) == runner.aws.stats.mutating > 0
    assert {a["operation"] for a in audit} >= {"create_vpc", "create_nat_gateway"}
    assert latest(HOME, "prod/state.lock") is None  # released

    assert runner.verify().changes == []
    assert runner.teardown().ok
    assert latest(HOME, "prod/state.json")["steps"] == {}
    assert boto3.client("ec2", region_name=PRIMARY).describe_vpcs(Filters=owned_filters("test"))["Vpcs"] == []
    assert list(in_tmp.iterdir()) == []


def test_the_password_is_in_no_state_audit_or_journal_object(moto, clock, make_runner, in_tmp):
    make_buckets(clock)
    runner = make_runner(state=f"s3://{HOME}/prod", steps=[EnsureDbSecret()])  # type: ignore[arg-type]
    assert runner.provision().ok
    runner.storage.journal("failover", "r1").append({"step": "noted"})
    secret = boto3.client("secretsmanager").get_secret_value(SecretId="drkit/test/aurora-master-password")
    password = json.loads(secret["SecretString"])["password"]
    stored = objects(HOME, DR)
    assert any(key.startswith("prod/audit/") for key in stored) and any("journals" in key for key in stored)
    assert len(password) >= 16 and not any(password.encode() in body for body in stored.values())


# Compare-and-swap and the lock ---------------------------------------------------------------
def test_a_state_write_based_on_a_stale_read_is_refused(moto, clock, in_tmp):
    make_buckets(clock)
    config = build_config({"env": "test", "state": f"s3://{HOME}/prod"}, environ={})
    first = load_state(config, storage=open_storage(config, clock=clock))
    second = load_state(config, storage=open_storage(config, clock=clock))
    first.record("ensure_vpc:primary", "vpc", "vpc", "vpc-first")
    with pytest.raises(StateConflictError) as info:
        second.record("ensure_vpc:primary", "vpc", "vpc", "vpc-second")
    assert info.value.exit_code == EXIT_LOCKED and "changed by another run" in info.value.message
    assert latest(HOME, "prod/state.json")["steps"]["ensure_vpc:primary"]["resources"]["vpc"]["id"] == "vpc-first"


def test_a_second_run_is_refused_naming_the_holder(moto, clock, in_tmp):
    make_buckets(clock)
    config = build_config({"env": "test", "state": f"s3://{HOME}/prod"}, environ={})
    with open_storage(config).lock("provision"):
        with pytest.raises(StateLockedError) as info:
            open_storage(config).lock("teardown").acquire()
        assert "locked by `drkit provision` pid" in info.value.message and "arn:aws:" in info.value.message
        assert info.value.exit_code == EXIT_LOCKED
    assert latest(HOME, "prod/state.lock") is None


def test_a_run_whose_lock_was_broken_stops_before_writing_and_leaves_the_new_lock(moto, clock, in_tmp):
    make_buckets(clock)
    config = build_config({"env": "test", "state": f"s3://{HOME}/prod"}, environ={})
    storage = open_storage(config)
    lock = storage.lock("provision")
    lock.acquire()
    state = load_state(config, storage=storage)
    state.record("ensure_vpc:primary", "vpc", "vpc", "vpc-1")
    breaker = open_storage(config).lock("state unlock")
    breaker.break_lock(breaker.holder())
    taker = open_storage(config).lock("teardown")
    taker.acquire()
    assert lock.renew() is False and "broken" in lock.lost
    with pytest.raises(StateLockLostError):
        state.record("ensure_vpc:primary", "subnet", "subnet", "subnet-1")
    lock.release()
    assert latest(HOME, "prod/state.lock")["command"] == "teardown"  # not deleted by the run that lost it
    assert "subnet" not in latest(HOME, "prod/state.json")["steps"]["ensure_vpc:primary"]["resources"]
    taker.release()


def test_release_never_deletes_a_lock_that_changed_hands(moto, clock, in_tmp):
    make_buckets(clock)
    config = build_config({"env": "test", "state": f"s3://{HOME}/prod"}, environ={})
    first = open_storage(config).lock("provision")
    first.acquire()
    breaker = open_storage(config).lock("state unlock")
    breaker.break_lock(breaker.holder())
    second = open_storage(config).lock("teardown")
    second.acquire()
    first.release()  # before its lease renewal noticed anything: the conditional delete refuses
    assert latest(HOME, "prod/state.lock")["command"] == "teardown"
    second.release()
    assert latest(HOME, "prod/state.lock") is None


# Migrate ---------------------------------------------------------------------------------------
def test_migrate_moves_a_local_state_to_s3_and_back(moto, clock, make_runner, in_tmp):
    make_buckets(clock)
    local = in_tmp / "test.state.json"
    runner = make_runner(state=local)
    assert runner.provision().ok
    original = json.loads(local.read_text())
    audit_lines = (in_tmp / "test.audit.jsonl").read_text().splitlines()

    up = cli("state", "migrate", f"s3://{HOME}/prod", "--state", str(local))
    assert up.exit_code == 0, up.output
    assert latest(HOME, "prod/state.json") == original
    assert not local.exists() and json.loads((in_tmp / "test.state.json.migrated").read_text()) == original
    assert len(objects(HOME, DR, "prod/audit/")) == len(audit_lines)
    assert latest(HOME, "prod/state.lock") is None and not (in_tmp / "test.state.json.lock").exists()
    shown = cli("state", "show", "--state", f"s3://{HOME}/prod")
    assert json.loads(shown.stdout) == original

    again = cli("state", "migrate", f"s3://{HOME}/prod", "--state", str(in_tmp / "test.state.json.migrated"))
    assert again.exit_code == 2  # the destination already holds a state

    back = in_tmp / "back" / "test.state.json"
    down = cli("state", "migrate", str(back), "--state", f"s3://{HOME}/prod")
    assert down.exit_code == 0, down.output
    assert json.loads(back.read_text()) == original
    assert latest(HOME, "prod/state.json") is None
    assert len((back.parent / "test.audit.jsonl").read_text().splitlines()) == len(audit_lines)


# The home region down ----------------------------------------------------------------------------
def test_with_the_home_region_down_reads_come_from_the_replica_and_changes_are_refused(moto, clock, make_runner,
                                                                                        in_tmp):
    url = f"s3://{HOME}/prod?region={PRIMARY}"  # home in the primary region, replica in the DR region
    make_buckets(clock, url)
    assert make_runner(state=url).provision().ok  # type: ignore[arg-type]
    clock.sleep(10)  # replicated
    recorded = latest(HOME, "prod/state.json", PRIMARY)
    assert latest(REPLICA, "prod/state.json", DR) == recorded

    with region_outage() as outage:
        outage.down(PRIMARY)
        shown = cli("state", "show", "--state", url)
        assert shown.exit_code == 0 and json.loads(shown.stdout) == recorded
        assert "degraded mode" in shown.stderr and REPLICA in shown.stderr
        outputs = cli("outputs", "--json", "--state", url)
        assert json.loads(outputs.stdout)["dr_vpc_id"] == recorded["steps"]["ensure_vpc:dr"]["outputs"]["vpc_id"]

        verify = cli("verify", "--json", "--step", "ensure_vpc", "--state", url)
        steps = {s["step"]: s for s in json.loads(verify.stdout)["steps"]}
        assert steps["ensure_vpc:dr"]["status"] == "ok" and steps["ensure_vpc:dr"]["changes"] == []
        assert steps["ensure_vpc:primary"]["status"] == "failed"  # its region is down too: said, not hidden

        for command in ("provision", "teardown"):
            refused = cli(command, "--yes", "--state", url)
            assert refused.exit_code == 1 and f"`drkit {command}` refused" in refused.stderr
        assert latest(REPLICA, "prod/state.lock", DR) is None

        runner = make_runner(state=url)  # type: ignore[arg-type]
        written = runner.storage.journal("failover", "run-1").append({"step": "promote", "ok": True})
        assert runner.storage.degraded and REPLICA in written
        assert latest(REPLICA, "prod/journals/failover/run-1/000000.json", DR) == {"step": "promote", "ok": True}
        pending = in_tmp / ".drkit/s3" / HOME / "prod/pending/prod/journals/failover/run-1/000000.json"
        assert json.loads(pending.read_text()) == {"step": "promote", "ok": True}

    assert latest(HOME, "prod/journals/failover/run-1/000000.json", PRIMARY) is None
    reconciled = cli("state", "reconcile", "--state", url)
    assert reconciled.exit_code == 0 and "1 record(s) copied" in reconciled.stdout
    assert latest(HOME, "prod/journals/failover/run-1/000000.json", PRIMARY) == {"step": "promote", "ok": True}
    assert not (in_tmp / ".drkit").exists()
    assert "Contents" not in s3(DR).list_objects_v2(Bucket=REPLICA, Prefix="prod/reconcile/")
    assert cli("provision", "--yes", "--step", "ensure_vpc", "--state", url).exit_code == 0  # home is back


def test_a_state_bucket_that_does_not_exist_is_one_line_exit_2_and_nothing_changes(moto, clock, in_tmp):
    result = cli("provision", "--yes", "--state", "s3://no-such-state-bucket/prod")
    assert result.exit_code == 2 and "does not exist" in result.stderr and "drkit state init" in result.stderr
    assert boto3.client("ec2", region_name=PRIMARY).describe_vpcs(Filters=owned_filters("test"))["Vpcs"] == []
