"""Fault injection: lost responses and throttling, for tests of drkit's retry and idempotency.

A *lost response* is a request AWS really processed whose answer never reached the client (a
timeout after commit): moto performs the side effect, then the client receives HTTP 500
`InternalError`. A *throttle* refuses a request before it is processed, with the service's own
throttling error (or, optionally, a bare 503/429 with a body botocore cannot parse).

Faults apply both in-process (moto's `mock_aws()`: a hook on moto's BotocoreStubber, which answers
botocore's `before-send` event) and over HTTP (`FaultMiddleware`, which `make_app()` puts in front
of moto's WSGI app; `POST /drkit-sandbox/faults` arms faults from another process). Both read the
operation from the request itself (see fault_requests.py).

    with armed_faults() as faults:
        faults.lost_response("ec2", "CreateRouteTable")
        ...
        assert faults.injected()[0]["operation"] == "CreateRouteTable"
"""

from __future__ import annotations

import random
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Optional

from drkit.sandbox.fault_requests import (
    RequestResolver,
    RequestView,
    client_name,
    error_response,
    split_url,
    throttle_error,
)

LOST_RESPONSE_CODE = "InternalError"
LOST_RESPONSE_MESSAGE = "We encountered an internal error. Please try again."
THROTTLE_MESSAGE = "Rate exceeded"
# What a front end (load balancer) answers: HTML, with no AWS error code in it.
BARE_THROTTLE_BODY = b"<html><body><h1>Service Unavailable</h1></body></html>"

Response = tuple[int, dict[str, str], bytes]


@dataclass
class LostResponse:
    """The nth..(nth+times-1)th matching requests are processed, then answered with a 500."""

    service: str
    operation: str
    nth: int = 1
    times: int = 1
    match: Optional[Callable[[RequestView], bool]] = field(default=None, repr=False)
    seen: int = 0
    fired: int = 0
    kind: str = "lost_response"

    def wants(self, request: RequestView) -> bool:
        if client_name(self.service) != request.service:
            return False
        if self.match is not None:
            return bool(self.match(request))
        return self.operation == request.operation

    def decide(self) -> bool:
        self.seen += 1
        if self.seen >= self.nth and self.fired < self.times:
            self.fired += 1
            return True
        return False


@dataclass
class Throttle:
    """Each matching request is refused before processing with probability `probability`."""

    probability: float
    seed: int = 0
    services: Optional[list[str]] = None
    operations: Optional[list[str]] = None
    bare_status: Optional[int] = None  # 503 or 429 with an unparsable body
    times: Optional[int] = None  # at most this many refusals (None: no limit)
    seen: int = 0
    fired: int = 0
    kind: str = "throttle"
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def wants(self, request: RequestView) -> bool:
        if self.services is not None and request.service not in {client_name(s) for s in self.services}:
            return False
        return self.operations is None or request.operation in self.operations

    def decide(self) -> bool:
        self.seen += 1
        if self.times is not None and self.fired >= self.times:
            return False
        if self.rng.random() < self.probability:
            self.fired += 1
            return True
        return False


class FaultInjector:
    """The armed faults of one process, and a record of what they injected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lost: list[LostResponse] = []
        self._throttles: list[Throttle] = []
        self._injected: list[dict[str, Any]] = []
        self.resolver = RequestResolver()

    # -- arming ---------------------------------------------------------------------------
    def lost_response(self, service: str, operation: str = "", nth: int = 1, times: int = 1,
                      match: Optional[Callable[[RequestView], bool]] = None) -> LostResponse:
        """Process the nth matching request (and the `times - 1` after it), then answer 500.
        `match` (in-process only) replaces the operation-name test with a predicate."""
        if nth < 1 or times < 1:
            raise ValueError("nth and times must be at least 1")
        if not operation and match is None:
            raise ValueError("give an operation name or a match predicate")
        fault = LostResponse(service, operation, nth, times, match)
        with self._lock:
            self._lost.append(fault)
        return fault

    def throttle(self, probability: float, seed: int = 0, services: Optional[list[str]] = None,
                 operations: Optional[list[str]] = None, bare_status: Optional[int] = None,
                 times: Optional[int] = None) -> Throttle:
        """Refuse matching requests before processing, as AWS does when throttling."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if bare_status not in (None, 429, 503):
            raise ValueError("bare_status must be 429 or 503")
        fault = Throttle(probability, seed, list(services) if services else None,
                         list(operations) if operations else None, bare_status, times)
        with self._lock:
            self._throttles.append(fault)
        return fault

    def arm(self, spec: dict[str, Any]) -> None:
        """Arm a fault from its JSON description (the HTTP control endpoint's body)."""
        spec = dict(spec)
        kind = spec.pop("kind", "")
        if kind == "lost_response":
            self.lost_response(**{k: spec[k] for k in ("service", "operation", "nth", "times") if k in spec})
        elif kind == "throttle":
            allowed = ("probability", "seed", "services", "operations", "bare_status", "times")
            self.throttle(**{k: spec[k] for k in allowed if k in spec})
        else:
            raise ValueError(f"unknown fault kind {kind!r}: use lost_response or throttle")

    def clear(self) -> None:
        """Disarm every fault and forget what was injected."""
        with self._lock:
            self._lost.clear()
            self._throttles.clear()
            self._injected.clear()

    def injected(self) -> list[dict[str, Any]]:
        """What was injected, oldest first: kind, service, operation, method, path, status, code."""
        with self._lock:
            return [dict(item) for item in self._injected]

    def armed(self) -> list[dict[str, Any]]:
        with self._lock:
            faults: list[Any] = [*self._lost, *self._throttles]
            return [{k: v for k, v in asdict(f).items() if k not in ("match", "rng")} for f in faults]

    @property
    def active(self) -> bool:
        return bool(self._lost or self._throttles)

    # -- the hooks ------------------------------------------------------------------------
    def before(self, request: RequestView) -> Optional[Response]:
        """A throttle's answer if the request is to be refused unprocessed, else None."""
        with self._lock:
            for fault in self._throttles:
                if fault.wants(request) and fault.decide():
                    if fault.bare_status is not None:
                        status, headers, body = fault.bare_status, {"Content-Type": "text/html"}, BARE_THROTTLE_BODY
                        code = ""
                    else:
                        code, status = throttle_error(request)
                        status, headers, body = error_response(request, code, status, THROTTLE_MESSAGE)
                    self._record(fault.kind, request, status, code)
                    return status, headers, body
        return None

    def after(self, request: RequestView, processed_status: int) -> Optional[Response]:
        """The 500 that replaces moto's answer if this response is to be lost, else None."""
        with self._lock:
            for fault in self._lost:
                if fault.wants(request) and fault.decide():
                    self._record(fault.kind, request, 500, LOST_RESPONSE_CODE, processed_status=processed_status)
                    return error_response(request, LOST_RESPONSE_CODE, 500, LOST_RESPONSE_MESSAGE)
        return None

    def _record(self, kind: str, request: RequestView, status: int, code: str, **extra: Any) -> None:
        self._injected.append({"kind": kind, "service": request.service, "operation": request.operation,
                               "method": request.method, "path": request.path, "status": status,
                               "code": code, **extra})


_process: dict[str, FaultInjector] = {}
_process_lock = threading.Lock()


def active_faults() -> FaultInjector:
    """This process's fault injector, shared by mock_aws() and the HTTP server; hooks installed."""
    with _process_lock:
        if "injector" not in _process:
            _process["injector"] = FaultInjector()
            _install_stubber_hook(_process["injector"])
        return _process["injector"]


@contextmanager
def armed_faults() -> Iterator[FaultInjector]:
    """The process's injector, cleared on entry and on exit (for tests)."""
    injector = active_faults()
    injector.clear()
    try:
        yield injector
    finally:
        injector.clear()


def _install_stubber_hook(injector: FaultInjector) -> None:
    """Wrap moto's BotocoreStubber (botocore's before-send handler under mock_aws())."""
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse

    original = BotocoreStubber.__call__

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if not self.enabled or not injector.active:
            return original(self, event_name, request, **kwargs)
        view = injector.resolver.resolve(_view_of_botocore_request(request))
        refused = injector.before(view)
        if refused is not None:
            return AWSResponse(request.url, refused[0], refused[1], MockRawResponse(refused[2]))
        response = original(self, event_name, request, **kwargs)
        if response is None:  # not an emulated endpoint: nothing was processed
            return None
        lost = injector.after(view, response.status_code)
        if lost is not None:
            return AWSResponse(request.url, lost[0], lost[1], MockRawResponse(lost[2]))
        return response

    BotocoreStubber.__call__ = call  # type: ignore[method-assign]


def _view_of_botocore_request(request: Any) -> RequestView:
    host, path, query = split_url(request.url)
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif not isinstance(body, (bytes, bytearray)):
        body = b""  # a stream (S3 upload): never needed to find the operation
    headers = {}
    for name, value in request.headers.items():
        headers[name.lower()] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return RequestView(request.method, host, path, query, headers, bytes(body))
