from __future__ import annotations

import json
from typing import Any

import click

from drkit.aws import RetryPolicy
from drkit.cli.common import common_options, reports_errors
from drkit.state import load_state
from drkit.status import UNREACHABLE, read_status


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON document.")
@common_options
@reports_errors
def status(settings, as_json):
    """Show which region is active and how both stand. Read-only: no change, no lock.

    The active region (from the state: since when, which run made it active), each region's
    health (its API's Route 53 health check, its Aurora cluster, whether its AWS APIs answer),
    the Aurora replication lag, what DNS answers, what the region switch says, and runbooks in
    progress. A region that cannot be reached is shown as unreachable; the exit code is 0.
    """
    # Two attempts per call, not four: during an outage an answer now matters more than riding
    # out a blip (throttling keeps drkit's own retry budget), and a region that failed once is
    # not asked again (drkit/status.py).
    runner = settings.runner(retry=RetryPolicy(botocore_max_attempts=2))
    state = load_state(runner.config, persist=False, storage=runner.storage)
    document = read_status(runner.config, runner.aws, state, runner.storage)
    if as_json:
        click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))
    else:
        click.echo("\n".join(lines(document)))


def lines(doc: dict[str, Any]) -> list[str]:
    """The document for a person: one line per fact."""
    by = doc.get("activated_by") or {}
    since = f" since {doc['since']} (run {by.get('run_id')}, {by.get('runbook')})" if doc.get("since") else \
        " (never switched)"
    out = [f"Active region: {doc['active_role']} ({doc['active_region']}){since}"]
    for role, region in doc["regions"].items():
        writer = {True: "writer", False: "reader", None: "not a member"}[region.get("aurora_writer")]
        out.append(f"  {role:<7} {region['region']}: AWS APIs {region['api']}; API health "
                   f"{_health(region['health_check'])}; Aurora {region['aurora_cluster']} {region['aurora_status']}, "
                   f"{writer}")
        if region["api"] == UNREACHABLE:
            out.append(f"          {region.get('error')}")
    aurora = doc.get("aurora") or {}
    if aurora.get("failover_state"):
        out.append(f"Aurora {aurora.get('global_cluster')}: {aurora.get('status')} {aurora['failover_state']}")
    lag = doc.get("replication_lag") or {}
    if "error" in lag:
        out.append(f"Replication lag: unknown ({_why(lag)})")
    elif lag.get("latest_ms") is None:
        out.append(f"Replication lag: no data for {lag.get('cluster')} in the last {lag.get('window_minutes')} minutes")
    else:
        out.append(f"Replication lag: {lag['latest_ms']:.0f} ms ({lag['cluster']} in {lag['region']}; "
                   f"max {lag['max_ms']:.0f} ms over {lag['window_minutes']} min)")
    dns = doc.get("dns_answers") or {}
    answers = dns.get("note") or ", ".join(dns.get("records") or []) or "no answer"
    out.append(f"DNS: unknown ({_why(dns)})" if "error" in dns else
               f"DNS: {dns.get('hostname')} -> {dns.get('region') or 'unknown'} ({answers})")
    switch = doc.get("region_switch") or {}
    out.append(f"Region switch: unknown ({_why(switch)})" if "error" in switch else
               f"Region switch: {switch.get('active')} active (alarm {switch.get('alarm_state') or 'not found'}, "
               f"last value {switch.get('last_value')})")
    runs = doc.get("runbooks_in_progress")
    if runs is None:
        out.append(f"Runbooks in progress: unknown ({doc.get('runbooks_error')})")
    elif not runs:
        out.append("Runbooks in progress: none")
    for run in runs or []:
        last = run.get("last", {})
        out.append(f"Runbook in progress: {run['runbook']} {run['run_id']} started {run.get('started_at')}, "
                   f"last {last.get('type')} {last.get('step') or ''} at {last.get('at')}".rstrip())
    state = doc.get("state", {})
    degraded = " (degraded: read from the replica)" if state.get("degraded") else ""
    out.append(f"State: {state.get('location')}{degraded}")
    return out


def _why(part: dict[str, Any]) -> str:
    """Why a part is unknown: the region that did not answer (its error is on its region's line),
    or the error itself."""
    return f"{part[UNREACHABLE]} unreachable" if part.get(UNREACHABLE) else part["error"]


def _health(check: dict[str, Any]) -> str:
    if "error" in check:
        return f"unknown ({_why(check)})"
    if "checkers" in check:
        return f"{check['status']} ({check['checkers_healthy']}/{check['checkers']} checkers)"
    return check.get("status", "unknown")
