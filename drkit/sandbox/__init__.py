"""A local AWS emulator: moto plus drkit's extensions for the behaviour moto lacks.

`make_app()` is the WSGI app (moto's per-service dispatcher, extensions installed, faults of
drkit.sandbox.faults applied, armed over HTTP at /drkit-sandbox/faults);
`SandboxServer` serves it on 127.0.0.1 from a background thread, for `drkit demo`, tests and
benchmarks. Everything in one process shares moto's backends, so `mock_aws()` tests and the
server see the same emulated AWS.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from drkit.sandbox.timings import SandboxTimings

SANDBOX_HOST = "127.0.0.1"
# Any credentials work against the sandbox; these make boto3 sign requests without a profile.
SANDBOX_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def make_app(timings: SandboxTimings | None = None) -> Any:
    """The sandbox as a WSGI application, standing in for AWS's HTTPS endpoints: requests it
    serves on loopback count as TLS unless DRKIT_SANDBOX_LOOPBACK_HTTP_IS_TLS=0."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from drkit.sandbox.extensions import install_all
    from drkit.sandbox.extensions.apigateway_serving import ApiGatewayServing
    from drkit.sandbox.faults import active_faults
    from drkit.sandbox.faults_http import FaultMiddleware

    if timings is None:
        timings = SandboxTimings.from_env({"DRKIT_SANDBOX_LOOPBACK_HTTP_IS_TLS": "1", **os.environ})
    install_all(timings)
    # Deployed REST API stages and custom domains are served in front of moto's control plane;
    # armed faults apply to every request.
    return FaultMiddleware(ApiGatewayServing(DomainDispatcherApplication(create_backend_app)), active_faults())


def reset() -> None:
    """Forget every emulated resource in every region (moto's own reset)."""
    from moto.moto_api import _internal

    _internal.moto_api_backend.reset()


class SandboxServer:
    """The sandbox served over HTTP on 127.0.0.1 from a daemon thread.

    Port 0 picks a free port; `endpoint_url` says which one was taken.
    """

    def __init__(self, port: int = 0, timings: SandboxTimings | None = None) -> None:
        self._port = port
        self._timings = timings
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox server is not running")
        return f"http://{SANDBOX_HOST}:{self._server.server_port}"

    def start(self) -> "SandboxServer":
        from werkzeug.serving import make_server

        RawHeadersHandler = raw_headers_handler()

        class QuietHandler(RawHeadersHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                """Per-request lines would drown drkit's own progress output."""

        app = make_app(self._timings)
        self._server = make_server(
            SANDBOX_HOST, self._port, app, threaded=True, request_handler=QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="drkit-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(port: int, timings: SandboxTimings | None = None) -> None:
    """Serve the sandbox in the foreground until interrupted (drkit sandbox, python -m)."""
    from werkzeug.serving import run_simple

    run_simple(SANDBOX_HOST, port, make_app(timings), threaded=True, use_reloader=False,
               request_handler=raw_headers_handler())


def raw_headers_handler() -> Any:
    """werkzeug's request handler, keeping the headers as the client sent them (name case and
    order) in environ["drkit.raw_headers"]: API Gateway passes them so to a Lambda function."""
    from werkzeug.serving import WSGIRequestHandler

    class RawHeadersHandler(WSGIRequestHandler):
        def make_environ(self) -> dict[str, Any]:
            environ = super().make_environ()
            environ["drkit.raw_headers"] = list(self.headers.items())
            return environ

    return RawHeadersHandler
