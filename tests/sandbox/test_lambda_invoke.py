"""Contract tests: Lambda Invoke runs the deployed Python zip, as Lambda does (no Docker).

Each test names the AWS page that documents the behaviour it asserts.
"""

from __future__ import annotations

import base64
import io
import json
import textwrap
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from drkit.sandbox import SandboxServer, reset

REGION = "us-east-2"
ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
NO_RETRY = Config(retries={"total_max_attempts": 1}, read_timeout=30)

TINY = textwrap.dedent("""
    import json, os, time
    import boto3

    def handler(event, context):
        if event.get("fail"):
            raise ValueError("asked to fail")
        if event.get("sleep"):
            time.sleep(event["sleep"])
        if event.get("put"):
            boto3.client("dynamodb").put_item(TableName=os.environ["TABLE_NAME"],
                                              Item={"transactionId": {"S": event["put"]}})
        if event.get("unserialisable"):
            return {"when": object()}
        print("tiny handler ran")
        return {"event": event, "table": os.environ.get("TABLE_NAME"), "region": os.environ["AWS_REGION"],
                "function": context.function_name, "remaining": context.get_remaining_time_in_millis() > 0,
                "home": os.environ.get("HOME"), "endpoint": os.environ.get("AWS_ENDPOINT_URL")}
""")


def deterministic_zip(files: dict[str, str]) -> bytes:
    """The same bytes for the same files (fixed timestamps and order), as a build should give."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def deploy(endpoint: str | None = None, name: str = "tiny", files: dict[str, str] | None = None,
           handler: str = "app.handler", timeout: int = 3, env: dict[str, str] | None = None):
    """A Python function from a zip, created with boto3 (and its role), returning a client."""
    iam = boto3.client("iam", region_name=REGION, endpoint_url=endpoint)
    try:
        role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName=f"{name}-role")["Role"]["Arn"]
    client = boto3.client("lambda", region_name=REGION, endpoint_url=endpoint, config=NO_RETRY)
    client.create_function(
        FunctionName=name, Runtime="python3.11", Role=role, Handler=handler, Timeout=timeout,
        Code={"ZipFile": deterministic_zip(files or {"app.py": TINY})},
        Environment={"Variables": env or {"TABLE_NAME": "tiny-table"}},
    )
    return client


def invoke(client, name: str = "tiny", payload: dict | None = None, **kwargs):
    answer = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kwargs)
    return answer, json.loads(answer["Payload"].read() or b"null")


def test_invoke_runs_the_handler_from_the_zip_with_its_environment(aws):
    # The handler gets the event, a context, the function's variables and AWS_REGION.
    # https://docs.aws.amazon.com/lambda/latest/dg/python-handler.html
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
    client = deploy()
    answer, result = invoke(client, payload={"hello": "world"})
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert result["event"] == {"hello": "world"}
    assert result["table"] == "tiny-table" and result["region"] == REGION
    assert result["function"] == "tiny" and result["remaining"] is True
    assert result["home"] is None  # nothing of the sandbox's own environment leaks in


def test_an_exception_is_an_unhandled_function_error(aws):
    # https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html
    # https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html (X-Amz-Function-Error)
    answer, result = invoke(deploy(), payload={"fail": True})
    assert answer["StatusCode"] == 200 and answer["FunctionError"] == "Unhandled"
    assert result["errorType"] == "ValueError" and result["errorMessage"] == "asked to fail"
    assert result["stackTrace"]


def test_the_function_timeout_stops_the_handler(aws, wait_until):
    # A function that runs past its Timeout is stopped: Sandbox.Timedout, an Unhandled error,
    # and the handler never gets to do what it would have done later.
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName="tiny-table", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}])
    answer, result = invoke(deploy(timeout=1), payload={"sleep": 2, "put": "too-late"})
    assert answer["FunctionError"] == "Unhandled"
    assert result["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in result["errorMessage"]
    late = wait_until(lambda: ddb.scan(TableName="tiny-table")["Count"], timeout=4)
    assert not late  # the child was stopped, not left running


def test_a_result_that_is_not_json_is_a_marshal_error(aws):
    answer, result = invoke(deploy(), payload={"unserialisable": True})
    assert answer["FunctionError"] == "Unhandled" and result["errorType"] == "Runtime.MarshalError"


def test_import_errors_and_missing_handlers_are_reported_as_lambda_does(aws):
    # https://docs.aws.amazon.com/lambda/latest/dg/python-handler.html#python-handler-naming
    client = deploy(name="broken", files={"app.py": "import not_a_module\n"})
    answer, result = invoke(client, "broken")
    assert answer["FunctionError"] == "Unhandled" and result["errorType"] == "Runtime.ImportModuleError"
    client = deploy(name="nohandler", handler="app.missing")
    answer, result = invoke(client, "nohandler")
    assert answer["FunctionError"] == "Unhandled" and result["errorType"] == "Runtime.HandlerNotFound"


def test_log_tail_and_cloudwatch_logs(aws):
    # LogType=Tail returns the last 4 KB of the log, base64; the log also goes to /aws/lambda/<name>.
    # https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_ResponseSyntax
    # https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html
    client = deploy()
    answer, _ = invoke(client, LogType="Tail")
    tail = base64.b64decode(answer["LogResult"]).decode()
    assert "tiny handler ran" in tail and tail.startswith("START RequestId:") and "REPORT RequestId:" in tail
    assert "LogResult" not in invoke(client)[0]
    events = boto3.client("logs", region_name=REGION).filter_log_events(logGroupName="/aws/lambda/tiny")["events"]
    assert any("tiny handler ran" in e["message"] for e in events)


def test_the_handler_boto3_calls_reach_the_sandbox_in_process(aws):
    # Under mock_aws() the child reaches the same moto backends through a loopback server.
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName="tiny-table", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}])
    answer, _ = invoke(deploy(), payload={"put": "txn-in-process"})
    assert "FunctionError" not in answer
    assert ddb.get_item(TableName="tiny-table", Key={"transactionId": {"S": "txn-in-process"}})["Item"]


def test_an_event_invocation_is_accepted_at_once(aws):
    # InvocationType=Event: 202 and an empty payload; the function runs asynchronously.
    answer = deploy().invoke(FunctionName="tiny", InvocationType="Event", Payload=b"{}")
    assert answer["StatusCode"] == 202


@pytest.fixture
def server(fast_timings):
    reset()
    with SandboxServer(timings=fast_timings) as running:
        yield running
    reset()


def test_invoke_over_http_points_the_handler_at_the_sandbox_server(server):
    # Over HTTP, the function's boto3 is pointed at the server the Invoke came to (its Host).
    endpoint = server.endpoint_url
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
    ddb.create_table(TableName="tiny-table", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}])
    answer, result = invoke(deploy(endpoint), payload={"put": "txn-over-http"})
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert result["endpoint"] == endpoint
    assert ddb.get_item(TableName="tiny-table", Key={"transactionId": {"S": "txn-over-http"}})["Item"]


def test_the_payment_handler_runs_from_its_own_zip(server):
    # The real handler, zipped as drkit deploys it (one file), answers /health through Invoke.
    endpoint = server.endpoint_url
    source = (Path(__file__).parents[2] / "lambda_handlers" / "payment.py").read_text()
    client = deploy(endpoint, name="payment", files={"payment.py": source}, handler="payment.handler",
                    env={"TABLE_NAME": "payment-transactions-zip", "DR_ROLE": "dr"})
    event = {"resource": "/health", "path": "/health", "httpMethod": "GET", "headers": {}, "body": None}
    _, result = invoke(client, "payment", payload=event)
    assert result["statusCode"] == 503  # no table yet: unhealthy, and why
    assert "ResourceNotFoundException" in json.loads(result["body"])["reason"]
    boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint).create_table(
        TableName="payment-transactions-zip", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}])
    _, result = invoke(client, "payment", payload=event)
    assert result["statusCode"] == 200 and json.loads(result["body"])["region"] == REGION
