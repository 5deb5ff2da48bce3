from __future__ import annotations

import json
import urllib.error

import click

from drkit.cli.common import reports_errors
from drkit.errors import DrkitError, UserInputError


@click.group(invoke_without_command=True)
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True, help="Port on 127.0.0.1.")
@click.pass_context
@reports_errors
def sandbox(ctx, port):
    """Serve a local AWS emulator (moto plus drkit's extensions) on 127.0.0.1.

    Point drkit at it with --endpoint-url http://127.0.0.1:PORT (or AWS_ENDPOINT_URL).
    Resources live in memory until the sandbox stops. `drkit sandbox outage` drives a running one.
    """
    if ctx.invoked_subcommand is not None:
        return
    from drkit.sandbox import SANDBOX_HOST, serve_forever

    click.echo(f"drkit sandbox on http://{SANDBOX_HOST}:{port} (Ctrl-C stops it)", err=True)
    serve_forever(port)


@sandbox.command()
@click.option("--region", help="The region whose APIs fail (required unless --end ends every outage).")
@click.option("--end", is_flag=True, help="End the outage of --region (of every region without --region).")
@click.option("--aws-apis", is_flag=True, help="Also fail the region's AWS API endpoints (503 ServiceUnavailable).")
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", required=True,
              help="The running sandbox, e.g. http://127.0.0.1:5000 (env AWS_ENDPOINT_URL).")
@reports_errors
def outage(region, end, aws_apis, endpoint_url):
    """Declare (or end) a regional outage in a running sandbox: the region's execute-api hosts
    and custom domains answer 503, so Route 53 health checks fail and DNS fails over."""
    from drkit.sandbox.outage import RemoteOutage

    if not end and not region:
        raise UserInputError("--region is required (or --end to end every outage)")
    if not endpoint_url.startswith(("http://", "https://")):
        raise UserInputError(f"--endpoint-url {endpoint_url!r} is not an http(s) URL")
    remote = RemoteOutage(endpoint_url)
    try:
        answer = remote.end(region) if end else remote.begin(region, aws_apis=aws_apis)
    except (urllib.error.URLError, OSError) as exc:
        raise DrkitError(f"cannot reach the sandbox at {endpoint_url}: {getattr(exc, 'reason', exc)}") from None
    click.echo(json.dumps(answer, sort_keys=True))
