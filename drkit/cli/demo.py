from __future__ import annotations

import sys

import click

from drkit.cli.common import reports_errors
from drkit.logs import LOG_FORMATS


@click.command()
@click.option("--env", default="demo", show_default=True, help="Environment suffix for the demo stack.")
@click.option("--verbose", "-v", is_flag=True, help="Show every AWS change and wait as it happens.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="console", show_default=True)
@reports_errors
def demo(env, verbose, log_format):
    """Run the whole job end to end in a local sandbox: provision, verify, provision again
    (nothing changes), teardown, and check nothing is left. Needs no AWS account."""
    from drkit.config import validate, Config
    from drkit.demo import run_demo

    validate(Config(env=env))
    reports = run_demo(env, log_format=log_format, log_level="info" if verbose else "warning", echo=click.echo)
    sys.exit(0 if all(r.ok for r in reports) else 1)
