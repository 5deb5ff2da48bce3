from __future__ import annotations

import json

import click

from drkit.cli.common import common_options, reports_errors
from drkit.errors import StateLockedError
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
@click.option("--force", is_flag=True,
              help="Also break a lock whose holder still runs on this host (its run keeps going "
                   "unprotected). Without it, such a lock is refused with exit 3.")
@common_options
@reports_errors
def unlock(settings, yes, force):
    """Break the state lock left by a run that died. Make sure it is really gone first.

    A lock whose holder is still running on this host is broken only with --force.
    """
    config = settings.config()
    lock = StateLock(config.state_path, "unlock")
    try:
        shown = lock.path.read_text()
    except FileNotFoundError:
        click.echo(f"{config.state_path} is not locked")
        return
    holder = lock.describe_holder()
    if lock.holder_is_running() and not force:
        raise StateLockedError(
            f"state {config.state_path} is locked by {holder}, which is still running; the lock was not broken",
            hint="wait for it to finish, or stop it; `drkit state unlock --force` breaks the lock anyway",
        )
    if not yes:
        click.echo(f"{config.state_path} is locked by {holder}")
        if not click.confirm("Break this lock?", default=False):
            raise SystemExit(1)
    broken = lock.break_lock(expected=shown)
    click.echo(f"lock broken (it was held by {broken})" if broken else f"{config.state_path} is not locked")
