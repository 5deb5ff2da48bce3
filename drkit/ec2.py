"""Finding EC2 resources, which have no unique names: by drkit's tags, and by the ids in state.

One filtered describe per resource kind returns every resource a step owns in its region; the
`drkit:resource` tag says which is which. Ids in the state that the tag query did not return
(their tags were removed or changed) are looked up by id, so drift is reported, not duplicated.

More than one resource carrying this env's ownership tags for the same key is provably drkit's
(the tags go on in the create call): a create whose answer was lost, then resent. They never
wedge drkit: one is kept (the one the state recorded, else a usable one, else the lowest id) and
the others are duplicates that provision removes and teardown deletes with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drkit.step import StepContext
from drkit.tags import RESOURCE_TAG, ec2_tag_filters, from_aws, is_owned


@dataclass(frozen=True)
class Ec2Kind:
    kind: str
    describe: str
    result_key: str
    id_key: str
    id_filter: str
    resource_type: str  # for TagSpecifications
    gone_states: tuple[str, ...] = ()  # states in which a resource no longer counts


VPC = Ec2Kind("vpc", "describe_vpcs", "Vpcs", "VpcId", "vpc-id", "vpc")
SUBNET = Ec2Kind("subnet", "describe_subnets", "Subnets", "SubnetId", "subnet-id", "subnet")
INTERNET_GATEWAY = Ec2Kind(
    "internet_gateway", "describe_internet_gateways", "InternetGateways", "InternetGatewayId",
    "internet-gateway-id", "internet-gateway",
)
ELASTIC_IP = Ec2Kind("elastic_ip", "describe_addresses", "Addresses", "AllocationId", "allocation-id", "elastic-ip")
NAT_GATEWAY = Ec2Kind(
    "nat_gateway", "describe_nat_gateways", "NatGateways", "NatGatewayId", "nat-gateway-id", "natgateway",
    gone_states=("deleted",),
)
ROUTE_TABLE = Ec2Kind("route_table", "describe_route_tables", "RouteTables", "RouteTableId", "route-table-id", "route-table")
SECURITY_GROUP = Ec2Kind("security_group", "describe_security_groups", "SecurityGroups", "GroupId", "group-id", "security-group")


@dataclass(frozen=True)
class Found:
    key: str
    raw: dict[str, Any]
    owned: bool
    duplicates: tuple[str, ...] = ()  # ids of other resources tagged as this same key

    @property
    def tags(self) -> dict[str, str]:
        return from_aws(self.raw.get("Tags"))


def find_owned(ctx: StepContext, kind: Ec2Kind, keys: list[str]) -> dict[str, Found]:
    """The step's resources of one kind, keyed by their drkit resource key."""
    filters = ec2_tag_filters(ctx.owner_tags())
    items = ctx.aws.paginate("ec2", ctx.region, kind.describe, kind.result_key, Filters=filters)
    items = [i for i in items if i.get("State") not in kind.gone_states]
    by_key: dict[str, list[dict]] = {}
    for item in items:
        key = from_aws(item.get("Tags")).get(RESOURCE_TAG)
        if key in keys:
            by_key.setdefault(key, []).append(item)
    found: dict[str, Found] = {}
    for key, matches in by_key.items():
        kept = _keeper(matches, kind, ctx.recorded_id(key))
        others = tuple(sorted(m[kind.id_key] for m in matches if m is not kept))
        found[key] = Found(key, kept, owned=True, duplicates=others)

    # Ids the state remembers but the tag query missed: their tags drifted.
    missing = {ctx.recorded_id(k): k for k in keys if k not in found and ctx.recorded_id(k)}
    if missing:
        by_id = ctx.aws.paginate(
            "ec2", ctx.region, kind.describe, kind.result_key,
            Filters=[{"Name": kind.id_filter, "Values": sorted(missing)}],
        )
        for item in by_id:
            if item.get("State") in kind.gone_states:
                continue
            key = missing[item[kind.id_key]]
            owned = is_owned(from_aws(item.get("Tags")), ctx.config.env, ctx.step.name)
            found[key] = Found(key, item, owned=owned)
    return found


# States in which a resource is on its way out or unusable: another copy is the one to keep.
_UNUSABLE_STATES = frozenset({"failed", "deleting", "deleted"})


def _keeper(matches: list[dict[str, Any]], kind: Ec2Kind, recorded: str | None) -> dict[str, Any]:
    """Which of several resources tagged as one key drkit keeps: the recorded one, else a usable
    one, else the lowest id (deterministic, so plan and provision agree)."""
    for item in matches:
        if item[kind.id_key] == recorded:
            return item
    return min(matches, key=lambda m: (m.get("State") in _UNUSABLE_STATES, m[kind.id_key]))


def find_created(ctx: StepContext, kind: Ec2Kind, key: str) -> dict[str, Any] | None:
    """The resource a create under drkit's tags for `key` made, or None: what a lost create
    answer is judged by (the tags go on in the create call, so a created resource carries them).
    One filtered describe; a copy that is failed or going away is not the one just created."""
    filters = ec2_tag_filters({**ctx.owner_tags(), RESOURCE_TAG: key})
    items = ctx.aws.paginate("ec2", ctx.region, kind.describe, kind.result_key, Filters=filters)
    usable = [i for i in items if i.get("State") not in (*kind.gone_states, *_UNUSABLE_STATES)]
    return min(usable, key=lambda i: i[kind.id_key]) if usable else None


def duplicate_ids(found: dict[str, Found]) -> dict[str, tuple[str, ...]]:
    """key -> ids of the extra resources tagged as that key, for the step's Observation."""
    return {key: f.duplicates for key, f in found.items() if f.duplicates}
