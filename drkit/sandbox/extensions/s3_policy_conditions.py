"""Bucket policy `Condition` blocks evaluated as AWS evaluates them.

moto 5.2 evaluates a bucket policy with no request context, and its condition code only knows
`StringEquals`: every other operator is treated as "matches", and a statement whose condition does
not match is turned into an explicit DENY whatever its `Effect`. The standard "deny everything that
is not TLS" policy therefore blocks every request. This extension evaluates bucket policies with
the request's context and AWS's condition semantics:

- A statement applies only when its condition block matches; otherwise it neither allows nor
  denies. Condition operators are ANDed, the keys of one operator are ANDed, the values of one key
  are ORed (negated operators: the context value must match none of them).
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
- Operators: String(Not)Equals(IgnoreCase), String(Not)Like, Numeric*, Date*, Bool, BinaryEquals,
  (Not)IpAddress, Arn(Not)Equals, Arn(Not)Like, Null, the `...IfExists` suffix and the
  `ForAllValues:` / `ForAnyValue:` set qualifiers. A key missing from the request context makes a
  condition false, except for negated operators (true), `...IfExists` (true) and `Null`.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
- Request context for S3 requests: `aws:SecureTransport` ("true" when the request URL's scheme is
  https), `aws:CurrentTime`, `aws:EpochTime`, `aws:UserAgent`, `aws:Referer`, `aws:SourceIp` (only
  when served over HTTP: the client address; in-process there is none), `aws:PrincipalAccount`, and
  the S3 keys `s3:x-amz-server-side-encryption`, `s3:x-amz-server-side-encryption-aws-kms-key-id`,
  `s3:x-amz-acl`, `s3:x-amz-storage-class`, `s3:VersionId`, `s3:signatureversion`, `s3:authType`,
  `s3:prefix`, `s3:delimiter`, `s3:max-keys`.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-securetransport
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html#amazons3-policy-keys

How the scheme is decided: moto hands each S3 handler the full request URL. In-process
(`mock_aws`), that is the URL botocore built for the real endpoint — `https://...` with boto3's
default endpoints, so such requests *are* secure transport, exactly as they would be against AWS;
a client given an `http://` endpoint_url is not. Over the sandbox's HTTP server the URL is the one
the server saw (`http://127.0.0.1:PORT/...`): those requests are secure transport only when
`timings.loopback_http_is_tls` is on, as SandboxServer and `drkit sandbox` set it, because that
server stands in for AWS's HTTPS endpoints. A TLS
terminating proxy in front of the sandbox is not trusted (X-Forwarded-Proto is ignored, as a
client could forge it).

Only bucket-policy evaluation (moto's `FakeBucket.get_permission`) uses the new semantics; moto's
other policy checks (IAM identity policies, role trust policies) are left as they are.
"""

from __future__ import annotations

import base64
import contextvars
import datetime
import fnmatch
import ipaddress
import re
import time
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, PermissionResult
from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_s3_policy_conditions_installed"

# The timings object install() was given (its loopback_http_is_tls setting is read per request).
_settings: dict[str, SandboxTimings] = {}
_current_context: contextvars.ContextVar["RequestContext | None"] = contextvars.ContextVar(
    "drkit_s3_request_context", default=None
)
# The S3Response serving the request (its account is known once moto has parsed the request).
_current_responder: contextvars.ContextVar[Any] = contextvars.ContextVar("drkit_s3_responder", default=None)


class RequestContext(dict):  # type: ignore[type-arg]
    """Condition keys of one request: key (case-insensitive) -> list of string values."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        super().__init__()
        for key, value in (values or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if value is None:
            return
        values = value if isinstance(value, list) else [value]
        super().__setitem__(key.lower(), [str(v) for v in values])

    def values_of(self, key: str) -> list[str] | None:
        return self.get(key.lower())


# --- building the context --------------------------------------------------------------------


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def context_for_request(request: Any, full_url: str, account_id: str | None) -> RequestContext:
    parsed = urlparse(full_url)
    headers = getattr(request, "headers", None)
    query = parse_qs(parsed.query, keep_blank_values=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ctx = RequestContext()
    loopback_tls = _settings.get("timings") is not None and _settings["timings"].loopback_http_is_tls \
        and parsed.hostname in ("127.0.0.1", "localhost", "::1")
    ctx["aws:SecureTransport"] = "true" if parsed.scheme == "https" or loopback_tls else "false"
    ctx["aws:CurrentTime"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    ctx["aws:EpochTime"] = str(int(time.time()))
    ctx["aws:UserAgent"] = _header(headers, "User-Agent")
    ctx["aws:Referer"] = _header(headers, "Referer")
    remote = getattr(request, "remote_addr", None)
    if isinstance(remote, str) and remote:
        ctx["aws:SourceIp"] = remote
    ctx["aws:PrincipalAccount"] = account_id
    for header in (
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-acl",
        "x-amz-storage-class",
    ):
        ctx[f"s3:{header}"] = _header(headers, header)
    authorization = _header(headers, "Authorization")
    if authorization:
        ctx["s3:authType"] = "REST-HEADER"
        ctx["s3:signatureversion"] = "AWS4-HMAC-SHA256" if authorization.startswith("AWS4-") else "AWS"
    elif "X-Amz-Signature" in query or "Signature" in query:
        ctx["s3:authType"] = "REST-QUERY-STRING"
        ctx["s3:signatureversion"] = "AWS4-HMAC-SHA256" if "X-Amz-Signature" in query else "AWS"
    for name, key in (("versionId", "s3:VersionId"), ("prefix", "s3:prefix"), ("delimiter", "s3:delimiter"), ("max-keys", "s3:max-keys")):
        if name in query:
            ctx[key] = query[name][0]
    return ctx


# --- condition operators ---------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _substitute(pattern: str, ctx: RequestContext) -> str:
    """Policy variables: ${aws:username}, and the escapes ${*}, ${?}, ${$}."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ("*", "?", "$"):
            return "\0" + name  # literal, protected from wildcard expansion
        default = None
        if ", '" in name:
            name, default = name.split(", '", 1)
            default = default.rstrip("'")
        values = ctx.values_of(name.strip())
        if values:
            return values[0]
        return default if default is not None else match.group(0)

    return re.sub(r"\$\{([^}]*)\}", repl, pattern)


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\0" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if ch == "*" else "." if ch == "?" else re.escape(ch)
        i += 1
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _literal(pattern: str) -> str:
    return re.sub(r"\0(.)", r"\1", pattern)


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _date(text: Any) -> datetime.datetime | None:
    text = str(text)
    try:
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return datetime.datetime.fromtimestamp(float(text), tz=datetime.timezone.utc)
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)
    except (ValueError, OverflowError):
        return None


def _ip_in(network: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _compare(kind: str, value: str, expected: str, op: Callable[[Any, Any], bool]) -> bool:
    if kind == "Numeric":
        a, b = _number(value), _number(expected)
    else:
        a, b = _date(value), _date(expected)
    return a is not None and b is not None and op(a, b)


# Positive operators: (context value, policy value, context) -> bool.
_MATCHERS: dict[str, Callable[[str, str, RequestContext], bool]] = {
    "StringEquals": lambda v, e, c: v == _literal(_substitute(e, c)),
    "StringEqualsIgnoreCase": lambda v, e, c: v.lower() == _literal(_substitute(e, c)).lower(),
    "StringLike": lambda v, e, c: _like(_substitute(e, c), v),
    "NumericEquals": lambda v, e, c: _compare("Numeric", v, e, lambda a, b: a == b),
    "NumericLessThan": lambda v, e, c: _compare("Numeric", v, e, lambda a, b: a < b),
    "NumericLessThanEquals": lambda v, e, c: _compare("Numeric", v, e, lambda a, b: a <= b),
    "NumericGreaterThan": lambda v, e, c: _compare("Numeric", v, e, lambda a, b: a > b),
    "NumericGreaterThanEquals": lambda v, e, c: _compare("Numeric", v, e, lambda a, b: a >= b),
    "DateEquals": lambda v, e, c: _compare("Date", v, e, lambda a, b: a == b),
    "DateLessThan": lambda v, e, c: _compare("Date", v, e, lambda a, b: a < b),
    "DateLessThanEquals": lambda v, e, c: _compare("Date", v, e, lambda a, b: a <= b),
    "DateGreaterThan": lambda v, e, c: _compare("Date", v, e, lambda a, b: a > b),
    "DateGreaterThanEquals": lambda v, e, c: _compare("Date", v, e, lambda a, b: a >= b),
    "Bool": lambda v, e, c: v.lower() == str(e).lower(),
    "BinaryEquals": lambda v, e, c: v == e or base64.b64encode(v.encode()).decode() == e,
    "IpAddress": lambda v, e, c: _ip_in(e, v),
    "ArnEquals": lambda v, e, c: _like(_substitute(e, c), v),
    "ArnLike": lambda v, e, c: _like(_substitute(e, c), v),
}
# Negated operators and the positive operator they negate.
_NEGATED: dict[str, str] = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


class UnknownConditionOperator(ValueError):
    pass


def _bool_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def condition_matches(operator: str, key: str, expected: Any, ctx: RequestContext) -> bool:
    qualifier = None
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
        if qualifier not in ("ForAllValues", "ForAnyValue"):
            raise UnknownConditionOperator(qualifier)
    if_exists = operator.endswith("IfExists") and operator != "IfExists"
    base = operator[: -len("IfExists")] if if_exists else operator
    expected_values = [_bool_text(v) for v in _as_list(expected)]
    actual = ctx.values_of(key)

    if base == "Null":
        present = bool(actual)
        return all((v.lower() == "true") != present for v in expected_values)

    negated = base in _NEGATED
    matcher = _MATCHERS.get(_NEGATED.get(base, base))
    if matcher is None:
        raise UnknownConditionOperator(operator)

    def one(value: str) -> bool:
        hit = any(matcher(value, e, ctx) for e in expected_values)
        return not hit if negated else hit

    if not actual:
        if if_exists:
            return True
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return negated
    if qualifier == "ForAllValues":
        return all(one(v) for v in actual)
    if negated and qualifier is None:
        return all(one(v) for v in actual)
    return any(one(v) for v in actual)


def conditions_match(conditions: dict[str, Any] | None, ctx: RequestContext) -> bool:
    for operator, keys in (conditions or {}).items():
        for key, expected in keys.items():
            if not condition_matches(operator, key, expected, ctx):
                return False
    return True


# --- statement evaluation --------------------------------------------------------------------


def _matches(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in _as_list(patterns))


def evaluate_statement(statement: dict[str, Any], action: str, resource: str, ctx: RequestContext) -> PermissionResult:
    """One bucket-policy statement: PERMITTED/DENIED if it applies to the request, else NEUTRAL."""
    if "NotAction" in statement:
        if _matches(statement["NotAction"], action):
            return PermissionResult.NEUTRAL
    elif not _matches(statement.get("Action", []), action):
        return PermissionResult.NEUTRAL
    principal = statement.get("Principal")
    if isinstance(principal, str) and principal != "*":
        return PermissionResult.NEUTRAL  # moto's principal handling, unchanged
    if "NotResource" in statement:
        if _matches(statement["NotResource"], resource):
            return PermissionResult.NEUTRAL
    elif "Resource" in statement and not _matches(statement["Resource"], resource):
        return PermissionResult.NEUTRAL
    try:
        if not conditions_match(statement.get("Condition"), ctx):
            return PermissionResult.NEUTRAL
    except UnknownConditionOperator:
        # AWS rejects such a policy when it is put; a statement we cannot evaluate never applies.
        return PermissionResult.NEUTRAL
    return PermissionResult.PERMITTED if statement.get("Effect") == "Allow" else PermissionResult.DENIED


def install(timings: SandboxTimings) -> None:
    _settings["timings"] = timings
    if getattr(FakeBucket, _MARK, False):
        return
    setattr(FakeBucket, _MARK, True)

    original_statement = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(
        self: IAMPolicyStatement,
        action: str,
        resource: str = "*",
        principal: str | None = None,
        incoming_condition_values: Any = None,
    ) -> PermissionResult:
        if isinstance(incoming_condition_values, RequestContext):
            return evaluate_statement(self._statement, action, resource, incoming_condition_values)
        return original_statement(self, action, resource, principal, incoming_condition_values)

    IAMPolicyStatement.is_action_permitted = is_action_permitted  # type: ignore[method-assign]

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        ctx = _current_context.get() or RequestContext()
        responder = _current_responder.get()
        if ctx.values_of("aws:PrincipalAccount") is None and responder is not None:
            ctx["aws:PrincipalAccount"] = getattr(responder, "current_account", None)
        policy = self.policy.decode() if isinstance(self.policy, bytes) else self.policy
        return IAMPolicy(policy).is_action_permitted(action, resource, None, ctx)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]

    for name in ("bucket_response", "key_response"):
        original = getattr(S3Response, name)

        def wrapper(self: S3Response, request: Any, full_url: str, headers: Any, _original: Callable[..., Any] = original) -> Any:
            if _current_context.get() is not None:
                return _original(self, request, full_url, headers)  # nested dispatch
            token = _current_context.set(context_for_request(request, full_url, None))
            responder_token = _current_responder.set(self)
            try:
                return _original(self, request, full_url, headers)
            finally:
                _current_responder.reset(responder_token)
                _current_context.reset(token)

        wrapper.__name__ = name
        setattr(S3Response, name, wrapper)
