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
from typing import Callable

ENV_PREFIX = "DRKIT_SANDBOX_"


@dataclass
class SandboxTimings:
    """Seconds each transitional state lasts. 0 means "final at once" (moto's own behaviour)."""

    nat_pending: float = 0.5
    nat_deleting: float = 0.5
    rds_creating: float = 0.5
    rds_deleting: float = 0.0
    rds_promoting: float = 0.5
    rds_global_deleting: float = 0.5  # a deleted global database is `deleting` before it is gone
    dynamodb_replica_creating: float = 0.5
    dynamodb_replica_deleting: float = 0.5
    s3_replication: float = 0.2
    dynamodb_replication: float = 0.2
    aurora_replication_lag_ms: float = 120.0  # the lag CloudWatch reports for a secondary cluster
    # The HTTP server stands in for AWS's HTTPS endpoints: its loopback requests count as TLS
    # (aws:SecureTransport true), so a TLS-only bucket policy treats drkit as AWS would.
    # SandboxServer and `drkit sandbox` turn this on; in-process mocks judge the URL's scheme.
    loopback_http_is_tls: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "SandboxTimings":
        """Read overrides such as DRKIT_SANDBOX_NAT_PENDING=2.5 from the environment."""
        environ = os.environ if environ is None else environ
        values = {}
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
