"""drkit's command line: `drkit --help` lists the commands, `drkit COMMAND --help` their options."""

from __future__ import annotations

import click

from drkit import __version__
from drkit.cli.demo import demo
from drkit.cli.iam_policy import iam_policy
from drkit.cli.outputs import outputs
from drkit.cli.plan import plan
from drkit.cli.provision import provision
from drkit.cli.sandbox import sandbox
from drkit.cli.state import state
from drkit.cli.teardown import teardown
from drkit.cli.verify import verify

EPILOG = """\b
Exit codes: 0 success; 1 a failure, or findings from verify; 2 bad input; 3 state locked.
Every command reads ENVIRONMENT_SUFFIX, PRIMARY_REGION, DR_REGION, DRKIT_STATE, AWS_PROFILE,
AWS_ENDPOINT_URL and DRKIT_CONFIG; flags beat environment variables beat drkit.toml beat defaults.
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="drkit")
def main() -> None:
    """Build, verify, tear down and operate the payment service's multi-region
    disaster-recovery infrastructure on AWS."""


for command in (plan, provision, verify, teardown, outputs, state, sandbox, demo, iam_policy):
    main.add_command(command)
