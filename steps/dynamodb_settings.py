"""What drkit wants the payment transactions table to be, and how it reads DynamoDB's answers:
the wanted settings, the table and replica statuses, and the pure helpers `steps/dynamodb.py`
(ensure_global_table) decides with. Pure: no AWS call here.
"""

from __future__ import annotations

from typing import Any

from drkit.step import AVAILABLE, DELETING, FAILED, PENDING

HASH_KEY = "transactionId"
HASH_KEY_TYPE = "S"
BILLING_MODE = "PAY_PER_REQUEST"
STREAM_VIEW = "NEW_AND_OLD_IMAGES"
# The console's names for the two kinds of encryption at rest: KMS (AWS managed or customer
# managed key) and DEFAULT (the AWS owned key, which a table without SSESpecification gets).
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/encryption.usagenotes.html
SSE_KMS = "KMS"
SSE_DEFAULT = "DEFAULT"

TABLE_STATUS = {"ACTIVE": AVAILABLE, "CREATING": PENDING, "UPDATING": PENDING, "DELETING": DELETING}
# Anything else (ARCHIVED, INACCESSIBLE_ENCRYPTION_CREDENTIALS, CREATION_FAILED, ...) is FAILED.
FAILED_STATUSES = frozenset({
    "CREATION_FAILED", "REGION_DISABLED", "INACCESSIBLE_ENCRYPTION_CREDENTIALS", "ARCHIVING", "ARCHIVED",
    "REPLICATION_NOT_AUTHORIZED",
})


def table_settings(table: dict[str, Any], backups: dict[str, Any] | None) -> dict[str, Any]:
    """The settings drkit manages, as one region's DescribeTable and DescribeContinuousBackups
    report them. Pure."""
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    key_schema = ", ".join(
        f"{k['KeyType']} {k['AttributeName']}:{types.get(k['AttributeName'])}" for k in table.get("KeySchema", [])
    )
    stream = table.get("StreamSpecification") or {}
    sse = table.get("SSEDescription") or {}
    pitr = ((backups or {}).get("PointInTimeRecoveryDescription") or {}).get("PointInTimeRecoveryStatus")
    return {
        "key_schema": key_schema,
        "billing_mode": (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED"),
        "stream": stream.get("StreamViewType") if stream.get("StreamEnabled") else None,
        "encryption": SSE_KMS if sse.get("Status") in ("ENABLED", "UPDATING") and sse.get("SSEType") == "KMS"
        else SSE_DEFAULT,
        "point_in_time_recovery": None if pitr is None else pitr == "ENABLED",
    }


WANTED_SETTINGS: dict[str, Any] = {
    "key_schema": f"HASH {HASH_KEY}:{HASH_KEY_TYPE}",
    "billing_mode": BILLING_MODE,
    "stream": STREAM_VIEW,
    "encryption": SSE_KMS,
    "point_in_time_recovery": True,
}


def replica_status(table: dict[str, Any] | None, region: str) -> str | None:
    """The ReplicaStatus `table` reports for its replica in `region` (None: not a replica)."""
    for replica in (table or {}).get("Replicas", []):
        if replica.get("RegionName") == region:
            return replica.get("ReplicaStatus")
    return None


def arn_in_region(arn: str, region: str) -> str:
    """The ARN of the same-named table in another region (replicas share the table name)."""
    parts = arn.split(":")
    parts[3] = region
    return ":".join(parts)


def drkit_status(raw: str | None) -> str:
    """drkit's status for a DynamoDB TableStatus or ReplicaStatus."""
    return TABLE_STATUS.get(raw or "", FAILED)
