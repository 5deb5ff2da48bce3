from __future__ import annotations

import sys
import time

import click

from drkit.cli.common import (common_options, exit_if_unreachable, reports_errors, require_a_way_to_confirm,
                              show_then_confirm)
from drkit.cli.live import live_view
from drkit.cli.render import PLANNING_ONLY, counts, emit, failure_line


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask before changing anything.")
@click.option("--dry-run", is_flag=True, help="Only show the plan (same as `drkit plan`).")
@click.option("--step", "steps", multiple=True, help="Only this step (e.g. ensure_vpc or ensure_vpc:dr); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@common_options
@reports_errors
def provision(settings, yes, dry_run, steps, as_json):
    """Create or repair the infrastructure until it matches the spec.

    Shows the plan, asks (unless --yes), then applies it step by step, saving the state file
    after every resource: a run that is interrupted resumes where it stopped when re-run.
    Differences that would need a replacement (a changed CIDR) are refused, not applied.
    """
    runner = settings.runner(writes_state=not dry_run)
    if dry_run:
        outcome = runner.plan(steps)
        exit_if_unreachable(outcome, runner, as_json=as_json, operation="plan")
        emit(outcome, runner.config, as_json=as_json, operation="plan", title="Plan (dry run)", nothing="up to date")
        sys.exit(1 if outcome.failed else 0)

    require_a_way_to_confirm(yes)
    confirm = show_then_confirm(runner, yes=yes, as_json=as_json, operation="plan", title="Plan",
                                nothing="up to date", question="Apply these changes?")
    started = time.monotonic()
    with live_view(runner, log_format=settings.log_format, as_json=as_json) as view:
        outcome = runner.provision(steps, confirm=view.pausing(confirm) if view else confirm)
    total, mutating = runner.aws.stats.snapshot()
    if outcome.planning_failed:  # once applying, the summary says what was done before the network went
        exit_if_unreachable(outcome, runner, as_json=as_json, operation="provision",
                            aws_calls={"total": total, "mutating": mutating},
                            seconds=round(time.monotonic() - started, 3))
    if outcome.declined:
        click.echo("aborted: nothing was changed", err=True)
        sys.exit(1)
    if as_json:
        emit(outcome, runner.config, as_json=True, operation="provision", title="", nothing="",
             aws_calls={"total": total, "mutating": mutating}, seconds=round(time.monotonic() - started, 3))
    else:
        failed = outcome.failed
        if failed:
            emit(outcome, runner.config, as_json=False, operation="provision", nothing="done",
                 title=f"Provision failed{PLANNING_ONLY if outcome.planning_failed else ''}")
        elif not outcome.applied:
            click.echo("Nothing to change: the infrastructure matches the spec.")
        applied = counts(outcome)
        click.echo(
            f"provision {'FAILED' if failed else 'done'} in {time.monotonic() - started:.1f}s: "
            f"{failure_line(outcome) + '; ' if outcome.planning_failed else ''}"
            f"{applied['create']} created, {applied['update']} updated; AWS calls {total} ({mutating} mutating); "
            f"state {runner.config.state_name}"
        )
    sys.exit(1 if outcome.failed else 0)
