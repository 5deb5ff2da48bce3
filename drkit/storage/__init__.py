"""Where drkit keeps the state: a local file (drkit.storage.local) or an S3 prefix with a replica
in the other region (drkit.storage.s3). `open_storage` picks one from the configuration."""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

from drkit.storage.base import Journal, Storage, new_run_id

DEFAULT_LEASE_SECONDS = 60.0
# A 5xx from the state's bucket gets botocore's own attempts (standard mode: 4, backed off), then
# counts as the region being down: reads go to the replica at once instead of retrying for
# minutes (a failover must never wait for the failed region); writes are refused, and re-run.
STATE_UNKNOWN_OUTCOME_SECONDS = 0.0
LEASE_ENV = "DRKIT_STATE_LEASE_SECONDS"


def lease_seconds(environ: Mapping[str, str] | None = None) -> float:
    """How long an S3 lock outlives its last renewal (DRKIT_STATE_LEASE_SECONDS, default 60)."""
    from drkit.errors import UserInputError

    value = (os.environ if environ is None else environ).get(LEASE_ENV)
    if value is None:
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise UserInputError(f"{LEASE_ENV} must be a positive number of seconds, not {value!r}")
    return seconds


def open_storage(config: Any, *, aws: Any = None, credentials: Mapping[str, str] | None = None, clock: Any = None,
                 retry: Any = None, warn: Any = None) -> Storage:
    """The storage `config` names. S3 storage talks to AWS through a gateway of its own, which
    audits nothing: the state's own writes are not the stack's changes (and auditing the audit
    log's writes would never end)."""
    from drkit.storage.local import LocalStorage

    location = config.state_location
    if location is None:
        return LocalStorage(config.state_path)
    import dataclasses

    from drkit.aws import AwsGateway, RetryPolicy
    from drkit.storage.s3 import S3Storage

    retry = dataclasses.replace(retry or RetryPolicy(), unknown_outcome_seconds=STATE_UNKNOWN_OUTCOME_SECONDS)
    gateway = aws or AwsGateway(profile=config.profile, endpoint_url=config.endpoint_url, credentials=credentials,
                                clock=clock, retry=retry)
    return S3Storage(location, gateway, cache_dir=config.state_path.parent, lease_seconds=lease_seconds(),
                     warn=warn or (lambda line: print(line, file=sys.stderr)))


__all__ = ["Journal", "Storage", "new_run_id", "open_storage", "lease_seconds"]
