"""Settings of a DynamoDB global table (2019.11.21) that follow from one replica to the others.

AWS behaviour emulated (moto 5.2 keeps every replica's settings apart, and ignores
UpdateTable's SSESpecification altogether):
- Synchronized across replicas: the capacity mode (BillingMode) and provisioned throughput, the
  stream specification, the server-side encryption *type* (AWS owned key vs KMS), and Time to
  Live. A change made through any replica applies to all of them.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/globaltables-CoreConcepts.html
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
- Per replica, never synchronized: point-in-time recovery, tags, deletion protection, table class,
  contributor insights, and the KMS key itself (a key belongs to one Region: a replica that has
  no key of its own gets its Region's AWS managed key, `alias/aws/dynamodb`). These are what the
  CloudFormation ReplicaSpecification sets per replica.
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-dynamodb-globaltable-replicaspecification.html
- UpdateTable SSESpecification: Enabled true (SSEType KMS, optional KMSMasterKeyId) encrypts with
  KMS, Enabled false goes back to an AWS owned key (no SSEDescription).
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_SSESpecification.html
Global secondary index changes are not propagated (drkit's table has none).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult

from drkit.sandbox.extensions import dynamodb_replicas
from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_replica_settings_installed"


def install(timings: SandboxTimings) -> None:
    if getattr(DynamoHandler, _MARK, False):
        return
    setattr(DynamoHandler, _MARK, True)

    original_update = DynamoHandler.update_table

    def update_table(self: DynamoHandler) -> Any:
        result = original_update(self)
        backend = self.dynamodb_backend
        table = backend.get_table(self.body["TableName"])
        sse = self.body.get("SSESpecification")
        if sse is not None:
            _apply_sse(table, sse, sse.get("KMSMasterKeyId"))
        touched = any(self.body.get(k) is not None for k in
                      ("BillingMode", "ProvisionedThroughput", "StreamSpecification", "SSESpecification"))
        if touched:
            for replica in _other_replicas(table):
                _sync_capacity(table, replica)
                _sync_stream(table, replica)
                if sse is not None:
                    _apply_sse(replica, sse, None)
        return DynamoResult(table.describe()) if sse is not None else result

    DynamoHandler.update_table = update_table  # type: ignore[method-assign]

    original_ttl = DynamoDBBackend.update_time_to_live

    def update_time_to_live(self: DynamoDBBackend, table_name: str, ttl_spec: dict[str, Any]) -> None:
        original_ttl(self, table_name, ttl_spec)
        table = self.get_table(table_name)
        for replica in _other_replicas(table):
            replica.ttl = copy.deepcopy(table.ttl)

    DynamoDBBackend.update_time_to_live = update_time_to_live  # type: ignore[method-assign]


def _other_replicas(table: Table) -> list[Table]:
    group = dynamodb_replicas.group_of(table)
    if group is None:
        return []
    found = []
    for region in list(group.members):
        replica = dynamodb_replicas.table_in(group, region)
        if replica is not None and replica is not table:
            found.append(replica)
    return found


def _sync_capacity(source: Table, replica: Table) -> None:
    replica.billing_mode = source.billing_mode
    replica.throughput = copy.deepcopy(source.throughput)


def _sync_stream(source: Table, replica: Table) -> None:
    wanted = (source.stream_specification or {}).get("StreamViewType")
    have = (replica.stream_specification or {}).get("StreamViewType")
    if wanted and wanted != have:
        replica.set_stream_specification({"StreamEnabled": True, "StreamViewType": wanted})


def _apply_sse(table: Table, sse: dict[str, Any], key_id: str | None) -> None:
    """KMS encryption (with `key_id`, the key the table has, or the Region's AWS managed key),
    or back to an AWS owned key."""
    if not sse.get("Enabled", False):
        table.sse_specification = None
        return
    current = (table.sse_specification or {}).get("KMSMasterKeyId") if table.sse_specification else None
    key = key_id or current or table._get_default_encryption_key(table.account_id, table.region_name)
    table.sse_specification = {"Enabled": True, "SSEType": sse.get("SSEType", "KMS"), "KMSMasterKeyId": key}
