"""drkit's steps, one module per family of resources, in pipeline order.

A newcomer looking for the step that owns a resource: `steps/vpc.py` has `EnsureVpc` (VPC,
subnets, gateways, routing), and so on. `all_steps()` is the pipeline; later families append
their steps here and declare what they depend on -- the engine needs no change.
"""

from __future__ import annotations

from drkit.step import Step
from steps.dynamodb import EnsureGlobalTable
from steps.s3 import EnsureBucket, EnsureBucketReplication, EnsureReplicationRole
from steps.vpc import EnsureVpc


def all_steps() -> list[Step]:
    return [
        EnsureVpc("primary"),
        EnsureVpc("dr"),
        EnsureGlobalTable("global"),
        EnsureBucket("primary"),
        EnsureBucket("dr"),
        EnsureReplicationRole("global"),
        EnsureBucketReplication("global"),
    ]
