"""drkit's steps, one module per family of resources, in pipeline order.

A newcomer looking for the step that owns a resource: `steps/vpc.py` has `EnsureVpc` (VPC,
subnets, gateways, routing), `steps/security_groups.py` the Aurora and Lambda security groups,
`steps/secrets.py` the database master secret, `steps/aurora.py` the Aurora global database
(`EnsureGlobalCluster`, `EnsureReplica`), `steps/dynamodb.py` the DynamoDB global table
(`EnsureGlobalTable`; its wanted settings and pure helpers in `steps/dynamodb_settings.py`),
`steps/s3.py` the buckets (`EnsureBucket`) and `steps/s3_replication.py` their replication
(`EnsureReplicationRole`, `EnsureBucketReplication`, with the canary deep verify), both built on
`steps/s3_common.py` (`steps/s3.py` re-exports the replication names), `steps/lambda_function.py`
the payment Lambda (`EnsureFunction`, with its log group and role), `steps/rest_api.py` its REST API,
`steps/dns_zone.py` the public hosted zone, `steps/certificate.py` each region's ACM certificate
and `steps/custom_domain.py` each region's API custom domain, `steps/failover_records.py` the
Route 53 health checks, region-switch alarm and failover records (`EnsureFailoverRecords`),
`steps/alerts.py` each region's KMS-encrypted alerts topic, `steps/alarms.py` the CloudWatch
alarms and `steps/dashboards.py` each region's dashboard. `all_steps()` is the pipeline; the engine
orders and parallelises it by each step's `depends_on()`, so a new family appends its steps here
and needs no engine change.
"""

from __future__ import annotations

from drkit.step import Step
from steps.alarms import EnsureAlarms
from steps.alerts import EnsureAlerts
from steps.aurora import EnsureGlobalCluster, EnsureReplica
from steps.certificate import EnsureCertificate
from steps.custom_domain import EnsureCustomDomain
from steps.dashboards import EnsureDashboard
from steps.dns_zone import EnsureHostedZone
from steps.dynamodb import EnsureGlobalTable
from steps.failover_records import EnsureFailoverRecords
from steps.lambda_function import EnsureFunction
from steps.rest_api import EnsureRestApi
from steps.s3 import EnsureBucket, EnsureBucketReplication, EnsureReplicationRole
from steps.secrets import EnsureDbSecret
from steps.security_groups import EnsureSecurityGroups
from steps.vpc import EnsureVpc


def all_steps() -> list[Step]:
    return [
        EnsureVpc("primary"),
        EnsureVpc("dr"),
        EnsureSecurityGroups("primary"),
        EnsureSecurityGroups("dr"),
        EnsureDbSecret("global"),
        EnsureGlobalCluster("primary"),
        EnsureReplica("dr"),
        EnsureGlobalTable("global"),
        EnsureBucket("primary"),
        EnsureBucket("dr"),
        EnsureReplicationRole("global"),
        EnsureBucketReplication("global"),
        EnsureFunction("primary"),
        EnsureFunction("dr"),
        EnsureRestApi("primary"),
        EnsureRestApi("dr"),
        EnsureHostedZone("global"),
        EnsureCertificate("primary"),
        EnsureCertificate("dr"),
        EnsureCustomDomain("primary"),
        EnsureCustomDomain("dr"),
        EnsureFailoverRecords("global"),
        EnsureAlerts("primary"),
        EnsureAlerts("dr"),
        EnsureAlarms("primary"),
        EnsureAlarms("dr"),
        EnsureDashboard("primary"),
        EnsureDashboard("dr"),
    ]
