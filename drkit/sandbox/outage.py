"""A regional outage switch for the sandbox: what an impaired AWS Region looks like from outside.

While a region is "out", the APIs served in it fail as an impaired region's would: requests to its
`<api-id>.execute-api.<region>.amazonaws.com` hosts (and to a custom domain served from it) get
HTTP 503, so Route 53's health checks of that region fail and DNS fails over. With `aws_apis`,
the region's AWS API endpoints answer 503 `ServiceUnavailable` too (control planes down as well;
only over HTTP, where the request's SigV4 credential scope names its region).

In-process:     active_outages().begin("us-east-1"); ...; active_outages().end("us-east-1")
Over HTTP:      POST /drkit-sandbox/outage {"region": "us-east-1", "aws_apis": false}
                DELETE /drkit-sandbox/outage {"region": "us-east-1"}   (no body: ends every outage)
                GET /drkit-sandbox/outage -> {"regions": {"us-east-1": {"aws_apis": false}}}
`drkit sandbox outage --region R [--end] --endpoint-url URL` drives a running sandbox.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from typing import Any, Callable, Iterable

CONTROL_PATH = "/drkit-sandbox/outage"
EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/")
REGION_HEADER = "HTTP_X_DRKIT_SANDBOX_REGION"  # which region serves a custom domain (apigateway_serving)


class Outages:
    """The regions that are out, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._regions: dict[str, dict[str, Any]] = {}

    def begin(self, region: str, aws_apis: bool = False) -> None:
        with self._lock:
            self._regions[region] = {"aws_apis": bool(aws_apis)}

    def end(self, region: str | None = None) -> None:
        with self._lock:
            if region is None:
                self._regions.clear()
            else:
                self._regions.pop(region, None)

    def regions(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {r: dict(v) for r, v in self._regions.items()}

    def is_out(self, region: str | None) -> bool:
        with self._lock:
            return region in self._regions

    def apis_out(self, region: str | None) -> bool:
        with self._lock:
            return bool(self._regions.get(region or "", {}).get("aws_apis"))


_ACTIVE: dict[str, Outages] = {}
_ACTIVE_LOCK = threading.Lock()


def active_outages() -> Outages:
    """The process's outage switch (shared by the WSGI middleware and the health checkers)."""
    with _ACTIVE_LOCK:
        return _ACTIVE.setdefault("outages", Outages())


def region_of_host(host: str, environ: dict[str, Any] | None = None) -> str | None:
    """The region an API request is served in: the execute-api host's, or for a custom domain the
    region the sandbox serves it from (named by X-Drkit-Sandbox-Region)."""
    match = EXECUTE_API_HOST.match(host.split(":")[0].lower())
    if match:
        return match["region"]
    return (environ or {}).get(REGION_HEADER)


class OutageMiddleware:
    """503s for the APIs of the regions that are out; the control endpoint."""

    def __init__(self, app: Callable[..., Iterable[bytes]], outages: Outages) -> None:
        self.app = app
        self.outages = outages

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") == CONTROL_PATH:
            return self._control(environ, start_response)
        host = environ.get("HTTP_HOST") or ""
        served = region_of_host(host, environ)
        if served is not None and self.outages.is_out(served) and not _is_loopback(host):
            return _answer(start_response, 503, {"message": "Service Unavailable"})
        scope = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION") or "")
        if scope and self.outages.apis_out(scope["region"]):
            return _answer(start_response, 503, {"__type": "ServiceUnavailable",
                                                 "message": f"{scope['region']} is unavailable (sandbox outage)"},
                           extra=[("x-amzn-ErrorType", "ServiceUnavailable")])
        return self.app(environ, start_response)

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            spec = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            if method == "POST":
                if not isinstance(spec.get("region"), str) or not spec["region"]:
                    raise ValueError("a region is required")
                self.outages.begin(spec["region"], bool(spec.get("aws_apis")))
            elif method == "DELETE":
                self.outages.end(spec.get("region"))
            elif method != "GET":
                return _answer(start_response, 405, {"error": f"{method} not allowed"})
        except (ValueError, TypeError, AttributeError) as err:
            return _answer(start_response, 400, {"error": str(err)})
        return _answer(start_response, 200, {"regions": self.outages.regions()})


def _is_loopback(host: str) -> bool:
    return host.split(":")[0] in ("127.0.0.1", "localhost", "")


def _answer(start_response: Callable[..., Any], status: int, body: dict[str, Any],
            extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                          *(extra or [])])
    return [data]


class RemoteOutage:
    """Drives the outage switch of a sandbox served at `endpoint_url`."""

    def __init__(self, endpoint_url: str, timeout: float = 10.0) -> None:
        self.url = endpoint_url.rstrip("/") + CONTROL_PATH
        self.timeout = timeout

    def begin(self, region: str, aws_apis: bool = False) -> dict[str, Any]:
        return self._call("POST", {"region": region, "aws_apis": aws_apis})

    def end(self, region: str | None = None) -> dict[str, Any]:
        return self._call("DELETE", {"region": region} if region else None)

    def regions(self) -> dict[str, Any]:
        return dict(self._call("GET")["regions"])

    def _call(self, method: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (loopback)
            return dict(json.loads(response.read() or b"{}"))
