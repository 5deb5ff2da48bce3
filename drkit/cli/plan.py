from __future__ import annotations

import sys

import click

from drkit.cli.common import common_options, exit_if_unreachable, reports_errors
from drkit.cli.render import emit


@click.command()
@click.option("--step", "steps", multiple=True, help="Only this step (e.g. ensure_vpc or ensure_vpc:dr); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON document.")
@common_options
@reports_errors
def plan(settings, steps, as_json):
    """Show what `provision` would change. Reads AWS; changes nothing."""
    runner = settings.runner()
    outcome = runner.plan(steps)
    exit_if_unreachable(outcome, runner, as_json=as_json, operation="plan")
    emit(outcome, runner.config, as_json=as_json, operation="plan", title="Plan", nothing="up to date")
    sys.exit(1 if outcome.failed else 0)
