"""The replication of the audit-log buckets (`steps/s3.py` builds the buckets themselves).

ensure_replication_role (global): the IAM role S3 assumes to replicate, allowed only what live
replication needs on exactly these two buckets.
ensure_bucket_replication (global): one rule replicating the whole primary bucket to the DR
bucket, delete markers included, with S3 Replication Time Control (15 minutes) and its metrics.
Its deep verify times a canary object's trip from the primary bucket to the DR bucket.

IAM role names are per account, so drkit finds the role by name and proves it is its own by its
tags; one without them is an error for plan, provision and verify, and is left alone by teardown.
Teardown order: the replication configuration, then the role's inline policy, then the role.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from drkit.errors import AwsCallError, DrkitError, WaitTimeoutError
from drkit.retries import propagating
from drkit.step import Change, Desired, Observation, Observed, ProbeResult, Step, StepContext, known
from drkit.tags import from_aws, is_owned, to_aws
from steps.s3_common import (
    ACCESS_DENIED, BUCKET_STEP, RefusesForeign, bucket_arn, canonical_policy, partition as _partition,
)

PROBE_TIMEOUT = 15 * 60.0  # Replication Time Control's promise: 99.99% within 15 minutes

ROLE = "role"
ROLE_KIND = "iam_role"
ROLE_POLICY = "role-policy"
ROLE_POLICY_KIND = "iam_role_policy"
ROLE_POLICY_NAME = "s3-replication"
REPLICATION = "replication"
REPLICATION_KIND = "bucket_replication"
REPLICATION_RULE_ID = "drkit-primary-to-dr"
ROLE_STEP = "ensure_replication_role:global"

# The only value S3 accepts for both the RTC threshold and the metrics event threshold.
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_ReplicationTimeValue.html
REPLICATION_MINUTES = 15
VERSIONING_PROPAGATION_SECONDS = 120.0
# PutBucketReplication checks versioning on both buckets ("Versioning must be 'Enabled' on the
# bucket...", "Destination bucket must have versioning enabled."): both InvalidRequest, both seen
# right after versioning was enabled, before S3 has propagated it.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication.html#replication-requirements
# AWS documents no error of this call for a role IAM has not propagated yet: S3 assumes the role
# when it replicates (failure reason AssumeRoleNotPermitted).
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-failure-codes.html
REPLICATION_NOT_YET_VALID = (propagating("InvalidRequest", message="versioning", budget=2 * 60),)

# S3 assumes the role to replicate.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/setting-repl-config-perm-overview.html
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def replication_permissions(partition: str, source: str, destination: str) -> dict[str, Any]:
    """Exactly what live replication needs, on exactly these buckets.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/setting-repl-config-perm-overview.html"""
    source_arn, destination_arn = bucket_arn(partition, source), bucket_arn(partition, destination)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadSourceBucket", "Effect": "Allow",
             "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"], "Resource": [source_arn]},
            {"Sid": "ReadSourceObjectVersions", "Effect": "Allow",
             "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
             "Resource": [f"{source_arn}/*"]},
            {"Sid": "WriteReplicas", "Effect": "Allow",
             "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
             "Resource": [f"{destination_arn}/*"]},
        ],
    }


def replication_configuration(role_arn: str | None, destination_arn: str) -> dict[str, Any]:
    """One V2 rule for the whole bucket (an empty prefix filter); a V2 rule must name its Priority
    and DeleteMarkerReplication, and RTC must come with replication metrics.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-add-config.html
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-time-control.html"""
    return {
        "Role": role_arn,
        "Rules": [{
            "ID": REPLICATION_RULE_ID,
            "Priority": 1,
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "Destination": {
                "Bucket": destination_arn,
                "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": REPLICATION_MINUTES}},
                "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": REPLICATION_MINUTES}},
            },
        }],
    }


def replication_settings(configuration: dict[str, Any]) -> dict[str, Any]:
    """The settings drkit checks, read from a GetBucketReplication answer (drkit's rule only). Pure."""
    rules = configuration.get("Rules", [])
    rule = next((r for r in rules if r.get("ID") == REPLICATION_RULE_ID), {})
    destination = rule.get("Destination", {})
    rtc, metrics = destination.get("ReplicationTime", {}), destination.get("Metrics", {})
    rule_filter = rule.get("Filter")
    return {
        "role_arn": configuration.get("Role"),
        "rule_ids": sorted(r.get("ID", "") for r in rules),
        "status": rule.get("Status"),
        # {} and {"Prefix": ""} both select every object; a V1 rule (no Filter) reads as None.
        "filter": {} if rule_filter in ({}, {"Prefix": ""}) else rule_filter,
        "delete_marker_replication": rule.get("DeleteMarkerReplication", {}).get("Status"),
        "destination_bucket": destination.get("Bucket"),
        "replication_time_minutes": rtc.get("Time", {}).get("Minutes") if rtc.get("Status") == "Enabled" else None,
        "metrics_event_threshold_minutes": (
            metrics.get("EventThreshold", {}).get("Minutes") if metrics.get("Status") == "Enabled" else None
        ),
    }


class EnsureReplicationRole(RefusesForeign):
    """The role S3 assumes to replicate. IAM is global: its calls go to the primary region.
    The role is tagged in CreateRole; inline policies take no tags and belong to their role."""

    name = "ensure_replication_role"

    def observe(self, ctx: StepContext) -> Observation:
        role_name = ctx.config.names.replication_role
        found = ctx.call("iam", "get_role", RoleName=role_name, missing_ok=True)
        if found is None:
            return Observation({})
        role = found["Role"]
        tags = from_aws(role.get("Tags"))
        owned = is_owned(tags, ctx.config.env, self.name)
        attrs = {"trust_policy": canonical_policy(role.get("AssumeRolePolicyDocument"))}
        resources = {ROLE: Observed(ROLE_KIND, ROLE, role["Arn"], attrs=attrs, tags=tags, owned=owned)}
        if owned:
            policy = ctx.call("iam", "get_role_policy", RoleName=role_name, PolicyName=ROLE_POLICY_NAME,
                              missing_ok=True)
            if policy is not None:
                resources[ROLE_POLICY] = Observed(
                    ROLE_POLICY_KIND, ROLE_POLICY, f"{role_name}/{ROLE_POLICY_NAME}",
                    attrs={"document": canonical_policy(policy["PolicyDocument"])},
                )
        return Observation(resources)

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        names = ctx.config.names
        role_name = names.replication_role
        permissions = replication_permissions(_partition(ctx), names.bucket("primary"), names.bucket("dr"))
        return [
            Desired(ROLE_KIND, ROLE, role_name, {"trust_policy": canonical_policy(TRUST_POLICY)},
                    ctx.tags_for(ROLE, role_name)),
            Desired(ROLE_POLICY_KIND, ROLE_POLICY, ROLE_POLICY_NAME, {"document": canonical_policy(permissions)}),
        ]

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {"replication_role_arn": ctx.recorded_id(ROLE)}

    # Apply ---------------------------------------------------------------------------------
    def create_iam_role(self, ctx: StepContext, change: Change) -> None:
        names = ctx.config.names
        role = ctx.call(
            "iam", "create_role", RoleName=change.name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
            Description=f"drkit: lets S3 replicate {names.bucket('primary')} to {names.bucket('dr')}",
            Tags=to_aws(ctx.tags_for(ROLE, change.name)), resource=change.name,
            # No token: after a lost answer, the role found with drkit's tags (sent in this very
            # call) is the one created; a resend would only meet EntityAlreadyExists.
            settled=lambda: self._own_role(ctx, change.name),
        )["Role"]
        ctx.record(ROLE, ROLE_KIND, role["Arn"])

    def _own_role(self, ctx: StepContext, role_name: str) -> dict[str, Any] | None:
        found = ctx.call("iam", "get_role", RoleName=role_name, missing_ok=True)
        if found and is_owned(from_aws(found["Role"].get("Tags")), ctx.config.env, self.name):
            return found
        return None

    def update_iam_role(self, ctx: StepContext, change: Change) -> None:
        role_name = ctx.config.names.replication_role
        if change.attribute == "tags":
            ctx.call("iam", "tag_role", RoleName=role_name, Tags=to_aws(change.expected), resource=role_name)
        else:
            ctx.call("iam", "update_assume_role_policy", RoleName=role_name, PolicyDocument=json.dumps(TRUST_POLICY),
                     resource=role_name)

    def create_iam_role_policy(self, ctx: StepContext, change: Change) -> None:
        # Right after CreateRole, IAM may not know the role yet (NoSuchEntity): drkit.aws retries
        # "not found" on mutating calls.
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
        names = ctx.config.names
        role_name = names.replication_role
        permissions = replication_permissions(_partition(ctx), names.bucket("primary"), names.bucket("dr"))
        ctx.call("iam", "put_role_policy", RoleName=role_name, PolicyName=ROLE_POLICY_NAME,
                 PolicyDocument=json.dumps(permissions), resource=role_name)
        ctx.record(ROLE_POLICY, ROLE_POLICY_KIND, f"{role_name}/{ROLE_POLICY_NAME}")

    def update_iam_role_policy(self, ctx: StepContext, change: Change) -> None:
        self.create_iam_role_policy(ctx, change)

    # Delete: the inline policy first -- DeleteRole refuses a role that still has one.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_manage_delete.html
    def delete_iam_role_policy(self, ctx: StepContext, change: Change) -> None:
        role_name = ctx.config.names.replication_role
        ctx.call("iam", "delete_role_policy", RoleName=role_name, PolicyName=ROLE_POLICY_NAME, missing_ok=True,
                 resource=role_name)

    def delete_iam_role(self, ctx: StepContext, change: Change) -> None:
        ctx.call("iam", "delete_role", RoleName=change.name, missing_ok=True, resource=change.name)


class EnsureBucketReplication(Step):
    """The replication configuration on the primary bucket. It takes no tags: it is drkit's when
    it holds drkit's rule, and is written only onto buckets the bucket steps recorded as drkit's."""

    name = "ensure_bucket_replication"

    def depends_on(self) -> tuple[str, ...]:
        return (f"{BUCKET_STEP}:primary", f"{BUCKET_STEP}:dr", ROLE_STEP)

    def observe(self, ctx: StepContext) -> Observation:
        source = ctx.config.names.bucket("primary")
        try:
            found = ctx.call("s3", "get_bucket_replication", Bucket=source, missing_ok=True)
        except AwsCallError as exc:
            if exc.code not in ACCESS_DENIED:
                raise
            foreign = Observed(REPLICATION_KIND, REPLICATION, source, owned=False, attrs={"other_account": True})
            return Observation({REPLICATION: foreign})
        if found is None:  # no configuration, or no bucket
            return Observation({})
        settings = replication_settings(found["ReplicationConfiguration"])
        owned = REPLICATION_RULE_ID in settings["rule_ids"]
        return Observation({REPLICATION: Observed(REPLICATION_KIND, REPLICATION, source, attrs=settings, owned=owned)})

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        names = ctx.config.names
        # The role's ARN is unknown until its step has run with this state (a lost state file).
        role_arn = ctx.dependency_output(ROLE_STEP, "replication_role_arn")
        attrs = known(replication_settings(
            replication_configuration(role_arn, bucket_arn(_partition(ctx), names.bucket("dr")))
        ))
        return [Desired(REPLICATION_KIND, REPLICATION, names.bucket("primary"), attrs)]

    # Apply ---------------------------------------------------------------------------------
    def create_bucket_replication(self, ctx: StepContext, change: Change) -> None:
        source, destination, configuration = self._configuration(ctx)
        # Both buckets must be versioned before S3 accepts the configuration; the bucket steps
        # enabled it, but S3 propagates it asynchronously (each bucket is read in its region).
        for region, bucket in ((ctx.config.region("primary"), source), (ctx.config.region("dr"), destination)):
            self._wait_versioning(ctx, region, bucket)
        ctx.call("s3", "put_bucket_replication", Bucket=source, ReplicationConfiguration=configuration,
                 not_yet=REPLICATION_NOT_YET_VALID, resource=source)
        ctx.record(REPLICATION, REPLICATION_KIND, source)

    def update_bucket_replication(self, ctx: StepContext, change: Change) -> None:
        """PutBucketReplication replaces the whole configuration: the put made for the first
        drifted field repairs them all, and the changes after it find nothing left to do."""
        source, _, configuration = self._configuration(ctx)
        current = ctx.call("s3", "get_bucket_replication", Bucket=source, missing_ok=True)
        if current and replication_settings(current["ReplicationConfiguration"]) == replication_settings(configuration):
            return
        self.create_bucket_replication(ctx, change)

    def delete_bucket_replication(self, ctx: StepContext, change: Change) -> None:
        ctx.call("s3", "delete_bucket_replication", Bucket=change.resource_id, missing_ok=True,
                 resource=change.resource_id)

    def _configuration(self, ctx: StepContext) -> tuple[str, str, dict[str, Any]]:
        """The source and destination buckets and the configuration to put, from what the steps this one depends
        on recorded -- so drkit only ever writes onto buckets it proved are its own."""
        source = self._dependency(ctx, f"{BUCKET_STEP}:primary", "bucket_name")
        destination = self._dependency(ctx, f"{BUCKET_STEP}:dr", "bucket_name")
        role_arn = self._dependency(ctx, ROLE_STEP, "replication_role_arn")
        return source, destination, replication_configuration(role_arn, bucket_arn(_partition(ctx), destination))

    def _dependency(self, ctx: StepContext, step_key: str, name: str) -> str:
        value = ctx.dependency_output(step_key, name)
        if not value:
            raise DrkitError(f"{self.key}: {step_key} has recorded no {name}",
                             hint=f"provision {step_key} first (drkit provision runs it before this step)")
        return value

    # Deep verify ---------------------------------------------------------------------------
    def probe(self, ctx: StepContext) -> list[ProbeResult]:
        """Put a canary object in the primary bucket; time its arrival in the DR bucket and the
        source's ReplicationStatus reaching COMPLETED; then delete every version of it from both
        buckets, whatever happened (deleting a version is never replicated).

        S3 reports a ReplicationStatus only for an object a rule makes eligible, from the moment it
        is written: none at all means it will never replicate, and fails at once.
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html"""
        source, destination = ctx.config.names.bucket("primary"), ctx.config.names.bucket("dr")
        primary, dr = ctx.config.region("primary"), ctx.config.region("dr")
        key = f"drkit-canary/{uuid.uuid4()}"
        check = f"an object put in {source} reaches {destination}"
        clock = ctx.waiter.clock
        started = clock.monotonic()
        try:
            ctx.aws.call("s3", primary, "put_object", Bucket=source, Key=key, Body=b"drkit verify --deep",
                         resource=f"{source}/{key}")
            status = ctx.waiter.until(
                f"the canary object to replicate to {destination}",
                lambda: ctx.aws.call("s3", primary, "head_object", Bucket=source, Key=key).get("ReplicationStatus"),
                lambda value: value != "PENDING",
                describe=lambda value: value or "no replication status",
                timeout=PROBE_TIMEOUT,
            )
            seconds = clock.monotonic() - started
            arrived = ctx.aws.call("s3", dr, "head_object", Bucket=destination, Key=key, missing_ok=True)
            if status == "COMPLETED" and arrived and arrived.get("ReplicationStatus") == "REPLICA":
                result = ProbeResult(self.key, dr, check, True, f"COMPLETED in {seconds:.1f}s")
            else:
                result = ProbeResult(
                    self.key, dr, check, False, f"source status {status or 'none: no rule applies to it'}",
                    "the copy is missing from the DR bucket" if not arrived else "")
        except WaitTimeoutError:
            result = ProbeResult(self.key, dr, check, False, f"not COMPLETED after {PROBE_TIMEOUT:.0f}s")
        finally:
            # A copy still in flight after a timeout can land after this (teardown empties it).
            for region, bucket in ((primary, source), (dr, destination)):
                versions = ctx.aws.call("s3", region, "list_object_versions", Bucket=bucket, Prefix=key,
                                        missing_ok=True) or {}
                for version in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
                    ctx.aws.call("s3", region, "delete_object", Bucket=bucket, Key=key,
                                 VersionId=version["VersionId"], resource=f"{bucket}/{key}")
        return [result]

    def _wait_versioning(self, ctx: StepContext, region: str, bucket: str) -> None:
        ctx.waiter.until(
            f"versioning of S3 bucket {bucket} in {region} to be Enabled",
            lambda: ctx.aws.call("s3", region, "get_bucket_versioning", Bucket=bucket, missing_ok=True) or {},
            lambda found: found.get("Status") == "Enabled",
            describe=lambda found: found.get("Status") or "never enabled",
            timeout=VERSIONING_PROPAGATION_SECONDS,
        )
