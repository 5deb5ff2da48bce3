"""The least-privilege IAM policy an operator needs to run drkit (plan, provision, verify incl.
--deep, teardown, the runbooks) for one environment, derived from the calls drkit makes.

OPERATION_ACTIONS is the one explicit table from boto3 operation to the IAM actions AWS checks
for it (mostly `service:OperationName`, but S3 and a few others differ, and some calls need
more than one action). `policy()` grants each action only on drkit's own resources: by name
where the name is known in advance (RDS, DynamoDB, S3, IAM, Secrets Manager), by drkit's tags
where it is not (EC2 ids), and on "*" only for the actions in NEEDS_STAR_RESOURCE, which AWS
authorizes on no resource type at all. A test runs the whole lifecycle and checks that every
call it made is allowed here, so a new call must add its row.
Sources: https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
"""

from __future__ import annotations

from typing import Any

from drkit.config import Config, known_regions

# (service, boto3 operation) -> the IAM actions AWS checks. A create that carries tags also needs
# the service's tagging action (tag-on-create authorization).
OPERATION_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    # EC2 (steps/vpc.py, steps/security_groups.py, drkit/ec2.py)
    ("ec2", "describe_vpcs"): ("ec2:DescribeVpcs",),
    ("ec2", "describe_subnets"): ("ec2:DescribeSubnets",),
    ("ec2", "describe_internet_gateways"): ("ec2:DescribeInternetGateways",),
    ("ec2", "describe_addresses"): ("ec2:DescribeAddresses",),
    ("ec2", "describe_nat_gateways"): ("ec2:DescribeNatGateways",),
    ("ec2", "describe_route_tables"): ("ec2:DescribeRouteTables",),
    ("ec2", "describe_security_groups"): ("ec2:DescribeSecurityGroups",),
    ("ec2", "describe_vpc_attribute"): ("ec2:DescribeVpcAttribute",),
    ("ec2", "describe_availability_zones"): ("ec2:DescribeAvailabilityZones",),
    ("ec2", "describe_network_interfaces"): ("ec2:DescribeNetworkInterfaces",),
    ("ec2", "create_vpc"): ("ec2:CreateVpc", "ec2:CreateTags"),
    ("ec2", "create_subnet"): ("ec2:CreateSubnet", "ec2:CreateTags"),
    ("ec2", "create_internet_gateway"): ("ec2:CreateInternetGateway", "ec2:CreateTags"),
    ("ec2", "allocate_address"): ("ec2:AllocateAddress", "ec2:CreateTags"),
    ("ec2", "create_nat_gateway"): ("ec2:CreateNatGateway", "ec2:CreateTags"),
    ("ec2", "create_route_table"): ("ec2:CreateRouteTable", "ec2:CreateTags"),
    ("ec2", "create_security_group"): ("ec2:CreateSecurityGroup", "ec2:CreateTags"),
    ("ec2", "create_tags"): ("ec2:CreateTags",),
    ("ec2", "modify_vpc_attribute"): ("ec2:ModifyVpcAttribute",),
    ("ec2", "attach_internet_gateway"): ("ec2:AttachInternetGateway",),
    ("ec2", "detach_internet_gateway"): ("ec2:DetachInternetGateway",),
    ("ec2", "create_route"): ("ec2:CreateRoute",),
    ("ec2", "replace_route"): ("ec2:ReplaceRoute",),
    ("ec2", "associate_route_table"): ("ec2:AssociateRouteTable",),
    ("ec2", "disassociate_route_table"): ("ec2:DisassociateRouteTable",),
    ("ec2", "replace_route_table_association"): ("ec2:ReplaceRouteTableAssociation",),
    ("ec2", "authorize_security_group_ingress"): ("ec2:AuthorizeSecurityGroupIngress",),
    ("ec2", "authorize_security_group_egress"): ("ec2:AuthorizeSecurityGroupEgress",),
    ("ec2", "revoke_security_group_ingress"): ("ec2:RevokeSecurityGroupIngress",),
    ("ec2", "revoke_security_group_egress"): ("ec2:RevokeSecurityGroupEgress",),
    ("ec2", "delete_route_table"): ("ec2:DeleteRouteTable",),
    ("ec2", "delete_nat_gateway"): ("ec2:DeleteNatGateway",),
    ("ec2", "release_address"): ("ec2:ReleaseAddress",),
    ("ec2", "delete_internet_gateway"): ("ec2:DeleteInternetGateway",),
    ("ec2", "delete_subnet"): ("ec2:DeleteSubnet",),
    ("ec2", "delete_vpc"): ("ec2:DeleteVpc",),
    ("ec2", "delete_security_group"): ("ec2:DeleteSecurityGroup",),
    # Secrets Manager (steps/secrets.py)
    ("secretsmanager", "describe_secret"): ("secretsmanager:DescribeSecret",),
    ("secretsmanager", "get_secret_value"): ("secretsmanager:GetSecretValue",),
    # CreateSecret with AddReplicaRegions replicates at once; with Tags it also tags.
    ("secretsmanager", "create_secret"): (
        "secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:ReplicateSecretToRegions"),
    ("secretsmanager", "tag_resource"): ("secretsmanager:TagResource",),
    ("secretsmanager", "restore_secret"): ("secretsmanager:RestoreSecret",),
    ("secretsmanager", "replicate_secret_to_regions"): ("secretsmanager:ReplicateSecretToRegions",),
    ("secretsmanager", "remove_regions_from_replication"): ("secretsmanager:RemoveRegionsFromReplication",),
    ("secretsmanager", "delete_secret"): ("secretsmanager:DeleteSecret",),
    # Aurora (steps/aurora.py)
    ("rds", "describe_orderable_db_instance_options"): ("rds:DescribeOrderableDBInstanceOptions",),
    ("rds", "describe_global_clusters"): ("rds:DescribeGlobalClusters",),
    ("rds", "describe_db_clusters"): ("rds:DescribeDBClusters",),
    ("rds", "describe_db_instances"): ("rds:DescribeDBInstances",),
    ("rds", "describe_db_subnet_groups"): ("rds:DescribeDBSubnetGroups",),
    ("rds", "list_tags_for_resource"): ("rds:ListTagsForResource",),
    ("rds", "create_db_subnet_group"): ("rds:CreateDBSubnetGroup", "rds:AddTagsToResource"),
    ("rds", "modify_db_subnet_group"): ("rds:ModifyDBSubnetGroup",),
    ("rds", "delete_db_subnet_group"): ("rds:DeleteDBSubnetGroup",),
    ("rds", "add_tags_to_resource"): ("rds:AddTagsToResource",),
    ("rds", "create_global_cluster"): ("rds:CreateGlobalCluster", "rds:AddTagsToResource"),
    ("rds", "modify_global_cluster"): ("rds:ModifyGlobalCluster",),
    ("rds", "delete_global_cluster"): ("rds:DeleteGlobalCluster",),
    ("rds", "create_db_cluster"): ("rds:CreateDBCluster", "rds:AddTagsToResource"),
    ("rds", "modify_db_cluster"): ("rds:ModifyDBCluster",),
    ("rds", "remove_from_global_cluster"): ("rds:RemoveFromGlobalCluster",),
    # Runbooks (drkit/runbook/aurora_actions.py): both authorize on the global cluster AND the
    # target cluster; keeping AWS's unplanned-failover snapshot copies it, tagged.
    ("rds", "switchover_global_cluster"): ("rds:SwitchoverGlobalCluster",),
    ("rds", "failover_global_cluster"): ("rds:FailoverGlobalCluster",),
    ("rds", "describe_db_cluster_snapshots"): ("rds:DescribeDBClusterSnapshots",),
    ("rds", "copy_db_cluster_snapshot"): ("rds:CopyDBClusterSnapshot", "rds:AddTagsToResource"),
    ("rds", "delete_db_cluster"): ("rds:DeleteDBCluster",),
    ("rds", "create_db_instance"): ("rds:CreateDBInstance", "rds:AddTagsToResource"),
    ("rds", "modify_db_instance"): ("rds:ModifyDBInstance",),
    ("rds", "delete_db_instance"): ("rds:DeleteDBInstance",),
    ("kms", "describe_key"): ("kms:DescribeKey",),
    # The DR key's alias is read with ListAliases (no side effect; authorized on "*" only).
    # https://docs.aws.amazon.com/kms/latest/developerguide/alias-access.html
    ("kms", "list_aliases"): ("kms:ListAliases",),
    ("cloudwatch", "get_metric_statistics"): ("cloudwatch:GetMetricStatistics",),
    # DynamoDB (steps/dynamodb.py). Adding a 2019.11.21 replica is UpdateTable in the source region
    # and CreateTable, CreateTableReplica and the item actions (the backfill) in the replica's;
    # removing one is DeleteTableReplica and DeleteTable there, and the first replica of the
    # account creates DynamoDB's replication service-linked role.
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2gt_IAM.html
    ("dynamodb", "describe_table"): ("dynamodb:DescribeTable",),
    ("dynamodb", "describe_continuous_backups"): ("dynamodb:DescribeContinuousBackups",),
    ("dynamodb", "list_tags_of_resource"): ("dynamodb:ListTagsOfResource",),
    ("dynamodb", "create_table"): ("dynamodb:CreateTable", "dynamodb:TagResource"),
    ("dynamodb", "update_table"): (
        "dynamodb:UpdateTable", "dynamodb:CreateTable", "dynamodb:CreateTableReplica", "dynamodb:DeleteTable",
        "dynamodb:DeleteTableReplica", "dynamodb:Scan", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem",
        "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "iam:CreateServiceLinkedRole"),
    ("dynamodb", "update_continuous_backups"): ("dynamodb:UpdateContinuousBackups",),
    ("dynamodb", "tag_resource"): ("dynamodb:TagResource",),
    ("dynamodb", "delete_table"): ("dynamodb:DeleteTable",),
    ("dynamodb", "put_item"): ("dynamodb:PutItem",),
    ("dynamodb", "get_item"): ("dynamodb:GetItem",),
    ("dynamodb", "delete_item"): ("dynamodb:DeleteItem",),
    # S3 (steps/s3.py): the actions are named after S3's sub-resources, not the API.
    ("s3", "head_bucket"): ("s3:ListBucket",),
    ("s3", "create_bucket"): ("s3:CreateBucket", "s3:TagResource", "s3:PutBucketTagging"),
    ("s3", "get_bucket_tagging"): ("s3:GetBucketTagging",),
    ("s3", "put_bucket_tagging"): ("s3:PutBucketTagging",),
    ("s3", "get_bucket_versioning"): ("s3:GetBucketVersioning",),
    ("s3", "put_bucket_versioning"): ("s3:PutBucketVersioning",),
    ("s3", "get_bucket_encryption"): ("s3:GetEncryptionConfiguration",),
    ("s3", "put_bucket_encryption"): ("s3:PutEncryptionConfiguration",),
    ("s3", "get_public_access_block"): ("s3:GetBucketPublicAccessBlock",),
    ("s3", "put_public_access_block"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "get_bucket_policy"): ("s3:GetBucketPolicy",),
    ("s3", "put_bucket_policy"): ("s3:PutBucketPolicy",),
    ("s3", "delete_bucket"): ("s3:DeleteBucket",),
    ("s3", "list_object_versions"): ("s3:ListBucketVersions",),
    ("s3", "delete_objects"): ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    ("s3", "get_bucket_replication"): ("s3:GetReplicationConfiguration",),
    # The role S3 will assume is passed to it.
    ("s3", "put_bucket_replication"): ("s3:PutReplicationConfiguration", "iam:PassRole"),
    ("s3", "delete_bucket_replication"): ("s3:PutReplicationConfiguration",),
    ("s3", "put_object"): ("s3:PutObject",),
    ("s3", "head_object"): ("s3:GetObject",),
    ("s3", "delete_object"): ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    # The S3 state backend (drkit/storage/s3.py, s3_lock.py): state, lock, audit and journals.
    ("s3", "get_object"): ("s3:GetObject",),
    ("s3", "list_objects_v2"): ("s3:ListBucket",),
    # IAM (steps/s3.py)
    ("iam", "get_role"): ("iam:GetRole",),
    ("iam", "get_role_policy"): ("iam:GetRolePolicy",),
    ("iam", "create_role"): ("iam:CreateRole", "iam:TagRole"),
    ("iam", "tag_role"): ("iam:TagRole",),
    ("iam", "update_assume_role_policy"): ("iam:UpdateAssumeRolePolicy",),
    ("iam", "put_role_policy"): ("iam:PutRolePolicy",),
    ("iam", "delete_role_policy"): ("iam:DeleteRolePolicy",),
    ("iam", "delete_role"): ("iam:DeleteRole",),
    # CloudWatch Logs (steps/lambda_function.py): the functions' log groups
    ("logs", "describe_log_groups"): ("logs:DescribeLogGroups",),
    ("logs", "list_tags_for_resource"): ("logs:ListTagsForResource",),
    ("logs", "create_log_group"): ("logs:CreateLogGroup", "logs:TagResource"),
    ("logs", "tag_resource"): ("logs:TagResource",),
    ("logs", "put_retention_policy"): ("logs:PutRetentionPolicy",),
    ("logs", "delete_log_group"): ("logs:DeleteLogGroup",),
    # Lambda (steps/lambda_function.py, steps/rest_api.py). Creating or reconfiguring a function
    # passes its execution role to Lambda.
    ("lambda", "get_function"): ("lambda:GetFunction",),
    ("lambda", "get_function_configuration"): ("lambda:GetFunctionConfiguration",),
    ("lambda", "create_function"): ("lambda:CreateFunction", "lambda:TagResource", "iam:PassRole"),
    ("lambda", "tag_resource"): ("lambda:TagResource",),
    ("lambda", "update_function_code"): ("lambda:UpdateFunctionCode",),
    ("lambda", "update_function_configuration"): ("lambda:UpdateFunctionConfiguration", "iam:PassRole"),
    ("lambda", "delete_function"): ("lambda:DeleteFunction",),
    ("lambda", "get_policy"): ("lambda:GetPolicy",),
    ("lambda", "add_permission"): ("lambda:AddPermission",),
    ("lambda", "remove_permission"): ("lambda:RemovePermission",),
    # The switchover gate compares the regions' concurrency (drkit/runbook/reads.py).
    ("lambda", "get_function_concurrency"): ("lambda:GetFunctionConcurrency",),
    ("lambda", "get_account_settings"): ("lambda:GetAccountSettings",),
    # API Gateway (steps/rest_api.py, steps/custom_domain.py): actions are HTTP verbs on paths.
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-iam-policy-resource-format-for-managing-api.html
    ("apigateway", "get_rest_apis"): ("apigateway:GET",),
    ("apigateway", "get_rest_api"): ("apigateway:GET",),
    ("apigateway", "get_resources"): ("apigateway:GET",),
    ("apigateway", "get_method"): ("apigateway:GET",),
    ("apigateway", "get_stage"): ("apigateway:GET",),
    ("apigateway", "get_deployment"): ("apigateway:GET",),
    ("apigateway", "get_deployments"): ("apigateway:GET",),
    ("apigateway", "get_domain_name"): ("apigateway:GET",),
    ("apigateway", "get_base_path_mappings"): ("apigateway:GET",),
    ("apigateway", "get_base_path_mapping"): ("apigateway:GET",),
    ("apigateway", "create_rest_api"): ("apigateway:POST", "apigateway:PUT"),
    ("apigateway", "create_resource"): ("apigateway:POST",),
    ("apigateway", "put_method"): ("apigateway:PUT",),
    ("apigateway", "put_integration"): ("apigateway:PUT",),
    ("apigateway", "delete_method"): ("apigateway:DELETE",),
    ("apigateway", "delete_resource"): ("apigateway:DELETE",),
    ("apigateway", "create_deployment"): ("apigateway:POST",),
    ("apigateway", "create_stage"): ("apigateway:POST", "apigateway:PUT"),
    ("apigateway", "update_stage"): ("apigateway:PATCH",),
    ("apigateway", "tag_resource"): ("apigateway:PUT",),
    ("apigateway", "delete_rest_api"): ("apigateway:DELETE",),
    ("apigateway", "create_domain_name"): ("apigateway:POST", "apigateway:PUT"),
    ("apigateway", "update_domain_name"): ("apigateway:PATCH",),
    ("apigateway", "delete_domain_name"): ("apigateway:DELETE",),
    ("apigateway", "create_base_path_mapping"): ("apigateway:POST",),
    ("apigateway", "update_base_path_mapping"): ("apigateway:PATCH",),
    ("apigateway", "delete_base_path_mapping"): ("apigateway:DELETE",),
    # ACM (steps/certificate.py)
    ("acm", "list_certificates"): ("acm:ListCertificates",),
    ("acm", "list_tags_for_certificate"): ("acm:ListTagsForCertificate",),
    ("acm", "describe_certificate"): ("acm:DescribeCertificate",),
    ("acm", "request_certificate"): ("acm:RequestCertificate", "acm:AddTagsToCertificate"),
    ("acm", "add_tags_to_certificate"): ("acm:AddTagsToCertificate",),
    ("acm", "delete_certificate"): ("acm:DeleteCertificate",),
    # Route 53 (steps/dns_zone.py, steps/certificate.py)
    ("route53", "list_hosted_zones_by_name"): ("route53:ListHostedZonesByName",),
    ("route53", "get_hosted_zone"): ("route53:GetHostedZone",),
    ("route53", "list_tags_for_resource"): ("route53:ListTagsForResource",),
    ("route53", "create_hosted_zone"): ("route53:CreateHostedZone",),
    ("route53", "change_tags_for_resource"): ("route53:ChangeTagsForResource",),
    ("route53", "list_resource_record_sets"): ("route53:ListResourceRecordSets",),
    ("route53", "change_resource_record_sets"): ("route53:ChangeResourceRecordSets",),
    ("route53", "delete_hosted_zone"): ("route53:DeleteHostedZone",),
    # Route 53 health checks, failover records, the region switch (steps/failover_records.py,
    # drkit/region_switch.py)
    ("route53", "list_health_checks"): ("route53:ListHealthChecks",),
    ("route53", "list_tags_for_resources"): ("route53:ListTagsForResources",),
    ("route53", "create_health_check"): ("route53:CreateHealthCheck",),
    ("route53", "update_health_check"): ("route53:UpdateHealthCheck",),
    ("route53", "delete_health_check"): ("route53:DeleteHealthCheck",),
    ("route53", "get_health_check_status"): ("route53:GetHealthCheckStatus",),
    ("route53", "get_change"): ("route53:GetChange",),
    ("route53", "test_dns_answer"): ("route53:TestDNSAnswer",),
    ("cloudwatch", "describe_alarms"): ("cloudwatch:DescribeAlarms",),
    ("cloudwatch", "list_tags_for_resource"): ("cloudwatch:ListTagsForResource",),
    ("cloudwatch", "put_metric_alarm"): ("cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"),
    ("cloudwatch", "tag_resource"): ("cloudwatch:TagResource",),
    ("cloudwatch", "delete_alarms"): ("cloudwatch:DeleteAlarms",),
    ("cloudwatch", "put_metric_data"): ("cloudwatch:PutMetricData",),
    ("cloudwatch", "get_dashboard"): ("cloudwatch:GetDashboard",),
    ("cloudwatch", "put_dashboard"): ("cloudwatch:PutDashboard",),
    ("cloudwatch", "delete_dashboards"): ("cloudwatch:DeleteDashboards",),
    # Alerts topics and their keys (steps/alerts.py). GetCallerIdentity needs no permission.
    ("sts", "get_caller_identity"): (),
    ("kms", "create_key"): ("kms:CreateKey", "kms:TagResource", "kms:PutKeyPolicy"),
    ("kms", "list_keys"): ("kms:ListKeys",),
    ("kms", "list_resource_tags"): ("kms:ListResourceTags",),
    ("kms", "get_key_policy"): ("kms:GetKeyPolicy",),
    ("kms", "put_key_policy"): ("kms:PutKeyPolicy",),
    ("kms", "get_key_rotation_status"): ("kms:GetKeyRotationStatus",),
    ("kms", "enable_key_rotation"): ("kms:EnableKeyRotation",),
    ("kms", "enable_key"): ("kms:EnableKey",),
    ("kms", "tag_resource"): ("kms:TagResource",),
    ("kms", "schedule_key_deletion"): ("kms:ScheduleKeyDeletion",),
    ("kms", "create_alias"): ("kms:CreateAlias",),
    ("kms", "update_alias"): ("kms:UpdateAlias",),
    ("kms", "delete_alias"): ("kms:DeleteAlias",),
    ("sns", "create_topic"): ("sns:CreateTopic", "sns:TagResource", "sns:SetTopicAttributes"),
    ("sns", "get_topic_attributes"): ("sns:GetTopicAttributes",),
    ("sns", "set_topic_attributes"): ("sns:SetTopicAttributes",),
    ("sns", "list_tags_for_resource"): ("sns:ListTagsForResource",),
    ("sns", "tag_resource"): ("sns:TagResource",),
    ("sns", "delete_topic"): ("sns:DeleteTopic",),
    ("sns", "list_subscriptions_by_topic"): ("sns:ListSubscriptionsByTopic",),
    ("sns", "subscribe"): ("sns:Subscribe",),
    ("sns", "unsubscribe"): ("sns:Unsubscribe",),
}

# Actions AWS authorizes on no resource type: the Resource element must be "*".
NEEDS_STAR_RESOURCE = frozenset({
    "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeInternetGateways", "ec2:DescribeAddresses",
    "ec2:DescribeNatGateways", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups", "ec2:DescribeVpcAttribute",
    "ec2:DescribeAvailabilityZones", "ec2:DescribeNetworkInterfaces",
    "rds:DescribeOrderableDBInstanceOptions",
    "kms:ListAliases",
    "cloudwatch:GetMetricStatistics",
    "acm:ListCertificates", "route53:ListHostedZonesByName", "route53:CreateHostedZone",
    "route53:ListHealthChecks", "route53:CreateHealthCheck", "route53:TestDNSAnswer", "cloudwatch:PutMetricData",
    "kms:CreateKey", "kms:ListKeys", "lambda:GetAccountSettings",
})
# Route 53 actions on health checks and changes rather than on the hosted zone.
ROUTE53_HEALTH_CHECK_ACTIONS = frozenset({
    "route53:ListTagsForResources", "route53:UpdateHealthCheck", "route53:DeleteHealthCheck",
    "route53:GetHealthCheckStatus", "route53:ChangeTagsForResource", "route53:ListTagsForResource",
})

# EC2 resources have no name known in advance: creates are allowed when they carry drkit's tags,
# everything else only on resources that already carry them.
EC2_CREATES = {
    "ec2:CreateVpc": "vpc", "ec2:CreateSubnet": "subnet", "ec2:CreateInternetGateway": "internet-gateway",
    "ec2:AllocateAddress": "elastic-ip", "ec2:CreateNatGateway": "natgateway", "ec2:CreateRouteTable": "route-table",
    "ec2:CreateSecurityGroup": "security-group",
}
EC2_ON_OWNED = (
    # the existing resources a create names (the VPC of a subnet, the subnet and EIP of a NAT)
    "ec2:CreateSubnet", "ec2:CreateRouteTable", "ec2:CreateSecurityGroup", "ec2:CreateNatGateway",
    "ec2:CreateTags", "ec2:ModifyVpcAttribute", "ec2:AttachInternetGateway", "ec2:DetachInternetGateway",
    "ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:AssociateRouteTable", "ec2:DisassociateRouteTable",
    "ec2:ReplaceRouteTableAssociation", "ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress", "ec2:DeleteRouteTable",
    "ec2:DeleteNatGateway", "ec2:ReleaseAddress", "ec2:DeleteInternetGateway", "ec2:DeleteSubnet", "ec2:DeleteVpc",
    "ec2:DeleteSecurityGroup",
)


def actions_for(service: str, operation: str) -> tuple[str, ...]:
    """The IAM actions of one boto3 call; KeyError for a call with no row (add it)."""
    return OPERATION_ACTIONS[(service, operation)]


def policy(config: Config, account_id: str = "*", *, dr_kms_key: str = "alias/aws/rds") -> dict[str, Any]:
    """The IAM policy document for `config`'s environment and regions."""
    names, regions = config.names, [config.primary_region, config.dr_region]
    p, acct = known_regions()[config.primary_region], account_id

    def arns(service: str, resource: str, in_regions: list[str] = regions) -> list[str]:
        return [f"arn:{p}:{service}:{r}:{acct}:{resource}" for r in in_regions]

    env_tags = {"aws:ResourceTag/ManagedBy": "drkit", "aws:ResourceTag/Environment": config.env}
    ec2_types = sorted(set(EC2_CREATES.values()))
    ec2_owned = [a for t in ec2_types for a in arns("ec2", f"{t}/*")]
    buckets = [f"arn:{p}:s3:::{names.bucket(role)}" for role in ("primary", "dr")]
    canaries = [f"{b}/drkit-canary/*" for b in buckets]
    role_arn = f"arn:{p}:iam::{acct}:role/{names.replication_role}"
    table_arns = arns("dynamodb", f"table/{names.dynamodb_table}")
    rds_resources = (
        [f"arn:{p}:rds::{acct}:global-cluster:{names.global_cluster}"]
        + [f"arn:{p}:rds:{config.region(role)}:{acct}:{kind}:{name}"
           for role in ("primary", "dr")
           for kind, name in (("cluster", names.aurora_cluster(role)), ("db", names.aurora_instance(role)),
                              ("subgrp", names.db_subnet_group(role)))]
    )
    # RDS also authorizes the defaults a create uses: parameter and option groups.
    rds_defaults = [a for kind in ("cluster-pg:default.*", "pg:default.*", "og:default:*") for a in arns("rds", kind)]
    secret_arns = arns("secretsmanager", f"secret:{names.db_secret}-??????")
    star = sorted(NEEDS_STAR_RESOURCE - {"cloudwatch:PutMetricData"})  # granted by namespace below

    statements: list[dict[str, Any]] = [
        _allow("ReadWithoutResourceTypes", star, ["*"]),
    ]
    for action, ec2_type in sorted(EC2_CREATES.items()):
        statements.append(_allow(
            f"Ec2{action.split(':')[1]}Tagged", [action], arns("ec2", f"{ec2_type}/*"),
            {"StringEquals": {"aws:RequestTag/ManagedBy": "drkit", "aws:RequestTag/Environment": config.env}},
        ))
    statements += [
        _allow("Ec2TagOnCreate", ["ec2:CreateTags"], ec2_owned,
               {"StringEquals": {"ec2:CreateAction": sorted(a.split(":")[1] for a in EC2_CREATES)}}),
        _allow("Ec2OnDrkitTagged", sorted(EC2_ON_OWNED), ec2_owned, {"StringEquals": env_tags}),
        _allow("Secret", sorted(_actions("secretsmanager")), secret_arns),
        _allow("Aurora", sorted(_actions("rds") - NEEDS_STAR_RESOURCE - _RDS_SNAPSHOT_ONLY), rds_resources),
        _allow("AuroraFailoverSnapshots", sorted(_RDS_SNAPSHOT_ACTIONS), _failover_snapshots(config, p, acct)),
        _allow("AuroraCreateDefaults", ["rds:CreateDBCluster", "rds:CreateDBInstance"], rds_defaults),
        _allow("DrKmsKeyDescribe", ["kms:DescribeKey"], *_kms_key(p, acct, config.dr_region, dr_kms_key)),
        # RDS itself creates grants on the key it encrypts with (an encrypted cross-region secondary).
        _allow("KmsGrantsForRds", ["kms:CreateGrant"], arns("kms", "key/*"),
               {"StringEquals": {"kms:ViaService": [f"rds.{r}.amazonaws.com" for r in regions]},
                "Bool": {"kms:GrantIsForAWSResource": "true"}}),
        _allow("GlobalTable", sorted(a for a in _actions("dynamodb") if a.startswith("dynamodb:")), table_arns),
        _allow("DynamoDbReplicationServiceLinkedRole", ["iam:CreateServiceLinkedRole"],
               [f"arn:{p}:iam::{acct}:role/aws-service-role/replication.dynamodb.amazonaws.com/"
                "AWSServiceRoleForDynamoDBReplication"],
               {"StringEquals": {"iam:AWSServiceName": "replication.dynamodb.amazonaws.com"}}),
        _allow("Buckets", sorted(a for a in _actions("s3") if a not in _S3_OBJECT_ACTIONS), buckets),
        _allow("BucketObjects", sorted(_S3_OBJECT_ACTIONS), [f"{b}/*" for b in buckets]),
        _allow("CanaryObjects", ["s3:PutObject", "s3:GetObject"], canaries),
        _allow("ReplicationRole", sorted(a for a in _actions("iam") if a not in _IAM_SPECIAL), [role_arn]),
        _allow("PassReplicationRoleToS3", ["iam:PassRole"], [role_arn],
               {"StringEquals": {"iam:PassedToService": "s3.amazonaws.com"}}),
        *_compute_statements(config, p, acct),
        *_state_statements(config, p),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def _state_statements(config: Config, p: str) -> list[dict[str, Any]]:
    """With `--state s3://...`: the home and replica buckets (HeadBucket, ListObjectsV2) and the
    objects under the prefix (the state, the lock, the audit log, the runbooks' journals)."""
    location = config.state_location
    if location is None:
        return []
    buckets = [f"arn:{p}:s3:::{b}" for b in (location.bucket, location.replica)]
    return [_allow("StateBuckets", ["s3:ListBucket"], buckets),
            _allow("StateObjects", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                   [f"{b}/{location.key('*')}" for b in buckets])]


def _failover_snapshots(config: Config, p: str, acct: str) -> list[str]:
    """The failback's snapshots, in each cluster's region: AWS's unplanned-failover snapshot of
    the old primary (the copy's source) and drkit's manual copy of it. CopyDBClusterSnapshot
    authorizes on cluster-snapshot ARNs only; with Tags it also needs rds:AddTagsToResource."""
    from drkit.runbook.aurora_actions import FAILOVER_SNAPSHOT_PREFIX, KEPT_SNAPSHOT_PREFIX

    return [f"arn:{p}:rds:{config.region(role)}:{acct}:cluster-snapshot:{prefix}-{config.names.aurora_cluster(role)}-*"
            for role in ("primary", "dr") for prefix in (FAILOVER_SNAPSHOT_PREFIX, KEPT_SNAPSHOT_PREFIX)]


def _compute_statements(config: Config, p: str, acct: str) -> list[dict[str, Any]]:
    """The payment Lambdas, their log groups and roles, the REST APIs and custom domains, the
    certificates and the hosted zone, each on drkit's names (ids AWS picks: in drkit's regions)."""
    names, roles = config.names, ("primary", "dr")
    lambda_roles = [f"arn:{p}:iam::{acct}:role/{names.lambda_role(role)}" for role in roles]
    log_groups = [f"arn:{p}:logs:{config.region(role)}:{acct}:log-group:{names.lambda_log_group(role)}{suffix}"
                  for role in roles for suffix in ("", ":*")]
    functions = [f"arn:{p}:lambda:{config.region(role)}:{acct}:function:{names.lambda_function(role)}" for role in roles]
    regions = [config.region(role) for role in roles]
    gateway = [f"arn:{p}:apigateway:{r}::{path}" for r in regions
               for path in ("/restapis", "/restapis/*", "/domainnames", "/domainnames/*", "/tags/*")]
    lambda_actions = sorted(_actions("lambda") - NEEDS_STAR_RESOURCE)
    return [
        _allow("LambdaLogGroups", sorted(_actions("logs") - {"logs:DescribeLogGroups"}), log_groups),
        _allow("DescribeLogGroups", ["logs:DescribeLogGroups"],
               [f"arn:{p}:logs:{r}:{acct}:log-group:*" for r in regions]),
        _allow("LambdaExecutionRoles", sorted(a for a in _actions("iam") if a not in _IAM_SPECIAL), lambda_roles),
        _allow("PassExecutionRolesToLambda", ["iam:PassRole"], lambda_roles,
               {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}),
        _allow("PaymentFunctions", lambda_actions, functions),
        _allow("RestApisAndDomains", sorted(_actions("apigateway")), gateway),
        _allow("Certificates", sorted(_actions("acm") - NEEDS_STAR_RESOURCE),
               [f"arn:{p}:acm:{r}:{acct}:certificate/*" for r in regions]),
        _allow("HostedZone", sorted(_actions("route53") - NEEDS_STAR_RESOURCE - {"route53:GetChange"}
                                    - (ROUTE53_HEALTH_CHECK_ACTIONS - {"route53:ChangeTagsForResource",
                                                                        "route53:ListTagsForResource"})),
               [f"arn:{p}:route53:::hostedzone/*"]),
        *_traffic_statements(config, p, acct),
    ]


def _traffic_statements(config: Config, p: str, acct: str) -> list[dict[str, Any]]:
    """Health checks (ids AWS picks), Route 53 changes, the region-switch alarm by name and the
    metric the runbook publishes, by its namespace (PutMetricData has no resource type)."""
    switch = f"arn:{p}:cloudwatch:{config.dr_region}:{acct}:alarm:drkit-region-switch-{config.env}"
    from steps.failover_records import route53_region  # the health-check alarms' region

    regions = sorted({config.primary_region, config.dr_region, route53_region(config)})
    alarms = [f"arn:{p}:cloudwatch:{r}:{acct}:alarm:drkit-{role}-*-{config.env}" for r in regions
              for role in ("primary", "dr")]
    dashboards = [f"arn:{p}:cloudwatch::{acct}:dashboard/drkit-{role}-{config.env}" for role in ("primary", "dr")]
    topics = [f"arn:{p}:sns:{config.region(role)}:{acct}:{config.names.sns_topic(role)}" for role in ("primary", "dr")]
    keys = [f"arn:{p}:kms:{config.region(role)}:{acct}:key/*" for role in ("primary", "dr")]
    aliases = [f"arn:{p}:kms:{config.region(role)}:{acct}:alias/drkit-alerts-{role}-{config.env}"
               for role in ("primary", "dr")]
    alarm_actions = sorted(a for a in _actions("cloudwatch") if a not in NEEDS_STAR_RESOURCE and "Dashboard" not in a)
    key_actions = sorted(a for a in _actions("kms") if a not in NEEDS_STAR_RESOURCE
                         and a not in ("kms:DescribeKey", "kms:CreateGrant"))
    return [
        _allow("Alarms", alarm_actions, alarms),
        _allow("Dashboards", sorted(a for a in _actions("cloudwatch") if "Dashboard" in a), dashboards),
        _allow("AlertsTopics", sorted(_actions("sns")), topics),
        # Keys have ids AWS picks: only those tagged as drkit's for this env; DescribeKey by alias.
        _allow("AlertsKeys", key_actions, keys, {"StringEquals": {"aws:ResourceTag/ManagedBy": "drkit",
                                                                "aws:ResourceTag/Environment": config.env}}),
        _allow("AlertsKeysByAlias", ["kms:DescribeKey", "kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
               aliases + keys),
        _allow("HealthChecks", sorted(ROUTE53_HEALTH_CHECK_ACTIONS), [f"arn:{p}:route53:::healthcheck/*"]),
        _allow("Route53Changes", ["route53:GetChange"], [f"arn:{p}:route53:::change/*"]),
        _allow("RegionSwitchAlarm", alarm_actions, [switch]),
        _allow("RegionSwitchMetric", ["cloudwatch:PutMetricData"], ["*"],
               {"StringEquals": {"cloudwatch:namespace": "drkit/RegionSwitch"}}),
    ]


# Object-level S3 actions (resource bucket/key): deleting versions while emptying a bucket.
_S3_OBJECT_ACTIONS = frozenset({"s3:DeleteObject", "s3:DeleteObjectVersion"})
_S3_CANARY_ACTIONS = frozenset({"s3:PutObject", "s3:GetObject"})
_IAM_SPECIAL = frozenset({"iam:PassRole", "iam:CreateServiceLinkedRole"})
# The runbooks' snapshot actions, on snapshot ARNs; DescribeDBClusterSnapshots also on the clusters
# (asked by DBClusterIdentifier).
_RDS_SNAPSHOT_ACTIONS = frozenset({"rds:CopyDBClusterSnapshot", "rds:DescribeDBClusterSnapshots",
                                   "rds:AddTagsToResource"})
_RDS_SNAPSHOT_ONLY = frozenset({"rds:CopyDBClusterSnapshot"})


def _actions(service: str) -> set[str]:
    """Every action of `service` the table maps any call to, without those granted elsewhere."""
    found = {a for actions in OPERATION_ACTIONS.values() for a in actions if a.startswith(f"{service}:")}
    if service == "s3":
        found -= _S3_CANARY_ACTIONS
    return found


def _kms_key(partition: str, account: str, region: str, key: str) -> tuple[list[str], dict[str, Any] | None]:
    """DescribeKey on the DR key: by alias (kms:RequestAlias), or by its ARN or id."""
    if key.startswith("alias/"):
        return [f"arn:{partition}:kms:{region}:{account}:key/*"], {"StringEquals": {"kms:RequestAlias": key}}
    if key.startswith("arn:"):
        return [key], None
    return [f"arn:{partition}:kms:{region}:{account}:key/{key}"], None


def _allow(sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def allowed_actions(document: dict[str, Any]) -> set[str]:
    """Every action some Allow statement of `document` names."""
    return {a for s in document["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}
