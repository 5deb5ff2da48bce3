"""ensure_vpc: one region's network, as the seed specifies it.

VPC (DNS support and hostnames on), three private subnets in three distinct AZs, one public
subnet, an internet gateway, an Elastic IP and a NAT gateway in the public subnet, a public route
table (0.0.0.0/0 -> IGW) and a private one (0.0.0.0/0 -> NAT), every subnet associated.
Teardown order is the one AWS accepts: route tables, NAT (and wait until it is deleted), its EIP
(once it shows no association), the IGW (detached first), subnets, VPC.

Every create and attach here that has no idempotency token passes `settled`: after a lost answer
drkit reads whether the effect holds (a resource carrying the tags the create call put on it, an
attachment, a route, an association) instead of resending blindly. Zones: steps/vpc_zones.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from drkit.ec2 import (
    ELASTIC_IP, INTERNET_GATEWAY, NAT_GATEWAY, ROUTE_TABLE, SUBNET, VPC, Ec2Kind, Found, duplicate_ids, find_created,
    find_owned,
)
from drkit.errors import AwsCallError, DrkitError
from drkit.step import (
    ABSENT, AVAILABLE, DELETING, FAILED, PENDING, Change, Desired, Observation, Observed, Step, StepContext,
)
from drkit.tags import tag_specifications, to_aws
from steps import vpc_reads as reads
from steps.vpc_teardown import (  # noqa: F401  (STILL_IN_USE is re-exported)
    ASSOCIATION_GONE, IGW_GONE, NAT_GONE, STILL_IN_USE, NetworkTeardown,
)
from steps.vpc_zones import (  # noqa: F401  (assign_zones is re-exported)
    PRIVATE_SUBNETS, PUBLIC_SUBNET, ZoneMemory, assign_zones, candidate_zones, is_zone_refusal,
)

DEFAULT_ROUTE = reads.DEFAULT_ROUTE
NAT_STATUS = {"pending": PENDING, "available": AVAILABLE, "failed": FAILED, "deleting": DELETING, "deleted": ABSENT}



class EnsureVpc(NetworkTeardown, Step):
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

    def __init__(self, role: str) -> None:
        super().__init__(role)
        self._zone_memory: dict[str, ZoneMemory] = {}  # per region, for this run

    def zones(self, ctx: StepContext) -> ZoneMemory:
        return self._zone_memory.setdefault(ctx.region, ZoneMemory())

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        found: dict[str, Found] = {}
        for kind in self.KINDS:
            found.update(find_owned(ctx, kind, self.KEYS[kind.kind]))
        resources = {key: self._observed(ctx, key, item) for key, item in found.items()}
        facts: dict[str, Any] = {}
        subnet_keys = self.KEYS["subnet"]
        memory = self.zones(ctx)
        memory.placed = {k: r.attrs["availability_zone"] for k, r in resources.items() if k in subnet_keys}
        if any(k not in resources for k in subnet_keys):
            facts["zones"] = memory.candidates = self._available_zones(ctx)
        return Observation(resources, facts, duplicate_ids(found))

    def _available_zones(self, ctx: StepContext) -> list[str]:
        response = ctx.call(
            "ec2", "describe_availability_zones",
            Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}],
        )
        pinned = ctx.config.networks[self.role].availability_zones
        return candidate_zones(response["AvailabilityZones"], pinned, ctx.region)

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
            self.zones(ctx).refused,
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
                       settled=reads.created(ctx, VPC, change.key, "Vpc"), resource=change.name)["Vpc"]
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
        """Create in the planned zone; a zone CreateSubnet refuses is remembered for this run and
        the subnet (and any planned after it) moves to the next candidate."""
        memory = self.zones(ctx)
        while True:
            zone = memory.zone_for(change.key, change.expected["availability_zone"])
            try:
                subnet = ctx.call("ec2", "create_subnet", VpcId=self._require(ctx, "vpc"),
                                  CidrBlock=change.expected["cidr_block"], AvailabilityZone=zone,
                                  TagSpecifications=tag_specifications(SUBNET.resource_type, self._tags_for(ctx, change)),
                                  settled=reads.created(ctx, SUBNET, change.key, "Subnet"), resource=change.name)["Subnet"]
                break
            except AwsCallError as exc:
                if not is_zone_refusal(exc) or zone in memory.refused:
                    raise
                ctx.log.warning("zone.refused", step=self.key, region=ctx.region, zone=zone, subnet=change.key)
                memory.refused.add(zone)
        memory.placed[change.key] = subnet["AvailabilityZone"]
        ctx.record(change.key, "subnet", subnet["SubnetId"])

    def update_subnet(self, ctx: StepContext, change: Change) -> None:
        self._retag(ctx, change)

    def create_internet_gateway(self, ctx: StepContext, change: Change) -> None:
        igw = ctx.call("ec2", "create_internet_gateway",
                       TagSpecifications=tag_specifications(INTERNET_GATEWAY.resource_type, self._tags_for(ctx, change)),
                       settled=reads.created(ctx, INTERNET_GATEWAY, change.key, "InternetGateway"),
                       resource=change.name)["InternetGateway"]
        ctx.record(change.key, "internet_gateway", igw["InternetGatewayId"])
        self._attach(ctx, igw["InternetGatewayId"], self._require(ctx, "vpc"))

    def update_internet_gateway(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            return self._retag(ctx, change)
        if change.actual:
            self._detach(ctx, change.resource_id, change.actual)
        self._attach(ctx, change.resource_id, self._require(ctx, "vpc"))

    def _attach(self, ctx: StepContext, igw_id: str, vpc_id: str) -> None:
        ctx.call("ec2", "attach_internet_gateway", InternetGatewayId=igw_id, VpcId=vpc_id,
                 settled=reads.igw_attachment(ctx, igw_id, vpc_id, attached=True), resource=igw_id)

    def create_elastic_ip(self, ctx: StepContext, change: Change) -> None:
        eip = ctx.call("ec2", "allocate_address", Domain="vpc",
                       TagSpecifications=tag_specifications(ELASTIC_IP.resource_type, self._tags_for(ctx, change)),
                       settled=reads.created(ctx, ELASTIC_IP, change.key, None), resource=change.name)
        ctx.record(change.key, "elastic_ip", eip["AllocationId"])

    def update_elastic_ip(self, ctx: StepContext, change: Change) -> None:
        self._retag(ctx, change)

    def create_nat_gateway(self, ctx: StepContext, change: Change) -> None:
        predecessor = change.resource_id
        state = reads.nat_state(ctx, predecessor).get("State") if predecessor else None
        if state == "failed":
            # A failed NAT stays listed, with drkit's tags, for about an hour: delete it now so
            # no later observation has two NATs to choose from.
            ctx.call("ec2", "delete_nat_gateway", NatGatewayId=predecessor, missing_ok=NAT_GONE, resource=predecessor)
            state = "deleting"
        if state == "deleting":
            # A NAT keeps its Elastic IP until it is deleted; the new one needs that address.
            self._wait_nat(ctx, predecessor, "deleted")
        # The ClientToken makes every resend of this request (botocore's, drkit's after a lost
        # answer) return the same NAT; across runs, the tags applied in this call find it again.
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

    def create_route_table(self, ctx: StepContext, change: Change) -> None:
        # CreateRouteTable takes a ClientToken: the gateway makes one that every resend reuses.
        table = ctx.call("ec2", "create_route_table", VpcId=self._require(ctx, "vpc"),
                         TagSpecifications=tag_specifications(ROUTE_TABLE.resource_type, self._tags_for(ctx, change)),
                         resource=change.name)["RouteTable"]
        table_id = table["RouteTableId"]
        ctx.record(change.key, "route_table", table_id)
        self._create_route(ctx, table_id, change.key)
        for subnet_id in self._wanted_subnets(ctx, change.key):  # a new table: nothing to move off
            ctx.call("ec2", "associate_route_table", RouteTableId=table_id, SubnetId=subnet_id,
                     settled=reads.subnet_association(ctx, subnet_id, table_id, "AssociationId"), resource=table_id)

    def update_route_table(self, ctx: StepContext, change: Change) -> None:
        table_id = change.resource_id
        if change.attribute == "tags":
            return self._retag(ctx, change)
        if change.attribute == "default_route":
            if change.actual:  # replacing a route with the same target again is harmless
                ctx.call("ec2", "replace_route", RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE,
                         **self._route_target(ctx, change.key), resource=table_id)
            else:
                self._create_route(ctx, table_id, change.key)
        elif change.attribute == "associated_subnets":
            table = ctx.call("ec2", "describe_route_tables", RouteTableIds=[table_id])["RouteTables"][0]
            current = {a["SubnetId"]: a["RouteTableAssociationId"]
                       for a in table.get("Associations", []) if a.get("SubnetId") and not a.get("Main")}
            wanted = set(self._wanted_subnets(ctx, change.key))
            for subnet_id, association_id in current.items():
                if subnet_id not in wanted:
                    ctx.call("ec2", "disassociate_route_table", AssociationId=association_id,
                             missing_ok=ASSOCIATION_GONE, resource=table_id)
            for subnet_id in sorted(wanted - set(current)):
                self._associate(ctx, table_id, subnet_id)

    def _create_route(self, ctx: StepContext, table_id: str, table_key: str) -> None:
        target = self._route_target(ctx, table_key)
        ctx.call("ec2", "create_route", RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE, **target,
                 settled=reads.route_exists(ctx, table_id, target), resource=table_id)

    def _associate(self, ctx: StepContext, table_id: str, subnet_id: str) -> None:
        """Associate, moving the subnet off another (non-main) route table if it has one."""
        existing = ctx.call("ec2", "describe_route_tables",
                            Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
        for table in existing:
            for association in table.get("Associations", []):
                if association.get("SubnetId") == subnet_id and not association.get("Main"):
                    if table["RouteTableId"] == table_id:
                        return  # already there (a stale observation)
                    ctx.call("ec2", "replace_route_table_association",
                             AssociationId=association["RouteTableAssociationId"], RouteTableId=table_id,
                             settled=reads.subnet_association(ctx, subnet_id, table_id, "NewAssociationId"),
                             resource=table_id)
                    return
        ctx.call("ec2", "associate_route_table", RouteTableId=table_id, SubnetId=subnet_id,
                 settled=reads.subnet_association(ctx, subnet_id, table_id, "AssociationId"), resource=table_id)

    def _route_target(self, ctx: StepContext, table_key: str) -> dict[str, str]:
        if table_key == "public-route-table":
            return {"GatewayId": self._require(ctx, "internet-gateway")}
        return {"NatGatewayId": self._require(ctx, "nat-gateway")}

    def _wanted_subnets(self, ctx: StepContext, table_key: str) -> list[str]:
        keys = [PUBLIC_SUBNET] if table_key == "public-route-table" else list(PRIVATE_SUBNETS)
        return [self._require(ctx, k) for k in keys]


def _default_route_target(table: dict[str, Any]) -> str | None:
    for route in table.get("Routes", []):
        if route.get("DestinationCidrBlock") == DEFAULT_ROUTE:
            target = route.get("NatGatewayId") or route.get("GatewayId") or route.get("NetworkInterfaceId")
            if route.get("State") == "blackhole":
                return f"blackhole:{target}"
            return target
    return None
