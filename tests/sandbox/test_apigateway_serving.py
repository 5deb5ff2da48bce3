"""Contract tests: a deployed REST API stage answers HTTP requests through its Lambda proxy
integration, at the stage URL, on the execute-api host and on a custom domain name.

The API is built with boto3 as drkit will build it; requests are real HTTP (urllib) to a
SandboxServer; outcomes are read back from DynamoDB with boto3. Each test names its AWS page.
"""

from __future__ import annotations

import http.client
import io
import json
import textwrap
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from drkit.sandbox import SandboxServer, reset

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE = "payment-transactions-test"
DOMAIN = "api.payments-test.example.com"
NO_RETRY = Config(retries={"total_max_attempts": 1}, read_timeout=60)
ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
ECHO = textwrap.dedent("""
    import json

    def handler(event, context):
        mode = (event.get("queryStringParameters") or {}).get("mode")
        if mode == "raise":
            raise RuntimeError("boom")
        if mode == "malformed":
            return {"statusCode": 200, "body": {"not": "a string"}}
        return {"statusCode": 200, "headers": {"X-Echo": "1"},
                "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": json.dumps(event)}
""")


def deterministic_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


class Api:
    """A REST API `payments` in one region: /payment (POST), /health (GET) -> the payment
    function, /echo/{proxy+} (ANY) -> an echo function; deployed to stage prod."""

    def __init__(self, endpoint: str, region: str = REGION, permit: bool = True) -> None:
        self.endpoint, self.region = endpoint, region
        self.apigw = self.client("apigateway")
        self.lam = self.client("lambda")
        iam = self.client("iam")
        try:
            role = iam.create_role(RoleName="payment-fn", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
        except iam.exceptions.EntityAlreadyExistsException:
            role = iam.get_role(RoleName="payment-fn")["Role"]["Arn"]
        source = (Path(__file__).parents[2] / "lambda_handlers" / "payment.py").read_text()
        self.payment_arn = self.function("payment", {"payment.py": source}, "payment.handler", role,
                                         {"TABLE_NAME": TABLE, "DR_ROLE": "primary" if region == REGION else "dr"})
        self.echo_arn = self.function("echo", {"echo.py": ECHO}, "echo.handler", role, {})
        self.id = self.apigw.create_rest_api(name="payments", endpointConfiguration={"types": ["REGIONAL"]})["id"]
        root = next(r["id"] for r in self.apigw.get_resources(restApiId=self.id)["items"] if r["path"] == "/")
        self.route(root, "payment", "POST", self.payment_arn)
        self.route(root, "health", "GET", self.payment_arn)
        echo = self.apigw.create_resource(restApiId=self.id, parentId=root, pathPart="echo")["id"]
        self.route(echo, "{proxy+}", "ANY", self.echo_arn)
        self.apigw.create_deployment(restApiId=self.id, stageName="prod")
        if permit:
            for name in ("payment", "echo"):
                self.permit(name, f"arn:aws:execute-api:{region}:{ACCOUNT}:{self.id}/*/*/*")

    def client(self, service: str):
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint, config=NO_RETRY)

    def function(self, name: str, files: dict[str, str], handler: str, role: str, env: dict[str, str]) -> str:
        return self.lam.create_function(
            FunctionName=name, Runtime="python3.11", Role=role, Handler=handler, Timeout=10,
            Code={"ZipFile": deterministic_zip(files)}, Environment={"Variables": env})["FunctionArn"]

    def route(self, parent: str, part: str, method: str, function_arn: str) -> None:
        resource = self.apigw.create_resource(restApiId=self.id, parentId=parent, pathPart=part)["id"]
        self.apigw.put_method(restApiId=self.id, resourceId=resource, httpMethod=method, authorizationType="NONE")
        self.apigw.put_integration(
            restApiId=self.id, resourceId=resource, httpMethod=method, type="AWS_PROXY", integrationHttpMethod="POST",
            uri=f"arn:aws:apigateway:{self.region}:lambda:path/2015-03-31/functions/{function_arn}/invocations")

    def permit(self, function: str, source_arn: str) -> None:
        self.lam.add_permission(FunctionName=function, StatementId=f"apigw-{len(source_arn)}",
                                Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com",
                                SourceArn=source_arn)

    def create_table(self) -> None:
        self.client("dynamodb").create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}])

    def stage_url(self, path: str) -> str:
        return f"{self.endpoint}/restapis/{self.id}/prod/_user_request_{path}"


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of a real HTTP request, whatever the status."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


@pytest.fixture
def server(fast_timings):
    reset()
    with SandboxServer(timings=fast_timings) as running:
        yield running
    reset()


@pytest.fixture
def api(server) -> Api:
    built = Api(server.endpoint_url)
    built.create_table()
    return built


PAYMENT = json.dumps({"amount": "42.10", "currency": "USD", "merchant_id": "m-1", "card_token": "tok_abcdef123"}).encode()


def test_a_payment_through_the_stage_url_is_written_to_the_table(api):
    # Lambda proxy integration: the function's statusCode/headers/body are the HTTP response.
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
    headers = {"Content-Type": "application/json", "Idempotency-Key": "order-77"}
    status, answer_headers, body = request(api.stage_url("/payment"), "POST", PAYMENT, headers)
    assert status == 201, body
    created = json.loads(body)
    assert answer_headers["Content-Type"] == "application/json"
    item = api.client("dynamodb").get_item(TableName=TABLE, Key={"transactionId": {"S": created["transactionId"]}},
                                           ConsistentRead=True)["Item"]
    assert item["amount"] == {"N": "42.10"} and item["region"] == {"S": REGION}
    again = request(api.stage_url("/payment"), "POST", PAYMENT, headers)
    assert again[0] == 201 and json.loads(again[2]) == created
    assert api.client("dynamodb").scan(TableName=TABLE)["Count"] == 1


def test_the_execute_api_host_serves_the_stage(api):
    # https://{restapi_id}.execute-api.{region}.amazonaws.com/{stage_name}/ -- Route 53's health
    # check will GET /prod/health on this host.
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-call-api.html
    host = f"{api.id}.execute-api.{REGION}.amazonaws.com"
    status, _, body = request(f"{api.endpoint}/prod/health", headers={"Host": host})
    assert status == 200, body
    assert json.loads(body)["role"] == "primary"


def test_the_event_is_built_as_api_gateway_builds_it(api):
    # Input format of a Lambda function for proxy integration.
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html#api-gateway-simple-proxy-for-lambda-input-format
    host = f"{api.id}.execute-api.{REGION}.amazonaws.com"
    # http.client sends header names exactly as given (urllib would Title-Case them).
    connection = http.client.HTTPConnection(api.endpoint.split("//")[1], timeout=60)
    connection.request("PUT", "/prod/echo/a/b?x=1&x=2&y=3", body=b"hi",
                       headers={"Host": host, "x-CUSTOM-case": "v", "Content-Type": "text/plain"})
    answer = connection.getresponse()
    status, headers, body = answer.status, answer.headers, answer.read()
    connection.close()
    assert status == 200 and headers["X-Echo"] == "1"
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]  # multiValueHeaders
    event = json.loads(body)
    assert event["resource"] == "/echo/{proxy+}" and event["path"] == "/echo/a/b"
    assert event["httpMethod"] == "PUT" and event["pathParameters"] == {"proxy": "a/b"}
    # Header names as the client sent them, not normalised.
    assert event["headers"]["x-CUSTOM-case"] == "v" and "X-Custom-Case" not in event["headers"]
    assert event["multiValueHeaders"]["x-CUSTOM-case"] == ["v"]
    assert event["queryStringParameters"] == {"x": "2", "y": "3"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["3"]}
    assert event["body"] == "hi" and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "prod" and context["path"] == "/prod/echo/a/b" and context["apiId"] == api.id
    assert context["requestId"] and context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["resourcePath"] == "/echo/{proxy+}" and context["accountId"] == ACCOUNT


def test_no_matching_resource_or_method_is_missing_authentication_token(api):
    # API Gateway answers an unknown resource or method with 403 "Missing Authentication Token".
    # https://repost.aws/knowledge-center/api-gateway-authentication-token-errors
    for method, path in (("GET", "/nothing-here"), ("GET", "/payment"), ("DELETE", "/health")):
        status, headers, body = request(api.stage_url(path), method)
        assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"}), (method, path)
        assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_a_function_error_or_a_malformed_response_is_a_502(api):
    # https://repost.aws/knowledge-center/malformed-502-api-gateway
    for mode in ("raise", "malformed"):
        status, _, body = request(api.stage_url(f"/echo/x?mode={mode}"))
        assert (status, json.loads(body)) == (502, {"message": "Internal server error"}), mode


def test_without_a_lambda_permission_the_api_answers_500(server):
    # No resource-policy statement lets apigateway.amazonaws.com invoke the function from this
    # API: "Execution failed due to configuration error: Invalid permissions on Lambda function".
    # https://repost.aws/knowledge-center/api-gateway-rest-api-lambda-integrations
    api = Api(server.endpoint_url, permit=False)
    assert request(api.stage_url("/health"))[0] == 500
    # A permission for another method does not cover GET /health...
    api.permit("payment", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api.id}/*/POST/payment")
    status, _, body = request(api.stage_url("/health"))
    assert (status, json.loads(body)) == (500, {"message": "Internal server error"})
    # ...and one for this method and resource path does (the table is missing: 503 from the function).
    api.permit("payment", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api.id}/*/GET/health")
    assert request(api.stage_url("/health"))[0] == 503


def test_a_custom_domain_serves_its_mapped_stage_per_region(server):
    # A regional custom domain name with a base path mapping serves the mapped stage; the same
    # name exists in each region and DNS (Route 53, later) picks the region: here the header.
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/rest-api-mappings.html
    apis = {}
    for region in (REGION, "us-east-2"):
        apis[region] = api = Api(server.endpoint_url, region=region)
        api.create_table()
        api.apigw.create_domain_name(
            domainName=DOMAIN, endpointConfiguration={"types": ["REGIONAL"]},
            regionalCertificateArn=f"arn:aws:acm:{region}:{ACCOUNT}:certificate/abc")
        api.apigw.create_base_path_mapping(domainName=DOMAIN, restApiId=api.id, stage="prod")
    for region, role in ((REGION, "primary"), ("us-east-2", "dr")):
        status, _, body = request(f"{server.endpoint_url}/health",
                                  headers={"Host": DOMAIN, "X-Drkit-Sandbox-Region": region})
        assert status == 200 and json.loads(body)["role"] == role and json.loads(body)["region"] == region
    assert request(f"{server.endpoint_url}/health", headers={"Host": DOMAIN})[0] == 421  # which region?
    status, _, body = request(f"{server.endpoint_url}/payment", "POST", PAYMENT,
                              {"Host": DOMAIN, "X-Drkit-Sandbox-Region": "us-east-2", "Content-Type": "application/json"})
    assert status == 201
    created = json.loads(body)["transactionId"]
    dr_table = apis["us-east-2"].client("dynamodb")
    assert dr_table.get_item(TableName=TABLE, Key={"transactionId": {"S": created}})["Item"]["region"] == {"S": "us-east-2"}
    assert "Item" not in apis[REGION].client("dynamodb").get_item(TableName=TABLE, Key={"transactionId": {"S": created}})


def test_a_base_path_mapping_routes_by_its_first_segment(server):
    api = Api(server.endpoint_url)
    api.apigw.create_domain_name(domainName=DOMAIN, endpointConfiguration={"types": ["REGIONAL"]},
                                 regionalCertificateArn=f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/abc")
    api.apigw.create_base_path_mapping(domainName=DOMAIN, restApiId=api.id, basePath="v1", stage="prod")
    status, _, body = request(f"{server.endpoint_url}/v1/echo/z", headers={"Host": DOMAIN})
    assert status == 200
    event = json.loads(body)
    assert event["resource"] == "/echo/{proxy+}" and event["path"] == "/v1/echo/z"
    assert event["requestContext"]["domainName"] == DOMAIN
    assert request(f"{server.endpoint_url}/v2/echo/z", headers={"Host": DOMAIN})[0] == 403
