"""Runbook actions and checks on traffic and records: the DNS region switch, the state's active
region, canary payments, health, and the sandbox's outage switch (drills).

The DNS switch is drkit.region_switch: a PutMetricData in the DR region (a data-plane call), never
a Route 53 control-plane change. Health is read two ways: the target API's /health as Route 53's
checkers read it (HTTPS, data plane), and -- where the step may call Route 53 -- the health
check's own status. A canary payment goes through the target region's API, as a client's would.
"""

from __future__ import annotations

from typing import Any

from drkit import region_switch
from drkit.errors import DegradedModeError, DrkitError
from drkit.runbook import reads
from drkit.runbook.context import Direction, RunContext
from drkit.runbook.registry import Verdict, action, check

CANARY_MERCHANT = "drkit-canary"
RECORDS_STEP = "ensure_failover_records:global"


# DNS switch --------------------------------------------------------------------------------------


def _switch_applies(rc: RunContext, d: Direction) -> str | None:
    """The switch lives in the DR region. Failing over *to the primary* because the DR region is
    impaired needs no switch: the DR API's health check fails, so Route 53 answers the primary."""
    if rc.avoiding_source() and rc.region(d.frm) == rc.config.dr_region and d.to == "primary":
        return (f"the region switch lives in the impaired region {rc.config.dr_region}; with its API unhealthy "
                "Route 53 already answers the primary")
    return None


@action("dns.switch", applies=_switch_applies,
        planned=lambda rc, d: [f"cloudwatch PutMetricData in {rc.config.dr_region} ({region_switch.NAMESPACE} "
                               f"{region_switch.METRIC}={1 if d.to == 'dr' else 0}, Environment={rc.config.env})"],
        change=lambda rc, d: f"the public name {rc.config.names.api_hostname} is answered by {rc.region(d.to)} "
                             f"(the region switch says {d.to})",
        preconditions="the switch alarm exists (ensure_failover_records)")
def switch_dns(rc: RunContext, d: Direction, spec: Any) -> str:
    """Publish the switch value, and again on every poll until the alarm agrees: an alarm that saw
    both values within one period (a quick switch back) takes the period's Maximum, and with
    missing data ignored it would keep that state for good without a later datapoint."""
    done = region_switch.activate(rc.config, rc.aws, d.to)

    def poll() -> dict[str, Any]:
        now = region_switch.read(rc.config, rc.aws)
        if now["active"] != d.to:
            region_switch.activate(rc.config, rc.aws, d.to)
        return now

    rc.waiter.until(f"the region switch alarm to say {d.to}", poll, lambda now: now["active"] == d.to,
                    describe=lambda now: f"alarm {now['alarm_state']}", timeout=spec.timeout)
    return f"region switch set to {done['activated']} ({done['switch_value']:.0f} in {done['switch_region']})"


@check("dns.switch_is_target")
def switch_is_target(rc: RunContext, d: Direction) -> Verdict:
    now = region_switch.read(rc.config, rc.aws)
    return Verdict(now["active"] == d.to, f"switch alarm {now['alarm_state']}, last value {now['last_value']}: "
                                          f"{now['active']} active")


@check("dns.answers_target")
def answers_target(rc: RunContext, d: Direction) -> Verdict:
    """Route 53's answer for the public name (TestDNSAnswer, a control-plane read: drills only)."""
    from steps.failover_records import dns_answer, route53_region

    outputs = rc.state.all_outputs()
    zone = outputs.get("ensure_hosted_zone:global", {}).get("route53_zone_id")
    if not zone:
        return Verdict(False, "no hosted zone recorded", failed="the state records no hosted zone")
    answer = dns_answer(rc.aws, zone, rc.config.names.api_hostname, route53_region(rc.config))
    target = (outputs.get(f"ensure_custom_domain:{d.to}", {}).get("custom_domain_target") or "").rstrip(".").lower()
    return Verdict(bool(target) and target in answer, f"{rc.config.names.api_hostname} -> {', '.join(answer) or 'nothing'}")


# The state's active region -----------------------------------------------------------------------


@action("state.activate", destructive=False,
        planned=lambda rc, d: [f"no AWS call: the state's active region becomes {rc.region(d.to)} (a state write)"],
        change=lambda rc, d: f"the state's active region becomes {rc.region(d.to)}")
def activate(rc: RunContext, d: Direction, spec: Any) -> str:
    """Recorded in the state when it can be written; otherwise (degraded S3 state, --no-state)
    journaled, and `drkit state reconcile` applies it once the home region is back."""
    region = rc.region(d.to)
    recorded, why = True, ""
    if rc.options.no_state:
        recorded, why = False, "--no-state"
    else:
        try:
            rc.state.set_active(d.to, region, run_id=rc.run_id, runbook=rc.runbook.name, at=_iso(rc))
        except DegradedModeError as exc:
            recorded, why = False, exc.one_line()
    rc.remember("state_active", d.to)
    rc.record("state.active", from_role=d.frm, to_role=d.to, region=region, recorded=recorded)
    if not recorded:
        rc.echo(f"  NOT RECORDED in the state ({why}): the active region is now {region}; "
                "the journal holds it for `drkit state reconcile`")
        return f"active region {region} journaled, not in the state ({why})"
    return f"active region {region} recorded"


@check("state.target_is_active")
def target_is_active(rc: RunContext, d: Direction) -> Verdict:
    active = rc.state.active_role()
    ok = active == d.to or rc.facts.get("state_active") == d.to
    return Verdict(ok, f"the state's active region is {rc.region(active)}" +
                   (f" (journaled: {rc.region(d.to)})" if ok and active != d.to else ""))


# Canary payments ---------------------------------------------------------------------------------


def _api(rc: RunContext, role: str) -> str:
    key = f"api_id:{role}"
    if key not in rc.facts:
        found = rc.state.outputs(f"ensure_rest_api:{role}").get("api_id") or reads.rest_api_id(rc.config, rc.aws, role)
        if not found:
            raise DrkitError(f"no payment API {rc.config.names.api(role)} in {rc.region(role)}")
        rc.facts[key] = found
    return str(rc.facts[key])


def _canary_key(rc: RunContext, d: Direction) -> str:
    return f"drkit-canary-{rc.run_id}-{d.to}"


@action("canary.payment", destructive=False,
        planned=lambda rc, d: [f"HTTPS POST https://<{rc.config.names.api(d.to)}>.execute-api.{rc.region(d.to)}"
                               f".amazonaws.com/prod/payment (Idempotency-Key {_canary_key(rc, d)}; a data-plane "
                               "request, replayable)"],
        change=lambda rc, d: f"one canary payment (merchant {CANARY_MERCHANT}) through {rc.region(d.to)}'s API")
def canary_payment(rc: RunContext, d: Direction, spec: Any) -> str:
    """The Idempotency-Key makes a resend (a lost answer, a resumed run) the same payment."""
    body = {"amount": "0.01", "currency": "EUR", "merchant_id": CANARY_MERCHANT, "card_token": "tok_drkit_canary"}
    answer = reads.call_api(rc.config, _api(rc, d.to), d.to, "/payment", method="POST", body=body,
                            headers={"Idempotency-Key": _canary_key(rc, d)})
    if not answer.ok or not answer.body.get("transactionId"):
        raise DrkitError(f"the {rc.region(d.to)} API refused the canary payment: {answer.status} "
                         f"{answer.error or answer.body}")
    rc.remember(f"canary:{d.to}", answer.body["transactionId"])
    rc.measure("writes_accepted", rc.since_start(), "s", f"{rc.region(d.to)} accepted a payment through its API")
    return f"payment {answer.body['transactionId']} accepted by {rc.region(d.to)} ({answer.status})"


def _item(rc: RunContext, role: str, transaction: str) -> bool:
    found = rc.aws.call("dynamodb", rc.region(role), "get_item", TableName=rc.config.names.dynamodb_table,
                        Key={"transactionId": {"S": transaction}}, ConsistentRead=True)
    return "Item" in found


def _canary_in(rc: RunContext, d: Direction, role: str) -> Verdict:
    """The canary made through `d.to`'s API, read from `role`'s table; found, it is deleted (the
    delete replicates like the write), so no test payment stays behind."""
    transaction = rc.facts.get(f"canary:{d.to}")
    if not transaction:
        return Verdict(False, "no canary payment made yet")
    if not _item(rc, role, transaction):
        return Verdict(False, f"{transaction} not yet in {rc.region(role)}'s table")
    _clean(rc, d.to, transaction)
    return Verdict(True, f"{transaction} written in {rc.region(d.to)}, read in {rc.region(role)}")


@check("canary.replicated")
def canary_replicated(rc: RunContext, d: Direction) -> Verdict:
    """New writes replicate from the new active region: read back from the other region."""
    return _canary_in(rc, d, d.frm)


@check("canary.accepted")
def canary_accepted(rc: RunContext, d: Direction) -> Verdict:
    """A failover's proof stays in the target region: the canary is in its own table."""
    return _canary_in(rc, d, d.to)


def _clean(rc: RunContext, role: str, transaction: str) -> None:
    """The canary leaves no payment behind (the delete replicates like the write)."""
    rc.aws.call("dynamodb", rc.region(role), "delete_item", TableName=rc.config.names.dynamodb_table,
                Key={"transactionId": {"S": transaction}}, resource=transaction)


# Health ------------------------------------------------------------------------------------------


@check("health.target_healthy")
def target_healthy(rc: RunContext, d: Direction) -> Verdict:
    """The target's /health answers 200 (what Route 53's checkers probe); where the step may call
    Route 53, its health check's checkers must report success too."""
    answer = reads.call_api(rc.config, _api(rc, d.to), d.to, "/health")
    if not answer.ok:
        return Verdict(False, f"/health in {rc.region(d.to)}: {answer.status} {answer.error or answer.body}")
    detail = f"/health in {rc.region(d.to)}: {answer.status}"
    if not rc.avoiding_source():
        check_id = rc.state.outputs(RECORDS_STEP).get(f"{d.to}_health_check_id")
        if check_id:
            from steps.failover_records import route53_region

            found = rc.aws.call("route53", route53_region(rc.config), "get_health_check_status", HealthCheckId=check_id)
            reports = [o["StatusReport"]["Status"] for o in found.get("HealthCheckObservations", [])]
            healthy = sum(1 for r in reports if r.startswith("Success"))
            if not reports or healthy * 2 <= len(reports):
                return Verdict(False, f"{detail}; Route 53: {healthy}/{len(reports)} checkers healthy")
            detail += f"; Route 53: {healthy}/{len(reports)} checkers healthy"
    rc.measure("health_check_healthy", rc.since_start(), "s", detail)
    return Verdict(True, detail)


# The sandbox's outage switch (drills) ------------------------------------------------------------


def _outage(rc: RunContext) -> Any:
    from drkit.sandbox.outage import RemoteOutage

    return RemoteOutage(rc.config.endpoint_url or "")


def _outage_applies(rc: RunContext, d: Direction) -> str | None:
    if not rc.config.endpoint_url:
        return "AWS has no outage switch: the outage is assumed (the failover gate needs --force)"
    return None


@action("sandbox.outage_begin", destructive=False, applies=_outage_applies,
        planned=lambda rc, d: [f"sandbox: POST /drkit-sandbox/outage {{region: {rc.region(rc.source)}, aws_apis: true}}"],
        change=lambda rc, d: f"the sandbox declares {rc.region(rc.source)} out (its APIs and AWS endpoints answer 503)")
def outage_begin(rc: RunContext, d: Direction, spec: Any) -> str:
    _outage(rc).begin(rc.region(rc.source), aws_apis=True)
    return f"sandbox outage of {rc.region(rc.source)} declared"


@action("sandbox.outage_end", destructive=False, applies=_outage_applies,
        planned=lambda rc, d: [f"sandbox: DELETE /drkit-sandbox/outage {{region: {rc.region(rc.source)}}}"],
        change=lambda rc, d: f"the sandbox ends the outage of {rc.region(rc.source)}")
def outage_end(rc: RunContext, d: Direction, spec: Any) -> str:
    _outage(rc).end(rc.region(rc.source))
    return f"sandbox outage of {rc.region(rc.source)} ended"


@check("sandbox.source_out")
def source_out(rc: RunContext, d: Direction) -> Verdict:
    out = rc.region(rc.source) in _outage(rc).regions()
    return Verdict(out, f"{rc.region(rc.source)} {'is' if out else 'is not'} out")


@check("sandbox.source_back")
def source_back(rc: RunContext, d: Direction) -> Verdict:
    out = rc.region(rc.source) in _outage(rc).regions()
    return Verdict(not out, f"{rc.region(rc.source)} {'is still out' if out else 'is back'}")


def _iso(rc: RunContext) -> str:
    from drkit.runbook.context import iso

    return iso(rc.now())
