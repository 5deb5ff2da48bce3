"""How results are shown: a readable listing by default, one JSON document with --json."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import click

from drkit.config import Config
from drkit.runner import Outcome
from drkit.step import CREATE, DELETE, REPLACE, SKIP, UPDATE, WAIT

PLANNING_ONLY = " while planning: the changes below were planned, none was applied"

SYMBOLS = {CREATE: "+", UPDATE: "~", REPLACE: "!", DELETE: "-", WAIT: ".", SKIP: "?"}


def counts(outcome: Outcome) -> dict[str, int]:
    """Changes by action: what was done -- so nothing at all when planning failed."""
    return planned_counts(Outcome([]) if outcome.planning_failed else outcome)


def planned_counts(outcome: Outcome) -> dict[str, int]:
    tally = Counter(c.action for c in outcome.changes)
    return {action: tally.get(action, 0) for action in (CREATE, UPDATE, REPLACE, WAIT, DELETE, SKIP)}


def failure_line(outcome: Outcome) -> str:
    """Why nothing was applied, naming the steps that failed (empty unless planning failed)."""
    if not outcome.planning_failed:
        return ""
    failed = ", ".join(r.step.key for r in outcome.failed)
    return f"planning failed in {failed}: nothing was applied"


def summary(outcome: Outcome) -> str:
    """The one line operators know from other tools: `+12 create, ~1 update, -0 delete`."""
    tally = counts(outcome)
    return f"+{tally[CREATE]} create, ~{tally[UPDATE]} update, -{tally[DELETE]} delete"


PLAN_OPERATIONS = ("plan", "teardown-plan")


def listing(outcome: Outcome, config: Config, title: str, nothing: str, *, with_summary: bool = False) -> str:
    lines = [f"{title} -- env {config.env}, primary {config.primary_region}, dr {config.dr_region}"]
    for result in outcome.results:
        region = result.region or config.region(result.step.role)
        lines.append(f"{result.step.key} ({region})")
        if result.error is not None:
            message = getattr(result.error, "one_line", lambda: f"{type(result.error).__name__}: {result.error}")()
            lines.append(f"  x failed: {message}")
        elif result.skipped:
            lines.append("  x skipped: an earlier step failed")
        elif not result.changes:
            lines.append(f"  = {nothing}")
        for change in result.changes:
            lines.append(f"  {SYMBOLS.get(change.action, '*')} {change.describe()}")
    if outcome.planning_failed:
        planned = sum(planned_counts(outcome).values())
        lines.append(f"{failure_line(outcome)} ({planned} change(s) were planned)")
    else:
        tally = counts(outcome)
        lines.append(", ".join(f"{n} {action}" for action, n in tally.items() if n) or "no changes")
        if with_summary:
            lines.append(summary(outcome))
    return "\n".join(lines)


def document(outcome: Outcome, config: Config, operation: str, **extra: Any) -> dict[str, Any]:
    return {
        "operation": operation,
        "env": config.env,
        "primary_region": config.primary_region,
        "dr_region": config.dr_region,
        "ok": outcome.ok,
        "steps": [
            {
                "step": r.step.key,
                "region": r.region or config.region(r.step.role),
                "status": "failed" if r.error else "skipped" if r.skipped else "ok",
                "error": getattr(r.error, "one_line", lambda: str(r.error))() if r.error else None,
                "seconds": round(r.seconds, 3),
                "changes": [c.as_dict() for c in r.changes],
            }
            for r in outcome.results
        ],
        "counts": counts(outcome),
        "failed_steps": [r.step.key for r in outcome.failed],
        **({"planning_failed": True, "planned_counts": planned_counts(outcome)} if outcome.planning_failed else {}),
        **extra,
    }


def emit(outcome: Outcome, config: Config, *, as_json: bool, operation: str, title: str, nothing: str, **extra: Any) -> None:
    if as_json:
        click.echo(json.dumps(document(outcome, config, operation, **extra), indent=2, default=str))
    else:
        click.echo(listing(outcome, config, title, nothing, with_summary=operation in PLAN_OPERATIONS))
