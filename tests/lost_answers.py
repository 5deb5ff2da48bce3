"""Lost answers for tests, through the sandbox's fault injector (drkit/sandbox/faults.py): moto
carries out the request, then the client gets a 500, as when a response is lost on the way back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Iterator

import pytest
from botocore.exceptions import ClientError

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


def lose_matching_answer(aws: Any, service: str, region: str, operation: str, *, nth: int = 1, times: int = 1,
                         when: Callable[[dict[str, Any]], bool] = lambda params: True) -> SimpleNamespace:
    """Lose the answer to the `nth` call (and the `times - 1` after it) of `operation` (the API
    name, e.g. "UpdateTable") whose boto3 parameters satisfy `when` -- for calls the fault
    injector cannot tell apart by operation (UpdateTable adding a replica vs. a stream). moto
    applies the request; the gateway's client then raises the 500 a lost answer looks like.
    Returns a counter: `.lost` answers lost, `.calls` matching calls made."""
    seen = SimpleNamespace(calls=0, lost=0)

    def pick(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if when(params):
            seen.calls += 1
            if nth <= seen.calls < nth + times:
                context["drkit_test_lose_answer"] = True

    def lose(context: dict[str, Any], **_: Any) -> None:
        if context.pop("drkit_test_lose_answer", False):
            seen.lost += 1
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected: answer lost"},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)

    for resend in (True, False):  # calls with `settled` use the client that does not resend
        events = aws.client(service, region, resend=resend).meta.events
        events.register(f"provide-client-params.{service}.{operation}", pick)
        events.register(f"after-call.{service}.{operation}", lose)
    return seen
