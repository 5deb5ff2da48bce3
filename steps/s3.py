"""The audit-log buckets and their cross-region replication, as the seed specifies them.

ensure_bucket (primary, dr): `dr-primary-bucket-<env>` and `dr-secondary-bucket-<env>`, each
versioned, encrypted by default with SSE-S3, with all four public-access blocks on and a bucket
policy that denies every request not made over TLS.
ensure_replication_role (global): the IAM role S3 assumes to replicate, allowed only what live
replication needs on exactly these two buckets.
ensure_bucket_replication (global): one rule replicating the whole primary bucket to the DR
bucket, delete markers included, with S3 Replication Time Control (15 minutes) and its metrics.

S3 bucket names are global and IAM role names are per account, so drkit finds these resources by
name and proves they are its own by their tags. One that exists without drkit's ownership tags
(or in another account) is an error for plan, provision and verify, and is left alone by teardown:
it is never adopted, retagged or deleted.
Teardown order: the replication configuration, then (in parallel) each bucket -- emptied of every
object version and delete marker first -- and the role's inline policy, then the role.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from drkit.config import known_regions
from drkit.retries import NotYet, busy, propagating
from drkit.errors import AwsCallError, DrkitError, WaitTimeoutError
from drkit.step import (
    Assessment, Change, Desired, Observation, Observed, ProbeResult, Step, StepContext, known,
)
from drkit.tags import from_aws, is_owned, missing_tags, to_aws

PROBE_TIMEOUT = 15 * 60.0  # Replication Time Control's promise: 99.99% within 15 minutes

BUCKET = "bucket"
BUCKET_KIND = "bucket"
ROLE = "role"
ROLE_KIND = "iam_role"
ROLE_POLICY = "role-policy"
ROLE_POLICY_KIND = "iam_role_policy"
ROLE_POLICY_NAME = "s3-replication"
REPLICATION = "replication"
REPLICATION_KIND = "bucket_replication"
REPLICATION_RULE_ID = "drkit-primary-to-dr"

BUCKET_STEP = "ensure_bucket"
ROLE_STEP = "ensure_replication_role:global"

# Buckets in us-east-1 take no LocationConstraint (naming it is InvalidLocationConstraint), and
# CreateBucket there answers 200 OK for a bucket the account already owns.
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
LOCATION_CONSTRAINT_FREE_REGION = "us-east-1"
ENCRYPTION_ALGORITHM = "AES256"
ALL_PUBLIC_ACCESS_BLOCKED = {
    "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
}
TLS_ONLY_SID = "DenyInsecureTransport"
# The only value S3 accepts for both the RTC threshold and the metrics event threshold.
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_ReplicationTimeValue.html
REPLICATION_MINUTES = 15
# DeleteObjects takes at most 1000 keys per request.
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
DELETE_BATCH = 1000
EMPTY_ATTEMPTS = 3
VERSIONING_PROPAGATION_SECONDS = 120.0

# HeadBucket answers 403 for a bucket that exists but is not readable by these credentials
# (typically another account's). https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html
ACCESS_DENIED = frozenset({"403", "AccessDenied", "AllAccessDisabled"})
# A configuration call right after CreateBucket can meet a 409 OperationAborted ("a conflicting
# conditional operation is in progress"); it succeeds when retried. NoSuchBucket right after the
# create is retried by drkit.aws for every mutating call.
S3_BUSY = (busy("OperationAborted"),)
# A read right after CreateBucket can still answer NoSuchBucket (bucket configuration is eventually
# consistent): for the tags that decide whether the bucket is drkit's, that means "not yet".
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel
NOT_VISIBLE_YET = (propagating("NoSuchBucket"),)
# The tags sent with CreateBucket are what prove, where S3 cannot say whether the bucket is new
# (us-east-1's 200 OK, a lost answer), that it is drkit's: a tag set that lags the create
# (NoSuchTagSet) must not read as "not drkit's" until it has had time to appear.
TAGS_NOT_VISIBLE_YET = (*NOT_VISIBLE_YET, propagating("NoSuchTagSet", budget=60))
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


def tls_only_statement(partition: str, bucket: str) -> dict[str, Any]:
    """Deny every action on the bucket and its objects to any request not made over TLS.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html"""
    arn = bucket_arn(partition, bucket)
    return {
        "Sid": TLS_ONLY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
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


# Observed attributes (never desired, so never compared) that say how a bucket was judged.
DISOWNED = "disowned"  # another's tags (or another account): no state record vouches for it
PENDING_CREATE = "pending_create"  # recorded before its create and still untagged


def _partition(ctx: StepContext) -> str:
    return known_regions()[ctx.region]


class EnsureBucket(RefusesForeign):
    """One region's bucket. Settings are separate S3 sub-resources, so observing costs one read
    each (head, tags, versioning, encryption, public-access block, policy)."""

    name = BUCKET_STEP

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        name = ctx.config.names.bucket(self.role)
        try:
            head = ctx.call("s3", "head_bucket", Bucket=name, missing_ok=True)
        except AwsCallError as exc:
            if exc.code not in ACCESS_DENIED:
                raise
            foreign = Observed(BUCKET_KIND, BUCKET, name, owned=False, attrs={"other_account": True, DISOWNED: True})
            return Observation({BUCKET: foreign})
        if head is None:
            return Observation({})
        tags = self._tags(ctx, name)
        owned = is_owned(tags, ctx.config.env, self.name)
        entry = ctx.state.resource(self.key, BUCKET) or {}
        recorded = entry.get("id") == name
        # Recorded before its create, and untagged: drkit's own, between the create and its tags.
        pending = recorded and bool(entry.get("pending")) and not tags
        if not owned and not pending and (not recorded or entry.get("pending")):
            # Not drkit's by its tags, and no state record vouches for it (a pending record
            # vouches only for an untagged bucket: one with someone else's tags is theirs).
            attrs = {DISOWNED: True} if recorded else {}
            return Observation({BUCKET: Observed(BUCKET_KIND, BUCKET, name, attrs=attrs, tags=tags, owned=False)})
        attrs = {"region": head.get("BucketRegion"), **self._settings(ctx, name)}
        if pending:
            attrs[PENDING_CREATE] = True
        return Observation({BUCKET: Observed(BUCKET_KIND, BUCKET, name, attrs=attrs, tags=tags,
                                             owned=owned or pending)})

    def recorded_extras(self, observed: Observed) -> dict[str, Any]:
        # Keep the pending marker until the bucket carries its tags (adopt() re-records entries).
        return {"pending": True} if observed.attrs.get(PENDING_CREATE) else {}

    def _tags(self, ctx: StepContext, name: str, not_yet: tuple[NotYet, ...] = (),
              missing_ok: bool | str = True) -> dict[str, str]:
        found = ctx.call("s3", "get_bucket_tagging", Bucket=name, missing_ok=missing_ok,  # NoSuchTagSet: none
                         not_yet=not_yet)
        return from_aws((found or {}).get("TagSet"))

    def _settings(self, ctx: StepContext, name: str) -> dict[str, Any]:
        versioning = ctx.call("s3", "get_bucket_versioning", Bucket=name, missing_ok=True) or {}
        encryption = ctx.call("s3", "get_bucket_encryption", Bucket=name, missing_ok=True) or {}
        rules = encryption.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        blocks = ctx.call("s3", "get_public_access_block", Bucket=name, missing_ok=True) or {}
        policy = ctx.call("s3", "get_bucket_policy", Bucket=name, missing_ok=True)
        statements = canonical_policy(json.loads(policy["Policy"])).get("Statement", []) if policy else []
        statements = statements if isinstance(statements, list) else [statements]
        return {
            "versioning": versioning.get("Status"),
            "encryption": rules[0].get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") if rules else None,
            "public_access_block": blocks.get("PublicAccessBlockConfiguration"),
            "tls_only_policy": next((s for s in statements if s.get("Sid") == TLS_ONLY_SID), None),
        }

    # Decide --------------------------------------------------------------------------------
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        name = ctx.config.names.bucket(self.role)
        attrs = {
            "region": ctx.region,
            "versioning": "Enabled",
            "encryption": ENCRYPTION_ALGORITHM,
            "public_access_block": dict(ALL_PUBLIC_ACCESS_BLOCKED),
            "tls_only_policy": canonical_policy(tls_only_statement(_partition(ctx), name)),
        }
        return [Desired(BUCKET_KIND, BUCKET, name, attrs, ctx.tags_for(BUCKET, name), frozenset({"region"}))]

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {"bucket_name": ctx.recorded_id(BUCKET)}

    # Apply ---------------------------------------------------------------------------------
    def create_bucket(self, ctx: StepContext, change: Change) -> None:
        """Create the bucket with its tags in the same call, then apply every setting.

        CreateBucketConfiguration.Tags tags the bucket atomically, but needs s3:TagResource besides
        s3:CreateBucket: without it S3 refuses the whole create (AccessDenied). drkit then creates
        it without tags and tags it (PutBucketTagging) as its very next call. Crash safety does not
        rest on the tags: the bucket is recorded in the state, marked pending, *before* the create,
        so an untagged bucket of that name is recognised as drkit's own on the next run (and torn
        down by teardown), while one carrying anybody else's tags never is. A botocore too old to
        send the tags takes the same path. (moto 5.2 drops these tags; drkit's sandbox applies them.)
        https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucketConfiguration.html

        A bucket that already existed is drkit's only if its tags say so. S3 reports one as
        BucketAlreadyOwnedByYou -- except in us-east-1, which answers 200 OK (legacy behaviour),
        so there success alone does not prove the bucket is new; the tags sent with the create do.
        A lost answer is judged by HeadBucket (settled), and then the tags decide the same way.
        https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
        """
        name = change.name
        tags = ctx.tags_for(BUCKET, name)
        ctx.record(BUCKET, BUCKET_KIND, name, pending=True)
        sends_tags = self._create_takes_tags(ctx)
        try:
            new = self._create(ctx, name, tags if sends_tags else None)
        except AwsCallError as exc:
            if exc.code not in ACCESS_DENIED or not sends_tags:
                raise
            ctx.log.info("bucket.create_without_tags", bucket=name,
                         reason="CreateBucket with Tags was denied (no s3:TagResource?)")
            sends_tags = False
            new = self._create(ctx, name, None)
        # Where only the tags sent with the create can prove the bucket is drkit's, give them time.
        current = self._tags(ctx, name, not_yet=TAGS_NOT_VISIBLE_YET if sends_tags and not new else NOT_VISIBLE_YET,
                             missing_ok="NoSuchTagSet")
        if not new and not is_owned(current, ctx.config.env, self.name):
            ctx.state.forget(self.key, BUCKET)  # the pending record must never vouch for it
            if not ctx.state.resources(self.key):
                ctx.state.clear_step(self.key)
            raise foreign_error(self, ctx, BUCKET_KIND, name)
        if missing_tags(tags, current):
            ctx.log.info("bucket.tagged_after_create", bucket=name, reason="CreateBucket did not apply its tags")
            self._put_tags(ctx, name, {**current, **tags})
        ctx.record(BUCKET, BUCKET_KIND, name)
        for attribute in ("versioning", "encryption", "public_access_block", "tls_only_policy"):
            self._apply_setting(ctx, name, attribute)

    def _create(self, ctx: StepContext, name: str, tags: dict[str, str] | None) -> bool:
        """CreateBucket; whether the bucket is provably new (else its tags must prove it drkit's)."""
        configuration: dict[str, Any] = {"Tags": to_aws(tags)} if tags else {}
        if ctx.region != LOCATION_CONSTRAINT_FREE_REGION:
            configuration["LocationConstraint"] = ctx.region
        extra = {"CreateBucketConfiguration": configuration} if configuration else {}
        recovered: list[bool] = []

        def settled() -> dict[str, Any] | None:
            # A lost answer: the bucket exists now. Whose it is, the tag read after this decides.
            found = ctx.call("s3", "head_bucket", Bucket=name, missing_ok=True)
            if found is None:
                return None
            recovered.append(True)
            return {"Location": f"/{name}"}

        try:
            ctx.call("s3", "create_bucket", Bucket=name, not_yet=S3_BUSY, settled=settled, resource=name, **extra)
        except AwsCallError as exc:
            if exc.code != "BucketAlreadyOwnedByYou":
                raise
            return False
        if tags is None:
            # Without tags in the create, a 200 in us-east-1 or a lost answer cannot be told
            # apart from a bucket someone made meanwhile: taken as new (observe found none).
            return True
        return ctx.region != LOCATION_CONSTRAINT_FREE_REGION and not recovered

    def _create_takes_tags(self, ctx: StepContext) -> bool:
        """Whether the installed botocore knows CreateBucketConfiguration.Tags (a 2025 addition)."""
        model = ctx.aws.client("s3", ctx.region).meta.service_model
        return "Tags" in model.shape_for("CreateBucketConfiguration").members

    def update_bucket(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            # PutBucketTagging replaces the whole set: keep the tags drkit does not manage.
            self._put_tags(ctx, change.resource_id, {**self._tags(ctx, change.resource_id), **change.expected})
            ctx.record(BUCKET, BUCKET_KIND, change.resource_id)  # tagged: no longer pending
        else:
            self._apply_setting(ctx, change.resource_id, change.attribute)

    def _put_tags(self, ctx: StepContext, name: str, tags: dict[str, str]) -> None:
        ctx.call("s3", "put_bucket_tagging", Bucket=name, Tagging={"TagSet": to_aws(tags)},
                 not_yet=S3_BUSY, resource=name)

    def _apply_setting(self, ctx: StepContext, name: str, attribute: str) -> None:
        if attribute == "versioning":
            ctx.call("s3", "put_bucket_versioning", Bucket=name, VersioningConfiguration={"Status": "Enabled"},
                     not_yet=S3_BUSY, resource=name)
        elif attribute == "encryption":
            rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": ENCRYPTION_ALGORITHM}}
            ctx.call("s3", "put_bucket_encryption", Bucket=name,
                     ServerSideEncryptionConfiguration={"Rules": [rule]}, not_yet=S3_BUSY, resource=name)
        elif attribute == "public_access_block":
            ctx.call("s3", "put_public_access_block", Bucket=name,
                     PublicAccessBlockConfiguration=dict(ALL_PUBLIC_ACCESS_BLOCKED), not_yet=S3_BUSY,
                     resource=name)
        elif attribute == "tls_only_policy":
            # Replace drkit's statement, keep any other statement someone added.
            found = ctx.call("s3", "get_bucket_policy", Bucket=name, missing_ok=True)
            policy = json.loads(found["Policy"]) if found else {"Version": "2012-10-17", "Statement": []}
            statements = policy.get("Statement", [])
            statements = statements if isinstance(statements, list) else [statements]
            policy["Statement"] = [s for s in statements if s.get("Sid") != TLS_ONLY_SID]
            policy["Statement"].append(tls_only_statement(_partition(ctx), name))
            ctx.call("s3", "put_bucket_policy", Bucket=name, Policy=json.dumps(policy), not_yet=S3_BUSY,
                     resource=name)
        else:
            raise NotImplementedError(f"{self.key} cannot update {attribute}")

    # Delete --------------------------------------------------------------------------------
    def delete_bucket(self, ctx: StepContext, change: Change) -> None:
        """Empty the bucket of every object version and delete marker, then delete it. A replica
        still in flight can land after the emptying (BucketNotEmpty): empty it again."""
        name = change.resource_id
        for attempt in range(1, EMPTY_ATTEMPTS + 1):
            self._empty(ctx, name)
            try:
                ctx.call("s3", "delete_bucket", Bucket=name, missing_ok=True, not_yet=S3_BUSY, resource=name)
                return
            except AwsCallError as exc:
                if exc.code != "BucketNotEmpty" or attempt == EMPTY_ATTEMPTS:
                    raise

    def _empty(self, ctx: StepContext, name: str) -> None:
        """Delete every object version and delete marker, a page (at most 1000) at a time.

        Each page is listed from the start once the one before is deleted, so no marker ever
        names a version just deleted, and a version written meanwhile (a replica in flight) is
        found too. S3 lists strongly consistently: an entry listed again was not deleted.
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/empty-bucket.html
        https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html
        """
        deleted: set[tuple[str, str]] = set()
        while True:
            page = ctx.call("s3", "list_object_versions", Bucket=name, MaxKeys=DELETE_BATCH, missing_ok=True) or {}
            entries = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                       for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if not entries:
                return
            stuck = [e for e in entries if (e["Key"], e["VersionId"]) in deleted]
            if stuck:
                raise DrkitError(f"{self.key}: S3 bucket {name} still lists {stuck[0]['Key']} "
                                 f"({stuck[0]['VersionId']}) after deleting it")
            for start in range(0, len(entries), DELETE_BATCH):
                self._delete_versions(ctx, name, entries[start:start + DELETE_BATCH])
            deleted = {(e["Key"], e["VersionId"]) for e in entries}

    def _delete_versions(self, ctx: StepContext, name: str, batch: list[dict[str, str]]) -> None:
        result = ctx.call("s3", "delete_objects", Bucket=name, Delete={"Objects": batch, "Quiet": True},
                          missing_ok=True, resource=name) or {}
        errors = result.get("Errors", [])  # Quiet: only the failures are reported
        if errors:
            first = errors[0]
            raise DrkitError(
                f"{self.key}: could not delete {len(errors)} object version(s) from S3 bucket {name}: "
                f"{first.get('Key')} ({first.get('VersionId')}): {first.get('Code')}: {first.get('Message')}",
                hint="check the bucket policy and object lock settings, then re-run the teardown",
            )


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
