"""drkit's extensions to moto, for the AWS behaviour moto lacks (see ../shared/MOTO-GAPS.md).

moto has no plugin API: each extension wraps backend methods or adds response methods, and
cites the AWS documentation of the behaviour it emulates. Every extension module exposes
`install(timings)`, which must be idempotent; `install_all` applies them in order. They are
patches on moto internals, so setup.cfg pins moto to a minor range and tests/sandbox holds a
contract test per extension.
"""

from __future__ import annotations

import importlib
import threading

from drkit.sandbox.timings import SandboxTimings

# Module names under drkit.sandbox.extensions, applied in this order.
EXTENSION_MODULES: tuple[str, ...] = (
    "ec2_nat",
    "ec2_dependencies",
    "ec2_idempotency",
    "dynamodb_replicas",
    "dynamodb_replica_settings",
    "s3_replication",
    "s3_policy_conditions",
    "rds_global",
    "rds_failover",
    "rds_identity",
    "cloudwatch_aurora_lag",
    "s3_create_bucket_tags",
    "lambda_invoke",
    "apigateway_serving",
    "kms_managed_aliases",
    "lambda_vpc_enis",
    "acm_validation",
    "cloudwatch_alarms",
    "route53_health",
    "rds_global_endpoint",
    "lambda_account_settings",
)

_install_lock = threading.Lock()
_active: dict[str, SandboxTimings] = {}


def active_timings() -> SandboxTimings:
    """The timings the installed extensions read (change them in place to change behaviour)."""
    return _active.get("timings") or install_all()


def install_all(timings: SandboxTimings | None = None) -> SandboxTimings:
    """Install every extension (once per process); later calls update the timings in place."""
    timings = timings or SandboxTimings.from_env()
    with _install_lock:
        current = _active.get("timings")
        if current is not None:
            # Extensions hold a reference to the first timings object; update it in place.
            for name, value in vars(timings).items():
                setattr(current, name, value)
            return current
        for name in EXTENSION_MODULES:
            module = importlib.import_module(f"{__name__}.{name}")
            module.install(timings)
        _active["timings"] = timings
    # Fault injection hooks moto's stubber, so armed faults apply under mock_aws() too.
    from drkit.sandbox.faults import active_faults

    active_faults()
    return timings
