"""ensure_function against moto and drkit's sandbox, proved by reading AWS back with boto3."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import lambda_handlers
from drkit.package import build_zip, code_sha256, payment_package
from steps.lambda_function import ENI_ACTIONS, LOG_RETENTION_DAYS, RUNTIME, execution_policy
from tests.compute_stack import HANDLER_V2, Code, client, lose_answers, make_compute_runner

BASE = ["ensure_vpc", "ensure_security_groups", "ensure_global_table"]
FUNCTION_STEPS = BASE + ["ensure_function"]
PRIMARY_ONLY = BASE + ["ensure_function:primary"]


@pytest.fixture
def code() -> Code:
    return Code()


@pytest.fixture
def runner(moto, tmp_path, clock, code):
    return make_compute_runner(tmp_path, clock, code=code)


def function(role: str = "primary") -> dict:
    return client("lambda", role).get_function(FunctionName=f"payment-processor-{role}-test")


def test_provision_builds_each_regions_function_log_group_and_role(runner, code):
    assert runner.provision(FUNCTION_STEPS).ok
    for role, region in (("primary", "us-east-1"), ("dr", "us-east-2")):
        found = function(role)
        config, tags = found["Configuration"], found["Tags"]
        net = next(s for s in runner.pipeline.steps if s.key == f"ensure_vpc:{role}").outputs(None)
        group = next(s for s in runner.pipeline.steps if s.key == f"ensure_security_groups:{role}").outputs(None)
        assert config["Runtime"] == RUNTIME == "python3.14"
        assert config["Handler"] == "payment.handler"
        assert (config["MemorySize"], config["Timeout"]) == (256, 10)
        assert config["Environment"]["Variables"] == {"TABLE_NAME": "payment-transactions-test", "DR_ROLE": role}
        assert sorted(config["VpcConfig"]["SubnetIds"]) == sorted(net["private_subnet_ids"])
        assert config["VpcConfig"]["SecurityGroupIds"] == [group["lambda_security_group_id"]]
        assert config["VpcConfig"]["VpcId"] == net["vpc_id"]
        assert config["Role"].endswith(f":role/payment-processor-{role}-role-test")
        assert config["CodeSha256"] == code_sha256(code.package())
        assert tags["ManagedBy"] == "drkit" and tags["drkit:resource"] == "function" and tags["DR-Role"] == role

        logs = client("logs", role).describe_log_groups(logGroupNamePrefix=f"/aws/lambda/payment-processor-{role}-test")
        assert [g["retentionInDays"] for g in logs["logGroups"]] == [LOG_RETENTION_DAYS]

        iam = client("iam")
        trust = iam.get_role(RoleName=f"payment-processor-{role}-role-test")["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
        document = iam.get_role_policy(RoleName=f"payment-processor-{role}-role-test",
                                       PolicyName="payment-processor")["PolicyDocument"]
        by_sid = {s["Sid"]: s for s in document["Statement"]}
        assert by_sid["PaymentTable"]["Resource"] == f"arn:aws:dynamodb:{region}:123456789012:table/payment-transactions-test"
        assert by_sid["OwnLogGroup"]["Resource"] == (
            f"arn:aws:logs:{region}:123456789012:log-group:/aws/lambda/payment-processor-{role}-test:*")
        assert not any("logs:CreateLogGroup" in s["Action"] for s in document["Statement"])

        outputs = runner.outputs()[f"ensure_function:{role}"]
        assert outputs["lambda_function_name"] == f"payment-processor-{role}-test"
        assert outputs["lambda_function_arn"] == config["FunctionArn"]

    flat = runner.outputs_flat() if hasattr(runner, "outputs_flat") else None
    assert flat is None or flat["primary_lambda_function_name"] == "payment-processor-primary-test"
    assert runner.verify(FUNCTION_STEPS).changes == []
    runner.aws.stats.__init__()
    assert runner.provision(FUNCTION_STEPS).changes == []
    assert runner.aws.stats.mutating == 0


def test_the_log_group_exists_before_the_function(runner):
    """Lambda would otherwise create /aws/lambda/<fn> itself, with no retention."""
    order = []
    runner.aws.session.events.register("before-call.*.*", lambda model, **_: order.append(model.name))
    assert runner.provision(PRIMARY_ONLY).ok
    assert order.index("CreateLogGroup") < order.index("PutRetentionPolicy") < order.index("CreateFunction")


def test_every_policy_drkit_writes_is_least_privilege():
    document = execution_policy("aws", "us-east-2", "123456789012", "payment-transactions-prod",
                                "/aws/lambda/payment-processor-dr-prod")
    for statement in document["Statement"]:
        assert all(a != "*" and not a.endswith(":*") for a in statement["Action"])
        if statement["Resource"] == "*":
            # Only the ENI actions of AWSLambdaVPCAccessExecutionRole, which AWS documents on "*".
            assert set(statement["Action"]) == set(ENI_ACTIONS)
        else:
            assert ":us-east-2:123456789012:" in statement["Resource"]
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert not any(a.startswith(("iam:", "dynamodb:Delete", "dynamodb:Scan", "logs:CreateLogGroup")) for a in actions)


def test_changed_code_is_one_update_and_unchanged_code_none(runner, code):
    assert runner.provision(FUNCTION_STEPS).ok
    before = function()["Configuration"]["CodeSha256"]
    code.source = HANDLER_V2
    findings = runner.verify(["ensure_function:primary"]).changes
    assert [(c.attribute, c.actual) for c in findings] == [("code_sha256", before)]
    runner.aws.stats.__init__()
    assert runner.provision(FUNCTION_STEPS).ok
    assert runner.aws.stats.by_operation["lambda.update_function_code"] == 2  # one per region
    assert runner.aws.stats.mutating == 2
    after = {role: function(role)["Configuration"]["CodeSha256"] for role in ("primary", "dr")}
    assert after["primary"] == after["dr"] == code_sha256(code.package()) != before


def test_a_region_running_other_code_is_a_finding_in_both(runner, code):
    assert runner.provision(FUNCTION_STEPS).ok
    client("lambda", "dr").update_function_code(FunctionName="payment-processor-dr-test",
                                                ZipFile=build_zip({"payment.py": b"x = 1\n"}))
    findings = runner.verify(FUNCTION_STEPS).changes
    assert {(c.step, c.attribute) for c in findings} >= {
        ("ensure_function:primary", "code_sha256 across regions"), ("ensure_function:dr", "code_sha256")}
    assert runner.provision(FUNCTION_STEPS).ok
    assert runner.verify(FUNCTION_STEPS).changes == []


def test_drifted_settings_are_repaired_in_one_update(runner):
    assert runner.provision(FUNCTION_STEPS).ok
    lam = client("lambda")
    lam.update_function_configuration(FunctionName="payment-processor-primary-test", MemorySize=128,
                                      Environment={"Variables": {"TABLE_NAME": "other", "DR_ROLE": "primary"}})
    findings = {c.attribute for c in runner.verify(["ensure_function:primary"]).changes}
    assert findings == {"memory_size", "environment"}
    runner.aws.stats.__init__()
    assert runner.provision(FUNCTION_STEPS).ok
    assert runner.aws.stats.by_operation["lambda.update_function_configuration"] == 1
    config = function()["Configuration"]
    assert config["MemorySize"] == 256 and config["Environment"]["Variables"]["TABLE_NAME"] == "payment-transactions-test"


def test_a_role_lambda_cannot_assume_yet_is_retried(runner, clock):
    """IAM propagation: CreateFunction right after CreateRole is refused for a few seconds."""
    refusals = []

    def not_yet(model, **_):
        if len(refusals) < 2:
            refusals.append(clock.monotonic())
            raise ClientError({"Error": {"Code": "InvalidParameterValueException",
                                         "Message": "The role defined for the function cannot be assumed by Lambda."},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "CreateFunction")

    runner.aws.session.events.register("before-call.lambda.CreateFunction", not_yet)
    assert runner.provision(PRIMARY_ONLY).ok
    assert len(refusals) == 2
    assert function()["Configuration"]["State"] == "Active"


def test_teardown_leaves_nothing_and_the_enis_linger_until_lambda_removes_them(runner, clock):
    assert runner.provision(FUNCTION_STEPS).ok
    group = next(s for s in runner.pipeline.steps if s.key == "ensure_security_groups:primary").outputs(None)
    group_id = group["lambda_security_group_id"]
    ec2 = client("ec2")
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group_id]}])["NetworkInterfaces"]
    assert len(enis) == 3 and all(e["InterfaceType"] == "lambda" for e in enis)

    assert runner.teardown(["ensure_function"]).ok
    for role in ("primary", "dr"):
        assert client("lambda", role).list_functions()["Functions"] == []
        assert client("logs", role).describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"] == []
    assert [r for r in client("iam").list_roles()["Roles"] if r["RoleName"].startswith("payment-processor")] == []
    with pytest.raises(ClientError, match="DependencyViolation"):
        ec2.delete_security_group(GroupId=group_id)  # the function's ENIs are still there
    clock.sleep(60)
    assert ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group_id]}])["NetworkInterfaces"] == []
    ec2.delete_security_group(GroupId=group_id)


# One lost answer on each mutating call: one run converges, with no duplicate.
PROVISION_CALLS = [("logs", "create_log_group"), ("logs", "put_retention_policy"), ("iam", "create_role"),
                   ("iam", "put_role_policy"), ("lambda", "create_function")]
TEARDOWN_CALLS = [("lambda", "delete_function"), ("iam", "delete_role_policy"), ("iam", "delete_role"),
                  ("logs", "delete_log_group")]


@pytest.mark.parametrize("service,operation", PROVISION_CALLS)
def test_a_lost_answer_while_provisioning_converges_in_one_run(runner, service, operation):
    lost = lose_answers(runner, service, operation)
    outcome = runner.provision(PRIMARY_ONLY)
    assert outcome.ok, outcome.failed
    assert lost, f"{operation} was never called"
    assert len(client("lambda").list_functions()["Functions"]) == 1
    assert len(client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]) == 1
    assert runner.verify(["ensure_function:primary"]).changes == []


@pytest.mark.parametrize("service,operation", TEARDOWN_CALLS)
def test_a_lost_answer_while_tearing_down_leaves_nothing(runner, service, operation):
    assert runner.provision(PRIMARY_ONLY).ok
    lost = lose_answers(runner, service, operation)
    assert runner.teardown(["ensure_function:primary"]).ok
    assert lost
    assert client("lambda").list_functions()["Functions"] == []
    assert client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"] == []
    assert not [r for r in client("iam").list_roles()["Roles"] if r["RoleName"].startswith("payment-processor")]


def test_the_package_is_deterministic(tmp_path):
    source = tmp_path / "payment.py"
    source.write_bytes(HANDLER_V2)
    first = build_zip({"payment.py": source.read_bytes(), "b.py": b"", "a.py": b""})
    os.utime(source, (1, 1))
    os.chmod(source, 0o600)
    assert build_zip({"a.py": b"", "payment.py": source.read_bytes(), "b.py": b""}) == first
    entries = zipfile.ZipFile(io.BytesIO(first)).infolist()
    assert [e.filename for e in entries] == ["a.py", "b.py", "payment.py"]
    assert {e.date_time for e in entries} == {(1980, 1, 1, 0, 0, 0)}
    assert {e.external_attr >> 16 for e in entries} == {0o100644}
    assert code_sha256(first) == code_sha256(build_zip({"payment.py": HANDLER_V2, "a.py": b"", "b.py": b""}))


@pytest.mark.skipif(not (Path(lambda_handlers.__file__).parent / "payment.py").exists(),
                    reason="lambda_handlers/payment.py comes with the payment handler's branch")
def test_the_payment_package_holds_the_handler_module():
    names = zipfile.ZipFile(io.BytesIO(payment_package())).namelist()
    assert names == ["payment.py"]
    assert json.dumps(names)
