"""Contract tests: settings of a global table that AWS synchronizes follow from one replica to the
others; per-replica settings do not.

https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/globaltables-CoreConcepts.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-dynamodb-globaltable-replicaspecification.html
"""

from __future__ import annotations

from tests.sandbox.test_dynamodb_replicas import DR, PRIMARY, TABLE, create_table, ddb, describe, global_table  # noqa: F401


def test_billing_mode_and_throughput_follow_to_the_other_replica(global_table):
    ddb(DR).update_table(TableName=TABLE, BillingMode="PROVISIONED",
                         ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7})
    primary = describe(PRIMARY)
    assert primary["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert (primary["ProvisionedThroughput"]["ReadCapacityUnits"], primary["ProvisionedThroughput"]["WriteCapacityUnits"]) == (5, 7)
    ddb(PRIMARY).update_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST")
    assert describe(DR)["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_encryption_type_follows_but_each_replica_keeps_a_key_of_its_own_region(global_table):
    ddb(PRIMARY).update_table(TableName=TABLE, SSESpecification={"Enabled": True, "SSEType": "KMS"})
    primary, dr = describe(PRIMARY)["SSEDescription"], describe(DR)["SSEDescription"]
    assert (primary["Status"], primary["SSEType"], dr["Status"], dr["SSEType"]) == ("ENABLED", "KMS", "ENABLED", "KMS")
    assert f":{PRIMARY}:" in primary["KMSMasterKeyArn"] and f":{DR}:" in dr["KMSMasterKeyArn"]
    ddb(DR).update_table(TableName=TABLE, SSESpecification={"Enabled": False})
    assert "SSEDescription" not in describe(PRIMARY) and "SSEDescription" not in describe(DR)


def test_time_to_live_follows_to_the_other_replica(global_table):
    ddb(PRIMARY).update_time_to_live(TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    ttl = ddb(DR).describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires")


def test_a_new_replica_starts_with_the_tables_time_to_live(aws, wait_until):
    create_table()
    ddb(PRIMARY).update_time_to_live(TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    ddb(PRIMARY).update_table(TableName=TABLE, ReplicaUpdates=[{"Create": {"RegionName": DR}}])
    assert ddb(DR).describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]["AttributeName"] == "expires"


def test_point_in_time_recovery_deletion_protection_and_tags_stay_per_replica(global_table):
    ddb(PRIMARY).update_continuous_backups(TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    ddb(PRIMARY).update_table(TableName=TABLE, DeletionProtectionEnabled=True)
    ddb(PRIMARY).tag_resource(ResourceArn=describe(PRIMARY)["TableArn"], Tags=[{"Key": "only", "Value": "primary"}])
    pitr = ddb(DR).describe_continuous_backups(TableName=TABLE)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    assert describe(DR).get("DeletionProtectionEnabled", False) is False
    assert ddb(DR).list_tags_of_resource(ResourceArn=describe(DR)["TableArn"]).get("Tags", []) == []
    assert describe(PRIMARY)["BillingModeSummary"]["BillingMode"] == describe(DR)["BillingModeSummary"]["BillingMode"]
    ddb(PRIMARY).update_table(TableName=TABLE, DeletionProtectionEnabled=False)  # lets the fixture's mock go
