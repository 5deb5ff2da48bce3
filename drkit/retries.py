"""What "not yet, try again" means for each kind of AWS answer, and for how long.

AWS says "not yet" in several ways that last very different times: a throttle clears in seconds,
a resource created a moment ago becomes visible within a minute or two, a setting propagates
(IAM, versioning, PITR) in tens of seconds to minutes, and a dependency that is still going away
(a NAT's ENI holding a subnet, a Lambda ENI holding a security group) can take many minutes.
Each kind gets its own time budget, measured on the gateway's clock, and a retried code must
match the operation and, where the code is broad, the message -- never a code on its own that
also means a real error (LimitExceededException is a quota in most services, not a throttle).

Budgets follow AWS's guidance to back off for minutes on EC2 eventual consistency
(https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html) and the timeouts
terraform-provider-aws uses for the same calls (15 min for an internet-gateway detach, 20 min
for a subnet delete, 2 min for S3 replication's versioning check).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable

import botocore.exceptions
import botocore.parsers

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", "BandwidthLimitExceeded",
    # A throttle whose body botocore could not parse reports the HTTP status as its code.
    "429", "503",
})
THROTTLING_STATUS = frozenset({429, 503})


@dataclass(frozen=True)
class NotYet:
    """One kind of "not yet": the error codes that mean it (and, for a broad code, a fragment
    its message must contain) and the time it may last before drkit gives up."""

    kind: str
    codes: frozenset[str]
    budget: float
    message: str = ""  # case-insensitive; "" matches any message

    def matches(self, code: str, message: str) -> bool:
        return code in self.codes and self.message.lower() in (message or "").lower()


def in_use(*codes: str, message: str = "", budget: float = 20 * 60) -> NotYet:
    """A dependency still being released (DependencyViolation while ENIs go away)."""
    return NotYet("in use", frozenset(codes), budget, message)


def propagating(*codes: str, message: str = "", budget: float = 3 * 60) -> NotYet:
    """A change made a moment ago that another part of AWS does not see yet."""
    return NotYet("propagation", frozenset(codes), budget, message)


def busy(*codes: str, message: str = "", budget: float = 10 * 60) -> NotYet:
    """A resource in a state that refuses this call until an operation in progress ends."""
    return NotYet("busy", frozenset(codes), budget, message)


THROTTLED = NotYet("throttling", THROTTLING_CODES, 5 * 60)
# EC2 and friends: a resource created a moment ago is not visible to the next call yet.
NOT_FOUND_AFTER_CREATE = NotYet("not found after create", frozenset(), 3 * 60)
# A request that may have been carried out: the answer was lost (a 5xx, a timeout).
UNKNOWN_OUTCOME = NotYet("unknown outcome", frozenset(), 3 * 60)


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


def error_message(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Message", ""))
    return str(exc)


def http_status(exc: BaseException) -> int | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def is_throttle(exc: BaseException) -> bool:
    code = error_code(exc)
    return code in THROTTLING_CODES or (not code and http_status(exc) in THROTTLING_STATUS)


# Transport failures after the request may have reached AWS: it may have been carried out.
MAYBE_DONE_ERRORS = (
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    botocore.parsers.ResponseParserError,
)


def outcome_unknown(exc: BaseException) -> bool:
    """Whether AWS may have carried out a request that failed this way (a lost response)."""
    if isinstance(exc, MAYBE_DONE_ERRORS):
        return True
    status = http_status(exc)
    return status is not None and status >= 500 and not is_throttle(exc)


@dataclass
class Budgets:
    """Elapsed time per kind of "not yet" within one call, and the jittered backoff."""

    started: dict[str, float] = field(default_factory=dict)
    attempts: int = 0
    base: float = 0.5
    cap: float = 20.0
    rng: random.Random = field(default_factory=random.Random)

    def allow(self, kind: NotYet, now: float) -> bool:
        """Whether another attempt fits in `kind`'s budget (its clock starts at its first sight)."""
        first = self.started.setdefault(kind.kind, now)
        return now - first < kind.budget

    def elapsed(self, kind: NotYet, now: float) -> float:
        return now - self.started.get(kind.kind, now)

    def next_delay(self) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempts)], but never below 0.1 s."""
        self.attempts += 1
        ceiling = min(self.cap, self.base * (2 ** min(self.attempts, 16)))
        return max(0.1, self.rng.uniform(0, ceiling))


def classify(
    exc: BaseException, *, mutating: bool, deleting: bool, missing_ok: bool, not_yet: Iterable[NotYet],
    not_found: bool,
) -> NotYet | None:
    """The kind of "not yet" this failure is, or None when it is an answer to report."""
    code, message = error_code(exc), error_message(exc)
    if is_throttle(exc):
        return THROTTLED
    for kind in not_yet:
        if kind.matches(code, message):
            return kind
    if mutating and not deleting and not missing_ok and not_found:
        return NOT_FOUND_AFTER_CREATE
    return None
