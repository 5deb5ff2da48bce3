from __future__ import annotations

import click

from drkit.cli.common import reports_errors


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True, help="Port on 127.0.0.1.")
@reports_errors
def sandbox(port):
    """Serve a local AWS emulator (moto plus drkit's extensions) on 127.0.0.1.

    Point drkit at it with --endpoint-url http://127.0.0.1:PORT (or AWS_ENDPOINT_URL).
    Resources live in memory until the sandbox stops.
    """
    from drkit.sandbox import SANDBOX_HOST, serve_forever

    click.echo(f"drkit sandbox on http://{SANDBOX_HOST}:{port} (Ctrl-C stops it)", err=True)
    serve_forever(port)
