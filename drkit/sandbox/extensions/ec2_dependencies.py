"""EC2 deletes that AWS refuses while something still depends on the resource.

AWS behaviour emulated (moto 5.2 deletes regardless):
- DeleteSecurityGroup fails with DependencyViolation while the group is associated with a network
  interface (an instance's included), or is referenced by a rule of another security group in the
  same VPC.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html
- DeleteSubnet fails with DependencyViolation while a network interface is in the subnet ("You
  must terminate all running instances in the subnet before you can delete the subnet", and the
  same holds for any interface).
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSubnet.html
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html (DependencyViolation)
"""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.models.subnets import SubnetBackend

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_ec2_dependencies_installed"


def install(timings: SandboxTimings) -> None:
    if getattr(SecurityGroupBackend, _MARK, False):
        return
    setattr(SecurityGroupBackend, _MARK, True)

    original_delete_group = SecurityGroupBackend.delete_security_group

    def delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> None:
        group = self.get_security_group_by_name_or_id(group_id or name) if (group_id or name) else None
        if group is not None:
            for eni in list(getattr(self, "enis", {}).values()):
                if any(getattr(g, "id", g) == group.id for g in getattr(eni, "group_set", [])):
                    raise DependencyViolationError(f"resource {group.id} has a dependent object")
            for other in _groups_of_vpc(self, group.vpc_id):
                if other.id != group.id and _references(other, group.id):
                    raise DependencyViolationError(f"resource {group.id} has a dependent object")
        return original_delete_group(self, name=name, group_id=group_id)

    SecurityGroupBackend.delete_security_group = delete_security_group  # type: ignore[method-assign]

    original_delete_subnet = SubnetBackend.delete_subnet

    def delete_subnet(self: Any, subnet_id: str) -> Any:
        for eni in list(getattr(self, "enis", {}).values()):
            if getattr(getattr(eni, "subnet", None), "id", None) == subnet_id:
                raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
        return original_delete_subnet(self, subnet_id)

    SubnetBackend.delete_subnet = delete_subnet  # type: ignore[method-assign]


def _groups_of_vpc(backend: Any, vpc_id: str | None) -> list[Any]:
    return list(backend.groups.get(vpc_id, {}).values()) if vpc_id else []


def _references(group: Any, group_id: str) -> bool:
    """Whether one of `group`'s ingress or egress rules names `group_id` as its source/target."""
    return any((rule.source_group or {}).get("GroupId") == group_id
               for rule in [*group.ingress_rules, *group.egress_rules])
