"""Lost answers for tests, through the sandbox's fault injector (drkit/sandbox/faults.py): moto
carries out the request, then the client gets a 500, as when a response is lost on the way back."""

from __future__ import annotations

from typing import Iterator

import pytest

from drkit.sandbox.faults import FaultInjector, LostResponse, armed_faults


def camel(operation: str) -> str:
    """EC2's API name of a boto3 operation (create_vpc -> CreateVpc)."""
    return "".join(part.capitalize() for part in operation.split("_"))


@pytest.fixture
def faults() -> Iterator[FaultInjector]:
    with armed_faults() as injector:
        yield injector


class Lost:
    """One armed lost answer: fault["lost"] answers lost, fault["calls"] matching requests seen."""

    def __init__(self, fault: LostResponse) -> None:
        self.fault = fault

    def __getitem__(self, what: str) -> int:
        return {"lost": self.fault.fired, "calls": self.fault.seen}[what]


def lose_answer(faults: FaultInjector, operation: str, *, nth: int = 1, times: int = 1, service: str = "ec2") -> Lost:
    """Lose the answers of requests nth .. nth+times-1 of `operation` (boto3's snake_case)."""
    return Lost(faults.lost_response(service, camel(operation), nth=nth, times=times))
