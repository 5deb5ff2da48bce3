"""What an AWS request is (service, API operation, protocol) and how AWS words an error for it.

Faults are armed by API name (`CreateVpc`), but a fault hook sees only an HTTP request: this
module reads the operation back from the wire as AWS's front ends do -- the `X-Amz-Target` header
(JSON protocols), the `/service/<S>/operation/<Op>` path (Smithy RPC v2 CBOR), the `Action`
parameter (query and EC2 protocols), or, for REST protocols (S3, Route 53, Lambda, API Gateway),
the method and path matched against the `requestUri` templates in botocore's service model.
https://smithy.io/2.0/aws/protocols/index.html
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

# SigV4 signing names that differ from the boto3 client name (both spellings are accepted).
SIGNING_NAME_TO_CLIENT = {
    "monitoring": "cloudwatch",
    "states": "stepfunctions",
    "tagging": "resourcegroupstaggingapi",
    "elasticloadbalancing": "elbv2",
    "execute-api": "apigateway",
    "email": "ses",
    "events": "events",
}

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_CBOR_OPERATION_PATH = re.compile(r"/service/[^/]+/operation/([^/?]+)")
_S3_VIRTUAL_HOST = re.compile(r"^(.+?)\.s3[.-]")


def client_name(service: str) -> str:
    """The boto3 client name for a client name or a SigV4 signing name ("monitoring")."""
    return SIGNING_NAME_TO_CLIENT.get(service.lower(), service.lower())


@dataclass
class RequestView:
    """The parts of an AWS request the fault hooks need, from botocore or from WSGI."""

    method: str
    host: str
    path: str
    query: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    service: str = ""  # boto3 client name, filled by RequestResolver
    operation: str = ""
    protocol: str = ""
    query_compatible: bool = False  # JSON/CBOR service that keeps its query-era error codes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class RequestResolver:
    """Reads the service and API operation of a request; caches botocore's REST routes."""

    def __init__(self) -> None:
        self._session: Any = None
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._routes: dict[str, list[_Route]] = {}

    def resolve(self, request: RequestView) -> RequestView:
        request.service = self._service(request)
        model = self._model(request.service)
        request.protocol = model.metadata.get("protocol", "") if model is not None else ""
        request.query_compatible = model is not None and "awsQueryCompatible" in model.metadata
        request.operation = self._operation(request, model)
        return request

    @staticmethod
    def _wire_protocol(request: RequestView, model: Any, protocol: str) -> None:
        """The protocol this request used: a service may offer several (CloudWatch: CBOR, JSON
        or query), and the error must be in the one the client speaks."""
        if model is not None and len(model.metadata.get("protocols", [])) > 1:
            request.protocol = protocol

    def _service(self, request: RequestView) -> str:
        scope = _CREDENTIAL_SCOPE.search(request.header("authorization"))
        if scope is None:  # presigned URL
            scope = _CREDENTIAL_SCOPE.search("Credential=" + unquote(_query_value(request.query, "X-Amz-Credential")))
        if scope is not None:
            return client_name(scope.group(2))
        return client_name(request.host.split(".")[0]) if request.host else ""

    def _model(self, service: str) -> Any:
        if not service:
            return None
        with self._lock:
            if service not in self._models:
                import botocore.session
                from botocore.exceptions import UnknownServiceError

                if self._session is None:
                    self._session = botocore.session.get_session()
                try:
                    self._models[service] = self._session.get_service_model(service)
                except UnknownServiceError:
                    self._models[service] = None
            return self._models[service]

    def _operation(self, request: RequestView, model: Any) -> str:
        target = request.header("x-amz-target")
        if target:
            self._wire_protocol(request, model, "json")
            return target.rsplit(".", 1)[-1]
        cbor = _CBOR_OPERATION_PATH.search(request.path)
        if cbor is not None:
            self._wire_protocol(request, model, "smithy-rpc-v2-cbor")
            return cbor.group(1)
        action = _query_value(request.query, "Action")
        if not action and "x-www-form-urlencoded" in request.header("content-type"):
            action = _query_value(request.body.decode("utf-8", "replace"), "Action")
        if action:
            self._wire_protocol(request, model, "query")
            return action
        if model is not None and model.metadata.get("protocol", "").startswith("rest"):
            return self._rest_operation(request, model)
        return ""

    def _rest_operation(self, request: RequestView, model: Any) -> str:
        """The operation whose method, path template, required query keys and required headers
        match; the most specific wins (PutObjectTagging over PutObject, CopyObject over PutObject)."""
        path = request.path or "/"
        if request.service == "s3":
            bucket = _S3_VIRTUAL_HOST.match(request.host)
            if bucket is not None:
                path = "/" + bucket.group(1) + path
        query_keys = set(parse_qs(request.query, keep_blank_values=True))
        best, best_score = "", (-1, -1, -1)
        for route in self._rest_routes(request.service, model):
            if route.method != request.method.upper() or not route.path.match(path):
                continue
            if any(key not in query_keys for key in route.query_keys):
                continue
            if any(not request.header(h) for h in route.headers):
                continue
            score = (len(route.query_keys), len(route.headers), len(route.path.pattern))
            if score > best_score:
                best, best_score = route.operation, score
        return best

    def _rest_routes(self, service: str, model: Any) -> list["_Route"]:
        with self._lock:
            if service not in self._routes:
                self._routes[service] = [_Route.of(model.operation_model(n)) for n in model.operation_names]
            return self._routes[service]


@dataclass(frozen=True)
class _Route:
    """One REST operation's `requestUri` template, as a matcher."""

    operation: str
    method: str
    path: re.Pattern[str]
    query_keys: frozenset[str]
    headers: frozenset[str]  # required header parameters (CopyObject's x-amz-copy-source)

    @classmethod
    def of(cls, operation: Any) -> "_Route":
        http = operation.http
        template, _, query = http.get("requestUri", "/").partition("?")
        regex = ""
        for part in re.split(r"(\{[^}]+\})", template.rstrip("/")):
            if part.startswith("{"):
                regex += ".+" if part.endswith("+}") else "[^/]+"
            else:
                regex += re.escape(part)
        headers: set[str] = set()
        shape = operation.input_shape
        if shape is not None:
            for member in shape.required_members:
                spec = shape.members[member].serialization
                if spec.get("location") == "header":
                    headers.add(spec.get("name", member).lower())
        return cls(
            operation=operation.name,
            method=http.get("method", "POST").upper(),
            path=re.compile(f"^{regex}/?$"),
            query_keys=frozenset(parse_qs(query, keep_blank_values=True)),
            headers=frozenset(headers),
        )


def _query_value(query: str, name: str) -> str:
    values = parse_qs(query, keep_blank_values=True).get(name)
    return values[0] if values else ""


def split_url(url: str) -> tuple[str, str, str]:
    """(host, path, query) of a URL."""
    parts = urlsplit(url)
    return parts.netloc, parts.path, parts.query


# -- errors as AWS words them --------------------------------------------------------------

# The throttling error each service answers with, and its HTTP status.
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/throttling.html (RequestLimitExceeded)
# https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html (SlowDown, 503)
# https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html (TooManyRequestsException, 429)
THROTTLE_BY_SERVICE = {
    "ec2": ("RequestLimitExceeded", 503),
    "s3": ("SlowDown", 503),
    "lambda": ("TooManyRequestsException", 429),
    "apigateway": ("TooManyRequestsException", 429),
    "route53": ("Throttling", 400),
}
THROTTLE_BY_PROTOCOL = {
    "query": ("Throttling", 400),
    "smithy-rpc-v2-cbor": ("Throttling", 400),
    "json": ("ThrottlingException", 400),
    "rest-json": ("TooManyRequestsException", 429),
    "rest-xml": ("Throttling", 400),
}


def throttle_error(request: RequestView) -> tuple[str, int]:
    if request.query_compatible:
        return THROTTLE_BY_PROTOCOL["query"]
    return THROTTLE_BY_SERVICE.get(request.service) or THROTTLE_BY_PROTOCOL.get(request.protocol, ("Throttling", 400))


def error_response(request: RequestView, code: str, status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    """An AWS error in the wire format of the request's protocol, parseable by botocore."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id, "x-amz-request-id": request_id}
    protocol = request.protocol
    if request.query_compatible:  # https://smithy.io/2.0/aws/protocols/aws-query-protocol.html#aws-protocols-awsquerycompatible-trait
        headers["x-amzn-query-error"] = f"{code};{'Receiver' if status >= 500 else 'Sender'}"
    if protocol == "ec2":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
        headers["Content-Type"] = "text/xml"
    elif protocol in ("query", "rest-xml") and request.service != "s3":
        kind = "Receiver" if status >= 500 else "Sender"
        body = (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        headers["Content-Type"] = "text/xml"
    elif protocol == "rest-xml":  # S3
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        headers["Content-Type"] = "application/xml"
    elif protocol == "json":
        body = json.dumps({"__type": code, "message": message})
        headers["Content-Type"] = "application/x-amz-json-1.1"
    elif protocol == "rest-json":
        body = json.dumps({"message": message})
        headers["Content-Type"] = "application/json"
        headers["x-amzn-ErrorType"] = code
    elif protocol == "smithy-rpc-v2-cbor":
        headers["Content-Type"] = "application/cbor"
        headers["smithy-protocol"] = "rpc-v2-cbor"
        return status, headers, cbor_text_map({"__type": code, "message": message})
    else:
        body = json.dumps({"__type": code, "message": message})
        headers["Content-Type"] = "application/json"
    return status, headers, body.encode("utf-8")


def cbor_text_map(values: dict[str, str]) -> bytes:
    """A CBOR map of text strings (RFC 8949 major types 5 and 3): enough for an error body."""

    def head(major: int, length: int) -> bytes:
        if length < 24:
            return bytes([major << 5 | length])
        if length < 256:
            return bytes([major << 5 | 24, length])
        return bytes([major << 5 | 25]) + length.to_bytes(2, "big")

    out = head(5, len(values))
    for key, value in values.items():
        for text in (key, value):
            raw = text.encode("utf-8")
            out += head(3, len(raw)) + raw
    return out
