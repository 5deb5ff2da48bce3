from __future__ import annotations

import sys

import click

from drkit.cli.common import common_options, reports_errors
from drkit.cli.render import emit


@click.command()
@click.option("--step", "steps", multiple=True, help="Only this step (e.g. ensure_vpc or ensure_vpc:dr); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON document.")
@common_options
@reports_errors
def verify(settings, steps, as_json):
    """Check every resource and setting against AWS. Read-only.

    Each difference is a finding: what, where, expected, actual. Exit 1 if there is any.
    """
    runner = settings.runner()
    outcome = runner.verify(steps)
    emit(outcome, runner.config, as_json=as_json, operation="verify", title="Verify", nothing="matches the spec")
    sys.exit(1 if outcome.failed or outcome.changes else 0)
