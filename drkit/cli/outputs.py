from __future__ import annotations

import json

import click

from drkit.cli.common import common_options, reports_errors
from drkit.outputs import flat_outputs


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one flat JSON object (the seed's output names).")
@common_options
@reports_errors
def outputs(settings, as_json):
    """Print the stack's outputs (VPC ids, endpoints, ...) from the state file. No AWS call."""
    config = settings.config()
    values = flat_outputs(config, settings.runner(calls_aws=False).outputs())
    if as_json:
        click.echo(json.dumps(values, indent=2, sort_keys=True))
    else:
        width = max(len(k) for k in values)
        for key, value in sorted(values.items()):
            shown = ", ".join(value) if isinstance(value, list) else value
            click.echo(f"{key.ljust(width)}  {shown}")
