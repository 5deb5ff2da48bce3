"""Deployed REST API stages answer HTTP requests, with Lambda proxy integrations run for real.

moto stores REST APIs, deployments, custom domain names and base path mappings but serves none
of them. `ApiGatewayServing` wraps the sandbox's WSGI app (`drkit.sandbox.make_app`) and answers:
- `<endpoint>/restapis/<api-id>/<stage>/_user_request_/<path>` (the local-emulator URL form);
- requests whose Host is `<api-id>.execute-api.<region>.amazonaws.com`, path `/<stage>/<path>`
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-call-api.html);
- requests whose Host is a custom domain name with base path mappings; the first path segment
  picks the mapping, else the `(none)` one
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/rest-api-mappings.html). A name
  created in several regions (a regional name per region, as failover needs) is served by the
  region named in the sandbox-only header `X-Drkit-Sandbox-Region` -- the part DNS plays on AWS.
Everything else goes to moto.

What it emulates, from the Lambda proxy integration page
(https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html):
the event (resource, path, httpMethod, headers and multiValueHeaders as sent, query strings,
pathParameters, stageVariables, requestContext with stage, requestId, identity.sourceIp, body,
isBase64Encoded); the function's {statusCode, headers, multiValueHeaders, body, isBase64Encoded}
as the HTTP response; a function error or a malformed response is 502 {"message": "Internal
server error"}; no matching resource or method is 403 {"message":"Missing Authentication Token"};
a function whose resource policy does not let apigateway.amazonaws.com invoke it from this
method's execute-api ARN is 500 {"message": "Internal server error"} (the log says "Execution
failed due to configuration error: Invalid permissions on Lambda function";
https://repost.aws/knowledge-center/api-gateway-rest-api-lambda-integrations); a function slower
than the integration timeout (29 s by default) is 504 {"message": "Endpoint request timed out"}.
Integrations other than AWS_PROXY to Lambda are answered 500 (not emulated). Resources are served
as they are now, not as snapshotted by the deployment.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
import uuid
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

from drkit.sandbox.timings import SandboxTimings

USER_REQUEST = re.compile(r"^/restapis/(?P<api>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")
EXECUTE_API_HOST = re.compile(r"^(?P<api>[a-z0-9]+)\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")
LAMBDA_URI = re.compile(
    r"^arn:[^:]+:apigateway:[^:]+:lambda:path/2015-03-31/functions/(?P<fn>arn:[^/]+)/invocations$")
REGION_HEADER = "HTTP_X_DRKIT_SANDBOX_REGION"
DEFAULT_INTEGRATION_TIMEOUT_MS = 29000
JSON = "application/json"
SANDBOX_LOG_PREFIX = "drkit-sandbox apigateway:"


def install(timings: SandboxTimings) -> None:
    """Nothing to patch: serving is the WSGI middleware that make_app() puts around moto."""


class ApiGatewayServing:
    """WSGI middleware: API Gateway's data plane in front of moto's control plane."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = find_target(environ)
        if target is None:
            return self.app(environ, start_response)
        status, headers, body = serve(environ, target)
        start_response(f"{status} {_REASONS.get(status, 'Status')}", headers)
        return [body]


# -- where a request goes ------------------------------------------------------------------

def find_target(environ: dict[str, Any]) -> dict[str, Any] | None:
    """{api, region, account, stage, path, event_path, context_path, domain} or None (not ours)."""
    path = environ.get("PATH_INFO") or "/"
    host = (environ.get("HTTP_HOST") or "").split(":")[0].lower()
    match = USER_REQUEST.match(path)
    if match:
        found = _find_api(match["api"])
        rest = match["path"] or "/"
        if found is None:
            return {"forbidden": True}
        return {**found, "stage": match["stage"], "path": rest, "event_path": rest,
                          "context_path": f"/{match['stage']}{rest}", "domain": host}
    match = EXECUTE_API_HOST.match(host)
    if match and not path.startswith("/@connections"):
        found = _find_api(match["api"], match["region"])
        stage, _, rest = path.lstrip("/").partition("/")
        if found is None:
            return {"forbidden": True}
        return {**found, "stage": stage, "path": "/" + rest, "event_path": "/" + rest,
                "context_path": path, "domain": host}
    if host and not _is_address(host) and not host.endswith(".amazonaws.com"):
        return _custom_domain_target(host, path, environ.get(REGION_HEADER))
    return None


def _is_address(host: str) -> bool:
    return host in ("localhost", "") or bool(re.match(r"^[0-9.]+$|^\[?[0-9a-f:]+\]?$", host))


def _backends() -> Iterable[tuple[str, str, Any]]:
    from moto.apigateway.models import apigateway_backends

    for account_id in list(apigateway_backends.keys()):
        for region, backend in list(apigateway_backends[account_id].items()):
            yield account_id, region, backend


def _find_api(api_id: str, region: str | None = None) -> dict[str, Any] | None:
    for account_id, backend_region, backend in _backends():
        if (region is None or backend_region == region) and api_id in backend.apis:
            return {"api": backend.apis[api_id], "region": backend_region, "account": account_id}
    return None


def _custom_domain_target(host: str, path: str, wanted_region: str | None) -> dict[str, Any] | None:
    owners = [(a, r, b) for a, r, b in _backends() if host in b.domain_names]
    if not owners:
        return None
    if wanted_region:
        owners = [o for o in owners if o[1] == wanted_region]
    if len(owners) != 1:
        return {"misdirected": sorted(o[1] for o in owners) or [wanted_region]}
    account_id, region, backend = owners[0]
    mappings = backend.base_path_mappings.get(host) or {}
    first, _, rest = path.lstrip("/").partition("/")
    if first and first in mappings:
        mapping, remainder = mappings[first], "/" + rest
    elif "(none)" in mappings:
        mapping, remainder = mappings["(none)"], path
    else:
        return {"forbidden": True}
    api = backend.apis.get(mapping.rest_api_id)
    if api is None:
        return {"forbidden": True}
    stage = mapping.stage
    if not stage:  # a mapping without a stage takes the stage from the path
        stage, _, tail = remainder.lstrip("/").partition("/")
        remainder = "/" + tail
    return {"api": api, "region": region, "account": account_id, "stage": stage, "path": remainder or "/",
            "event_path": path, "context_path": path, "domain": host}


# -- serving -------------------------------------------------------------------------------

def serve(environ: dict[str, Any], target: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    request_id = str(uuid.uuid4())
    if target.get("misdirected"):
        return _error(421, f"{target.get('domain', 'this domain')} is a custom domain in regions "
                           f"{target['misdirected']}: name one with the X-Drkit-Sandbox-Region header",
                      request_id)
    if target.get("forbidden"):
        return _error(403, "Forbidden", request_id, "ForbiddenException")
    api = target["api"]
    stage = api.stages.get(target["stage"])
    if stage is None:
        return _error(403, "Forbidden", request_id, "ForbiddenException")
    method_name = environ.get("REQUEST_METHOD", "GET").upper()
    resource, path_parameters = match_resource(api, target["path"])
    method = None
    if resource is not None:
        method = resource.resource_methods.get(method_name) or resource.resource_methods.get("ANY")
    if method is None:
        return _error(403, "Missing Authentication Token", request_id, "MissingAuthenticationTokenException")
    refusal = _authorization_refusal(method, environ)
    if refusal:
        return _error(403, refusal, request_id, "MissingAuthenticationTokenException"
                      if refusal.startswith("Missing") else "ForbiddenException")
    integration = method.method_integration
    uri_match = LAMBDA_URI.match(_stage_variables_in(getattr(integration, "uri", "") or "", stage.variables))
    if integration is None or integration.integration_type != "AWS_PROXY" or not uri_match:
        _log(request_id, f"integration {getattr(integration, 'integration_type', None)} is not emulated")
        return _error(500, "Internal server error", request_id, "InternalServerErrorException")
    function = _lambda_function(uri_match["fn"])
    source_arn = (f"arn:aws:execute-api:{target['region']}:{target['account']}:{api.id}/{stage.name}/"
                  f"{method_name}{resource.get_path()}")
    if function is None or not invoke_permitted(function, source_arn, target["account"]):
        _log(request_id, "Execution failed due to configuration error: Invalid permissions on Lambda function")
        return _error(500, "Internal server error", request_id, "InternalServerErrorException")
    event = build_event(environ, target, api, stage, resource, method_name, path_parameters, request_id)
    return _call_function(function, event, integration, environ, request_id)


def _call_function(function: Any, event: dict[str, Any], integration: Any, environ: dict[str, Any],
                   request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    from drkit.sandbox.extensions.lambda_invoke import run_function, runs_here

    if not runs_here(function):
        _log(request_id, f"function {function.function_name} is not a Python zip function")
        return _error(502, "Internal server error", request_id, "InternalServerErrorException")
    api_limit = int(integration.timeout_in_millis or DEFAULT_INTEGRATION_TIMEOUT_MS) / 1000
    limit = min(float(function.timeout or 3), api_limit)
    result = run_function(function, json.dumps(event).encode(), sandbox_endpoint(environ), timeout=limit)
    if result.timed_out and limit < float(function.timeout or 3):
        return _error(504, "Endpoint request timed out", request_id, "InternalServerErrorException")
    if result.function_error:
        _log(request_id, f"Lambda execution failed with status 200 due to customer function error: "
                         f"{result.payload[:500].decode('utf-8', 'replace')}")
        return _error(502, "Internal server error", request_id, "InternalServerErrorException")
    try:
        return proxy_response(json.loads(result.payload), request_id)
    except (ValueError, TypeError, KeyError) as err:
        _log(request_id, f"Execution failed due to configuration error: Malformed Lambda proxy response ({err})")
        return _error(502, "Internal server error", request_id, "InternalServerErrorException")


def proxy_response(answer: Any, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The function's answer as the HTTP response; ValueError/TypeError when malformed."""
    if not isinstance(answer, dict):
        raise ValueError("not a JSON object")
    status = answer.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ValueError("statusCode must be an HTTP status code")
    headers: dict[str, list[str]] = {}
    single = answer.get("headers") or {}
    multi = answer.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise TypeError("headers and multiValueHeaders must be objects")
    for name, value in single.items():
        if name.lower() == "content-length":
            continue  # the gateway sets it from the body it sends
        if isinstance(value, (dict, list)):
            raise TypeError(f"header {name} must be a string")
        headers[name] = [_header_text(value)]
    for name, values in multi.items():  # multiValueHeaders win over headers for the same name
        if name.lower() == "content-length":
            continue
        if not isinstance(values, list):
            raise TypeError(f"multiValueHeaders {name} must be a list")
        headers[name] = [_header_text(v) for v in values]
    body = answer.get("body")
    if body is not None and not isinstance(body, str):
        raise TypeError("body must be a string")
    raw = (base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()) if body else b""
    out = [(name, value) for name, values in headers.items() for value in values]
    if not any(name.lower() == "content-type" for name, _ in out):
        out.append(("Content-Type", JSON))
    return status, _with_gateway_headers(out, request_id, raw), raw


def _header_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def match_resource(api: Any, path: str) -> tuple[Any, dict[str, str] | None]:
    """The resource for `path`: literal segments beat {param}, which beats a greedy {proxy+}."""
    wanted = [segment for segment in path.split("/") if segment]
    best: tuple[tuple[int, ...], Any, dict[str, str]] | None = None
    for resource in list(api.resources.values()):
        pattern = [segment for segment in resource.get_path().split("/") if segment]
        params = _match_segments(pattern, wanted)
        if params is None:
            continue
        score = tuple(0 if not s.startswith("{") else (2 if s.endswith("+}") else 1) for s in pattern)
        if best is None or score < best[0]:
            best = (score, resource, params)
    if best is None:
        return None, None
    return best[1], (best[2] or None)


def _match_segments(pattern: list[str], wanted: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, segment in enumerate(pattern):
        if segment.startswith("{") and segment.endswith("+}"):
            if index >= len(wanted):
                return None
            params[segment[1:-2]] = "/".join(wanted[index:])
            return params
        if index >= len(wanted):
            return None
        if segment.startswith("{") and segment.endswith("}"):
            params[segment[1:-1]] = wanted[index]
        elif segment != wanted[index]:
            return None
    return params if len(pattern) == len(wanted) else None


def build_event(environ: dict[str, Any], target: dict[str, Any], api: Any, stage: Any, resource: Any,
                method: str, path_parameters: dict[str, str] | None, request_id: str) -> dict[str, Any]:
    source_ip = environ.get("REMOTE_ADDR") or "127.0.0.1"
    raw_headers = _client_headers(environ)
    raw_headers += [("X-Forwarded-For", source_ip), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "443"),
                    ("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")]
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in raw_headers:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query = parse_qsl(environ.get("QUERY_STRING") or "", keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        multi_query.setdefault(name, []).append(value)
    body_bytes = _read_body(environ)
    content_type = environ.get("CONTENT_TYPE") or ""
    binary = bool(body_bytes) and _is_binary(content_type, api.binaryMediaTypes or [])
    now = time.time()
    return {
        "resource": resource.get_path(),
        "path": target["event_path"],
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters,
        "stageVariables": dict(stage.variables) or None,
        "requestContext": {
            "accountId": target["account"], "apiId": api.id, "domainName": target["domain"],
            "domainPrefix": target["domain"].split(".")[0], "extendedRequestId": request_id[:16],
            "httpMethod": method, "path": target["context_path"], "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "requestId": request_id, "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000), "resourceId": resource.id, "resourcePath": resource.get_path(),
            "stage": stage.name,
            "identity": {"sourceIp": source_ip, "userAgent": environ.get("HTTP_USER_AGENT"), "accessKey": None,
                         "accountId": None, "caller": None, "user": None, "userArn": None, "cognitoIdentityId": None,
                         "cognitoIdentityPoolId": None, "cognitoAuthenticationType": None,
                         "cognitoAuthenticationProvider": None, "principalOrgId": None},
        },
        "body": (base64.b64encode(body_bytes).decode() if binary else body_bytes.decode("utf-8", "replace"))
        if body_bytes else None,
        "isBase64Encoded": binary,
    }


def _client_headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The headers as the client sent them: the raw list when the server kept it
    (drkit.sandbox's handler does), else rebuilt from the WSGI environ in Title-Case."""
    raw = environ.get("drkit.raw_headers")
    if raw is not None:
        return [(name, value) for name, value in raw]
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append(("-".join(part.capitalize() for part in key[5:].split("_")), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append(("-".join(part.capitalize() for part in key.split("_")), value))
    return headers


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _is_binary(content_type: str, binary_types: list[str]) -> bool:
    media = content_type.split(";")[0].strip().lower()
    for pattern in binary_types:
        pattern = pattern.replace("~1", "/").lower()
        if pattern == "*/*" or pattern == media or (pattern.endswith("/*") and media.startswith(pattern[:-1])):
            return True
    return False


def _authorization_refusal(method: Any, environ: dict[str, Any]) -> str | None:
    """AWS_IAM methods need a signed request and apiKeyRequired ones an x-api-key (neither is
    verified here: the sandbox accepts any credentials)."""
    if (method.authorization_type or "NONE") == "AWS_IAM" and not environ.get("HTTP_AUTHORIZATION"):
        return "Missing Authentication Token"
    if method.api_key_required and not environ.get("HTTP_X_API_KEY"):
        return "Forbidden"
    return None


def _stage_variables_in(uri: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{stageVariables\.([A-Za-z0-9_]+)\}", lambda m: variables.get(m[1], ""), uri)


def _lambda_function(arn: str) -> Any:
    from moto.awslambda.utils import get_backend

    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "lambda":
        return None
    region, account, name = parts[3], parts[4], parts[6]
    qualifier = parts[7] if len(parts) > 7 else None
    try:
        return get_backend(account, region).get_function(name, qualifier)
    except Exception:  # no such function (or qualifier): a configuration error, as on AWS
        return None


def invoke_permitted(function: Any, source_arn: str, account: str) -> bool:
    """Whether the function's resource policy lets API Gateway invoke it for `source_arn`
    (https://docs.aws.amazon.com/lambda/latest/dg/access-control-resource-based.html)."""
    for statement in getattr(function.policy, "statements", []):
        if statement.get("Effect", "Allow") != "Allow":
            continue
        principal = statement.get("Principal")
        services = principal.get("Service") if isinstance(principal, dict) else principal
        services = services if isinstance(services, list) else [services]
        if "apigateway.amazonaws.com" not in services and "*" not in services:
            continue
        actions = statement.get("Action")
        actions = actions if isinstance(actions, list) else [actions]
        if not {"lambda:InvokeFunction", "lambda:*", "*"} & set(actions):
            continue
        if _conditions_hold(statement.get("Condition") or {}, source_arn, account):
            return True
    return False


def _conditions_hold(conditions: dict[str, Any], source_arn: str, account: str) -> bool:
    context = {"aws:sourcearn": source_arn, "aws:sourceaccount": account}
    for operator, pairs in conditions.items():
        for key, expected in pairs.items():
            actual = context.get(key.lower())
            values = expected if isinstance(expected, list) else [expected]
            if actual is None:
                return False
            if operator in ("ArnLike", "StringLike"):
                if not any(_glob(v).match(actual) for v in values):
                    return False
            elif operator in ("ArnEquals", "StringEquals"):
                if actual not in values:
                    return False
            else:  # an operator this emulation does not know: never grant on it
                return False
    return True


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(".".join(map(re.escape, part.split("?"))) for part in pattern.split("*")) + "$")


def sandbox_endpoint(environ: dict[str, Any]) -> str:
    """This server's own address (the Host of an execute-api or custom-domain request is not)."""
    server = environ.get("SERVER_NAME") or "127.0.0.1"
    if server in ("0.0.0.0", "::", ""):
        server = "127.0.0.1"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{server}:{environ.get('SERVER_PORT', '80')}"


def _with_gateway_headers(headers: list[tuple[str, str]], request_id: str, body: bytes) -> list[tuple[str, str]]:
    return headers + [("x-amzn-RequestId", request_id), ("x-amz-apigw-id", request_id[:16]),
                      ("Content-Length", str(len(body)))]


def _error(status: int, message: str, request_id: str, error_type: str | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"message": message}).encode()
    headers = [("Content-Type", JSON)] + ([("x-amzn-ErrorType", error_type)] if error_type else [])
    return status, _with_gateway_headers(headers, request_id, body), body


def _log(request_id: str, message: str) -> None:
    """API Gateway's execution log, which explains the opaque 5xx answers, goes to stderr."""
    print(f"{SANDBOX_LOG_PREFIX} ({request_id}) {message}", file=sys.stderr)


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 421: "Misdirected Request",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
