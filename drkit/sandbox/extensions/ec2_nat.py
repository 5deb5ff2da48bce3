"""NAT gateways as AWS runs them, and the delete ordering AWS enforces around them.

AWS behaviour emulated (moto 5.2 lacks each one):
- DescribeNatGateways honours `tag:<key>` and `tag-key` filters.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeNatGateways.html
- (CreateNatGateway's ClientToken is handled with the other EC2 creates in ec2_idempotency.py.)
- A new NAT is `pending` before `available`; a deleted one is `deleting` before `deleted`, and only
  once `deleted` is its Elastic IP disassociated and its network interface removed.
  https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-working-with.html
- ReleaseAddress of an associated address fails with InvalidIPAddress.InUse.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ReleaseAddress.html
- DeleteSubnet fails with DependencyViolation while a NAT gateway (not yet deleted) is in it, and
  DetachInternetGateway fails with DependencyViolation while the VPC has mapped public addresses.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
"""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import DependencyViolationError, EC2ClientError
from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend
from moto.ec2.models.internet_gateways import InternetGatewayBackend
from moto.ec2.models.nat_gateways import NatGateway, NatGatewayBackend
from moto.ec2.models.subnets import SubnetBackend
from moto.ec2.utils import generic_filter

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_nat_installed"


def install(timings: SandboxTimings) -> None:
    if getattr(NatGatewayBackend, _MARK, False):
        return
    setattr(NatGatewayBackend, _MARK, True)

    def get_state(nat: NatGateway) -> str:
        state = nat.__dict__.get("_drkit_state", "available")
        since = nat.__dict__.get("_drkit_since", 0.0)
        if state == "pending" and timings.elapsed_since(since) >= timings.nat_pending:
            state = nat.__dict__["_drkit_state"] = "available"
        if state == "deleting" and timings.elapsed_since(since) >= timings.nat_deleting:
            _finish_delete(nat)
            state = nat.__dict__["_drkit_state"] = "deleted"
        return state

    def set_state(nat: NatGateway, value: str) -> None:
        nat.__dict__["_drkit_state"] = value
        nat.__dict__["_drkit_since"] = timings.now()

    NatGateway.state = property(get_state, set_state)  # type: ignore[assignment]

    original_describe = NatGatewayBackend.describe_nat_gateways

    def describe_nat_gateways(self: Any, filters: Any, nat_gateway_ids: Any) -> list[NatGateway]:
        filters = dict(filters or {})
        tag_filters = {k: v for k, v in filters.items() if k.startswith("tag:") or k == "tag-key"}
        for key in tag_filters:
            filters.pop(key)
        found = original_describe(self, filters or None, nat_gateway_ids)
        return generic_filter(tag_filters, found) if tag_filters else found

    NatGatewayBackend.describe_nat_gateways = describe_nat_gateways  # type: ignore[method-assign]

    original_create = NatGatewayBackend.create_nat_gateway

    def create_nat_gateway(self: Any, *args: Any, **kwargs: Any) -> NatGateway:
        nat = original_create(self, *args, **kwargs)
        nat.state = "pending"
        return nat

    NatGatewayBackend.create_nat_gateway = create_nat_gateway  # type: ignore[method-assign]

    def delete_nat_gateway(self: Any, nat_gateway_id: str) -> NatGateway:
        nat = self.nat_gateways.get(nat_gateway_id)
        if nat is None:
            raise EC2ClientError(
                "NatGatewayNotFound", f"The NAT gateway ID '{nat_gateway_id}' does not exist"
            )
        if nat.state not in ("deleting", "deleted"):
            nat.state = "deleting"
        return nat

    NatGatewayBackend.delete_nat_gateway = delete_nat_gateway  # type: ignore[method-assign]

    original_release = ElasticAddressBackend.release_address

    def release_address(self: Any, address: Any = None, allocation_id: Any = None) -> None:
        eips = self.address_by_allocation([allocation_id]) if allocation_id else self.address_by_ip([address])
        if eips and eips[0].association_id or (eips and eips[0].eni is not None):
            raise EC2ClientError("InvalidIPAddress.InUse", "Address is in use.")
        original_release(self, address=address, allocation_id=allocation_id)

    ElasticAddressBackend.release_address = release_address  # type: ignore[method-assign]

    original_delete_subnet = SubnetBackend.delete_subnet

    def delete_subnet(self: Any, subnet_id: str) -> Any:
        for nat in getattr(self, "nat_gateways", {}).values():
            if nat.subnet_id == subnet_id and nat.state != "deleted":
                raise DependencyViolationError(
                    f"The subnet '{subnet_id}' has dependencies and cannot be deleted."
                )
        return original_delete_subnet(self, subnet_id)

    SubnetBackend.delete_subnet = delete_subnet  # type: ignore[method-assign]

    original_detach = InternetGatewayBackend.detach_internet_gateway

    def detach_internet_gateway(self: Any, internet_gateway_id: str, vpc_id: str) -> None:
        for nat in getattr(self, "nat_gateways", {}).values():
            if nat.vpc_id == vpc_id and nat.state != "deleted":
                if any(a.get("publicIp") for a in nat.address_set):
                    raise DependencyViolationError(
                        f"Network {vpc_id} has some mapped public address(es). Please unmap "
                        "those public address(es) before detaching the gateway."
                    )
        return original_detach(self, internet_gateway_id, vpc_id)

    InternetGatewayBackend.detach_internet_gateway = detach_internet_gateway  # type: ignore[method-assign]


def _finish_delete(nat: NatGateway) -> None:
    """What AWS does when a NAT reaches `deleted`: free its address and interface."""
    backend = nat.ec2_backend
    eni = getattr(nat, "_eni", None)
    if eni is None:
        return
    for eip in list(backend.addresses):
        if eip.eni is eni:
            backend.disassociate_address(address=eip.public_ip)
    try:
        backend.delete_network_interface(eni.id)
    except Exception:  # already gone
        pass
    nat._eni = None
