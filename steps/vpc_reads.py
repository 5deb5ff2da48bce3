"""Fresh reads ensure_vpc's changes are judged by: whether a call whose answer was lost took
effect (`settled`), and where a NAT or an Elastic IP stands while drkit waits for it.

Each `settled` read returns a value shaped like the call's own response when the effect already
holds, else None (drkit.aws resends only then). EC2 is eventually consistent, so the gateway asks
again for a few seconds before it believes a None.
"""

from __future__ import annotations

from typing import Any, Callable

from drkit.ec2 import Ec2Kind, find_created
from drkit.step import StepContext

DEFAULT_ROUTE = "0.0.0.0/0"


def created(ctx: StepContext, kind: Ec2Kind, key: str, wrap: str | None) -> Callable[[], Any]:
    """`settled` for a create that tags its resource in the call: the resource with those tags,
    as the create's response (`{"Vpc": {...}}`; AllocateAddress answers flat, wrap=None)."""

    def look() -> Any:
        found = find_created(ctx, kind, key)
        if found is None:
            return None
        return {wrap: found} if wrap else found

    return look


def igw_attachment(ctx: StepContext, igw_id: str, vpc_id: str, *, attached: bool) -> Callable[[], Any]:
    """`settled` for AttachInternetGateway (attached=True) and DetachInternetGateway (False)."""

    def look() -> Any:
        found = ctx.call("ec2", "describe_internet_gateways", InternetGatewayIds=[igw_id],
                         missing_ok="InvalidInternetGatewayID.NotFound")
        gateways = (found or {}).get("InternetGateways", [])
        vpcs = {a["VpcId"] for g in gateways for a in g.get("Attachments", [])
                if a.get("State") in ("attaching", "attached", "available")}
        return {} if (vpc_id in vpcs) == attached else None

    return look


def table(ctx: StepContext, table_id: str) -> dict[str, Any] | None:
    found = ctx.call("ec2", "describe_route_tables", RouteTableIds=[table_id],
                     missing_ok="InvalidRouteTableID.NotFound")
    tables = (found or {}).get("RouteTables", [])
    return tables[0] if tables else None


def route_exists(ctx: StepContext, table_id: str, target: dict[str, str]) -> Callable[[], Any]:
    """`settled` for CreateRoute: the default route already points at `target`."""

    def look() -> Any:
        found = table(ctx, table_id) or {}
        (field, wanted), = target.items()
        for route in found.get("Routes", []):
            if route.get("DestinationCidrBlock") == DEFAULT_ROUTE and route.get(field) == wanted:
                return {"Return": True}
        return None

    return look


def subnet_association(ctx: StepContext, subnet_id: str, table_id: str, field: str) -> Callable[[], Any]:
    """`settled` for AssociateRouteTable (field "AssociationId") and ReplaceRouteTableAssociation
    ("NewAssociationId"): the subnet is associated with `table_id` now."""

    def look() -> Any:
        found = table(ctx, table_id) or {}
        for association in found.get("Associations", []):
            if association.get("SubnetId") == subnet_id and not association.get("Main"):
                return {field: association["RouteTableAssociationId"],
                        "AssociationState": association.get("AssociationState", {"State": "associated"})}
        return None

    return look


def nat_state(ctx: StepContext, nat_id: str) -> dict[str, Any]:
    found = ctx.call("ec2", "describe_nat_gateways", NatGatewayIds=[nat_id],
                     missing_ok=("NatGatewayNotFound", "InvalidNatGatewayID.NotFound"))
    gateways = (found or {}).get("NatGateways", [])
    return gateways[0] if gateways else {"State": "deleted"}


def address(ctx: StepContext, allocation_id: str) -> dict[str, Any] | None:
    """The Elastic IP, or None once it is released."""
    found = ctx.call("ec2", "describe_addresses", AllocationIds=[allocation_id],
                     missing_ok="InvalidAllocationID.NotFound")
    addresses = (found or {}).get("Addresses", [])
    return addresses[0] if addresses else None


def still_associated(found: dict[str, Any] | None) -> bool:
    return bool(found and (found.get("AssociationId") or found.get("NetworkInterfaceId")))
