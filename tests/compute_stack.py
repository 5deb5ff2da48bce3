"""Shared set-up for the compute and API tier tests: the network those steps stand on, made
directly with boto3 (fast), published through stand-in steps; a tiny deterministic handler; and
lost answers injected after AWS (moto) has carried a call out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError

from drkit.aws import RetryPolicy
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.package import build_zip
from drkit.runner import Runner
from drkit.step import Desired, Observation, Step, StepContext
from steps.certificate import EnsureCertificate
from steps.custom_domain import EnsureCustomDomain
from steps.dns_zone import EnsureHostedZone
from steps.lambda_function import EnsureFunction
from steps.rest_api import EnsureRestApi

REGIONS = {"primary": "us-east-1", "dr": "us-east-2"}
HANDLER_V1 = b"def handler(event, context):\n    return {'statusCode': 200, 'body': 'v1'}\n"
HANDLER_V2 = b"def handler(event, context):\n    return {'statusCode': 200, 'body': 'v2'}\n"


class Published(Step):
    """Stands in for a step this tier depends on: publishes the outputs of resources a test
    made with boto3, and owns nothing."""

    def __init__(self, name: str, role: str, outputs: dict[str, Any]) -> None:
        super().__init__(role)
        self.name = name  # type: ignore[misc]
        self._outputs = outputs

    def observe(self, ctx: StepContext) -> Observation:
        return Observation({})

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        return []

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return dict(self._outputs)


def network(role: str) -> dict[str, Any]:
    """A VPC with three private subnets and the Lambda security group, as ensure_vpc and
    ensure_security_groups leave them."""
    ec2 = boto3.client("ec2", region_name=REGIONS[role])
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:3]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i + 1}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for i, zone in enumerate(zones)]
    group = ec2.create_security_group(GroupName=f"lambda-sg-{role}", Description="x", VpcId=vpc)["GroupId"]
    return {"vpc_id": vpc, "private_subnet_ids": subnets, "lambda_security_group_id": group}


class Code:
    """The handler the functions deploy; a test changes it to prove code updates."""

    def __init__(self) -> None:
        self.source = HANDLER_V1

    def package(self) -> bytes:
        return build_zip({"payment.py": self.source})


def compute_steps(roles: tuple[str, ...], code: Code, nets: dict[str, dict[str, Any]]) -> list[Step]:
    steps: list[Step] = [Published("ensure_global_table", "global", {}), EnsureHostedZone("global")]
    for role in roles:
        net = nets[role]
        steps += [
            Published("ensure_vpc", role, {"vpc_id": net["vpc_id"], "private_subnet_ids": net["private_subnet_ids"]}),
            Published("ensure_security_groups", role, {"lambda_security_group_id": net["lambda_security_group_id"]}),
            EnsureFunction(role, package=code.package), EnsureRestApi(role), EnsureCertificate(role),
            EnsureCustomDomain(role),
        ]
    return steps


def make_compute_runner(tmp_path: Path, clock: Any, roles: tuple[str, ...] = ("primary", "dr"),
                        code: Code | None = None, env: str = "test") -> Runner:
    nets = {role: network(role) for role in roles}
    config = build_config({"env": env, "state": str(tmp_path / f"{env}.state.json")}, environ={})
    return Runner(config, compute_steps(roles, code or Code(), nets), clock=clock,
                  log=make_logger("json", level="warning"), retry=RetryPolicy(botocore_max_attempts=1))


def lose_answers(runner: Runner, service: str, operation: str, times: int = 1) -> list[str]:
    """Make the next `times` answers to `operation` be lost: AWS carries the call out, the client
    gets a 500. Returns a list that records each lost call."""
    lost: list[str] = []
    api_name = "".join(part.capitalize() for part in operation.split("_"))
    event_service = runner.aws.session._session.get_service_model(service).service_id.hyphenize()

    def after_call(http_response: Any, parsed: dict, model: Any, **_: Any) -> None:
        if len(lost) < times and not parsed.get("Error"):
            lost.append(model.name)
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "answer lost"},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, model.name)

    event = f"after-call.{event_service}.{api_name}"
    runner.aws.session.events.register(event, after_call)  # clients made from now on
    for (name, _, _), made in runner.aws._clients.items():  # and those made already
        if name == service:
            made.meta.events.register(event, after_call)
    return lost


def client(service: str, role: str = "primary") -> Any:
    return boto3.client(service, region_name=REGIONS[role])


Factory = Callable[..., Runner]
