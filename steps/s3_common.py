"""What the bucket steps (`steps/s3.py`) and the replication steps (`steps/s3_replication.py`)
share: the bucket step's name, policy comparison, and the refusal of a resource drkit cannot prove
is its own. A module of its own so the two step modules import it and never each other.
"""

from __future__ import annotations

import json
from typing import Any

from drkit.config import known_regions
from drkit.errors import DrkitError
from drkit.step import Assessment, Change, Observation, Step, StepContext

BUCKET = "bucket"
BUCKET_KIND = "bucket"
BUCKET_STEP = "ensure_bucket"

# HeadBucket answers 403 for a bucket that exists but is not readable by these credentials
# (typically another account's). https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html
ACCESS_DENIED = frozenset({"403", "AccessDenied", "AllAccessDisabled"})

# An observed attribute (never desired, so never compared) that says how a resource was judged:
# another's tags (or another account), and no state record vouches for it.
DISOWNED = "disowned"


def canonical_policy(value: Any) -> Any:
    """A policy document reduced to its meaning: IAM and S3 may return a one-item list as the
    item, lists in another order and booleans as strings. Pure."""
    if isinstance(value, dict):
        return {key: canonical_policy(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        items = sorted((canonical_policy(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
        return items[0] if len(items) == 1 else items
    if isinstance(value, bool):
        return str(value).lower()
    return value


def bucket_arn(partition: str, bucket: str) -> str:
    return f"arn:{partition}:s3:::{bucket}"


def foreign_error(
    step: Step, ctx: StepContext, kind: str, resource_id: str, *, other_account: bool = False
) -> DrkitError:
    """A name drkit needs is taken by a resource it cannot prove is its own: stop, touch nothing."""
    whose = ("another account's, or this account's but unreadable with these credentials (HeadBucket answers "
             "403 to both; drkit needs s3:ListBucket on its own buckets)") if other_account else (
        f"not drkit's (it lacks drkit's ownership tags for environment {ctx.config.env!r})")
    return DrkitError(
        f"{step.key}: {kind.replace('_', ' ')} {resource_id} exists but is {whose}",
        hint="drkit never adopts or deletes it: remove or rename it by hand, or choose another --env",
    )


class RefusesForeign(Step):
    """A step whose resource names are taken account- or world-wide: one found without drkit's
    ownership tags is an error, not a finding, for plan and provision (assess) and verify
    (checks); teardown leaves it alone (decide_teardown skips what is not owned)."""

    def assess(self, ctx: StepContext) -> Assessment:
        assessment = super().assess(ctx)
        self._refuse_foreign(ctx, assessment.observation)
        return assessment

    def checks(self, ctx: StepContext, observation: Observation) -> list[Change]:
        self._refuse_foreign(ctx, observation)
        return super().checks(ctx, observation)

    def _refuse_foreign(self, ctx: StepContext, observation: Observation) -> None:
        """As the engine's rule (drkit.step.decide): a resource whose id the state recorded is
        drkit's even without its tags (they are repaired), unless observe found proof it is not."""
        for have in observation.resources.values():
            vouched = ctx.recorded_id(have.key) == have.id and not have.attrs.get(DISOWNED)
            if have.exists and not have.owned and not vouched:
                raise foreign_error(self, ctx, have.kind, have.id, other_account=bool(have.attrs.get("other_account")))


def partition(ctx: StepContext) -> str:
    """The AWS partition of the step's region (aws, aws-cn, aws-us-gov), for ARNs."""
    return known_regions()[ctx.region]
