"""ensure_global_table: the payment transactions table, a DynamoDB global table (2019.11.21).

`payment-transactions-<env>` lives in the primary region: on-demand billing, hash key
`transactionId` (S), a NEW_AND_OLD_IMAGES stream, server-side encryption with the AWS managed KMS
key, point-in-time recovery. Its replica in the DR region is added with
`UpdateTable(ReplicaUpdates=[{"Create": ...}])` and is a resource of this same step.

What AWS does and does not carry over to a replica decides the shape of this step:
- Key schema, billing mode and stream are global-table settings: the replica inherits them, and
  a change on any replica reaches the others.
- The replica is created with the table's SSE type. Its KMS key is a per-replica setting: with
  the AWS managed key each replica uses `alias/aws/dynamodb` of its own region, so the Create
  action needs no KMSMasterKeyId ("only provide this parameter if the key is different from the
  default"). Encryption is therefore read, and repaired, in each replica's own region.
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_CreateReplicationGroupMemberAction.html
- Point-in-time recovery and tags are per replica: PITR is set with UpdateContinuousBackups in
  the replica's region, and the Create action has no Tags member, so the replica is born
  untagged (a known AWS limitation: hashicorp/terraform-provider-aws#13281, aws/aws-cdk#14943).
  drkit tags it with TagResource in the DR region as soon as it is ACTIVE (TagResource may
  answer ResourceInUseException before). Until then the replica is still found -- by its table
  name, in the DR region and in the primary table's `Replicas` -- and counts as drkit's because
  it belongs to drkit's table, so neither a crash nor a teardown can lose it.
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TagResource.html
- Adding a replica needs an ACTIVE table with on-demand (or auto-scaled) capacity and no table of
  that name in the target region; unlike the legacy 2017.11.29 version, the table need not be
  empty (the replica is backfilled). UpdateTable on a table that is UPDATING -- which it is while
  a replica is being created or deleted -- fails with ResourceInUseException, so every change
  waits for ACTIVE first.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_reqs_bestpractices.html
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTable.html

Lost answers. CreateTable and UpdateTable take no idempotency token, and a resent replica
Create or Delete is refused ("one or more replicas already existed as tables", "has no replica
in region"). Every one of them passes `settled`: after an answer that may hide a success, a fresh
DescribeTable decides whether the effect already holds (the table exists; the table lists the
replica, CREATING or ACTIVE; the replica is DELETING or gone; the setting reads as wanted), and
only if it does not is the call resent. DeleteTable, TagResource and UpdateContinuousBackups are
idempotent ("If table is already in the DELETING state, no error is returned").

Teardown removes the replica first (ReplicaUpdates Delete, then waits until it is gone), then
the table (and waits until it is gone).
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

from drkit.retries import busy, propagating
from drkit.errors import DrkitError, WaitTimeoutError
from drkit.step import Change, Desired, Observation, Observed, ProbeResult, Step, StepContext
from drkit.tags import from_aws, is_owned, to_aws
from steps.dynamodb_settings import (  # noqa: F401  (re-exported: other code imports these from steps.dynamodb)
    BILLING_MODE, FAILED_STATUSES, HASH_KEY, HASH_KEY_TYPE, SSE_DEFAULT, SSE_KMS, STREAM_VIEW, TABLE_STATUS,
    WANTED_SETTINGS, arn_in_region, drkit_status as _status, replica_status, table_settings,
)

TABLE = "table"
PROBE_TIMEOUT = 60.0  # AWS: usually under a second
REPLICA = "replica"

# "Not yet": the table is CREATING/UPDATING, or its backups are still being set up after creation.
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateContinuousBackups.html
IN_USE = (busy("ResourceInUseException"),)
# Right after a table or replica turns ACTIVE, DescribeContinuousBackups reports
# ContinuousBackupsStatus DISABLED for tens of seconds and UpdateContinuousBackups answers
# ContinuousBackupsUnavailableException ("Backups are being enabled for the table"): drkit waits
# for ENABLED first, and still retries the exception should the read have been ahead of the write
# path. https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateContinuousBackups.html
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ContinuousBackupsDescription.html
BACKUPS_NOT_READY = (propagating("ContinuousBackupsUnavailableException", budget=10 * 60),)
BACKUPS_TIMEOUT = 10 * 60.0


class EnsureGlobalTable(Step):
    name = "ensure_global_table"

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        primary, dr = ctx.config.primary_region, ctx.config.dr_region
        table = self._describe(ctx, primary)
        replica = self._describe(ctx, dr)
        resources: dict[str, Observed] = {}
        table_owned = False
        if table is not None:
            tags = self._tags(ctx, primary, table["TableArn"])
            table_owned = is_owned(tags, ctx.config.env, self.name)
            resources[TABLE] = Observed(
                "dynamodb_table", TABLE, table["TableArn"], _status(table["TableStatus"]),
                table_settings(table, self._backups(ctx, primary)), tags, table_owned,
            )
        listed = replica_status(table, dr)
        if replica is not None:
            tags = self._tags(ctx, dr, replica["TableArn"])
            member = replica_status(replica, primary) is not None
            attrs = {"replica_of": primary if member else None, **table_settings(replica, self._backups(ctx, dr))}
            # Born untagged (see the module docstring): a member of drkit's own table is drkit's
            # until it carries ownership tags of its own.
            owned = is_owned(tags, ctx.config.env, self.name) or (member and table_owned and "ManagedBy" not in tags)
            resources[REPLICA] = Observed(
                "dynamodb_replica", REPLICA, replica["TableArn"], _status(replica["TableStatus"]), attrs, tags, owned,
            )
        elif listed is not None and table is not None:
            # Listed by the table, not yet visible in its own region (eventual consistency). It has
            # the table's global settings by construction; its own PITR and tags are not known yet.
            attrs = {"replica_of": primary, **table_settings(table, None)}
            resources[REPLICA] = Observed(
                "dynamodb_replica", REPLICA, arn_in_region(table["TableArn"], dr), _status(listed), attrs, {},
                table_owned,
            )
        return Observation(resources)

    def _describe(self, ctx: StepContext, region: str) -> dict[str, Any] | None:
        found = ctx.aws.call("dynamodb", region, "describe_table", TableName=ctx.config.names.dynamodb_table,
                             missing_ok=True)
        return found["Table"] if found else None

    def _backups(self, ctx: StepContext, region: str) -> dict[str, Any] | None:
        found = ctx.aws.call("dynamodb", region, "describe_continuous_backups",
                             TableName=ctx.config.names.dynamodb_table, missing_ok=True)
        return found["ContinuousBackupsDescription"] if found else None

    def _tags(self, ctx: StepContext, region: str, arn: str) -> dict[str, str]:
        return from_aws(ctx.aws.paginate("dynamodb", region, "list_tags_of_resource", "Tags",
                                         ResourceArn=arn, missing_ok=True))

    # Decide (pure, given the observation) ----------------------------------------------------
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        name = ctx.config.names.dynamodb_table
        # A stream of another view type is replaced by disabling it first, which AWS refuses while
        # the table has replicas ("Disabling Stream is not allowed for a Global Table replica").
        global_stream = observation.get(REPLICA).exists and observation.get(TABLE).attrs.get("stream") is not None
        return [
            Desired("dynamodb_table", TABLE, name, dict(WANTED_SETTINGS), ctx.tags_for(TABLE, name),
                    frozenset({"key_schema"} | ({"stream"} if global_stream else set()))),
            Desired("dynamodb_replica", REPLICA, name, {"replica_of": ctx.config.primary_region, **WANTED_SETTINGS},
                    ctx.tags_for(REPLICA, name), frozenset({"replica_of", "key_schema", "stream"}),
                    region=ctx.config.dr_region),
        ]

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        table_arn = ctx.recorded_id(TABLE)
        return {
            "dynamodb_table_name": ctx.config.names.dynamodb_table if table_arn else None,
            "dynamodb_table_arn": table_arn,
            "dynamodb_replica_regions": [ctx.config.dr_region] if ctx.recorded_id(REPLICA) else [],
        }

    # Deep verify ---------------------------------------------------------------------------
    def probe(self, ctx: StepContext) -> list[ProbeResult]:
        """Write a canary item in the primary table and time its arrival in the DR replica; delete
        it whatever happened. The replica is read strongly consistently: that returns an item
        written in another region as soon as it has reached this one.
        https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html"""
        table = ctx.config.names.dynamodb_table
        primary, dr = ctx.config.primary_region, ctx.config.dr_region
        key = {HASH_KEY: {HASH_KEY_TYPE: f"drkit-canary-{uuid.uuid4()}"}}
        check = f"an item written in {primary} is readable in {dr}"
        clock = ctx.waiter.clock
        started = clock.monotonic()
        try:
            ctx.aws.call("dynamodb", primary, "put_item", TableName=table,
                         Item={**key, "canary": {"S": "drkit verify --deep"}}, resource=f"{table} canary")
            ctx.waiter.until(
                f"the canary item to reach {table} in {dr}",
                lambda: ctx.aws.call("dynamodb", dr, "get_item", TableName=table, Key=key,
                                     ConsistentRead=True).get("Item"),
                lambda item: item is not None,
                describe=lambda item: "not there yet",
                timeout=PROBE_TIMEOUT,
            )
            result = ProbeResult(self.key, dr, check, True, f"replicated in {clock.monotonic() - started:.1f}s")
        except WaitTimeoutError:
            result = ProbeResult(self.key, dr, check, False, f"not replicated after {PROBE_TIMEOUT:.0f}s")
        finally:
            # Deleting in the primary replicates the delete to the replica too (and deleting an
            # item that is not there is a no-op).
            ctx.aws.call("dynamodb", primary, "delete_item", TableName=table, Key=key, resource=f"{table} canary")
        return [result]

    # Apply ---------------------------------------------------------------------------------
    def create_dynamodb_table(self, ctx: StepContext, change: Change) -> None:
        region = ctx.config.primary_region
        self._clear_predecessor(ctx, region, change)
        table = ctx.aws.call(
            "dynamodb", region, "create_table",
            TableName=change.name,
            KeySchema=[{"AttributeName": HASH_KEY, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": HASH_KEY, "AttributeType": HASH_KEY_TYPE}],
            BillingMode=BILLING_MODE,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": STREAM_VIEW},
            SSESpecification={"Enabled": True, "SSEType": "KMS"},  # the AWS managed key, aws/dynamodb
            Tags=to_aws(ctx.tags_for(change.key, change.name)),
            # No token: after a lost answer the table drkit asked for exists (CREATING at first).
            settled=self._settled(ctx, region, lambda table: table is not None),
            resource=change.name,
        )["TableDescription"]
        ctx.record(change.key, "dynamodb_table", table["TableArn"])
        self._wait_active(ctx, region)
        self._enable_pitr(ctx, region)

    def create_dynamodb_replica(self, ctx: StepContext, change: Change) -> None:
        primary, dr = ctx.config.primary_region, ctx.config.dr_region
        self._clear_predecessor(ctx, dr, change)
        self._wait_active(ctx, primary)
        table_arn = ctx.recorded_id(TABLE)
        if table_arn is None:
            raise DrkitError(f"{self.key}: the table must exist before its replica")
        # A resent Create is refused ("already existed as tables"): the table listing the replica
        # (CREATING or ACTIVE) is what proves the lost request was carried out.
        ctx.aws.call("dynamodb", primary, "update_table", TableName=change.name,
                     ReplicaUpdates=[{"Create": {"RegionName": dr}}], not_yet=IN_USE,
                     settled=self._settled(ctx, primary, lambda table: replica_status(table, dr) is not None),
                     resource=f"{change.name} replica in {dr}")
        replica_arn = arn_in_region(table_arn, dr)
        ctx.record(change.key, "dynamodb_replica", replica_arn)
        self._wait_replica_active(ctx)
        # ReplicaUpdates cannot carry tags: tag the replica now, the first thing once it is ACTIVE.
        self._tag(ctx, dr, replica_arn, ctx.tags_for(change.key, change.name))
        self._enable_pitr(ctx, dr)

    def wait_dynamodb_table(self, ctx: StepContext, change: Change) -> None:
        self._wait_active(ctx, ctx.config.primary_region)

    def wait_dynamodb_replica(self, ctx: StepContext, change: Change) -> None:
        self._wait_replica_active(ctx)

    def update_dynamodb_table(self, ctx: StepContext, change: Change) -> None:
        self._repair(ctx, ctx.config.primary_region, change)

    def update_dynamodb_replica(self, ctx: StepContext, change: Change) -> None:
        self._repair(ctx, ctx.config.dr_region, change)

    def _repair(self, ctx: StepContext, region: str, change: Change) -> None:
        if change.attribute == "tags":
            return self._tag(ctx, region, change.resource_id, change.expected)
        if change.attribute == "point_in_time_recovery":
            return self._enable_pitr(ctx, region)
        if change.attribute == "encryption" and region != ctx.config.primary_region:
            # The encryption type is a global-table setting: it is changed on the table, and AWS
            # carries it to every replica, each with its own region's aws/dynamodb key (only a
            # customer managed key would need ReplicaUpdates Update KMSMasterKeyId, "only provide
            # this parameter if the key is different from the default"). terraform-provider-aws
            # repairs it the same way ("normal update for SSE", then waits on each replica).
            # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateReplicationGroupMemberAction.html
            # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTable.html
            region = ctx.config.primary_region
        # A global-table setting: one UpdateTable at a time, on an ACTIVE table. The other
        # replica may already have carried the fix over, so look again before changing anything.
        current = table_settings(self._wait_active(ctx, region), None)
        if current[change.attribute] == change.expected:
            return

        def update(holds: Callable[[dict[str, Any]], bool], **params: Any) -> None:
            # None of these is idempotent once applied (enabling a stream that exists is a
            # ValidationException): a lost answer is judged by the table's settings.
            ctx.aws.call("dynamodb", region, "update_table", TableName=change.name, not_yet=IN_USE,
                         settled=self._settled(ctx, region, lambda t: t is not None and holds(table_settings(t, None))),
                         resource=f"{change.name} in {region}", **params)

        if change.attribute == "billing_mode":
            update(lambda now: now["billing_mode"] == BILLING_MODE, BillingMode=BILLING_MODE)
        elif change.attribute == "encryption":
            update(lambda now: now["encryption"] == SSE_KMS, SSESpecification={"Enabled": True, "SSEType": "KMS"})
        elif change.attribute == "stream":
            if current["stream"] is not None:
                # "You receive a ValidationException if you try to enable a stream on a table
                # that already has a stream": a stream of another view type goes first.
                update(lambda now: now["stream"] is None, StreamSpecification={"StreamEnabled": False})
                self._wait_active(ctx, region)
            update(lambda now: now["stream"] == STREAM_VIEW,
                   StreamSpecification={"StreamEnabled": True, "StreamViewType": STREAM_VIEW})
        else:
            raise DrkitError(f"{self.key}: drkit cannot change {change.attribute} of {change.name} in place")
        self._wait_active(ctx, region)
        if region != change.region:
            self._wait_active(ctx, change.region)

    def _settled(self, ctx: StepContext, region: str,
                 holds: Callable[[dict[str, Any] | None], bool]) -> Callable[[], dict[str, Any] | None]:
        """For `settled`: a fresh DescribeTable in `region`, shaped as UpdateTable's and
        CreateTable's answer, when `holds(table)` says the lost request took effect; else None."""
        def look() -> dict[str, Any] | None:
            table = self._describe(ctx, region)
            return {"TableDescription": table or {}} if holds(table) else None
        return look

    def _tag(self, ctx: StepContext, region: str, arn: str | None, tags: dict[str, str]) -> None:
        # TagResource is eventually consistent: ListTagsOfResource may lag it by a few seconds.
        ctx.aws.call("dynamodb", region, "tag_resource", ResourceArn=arn, Tags=to_aws(tags),
                     not_yet=IN_USE, resource=arn)

    def _enable_pitr(self, ctx: StepContext, region: str) -> None:
        name = ctx.config.names.dynamodb_table
        ctx.waiter.until(
            f"continuous backups of DynamoDB table {name} in {region} to be ENABLED",
            lambda: self._backups(ctx, region),
            lambda backups: (backups or {}).get("ContinuousBackupsStatus") == "ENABLED",
            describe=lambda backups: (backups or {}).get("ContinuousBackupsStatus") or "table not visible yet",
            timeout=BACKUPS_TIMEOUT,
        )
        ctx.aws.call("dynamodb", region, "update_continuous_backups", TableName=name,
                     PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                     not_yet=BACKUPS_NOT_READY, resource=f"{name} in {region}")

    def _clear_predecessor(self, ctx: StepContext, region: str, change: Change) -> None:
        """A table of this name that is going away must be gone first; a failed one stays put."""
        if change.resource_id is None:
            return
        found = self._describe(ctx, region)
        if found is not None and found["TableStatus"] != "DELETING":
            raise DrkitError(
                f"{self.key}: table {change.name} in {region} is {found['TableStatus']}",
                hint="DynamoDB cannot recreate it while it exists; restore or delete it by hand, then re-run",
            )
        self._wait_gone(ctx, region)

    # Waiting -------------------------------------------------------------------------------
    def _wait_active(self, ctx: StepContext, region: str) -> dict[str, Any]:
        return ctx.waiter.until(
            f"DynamoDB table {ctx.config.names.dynamodb_table} in {region} to be ACTIVE",
            lambda: self._describe(ctx, region),
            lambda table: table is not None and table["TableStatus"] == "ACTIVE",
            describe=lambda table: table["TableStatus"] if table else "not visible yet",
            failed=lambda table: f"it is {table['TableStatus']}"
            if table and table["TableStatus"] in FAILED_STATUSES else None,
        )

    def _wait_replica_active(self, ctx: StepContext) -> None:
        """Both ends: the replica ACTIVE in the DR region, and the table ACTIVE again (it stays
        UPDATING while the replica is being created)."""
        primary, dr = ctx.config.primary_region, ctx.config.dr_region
        ctx.waiter.until(
            f"DynamoDB replica of {ctx.config.names.dynamodb_table} in {dr} to be ACTIVE",
            lambda: (self._describe(ctx, dr), self._describe(ctx, primary)),
            lambda both: all(t is not None and t["TableStatus"] == "ACTIVE" for t in both),
            describe=lambda both: f"replica {both[0]['TableStatus'] if both[0] else 'not visible yet'}, "
                                  f"table {both[1]['TableStatus'] if both[1] else 'gone'}",
            failed=lambda both: f"the table reports it {replica_status(both[1], dr)}"
            if replica_status(both[1], dr) in FAILED_STATUSES else None,
        )

    def _wait_gone(self, ctx: StepContext, region: str) -> None:
        ctx.waiter.until(
            f"DynamoDB table {ctx.config.names.dynamodb_table} in {region} to be deleted",
            lambda: self._describe(ctx, region),
            lambda table: table is None,
            describe=lambda table: table["TableStatus"] if table else "deleted",
        )

    def _wait_settled(self, ctx: StepContext, region: str) -> dict[str, Any] | None:
        """Until the table is not CREATING or UPDATING (AWS refuses to delete it meanwhile)."""
        return ctx.waiter.until(
            f"DynamoDB table {ctx.config.names.dynamodb_table} in {region} to finish its update",
            lambda: self._describe(ctx, region),
            lambda table: table is None or table["TableStatus"] not in ("CREATING", "UPDATING"),
            describe=lambda table: table["TableStatus"] if table else "deleted",
        )

    # Delete: the replica, then the table ------------------------------------------------------
    def delete_dynamodb_replica(self, ctx: StepContext, change: Change) -> None:
        primary, dr = ctx.config.primary_region, ctx.config.dr_region
        # The table first: it is UPDATING while the replica is still being created or removed.
        table = self._wait_settled(ctx, primary)
        replica = self._wait_settled(ctx, dr)
        if replica is not None and replica["TableStatus"] != "DELETING":
            if replica_status(table, dr) is not None:
                # Removes this replica (DeleteTableReplica in the DR region) and nothing else.
                # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ReplicationGroupUpdate.html
                # A resent Delete is refused ("has no replica in region"): the table no longer
                # listing the replica, or listing it DELETING, proves the lost request was done.
                ctx.aws.call("dynamodb", primary, "update_table", TableName=change.name,
                             ReplicaUpdates=[{"Delete": {"RegionName": dr}}], not_yet=IN_USE,
                             settled=self._settled(ctx, primary,
                                                   lambda t: replica_status(t, dr) in (None, "DELETING")),
                             resource=f"{change.name} replica in {dr}")
            else:
                # No longer a member of the table (the table was deleted): an ordinary table.
                ctx.aws.call("dynamodb", dr, "delete_table", TableName=change.name, missing_ok=True,
                             not_yet=IN_USE, resource=change.resource_id)
        self._wait_gone(ctx, dr)

    def delete_dynamodb_table(self, ctx: StepContext, change: Change) -> None:
        region = ctx.config.primary_region
        # "If a table is in CREATING or UPDATING states, then DynamoDB returns a
        # ResourceInUseException" -- as it is while a replica is still being removed.
        # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_DeleteTable.html
        if self._wait_settled(ctx, region) is not None:
            ctx.aws.call("dynamodb", region, "delete_table", TableName=change.name, missing_ok=True,
                         not_yet=IN_USE, resource=change.resource_id)
        self._wait_gone(ctx, region)
