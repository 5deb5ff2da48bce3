"""The botocore release drkit needs: every request or response member drkit relies on that is not
as old as the service, with the first botocore release whose service model has it.

botocore validates requests against its bundled models: a member the installed botocore does not
know is refused before the request is sent ("Unknown parameter in input"), and a response member
it does not know is dropped. With botocore 1.34, for instance, `Tags` on RDS CreateGlobalCluster
is refused, so provision fails, and `TagList` on global clusters is missing, so teardown cannot
prove the global cluster is drkit's and leaks it. setup.cfg's floor must be at least the newest
`since` below; tests/unit/test_unit_botocore_floor.py checks both that and that every member is in
the installed models. Each `since` was found by bisecting botocore's release tags
(`git show <tag>:botocore/data/<service>/.../service-2.json`) and, where its changelog says so,
confirmed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import botocore.session


@dataclass(frozen=True)
class ApiMember:
    """One member drkit sends or reads. `path` is `input:` or `output:` then member names joined
    by dots; a list is stepped through to its element (`GlobalClusters.TagList`)."""

    service: str
    operation: str  # the API name, as in the service model: "CreateGlobalCluster"
    path: str
    since: str  # the first botocore release whose model has it
    why: str


API_MEMBERS: tuple[ApiMember, ...] = (
    # Aurora global database (steps/aurora.py)
    ApiMember("rds", "CreateGlobalCluster", "input:Tags", "1.35.20",
              "the global cluster is tagged in its create call (changelog 1.35.20: Launching Global Cluster tagging)"),
    ApiMember("rds", "DescribeGlobalClusters", "output:GlobalClusters.TagList", "1.35.20",
              "ownership of the global cluster is read from its tags (plan, verify, teardown)"),
    ApiMember("rds", "CreateDBCluster", "input:GlobalClusterIdentifier", "1.12.54",
              "each cluster joins the global database at creation"),
    ApiMember("rds", "RemoveFromGlobalCluster", "input:DbClusterIdentifier", "1.12.54",
              "teardown detaches the secondary"),
    ApiMember("rds", "DescribeOrderableDBInstanceOptions",
              "output:OrderableDBInstanceOptions.SupportsGlobalDatabases", "1.17.24",
              "a version that cannot join a global database fails at plan time"),
    ApiMember("rds", "ModifyGlobalCluster", "input:DeletionProtection", "1.12.54",
              "deletion protection of the global cluster is repaired"),
    ApiMember("rds", "DescribeDBClusters", "output:DBClusters.TagList", "1.18.17",
              "ownership of the clusters is read from their tags"),
    # DynamoDB global table, version 2019.11.21 (steps/dynamodb.py)
    ApiMember("dynamodb", "UpdateTable", "input:ReplicaUpdates.Create.RegionName", "1.13.24",
              "the DR replica is added with UpdateTable"),
    ApiMember("dynamodb", "UpdateTable", "input:ReplicaUpdates.Delete.RegionName", "1.13.24",
              "teardown removes the DR replica"),
    ApiMember("dynamodb", "DescribeTable", "output:Table.Replicas.ReplicaStatus", "1.13.24",
              "waits follow the replica's status"),
    ApiMember("dynamodb", "CreateTable", "input:BillingMode", "1.12.54", "on-demand capacity"),
    ApiMember("dynamodb", "CreateTable", "input:SSESpecification.SSEType", "1.10.81",
              "encryption with the AWS managed KMS key"),
    # S3 replication (steps/s3.py)
    ApiMember("s3", "PutBucketReplication", "input:ReplicationConfiguration.Rules.Destination.ReplicationTime",
              "1.13.23", "Replication Time Control (15 minutes)"),
    ApiMember("s3", "PutBucketReplication", "input:ReplicationConfiguration.Rules.Destination.Metrics",
              "1.13.23", "replication metrics, which RTC requires"),
    ApiMember("s3", "PutBucketReplication", "input:ReplicationConfiguration.Rules.DeleteMarkerReplication",
              "1.12.7", "delete markers are replicated"),
    ApiMember("s3", "HeadBucket", "output:BucketRegion", "1.33.2",
              "verify compares the bucket's region"),
    # Secrets Manager replica (steps/secrets.py)
    ApiMember("secretsmanager", "CreateSecret", "input:AddReplicaRegions", "1.20.20",
              "the secret is created with its DR replica"),
    ApiMember("secretsmanager", "ReplicateSecretToRegions", "input:AddReplicaRegions", "1.20.20",
              "a missing replica is added"),
    ApiMember("secretsmanager", "RemoveRegionsFromReplication", "input:RemoveReplicaRegions", "1.20.20",
              "teardown removes the replica first"),
    ApiMember("secretsmanager", "DescribeSecret", "output:ReplicationStatus", "1.20.20",
              "verify reads the replica's status"),
    # Tag-on-create for EC2 (steps/vpc.py, steps/security_groups.py)
    ApiMember("ec2", "CreateVpc", "input:TagSpecifications", "1.17.14", "the VPC is tagged in its create call"),
    ApiMember("ec2", "CreateInternetGateway", "input:TagSpecifications", "1.17.14",
              "the internet gateway is tagged in its create call"),
    ApiMember("ec2", "CreateRouteTable", "input:TagSpecifications", "1.17.24",
              "route tables are tagged in their create call"),
    ApiMember("ec2", "CreateNatGateway", "input:TagSpecifications", "1.15.17",
              "the NAT gateway is tagged in its create call"),
    ApiMember("ec2", "AllocateAddress", "input:TagSpecifications", "1.19.41",
              "the Elastic IP is tagged in its create call"),
    ApiMember("ec2", "CreateSubnet", "input:TagSpecifications", "1.17.14",
              "subnets are tagged in their create call"),
    ApiMember("ec2", "CreateSecurityGroup", "input:TagSpecifications", "1.17.14",
              "security groups are tagged in their create call"),
    # The state in S3 (drkit/storage/s3.py, drkit/storage/s3_lock.py)
    ApiMember("s3", "PutObject", "input:IfNoneMatch", "1.35.2",
              "the S3 lock and every journal record are created only if absent (changelog 1.35.2: conditional writes)"),
    ApiMember("s3", "PutObject", "input:IfMatch", "1.35.69",
              "every state write and lease renewal is a compare-and-swap on the ETag (changelog 1.35.69: "
              "ETag based conditional writes)"),
    ApiMember("s3", "DeleteObject", "input:IfMatch", "1.35.67",
              "a run releases, and `state unlock` breaks, only the lock it saw"),
    # IAM (steps/s3.py)
    ApiMember("iam", "CreateRole", "input:Tags", "1.12.46", "the replication role is tagged in its create call"),
    ApiMember("iam", "GetRole", "output:Role.Tags", "1.12.46", "ownership of the role is read from its tags"),
)


def required_botocore() -> str:
    """The newest `since` in the table: the lowest botocore drkit can run on."""
    return max((m.since for m in API_MEMBERS), key=version_tuple)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def resolve(member: ApiMember, session: Any = None) -> str | None:
    """Why `member` is not in the installed botocore's model, or None when it is."""
    session = session or botocore.session.get_session()
    model = session.get_service_model(member.service)
    if member.operation not in model.operation_names:
        return f"{member.service} has no operation {member.operation}"
    operation = model.operation_model(member.operation)
    direction, _, dotted = member.path.partition(":")
    shape = operation.input_shape if direction == "input" else operation.output_shape
    walked = [member.operation, direction]
    for name in dotted.split("."):
        while shape is not None and shape.type_name == "list":
            shape = shape.member
        if shape is None or shape.type_name != "structure" or name not in shape.members:
            return f"{member.service} {'.'.join(walked)} has no member {name}"
        shape = shape.members[name]
        walked.append(name)
    return None
