"""The command line, end to end against the sandbox served over HTTP, as an SRE would run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.client
import pytest
from click.testing import CliRunner

from drkit.cli import main
from drkit.sandbox import SandboxServer, reset
from drkit.sandbox.extensions import install_all
from drkit.sandbox.timings import SandboxTimings
from drkit.state import StateLock
from tests.conftest import DR, PRIMARY, owned_filters


def quick(**slower: float) -> SandboxTimings:
    """Transitional states that end at once (unless told otherwise), HTTP standing in for TLS."""
    zero = {name: 0 for name in ("nat_pending", "nat_deleting", "rds_creating", "rds_deleting", "rds_promoting",
                                 "dynamodb_replica_creating", "dynamodb_replica_deleting", "s3_replication",
                                 "dynamodb_replication")}
    return SandboxTimings(**{**zero, **slower}, loopback_http_is_tls=True)


@pytest.fixture(scope="module")
def server():
    with SandboxServer(timings=quick()) as running:
        yield running


@pytest.fixture
def sandbox(server):
    reset()
    install_all(quick())
    return server


@pytest.fixture
def drkit(sandbox, tmp_path):
    """Run `drkit ARGS` in-process against the sandbox, with its state in tmp_path."""
    runner = CliRunner()

    def run(*args: str, env: str = "cli", input: str | None = None):
        base = ["--env", env, "--state", str(tmp_path / f"{env}.state.json"), "--endpoint-url", sandbox.endpoint_url]
        command, rest = list(args[:1]), list(args[1:])
        if command == ["state"]:
            command, rest = list(args[:2]), list(args[2:])
        return runner.invoke(main, [*command, *rest, *base], input=input, catch_exceptions=False)

    run.state_dir = tmp_path
    return run


def aws(sandbox, service, region=PRIMARY):
    return boto3.client(service, region_name=region, endpoint_url=sandbox.endpoint_url,
                        aws_access_key_id="t", aws_secret_access_key="t")


def client(sandbox, region=PRIMARY):
    return aws(sandbox, "ec2", region)


def test_plan_provision_verify_outputs_reprovision_teardown(drkit, sandbox):
    plan = drkit("plan")
    assert plan.exit_code == 0, plan.output
    assert "+ create vpc vpc-primary-cli" in plan.output and "+ create dynamodb table payment-transactions-cli" in plan.output
    assert client(sandbox).describe_vpcs(Filters=owned_filters("cli"))["Vpcs"] == []  # plan changed nothing
    # The plan ends with the one-line summary operators know from other tools.
    created = plan.stdout.count("\n  + ")
    assert created > 30 and plan.stdout.rstrip().splitlines()[-1] == f"+{created} create, ~0 update, -0 delete"

    provision = drkit("provision", "--yes")
    assert provision.exit_code == 0, provision.output
    assert "provision done" in provision.output
    printed = [provision.output]

    verify = drkit("verify", "--json")
    assert verify.exit_code == 0
    assert json.loads(verify.stdout)["counts"]["update"] == 0

    deep = drkit("verify", "--deep", "--json")
    assert deep.exit_code == 0, deep.output
    checks = json.loads(deep.stdout)["deep_checks"]
    assert len(checks) == 3 and all(c["ok"] is True for c in checks)

    outputs = json.loads(drkit("outputs", "--json").stdout)
    for role, region in (("primary", PRIMARY), ("dr", DR)):
        vpcs = client(sandbox, region).describe_vpcs(Filters=owned_filters("cli", role))["Vpcs"]
        assert outputs[f"{role}_vpc_id"] == vpcs[0]["VpcId"]
        endpoint = aws(sandbox, "rds", region).describe_db_clusters(DBClusterIdentifier=f"aurora-{role}-cli")["DBClusters"][0]["Endpoint"]
        assert outputs[f"{role}_aurora_endpoint"] == endpoint
    assert outputs["environment_suffix"] == "cli"
    assert outputs["primary_bucket_name"] == "dr-primary-bucket-cli" and outputs["dr_bucket_name"] == "dr-secondary-bucket-cli"
    assert outputs["dynamodb_table_name"] == "payment-transactions-cli"
    assert not any(key.startswith(("dr_dr_", "primary_primary_")) for key in outputs)

    again = drkit("provision", "--yes", "--json")
    assert again.exit_code == 0
    document = json.loads(again.stdout)
    assert document["aws_calls"]["mutating"] == 0 and all(s["changes"] == [] for s in document["steps"])

    dry = drkit("teardown", "--dry-run")
    assert dry.exit_code == 0 and "- delete vpc vpc-primary-cli" in dry.output
    deleted = dry.stdout.count("\n  - ")
    assert deleted > 30 and dry.stdout.rstrip().splitlines()[-1] == f"+0 create, ~0 update, -{deleted} delete"
    assert len(client(sandbox).describe_vpcs(Filters=owned_filters("cli"))["Vpcs"]) == 1

    printed += [verify.output, deep.output, again.output, dry.output]
    secret = aws(sandbox, "secretsmanager").get_secret_value(SecretId="drkit/cli/aurora-master-password")
    password = json.loads(secret["SecretString"])["password"]
    state_dir = Path(drkit.state_dir)
    written = [p.read_text() for p in state_dir.iterdir() if p.is_file()]
    assert len(password) >= 16 and not any(password in text for text in printed + written)

    down = drkit("teardown", "--yes", "--force")
    assert down.exit_code == 0, down.output
    assert drkit("teardown", "--dry-run").output.count("- delete") == 0
    for region in (PRIMARY, DR):
        assert client(sandbox, region).describe_vpcs(Filters=owned_filters("cli"))["Vpcs"] == []
        assert aws(sandbox, "rds", region).describe_db_clusters()["DBClusters"] == []
        assert aws(sandbox, "dynamodb", region).list_tables()["TableNames"] == []
        assert aws(sandbox, "secretsmanager", region).list_secrets(IncludePlannedDeletion=True)["SecretList"] == []
    assert aws(sandbox, "rds").describe_global_clusters()["GlobalClusters"] == []
    assert aws(sandbox, "s3").list_buckets()["Buckets"] == []
    assert [r for r in aws(sandbox, "iam").list_roles()["Roles"] if r["RoleName"].endswith("-cli")] == []


def test_verify_exits_1_with_each_finding(drkit, sandbox):
    assert drkit("provision", "--yes").exit_code == 0
    ec2 = client(sandbox, DR)
    vpc_id = ec2.describe_vpcs(Filters=owned_filters("cli", "dr"))["Vpcs"][0]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": False})
    result = drkit("verify", "--json")
    assert result.exit_code == 1
    findings = [c for s in json.loads(result.stdout)["steps"] for c in s["changes"]]
    assert [(f["region"], f["key"], f["attribute"], f["expected"], f["actual"]) for f in findings] == [
        (DR, "vpc", "enable_dns_support", True, False)
    ]
    assert drkit("provision", "--yes").exit_code == 0
    assert drkit("verify").exit_code == 0


def test_provision_asks_and_refuses_without_a_terminal(drkit, sandbox):
    result = drkit("provision")
    assert result.exit_code == 2
    assert "pass --yes" in result.output
    assert client(sandbox).describe_vpcs(Filters=owned_filters("cli"))["Vpcs"] == []


@pytest.fixture
def no_aws_calls(monkeypatch):
    calls = []

    def refuse(self, operation, params):
        calls.append(operation)
        raise AssertionError(f"AWS call {operation} made for bad input")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    return calls


BAD_TOML = {
    "overlap": '[network.dr]\nvpc_cidr = "10.0.0.0/16"\nprivate_subnet_cidrs = ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]\npublic_subnet_cidr = "10.0.10.0/24"\n',
    "malformed": '[network.primary]\nvpc_cidr = "10.0.0.0/33"\n',
    "typo": 'primary_regoin = "us-west-2"\n',
}


@pytest.mark.parametrize("command", ["plan", "provision", "verify", "teardown"])
@pytest.mark.parametrize("args,message", [
    (["--env", "Prod_1"], "--env 'Prod_1' is not usable"),
    (["--env", "x" * 40], "must be 1-64 characters long"),
    (["--env", ""], "must not be empty"),
    (["--primary-region", "us-east-2"], "are both 'us-east-2'"),
    (["--dr-region", "us-mars-1"], "'us-mars-1' is not an AWS region"),
    (["--dr-region", "cn-north-1"], "different AWS partitions"),
    (["--config", "overlap"], "overlaps the dr VPC"),
    (["--config", "malformed"], "not a valid CIDR block"),
    (["--config", "typo"], "unknown key(s) primary_regoin"),
    (["--parallel", "0"], "--parallel must be at least 1"),
    (["--profile", "no-such-profile"], "AWS profile 'no-such-profile' is not configured"),
    (["--endpoint-url", "ftp://example"], "must start with http:// or https://"),
    (["--endpoint-url", "http://:5000"], "--endpoint-url 'http://:5000' has no host"),
    (["--endpoint-url", "https://"], "--endpoint-url 'https://' has no host"),
    (["--endpoint-url", "http://localhost:port"], "has an invalid port"),
])
def test_bad_input_is_one_line_exit_2_and_no_aws_call(command, args, message, no_aws_calls, tmp_path):
    args = list(args)
    if args[0] == "--config":
        path = tmp_path / "drkit.toml"
        path.write_text(BAD_TOML[args[1]])
        args[1] = str(path)
    result = CliRunner().invoke(main, [command, "--yes", *args, "--state", str(tmp_path / "s.json")]
                                if command in ("provision", "teardown") else
                                [command, *args, "--state", str(tmp_path / "s.json")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.startswith("drkit: error: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output and no_aws_calls == []


@pytest.mark.parametrize("content,message", [
    ("{not json", "is not valid JSON"),
    ('{"hello": 1}', "is not a drkit state file"),
    ('{"version": 1, "env": "other", "primary_region": "us-east-1", "dr_region": "us-east-2", "steps": {}}',
     "belongs to env 'other'"),
    ('{"version": 1, "env": "dev", "primary_region": "us-west-2", "dr_region": "us-east-2", "steps": {}}',
     "belongs to primary region 'us-west-2'"),
    ('{"version": 1, "env": "dev", "primary_region": "us-east-1", "dr_region": "us-east-2", '
     '"steps": {"ensure_vpc:primary": "vpc-1"}}', "is malformed: step 'ensure_vpc:primary' is a string"),
    ('{"version": 1, "env": "dev", "primary_region": "us-east-1", "dr_region": "us-east-2", '
     '"steps": {"ensure_vpc:dr": {"resources": {"vpc": {"kind": "vpc", "id": 12}}}}}', "id is a number (12)"),
])
@pytest.mark.parametrize("command", ["plan", "provision", "teardown"])
def test_a_corrupt_or_foreign_state_file_is_refused_and_left_alone(command, content, message, no_aws_calls, tmp_path):
    state = tmp_path / "dev.state.json"
    state.write_text(content)
    result = CliRunner().invoke(main, [command, "--state", str(state), *(["--yes"] if command != "plan" else [])])
    assert result.exit_code == 2, result.output
    assert message in result.output and "nothing was changed" in result.output
    assert result.output.startswith("drkit: error: ") and result.output.count("\n") == 1
    assert state.read_text() == content and no_aws_calls == []
    assert not state.with_name(state.name + ".lock").exists()


def test_a_locked_state_exits_3_naming_the_holder_until_unlocked(drkit, tmp_path):
    lock = StateLock(tmp_path / "cli.state.json", "provision")
    lock.acquire()
    result = drkit("provision", "--yes")
    assert result.exit_code == 3
    assert f"pid {os.getpid()}" in result.output and "drkit state unlock" in result.output
    refused = drkit("state", "unlock", "--yes")  # the holder (this test's pid) still runs
    assert refused.exit_code == 3 and "still running" in refused.output and "--force" in refused.output
    assert json.loads(lock.path.read_text())["token"] == lock.token
    unlock = drkit("state", "unlock", "--yes", "--force")
    assert unlock.exit_code == 0 and "lock broken" in unlock.output
    assert drkit("provision", "--yes").exit_code == 0
    lock.release()  # the broken run ending later must not remove anything it no longer holds


def test_json_logs_and_the_audit_file_record_every_mutating_call(sandbox, tmp_path):
    state = tmp_path / "logs.state.json"
    result = CliRunner().invoke(main, ["provision", "--yes", "--json", "--log-format", "json", "--env", "logs",
                                       "--state", str(state), "--endpoint-url", sandbox.endpoint_url])
    assert result.exit_code == 0, result.output
    mutating = json.loads(result.stdout)["aws_calls"]["mutating"]
    log_lines = [json.loads(line) for line in result.stderr.splitlines()]
    mutations = [line for line in log_lines if line["event"] == "aws.mutate"]
    assert len(mutations) == mutating
    assert {"service", "region", "operation", "resource", "timestamp", "level"} <= set(mutations[0])
    audit = [json.loads(line) for line in (tmp_path / "logs.audit.jsonl").read_text().splitlines()]
    assert len(audit) == mutating
    assert {a["operation"] for a in audit} >= {"create_vpc", "create_nat_gateway", "create_route"}
    assert {a["region"] for a in audit} == {PRIMARY, DR}


@pytest.mark.parametrize("command", [[], ["plan"], ["provision"], ["verify"], ["status"], ["teardown"], ["outputs"],
                                     ["state", "show"], ["state", "unlock"], ["sandbox"], ["demo"]])
def test_every_command_explains_itself(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.output
    if command and command[0] in ("plan", "provision", "verify", "status", "teardown", "outputs"):
        for variable in ("ENVIRONMENT_SUFFIX", "PRIMARY_REGION", "DR_REGION", "DRKIT_STATE", "AWS_PROFILE",
                         "AWS_ENDPOINT_URL"):
            assert variable in result.output


def test_a_provision_killed_with_sigkill_resumes_after_unlock(server, tmp_path):
    """A real process, really killed while it waits for the NAT gateways."""
    reset()
    install_all(quick(nat_pending=4))
    state = tmp_path / "killed.state.json"
    args = ["--env", "killed", "--state", str(state), "--endpoint-url", server.endpoint_url]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}
    process = subprocess.Popen([sys.executable, "-m", "drkit", "provision", "--yes", *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        recorded = json.loads(state.read_text()) if state.exists() else {"steps": {}}
        if all("nat-gateway" in recorded["steps"].get(f"ensure_vpc:{r}", {}).get("resources", {})
               for r in ("primary", "dr")):
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail(f"provision never reached the NAT wait: {process.communicate()[0].decode()}")
    process.send_signal(signal.SIGKILL)
    process.wait()

    locked = subprocess.run([sys.executable, "-m", "drkit", "provision", "--yes", *args], env=env,
                            capture_output=True, text=True)
    assert locked.returncode == 3 and "no longer running: stale" in locked.stderr
    assert subprocess.run([sys.executable, "-m", "drkit", "state", "unlock", "--yes", *args], env=env,
                          capture_output=True).returncode == 0
    resumed = subprocess.run([sys.executable, "-m", "drkit", "provision", "--yes", *args], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for region in (PRIMARY, DR):
        ec2 = client(server, region)
        live = [n for n in ec2.describe_nat_gateways(Filters=owned_filters("killed"))["NatGateways"]
                if n["State"] != "deleted"]
        assert len(live) == 1
        assert len(ec2.describe_vpcs(Filters=owned_filters("killed"))["Vpcs"]) == 1
        assert len(ec2.describe_addresses(Filters=owned_filters("killed"))["Addresses"]) == 1


def test_the_readme_demo_passes():
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    assert "demo passed" in result.output and "3/3 replication checks passed" in result.output


def test_python_m_drkit_sandbox_serves_aws_on_loopback():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "drkit.sandbox", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ec2 = boto3.client("ec2", region_name=DR, endpoint_url=f"http://127.0.0.1:{port}",
                           aws_access_key_id="t", aws_secret_access_key="t")
        deadline = time.monotonic() + 30
        while True:
            try:
                vpcs = ec2.describe_vpcs()["Vpcs"]
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert [v["IsDefault"] for v in vpcs] == [True]
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("command", ["provision", "teardown"])
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_without_yes_or_a_terminal_it_refuses_before_observing_anything(command, json_flag, no_aws_calls, tmp_path):
    state = tmp_path / "dev.state.json"
    result = CliRunner().invoke(main, [command, *json_flag, "--state", str(state)])
    assert result.exit_code == 2, result.output
    assert result.output == "drkit: error: refusing to act without confirmation: no terminal to ask on (hint: pass --yes)\n"
    assert no_aws_calls == [] and not state.with_name(state.name + ".lock").exists()


@pytest.fixture
def dr_vpc_cannot_be_observed(monkeypatch):
    """ensure_vpc:dr's observation fails as AWS would refuse it (no permission); the rest plan."""
    from drkit.errors import AwsCallError
    from steps.vpc import EnsureVpc

    real = EnsureVpc.observe

    def observe(self, ctx):
        if self.role == "dr":
            raise AwsCallError("ec2", DR, "describe_vpcs", "UnauthorizedOperation", "You are not authorized")
        return real(self, ctx)

    monkeypatch.setattr(EnsureVpc, "observe", observe)


def test_a_failed_plan_is_not_summarised_as_changes_made(drkit, sandbox, dr_vpc_cannot_be_observed):
    result = drkit("provision", "--yes")
    assert result.exit_code == 1, result.output
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("provision FAILED")
    assert "planning failed in ensure_vpc:dr: nothing was applied; 0 created, 0 updated" in summary
    assert "(0 mutating)" in summary and "UnauthorizedOperation" in result.output
    assert client(sandbox).describe_vpcs(Filters=owned_filters("cli"))["Vpcs"] == []

    document = json.loads(drkit("provision", "--yes", "--json").stdout)
    assert document["ok"] is False and document["failed_steps"] == ["ensure_vpc:dr"]
    assert set(document["counts"].values()) == {0} and document["planning_failed"] is True
    assert document["planned_counts"]["create"] > 0
    assert client(sandbox).describe_vpcs(Filters=owned_filters("cli"))["Vpcs"] == []


def test_a_failed_teardown_plan_is_not_summarised_as_deletions(drkit, sandbox, monkeypatch):
    assert drkit("provision", "--yes", "--step", "ensure_vpc").exit_code == 0
    from drkit.errors import AwsCallError
    from steps.vpc import EnsureVpc

    real = EnsureVpc.plan_teardown

    def plan_teardown(self, ctx):
        if self.role == "dr":
            raise AwsCallError("ec2", DR, "describe_vpcs", "UnauthorizedOperation", "You are not authorized")
        return real(self, ctx)

    monkeypatch.setattr(EnsureVpc, "plan_teardown", plan_teardown)
    result = drkit("teardown", "--yes", "--step", "ensure_vpc")
    assert result.exit_code == 1, result.output
    summary = result.output.strip().splitlines()[-1]
    assert "planning failed in ensure_vpc:dr: nothing was applied; 0 deleted" in summary, summary
    assert len(client(sandbox).describe_vpcs(Filters=owned_filters("cli"))["Vpcs"]) == 1


@pytest.mark.parametrize("command", [["plan"], ["provision", "--yes"], ["teardown", "--yes"], ["verify"]])
@pytest.mark.parametrize("where", ["directory-in-toml", "directory-in-env", "under-a-file", "under-a-file-in-toml"])
def test_an_unusable_state_path_is_one_line_exit_2_and_no_aws_call(command, where, no_aws_calls, tmp_path,
                                                                   monkeypatch):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    (tmp_path / "a-dir").mkdir()
    state, args, message = {
        "directory-in-toml": (tmp_path / "a-dir", ["--config", "toml"], "is a directory"),
        "directory-in-env": (tmp_path / "a-dir", [], "is a directory"),
        "under-a-file": (a_file / "dev.state.json", ["--state", str(a_file / "dev.state.json")],
                         f"is under {a_file}, which is a file"),
        "under-a-file-in-toml": (a_file / "sub" / "dev.state.json", ["--config", "toml"], f"is under {a_file}"),
    }[where]
    if args[:1] == ["--config"]:
        (tmp_path / "drkit.toml").write_text(f'state = "{state}"\n')
        args = ["--config", str(tmp_path / "drkit.toml")]
    elif not args:
        monkeypatch.setenv("DRKIT_STATE", str(state))
    result = CliRunner().invoke(main, [*command, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.startswith("drkit: error: ") and result.output.count("\n") == 1
    assert no_aws_calls == [] and a_file.read_text() == "not a directory"


@pytest.mark.parametrize("command", ["provision", "teardown"])
def test_a_state_path_that_cannot_be_created_is_refused_before_any_aws_call(command, no_aws_calls):
    import tempfile

    try:  # /sys refuses new files even to root (unlike a chmod-ed directory)
        tempfile.TemporaryFile(dir="/sys").close()
        pytest.skip("/sys is writable here")
    except OSError:
        pass
    result = CliRunner().invoke(main, [command, "--yes", "--state", "/sys/drkit/dev.state.json"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("drkit: error: state path /sys/drkit/dev.state.json cannot be created: /sys is")
    assert result.output.count("\n") == 1 and no_aws_calls == []


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """A machine with no credentials anywhere in botocore's chain."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("command", [["plan"], ["provision", "--yes"], ["provision", "--dry-run"], ["verify"],
                                     ["teardown", "--yes"]])
def test_missing_credentials_are_one_line_exit_2_before_any_aws_call(command, no_credentials, no_aws_calls, tmp_path):
    state = tmp_path / "dev.state.json"
    result = CliRunner().invoke(main, [*command, "--state", str(state)])
    assert result.exit_code == 2, result.output
    assert result.output == ("drkit: error: no AWS credentials found (hint: set AWS_PROFILE or --profile, "
                             "or the AWS_* environment variables)\n")
    assert no_aws_calls == [] and not state.with_name(state.name + ".lock").exists()


def test_outputs_needs_no_credentials(no_credentials, tmp_path):
    result = CliRunner().invoke(main, ["outputs", "--json", "--state", str(tmp_path / "dev.state.json")])
    assert result.exit_code == 0, result.output


def test_a_loopback_endpoint_keeps_its_dummy_credentials(sandbox, no_credentials, tmp_path):
    result = CliRunner().invoke(main, ["plan", "--step", "ensure_vpc", "--state", str(tmp_path / "s.json"),
                                       "--endpoint-url", sandbox.endpoint_url])
    assert result.exit_code == 0, result.output
    assert "+ create vpc vpc-primary-dev" in result.output


@pytest.mark.parametrize("command", [["plan"], ["provision", "--yes"], ["verify"], ["teardown", "--dry-run"]])
def test_an_unreachable_endpoint_is_one_line_on_stderr(command, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = CliRunner().invoke(main, [*command, "--step", "ensure_vpc", "--state", str(tmp_path / "s.json"),
                                       "--endpoint-url", closed])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f'drkit: error: cannot reach AWS ec2 in ')
    assert closed in result.stderr and result.stderr.endswith("(2 step(s) could not run)\n")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("args,message", [
    (["provision", "--parallel", "abc"], "Invalid value for '--parallel' (env var: 'DRKIT_PARALLEL'): 'abc' is not a valid integer."),
    (["provision", "--log-format", "xml"], "Invalid value for '--log-format'"),
    (["provision", "--no-such-flag"], "No such option '--no-such-flag'"),
    (["provision", "--step"], "Option '--step' requires an argument."),
])
def test_click_usage_errors_are_one_line_with_the_hint(args, message, no_aws_calls):
    result = CliRunner().invoke(main, args, prog_name="drkit")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"drkit: error: {message}") and result.output.count("\n") == 1
    assert result.output.endswith(" (hint: Try 'drkit provision --help' for help)\n")
    assert no_aws_calls == []


def test_an_unknown_command_is_one_line_with_the_hint():
    result = CliRunner().invoke(main, ["plna"], prog_name="drkit")
    assert result.exit_code == 2
    assert result.output == "drkit: error: No such command 'plna'. Did you mean 'plan'? (hint: Try 'drkit --help' for help)\n"
