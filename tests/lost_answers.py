"""Lost answers for step tests: AWS (moto) carries the request out, the client gets a 500.

Until drkit.sandbox.faults lands, a botocore hook stands in for it: `provide-client-params` picks
the nth call that matches, and its `after-call` -- run once moto has applied the request -- raises
the 500 a lost response looks like to drkit's gateway (an unknown outcome)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

from botocore.exceptions import ClientError


def lose_answer(aws: Any, service: str, region: str, operation: str, *, nth: int = 1, times: int = 1,
                when: Callable[[dict[str, Any]], bool] = lambda params: True) -> SimpleNamespace:
    """Lose the answer to the `nth` call (and the `times - 1` after it) of `operation`
    (the API name, e.g. "UpdateTable") whose parameters satisfy `when`. Returns a counter:
    `.lost` says how many answers were lost, `.calls` how many matching calls were made."""
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
