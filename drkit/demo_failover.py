"""The demo's regional outage: DNS answers the primary, the primary region goes out (its API
hosts answer 503, as an impaired region's would), Route 53's health checks see it within their
failure threshold and DNS answers the DR region; the outage ends and DNS comes back.

Each TestDNSAnswer is one round of the sandbox's health checkers, so "within the threshold" is a
few reads here where AWS takes about 90 s (3 failures x 30 s).
"""

from __future__ import annotations

import time
from typing import Any

from drkit.sandbox.outage import active_outages
from steps.failover_records import dns_answer, route53_region

MAX_ROUNDS = 10


def answered_region(runner: Any) -> str:
    """The region whose custom domain Route 53 answers for the public name now."""
    outputs = runner.outputs()
    zone = outputs.get("ensure_hosted_zone:global", {}).get("route53_zone_id")
    if not zone:
        return "no zone"
    data = dns_answer(runner.aws, zone, runner.config.names.api_hostname, route53_region(runner.config))
    for role in ("primary", "dr"):
        target = (outputs.get(f"ensure_custom_domain:{role}", {}).get("custom_domain_target") or "").rstrip(".").lower()
        if target and target in data:
            return runner.config.region(role)
    return f"unknown {data}"


def until_answered(runner: Any, region: str) -> tuple[str, int]:
    """Read the answer until it is `region` (or MAX_ROUNDS rounds): (last answer, rounds)."""
    answer = ""
    for rounds in range(1, MAX_ROUNDS + 1):
        answer = answered_region(runner)
        if answer == region:
            return answer, rounds
    return answer, MAX_ROUNDS


def outage(runner: Any) -> tuple[bool, float, str, list[str]]:
    """(ok, seconds, summary, lines) of: primary answered -> outage -> DR answered -> end -> primary."""
    config = runner.config
    started = time.monotonic()
    lines, ok = [], True
    before, _ = until_answered(runner, config.primary_region)
    ok &= before == config.primary_region
    lines.append(f"DNS answers {before} before the outage")
    active_outages().begin(config.primary_region)
    try:
        during, rounds = until_answered(runner, config.dr_region)
        ok &= during == config.dr_region
        lines.append(f"outage of {config.primary_region} declared: DNS answers {during} after {rounds} "
                     f"health-check rounds")
    finally:
        active_outages().end(config.primary_region)
    after, rounds = until_answered(runner, config.primary_region)
    ok &= after == config.primary_region
    lines.append(f"outage ended: DNS answers {after} again after {rounds} rounds")
    return ok, time.monotonic() - started, f"DNS {before} -> {during} -> {after}", lines
