from __future__ import annotations

import json

import click

from drkit.cli.common import common_options, reports_errors
from drkit.state import StateLock, load_state


@click.group()
def state():
    """Inspect the state file, or break a stale lock."""


@state.command("show")
@common_options
@reports_errors
def show(settings):
    """Print the state file (what drkit has recorded) as JSON. No AWS call."""
    config = settings.config()
    click.echo(json.dumps(load_state(config, persist=False).snapshot(), indent=2, sort_keys=True))


@state.command("unlock")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@common_options
@reports_errors
def unlock(settings, yes):
    """Break the state lock left by a run that died. Make sure it is really gone first."""
    config = settings.config()
    lock = StateLock(config.state_path, "unlock")
    if not lock.path.exists():
        click.echo(f"{config.state_path} is not locked")
        return
    if not yes:
        click.echo(f"{config.state_path} is locked by {lock.describe_holder()}")
        if not click.confirm("Break this lock?", default=False):
            raise SystemExit(1)
    holder = lock.break_lock()
    click.echo(f"lock broken (it was held by {holder})")
