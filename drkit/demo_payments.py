"""The demo's payment round trip: one real payment through each region's REST API, the same
Idempotency-Key replayed, and the public name answered by each region's custom domain.

Requests go to the sandbox over HTTP the way a client reaches API Gateway: the stage URL
(`/restapis/<id>/prod/_user_request_/payment`, the sandbox's form of
`https://<id>.execute-api.<region>.amazonaws.com/prod/payment`), and the custom domain by its
Host header (`X-Drkit-Sandbox-Region` picks the region, as Route 53 would).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping

DEMO_PAYMENT = {"amount": "12.50", "currency": "EUR", "merchant_id": "m-demo", "card_token": "tok_demo_4f9a8b7c"}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: dict[str, Any]


def request(url: str, *, method: str = "GET", body: Any = None, headers: Mapping[str, str] | None = None) -> Answer:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw, got = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        parsed = {"raw": raw[:200].decode(errors="replace")}
    return Answer(status, got, parsed if isinstance(parsed, dict) else {"value": parsed})


def round_trip(endpoint: str, outputs: Mapping[str, Any], role: str, region: str, hostname: str) -> tuple[bool, str]:
    """Pay, replay with the same key, and check /health through the custom domain. Returns
    whether all went as a client expects, and one line saying what happened."""
    api_id = outputs.get(f"{role}_api_id")
    if not api_id:
        return False, f"{role}: no API recorded"
    stage = f"{endpoint}/restapis/{api_id}/prod/_user_request_"
    key = {"Idempotency-Key": f"drkit-demo-{role}"}
    first = request(f"{stage}/payment", method="POST", body=DEMO_PAYMENT, headers=key)
    again = request(f"{stage}/payment", method="POST", body=DEMO_PAYMENT, headers=key)
    health = request(f"{endpoint}/health", headers={"Host": hostname, "X-Drkit-Sandbox-Region": region})
    transaction = first.body.get("transactionId")
    replayed = again.status == first.status and again.body.get("transactionId") == transaction
    ok = first.status == 201 and replayed and health.status == 200 and health.body.get("region") == region
    line = (f"{role} ({region}): POST /payment -> {first.status} {transaction or first.body}, replayed -> "
            f"{again.status} {'same transaction' if replayed else again.body}; "
            f"https://{hostname}/health -> {health.status} {health.body.get('region') or health.body}")
    return ok, line
