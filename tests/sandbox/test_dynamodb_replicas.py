"""Contract tests: DynamoDB global tables version 2019.11.21 in the sandbox behave as on AWS.

Each test names the AWS page that documents the behaviour it asserts.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from drkit.sandbox.extensions.dynamodb_replicas import flush_replication

PRIMARY, DR, THIRD = "us-east-1", "us-west-2", "eu-west-1"
TABLE = "orders"


_clients: dict[tuple[str, str], object] = {}


def client(service: str, region: str):
    """Clients are slow to create; moto intercepts them whenever a mock is active, so reuse them."""
    if (service, region) not in _clients:
        _clients[service, region] = boto3.client(service, region_name=region)
    return _clients[service, region]


def ddb(region: str):
    return client("dynamodb", region)


def create_table(region: str = PRIMARY, **extra) -> dict:
    params = dict(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-gsi",
                "KeySchema": [{"AttributeName": "gsi", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    params.update(extra)
    return ddb(region).create_table(**params)["TableDescription"]


def add_replica(region: str = DR, source: str = PRIMARY) -> dict:
    return ddb(source).update_table(TableName=TABLE, ReplicaUpdates=[{"Create": {"RegionName": region}}])[
        "TableDescription"
    ]


def describe(region: str) -> dict:
    return ddb(region).describe_table(TableName=TABLE)["Table"]


def key(pk: str, sk: str = "1") -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def get(region: str, pk: str, sk: str = "1") -> dict | None:
    return ddb(region).get_item(TableName=TABLE, Key=key(pk, sk)).get("Item")


@pytest.fixture
def global_table(aws, wait_until):
    """orders in PRIMARY with an ACTIVE replica in DR."""
    create_table()
    add_replica()
    assert wait_until(lambda: describe(PRIMARY)["TableStatus"] == "ACTIVE" and describe(DR)["TableStatus"] == "ACTIVE")
    return aws


def test_create_replica_is_creating_then_active_in_both_regions(aws, wait_until):
    # UpdateTable ReplicaUpdates Create: the replica is CREATING, the table UPDATING, then ACTIVE;
    # DescribeTable lists the other replicas and GlobalTableVersion 2019.11.21.
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTable.html
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_versions.html
    aws.dynamodb_replica_creating = 0.2
    create_table()
    answer = add_replica()
    assert answer["TableStatus"] == "UPDATING"
    assert answer["Replicas"] == [{"RegionName": DR, "ReplicaStatus": "CREATING"}]

    source, replica = describe(PRIMARY), describe(DR)
    assert source["TableStatus"] == "UPDATING"
    assert source["GlobalTableVersion"] == "2019.11.21"
    assert replica["TableStatus"] == "CREATING"
    assert replica["Replicas"] == [{"RegionName": PRIMARY, "ReplicaStatus": "ACTIVE"}]
    assert replica["TableArn"].startswith(f"arn:aws:dynamodb:{DR}:")

    assert wait_until(lambda: describe(DR)["TableStatus"] == "ACTIVE", timeout=1.0)
    assert describe(PRIMARY)["TableStatus"] == "ACTIVE"
    assert describe(PRIMARY)["Replicas"] == [{"RegionName": DR, "ReplicaStatus": "ACTIVE"}]
    assert describe(DR)["Replicas"] == [{"RegionName": PRIMARY, "ReplicaStatus": "ACTIVE"}]


def test_replica_has_the_same_key_schema_indexes_billing_and_encryption(aws):
    # A replica has the same table name, primary key schema, indexes and settings.
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
    create_table(SSESpecification={"Enabled": True, "SSEType": "KMS"})
    add_replica()
    source, replica = describe(PRIMARY), describe(DR)
    assert replica["KeySchema"] == source["KeySchema"]
    assert replica["AttributeDefinitions"] == source["AttributeDefinitions"]
    assert [i["IndexName"] for i in replica["GlobalSecondaryIndexes"]] == ["by-gsi"]
    assert replica["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert replica["StreamSpecification"] == source["StreamSpecification"]
    assert replica["SSEDescription"]["Status"] == "ENABLED"
    assert f":{DR}:" in replica["SSEDescription"]["KMSMasterKeyArn"]


def test_adding_a_replica_enables_a_new_and_old_images_stream(aws):
    # Adding a replica to a table without a stream enables one (NEW_AND_OLD_IMAGES); an existing
    # stream of another view type is kept (measured on AWS, 2019.11.21 has no such requirement).
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
    create_table()
    assert "StreamSpecification" not in describe(PRIMARY)
    add_replica()
    assert describe(PRIMARY)["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_an_existing_keys_only_stream_is_kept(aws):
    create_table(StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    add_replica()
    assert describe(PRIMARY)["StreamSpecification"]["StreamViewType"] == "KEYS_ONLY"


def test_stream_of_a_global_table_cannot_be_disabled(global_table):
    # "Disabling Stream is not allowed for a Global Table replica" (ValidationException).
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
    with pytest.raises(ClientError) as err:
        ddb(PRIMARY).update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": False})
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Disabling Stream is not allowed" in err.value.response["Error"]["Message"]


def test_replica_in_the_local_region_is_refused(aws):
    # ValidationException: Cannot add, delete, or update the local region through ReplicaUpdates.
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTable.html
    create_table()
    with pytest.raises(ClientError) as err:
        add_replica(region=PRIMARY)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "local region" in err.value.response["Error"]["Message"]


def test_replica_where_a_table_of_that_name_exists_is_refused(aws):
    # The replica table is created by DynamoDB; an existing table of that name blocks it.
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ReplicationGroupUpdate.html
    create_table()
    create_table(region=DR)
    with pytest.raises(ClientError) as err:
        add_replica()
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_provisioned_table_needs_write_auto_scaling(aws):
    # "you must either use on-demand capacity or enable autoscaling on the table"
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_reqs_bestpractices.html
    create_table(
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-gsi",
                "KeySchema": [{"AttributeName": "gsi", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            }
        ],
    )
    with pytest.raises(ClientError) as err:
        add_replica()
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "AutoScaled" in err.value.response["Error"]["Message"]

    client("application-autoscaling", PRIMARY).register_scalable_target(
        ServiceNamespace="dynamodb",
        ResourceId=f"table/{TABLE}",
        ScalableDimension="dynamodb:table:WriteCapacityUnits",
        MinCapacity=5,
        MaxCapacity=100,
    )
    assert add_replica()["Replicas"][0]["RegionName"] == DR
    assert describe(DR)["BillingModeSummary"]["BillingMode"] == "PROVISIONED"


def test_a_table_being_updated_cannot_be_updated_again(aws):
    # ResourceInUseException: "You tried to update a resource that was already being updated."
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTable.html#API_UpdateTable_Errors
    aws.dynamodb_replica_creating = 0.5
    create_table()
    add_replica()
    with pytest.raises(ClientError) as err:
        add_replica(region=THIRD)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"


def test_items_of_a_creating_replica_cannot_be_read_or_written(aws, wait_until):
    # "You can perform read and write operations only on an ACTIVE table"; otherwise
    # ResourceNotFoundException ("its status might not be ACTIVE").
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_CreateTable.html
    aws.dynamodb_replica_creating = 0.3
    create_table()
    ddb(PRIMARY).put_item(TableName=TABLE, Item={**key("existing"), "v": {"N": "1"}})
    add_replica()
    for call in (
        lambda: ddb(DR).get_item(TableName=TABLE, Key=key("existing")),
        lambda: ddb(DR).put_item(TableName=TABLE, Item=key("new")),
        lambda: ddb(DR).query(
            TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "x"}}
        ),
    ):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Once ACTIVE, the replica holds the items the table had when the replica was added.
    assert wait_until(lambda: describe(DR)["TableStatus"] == "ACTIVE", timeout=1.0)
    assert get(DR, "existing") == {**key("existing"), "v": {"N": "1"}}


def test_writes_propagate_asynchronously_to_the_other_replica(global_table, wait_until):
    # "When an application writes data to a replica table in one Region, DynamoDB propagates the
    # write to the other replica tables ... usually within a second" (asynchronously).
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
    global_table.dynamodb_replication = 0.1
    ddb(PRIMARY).put_item(TableName=TABLE, Item={**key("a"), "v": {"N": "1"}, "b": {"B": b"\x00\xff"}})
    assert get(DR, "a") is None  # not yet
    assert wait_until(lambda: get(DR, "a"), timeout=1.0) == {**key("a"), "v": {"N": "1"}, "b": {"B": b"\x00\xff"}}

    # ... in both directions, for UpdateItem and DeleteItem too.
    ddb(DR).update_item(
        TableName=TABLE, Key=key("a"), UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"N": "2"}}
    )
    assert wait_until(lambda: (get(PRIMARY, "a") or {}).get("v") == {"N": "2"}, timeout=1.0)
    ddb(PRIMARY).delete_item(TableName=TABLE, Key=key("a"))
    assert wait_until(lambda: get(DR, "a") is None, timeout=1.0)


def test_batch_and_transactional_writes_propagate(global_table):
    # All write operations of a replica are replicated, including batches and transactions.
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
    global_table.dynamodb_replication = 5  # only flush_replication() makes them visible
    ddb(PRIMARY).batch_write_item(
        RequestItems={TABLE: [{"PutRequest": {"Item": key("b1")}}, {"PutRequest": {"Item": key("b2")}}]}
    )
    ddb(PRIMARY).transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": key("t1")}},
            {"Delete": {"TableName": TABLE, "Key": key("b2")}},
        ]
    )
    assert get(DR, "b1") is None
    flush_replication()
    assert get(DR, "b1") == key("b1")
    assert get(DR, "t1") == key("t1")
    assert get(DR, "b2") is None
    assert ddb(DR).scan(TableName=TABLE)["Count"] == 2


def test_a_failed_transaction_propagates_nothing(global_table):
    # TransactWriteItems is all-or-nothing; nothing of a cancelled transaction is written anywhere.
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
    ddb(PRIMARY).put_item(TableName=TABLE, Item={**key("c"), "v": {"N": "1"}})
    flush_replication()
    with pytest.raises(ClientError) as err:
        ddb(PRIMARY).transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": key("new")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": key("c"),
                        "ConditionExpression": "v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
            ]
        )
    assert err.value.response["Error"]["Code"] == "TransactionCanceledException"
    flush_replication()
    assert get(PRIMARY, "new") is None
    assert get(DR, "new") is None


def test_concurrent_writes_converge_last_writer_wins(global_table):
    # "global tables use a last writer wins reconciliation between concurrent updates"
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html
    global_table.dynamodb_replication = 5
    ddb(PRIMARY).put_item(TableName=TABLE, Item={**key("x"), "writer": {"S": "primary"}})
    ddb(DR).put_item(TableName=TABLE, Item={**key("x"), "writer": {"S": "dr"}})  # the later write
    flush_replication()
    assert get(PRIMARY, "x")["writer"] == {"S": "dr"}
    assert get(DR, "x")["writer"] == {"S": "dr"}


def test_delete_replica_is_deleting_then_gone(global_table, wait_until):
    # ReplicaUpdates Delete invokes DeleteTableReplica in the destination Region, deleting the
    # replica and all of its items; a table back to one replica has no Replicas any more and keeps
    # its stream (measured on AWS).
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ReplicationGroupUpdate.html
    global_table.dynamodb_replica_creating = 0.2  # also the deletion time
    answer = ddb(PRIMARY).update_table(TableName=TABLE, ReplicaUpdates=[{"Delete": {"RegionName": DR}}])[
        "TableDescription"
    ]
    assert answer["Replicas"] == [{"RegionName": DR, "ReplicaStatus": "DELETING"}]
    assert describe(DR)["TableStatus"] == "DELETING"
    assert wait_until(lambda: TABLE not in ddb(DR).list_tables()["TableNames"], timeout=1.0)
    source = describe(PRIMARY)
    assert source["TableStatus"] == "ACTIVE"
    assert "Replicas" not in source and "GlobalTableVersion" not in source
    assert source["StreamSpecification"]["StreamEnabled"] is True
    # Writes no longer go anywhere, and the stream may now be disabled.
    ddb(PRIMARY).put_item(TableName=TABLE, Item=key("after"))
    flush_replication()
    ddb(PRIMARY).update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": False})


def test_delete_table_on_a_replica_removes_it_from_the_global_table(global_table, wait_until):
    # DeleteTable applies to 2019.11.21 global tables: the table is DELETING, then gone; the other
    # replicas stop listing it.
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_DeleteTable.html
    answer = ddb(DR).delete_table(TableName=TABLE)["TableDescription"]
    assert answer["TableStatus"] == "DELETING"
    assert wait_until(lambda: "Replicas" not in describe(PRIMARY), timeout=1.0)
    with pytest.raises(ClientError) as err:
        describe(DR)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_delete_table_while_a_replica_is_being_added_is_refused(aws):
    # "If a table is in CREATING or UPDATING states, then DynamoDB returns a ResourceInUseException."
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_DeleteTable.html
    aws.dynamodb_replica_creating = 0.5
    create_table()
    add_replica()
    for region in (PRIMARY, DR):
        with pytest.raises(ClientError) as err:
            ddb(region).delete_table(TableName=TABLE)
        assert err.value.response["Error"]["Code"] == "ResourceInUseException"


def test_point_in_time_recovery_is_per_replica(global_table):
    # Point-in-time recovery is enabled per replica table.
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Point-in-time-recovery.html
    ddb(DR).update_continuous_backups(
        TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )

    def pitr(region: str) -> str:
        answer = ddb(region).describe_continuous_backups(TableName=TABLE)["ContinuousBackupsDescription"]
        return answer["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]

    assert pitr(DR) == "ENABLED"
    assert pitr(PRIMARY) == "DISABLED"


def test_pending_propagation_does_not_survive_a_reset(global_table):
    # Sandbox contract (moto reset = a fresh account): writes still in flight when the emulated
    # AWS is reset never reach tables created afterwards.
    from drkit.sandbox import reset

    global_table.dynamodb_replication = 5
    ddb(PRIMARY).put_item(TableName=TABLE, Item=key("old"))
    reset()
    create_table()
    create_table(region=DR)
    flush_replication()
    assert get(DR, "old") is None
