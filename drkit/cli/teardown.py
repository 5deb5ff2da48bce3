from __future__ import annotations

import sys
import time

import click

from drkit.cli.common import (common_options, exit_if_unreachable, reports_errors, require_a_way_to_confirm,
                              show_then_confirm)
from drkit.cli.live import live_view
from drkit.cli.render import PLANNING_ONLY, counts, emit, failure_line


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting anything.")
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@click.option("--step", "steps", multiple=True, help="Only this step (e.g. ensure_vpc:dr); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option("--force", is_flag=True,
              help="Delete at once what AWS would otherwise keep recoverable (the database secret is "
                   "normally scheduled for deletion in 7 days). For CI and sandboxes.")
@common_options
@reports_errors
def teardown(settings, yes, dry_run, steps, as_json, force):
    """Delete everything drkit owns for this env, in an order AWS accepts.

    Only resources carrying drkit's tags for this env are deleted: the default VPC, other envs
    and untagged resources are never touched. Already-deleted resources count as done.
    """
    runner = settings.runner(force=force, writes_state=not dry_run)
    if dry_run:
        outcome = runner.plan_teardown(steps)
        exit_if_unreachable(outcome, runner, as_json=as_json, operation="teardown-plan")
        emit(outcome, runner.config, as_json=as_json, operation="teardown-plan", title="Teardown plan (dry run)",
             nothing="nothing to delete")
        sys.exit(1 if outcome.failed else 0)

    require_a_way_to_confirm(yes)
    confirm = show_then_confirm(runner, yes=yes, as_json=as_json, operation="teardown-plan", title="Teardown plan",
                                nothing="nothing to delete",
                                question=f"Delete these resources of env {runner.config.env!r}?")
    started = time.monotonic()
    with live_view(runner, log_format=settings.log_format, as_json=as_json) as view:
        outcome = runner.teardown(steps, confirm=view.pausing(confirm) if view else confirm)
    total, mutating = runner.aws.stats.snapshot()
    if outcome.planning_failed:  # once applying, the summary says what was done before the network went
        exit_if_unreachable(outcome, runner, as_json=as_json, operation="teardown",
                            aws_calls={"total": total, "mutating": mutating},
                            seconds=round(time.monotonic() - started, 3))
    if outcome.declined:
        click.echo("aborted: nothing was deleted", err=True)
        sys.exit(1)
    if as_json:
        emit(outcome, runner.config, as_json=True, operation="teardown", title="", nothing="",
             aws_calls={"total": total, "mutating": mutating}, seconds=round(time.monotonic() - started, 3))
    else:
        if outcome.failed:
            emit(outcome, runner.config, as_json=False, operation="teardown", nothing="done",
                 title=f"Teardown failed{PLANNING_ONLY if outcome.planning_failed else ''}")
        done = counts(outcome)
        click.echo(
            f"teardown {'FAILED' if outcome.failed else 'done'} in {time.monotonic() - started:.1f}s: "
            f"{failure_line(outcome) + '; ' if outcome.planning_failed else ''}"
            f"{done['delete']} deleted, {done['skip']} left (not provably drkit's); "
            f"AWS calls {total} ({mutating} mutating)"
        )
    sys.exit(1 if outcome.failed else 0)
