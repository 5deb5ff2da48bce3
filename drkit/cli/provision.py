from __future__ import annotations

import sys
import time

import click

from drkit.cli.common import common_options, reports_errors, show_then_confirm
from drkit.cli.live import live_view
from drkit.cli.render import counts, emit


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
    runner = settings.runner()
    if dry_run:
        outcome = runner.plan(steps)
        emit(outcome, runner.config, as_json=as_json, operation="plan", title="Plan (dry run)", nothing="up to date")
        sys.exit(1 if outcome.failed else 0)

    confirm = show_then_confirm(runner, yes=yes, as_json=as_json, operation="plan", title="Plan",
                                nothing="up to date", question="Apply these changes?")
    started = time.monotonic()
    with live_view(runner, log_format=settings.log_format, as_json=as_json) as view:
        outcome = runner.provision(steps, confirm=view.pausing(confirm) if view else confirm)
    total, mutating = runner.aws.stats.snapshot()
    if outcome.declined:
        click.echo("aborted: nothing was changed", err=True)
        sys.exit(1)
    if as_json:
        emit(outcome, runner.config, as_json=True, operation="provision", title="", nothing="",
             aws_calls={"total": total, "mutating": mutating}, seconds=round(time.monotonic() - started, 3))
    else:
        failed = outcome.failed
        if failed:
            emit(outcome, runner.config, as_json=False, operation="provision", title="Provision failed", nothing="done")
        elif not outcome.applied:
            click.echo("Nothing to change: the infrastructure matches the spec.")
        applied = counts(outcome)
        click.echo(
            f"provision {'FAILED' if failed else 'done'} in {time.monotonic() - started:.1f}s: "
            f"{applied['create']} created, {applied['update']} updated; AWS calls {total} ({mutating} mutating); "
            f"state {runner.config.state_path}"
        )
    sys.exit(1 if outcome.failed else 0)
