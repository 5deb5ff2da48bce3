"""Lambda functions in a VPC own hyperplane network interfaces that outlive them.

AWS behaviour emulated (moto 5.2 creates no interface and reports a fixed fake VpcId):
- A function created with a VpcConfig gets Lambda-managed ENIs in its subnets, carrying its
  security groups: InterfaceType "lambda", RequesterManaged, status in-use, description
  "AWS Lambda VPC ENI-<function>-<uuid>". VpcConfig reports the subnets' real VpcId.
  https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#vpc-managing-eni
- After the function is deleted, its ENIs stay for a while (AWS: commonly 20-40 minutes) before
  Lambda removes them; until then EC2 refuses to delete their security groups and subnets (and
  so the VPC) with DependencyViolation.
  https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-best-practice
  https://repost.aws/knowledge-center/lambda-eni-find-delete
The linger lasts `SandboxTimings.lambda_eni_linger` seconds (DRKIT_SANDBOX_LAMBDA_ENI_LINGER);
removal is lazy, on the next EC2 call that looks at interfaces, security groups or subnets.
"""

from __future__ import annotations

import uuid
from typing import Any

from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.models.subnets import SubnetBackend
from moto.ec2.models.vpcs import VPCBackend

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_lambda_enis_installed"
ENI_DESCRIPTION = "AWS Lambda VPC ENI-{function}-{suffix}"
_LINGER = "_drkit_lambda_eni_linger"  # on an EC2 backend: eni id -> time it goes away (None: in use)


def _lingering(backend: Any) -> dict[str, float | None]:
    return backend.__dict__.setdefault(_LINGER, {})


def _expire(backend: Any, timings: SandboxTimings) -> None:
    """Remove the ENIs whose linger is over, as Lambda does in the background."""
    table = _lingering(backend)
    for eni_id, gone_at in list(table.items()):
        if gone_at is not None and timings.now() >= gone_at:
            table.pop(eni_id)
            backend.enis.pop(eni_id, None)


def _holding(backend: Any, *, group_id: str | None = None, subnet_id: str | None = None,
             vpc_id: str | None = None) -> list[str]:
    held = []
    for eni_id in _lingering(backend):
        eni = backend.enis.get(eni_id)
        if eni is None:
            continue
        if (group_id and group_id in [g.id for g in eni._group_set]) or (subnet_id and eni.subnet.id == subnet_id) \
                or (vpc_id and eni.subnet.vpc_id == vpc_id):
            held.append(eni_id)
    return held


def install(timings: SandboxTimings) -> None:
    if getattr(LambdaBackend, _MARK, False):
        return
    setattr(LambdaBackend, _MARK, True)

    def ec2_of(fn_or_backend: Any) -> Any:
        return ec2_backends[fn_or_backend.account_id][fn_or_backend.region_name
                                                       if hasattr(fn_or_backend, "region_name")
                                                       else fn_or_backend.region]

    original_create = LambdaBackend.create_function

    def create_function(self: Any, spec: dict[str, Any]) -> LambdaFunction:
        fn = original_create(self, spec)
        vpc = spec.get("VpcConfig") or {}
        if vpc.get("SubnetIds") and vpc.get("SecurityGroupIds"):
            ec2 = ec2_of(self)
            for subnet_id in vpc["SubnetIds"]:
                eni = ec2.create_network_interface(
                    subnet_id, None, group_ids=list(vpc["SecurityGroupIds"]),
                    description=ENI_DESCRIPTION.format(function=fn.function_name, suffix=uuid.uuid4()),
                )
                eni.interface_type = "lambda"
                eni.requester_managed = True
                eni.requester_id = "AROAEXAMPLELAMBDA:lambda"
                eni.status = "in-use"
                _lingering(ec2)[eni.id] = None
        return fn

    LambdaBackend.create_function = create_function  # type: ignore[method-assign]

    original_delete = LambdaBackend.delete_function

    def delete_function(self: Any, function_name: str, qualifier: str | None = None) -> None:
        name = function_name.split(":")[-1] if function_name.startswith("arn:") else function_name
        original_delete(self, function_name, qualifier)
        ec2 = ec2_of(self)
        prefix = ENI_DESCRIPTION.format(function=name, suffix="")
        for eni_id, gone_at in _lingering(ec2).items():
            eni = ec2.enis.get(eni_id)
            if gone_at is None and eni is not None and eni.description.startswith(prefix):
                eni.status = "available"  # detached from the function, not yet removed
                _lingering(ec2)[eni_id] = timings.now() + timings.lambda_eni_linger

    LambdaBackend.delete_function = delete_function  # type: ignore[method-assign]

    def vpc_config(self: LambdaFunction) -> dict[str, Any] | None:
        if not self._vpc_config:
            return None
        config = dict(self._vpc_config)
        subnets = config.get("SubnetIds") or []
        if subnets:
            try:
                config["VpcId"] = ec2_of(self).get_subnet(subnets[0]).vpc_id
            except Exception:  # an unknown subnet: keep moto's placeholder
                config["VpcId"] = "vpc-123abc"
        return config

    LambdaFunction.vpc_config = property(vpc_config)  # type: ignore[assignment]

    original_describe = NetworkInterfaceBackend.get_all_network_interfaces

    def get_all_network_interfaces(self: Any, *args: Any, **kwargs: Any) -> Any:
        _expire(self, timings)
        return original_describe(self, *args, **kwargs)

    NetworkInterfaceBackend.get_all_network_interfaces = get_all_network_interfaces  # type: ignore[method-assign]

    original_delete_sg = SecurityGroupBackend.delete_security_group

    def delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> None:
        _expire(self, timings)
        held = _holding(self, group_id=group_id) if group_id else []
        if held:
            raise DependencyViolationError(f"resource {group_id} has a dependent object")
        return original_delete_sg(self, name=name, group_id=group_id)

    SecurityGroupBackend.delete_security_group = delete_security_group  # type: ignore[method-assign]

    original_delete_subnet = SubnetBackend.delete_subnet

    def delete_subnet(self: Any, subnet_id: str) -> Any:
        _expire(self, timings)
        if _holding(self, subnet_id=subnet_id):
            raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
        return original_delete_subnet(self, subnet_id)

    SubnetBackend.delete_subnet = delete_subnet  # type: ignore[method-assign]

    original_delete_vpc = VPCBackend.delete_vpc

    def delete_vpc(self: Any, vpc_id: str) -> Any:
        _expire(self, timings)
        if _holding(self, vpc_id=vpc_id):
            raise DependencyViolationError(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
        return original_delete_vpc(self, vpc_id)

    VPCBackend.delete_vpc = delete_vpc  # type: ignore[method-assign]
