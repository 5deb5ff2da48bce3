"""`drkit state init`: the state bucket and its replica, built the way drkit builds its own buckets.

The bucket steps of steps/s3.py do the work -- versioning, SSE, the four public-access blocks,
the TLS-only policy, tags in CreateBucket, the replication role scoped to exactly these two
buckets, and one replication rule with delete markers and Replication Time Control -- run with a
configuration whose names are the state buckets': the home bucket plays the steps' "primary"
(the replication source, in the region the user named) and the replica their "dr" (the other
region). So the state bucket gets the same settings, the same idempotency and the same checks as
the stack's own buckets, from the same code.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from drkit.aws import AwsGateway
from drkit.config import Config
from drkit.naming import Names
from drkit.state import State
from drkit.step import Change, StepContext
from drkit.storage.location import S3StateLocation
from drkit.waiters import Waiter

ROLE_NAME_LIMIT = 64  # https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html


def state_replication_role(bucket: str) -> str:
    """The IAM role S3 assumes to replicate the state bucket (its name fits IAM's 64 characters)."""
    name = f"drkit-state-replication-{bucket}"
    if len(name) > ROLE_NAME_LIMIT:
        name = f"drkit-state-replication-{hashlib.sha256(bucket.encode()).hexdigest()[:16]}"
    return name


@dataclasses.dataclass(frozen=True)
class StateBucketNames(Names):
    """Names as the bucket steps ask for them, answered with the state buckets'."""

    home: str = ""
    replica: str = ""

    def bucket(self, role: str) -> str:
        return self.home if role == "primary" else self.replica

    @property
    def replication_role(self) -> str:
        return state_replication_role(self.home)


@dataclasses.dataclass(frozen=True)
class StateBucketConfig(Config):
    """The configuration the bucket steps run with: home region as "primary", replica as "dr"."""

    bucket_names: StateBucketNames | None = None

    @property
    def names(self) -> Names:  # type: ignore[override]
        return self.bucket_names or Names(self.env)


def state_bucket_config(config: Config, location: S3StateLocation) -> StateBucketConfig:
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(Config)}
    values.update(primary_region=location.region, dr_region=location.replica_region)
    return StateBucketConfig(**values, bucket_names=StateBucketNames(config.env, home=location.bucket, replica=location.replica))


def state_bucket_steps() -> list:
    from steps.s3 import EnsureBucket, EnsureBucketReplication, EnsureReplicationRole

    return [EnsureBucket("primary"), EnsureBucket("dr"), EnsureReplicationRole("global"),
            EnsureBucketReplication("global")]


def init_state_buckets(config: Config, location: S3StateLocation, aws: AwsGateway, waiter: Waiter,
                       log: Any) -> list[Change]:
    """Create the state bucket, its replica and their replication, in order; returns the changes
    made. Idempotent: a second run changes nothing."""
    bucket_config = state_bucket_config(config, location)
    state = State.new(config.state_path, bucket_config, persist=False)  # the buckets hold the state, not this
    changes: list[Change] = []
    for step in state_bucket_steps():
        ctx = StepContext(bucket_config, aws, state, waiter, log.bind(step=step.key), step)
        changes += step.create(ctx)
    return changes
