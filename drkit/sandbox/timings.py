"""How long emulated resources stay in AWS's transitional states.

Real AWS keeps a NAT gateway `pending` for a minute or two and an Aurora cluster `creating` for
many minutes; moto makes everything final at once. The sandbox stretches those states to a short,
configurable time so that drkit's waiters, progress output and resume-while-waiting are really
exercised. Transitions are computed lazily from the creation time on every describe, so no
background threads are involved.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from drkit.durations import AWS_TYPICAL

ENV_PREFIX = "DRKIT_SANDBOX_"
PROFILES = ("default", "aws")


@dataclass
class SandboxTimings:
    """Seconds each transitional state lasts. 0 means "final at once" (moto's own behaviour)."""

    nat_pending: float = 0.5
    nat_deleting: float = 0.5
    rds_creating: float = 0.5
    rds_deleting: float = 0.0
    rds_promoting: float = 0.5
    # An Aurora global database switchover or failover is in progress (FailoverState present) this
    # long; an old primary that rejoined after a failover is `pending-resync` as long again.
    rds_switchover: float = 0.5
    rds_global_deleting: float = 0.5  # a deleted global database is `deleting` before it is gone
    dynamodb_replica_creating: float = 0.5
    dynamodb_replica_deleting: float = 0.5
    s3_replication: float = 0.2
    dynamodb_replication: float = 0.2
    # Lambda's hyperplane ENIs stay this long after their function is deleted (AWS: 20-40 min).
    lambda_eni_linger: float = 1.0
    # An ACM certificate is ISSUED this long after its DNS validation record is in its zone.
    acm_validation: float = 0.5
    # Whether the sandbox's hosted zones count as delegated from their parent domain: with 0,
    # a validation record is never seen by ACM, as with a zone nobody delegated to on AWS.
    acm_zones_delegated: bool = True
    # Route 53 endpoint checks probe at most this often (sandbox seconds) per check; 0: every
    # status read is one round of the checkers (AWS: every 10 or 30 s).
    route53_health_interval: float = 0.0
    # The AuroraGlobalDBReplicationLag CloudWatch reports for a secondary cluster; change it in place
    # (or DRKIT_SANDBOX_AURORA_REPLICATION_LAG_MS) to make the lag high.
    # A CloudWatch alarm's period lasts Period / this many real seconds (1: as on AWS).
    cloudwatch_period_scale: float = 1.0
    aurora_replication_lag_ms: float = 120.0
    # The HTTP server stands in for AWS's HTTPS endpoints: its loopback requests count as TLS
    # (aws:SecureTransport true), so a TLS-only bucket policy treats drkit as AWS would.
    # SandboxServer and `drkit sandbox` turn this on; in-process mocks judge the URL's scheme.
    loopback_http_is_tls: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def aws(cls, scale: float = 60.0, **overrides: Any) -> "SandboxTimings":
        """The `aws` profile: each state lasts as long as AWS usually takes (drkit/durations.py),
        divided by `scale` (60: one real minute per second). Where several AWS states share one
        sandbox field (every Aurora cluster and instance is `rds_creating`), it takes their mean."""
        if scale <= 0:
            raise ValueError(f"sandbox scale must be positive, not {scale}")
        values: dict[str, Any] = {}
        for name, seconds in aws_field_seconds().items():
            values[name] = seconds / scale
        return cls(**{**values, **overrides})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SandboxTimings":
        """Read overrides such as DRKIT_SANDBOX_NAT_PENDING=2.5 from the environment, on top of
        DRKIT_SANDBOX_PROFILE (default or aws) scaled by DRKIT_SANDBOX_SCALE (default 60)."""
        environ = os.environ if environ is None else environ
        profile, scale = profile_from_env(environ)
        base = cls.aws(scale) if profile == "aws" else cls()
        values: dict[str, Any] = {f.name: getattr(base, f.name) for f in fields(cls) if f.name != "clock"}
        for f in fields(cls):
            if f.name == "clock":
                continue
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = raw.lower() in ("1", "true", "yes") if f.type in (bool, "bool") else float(raw)
        return cls(**values)

    def elapsed_since(self, started: float) -> float:
        return self.clock() - started

    def now(self) -> float:
        return self.clock()


def aws_field_seconds() -> dict[str, float]:
    """Typical AWS seconds per sandbox field: the mean of the table's entries that field emulates."""
    grouped: dict[str, list[float]] = {}
    for entry in AWS_TYPICAL:
        if entry.sandbox_field:
            grouped.setdefault(entry.sandbox_field, []).append(entry.seconds)
    return {name: sum(values) / len(values) for name, values in grouped.items()}


def profile_from_env(environ: Mapping[str, str]) -> tuple[str, float]:
    """(profile, scale) from DRKIT_SANDBOX_PROFILE / DRKIT_SANDBOX_SCALE; a bad value is a
    ValueError naming the variable."""
    profile = environ.get(ENV_PREFIX + "PROFILE", "default").strip().lower() or "default"
    if profile not in PROFILES:
        raise ValueError(f"{ENV_PREFIX}PROFILE must be one of {', '.join(PROFILES)}, not {profile!r}")
    raw = environ.get(ENV_PREFIX + "SCALE", "60")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}SCALE must be a number, not {raw!r}") from None
    if scale <= 0:
        raise ValueError(f"{ENV_PREFIX}SCALE must be positive, not {raw!r}")
    return profile, scale
