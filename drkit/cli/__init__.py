"""drkit's command line: `drkit --help` lists the commands, `drkit COMMAND --help` their options."""

from __future__ import annotations

import sys

import click

from drkit import __version__
from drkit.cli.demo import demo
from drkit.cli.iam_policy import iam_policy
from drkit.cli.outputs import outputs
from drkit.cli.plan import plan
from drkit.cli.provision import provision
from drkit.cli.runbook import runbook
from drkit.cli.sandbox import sandbox
from drkit.cli.state import state
from drkit.cli.status import status
from drkit.cli.teardown import teardown
from drkit.cli.verify import verify

EPILOG = """\b
Exit codes: 0 success; 1 a failure, or findings from verify; 2 bad input; 3 state locked.
Every command reads ENVIRONMENT_SUFFIX, PRIMARY_REGION, DR_REGION, DRKIT_STATE, AWS_PROFILE,
AWS_ENDPOINT_URL and DRKIT_CONFIG; flags beat environment variables beat drkit.toml beat defaults.
"""


class OneLineErrors(click.Group):
    """Click's own errors (a bad option value, an unknown option) read like drkit's: one line on
    stderr with the hint, exit 2 -- not click's three-line usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `drkit`: the help, as click shows it
            click.echo(exc.ctx.get_help(), err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else self._path_of(args, prog_name)
            message = " ".join(exc.format_message().split())
            click.echo(f"drkit: error: {message} (hint: Try '{command} --help' for help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"drkit: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("drkit: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def _path_of(self, args: list[str] | None, prog_name: str | None) -> str:
        """The command path when click's error carries no context (e.g. `--step` with no value)."""
        path, group = [prog_name or "drkit"], self
        for arg in sys.argv[1:] if args is None else args:
            command = group.commands.get(arg) if isinstance(group, click.Group) else None
            if command is None:
                if not arg.startswith("-"):
                    break
                continue
            path.append(arg)
            group = command
        return " ".join(path)


@click.group(cls=OneLineErrors, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="drkit")
def main() -> None:
    """Build, verify, tear down and operate the payment service's multi-region
    disaster-recovery infrastructure on AWS."""


for command in (plan, provision, verify, status, teardown, outputs, state, sandbox, demo, iam_policy, runbook):
    main.add_command(command)
