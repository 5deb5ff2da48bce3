from __future__ import annotations

import json
from pathlib import Path

import click

from drkit.cli.common import common_options, reports_errors
from drkit.errors import UserInputError
from drkit.outputs import flat_outputs, write_flat


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one flat JSON object (the seed's output names).")
@click.option("--write", "write_path", type=click.Path(path_type=Path), default=None,
              help="Also write the flat JSON object to this file, atomically (e.g. cfn-outputs/flat-outputs.json).")
@common_options
@reports_errors
def outputs(settings, as_json, write_path):
    """Print the stack's outputs (VPC ids, endpoints, ...) from the state file. No AWS call."""
    if write_path is not None and (write_path.is_dir() or any(p.is_file() for p in write_path.parents)):
        raise UserInputError(f"--write {write_path}: not a writable file path")
    config = settings.config()
    values = flat_outputs(config, settings.runner(calls_aws=False).outputs())
    if write_path is not None:
        try:
            write_flat(write_path, values)
        except OSError as exc:
            raise UserInputError(f"--write {write_path}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(json.dumps(values, indent=2, sort_keys=True))
    elif write_path is not None:
        click.echo(f"wrote {len(values)} outputs to {write_path}")
    else:
        width = max(len(k) for k in values)
        for key, value in sorted(values.items()):
            shown = ", ".join(value) if isinstance(value, list) else value
            click.echo(f"{key.ljust(width)}  {shown}")
