"""The one place drkit talks to AWS.

Every call goes through `AwsGateway.call(service, region, operation, ...)`: clients are built once
per (service, region) with the configured profile and endpoint; botocore's own retries are set
deliberately; drkit retries throttling beyond botocore's attempts and AWS's eventual consistency
("not found" right after a create), with jittered backoff on an injectable clock; "not found" is
recognised once for every service; every call is counted and every mutating call is logged and
appended to the audit file.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions
import tenacity

from drkit.clock import Clock, SystemClock
from drkit.errors import AwsCallError, DrkitError, UserInputError

# Operations that only read. Anything else is mutating (and audited).
READ_ONLY_PREFIXES = (
    "describe_", "get_", "list_", "head_", "lookup_", "search_", "batch_get_", "test_",
)
READ_ONLY_OPERATIONS = frozenset({"scan", "query", "filter_log_events"})

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", "BandwidthLimitExceeded", "LimitExceededException",
})


def is_mutating(operation: str) -> bool:
    return not (operation.startswith(READ_ONLY_PREFIXES) or operation in READ_ONLY_OPERATIONS)


def is_not_found(code: str) -> bool:
    """AWS's many spellings of "no such resource", recognised once for every service."""
    return (
        code.endswith(("NotFound", "NotFoundFault", "NotFoundException", "NotFoundError"))
        or code.startswith("NoSuch")
        or code in {"404", "ResourceNotFoundException", "NatGatewayNotFound"}
    )


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


@dataclass
class CallStats:
    """Counts of AWS calls, thread-safe, for summaries, benchmarks and zero-mutation checks."""

    total: int = 0
    mutating: int = 0
    by_operation: Counter = field(default_factory=Counter)
    mutating_calls: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, service: str, region: str, operation: str) -> None:
        with self._lock:
            self.total += 1
            self.by_operation[f"{service}.{operation}"] += 1
            if is_mutating(operation):
                self.mutating += 1
                self.mutating_calls.append((service, region, operation))

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.total, self.mutating


class AuditLog:
    """Appends one JSON line per mutating AWS call, beside the state file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        line = json.dumps(record, sort_keys=True, default=str)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")


@dataclass(frozen=True)
class RetryPolicy:
    """drkit's retries on top of botocore's: throttling, and eventual consistency."""

    botocore_max_attempts: int = 4
    attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 20.0


class AwsGateway:
    def __init__(
        self,
        *,
        profile: str | None = None,
        endpoint_url: str | None = None,
        credentials: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        audit: AuditLog | None = None,
        log: Any = None,
        stats: CallStats | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self.audit = audit or AuditLog(None)
        self.log = log
        self.stats = stats or CallStats()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        try:
            self._session = boto3.session.Session(profile_name=profile, **dict(credentials or {}))
        except botocore.exceptions.ProfileNotFound:
            raise UserInputError(f"AWS profile {profile!r} is not configured") from None
        if credentials is None and _is_loopback(endpoint_url) and self._session.get_credentials() is None:
            # A local emulator accepts any signature; spare the user from inventing credentials.
            self._session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        self._botocore_config = botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": self.retry.botocore_max_attempts},
            connect_timeout=10,
            read_timeout=60,
            user_agent_extra="drkit",
        )

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=self._botocore_config
                )
                self._clients[key] = client
            return client

    def call(
        self,
        service: str,
        region: str,
        operation: str,
        *,
        missing_ok: bool = False,
        resource: str | None = None,
        retry_codes: frozenset[str] = frozenset(),
        **params: Any,
    ) -> Any:
        """Call `operation` (boto3 snake_case) and return its response.

        missing_ok: a "not found" error returns None (observations and idempotent deletes).
        resource: what the call acts on, for the log and the audit file.
        retry_codes: extra error codes that mean "not yet, try again" for this call.
        """
        client = self.client(service, region)
        method = getattr(client, operation)
        mutating = is_mutating(operation)

        def retryable(exc: BaseException) -> bool:
            code = error_code(exc)
            if code in THROTTLING_CODES or code in retry_codes:
                return True
            # EC2 and friends are eventually consistent: a resource created a moment ago may not
            # be visible to the next mutating call yet. Deletes treat "not found" as done instead.
            return mutating and not missing_ok and is_not_found(code) and not operation.startswith(("delete_", "release_"))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if self.log is not None and state.outcome is not None:
                self.log.info(
                    "aws.retry", service=service, region=region, operation=operation,
                    code=error_code(state.outcome.exception()), attempt=state.attempt_number,
                )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            wait=tenacity.wait_random_exponential(multiplier=self.retry.base_seconds, max=self.retry.max_seconds),
            stop=tenacity.stop_after_attempt(self.retry.attempts),
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

        def attempt() -> Any:
            self.stats.add(service, region, operation)
            return method(**params)

        try:
            response = retrying(attempt)
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if missing_ok and is_not_found(code):
                return None
            message = exc.response.get("Error", {}).get("Message", str(exc))
            raise AwsCallError(service, region, operation, code, message) from exc
        except botocore.exceptions.NoCredentialsError:
            raise DrkitError(
                "no AWS credentials found", hint="set AWS_PROFILE or --profile, or the AWS_* environment variables"
            ) from None
        except botocore.exceptions.EndpointConnectionError as exc:
            raise DrkitError(f"cannot reach AWS {service} in {region}: {exc}") from None
        if mutating:
            self._record_mutation(service, region, operation, resource, response)
        return response

    def paginate(self, service: str, region: str, operation: str, result_key: str, **params: Any) -> list:
        """All pages of a list/describe call, each page through `call` (so counted and retried)."""
        items: list = []
        token_in, token_out = _PAGINATION_TOKENS.get((service, operation), ("NextToken", "NextToken"))
        while True:
            page = self.call(service, region, operation, **params)
            if page is None:  # missing_ok and the resource is gone
                return items
            items.extend(page.get(result_key, []))
            token = page.get(token_out)
            if not token:
                return items
            params = {**params, token_in: token}

    def _record_mutation(self, service: str, region: str, operation: str, resource: str | None, response: Any) -> None:
        request_id = (response or {}).get("ResponseMetadata", {}).get("RequestId") if isinstance(response, dict) else None
        record = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "service": service,
            "region": region,
            "operation": operation,
            "resource": resource,
            "request_id": request_id,
        }
        self.audit.append(record)
        if self.log is not None:
            self.log.info("aws.mutate", service=service, region=region, operation=operation, resource=resource)


_PAGINATION_TOKENS: dict[tuple[str, str], tuple[str, str]] = {
    ("rds", "describe_db_clusters"): ("Marker", "Marker"),
    ("rds", "describe_db_instances"): ("Marker", "Marker"),
    ("rds", "describe_global_clusters"): ("Marker", "Marker"),
    ("rds", "describe_db_subnet_groups"): ("Marker", "Marker"),
    ("rds", "describe_orderable_db_instance_options"): ("Marker", "Marker"),
    ("route53", "list_hosted_zones"): ("Marker", "NextMarker"),
    ("iam", "list_roles"): ("Marker", "Marker"),
}


def _is_loopback(endpoint_url: str | None) -> bool:
    host = urlparse(endpoint_url).hostname if endpoint_url else None
    return host in {"127.0.0.1", "localhost", "::1"}
