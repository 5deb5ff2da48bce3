from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import click

from drkit.cli.common import common_options, reports_errors
from drkit.errors import StateLockedError, UserInputError
from drkit.state import StateLock, load_state
from drkit.storage import open_storage
from drkit.storage.local import LocalStorage
from drkit.storage.location import is_s3_url, parse_s3_url


@click.group()
def state():
    """Inspect the state, break a stale lock, create a shared state bucket, move the state."""


@state.command("show")
@common_options
@reports_errors
def show(settings):
    """Print the state (what drkit has recorded) as JSON. No AWS call for a local state file.

    With an S3 state whose home region cannot be reached, the replica is read (a warning on
    stderr says so).
    """
    config = settings.config()
    click.echo(json.dumps(load_state(config, persist=False).snapshot(), indent=2, sort_keys=True))


@state.command("unlock")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@click.option("--force", is_flag=True,
              help="Also break a lock whose holder still runs on this host, or (S3) still renews its "
                   "lease (its run keeps going unprotected). Without it, such a lock is refused with exit 3.")
@common_options
@reports_errors
def unlock(settings, yes, force):
    """Break the state lock left by a run that died. Make sure it is really gone first.

    A lock whose holder is still running on this host (or, in S3, still renews its lease) is
    broken only with --force. Breaking an S3 lock is journaled under the state's prefix
    (journals/unlock/) with who broke it: AWS principal, local user, host.
    """
    config = settings.config()
    storage = open_storage(config)
    if not isinstance(storage, LocalStorage):
        _unlock_s3(storage, yes=yes, force=force)
        return
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


def _unlock_s3(storage, *, yes: bool, force: bool) -> None:
    storage.require_writable("state unlock")
    lock = storage.lock("state unlock")
    holder = lock.holder()
    if holder is None:
        click.echo(f"{storage.name} is not locked")
        return
    described = lock.describe_holder(holder)
    if lock.lease_live(holder) and not force:
        raise StateLockedError(
            f"state {storage.name} is locked by {described}; the lock was not broken",
            hint="its holder still renews the lease: wait for it, or stop it; "
                 "`drkit state unlock --force` breaks the lock anyway",
        )
    if not yes:
        click.echo(f"{storage.name} is locked by {described}")
        if not click.confirm("Break this lock?", default=False):
            raise SystemExit(1)
    click.echo(f"lock broken (it was held by {lock.break_lock(holder)})")


@state.command("init")
@click.argument("url")
@click.option("--region", "home_region", help="Region of the state bucket: the primary or the DR region; its "
                                              "replica goes to the other.  [default: the DR region]")
@common_options
@reports_errors
def init(settings, url, home_region):
    """Create the S3 bucket for a shared state (s3://BUCKET/PREFIX) and its replica.

    Both buckets get what drkit's own buckets get: versioning, default encryption, all four
    public-access blocks, a TLS-only policy and drkit's tags; the home bucket replicates to the
    replica in the other region (Replication Time Control, delete markers). Idempotent. Prints
    the drkit.toml line to use.
    """
    from drkit.aws import AwsGateway
    from drkit.cli.common import require_credentials
    from drkit.clock import SystemClock
    from drkit.logs import make_logger
    from drkit.storage.bootstrap import init_state_buckets
    from drkit.waiters import Waiter

    config = settings.config()
    if not is_s3_url(url):
        raise UserInputError(f"{url!r} is not an S3 URL", hint="give s3://BUCKET/PREFIX")
    if home_region:
        url = _with_query(url, region=home_region)
    location = parse_s3_url(url, primary_region=config.primary_region, dr_region=config.dr_region)
    log = make_logger(settings.log_format)
    clock = SystemClock()
    aws = AwsGateway(profile=config.profile, endpoint_url=config.endpoint_url, clock=clock, log=log)
    require_credentials(aws)
    waiter = Waiter(clock, lambda line: log.info("wait", progress=line))
    changes = init_state_buckets(config, location, aws, waiter, log)
    for change in changes:
        click.echo(f"  {change.describe()} ({change.region})")
    click.echo(f"state bucket {location.bucket} in {location.region}, replicated to {location.replica} in "
               f"{location.replica_region}: {'created or repaired' if changes else 'already in place'}")
    click.echo("Put this line in drkit.toml (or pass it as --state / DRKIT_STATE):")
    click.echo(f'state = "{location.full_url}"')


def _with_query(url: str, **values: str) -> str:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **values})))


@state.command("migrate")
@click.argument("destination")
@common_options
@reports_errors
def migrate(settings, destination):
    """Move the state (--state) to DESTINATION: a local path or s3://BUCKET/PREFIX.

    Both are locked while it moves. The audit log and journals go with it. DESTINATION must hold
    no state yet. The source's state is then retired: a local file is renamed to
    `<file>.migrated`, an S3 state object is deleted (the versioned bucket keeps it).
    """
    from drkit.storage.migrate import migrate_state

    source_config = settings.config()
    target_config = settings.with_state(destination).config(writes_state=True)
    report = migrate_state(source_config, target_config)
    click.echo(report)


@state.command("reconcile")
@common_options
@reports_errors
def reconcile(settings):
    """Copy home what was recorded while the S3 state's home region was down.

    Journal and audit records written in degraded mode went to the replica and to a local file
    (a `--no-state` run's, to a local file only); this copies them into the home bucket (never
    overwriting), once its region is back, and records in the state the active region a failover
    journaled but could not write. provision and teardown do the same when they start.
    """
    config = settings.config()
    storage = open_storage(config)
    if isinstance(storage, LocalStorage):
        click.echo(f"{storage.name} is a local state: nothing to reconcile")
        return
    copied, applied = settings.runner(writes_state=True).reconcile()
    click.echo(f"{len(copied)} record(s) copied to {storage.name}" + "".join(f"\n  {name}" for name in copied))
    for change in applied:
        click.echo(f"active region now {change.get('region')} ({change['to_role']}): journaled by "
                   f"{change.get('runbook')} run {change.get('run_id')} at {change.get('at')}, now recorded in the state")
