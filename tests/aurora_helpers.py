"""Fault injection for the Aurora and secret tests: lost answers and AWS answers moto does not
give, on both of drkit's clients (calls with `settled` use the one that never resends).

Until drkit/sandbox/faults.py lands, a lost answer is an `after-call` hook that raises a 500
after moto has carried the request out; a faked answer is a `before-call` hook that returns an
error response without reaching moto.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import ClientError

from drkit.runner import Runner


def hook(runner: Runner, service: str, region: str, event: str, handler: Callable[..., Any]) -> None:
    for resend in (True, False):
        runner.aws.client(service, region, resend=resend).meta.events.register(event, handler)


@dataclass
class Calls:
    """How many requests of one operation were sent, and how many answers were lost."""

    sent: int = 0
    lost: int = 0
    params: list[dict] = field(default_factory=list)


def lose_answer(runner: Runner, service: str, region: str, operation: str, nth: int = 1) -> Calls:
    """The nth successful `operation` (API name) in `region` is carried out, but its answer is lost."""
    calls = Calls()

    def sent(params: dict, **_: Any) -> None:
        calls.sent += 1
        calls.params.append(dict(params))

    def after(http_response: Any, **_: Any) -> None:
        if http_response.status_code < 300:
            if calls.sent == nth and calls.lost == 0:
                calls.lost += 1
                raise ClientError({"Error": {"Code": "InternalFailure", "Message": "answer lost"},
                                   "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)

    hook(runner, service, region, f"before-parameter-build.{service}.{operation}", sent)
    hook(runner, service, region, f"after-call.{service}.{operation}", after)
    return calls


class _Status:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict = {}


def error_answer(code: str, message: str, status: int = 400) -> tuple[_Status, dict]:
    return _Status(status), {"Error": {"Code": code, "Message": message},
                             "ResponseMetadata": {"HTTPStatusCode": status}}


def fake_answers(runner: Runner, service: str, region: str, operation: str,
                 answer: Callable[[dict], tuple | None]) -> None:
    """`answer(params)` may return an error_answer() to send instead of the request (None: send it)."""

    def before(params: dict, **_: Any) -> tuple | None:
        return answer(params)

    hook(runner, service, region, f"before-call.{service}.{operation}", before)
