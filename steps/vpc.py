"""ensure_vpc: one region's network, as the seed specifies it.

VPC (DNS support and hostnames on), three private subnets in three distinct AZs, one public
subnet, an internet gateway, an Elastic IP and a NAT gateway in the public subnet, a public route
table (0.0.0.0/0 -> IGW) and a private one (0.0.0.0/0 -> NAT), every subnet associated.
Teardown order is the one AWS accepts: route tables, NAT (and wait until it is deleted), its EIP,
the IGW (detached first), subnets, VPC.
"""

from __future__ import annotations

import uuid
from typing import Any

from drkit.ec2 import ELASTIC_IP, INTERNET_GATEWAY, NAT_GATEWAY, ROUTE_TABLE, SUBNET, VPC, Ec2Kind, Found, duplicate_ids, find_owned
from drkit.retries import in_use
from drkit.errors import DrkitError
from drkit.step import (
    ABSENT, AVAILABLE, DELETING, FAILED, PENDING, Change, Desired, Observation, Observed, Step, StepContext,
)
from drkit.tags import tag_specifications, to_aws

PRIVATE_SUBNETS = ("private-subnet-1", "private-subnet-2", "private-subnet-3")
PUBLIC_SUBNET = "public-subnet"
DEFAULT_ROUTE = "0.0.0.0/0"
NAT_STATUS = {"pending": PENDING, "available": AVAILABLE, "failed": FAILED, "deleting": DELETING, "deleted": ABSENT}

# EC2 retries errors that only mean "a dependent is still going away" (eventual consistency).
STILL_IN_USE = (in_use("DependencyViolation", "InvalidIPAddress.InUse"),)


def assign_zones(available: list[str], observed: dict[str, str | None]) -> dict[str, str]:
    """Zones for the subnets: keep existing subnets where they are, spread new private ones.

    Pure. The three private subnets must land in three distinct AZs; the public subnet goes
    with private-subnet-1 (the NAT lives there).
    """
    zones = {k: z for k, z in observed.items() if z}
    for key in PRIVATE_SUBNETS:
        if key in zones:
            continue
        used = {zones[k] for k in PRIVATE_SUBNETS if k in zones}
        free = [z for z in available if z not in used]
        if not free:
            raise DrkitError(
                f"the region offers only {len(available)} usable availability zone(s); "
                "drkit needs 3 distinct ones for the private subnets"
            )
        zones[key] = free[0]
    zones.setdefault(PUBLIC_SUBNET, zones[PRIVATE_SUBNETS[0]])
    return zones


class EnsureVpc(Step):
    name = "ensure_vpc"

    KINDS: tuple[Ec2Kind, ...] = (VPC, SUBNET, INTERNET_GATEWAY, ELASTIC_IP, NAT_GATEWAY, ROUTE_TABLE)
    KEYS = {
        "vpc": ["vpc"],
        "subnet": [*PRIVATE_SUBNETS, PUBLIC_SUBNET],
        "internet_gateway": ["internet-gateway"],
        "elastic_ip": ["nat-eip"],
        "nat_gateway": ["nat-gateway"],
        "route_table": ["public-route-table", "private-route-table"],
    }

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        found: dict[str, Found] = {}
        for kind in self.KINDS:
            found.update(find_owned(ctx, kind, self.KEYS[kind.kind]))
        resources = {key: self._observed(ctx, key, item) for key, item in found.items()}
        facts: dict[str, Any] = {}
        subnet_keys = self.KEYS["subnet"]
        if any(k not in resources for k in subnet_keys):
            facts["zones"] = self._available_zones(ctx)
        return Observation(resources, facts, duplicate_ids(found))

    def _available_zones(self, ctx: StepContext) -> list[str]:
        response = ctx.call(
            "ec2", "describe_availability_zones",
            Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}],
        )
        return sorted(z["ZoneName"] for z in response["AvailabilityZones"])

    def _observed(self, ctx: StepContext, key: str, found: Found) -> Observed:
        raw = found.raw
        kind = next(k for k, keys in self.KEYS.items() if key in keys)
        status = AVAILABLE
        attrs: dict[str, Any]
        if kind == "vpc":
            vpc_id = raw["VpcId"]
            attrs = {
                "cidr_block": raw["CidrBlock"],
                "enable_dns_support": self._vpc_attribute(ctx, vpc_id, "enableDnsSupport"),
                "enable_dns_hostnames": self._vpc_attribute(ctx, vpc_id, "enableDnsHostnames"),
            }
            resource_id = vpc_id
        elif kind == "subnet":
            attrs = {"cidr_block": raw["CidrBlock"], "availability_zone": raw["AvailabilityZone"], "vpc_id": raw["VpcId"]}
            resource_id = raw["SubnetId"]
        elif kind == "internet_gateway":
            attached = [a["VpcId"] for a in raw.get("Attachments", []) if a.get("State") in ("available", "attached")]
            attrs = {"attached_vpc_id": attached[0] if attached else None}
            resource_id = raw["InternetGatewayId"]
        elif kind == "elastic_ip":
            attrs = {"domain": raw.get("Domain")}
            resource_id = raw["AllocationId"]
        elif kind == "nat_gateway":
            addresses = raw.get("NatGatewayAddresses", [])
            attrs = {"subnet_id": raw["SubnetId"], "allocation_id": addresses[0].get("AllocationId") if addresses else None}
            status = NAT_STATUS.get(raw.get("State", ""), AVAILABLE)
            resource_id = raw["NatGatewayId"]
        else:  # route_table
            attrs = {
                "vpc_id": raw["VpcId"],
                "default_route": _default_route_target(raw),
                "associated_subnets": sorted(
                    a["SubnetId"] for a in raw.get("Associations", []) if a.get("SubnetId") and not a.get("Main")
                ),
            }
            resource_id = raw["RouteTableId"]
        return Observed(kind, key, resource_id, status, attrs, found.tags, found.owned)

    def _vpc_attribute(self, ctx: StepContext, vpc_id: str, attribute: str) -> bool:
        response = ctx.call("ec2", "describe_vpc_attribute", VpcId=vpc_id, Attribute=attribute)
        field = attribute[0].upper() + attribute[1:]
        return bool(response[field]["Value"])

    # Decide (pure, given the observation) ----------------------------------------------------
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        plan = ctx.config.networks[self.role]
        names = ctx.config.names

        def ref(key: str) -> str:
            """The id of a resource, or a placeholder for one that does not exist yet."""
            return observation.id_of(key) or f"<new {key}>"

        def desired(kind: str, key: str, name: str, attrs: dict, immutable: tuple = ()) -> Desired:
            return Desired(kind, key, name, attrs, ctx.tags_for(key, name), frozenset(immutable))

        zones = assign_zones(
            observation.facts.get("zones", []),
            {k: observation.get(k).attrs.get("availability_zone") for k in self.KEYS["subnet"] if observation.id_of(k)},
        )
        vpc_name = names.vpc(self.role)
        resources = [
            desired("vpc", "vpc", vpc_name,
                    {"cidr_block": plan.vpc_cidr, "enable_dns_support": True, "enable_dns_hostnames": True},
                    immutable=("cidr_block",)),
        ]
        subnet_cidrs = dict(zip(PRIVATE_SUBNETS, plan.private_subnet_cidrs)) | {PUBLIC_SUBNET: plan.public_subnet_cidr}
        for key, cidr in subnet_cidrs.items():
            resources.append(desired(
                "subnet", key, names.network_resource(self.role, key),
                {"cidr_block": cidr, "availability_zone": zones[key], "vpc_id": ref("vpc")},
                immutable=("cidr_block", "availability_zone", "vpc_id"),
            ))
        nat_key = "nat-gateway"
        resources += [
            desired("internet_gateway", "internet-gateway", names.network_resource(self.role, "igw"),
                    {"attached_vpc_id": ref("vpc")}),
            desired("elastic_ip", "nat-eip", names.network_resource(self.role, "nat-eip"), {"domain": "vpc"},
                    immutable=("domain",)),
            desired("nat_gateway", nat_key, names.network_resource(self.role, "nat"),
                    {"subnet_id": ref(PUBLIC_SUBNET), "allocation_id": ref("nat-eip")},
                    immutable=("subnet_id", "allocation_id")),
            desired("route_table", "public-route-table", names.network_resource(self.role, "public-rt"),
                    {"vpc_id": ref("vpc"), "default_route": ref("internet-gateway"),
                     "associated_subnets": sorted([ref(PUBLIC_SUBNET)])},
                    immutable=("vpc_id",)),
            desired("route_table", "private-route-table", names.network_resource(self.role, "private-rt"),
                    {"vpc_id": ref("vpc"), "default_route": ref(nat_key),
                     "associated_subnets": sorted(ref(k) for k in PRIVATE_SUBNETS)},
                    immutable=("vpc_id",)),
        ]
        return resources

    def checks(self, ctx: StepContext, observation: Observation) -> list[Change]:
        zones = {observation.get(k).attrs.get("availability_zone") for k in PRIVATE_SUBNETS if observation.id_of(k)}
        existing = [k for k in PRIVATE_SUBNETS if observation.id_of(k)]
        if len(existing) == len(PRIVATE_SUBNETS) and len(zones) < len(PRIVATE_SUBNETS):
            return [Change(self.key, ctx.region, "subnet", "private-subnets", "private subnets", "replace",
                           attribute="distinct availability zones", expected=3, actual=len(zones))]
        return []

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        rid = ctx.recorded_id
        return {
            "vpc_id": rid("vpc"),
            "private_subnet_ids": [rid(k) for k in PRIVATE_SUBNETS],
            "public_subnet_id": rid(PUBLIC_SUBNET),
            "internet_gateway_id": rid("internet-gateway"),
            "nat_gateway_id": rid("nat-gateway"),
            "vpc_cidr": ctx.config.networks[self.role].vpc_cidr,
        }

    # Apply ---------------------------------------------------------------------------------
    def _require(self, ctx: StepContext, key: str) -> str:
        resource_id = ctx.recorded_id(key)
        if resource_id is None:
            raise DrkitError(f"{self.key}: {key} must exist before this change")
        return resource_id

    def _tags_for(self, ctx: StepContext, change: Change) -> dict[str, str]:
        return ctx.tags_for(change.key, change.name)

    def _retag(self, ctx: StepContext, change: Change) -> None:
        ctx.call("ec2", "create_tags", Resources=[change.resource_id], Tags=to_aws(change.expected),
                 resource=change.resource_id)

    def create_vpc(self, ctx: StepContext, change: Change) -> None:
        vpc = ctx.call("ec2", "create_vpc", CidrBlock=change.expected["cidr_block"],
                       TagSpecifications=tag_specifications(VPC.resource_type, self._tags_for(ctx, change)),
                       resource=change.name)["Vpc"]
        ctx.record(change.key, "vpc", vpc["VpcId"])
        # DNS support is on by default; hostnames are not (and need support on first).
        ctx.call("ec2", "modify_vpc_attribute", VpcId=vpc["VpcId"], EnableDnsHostnames={"Value": True},
                 resource=vpc["VpcId"])

    def update_vpc(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            return self._retag(ctx, change)
        parameter = {"enable_dns_support": "EnableDnsSupport", "enable_dns_hostnames": "EnableDnsHostnames"}
        ctx.call("ec2", "modify_vpc_attribute", VpcId=change.resource_id,
                 **{parameter[change.attribute]: {"Value": change.expected}}, resource=change.resource_id)

    def create_subnet(self, ctx: StepContext, change: Change) -> None:
        # CIDR and zone come from the decision, which saw every existing subnet's zone.
        subnet = ctx.call("ec2", "create_subnet", VpcId=self._require(ctx, "vpc"),
                          CidrBlock=change.expected["cidr_block"],
                          AvailabilityZone=change.expected["availability_zone"],
                          TagSpecifications=tag_specifications(SUBNET.resource_type, self._tags_for(ctx, change)),
                          resource=change.name)["Subnet"]
        ctx.record(change.key, "subnet", subnet["SubnetId"])

    def update_subnet(self, ctx: StepContext, change: Change) -> None:
        self._retag(ctx, change)

    def create_internet_gateway(self, ctx: StepContext, change: Change) -> None:
        igw = ctx.call("ec2", "create_internet_gateway",
                       TagSpecifications=tag_specifications(INTERNET_GATEWAY.resource_type, self._tags_for(ctx, change)),
                       resource=change.name)["InternetGateway"]
        ctx.record(change.key, "internet_gateway", igw["InternetGatewayId"])
        ctx.call("ec2", "attach_internet_gateway", InternetGatewayId=igw["InternetGatewayId"],
                 VpcId=self._require(ctx, "vpc"), resource=igw["InternetGatewayId"])

    def update_internet_gateway(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            return self._retag(ctx, change)
        if change.actual:
            ctx.call("ec2", "detach_internet_gateway", InternetGatewayId=change.resource_id, VpcId=change.actual,
                     resource=change.resource_id)
        ctx.call("ec2", "attach_internet_gateway", InternetGatewayId=change.resource_id,
                 VpcId=self._require(ctx, "vpc"), resource=change.resource_id)

    def create_elastic_ip(self, ctx: StepContext, change: Change) -> None:
        eip = ctx.call("ec2", "allocate_address", Domain="vpc",
                       TagSpecifications=tag_specifications(ELASTIC_IP.resource_type, self._tags_for(ctx, change)),
                       resource=change.name)
        ctx.record(change.key, "elastic_ip", eip["AllocationId"])

    def update_elastic_ip(self, ctx: StepContext, change: Change) -> None:
        self._retag(ctx, change)

    def create_nat_gateway(self, ctx: StepContext, change: Change) -> None:
        predecessor = change.resource_id
        if predecessor and self._nat_state(ctx, predecessor).get("State") == "deleting":
            # A NAT keeps its Elastic IP until it is deleted; the new one needs that address.
            self._wait_nat(ctx, predecessor, "deleted")
        # The ClientToken makes botocore's own retry of a timed-out request idempotent; across
        # runs, the tags (applied in this same call) are what find the NAT again.
        nat = ctx.call("ec2", "create_nat_gateway", SubnetId=self._require(ctx, PUBLIC_SUBNET),
                       AllocationId=self._require(ctx, "nat-eip"), ClientToken=f"drkit-{uuid.uuid4()}",
                       TagSpecifications=tag_specifications(NAT_GATEWAY.resource_type, self._tags_for(ctx, change)),
                       resource=change.name)["NatGateway"]
        ctx.record(change.key, "nat_gateway", nat["NatGatewayId"])
        self._wait_nat(ctx, nat["NatGatewayId"], "available")

    def wait_nat_gateway(self, ctx: StepContext, change: Change) -> None:
        self._wait_nat(ctx, change.resource_id, "available")

    def update_nat_gateway(self, ctx: StepContext, change: Change) -> None:
        self._retag(ctx, change)

    def _nat_state(self, ctx: StepContext, nat_id: str) -> dict[str, Any]:
        found = ctx.call("ec2", "describe_nat_gateways", NatGatewayIds=[nat_id], missing_ok=True)
        gateways = (found or {}).get("NatGateways", [])
        return gateways[0] if gateways else {"State": "deleted"}

    def _wait_nat(self, ctx: StepContext, nat_id: str, target: str) -> None:
        ctx.waiter.until(
            f"NAT gateway {nat_id} in {ctx.region} to be {target}",
            lambda: self._nat_state(ctx, nat_id),
            lambda nat: nat.get("State") == target,
            describe=lambda nat: str(nat.get("State")),
            failed=lambda nat: (
                f"it is {nat['State']}: {nat.get('FailureMessage', 'no reason given')}"
                if nat.get("State") == "failed" and target == "available" else None
            ),
        )

    def create_route_table(self, ctx: StepContext, change: Change) -> None:
        table = ctx.call("ec2", "create_route_table", VpcId=self._require(ctx, "vpc"),
                         TagSpecifications=tag_specifications(ROUTE_TABLE.resource_type, self._tags_for(ctx, change)),
                         resource=change.name)["RouteTable"]
        table_id = table["RouteTableId"]
        ctx.record(change.key, "route_table", table_id)
        ctx.call("ec2", "create_route", RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE,
                 **self._route_target(ctx, change.key), resource=table_id)
        for subnet_id in self._wanted_subnets(ctx, change.key):
            ctx.call("ec2", "associate_route_table", RouteTableId=table_id, SubnetId=subnet_id, resource=table_id)

    def update_route_table(self, ctx: StepContext, change: Change) -> None:
        table_id = change.resource_id
        if change.attribute == "tags":
            return self._retag(ctx, change)
        if change.attribute == "default_route":
            operation = "replace_route" if change.actual else "create_route"
            ctx.call("ec2", operation, RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE,
                     **self._route_target(ctx, change.key), resource=table_id)
        elif change.attribute == "associated_subnets":
            table = ctx.call("ec2", "describe_route_tables", RouteTableIds=[table_id])["RouteTables"][0]
            current = {a["SubnetId"]: a["RouteTableAssociationId"]
                       for a in table.get("Associations", []) if a.get("SubnetId") and not a.get("Main")}
            wanted = set(self._wanted_subnets(ctx, change.key))
            for subnet_id, association_id in current.items():
                if subnet_id not in wanted:
                    ctx.call("ec2", "disassociate_route_table", AssociationId=association_id, resource=table_id)
            for subnet_id in sorted(wanted - set(current)):
                self._associate(ctx, table_id, subnet_id)

    def _associate(self, ctx: StepContext, table_id: str, subnet_id: str) -> None:
        """Associate, moving the subnet off another (non-main) route table if it has one."""
        existing = ctx.call("ec2", "describe_route_tables",
                            Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
        for table in existing:
            for association in table.get("Associations", []):
                if association.get("SubnetId") == subnet_id and not association.get("Main"):
                    ctx.call("ec2", "replace_route_table_association",
                             AssociationId=association["RouteTableAssociationId"], RouteTableId=table_id,
                             resource=table_id)
                    return
        ctx.call("ec2", "associate_route_table", RouteTableId=table_id, SubnetId=subnet_id, resource=table_id)

    def _route_target(self, ctx: StepContext, table_key: str) -> dict[str, str]:
        if table_key == "public-route-table":
            return {"GatewayId": self._require(ctx, "internet-gateway")}
        return {"NatGatewayId": self._require(ctx, "nat-gateway")}

    def _wanted_subnets(self, ctx: StepContext, table_key: str) -> list[str]:
        keys = [PUBLIC_SUBNET] if table_key == "public-route-table" else list(PRIVATE_SUBNETS)
        return [self._require(ctx, k) for k in keys]

    # Delete, in the order AWS accepts ---------------------------------------------------------
    def delete_route_table(self, ctx: StepContext, change: Change) -> None:
        found = ctx.call("ec2", "describe_route_tables", RouteTableIds=[change.resource_id], missing_ok=True)
        for table in (found or {}).get("RouteTables", []):
            for association in table.get("Associations", []):
                if not association.get("Main"):
                    ctx.call("ec2", "disassociate_route_table", AssociationId=association["RouteTableAssociationId"],
                             missing_ok=True, resource=change.resource_id)
        ctx.call("ec2", "delete_route_table", RouteTableId=change.resource_id, missing_ok=True,
                 not_yet=STILL_IN_USE, resource=change.resource_id)

    def delete_nat_gateway(self, ctx: StepContext, change: Change) -> None:
        if self._nat_state(ctx, change.resource_id).get("State") not in ("deleting", "deleted"):
            ctx.call("ec2", "delete_nat_gateway", NatGatewayId=change.resource_id, missing_ok=True,
                     resource=change.resource_id)
        # Its EIP stays associated, and the IGW cannot be detached, until the NAT is deleted.
        self._wait_nat(ctx, change.resource_id, "deleted")

    def delete_elastic_ip(self, ctx: StepContext, change: Change) -> None:
        ctx.call("ec2", "release_address", AllocationId=change.resource_id, missing_ok=True,
                 not_yet=STILL_IN_USE, resource=change.resource_id)

    def delete_internet_gateway(self, ctx: StepContext, change: Change) -> None:
        found = ctx.call("ec2", "describe_internet_gateways", InternetGatewayIds=[change.resource_id], missing_ok=True)
        for igw in (found or {}).get("InternetGateways", []):
            for attachment in igw.get("Attachments", []):
                ctx.call("ec2", "detach_internet_gateway", InternetGatewayId=change.resource_id,
                         VpcId=attachment["VpcId"], missing_ok=True, not_yet=STILL_IN_USE,
                         resource=change.resource_id)
        ctx.call("ec2", "delete_internet_gateway", InternetGatewayId=change.resource_id, missing_ok=True,
                 not_yet=STILL_IN_USE, resource=change.resource_id)

    def delete_subnet(self, ctx: StepContext, change: Change) -> None:
        ctx.call("ec2", "delete_subnet", SubnetId=change.resource_id, missing_ok=True,
                 not_yet=STILL_IN_USE, resource=change.resource_id)

    def delete_vpc(self, ctx: StepContext, change: Change) -> None:
        ctx.call("ec2", "delete_vpc", VpcId=change.resource_id, missing_ok=True,
                 not_yet=STILL_IN_USE, resource=change.resource_id)


def _default_route_target(table: dict[str, Any]) -> str | None:
    for route in table.get("Routes", []):
        if route.get("DestinationCidrBlock") == DEFAULT_ROUTE:
            target = route.get("NatGatewayId") or route.get("GatewayId") or route.get("NetworkInterfaceId")
            if route.get("State") == "blackhole":
                return f"blackhole:{target}"
            return target
    return None
