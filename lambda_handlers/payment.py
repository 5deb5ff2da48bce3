"""The payment API's Lambda function: API Gateway (REST, Lambda proxy) -> regional DynamoDB.

Deployed by drkit to both regions. Pure Python on boto3, no drkit import, so the zip is this one
file. Configured by `TABLE_NAME` and `DR_ROLE` (`primary`|`dr`); the region is Lambda's own
`AWS_REGION`, so every write goes to the region-local replica of the global table.

Routes: `POST /payment` records a transaction; `GET /health` is Route 53's health check and only
reads (a standby region must report healthy, and Route 53 fails open, so it never needs Aurora
or a writable database).

Idempotency: with an `Idempotency-Key` header the transaction id is derived from the key, and
the item is written with `attribute_not_exists(transactionId)`. The conditional write decides
(no read-then-write race); a replay gets the stored first result back, a different body is a
409. The same key sent to both regions maps to the same item, so replication converges on one.

Card data: a 13-19 digit Luhn-valid number anywhere in the body is refused; the card token is
stored but never logged. Amounts are `decimal.Decimal` end to end, never floats.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import traceback
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

ROLES = frozenset({"primary", "dr"})
MAX_AMOUNT = Decimal("1000000.00")
AMOUNT_PATTERN = re.compile(r"^(0|[1-9][0-9]{0,6})(\.[0-9]{1,2})?$")
MERCHANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{7,127}$")
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as Stripe & co.
# Digit runs that may be a card number: 13-19 digits, optionally grouped by spaces or dashes.
PAN_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")
REQUIRED_FIELDS = ("amount", "currency", "merchant_id", "card_token")
STATUS_ACCEPTED = "ACCEPTED"
# Route 53 allows 2 s for the response once connected; keep the probe well inside that.
HEALTH_CONFIG = Config(connect_timeout=0.5, read_timeout=1.0, retries={"mode": "standard", "total_max_attempts": 1})
WRITE_CONFIG = Config(connect_timeout=1.0, read_timeout=3.0, retries={"mode": "standard", "total_max_attempts": 3})
HEALTH_PROBE_KEY = "health#probe"  # never written: a GetItem miss proves the table answers
THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "Throttling", "TooManyRequestsException",
})
ROUTES = {"/payment": ("POST",), "/health": ("GET", "HEAD")}

# Active ISO 4217 currency codes (circulating currencies; funds, metals, test and "no currency"
# codes such as XAU, XTS, XXX are not payment currencies). ISO 4217 amendments through 2025.
ACTIVE_CURRENCIES = frozenset("""
AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD
KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN
NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP
SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES
VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split())
# Currencies without minor units (ISO 4217 exponent 0): their amounts are whole numbers.
ZERO_DECIMAL_CURRENCIES = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split()
)

_clients: dict[str, Any] = {}  # boto3 clients, created on first use and kept while warm


class BadRequest(Exception):
    """A client error: the message names the field and is safe to return."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.monotonic()
    request_id = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    log: dict[str, Any] = {
        "level": "INFO", "message": "request", "requestId": request_id,
        "apiRequestId": ((event or {}).get("requestContext") or {}).get("requestId"),
        "method": (event or {}).get("httpMethod"), "region": os.environ.get("AWS_REGION"),
        "role": os.environ.get("DR_ROLE"),
    }
    try:
        response = _dispatch(event or {}, request_id, log)
    except Exception as err:  # the last resort: no internals to the client, the type to the log
        log.update(level="ERROR", error=type(err).__name__, trace=_frames(err))
        response = _json(500, {"message": "Internal error", "requestId": request_id})
    log["status"] = response["statusCode"]
    log["durationMs"] = round((time.monotonic() - started) * 1000, 1)
    print(json.dumps(log, separators=(",", ":"), default=str))
    return response


def _dispatch(event: dict[str, Any], request_id: str, log: dict[str, Any]) -> dict[str, Any]:
    route = route_of(event)
    log["route"] = route
    if route not in ROUTES:
        return _json(404, {"message": "Not found"})
    method = (event.get("httpMethod") or "").upper()
    if method not in ROUTES[route]:
        return _json(405, {"message": f"Method {method or '?'} not allowed on {route}"},
                     {"Allow": ", ".join(ROUTES[route])})
    if route == "/health":
        return health(request_id, log)
    return create_payment(event, request_id, log)


def route_of(event: dict[str, Any]) -> str:
    """The route whatever the integration: `resource` is the API's own path ("/payment"); a
    greedy `{proxy+}` resource carries it in pathParameters; `path` may hold the stage or a
    custom domain's base path ("/prod/payment", "/v1/payment"), so it is matched by suffix."""
    resource = event.get("resource") or ""
    if resource and "{" not in resource:
        candidate = resource
    elif "{proxy+}" in resource and (event.get("pathParameters") or {}).get("proxy") is not None:
        prefix = resource.split("{proxy+}")[0]
        candidate = prefix + event["pathParameters"]["proxy"]
    else:
        candidate = event.get("path") or ""
    candidate = "/" + candidate.strip("/")
    if candidate in ROUTES:
        return candidate
    for known in ROUTES:
        if candidate.endswith(known):
            return known
    return candidate


# -- POST /payment -------------------------------------------------------------------------

def create_payment(event: dict[str, Any], request_id: str, log: dict[str, Any]) -> dict[str, Any]:
    table = os.environ.get("TABLE_NAME")
    region = os.environ.get("AWS_REGION")
    if not table or not region:
        log.update(level="ERROR", error="configuration: TABLE_NAME or AWS_REGION not set")
        return _json(500, {"message": "Internal error", "requestId": request_id})
    try:
        key = idempotency_key(event.get("headers"), event.get("multiValueHeaders"))
        payment = parse_payment(event)
    except BadRequest as err:
        log["invalidField"] = err.field
        return _json(400, {"message": str(err), "field": err.field})

    digest = body_digest(payment)
    transaction_id = f"txn_{hashlib.sha256(key.encode()).hexdigest()[:32]}" if key else f"txn_{uuid.uuid4().hex}"
    result = {
        "transactionId": transaction_id, "status": STATUS_ACCEPTED, "region": region,
        "amount": str(payment["amount"]), "currency": payment["currency"],
        "createdAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    item = {
        "transactionId": {"S": transaction_id},
        "amount": {"N": str(payment["amount"])},
        "currency": {"S": payment["currency"]},
        "merchantId": {"S": payment["merchant_id"]},
        "cardToken": {"S": payment["card_token"]},
        "status": {"S": STATUS_ACCEPTED},
        "region": {"S": region},
        "drRole": {"S": os.environ.get("DR_ROLE", "")},
        "createdAt": {"S": result["createdAt"]},
        "requestDigest": {"S": digest},
        "requestId": {"S": request_id},
    }
    if key:
        item["idempotencyKey"] = {"S": key}
    log["transactionId"] = transaction_id
    client = _client("dynamodb", region, WRITE_CONFIG)
    try:
        client.put_item(
            TableName=table, Item=item, ConditionExpression="attribute_not_exists(transactionId)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            existing = err.response.get("Item") or _read_item(client, table, transaction_id)
            return _replay(existing, digest, key, log)
        if code in THROTTLING_CODES:
            log.update(level="WARNING", error=code)
            return _json(503, {"message": "The payment store is busy; retry with the same Idempotency-Key",
                               "requestId": request_id}, {"Retry-After": "1"})
        raise
    log["idempotency"] = "new" if key else "none"
    return _json(201, result)


def _replay(existing: dict[str, Any] | None, digest: str, key: str | None, log: dict[str, Any]) -> dict[str, Any]:
    """The first result for a repeated key, or a 409 when the key was used for another body."""
    if not key or not existing:
        raise RuntimeError("conditional write failed without an idempotency key or an item")
    if existing.get("requestDigest", {}).get("S") != digest:
        log["idempotency"] = "conflict"
        return _json(409, {"message": "Idempotency-Key was already used with a different request body",
                           "field": "Idempotency-Key"})
    log["idempotency"] = "replayed"
    return _json(201, {
        "transactionId": existing["transactionId"]["S"], "status": existing["status"]["S"],
        "region": existing["region"]["S"], "amount": existing["amount"]["N"],
        "currency": existing["currency"]["S"], "createdAt": existing["createdAt"]["S"],
    }, {"Idempotent-Replayed": "true"})


def _read_item(client: Any, table: str, transaction_id: str) -> dict[str, Any] | None:
    """The stored item when the failed conditional write did not return it (strongly consistent:
    the write that beat ours went to this same regional table)."""
    found = client.get_item(TableName=table, Key={"transactionId": {"S": transaction_id}}, ConsistentRead=True)
    return found.get("Item")


def parse_payment(event: dict[str, Any]) -> dict[str, Any]:
    """The validated request, or BadRequest naming the first bad field."""
    raw = event.get("body")
    if raw is None or raw == "":
        raise BadRequest("body", "body is required: a JSON object")
    if event.get("isBase64Encoded"):
        import base64
        try:
            raw = base64.b64decode(raw).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("body", "body is not valid base64-encoded UTF-8") from None
    try:
        body = json.loads(raw, parse_float=Decimal, parse_int=Decimal)
    except (ValueError, RecursionError):
        raise BadRequest("body", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body", "body must be a JSON object")
    pan_field = find_card_number(body)
    if pan_field is not None:
        raise BadRequest(pan_field, f"{pan_field} looks like a card number: send a card_token, never card data")
    for name in REQUIRED_FIELDS:
        if name not in body:
            raise BadRequest(name, f"{name} is required")
    unknown = sorted(set(body) - set(REQUIRED_FIELDS))
    if unknown:
        raise BadRequest(unknown[0], f"{unknown[0]} is not a known field")
    currency = body["currency"]
    if not isinstance(currency, str) or currency not in ACTIVE_CURRENCIES:
        raise BadRequest("currency", "currency must be an active ISO 4217 code such as USD")
    amount = parse_amount(body["amount"], currency)
    merchant = body["merchant_id"]
    if not isinstance(merchant, str) or not MERCHANT_PATTERN.match(merchant):
        raise BadRequest("merchant_id", "merchant_id must be 1-64 letters, digits, '.', '_' or '-'")
    token = body["card_token"]
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise BadRequest("card_token", "card_token must be a token of 8-128 letters, digits, '_' or '-'")
    return {"amount": amount, "currency": currency, "merchant_id": merchant, "card_token": token}


def parse_amount(value: Any, currency: str) -> Decimal:
    if not isinstance(value, str):
        raise BadRequest("amount", "amount must be a decimal string such as \"12.50\"")
    if not AMOUNT_PATTERN.match(value):
        raise BadRequest("amount", "amount must be a positive decimal string with at most 2 decimal places")
    amount = Decimal(value)
    if amount <= 0:
        raise BadRequest("amount", "amount must be greater than 0")
    if amount > MAX_AMOUNT:
        raise BadRequest("amount", f"amount must be at most {MAX_AMOUNT}")
    if currency in ZERO_DECIMAL_CURRENCIES and amount != amount.to_integral_value():
        raise BadRequest("amount", f"{currency} has no minor unit: amount must be a whole number")
    return amount.quantize(Decimal(1) if currency in ZERO_DECIMAL_CURRENCIES else Decimal("0.01"))


def find_card_number(value: Any, path: str = "") -> str | None:
    """The path of the first field (or key) holding a Luhn-valid 13-19 digit number, else None."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _has_pan(str(key)):
                return where
            found = find_card_number(item, where)
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = find_card_number(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if isinstance(value, (str, Decimal, int)) and not isinstance(value, bool):
        return path or "body" if _has_pan(str(value)) else None
    return None


def _has_pan(text: str) -> bool:
    for match in PAN_CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        n = int(char)
        if index % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def body_digest(payment: dict[str, Any]) -> str:
    """A digest of the request's meaning ("10.5" and "10.50" are the same amount)."""
    canonical = json.dumps({k: str(v) for k, v in payment.items()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key(headers: dict[str, Any] | None, multi: dict[str, Any] | None) -> str | None:
    """The Idempotency-Key header, found case-insensitively (clients send any case)."""
    values: list[str] = []
    for name, value in (multi or {}).items():
        if name.lower() == "idempotency-key":
            values.extend(value or [])
    if not values:
        values = [v for n, v in (headers or {}).items() if n.lower() == "idempotency-key" and v is not None]
    if not values:
        return None
    if len(set(values)) > 1:
        raise BadRequest("Idempotency-Key", "Idempotency-Key was sent more than once with different values")
    key = values[0]
    if not IDEMPOTENCY_KEY_PATTERN.match(key):
        raise BadRequest("Idempotency-Key", "Idempotency-Key must be 1-255 visible ASCII characters")
    return key


# -- GET /health ---------------------------------------------------------------------------

def health(request_id: str, log: dict[str, Any]) -> dict[str, Any]:
    """200 when the regional table answers a read within about a second, else 503 and why."""
    region = os.environ.get("AWS_REGION")
    role = os.environ.get("DR_ROLE")
    table = os.environ.get("TABLE_NAME")
    base = {"region": region, "role": role}
    if not region or not table or role not in ROLES:
        reason = "configuration: TABLE_NAME, AWS_REGION and DR_ROLE (primary|dr) must be set"
        log.update(level="ERROR", error=reason)
        return _json(503, {"status": "unhealthy", **base, "reason": reason})
    check = {"service": "dynamodb", "table": table, "operation": "GetItem", "consistentRead": False}
    started = time.monotonic()
    try:
        _client("dynamodb-health", region, HEALTH_CONFIG).get_item(
            TableName=table, Key={"transactionId": {"S": HEALTH_PROBE_KEY}}, ProjectionExpression="transactionId"
        )
    except ClientError as err:
        reason = f"DynamoDB {err.response.get('Error', {}).get('Code', 'error')} on table {table}"
    except (ConnectTimeoutError, ReadTimeoutError):
        reason = f"DynamoDB did not answer in time on table {table}"
    except BotoCoreError as err:
        reason = f"DynamoDB unreachable: {type(err).__name__}"
    else:
        check["latencyMs"] = round((time.monotonic() - started) * 1000, 1)
        return _json(200, {"status": "healthy", **base, "checked": [check]})
    check["latencyMs"] = round((time.monotonic() - started) * 1000, 1)
    log.update(level="WARNING", error=reason)
    return _json(503, {"status": "unhealthy", **base, "reason": reason, "checked": [check]})


# -- helpers -------------------------------------------------------------------------------

def _client(name: str, region: str, config: Config) -> Any:
    """One client per purpose and region, made on first use and reused while the sandbox is warm
    (creating one costs tens of milliseconds). `name` separates the health client's timeouts."""
    cache_key = f"{name}:{region}"
    if cache_key not in _clients:
        _clients[cache_key] = boto3.session.Session().client("dynamodb", region_name=region, config=config)
    return _clients[cache_key]


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def _frames(err: BaseException) -> list[str]:
    """Where it failed, without the exception's message (which could quote request data)."""
    return [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}" for f in traceback.extract_tb(err.__traceback__)]
