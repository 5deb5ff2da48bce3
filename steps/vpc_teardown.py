"""ensure_vpc's deletes, in the order AWS accepts, and the NAT waits they share with create.

Route tables first, then the NAT (waiting until it is `deleted`: until then it holds its Elastic
IP and its public mapping keeps the IGW attached and the subnet in use), then the Elastic IP once
describe shows it unassociated, the IGW (detached first), the subnets and the VPC. Each delete
accepts only its own resource's "not found" as done; a delete whose answer was lost is resent and
then answered with that code.
"""

from __future__ import annotations

from drkit.retries import in_use, propagating
from drkit.step import Change, StepContext
from steps import vpc_reads as reads

# EC2 retries errors that only mean "a dependent is still going away" (eventual consistency).
STILL_IN_USE = (in_use("DependencyViolation", "InvalidIPAddress.InUse"),)
# Right after its NAT is deleted, ReleaseAddress may still fail while EC2 unmaps the address:
# AuthFailure "You do not have permission to access the specified resource" (terraform-provider-aws
# issues #13763, #2968), or InvalidNetworkInterfaceID.NotFound for the NAT's vanished interface.
# Neither means "released": both are retried. A real permission problem is UnauthorizedOperation.
EIP_STILL_MAPPED = (
    in_use("InvalidIPAddress.InUse"),
    propagating("AuthFailure", message="permission to access the specified resource"),
    propagating("InvalidNetworkInterfaceID.NotFound"),
)
# Each resource's own "not found"; another one (the VPC in a subnet delete) is an error.
VPC_GONE, SUBNET_GONE = "InvalidVpcID.NotFound", "InvalidSubnetID.NotFound"
IGW_GONE, EIP_GONE = "InvalidInternetGatewayID.NotFound", "InvalidAllocationID.NotFound"
NAT_GONE = ("NatGatewayNotFound", "InvalidNatGatewayID.NotFound")
ROUTE_TABLE_GONE, ASSOCIATION_GONE = "InvalidRouteTableID.NotFound", "InvalidAssociationID.NotFound"


class NetworkTeardown:
    """The delete handlers of EnsureVpc (a mixin: the step's `delete_<kind>` methods)."""

    key: str

    def _wait_nat(self, ctx: StepContext, nat_id: str, target: str) -> None:
        ctx.waiter.until(
            f"NAT gateway {nat_id} in {ctx.region} to be {target}",
            lambda: reads.nat_state(ctx, nat_id),
            lambda nat: nat.get("State") == target,
            describe=lambda nat: str(nat.get("State")),
            failed=lambda nat: (
                f"it is {nat['State']}: {nat.get('FailureMessage', 'no reason given')}"
                if nat.get("State") == "failed" and target == "available" else None
            ),
        )

    def delete_route_table(self, ctx: StepContext, change: Change) -> None:
        table = reads.table(ctx, change.resource_id)
        for association in (table or {}).get("Associations", []):
            if not association.get("Main"):
                ctx.call("ec2", "disassociate_route_table", AssociationId=association["RouteTableAssociationId"],
                         missing_ok=ASSOCIATION_GONE, resource=change.resource_id)
        ctx.call("ec2", "delete_route_table", RouteTableId=change.resource_id, missing_ok=ROUTE_TABLE_GONE,
                 not_yet=STILL_IN_USE, resource=change.resource_id)

    def delete_nat_gateway(self, ctx: StepContext, change: Change) -> None:
        if reads.nat_state(ctx, change.resource_id).get("State") not in ("deleting", "deleted"):
            ctx.call("ec2", "delete_nat_gateway", NatGatewayId=change.resource_id, missing_ok=NAT_GONE,
                     resource=change.resource_id)
        # Its EIP stays associated, and the IGW cannot be detached, until the NAT is deleted.
        self._wait_nat(ctx, change.resource_id, "deleted")

    def delete_elastic_ip(self, ctx: StepContext, change: Change) -> None:
        """Release once describe shows no association; only InvalidAllocationID.NotFound means
        released (InvalidNetworkInterfaceID.NotFound right after a NAT delete leaks a billed EIP)."""
        allocation_id = change.resource_id
        found = ctx.waiter.until(
            f"Elastic IP {allocation_id} in {ctx.region} to be unassociated",
            lambda: reads.address(ctx, allocation_id),
            lambda address: not reads.still_associated(address),
            describe=lambda address: f"associated with {address.get('NetworkInterfaceId') or address.get('AssociationId')}"
            if address else "released",
            timeout=20 * 60,
        )
        if found is None:
            return
        ctx.call("ec2", "release_address", AllocationId=allocation_id, missing_ok=EIP_GONE,
                 not_yet=EIP_STILL_MAPPED, resource=allocation_id)

    def delete_internet_gateway(self, ctx: StepContext, change: Change) -> None:
        found = ctx.call("ec2", "describe_internet_gateways", InternetGatewayIds=[change.resource_id],
                         missing_ok=IGW_GONE)
        for igw in (found or {}).get("InternetGateways", []):
            for attachment in igw.get("Attachments", []):
                self._detach(ctx, change.resource_id, attachment["VpcId"])
        ctx.call("ec2", "delete_internet_gateway", InternetGatewayId=change.resource_id, missing_ok=IGW_GONE,
                 not_yet=STILL_IN_USE, resource=change.resource_id)

    def _detach(self, ctx: StepContext, igw_id: str, vpc_id: str) -> None:
        ctx.call("ec2", "detach_internet_gateway", InternetGatewayId=igw_id, VpcId=vpc_id,
                 missing_ok=IGW_GONE, not_yet=STILL_IN_USE,
                 settled=reads.igw_attachment(ctx, igw_id, vpc_id, attached=False), resource=igw_id)

    def delete_subnet(self, ctx: StepContext, change: Change) -> None:
        ctx.call("ec2", "delete_subnet", SubnetId=change.resource_id, missing_ok=SUBNET_GONE,
                 not_yet=STILL_IN_USE, resource=change.resource_id)

    def delete_vpc(self, ctx: StepContext, change: Change) -> None:
        ctx.call("ec2", "delete_vpc", VpcId=change.resource_id, missing_ok=VPC_GONE,
                 not_yet=STILL_IN_USE, resource=change.resource_id)
