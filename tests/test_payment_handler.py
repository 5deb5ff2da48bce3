"""lambda_handlers/payment.py called directly with API Gateway proxy events, against moto.

Every outcome is read back from DynamoDB with boto3, never from the handler's own answer alone.
"""

from __future__ import annotations

import json
import types
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from moto import mock_aws

from lambda_handlers import payment

REGION = "us-east-2"
TABLE = "payment-transactions-test"
VISA_TEST_PAN = "4111111111111111"  # Luhn-valid test number


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("DR_ROLE", "dr")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setattr(payment, "_clients", {})
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "transactionId", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "transactionId", "AttributeType": "S"}])
        yield ddb


class Context:
    aws_request_id = "lambda-req-1"


def event(method: str = "POST", path: str = "/payment", body: Any = None, headers: dict | None = None,
          resource: str | None = None, stage_path: bool = False) -> dict[str, Any]:
    headers = headers or {}
    return {
        "resource": resource if resource is not None else path,
        "path": f"/prod{path}" if stage_path else path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {"stage": "prod", "requestId": "api-req-1", "identity": {"sourceIp": "192.0.2.1"}},
        "body": body if body is None or isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
    }


def pay(body: Any = None, key: str | None = None, **kwargs: Any) -> tuple[int, dict, dict]:
    body = body if body is not None else good()
    headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
    result = payment.handler(event(body=body, headers=headers, **kwargs), Context())
    return result["statusCode"], json.loads(result["body"]), result["headers"]


def good(**changes: Any) -> dict[str, Any]:
    return {"amount": "12.50", "currency": "EUR", "merchant_id": "m-42", "card_token": "tok_4f9a8b7c6d", **changes}


def items(ddb) -> list[dict]:
    return ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]


def test_payment_is_written_to_the_regional_table(table):
    status, body, _ = pay()
    assert status == 201
    assert body["status"] == "ACCEPTED" and body["region"] == REGION
    stored = table.get_item(TableName=TABLE, Key={"transactionId": {"S": body["transactionId"]}},
                            ConsistentRead=True)["Item"]
    assert stored["amount"] == {"N": "12.50"}  # a DynamoDB number, never through float
    assert stored["currency"] == {"S": "EUR"} and stored["merchantId"] == {"S": "m-42"}
    assert stored["region"] == {"S": REGION} and stored["drRole"] == {"S": "dr"}


def test_amount_keeps_its_exact_decimal_value(table):
    status, body, _ = pay(good(amount="0.10"))
    assert status == 201
    stored = boto3.resource("dynamodb", region_name=REGION).Table(TABLE).get_item(
        Key={"transactionId": body["transactionId"]})["Item"]
    assert stored["amount"] == Decimal("0.10")


def test_same_key_and_body_returns_the_first_result_with_one_item(table):
    first = pay(key="order-1001")
    second = pay(key="order-1001")
    assert first[0] == second[0] == 201
    assert second[1] == first[1]
    assert second[2].get("Idempotent-Replayed") == "true"
    assert len(items(table)) == 1


def test_same_key_equal_amount_written_differently_is_the_same_request(table):
    assert pay(good(amount="12.5"), key="k-2")[0] == 201
    status, _, _ = pay(good(amount="12.50"), key="k-2")
    assert status == 201 and len(items(table)) == 1


def test_same_key_with_a_different_body_is_a_conflict(table):
    assert pay(key="order-1002")[0] == 201
    status, body, _ = pay(good(amount="99.00"), key="order-1002")
    assert status == 409 and "different request body" in body["message"]
    stored = items(table)
    assert len(stored) == 1 and stored[0]["amount"] == {"N": "12.50"}


def test_idempotency_header_is_case_insensitive(table):
    h1 = {"idempotency-key": "abc-1"}
    h2 = {"IDEMPOTENCY-KEY": "abc-1"}
    for headers in (h1, h2):
        assert payment.handler(event(body=good(), headers=headers), Context())["statusCode"] == 201
    assert len(items(table)) == 1


def test_without_a_key_each_request_is_a_new_payment(table):
    assert pay()[0] == pay()[0] == 201
    assert len(items(table)) == 2


@pytest.mark.parametrize("body", [
    good(card_token=VISA_TEST_PAN),
    good(merchant_id="4111 1111 1111 1111"),
    good(card_token="tok_" + VISA_TEST_PAN),
    {**good(), "note": f"card {VISA_TEST_PAN}"},
    {**good(), "meta": {"pan": "5555-5555-5555-4444"}},
    {**good(), "x": [int(VISA_TEST_PAN)]},
])
def test_a_card_number_anywhere_is_refused_and_never_stored_or_logged(table, body, capsys):
    status, answer, _ = pay(body)
    assert status == 400 and "card number" in answer["message"]
    assert items(table) == []
    out = capsys.readouterr().out
    assert "4111" not in out and "5555" not in out


def test_a_non_luhn_long_number_is_not_taken_for_a_card(table):
    assert pay(good(card_token="tok_4111111111111112"))[0] == 201


@pytest.mark.parametrize("body,field", [
    ("{not json", "body"),
    ("[1, 2]", "body"),
    (None, "body"),
    (good(amount=12.5), "amount"),
    (good(amount=12), "amount"),
    (good(amount="12.505"), "amount"),
    (good(amount="-1.00"), "amount"),
    (good(amount="0"), "amount"),
    (good(amount="1e3"), "amount"),
    (good(amount="NaN"), "amount"),
    (good(amount="1000000.01"), "amount"),
    (good(amount="10.50", currency="JPY"), "amount"),
    (good(currency="XYZ"), "currency"),
    (good(currency="usd"), "currency"),
    (good(merchant_id=""), "merchant_id"),
    (good(card_token="short"), "card_token"),
    ({k: v for k, v in good().items() if k != "merchant_id"}, "merchant_id"),
    ({**good(), "extra": "x"}, "extra"),
])
def test_bad_input_is_a_400_naming_the_field(table, body, field):
    if body is None:
        result = payment.handler(event(body=None), Context())
        status, answer = result["statusCode"], json.loads(result["body"])
    else:
        status, answer, _ = pay(body)
    assert status == 400 and answer["field"] == field
    assert items(table) == []


def test_a_whole_yen_amount_is_accepted(table):
    status, body, _ = pay(good(amount="1500", currency="JPY"))
    assert status == 201 and body["amount"] == "1500"


def test_routes_arrive_with_stage_or_base_path(table):
    assert payment.handler(event(body=good(), stage_path=True), Context())["statusCode"] == 201
    proxied = event(body=good(), resource="/{proxy+}", path="/v1/payment")
    proxied["pathParameters"] = {"proxy": "payment"}
    assert payment.handler(proxied, Context())["statusCode"] == 201
    assert len(items(table)) == 2


def test_unknown_route_is_404_and_wrong_method_is_405(table):
    assert payment.handler(event(method="GET", path="/nope"), Context())["statusCode"] == 404
    wrong = payment.handler(event(method="GET", path="/payment"), Context())
    assert wrong["statusCode"] == 405 and wrong["headers"]["Allow"] == "POST"
    assert payment.handler(event(method="POST", path="/health"), Context())["statusCode"] == 405


def _fail_calls(monkeypatch, operation: str, error_code: str, calls: list) -> None:
    """Make moto's DynamoDB answer every `operation` with an AWS error (HTTP 400 and the error
    type, as DynamoDB sends it), before touching the table, counting the attempts."""
    from moto.dynamodb.exceptions import DynamodbException
    from moto.dynamodb.models import DynamoDBBackend

    def fail(self, *args, **kwargs):
        calls.append(operation)
        raise DynamodbException(f"com.amazonaws.dynamodb.v20120810#{error_code}", "injected by the test")

    monkeypatch.setattr(DynamoDBBackend, operation, fail)


def test_a_throttled_table_is_a_503_to_retry_after_botocore_retried(table, monkeypatch):
    monkeypatch.setattr("botocore.endpoint.time", types.SimpleNamespace(sleep=lambda s: None))
    calls: list = []
    _fail_calls(monkeypatch, "put_item", "ProvisionedThroughputExceededException", calls)
    status, body, headers = pay(key="order-throttled")
    assert status == 503 and headers["Retry-After"] == "1" and "Idempotency-Key" in body["message"]
    assert len(calls) == 3  # botocore standard mode retried the throttle (3 attempts in all)
    assert items(table) == []


def test_an_unexpected_failure_is_a_500_with_a_request_id_and_no_internals(table, capsys, monkeypatch):
    _fail_calls(monkeypatch, "put_item", "ValidationException", [])
    status, body, _ = pay(key="order-500")
    assert status == 500 and body == {"message": "Internal error", "requestId": "lambda-req-1"}
    log = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert log["level"] == "ERROR" and log["error"] == "ClientError"


def test_health_is_200_when_the_regional_table_answers(table):
    result = payment.handler(event(method="GET", path="/health", stage_path=True), Context())
    body = json.loads(result["body"])
    assert result["statusCode"] == 200
    assert body["region"] == REGION and body["role"] == "dr"
    assert body["checked"][0]["table"] == TABLE and body["checked"][0]["operation"] == "GetItem"
    assert items(table) == []  # the health check never writes


def test_health_is_503_when_the_table_is_missing(table):
    table.delete_table(TableName=TABLE)
    result = payment.handler(event(method="GET", path="/health"), Context())
    assert result["statusCode"] == 503
    assert "ResourceNotFoundException" in json.loads(result["body"])["reason"]


def test_health_is_503_when_dynamodb_does_not_answer_in_time(table):
    client = payment._client("dynamodb-health", REGION, payment.HEALTH_CONFIG)
    calls: list = []

    def time_out(request, **kwargs):
        calls.append(1)
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register("before-send.dynamodb.GetItem", time_out)
    result = payment.handler(event(method="GET", path="/health"), Context())
    assert result["statusCode"] == 503 and "in time" in json.loads(result["body"])["reason"]
    assert len(calls) == 1  # no retries: Route 53 needs an answer within 2 s


def test_health_reports_a_bad_configuration(table, monkeypatch):
    monkeypatch.setenv("DR_ROLE", "standby")
    result = payment.handler(event(method="GET", path="/health"), Context())
    assert result["statusCode"] == 503 and "DR_ROLE" in json.loads(result["body"])["reason"]


def test_one_json_log_line_per_request_without_token_or_body(table, capsys):
    pay(key="order-log")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    log = json.loads(lines[0])
    assert log["status"] == 201 and log["route"] == "/payment" and log["idempotency"] == "new"
    assert "tok_4f9a8b7c6d" not in lines[0] and "12.50" not in lines[0]


def test_an_idempotency_key_sent_twice_with_different_values_is_refused(table):
    request = event(body=good(), headers={"Idempotency-Key": "a"})
    request["multiValueHeaders"] = {"Idempotency-Key": ["a", "b"]}
    result = payment.handler(request, Context())
    assert result["statusCode"] == 400 and json.loads(result["body"])["field"] == "Idempotency-Key"
    assert items(table) == []
