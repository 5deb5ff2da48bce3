"""Lost answers for tests: AWS (moto) carries out the request, then the client gets a 500, as
when a response is lost on the way back. Until drkit/sandbox/faults.py lands this wraps the call
with a botocore `after-call` hook, on both of the gateway's clients (with and without resends)."""

from __future__ import annotations

from typing import Iterable

import botocore.exceptions

from tests.conftest import DR, PRIMARY


def camel(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def lose_answer(runner, operation: str, *, nth: int = 1, times: int = 1, service: str = "ec2",
                regions: Iterable[str] = (PRIMARY, DR)) -> dict[str, int]:
    """Lose the answers of calls nth .. nth+times-1 of `operation` (snake_case). Returns a
    counter: "calls" seen, "lost" answers (so a test can prove the fault fired)."""
    seen = {"calls": 0, "lost": 0}
    api_name = camel(operation)

    def after_call(model, **_):
        if model.name != api_name:
            return
        seen["calls"] += 1
        if nth <= seen["calls"] < nth + times:
            seen["lost"] += 1
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "InternalError", "Message": "lost answer (test)"},
                 "ResponseMetadata": {"HTTPStatusCode": 500}}, api_name)

    for region in regions:
        for resend in (True, False):
            runner.aws.client(service, region, resend=resend).meta.events.register(
                f"after-call.{service}.{api_name}", after_call)
    return seen
