"""The one place drkit talks to AWS.

Every call goes through `AwsGateway.call(service, region, operation, ...)`: clients are built once
per (service, region) with the configured profile and endpoint; botocore's own retries are set
deliberately; drkit retries throttling beyond botocore's attempts and AWS's eventual consistency
("not found" right after a create), with jittered backoff on an injectable clock; "not found" is
recognised once for every service; every call is counted and every mutating call is logged and
appended to the audit file.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions

from drkit.clock import Clock, SystemClock
from drkit.errors import AwsCallError, DrkitError, EndpointUnreachableError, InterruptedRun, UserInputError
from drkit.retries import (  # noqa: F401  (error_code and THROTTLING_CODES are re-exported)
    MAYBE_DONE_ERRORS, THROTTLING_CODES, UNKNOWN_OUTCOME, Budgets, NotYet, classify, error_code, error_message,
    is_not_found, outcome_unknown,
)

# Operations that only read. Anything else is mutating (and audited).
READ_ONLY_PREFIXES = (
    "describe_", "get_", "list_", "head_", "lookup_", "search_", "batch_get_", "test_",
)
READ_ONLY_OPERATIONS = frozenset({"scan", "query", "filter_log_events"})


def is_mutating(operation: str) -> bool:
    return not (operation.startswith(READ_ONLY_PREFIXES) or operation in READ_ONLY_OPERATIONS)


def _accepts_missing(missing_ok: bool | str | Iterable[str], code: str) -> bool:
    if missing_ok is True:
        return is_not_found(code)
    accepted = {missing_ok} if isinstance(missing_ok, str) else set(missing_ok)
    return code in accepted


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
    """drkit's retries on top of botocore's. How long each kind of "not yet" may last is the
    kind's own budget (drkit.retries); this sets botocore's attempts and the backoff."""

    botocore_max_attempts: int = 4
    base_seconds: float = 0.5
    max_seconds: float = 20.0
    settle_seconds: float = 10.0  # how long a lost answer's look-up keeps looking
    # How long a 5xx answer (its outcome unknown) is retried; None: that kind's own budget. The
    # state storage fails over to its replica instead of waiting minutes for a region that is down.
    unknown_outcome_seconds: float | None = None


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
        interrupt: threading.Event | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self.audit = audit or AuditLog(None)
        self.log = log
        self.stats = stats or CallStats()
        self.interrupt = interrupt or getattr(self.clock, "interrupt", None) or threading.Event()
        self._unknown_outcome = UNKNOWN_OUTCOME if self.retry.unknown_outcome_seconds is None else \
            dataclasses.replace(UNKNOWN_OUTCOME, budget=self.retry.unknown_outcome_seconds)
        self._clients: dict[tuple[str, str, bool], Any] = {}
        self._lock = threading.Lock()
        # Told of every call before it is sent: (service, region, operation). A listener may
        # raise to refuse the call (a failover's guard against the impaired region).
        self.listeners: list[Callable[[str, str, str], None]] = []
        try:
            self._session = boto3.session.Session(profile_name=profile, **dict(credentials or {}))
        except botocore.exceptions.ProfileNotFound:
            raise UserInputError(f"AWS profile {profile!r} is not configured") from None
        if credentials is None and _is_loopback(endpoint_url) and self._session.get_credentials() is None:
            # A local emulator accepts any signature; spare the user from inventing credentials.
            self._session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        self._configs = {
            resend: botocore.config.Config(
                retries={"mode": "standard", "total_max_attempts": self.retry.botocore_max_attempts if resend else 1},
                connect_timeout=10,
                read_timeout=60,
                user_agent_extra="drkit",
            )
            for resend in (True, False)
        }

    @property
    def session(self) -> boto3.session.Session:
        """The boto3 session every client is built from (its credentials are the gateway's)."""
        return self._session

    def client(self, service: str, region: str, *, resend: bool = True) -> Any:
        """The client for (service, region). `resend=False`: botocore makes one attempt only, for
        calls that must not be resent blindly after a lost response (drkit looks first)."""
        key = (service, region, resend)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=self._configs[resend]
                )
                self._clients[key] = client
            return client

    def call(
        self,
        service: str,
        region: str,
        operation: str,
        *,
        missing_ok: bool | str | Iterable[str] = False,
        resource: str | None = None,
        not_yet: Sequence[NotYet] = (),
        settled: Callable[[], Any] | None = None,
        **params: Any,
    ) -> Any:
        """Call `operation` (boto3 snake_case) and return its response.

        missing_ok: a "not found" error returns None (observations and idempotent deletes).
            True accepts any not-found code; a code or codes accept only the resource's own
            (ReleaseAddress answering InvalidNetworkInterfaceID.NotFound has released nothing).
        resource: what the call acts on, for the log and the audit file.
        not_yet: the kinds of "not yet, try again" this call may meet (drkit.retries), each with
            its codes, message and time budget. Throttling is always one of them.
        settled: for a call AWS gives no idempotency token and that must not be resent blindly (a
            create, an attach): after an answer that may hide a success (a 5xx, a timeout), drkit
            calls `settled()` -- a fresh read of whether the effect holds -- and returns what it
            gives instead of resending; None means "not done", and only then is the call resent.
            An error after such a lost answer (AlreadyExists) is judged the same way.
        An idempotency token the API has (ClientToken, ...) is generated once here and reused by
        every attempt, botocore's and drkit's, so a resent create returns the same resource.
        """
        for listener in list(self.listeners):
            listener(service, region, operation)
        client = self.client(service, region, resend=settled is None)
        method = getattr(client, operation)
        mutating = is_mutating(operation)
        params = self._with_idempotency_token(client, operation, params)
        deleting = operation.startswith(("delete_", "release_", "remove_", "disassociate_", "detach_"))
        budgets = Budgets(base=self.retry.base_seconds, cap=self.retry.max_seconds)
        lost = False
        last_report: float | None = None
        while True:
            try:
                self.stats.add(service, region, operation)
                response = method(**params)
                break
            except (botocore.exceptions.ClientError, *MAYBE_DONE_ERRORS) as exc:
                code = error_code(exc)
                if settled is not None and (lost or outcome_unknown(exc)):
                    lost = True
                    found = self._settle(settled)
                    if found is not None:
                        self._record_mutation(service, region, operation, resource, found, recovered=True)
                        return found
                kind = self._unknown_outcome if outcome_unknown(exc) else classify(
                    exc, mutating=mutating, deleting=deleting, missing_ok=bool(missing_ok), not_yet=not_yet,
                    not_found=is_not_found(code),
                )
                now = self.clock.monotonic()
                # An explicit "not yet" outranks missing_ok (NoSuchBucket right after a create).
                retry = kind is not None and budgets.allow(kind, now)
                if missing_ok and _accepts_missing(missing_ok, code) and not (retry and kind in not_yet):
                    return None
                if not retry:
                    raise self._failure(service, region, operation, exc, kind, budgets, now) from exc
                if self.interrupt.is_set():
                    raise InterruptedRun(f"interrupted during {service} {operation} in {region}; re-run to resume")
                last_report = self._report_retry(service, region, operation, exc, kind, budgets, now, last_report)
                self.clock.sleep(budgets.next_delay())
            except botocore.exceptions.NoCredentialsError:
                raise DrkitError(
                    "no AWS credentials found", hint="set AWS_PROFILE or --profile, or the AWS_* environment variables"
                ) from None
            except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as exc:
                # Never sent (no connection): AWS did nothing, and nothing would help but the network.
                raise EndpointUnreachableError(f"cannot reach AWS {service} in {region}: {exc}") from None
        if mutating:
            self._record_mutation(service, region, operation, resource, response)
        return response

    def _with_idempotency_token(self, client: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Fill the API's idempotency token once per drkit call (botocore would make a new one per
        call, so drkit's own retries would create a second resource)."""
        api_name = client.meta.method_to_api_mapping.get(operation)
        if api_name is None:
            return params
        members = client.meta.service_model.operation_model(api_name).idempotent_members
        missing = {name: f"drkit-{uuid.uuid4()}" for name in members if name not in params}
        return {**params, **missing} if missing else params

    def _settle(self, settled: Callable[[], Any]) -> Any:
        """Ask `settled` a few times over `settle_seconds`: a resource created a moment ago may
        not be visible to the first read (EC2's eventual consistency)."""
        deadline = self.clock.monotonic() + self.retry.settle_seconds
        while True:
            found = settled()
            if found is not None or self.clock.monotonic() >= deadline:
                return found
            self.clock.sleep(1.0)

    def _failure(self, service: str, region: str, operation: str, exc: BaseException, kind: NotYet | None,
                 budgets: Budgets, now: float) -> DrkitError:
        code = error_code(exc) or type(exc).__name__
        message = error_message(exc)
        if kind is not None:
            message += f" (still {kind.kind} after {budgets.elapsed(kind, now):.0f}s; gave up)"
        return AwsCallError(service, region, operation, code, message)

    def _report_retry(self, service: str, region: str, operation: str, exc: BaseException, kind: NotYet,
                      budgets: Budgets, now: float, last_report: float | None) -> float | None:
        if self.log is None:
            return last_report
        self.log.info("aws.retry", service=service, region=region, operation=operation, code=error_code(exc),
                      kind=kind.kind, attempt=budgets.attempts + 1)
        elapsed = budgets.elapsed(kind, now)
        if elapsed >= 30 and (last_report is None or now - last_report >= 30):
            self.log.info("wait", progress=f"{service} {operation} in {region}: {kind.kind} "
                          f"({error_code(exc)}), retrying ({elapsed:.0f}s of {kind.budget:.0f}s)")
            return now
        return last_report

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

    def _record_mutation(self, service: str, region: str, operation: str, resource: str | None, response: Any,
                         *, recovered: bool = False) -> None:
        request_id = (response or {}).get("ResponseMetadata", {}).get("RequestId") if isinstance(response, dict) else None
        record = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "service": service,
            "region": region,
            "operation": operation,
            "resource": resource,
            "request_id": request_id,
        }
        if recovered:  # the answer was lost; a fresh read showed the call had taken effect
            record["recovered"] = True
        self.audit.append(record)
        if self.log is not None:
            self.log.info("aws.mutate", service=service, region=region, operation=operation, resource=resource,
                          recovered=recovered)


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
