"""How long AWS usually takes in each transitional state drkit waits on, and where that figure
comes from. One table, read by three users: the sandbox's `aws` timing profile (scaled down),
the waiters' progress lines ("AWS usually takes ~10 min"), and bench/critical_path.py's model.

The figures are typical, not guarantees: AWS publishes few durations, so most come from
widely reported measurements (terraform-provider-aws acceptance runs, AWS blog posts). Each
`source` says which.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TypicalDuration:
    key: str
    what: str  # the state drkit waits out
    seconds: float  # typical on AWS
    sandbox_field: str | None  # the SandboxTimings field that emulates it (None: not emulated yet)
    source: str
    match: tuple[str, ...] = ()  # words in a waiter's `what` that name this wait


AWS_TYPICAL: tuple[TypicalDuration, ...] = (
    TypicalDuration("nat_pending", "NAT gateway pending -> available", 90, "nat_pending",
                    "AWS VPC guide, NAT gateways (state `pending` until ready); terraform-provider-aws "
                    "acceptance runs report 1-2 min", ("NAT gateway", "available")),
    TypicalDuration("nat_deleting", "NAT gateway deleting -> deleted", 60, "nat_deleting",
                    "AWS VPC guide, Delete a NAT gateway ('can take a few minutes'); reported ~1 min",
                    ("NAT gateway", "deleted")),
    TypicalDuration("aurora_global_creating", "Aurora global cluster creating", 30, None,
                    "CreateGlobalCluster without a source cluster is metadata only; reported < 1 min",
                    ("global cluster", "available")),
    TypicalDuration("aurora_cluster_creating", "Aurora primary cluster creating", 300, "rds_creating",
                    "AWS Aurora guide, Creating a DB cluster; reported 3-6 min without instances",
                    ("cluster", "available")),
    TypicalDuration("aurora_instance_creating", "Aurora instance creating", 600, "rds_creating",
                    "AWS Aurora guide, DB instance status `creating`; reported 8-12 min for db.r5.large",
                    ("instance", "available")),
    TypicalDuration("aurora_secondary_creating", "Aurora secondary cluster creating (storage copy)", 900,
                    "rds_creating", "AWS Aurora guide, Adding a Region to a global database; reported "
                    "10-20 min for an empty database", ()),
    TypicalDuration("aurora_detach", "Aurora secondary detach + promote", 180, "rds_promoting",
                    "AWS Aurora guide, Removing a cluster from a global database; reported 1-5 min",
                    ("Aurora cluster", "to leave")),
    TypicalDuration("aurora_global_switchover", "Aurora global database switchover", 120, "rds_switchover",
                    "AWS Aurora guide, Using switchover or failover in Aurora Global Database: 'RTO can be "
                    "in the order of minutes'; the database 'is unavailable for a short time' while the "
                    "clusters assume their new roles", ("global database", "switchover")),
    TypicalDuration("aurora_global_failover", "Aurora global database managed failover (AllowDataLoss)", 120,
                    "rds_switchover", "AWS Aurora guide, Performing managed failovers for Aurora global "
                    "databases: 'Typically, the chosen secondary cluster assumes the primary role within a "
                    "few minutes'", ("global database", "failover")),
    TypicalDuration("aurora_instance_deleting", "Aurora instance deleting", 480, "rds_deleting",
                    "AWS Aurora guide, DB instance status `deleting`; reported 5-10 min",
                    ("instance", "gone")),
    TypicalDuration("aurora_cluster_deleting", "Aurora cluster deleting", 120, "rds_deleting",
                    "terraform-provider-aws raised rds_cluster delete timeout past 5 min (hashicorp/"
                    "terraform#7604); reported 1-3 min without instances", ("cluster", "gone")),
    TypicalDuration("dynamodb_replica_creating", "DynamoDB replica creating (empty table)", 480,
                    "dynamodb_replica_creating", "AWS DynamoDB guide, global tables 2019.11.21: adding a "
                    "replica 'can take several minutes'; reported 5-15 min", ("replica", "ACTIVE")),
    TypicalDuration("dynamodb_replica_deleting", "DynamoDB replica deleting", 240, "dynamodb_replica_deleting",
                    "AWS DynamoDB guide, removing a replica; reported 2-5 min", ("DynamoDB table", "deleted")),
    TypicalDuration("lambda_pending_vpc", "Lambda in a VPC: Pending -> Active", 90, None,
                    "AWS Compute blog 'Announcing improved VPC networking for AWS Lambda functions' "
                    "(2019): Hyperplane ENI creation, typically up to 90 s", ("Lambda", "Active")),
    TypicalDuration("lambda_eni_release", "Lambda VPC ENI release after delete", 1200, None,
                    "AWS Lambda guide, VPC networking ('can take up to 20 minutes' to delete ENIs); "
                    "terraform-provider-aws security group delete timeouts", ("network interface",)),
    TypicalDuration("acm_dns_validation", "ACM certificate DNS validation", 300, None,
                    "AWS ACM guide, DNS validation ('can take up to 30 minutes'); reported 2-5 min",
                    ("certificate", "ISSUED")),
    TypicalDuration("route53_insync", "Route 53 change PENDING -> INSYNC", 60, None,
                    "AWS Route 53 guide, Editing records: 'Changes generally propagate to all Route 53 "
                    "name servers within 60 seconds'", ("INSYNC",)),
)

BY_KEY = {d.key: d for d in AWS_TYPICAL}


def typical_for(what: str) -> TypicalDuration | None:
    """The table entry whose words all appear in a waiter's description (the most specific)."""
    lowered = what.lower()
    hits = [d for d in AWS_TYPICAL if d.match and all(word.lower() in lowered for word in d.match)]
    return max(hits, key=lambda d: sum(len(w) for w in d.match), default=None)


def human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    return f"{round(seconds / 60, 1):g} min"
