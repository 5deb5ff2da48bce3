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

This module holds ensure_bucket; `steps/s3_replication.py` the role and the replication (and the
canary deep verify); `steps/s3_common.py` what both share (ownership refusal, policy comparison).
Every name those two define that other code uses is importable from here too.
"""

from __future__ import annotations

import json
from typing import Any

from drkit.errors import AwsCallError, DrkitError
from drkit.retries import NotYet, busy, propagating
from drkit.step import Change, Desired, Observation, Observed, StepContext
from drkit.tags import from_aws, is_owned, missing_tags, to_aws
from steps.s3_common import (  # noqa: F401  (re-exported: other code imports these from steps.s3)
    ACCESS_DENIED, BUCKET, BUCKET_KIND, BUCKET_STEP, DISOWNED, RefusesForeign, bucket_arn, canonical_policy,
    foreign_error, partition as _partition,
)
from steps.s3_replication import (  # noqa: F401  (re-exported, as above)
    PROBE_TIMEOUT, REPLICATION, REPLICATION_KIND, REPLICATION_MINUTES, REPLICATION_NOT_YET_VALID,
    REPLICATION_RULE_ID, ROLE, ROLE_KIND, ROLE_POLICY, ROLE_POLICY_KIND, ROLE_POLICY_NAME, ROLE_STEP,
    TRUST_POLICY, VERSIONING_PROPAGATION_SECONDS, EnsureBucketReplication, EnsureReplicationRole,
    replication_configuration, replication_permissions, replication_settings,
)

# Buckets in us-east-1 take no LocationConstraint (naming it is InvalidLocationConstraint), and
# CreateBucket there answers 200 OK for a bucket the account already owns.
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
LOCATION_CONSTRAINT_FREE_REGION = "us-east-1"
ENCRYPTION_ALGORITHM = "AES256"
ALL_PUBLIC_ACCESS_BLOCKED = {
    "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
}
TLS_ONLY_SID = "DenyInsecureTransport"
# DeleteObjects takes at most 1000 keys per request.
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
DELETE_BATCH = 1000
EMPTY_ATTEMPTS = 3

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


# An observed attribute (never desired, so never compared): recorded before its create and still untagged.
PENDING_CREATE = "pending_create"


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
