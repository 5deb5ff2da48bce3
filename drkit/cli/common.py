"""What every drkit command shares: its options, how errors become one line and an exit code,
and how a Runner is built from flags, environment variables and drkit.toml."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import botocore.exceptions
import click

from drkit.aws import AwsGateway
from drkit.config import Config, build_config, check_state_path
from drkit.errors import EXIT_FAILURE, DrkitError, EndpointUnreachableError, UserInputError
from drkit.logs import LOG_FORMATS, make_logger
from drkit.runner import Runner

_COMMON = [
    click.option("--env", envvar="ENVIRONMENT_SUFFIX", show_envvar=True,
                 help="Environment suffix, part of every resource name.  [default: dev]"),
    click.option("--primary-region", envvar="PRIMARY_REGION", show_envvar=True,
                 help="Region that serves traffic.  [default: us-east-1]"),
    click.option("--dr-region", envvar="DR_REGION", show_envvar=True,
                 help="Region that takes over in a disaster.  [default: us-east-2]"),
    click.option("--state", "state", envvar="DRKIT_STATE", show_envvar=True, type=click.Path(dir_okay=False),
                 help="State file, or s3://BUCKET/PREFIX for a shared state (`drkit state init`).  "
                      "[default: .drkit/<env>.state.json]"),
    click.option("--profile", envvar="AWS_PROFILE", show_envvar=True, help="AWS profile to use."),
    click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", show_envvar=True,
                 help="Send every AWS call here (e.g. a `drkit sandbox`)."),
    click.option("--config", "config_file", envvar="DRKIT_CONFIG", show_envvar=True, type=click.Path(dir_okay=False),
                 help="drkit.toml with the same settings and the CIDRs.  [default: ./drkit.toml if present]"),
    click.option("--parallel", type=int, envvar="DRKIT_PARALLEL", show_envvar=True,
                 help="Steps run at once (the regions build side by side).  [default: 4]"),
    click.option("--log-format", type=click.Choice(LOG_FORMATS), default="console", envvar="DRKIT_LOG_FORMAT",
                 show_envvar=True, show_default=True, help="Log lines on stderr: readable, or JSON lines."),
]

_OVERRIDE_KEYS = ("env", "primary_region", "dr_region", "state", "profile", "endpoint_url", "parallel")


@dataclass
class Settings:
    overrides: dict[str, Any]
    config_file: Path | None
    log_format: str

    def with_state(self, state: str) -> "Settings":
        """The same settings with another --state (`drkit state migrate`'s destination)."""
        return Settings({**self.overrides, "state": state}, self.config_file, self.log_format)

    def config(self, *, writes_state: bool = False) -> Config:
        config = build_config(self.overrides, config_file=self.config_file)
        if writes_state:
            if config.state_url is None:  # an S3 state writes nothing locally
                check_state_path(config.state_path, creatable=True)
        return config

    def runner(self, *, calls_aws: bool = True, writes_state: bool = False, **kwargs: Any) -> Runner:
        """A Runner over every step; for a command that will call AWS, with its credentials
        resolved first, so that missing ones are bad input (exit 2), not a failure per step."""
        from steps import all_steps

        runner = Runner(self.config(writes_state=writes_state), all_steps(), log=make_logger(self.log_format), **kwargs)
        if calls_aws:
            require_credentials(runner.aws)
        return runner


def require_credentials(gateway: AwsGateway) -> None:
    """Resolve botocore's credential chain once, up front (a loopback endpoint already has its
    dummy credentials from the gateway). Frozen here, so an expired SSO token or a failing
    credential_process is one line before any service call, not one failure per step."""
    # The gateway's session is the one its clients are built from: resolving it here caches
    # the credentials for them.
    session = gateway.session
    try:
        credentials = session.get_credentials()
        if credentials is not None:
            credentials.get_frozen_credentials()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise UserInputError(f"AWS credentials could not be resolved: {exc}") from None
    if credentials is None:
        raise UserInputError(
            "no AWS credentials found",
            hint="set AWS_PROFILE or --profile, or the AWS_* environment variables",
        )


def unreachable_endpoint(outcome: Any, config: Config) -> str | None:
    """One line when every failed step failed because AWS could not be reached: the cause is
    the network, not the steps, so it is said once instead of once per step."""
    failed = outcome.failed
    if not failed or not all(_connection_error(r.error) for r in failed):
        return None
    first = failed[0].error
    detail = first.one_line() if isinstance(first, DrkitError) else str(first)
    if not detail.startswith("cannot reach"):
        detail = f"cannot reach {config.endpoint_url or 'AWS'}: {detail}"
    return f"{detail} ({len(failed)} step(s) could not run)"


def _connection_error(error: BaseException | None) -> bool:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (botocore.exceptions.ConnectionError, EndpointUnreachableError)):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def exit_if_unreachable(outcome: Any, runner: Runner, *, as_json: bool, operation: str, **extra: Any) -> None:
    """Exit 1 with one line on stderr when AWS was unreachable (--json still prints its document)."""
    line = unreachable_endpoint(outcome, runner.config)
    if line is None:
        return
    if as_json:
        from drkit.cli.render import emit

        emit(outcome, runner.config, as_json=True, operation=operation, title="", nothing="", **extra)
    click.echo(f"drkit: error: {line}", err=True)
    sys.exit(EXIT_FAILURE)


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared options; the command receives them as one `settings` argument."""

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        overrides = {k: kwargs.pop(k) for k in _OVERRIDE_KEYS}
        config_file = kwargs.pop("config_file")
        settings = Settings(overrides, Path(config_file) if config_file else None, kwargs.pop("log_format"))
        return command(settings=settings, **kwargs)

    for option in reversed(_COMMON):
        wrapper = option(wrapper)
    return wrapper


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """drkit's errors become one line on stderr and their exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DrkitError as exc:
            click.echo(f"drkit: error: {exc.one_line()}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("drkit: interrupted; the state file is up to date: re-run to resume", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug, not a user error: one line, traceback on request
            if os.environ.get("DRKIT_DEBUG"):
                raise
            click.echo(f"drkit: internal error: {type(exc).__name__}: {exc} (set DRKIT_DEBUG=1 for a traceback)", err=True)
            sys.exit(EXIT_FAILURE)

    return wrapper


def require_a_way_to_confirm(yes: bool) -> None:
    """Refuse (exit 2) before observing anything when no one could answer the question: a
    pipeline without --yes would otherwise spend a whole plan's AWS reads only to refuse."""
    if not yes and not sys.stdin.isatty():
        raise UserInputError("refusing to act without confirmation: no terminal to ask on", hint="pass --yes")


def confirmer(yes: bool, question: str) -> Callable[[Any], bool]:
    """Ask before acting, unless --yes. With no terminal to ask on, refuse (exit 2)."""

    def confirm(_: Any) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UserInputError("refusing to act without confirmation: no terminal to ask on", hint="pass --yes")
        return click.confirm(question, default=False)

    return confirm


def show_then_confirm(runner: Runner, *, yes: bool, as_json: bool, operation: str, title: str, nothing: str,
                      question: str) -> Callable[[Any], bool]:
    """Print the plan (unless --json), then ask: prepare -> show changes -> confirm."""
    from drkit.cli.render import emit
    from drkit.runner import Outcome

    def confirm(planned: Any) -> bool:
        if not as_json:
            emit(Outcome(planned), runner.config, as_json=False, operation=operation, title=title, nothing=nothing)
        return confirmer(yes, question)(planned)

    return confirm
