"""ensure_security_groups: one region's security groups for Aurora and for the payment Lambdas.

The Aurora group admits PostgreSQL (TCP 5432) from the region's VPC CIDR and nothing else, and
has no egress rule: security groups are stateful, so answers to its clients need none, and drkit
uses no Aurora feature that calls out. The allow-all egress rule AWS gives every new group is
revoked at creation (as terraform-provider-aws does for aws_security_group) and again whenever it
reappears. The Lambda group has no ingress and keeps that egress rule: Lambdas reach AWS APIs
through the NAT. Rules are compared exactly, so an added rule is drift that provision revokes,
just as a missing one is authorized again. A create or authorize whose answer was lost is judged
by a fresh read, never resent blindly.

Teardown runs after the Aurora and Lambda steps (they depend on this one). A group stays in use
while any network interface carries it, so deletion waits for interfaces that are going away --
Lambda's hyperplane ENIs linger 20-40 minutes after their function is gone, RDS's briefly after
their instance -- and fails at once, naming them, for interfaces something else still uses.
"""

from __future__ import annotations

import json
from typing import Any

from drkit.ec2 import SECURITY_GROUP, Found, duplicate_ids, find_created, find_owned
from drkit.retries import in_use
from drkit.errors import AwsCallError, DrkitError
from drkit.step import Change, Desired, Observation, Observed, Step, StepContext, known
from drkit.tags import tag_specifications, to_aws

POSTGRES_PORT = 5432
ALL_TRAFFIC = "-1"
ANYWHERE = "0.0.0.0/0"
AURORA = "aurora-sg"
LAMBDA = "lambda-sg"

# AWS adds this egress rule to every security group it creates in a VPC.
# https://docs.aws.amazon.com/vpc/latest/userguide/default-security-group.html
DEFAULT_EGRESS = {"protocol": ALL_TRAFFIC, "from_port": None, "to_port": None, "source": ANYWHERE}

# EC2's answer to authorizing a rule the group already has, and to revoking one it lacks.
RULE_EXISTS = "InvalidPermission.Duplicate"
RULE_GONE = "InvalidPermission.NotFound"
GROUP_GONE = "InvalidGroup.NotFound"
# An ENI (RDS, Lambda hyperplane) still attached to the group: EC2 refuses the delete until it is gone.
STILL_IN_USE = (in_use("DependencyViolation", "InvalidGroup.InUse"),)


def rule(protocol: str, source: str, from_port: int | None = None, to_port: int | None = None) -> dict[str, Any]:
    """One permission for one source, the unit drkit compares (descriptions are not compared)."""
    return {"protocol": protocol, "from_port": from_port, "to_port": to_port, "source": source}


def rules_of(permissions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """EC2's IpPermissions flattened to one rule per source, sorted, so equal sets compare equal."""
    rules = []
    for permission in permissions:
        protocol = str(permission.get("IpProtocol"))
        ports = (None, None) if protocol == ALL_TRAFFIC else (permission.get("FromPort"), permission.get("ToPort"))
        sources = (
            [r["CidrIp"] for r in permission.get("IpRanges", [])]
            + [r["CidrIpv6"] for r in permission.get("Ipv6Ranges", [])]
            + [p["GroupId"] for p in permission.get("UserIdGroupPairs", [])]
            + [p["PrefixListId"] for p in permission.get("PrefixListIds", [])]
        )
        rules += [rule(protocol, source, *ports) for source in sources]
    return sorted_rules(rules)


def sorted_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rules, key=lambda r: json.dumps(r, sort_keys=True))


def permission_for(one: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    """The IpPermissions entry that grants (or revokes) exactly one rule."""
    permission: dict[str, Any] = {"IpProtocol": one["protocol"]}
    if one["from_port"] is not None:
        permission.update(FromPort=one["from_port"], ToPort=one["to_port"])
    source = one["source"]
    extra = {"Description": description} if description else {}
    if source.startswith("sg-"):
        permission["UserIdGroupPairs"] = [{"GroupId": source, **extra}]
    elif source.startswith("pl-"):
        permission["PrefixListIds"] = [{"PrefixListId": source, **extra}]
    elif ":" in source:
        permission["Ipv6Ranges"] = [{"CidrIpv6": source, **extra}]
    else:
        permission["IpRanges"] = [{"CidrIp": source, **extra}]
    return permission


class EnsureSecurityGroups(Step):
    name = "ensure_security_groups"

    KEYS = [AURORA, LAMBDA]

    def depends_on(self) -> tuple[str, ...]:
        return (f"ensure_vpc:{self.role}",)

    def reads(self) -> dict[str, tuple[str, ...]]:
        # A security group needs its VPC's id, not the NAT gateway or routes of that step.
        return {f"ensure_vpc:{self.role}": ("vpc_id",)}

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        found = find_owned(ctx, SECURITY_GROUP, self.KEYS)
        return Observation({key: self._observed(item) for key, item in found.items()}, duplicates=duplicate_ids(found))

    def _observed(self, found: Found) -> Observed:
        raw = found.raw
        attrs = {
            "vpc_id": raw["VpcId"],
            "ingress": rules_of(raw.get("IpPermissions", [])),
            "egress": rules_of(raw.get("IpPermissionsEgress", [])),
        }
        return Observed("security_group", found.key, raw["GroupId"], attrs=attrs, tags=found.tags, owned=found.owned)

    # Decide --------------------------------------------------------------------------------
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        vpc_id = ctx.dependency_output(f"ensure_vpc:{self.role}", "vpc_id")
        ingress = {
            AURORA: [rule("tcp", ctx.config.networks[self.role].vpc_cidr, POSTGRES_PORT, POSTGRES_PORT)],
            LAMBDA: [],
        }
        egress = {AURORA: [], LAMBDA: [DEFAULT_EGRESS]}
        resources = []
        for key in self.KEYS:
            name = self._group_name(ctx, key)
            attrs = known({"vpc_id": vpc_id, "ingress": sorted_rules(ingress[key]), "egress": egress[key]})
            resources.append(Desired("security_group", key, name, attrs, ctx.tags_for(key, name), frozenset({"vpc_id"})))
        return resources

    def _group_name(self, ctx: StepContext, key: str) -> str:
        return ctx.config.names.security_group(self.role, key.removesuffix("-sg"))

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {
            "aurora_security_group_id": ctx.recorded_id(AURORA),
            "lambda_security_group_id": ctx.recorded_id(LAMBDA),
        }

    # Apply ---------------------------------------------------------------------------------
    def create_security_group(self, ctx: StepContext, change: Change) -> None:
        vpc_id = ctx.dependency_output(f"ensure_vpc:{self.role}", "vpc_id")
        if not vpc_id:
            raise DrkitError(f"{self.key}: the VPC of ensure_vpc:{self.role} must exist first")
        description = {
            AURORA: "Aurora PostgreSQL: TCP 5432 from this VPC only",
            LAMBDA: "Payment Lambda functions: outbound only",
        }[change.key]
        group_id = ctx.call(
            "ec2", "create_security_group", GroupName=change.name, Description=description, VpcId=vpc_id,
            TagSpecifications=tag_specifications(SECURITY_GROUP.resource_type, ctx.tags_for(change.key, change.name)),
            settled=lambda: self._created(ctx, change.key), resource=change.name,
        )["GroupId"]
        ctx.record(change.key, "security_group", group_id)
        self._converge_rules(ctx, group_id, "ingress", change.expected["ingress"], [])
        self._converge_rules(ctx, group_id, "egress", change.expected["egress"], [DEFAULT_EGRESS])

    def _created(self, ctx: StepContext, key: str) -> dict[str, Any] | None:
        """`settled` for CreateSecurityGroup: the group carrying this key's tags, as its answer."""
        found = find_created(ctx, SECURITY_GROUP, key)
        return {"GroupId": found["GroupId"]} if found else None

    def _has_rule(self, ctx: StepContext, group_id: str, direction: str, one: dict[str, Any]) -> dict | None:
        """`settled` for an authorize: the group has the rule now."""
        found = ctx.call("ec2", "describe_security_groups", GroupIds=[group_id], missing_ok=GROUP_GONE)
        groups = (found or {}).get("SecurityGroups", [])
        field = "IpPermissions" if direction == "ingress" else "IpPermissionsEgress"
        return {"Return": True} if groups and one in rules_of(groups[0].get(field, [])) else None

    def update_security_group(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            ctx.call("ec2", "create_tags", Resources=[change.resource_id], Tags=to_aws(change.expected),
                     resource=change.resource_id)
            return
        self._converge_rules(ctx, change.resource_id, change.attribute, change.expected, change.actual or [])

    def _converge_rules(self, ctx: StepContext, group_id: str, direction: str, wanted: list, current: list) -> None:
        """Revoke what is not wanted, then authorize what is missing (one rule per call).

        `direction` is "ingress" or "egress". EC2 reads are eventually consistent, so a rule
        added a moment ago may be missing from `current`: EC2 then answers that it already
        exists, which is what was wanted. Revoking a rule that is already gone is done too.
        https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html
        """
        for extra in (r for r in current if r not in wanted):
            ctx.call("ec2", f"revoke_security_group_{direction}", GroupId=group_id,
                     IpPermissions=[permission_for(extra)], missing_ok=RULE_GONE, resource=group_id)
        for missing in (r for r in wanted if r not in current):
            try:
                # After a lost answer, a resend's InvalidPermission.Duplicate is judged by the read.
                ctx.call("ec2", f"authorize_security_group_{direction}", GroupId=group_id,
                         IpPermissions=[permission_for(missing, "managed by drkit")],
                         settled=lambda one=missing: self._has_rule(ctx, group_id, direction, one), resource=group_id)
            except AwsCallError as exc:
                # Without a lost answer, EC2 saying the rule exists is authoritative (a stale read).
                if exc.code != RULE_EXISTS:
                    raise

    # Delete --------------------------------------------------------------------------------
    def delete_security_group(self, ctx: StepContext, change: Change) -> None:
        group_id = change.resource_id
        ctx.waiter.until(
            f"network interfaces using security group {group_id} in {ctx.region} to be gone",
            lambda: ctx.aws.paginate("ec2", ctx.region, "describe_network_interfaces", "NetworkInterfaces",
                                     Filters=[{"Name": "group-id", "Values": [group_id]}]),
            lambda interfaces: not interfaces,
            describe=lambda interfaces: ", ".join(f"{i['NetworkInterfaceId']} ({eni_owner(i)}, {i.get('Status')})"
                                                  for i in interfaces) + " still there",
            failed=lambda interfaces: blocking_reason(interfaces),
        )
        ctx.call("ec2", "delete_security_group", GroupId=group_id, missing_ok=GROUP_GONE, not_yet=STILL_IN_USE,
                 resource=group_id)


def eni_owner(interface: dict[str, Any]) -> str:
    """What an interface belongs to, in a few words, for progress lines and errors."""
    attachment = interface.get("Attachment") or {}
    description = interface.get("Description") or interface.get("InterfaceType") or "no description"
    return f"instance {attachment['InstanceId']}: {description!r}" if attachment.get("InstanceId") else repr(description)


def is_going_away(interface: dict[str, Any]) -> bool:
    """Whether an interface can be expected to go by itself: one no longer attached (available,
    detaching), or one a Lambda (hyperplane ENIs: 20-40 minutes after the function is deleted)
    or RDS manages, whose owners drkit deleted before this group (they depend on it).
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-enis"""
    attachment = interface.get("Attachment") or {}
    if interface.get("Status") == "available" or attachment.get("Status") in ("detaching", "detached"):
        return True
    description = interface.get("Description") or ""
    if interface.get("InterfaceType") == "lambda" or description.startswith("AWS Lambda VPC ENI"):
        return True
    return interface.get("RequesterId") == "amazon-rds" or description == "RDSNetworkInterface"


def blocking_reason(interfaces: list[dict[str, Any]]) -> str | None:
    """Why waiting is pointless: interfaces in use by something drkit is not deleting."""
    blocking = [i for i in interfaces if not is_going_away(i)]
    if not blocking:
        return None
    named = "; ".join(f"{i['NetworkInterfaceId']} ({eni_owner(i)})" for i in blocking)
    return (f"it is still used by network interface(s) that drkit is not deleting: {named}; "
            "detach them from the group or delete what uses them, then re-run")
