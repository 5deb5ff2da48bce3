from __future__ import annotations

import sys

import click

from drkit.cli.common import common_options, exit_if_unreachable, reports_errors
from drkit.cli.render import emit


@click.command()
@click.option("--step", "steps", multiple=True, help="Only this step (e.g. ensure_vpc or ensure_vpc:dr); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON document.")
@click.option("--deep", is_flag=True,
              help="Also prove replication works, with canaries that are cleaned up afterwards "
                   "(writes a canary item and object; reads replication lag from CloudWatch).")
@common_options
@reports_errors
def verify(settings, steps, as_json, deep):
    """Check every resource and setting against AWS. Read-only (except --deep's canaries).

    Each difference is a finding: what, where, expected, actual. Exit 1 if there is any, or if
    a deep check fails or has no data to judge by.
    """
    runner = settings.runner()
    outcome = runner.verify(steps, deep=deep)
    exit_if_unreachable(outcome, runner, as_json=as_json, operation="verify")
    probes = outcome.probes
    if as_json:
        emit(outcome, runner.config, as_json=True, operation="verify", title="", nothing="",
             deep_checks=[p.as_dict() for p in probes] if deep else None)
    else:
        emit(outcome, runner.config, as_json=False, operation="verify", title="Verify", nothing="matches the spec")
        for probe in probes:
            click.echo(f"  deep {probe.step} ({probe.region}): {probe.describe()}")
    bad_probe = any(p.ok is not True for p in probes)
    sys.exit(1 if outcome.failed or outcome.changes or bad_probe else 0)
