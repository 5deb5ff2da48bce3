"""DynamoDB global tables, version 2019.11.21, as AWS runs them.

moto 5.2 accepts `UpdateTable(ReplicaUpdates=...)` and ignores it. This extension emulates the
behaviour drkit depends on (each point cites the AWS page it follows):

- `ReplicaUpdates=[{"Create": {"RegionName": R}}]` creates a replica table with the same name, key
  schema, indexes, billing mode, streams and encryption in region R of the same account, and
  backfills it with the existing items. The new replica is `CREATING` (DescribeTable `TableStatus`
  in R, `ReplicaStatus` everywhere else) for `timings.dynamodb_replica_creating` seconds, then
  `ACTIVE`; meanwhile the table the request was made on is `UPDATING`. Item reads and writes on a
  replica that is still `CREATING` fail with ResourceNotFoundException, as on any table that is not
  ACTIVE ("You can perform read and write operations only on an ACTIVE table").
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTable.html
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ReplicationGroupUpdate.html
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_CreateTable.html
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ResourceNotFoundException.html
- DescribeTable on any replica reports `GlobalTableVersion: "2019.11.21"` and `Replicas`: the
  *other* replicas, as in AWS's own example (`describe-table --region us-east-2` lists only
  us-west-2). A table that is back to one replica no longer reports either field, but keeps its
  stream.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_versions.html
- Requirements checked when a replica is created (ValidationException otherwise): the region must
  not be the table's own region ("Cannot add, delete, or update the local region through
  ReplicaUpdates..."); no table of that name may already exist there; the table must use on-demand
  capacity or have auto scaling on its write capacity ("you must either use on-demand capacity or
  enable autoscaling on the table"). A table that is not ACTIVE cannot be updated
  (ResourceInUseException).
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_reqs_bestpractices.html
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTable.html#API_UpdateTable_Errors
- Streams: adding a replica to a table without a stream enables one with NEW_AND_OLD_IMAGES; an
  existing stream (of any view type) is kept. While the table has replicas its stream cannot be
  disabled ("Disabling Stream is not allowed for a Global Table replica"). Note: the older,
  2017.11.29 requirement that the table *already* has a NEW_AND_OLD_IMAGES stream does not apply to
  2019.11.21 (measured on AWS: scylladb test/alternator/test_global_tables.py); it is therefore not
  emulated as an error.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
- `ReplicaUpdates=[{"Delete": {"RegionName": R}}]` (the DeleteTableReplica action) and DeleteTable
  on any replica (DeleteTable applies to 2019.11.21 global tables) put that replica in `DELETING`
  for `timings.dynamodb_replica_deleting` seconds, after
  which its table and items are gone from R and the other replicas no longer list it. DeleteTable on
  a table that is CREATING or UPDATING fails with ResourceInUseException; on a table already
  DELETING it is not an error.
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_DeleteTable.html
- Every write (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems, PartiQL) in any
  replica propagates to the others asynchronously, `timings.dynamodb_replication` seconds later;
  concurrent writes to the same item are reconciled last writer wins. A failed transaction
  propagates nothing. Reads (and every other DynamoDB call) first apply whatever propagation is due;
  `flush_replication()` applies everything pending at once.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
- Point-in-time recovery is configured per replica: each replica is an ordinary moto table, and
  moto's UpdateContinuousBackups / DescribeContinuousBackups already work per table.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Point-in-time-recovery.html
"""

from __future__ import annotations

import copy
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from moto.dynamodb.exceptions import (
    MockValidationException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.responses import DynamoHandler

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_dynamodb_replicas_installed"
GLOBAL_TABLE_VERSION = "2019.11.21"

_lock = threading.RLock()
_local = threading.local()
_seq = itertools.count(1)
_timings: SandboxTimings | None = None
_original_create_table: Callable[..., Any] = DynamoDBBackend.create_table
# Writes waiting to reach the other replicas, oldest first.
_pending: list["_Change"] = []


class _Member:
    """One replica of a global table, as the replication group sees it."""

    def __init__(self, region: str, status: str, since: float, requested_from: str | None):
        self.region = region
        self.status = status
        self.since = since
        # Region of the table whose UpdateTable started this transition (it is UPDATING meanwhile).
        self.requested_from = requested_from


class _Group:
    """The replicas of one global table (one account, one table name)."""

    def __init__(self, account_id: str, name: str) -> None:
        self.account_id = account_id
        self.name = name
        self.members: dict[str, _Member] = {}

    # moto deep-copies tables (TransactWriteItems rollback); the group must stay shared.
    def __deepcopy__(self, memo: dict[int, Any]) -> "_Group":
        return self

    def __copy__(self) -> "_Group":
        return self


@dataclass
class _Change:
    group: _Group
    source_region: str
    target_region: str
    key: tuple[Any, Any]
    item: Any  # a private copy of the new item, or None for a delete
    version: tuple[float, int]
    written_at: float = field(default=0.0)


def _t() -> SandboxTimings:
    assert _timings is not None, "dynamodb_replicas extension is not installed"
    return _timings


def _deleting_seconds() -> float:
    t = _t()
    return float(t.dynamodb_replica_deleting)


def _group_of(table: Any) -> _Group | None:
    group = table.__dict__.get("_drkit_group") if table is not None else None
    if group is None or len(group.members) < 2:
        return None
    return group


def group_of(table: Any) -> _Group | None:
    """The replication group of a table that has at least one other replica."""
    return _group_of(table)


def table_in(group: _Group, region: str) -> Table | None:
    """The group's replica table in `region`, if it exists there."""
    return _table_in(group, region)


def _backend(account_id: str, region: str) -> DynamoDBBackend:
    return dynamodb_backends[account_id][region]


def _table_in(group: _Group, region: str) -> Table | None:
    table = _backend(group.account_id, region).tables.get(group.name)
    if table is not None and table.__dict__.get("_drkit_group") is group:
        return table
    return None


# --- lifecycle of replicas -------------------------------------------------------------------


def _advance(group: _Group) -> None:
    """Move replicas whose transitional state has lasted long enough to their next state."""
    t = _t()
    for region, member in list(group.members.items()):
        if member.status == "CREATING" and t.elapsed_since(member.since) >= t.dynamodb_replica_creating:
            member.status = "ACTIVE"
            member.requested_from = None
        elif member.status == "DELETING" and t.elapsed_since(member.since) >= _deleting_seconds():
            table = _table_in(group, region)
            if table is not None:
                backend = _backend(group.account_id, region)
                backend.tables.pop(table.name, None)
                table.__dict__.pop("_drkit_group", None)
            del group.members[region]
            if len(group.members) < 2:
                # Back to a single-Region table: no Replicas/GlobalTableVersion any more; the
                # stream stays.
                for remaining in list(group.members):
                    other = _table_in(group, remaining)
                    if other is not None:
                        other.__dict__.pop("_drkit_group", None)
                group.members.clear()


def _all_groups() -> list[_Group]:
    groups: dict[int, _Group] = {}
    for account_id in list(dynamodb_backends.keys()):
        for region in list(dynamodb_backends[account_id].keys()):
            for table in list(dynamodb_backends[account_id][region].tables.values()):
                group = table.__dict__.get("_drkit_group")
                if group is not None:
                    groups[id(group)] = group
    return list(groups.values())


def _tick() -> None:
    """Apply due propagation and replica transitions (called before every DynamoDB operation)."""
    if getattr(_local, "ticking", False):
        return
    with _lock:
        _local.ticking = True
        try:
            _apply_changes(only_due=True)
            for group in _all_groups():
                _advance(group)
        finally:
            _local.ticking = False


def _table_status(table: Table, group: _Group) -> str:
    own = group.members.get(table.region_name)
    if own is not None and own.status in ("CREATING", "DELETING"):
        return own.status
    for member in group.members.values():
        if member.status in ("CREATING", "DELETING") and member.requested_from == table.region_name:
            return "UPDATING"
    return "ACTIVE"


def _status_of(table: Table) -> str:
    group = _group_of(table)
    return _table_status(table, group) if group is not None else "ACTIVE"


# --- propagation -----------------------------------------------------------------------------


def _item_key(item: Any) -> tuple[Any, Any]:
    return (item.hash_key, item.range_key)


def _record_local_write(table: Table, old: Any, new: Any) -> None:
    group = _group_of(table)
    if group is None:
        return
    key = _item_key(new if new is not None else old)
    version = (_t().now(), next(_seq))
    table.__dict__.setdefault("_drkit_versions", {})[key] = version
    snapshot = copy.deepcopy(new) if new is not None else None
    changes = [
        _Change(group, table.region_name, region, key, snapshot, version, version[0])
        for region in group.members
        if region != table.region_name
    ]
    buffer = getattr(_local, "transaction_buffer", None)
    if buffer is not None:
        buffer.extend(changes)
    else:
        with _lock:
            _pending.extend(changes)


def _apply_change(change: _Change) -> None:
    table = _table_in(change.group, change.target_region)
    if table is None:
        return  # the replica is gone (deleted, or moto was reset)
    versions = table.__dict__.setdefault("_drkit_versions", {})
    current = versions.get(change.key)
    if current is not None and current > change.version:
        return  # last writer wins: the target already holds a later write of this item
    versions[change.key] = change.version
    hash_key, range_key = change.key
    _local.applying = True
    try:
        if change.item is None:
            table.delete_item(hash_key, range_key)
            return
        item = copy.deepcopy(change.item)
        old = table.get_item(hash_key, range_key) if (range_key is not None or not table.has_range_key) else None
        if range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item
        if table.stream_shard is not None:
            table.stream_shard.add(old, item)
    finally:
        _local.applying = False


def _apply_changes(only_due: bool) -> None:
    with _lock:
        if not _pending:
            return
        t = _t()
        keep: list[_Change] = []
        due: list[_Change] = []
        for change in _pending:
            if not only_due or t.elapsed_since(change.written_at) >= t.dynamodb_replication:
                due.append(change)
            else:
                keep.append(change)
        _pending[:] = keep
        for change in sorted(due, key=lambda c: c.version):
            _apply_change(change)


def flush_replication() -> None:
    """Apply every pending cross-Region propagation now (for tests)."""
    with _lock:
        _apply_changes(only_due=False)


# --- replica creation and deletion -----------------------------------------------------------


def _local_region_error() -> MockValidationException:
    return MockValidationException(
        "Cannot add, delete, or update the local region through ReplicaUpdates. "
        "Use CreateTable, DeleteTable, or UpdateTable as required."
    )


def _write_capacity_autoscaled(backend: DynamoDBBackend, table: Table) -> bool:
    try:
        from moto.applicationautoscaling.models import applicationautoscaling_backends

        aas = applicationautoscaling_backends[backend.account_id][backend.region_name]
    except Exception:  # pragma: no cover - service unavailable
        return False
    targets = aas.targets.get("dynamodb:table:WriteCapacityUnits", {})
    return f"table/{table.name}" in targets


def _index_specs(table: Table) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    gsis = []
    for gsi in table.global_indexes:
        spec: dict[str, Any] = {
            "IndexName": gsi.name,
            "KeySchema": copy.deepcopy(gsi.schema),
            "Projection": copy.deepcopy(gsi.projection),
        }
        if table.billing_mode != "PAY_PER_REQUEST" and gsi.throughput:
            spec["ProvisionedThroughput"] = {
                "ReadCapacityUnits": gsi.throughput.get("ReadCapacityUnits", 0),
                "WriteCapacityUnits": gsi.throughput.get("WriteCapacityUnits", 0),
            }
        gsis.append(spec)
    lsis = [
        {
            "IndexName": lsi.name,
            "KeySchema": copy.deepcopy(lsi.schema),
            "Projection": copy.deepcopy(lsi.projection),
        }
        for lsi in table.indexes
    ]
    return gsis, lsis


def _validate_replica_updates(backend: DynamoDBBackend, table: Table, updates: list[dict[str, Any]]) -> None:
    group = _group_of(table)
    if group is not None and _table_status(table, group) != "ACTIVE":
        raise ResourceInUseException(
            f"Attempt to change a resource which is still in use: Table is being updated: {table.name}"
        )
    regions = set(dynamodb_backends[backend.account_id].regions)
    for update in updates:
        if len(update) != 1 or next(iter(update)) not in ("Create", "Update", "Delete"):
            raise MockValidationException(
                "One or more parameter values were invalid: exactly one of Create, Update or "
                "Delete must be given in each ReplicationGroupUpdate"
            )
        action, spec = next(iter(update.items()))
        region = spec.get("RegionName")
        if region == backend.region_name:
            raise _local_region_error()
        if region not in regions:
            raise MockValidationException(f"Region {region} is not a valid AWS Region")
        is_member = group is not None and region in group.members
        if action == "Create":
            if is_member:
                raise MockValidationException(
                    f"Failed to create a the new replica of table with name: '{table.name}' "
                    "because one or more replicas already existed as tables."
                )
            if table.name in _backend(backend.account_id, region).tables:
                raise MockValidationException(
                    f"Failed to create a the new replica of table with name: '{table.name}' "
                    "because one or more replicas already existed as tables."
                )
            if table.billing_mode != "PAY_PER_REQUEST" and not _write_capacity_autoscaled(backend, table):
                raise MockValidationException(
                    "One or more parameter values were invalid: Table write capacity should either "
                    "be Pay-Per-Request or AutoScaled."
                )
        elif not is_member:
            raise MockValidationException(
                f"One or more parameter values were invalid: table {table.name} has no replica in "
                f"region {region}"
            )


def _create_replica(backend: DynamoDBBackend, table: Table, spec: dict[str, Any]) -> None:
    region = spec["RegionName"]
    t = _t()
    group = table.__dict__.get("_drkit_group")
    if group is None or not group.members:
        group = _Group(backend.account_id, table.name)
        group.members[backend.region_name] = _Member(backend.region_name, "ACTIVE", t.now(), None)
        table.__dict__["_drkit_group"] = group
    if not table.latest_stream_label:
        # Adding a replica enables a NEW_AND_OLD_IMAGES stream on a table that has none.
        table.set_stream_specification({"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    gsis, lsis = _index_specs(table)
    throughput = None
    if table.billing_mode != "PAY_PER_REQUEST":
        throughput = {
            "ReadCapacityUnits": table.throughput.get("ReadCapacityUnits", 0),
            "WriteCapacityUnits": table.throughput.get("WriteCapacityUnits", 0),
        }
    sse = None
    if table.sse_specification and table.sse_specification.get("Enabled"):
        sse = {"Enabled": True, "SSEType": "KMS"}
        if spec.get("KMSMasterKeyId"):
            sse["KMSMasterKeyId"] = spec["KMSMasterKeyId"]
    target_backend = _backend(backend.account_id, region)
    replica = _original_create_table(
        target_backend,
        table.name,
        schema=copy.deepcopy(table.schema),
        throughput=throughput,
        attr=copy.deepcopy(table.attr),
        global_indexes=gsis,
        indexes=lsis,
        streams=copy.deepcopy(table.stream_specification),
        billing_mode=table.billing_mode or "PROVISIONED",
        sse_specification=sse,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    replica.__dict__["_drkit_group"] = group
    replica.ttl = copy.deepcopy(table.ttl)  # TTL is a synchronized setting (dynamodb_replica_settings)
    group.members[region] = _Member(region, "CREATING", t.now(), backend.region_name)
    # Backfill: the replica starts with the items the table holds now; later writes propagate.
    versions = table.__dict__.setdefault("_drkit_versions", {})
    replica_versions = replica.__dict__.setdefault("_drkit_versions", {})
    _local.applying = True
    try:
        for item in table.all_items():
            copied = copy.deepcopy(item)
            if replica.range_key_attr:
                replica.items[copied.hash_key][copied.range_key] = copied
            else:
                replica.items[copied.hash_key] = copied
            key = _item_key(item)
            if key in versions:
                replica_versions[key] = versions[key]
    finally:
        _local.applying = False


def _start_delete(group: _Group, region: str, requested_from: str | None) -> None:
    member = group.members[region]
    member.status = "DELETING"
    member.since = _t().now()
    member.requested_from = requested_from
    if _deleting_seconds() <= 0:
        _advance(group)


def _apply_replica_updates(backend: DynamoDBBackend, table: Table, updates: list[dict[str, Any]]) -> None:
    for update in updates:
        action, spec = next(iter(update.items()))
        if action == "Create":
            _create_replica(backend, table, spec)
            group = table.__dict__["_drkit_group"]
            if _t().dynamodb_replica_creating <= 0:
                _advance(group)
        elif action == "Delete":
            group = table.__dict__["_drkit_group"]
            _start_delete(group, spec["RegionName"], backend.region_name)
        # "Update" (per-replica KMS key, throughput overrides) has nothing to emulate here.


# --- installation ----------------------------------------------------------------------------


def _ticked(original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        return original(self, *args, **kwargs)

    wrapper.__name__ = original.__name__
    wrapper.__doc__ = original.__doc__
    return wrapper


def _require_active_for_items(backend: DynamoDBBackend, table_name: str) -> None:
    try:
        table = backend.get_table(table_name)
    except ResourceNotFoundException:
        return  # moto raises its own error
    group = _group_of(table)
    if group is not None and _table_status(table, group) == "CREATING":
        raise ResourceNotFoundException()


def _data_plane(original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        _require_active_for_items(self, args[0] if args else kwargs["table_name"])
        return original(self, *args, **kwargs)

    wrapper.__name__ = original.__name__
    wrapper.__doc__ = original.__doc__
    return wrapper


def install(timings: SandboxTimings) -> None:
    global _timings
    if getattr(DynamoDBBackend, _MARK, False):
        return
    setattr(DynamoDBBackend, _MARK, True)
    _timings = timings

    # Every write reaches the table's stream shard (moto adds a record for PutItem, UpdateItem,
    # DeleteItem, batches, transactions and PartiQL alike); global-table replicas always have one.
    original_add = StreamShard.add

    def add(self: StreamShard, old: Any, new: Any) -> None:
        original_add(self, old, new)
        if not getattr(_local, "applying", False):
            _record_local_write(self.table, old, new)

    StreamShard.add = add  # type: ignore[method-assign]

    original_describe = Table.describe

    def describe(self: Table, base_key: str = "TableDescription") -> dict[str, Any]:
        result = original_describe(self, base_key)
        group = _group_of(self)
        if self.__dict__.get("_drkit_deleting"):
            # DeleteTable answers with the table in DELETING state.
            result[base_key]["TableStatus"] = "DELETING"
        if group is not None:
            desc = result[base_key]
            if not self.__dict__.get("_drkit_deleting"):
                desc["TableStatus"] = _table_status(self, group)
            desc["GlobalTableVersion"] = GLOBAL_TABLE_VERSION
            desc["Replicas"] = [
                {"RegionName": member.region, "ReplicaStatus": member.status}
                for member in group.members.values()
                if member.region != self.region_name
            ]
        return result

    Table.describe = describe  # type: ignore[method-assign]

    for name in (
        "describe_table",
        "list_tables",
        "update_table",
        "describe_continuous_backups",
        "update_continuous_backups",
        "execute_statement",
        "execute_transaction",
        "batch_execute_statement",
        "describe_time_to_live",
        "update_time_to_live",
        "create_table",
    ):
        setattr(DynamoDBBackend, name, _ticked(getattr(DynamoDBBackend, name)))
    for name in ("put_item", "get_item", "update_item", "delete_item", "query", "scan"):
        setattr(DynamoDBBackend, name, _data_plane(getattr(DynamoDBBackend, name)))

    original_transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        _tick()
        for entry in transact_items:
            op = next(iter(entry.values()))
            if isinstance(op, dict) and op.get("TableName"):
                _require_active_for_items(self, op["TableName"])
        # Changes made by a transaction propagate only if the whole transaction commits; moto
        # rolls a failed transaction back by restoring copies of the tables, so nothing else may
        # touch them meanwhile (no propagation is applied during the transaction).
        outer_buffer = getattr(_local, "transaction_buffer", None)
        outer_ticking = getattr(_local, "ticking", False)
        _local.transaction_buffer = []
        _local.ticking = True
        try:
            original_transact(self, transact_items)
            committed = _local.transaction_buffer
        finally:
            _local.transaction_buffer = outer_buffer
            _local.ticking = outer_ticking
        if outer_buffer is not None:
            outer_buffer.extend(committed)
        else:
            with _lock:
                _pending.extend(committed)

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    original_update_streams = DynamoDBBackend.update_table_streams

    def update_table_streams(self: DynamoDBBackend, table: Table, stream_specification: dict[str, Any]) -> None:
        if _group_of(table) is not None and not stream_specification.get("StreamEnabled", True):
            raise MockValidationException(
                "One or more parameter values were invalid: Disabling Stream is not allowed for a "
                "Global Table replica."
            )
        original_update_streams(self, table, stream_specification)

    DynamoDBBackend.update_table_streams = update_table_streams  # type: ignore[method-assign]

    original_delete_table = DynamoDBBackend.delete_table

    def delete_table(self: DynamoDBBackend, name: str) -> Table:
        _tick()
        table = self.get_table(name)
        group = _group_of(table)
        if group is None:
            deleted = original_delete_table(self, name)
            deleted.__dict__["_drkit_deleting"] = True
            return deleted
        status = _table_status(table, group)
        if status == "DELETING":
            return table
        if status != "ACTIVE":
            raise ResourceInUseException(
                f"Attempt to change a resource which is still in use: Table is being "
                f"{'created' if status == 'CREATING' else 'updated'}: {table.name}"
            )
        if table.deletion_protection_enabled:
            from moto.dynamodb.exceptions import DeletionProtectedException

            raise DeletionProtectedException(table.name)
        with _lock:
            table.__dict__["_drkit_deleting"] = True
            _start_delete(group, table.region_name, None)
        return table

    DynamoDBBackend.delete_table = delete_table  # type: ignore[method-assign]

    original_response_update = DynamoHandler.update_table

    def response_update_table(self: DynamoHandler) -> Any:
        updates = self.body.get("ReplicaUpdates")
        if updates:
            _tick()
            backend = self.dynamodb_backend
            table = backend.get_table(self.body["TableName"])
            with _lock:
                _validate_replica_updates(backend, table, updates)
                _apply_replica_updates(backend, table, updates)
        return original_response_update(self)

    DynamoHandler.update_table = response_update_table  # type: ignore[method-assign]
