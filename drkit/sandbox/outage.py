"""The sandbox's one regional outage switch: what an impaired AWS Region looks like from outside.

A region is "out" in one of two ways (one `Outages` object holds both, for the whole process):

- `begin(region)`: the APIs served in it fail as an impaired region's would: requests to its
  `<api-id>.execute-api.<region>.amazonaws.com` hosts (and to a custom domain served from it) get
  HTTP 503, so Route 53's health checks of that region fail and DNS fails over. Its AWS control
  planes still answer.
- `begin(region, aws_apis=True)` or `down(region, services=None)`: its AWS API endpoints fail too
  (every service, or only the named signing services, e.g. ["s3"]). The request's SigV4 credential
  scope says its region and service. Over HTTP (`make_app`) such a request is answered 503
  `ServiceUnavailable`; in-process (moto's `mock_aws()`) it fails before moto sees it with
  botocore's EndpointConnectionError, as a request fails when the region's endpoints do not
  answer. The emulated services read the same switch (e.g. an Aurora global database's old
  primary rejoins only once its region's RDS answers again).

In-process:     active_outages().begin("us-east-1", aws_apis=True); ...; active_outages().end("us-east-1")
                with region_outage() as outage: outage.down("us-east-2")   (drkit.sandbox.region_outage)
Over HTTP:      POST /drkit-sandbox/outage {"region": "us-east-1", "aws_apis": false}
                DELETE /drkit-sandbox/outage {"region": "us-east-1"}   (no body: ends every outage)
                GET /drkit-sandbox/outage -> {"regions": {"us-east-1": {"aws_apis": false}}}
`drkit sandbox outage --region R [--end] [--aws-apis] --endpoint-url URL` drives a running sandbox.
"""

from __future__ import annotations

import json
import re
from collections import deque
import threading
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterable, Optional

CONTROL_PATH = "/drkit-sandbox/outage"
EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/")
REGION_HEADER = "HTTP_X_DRKIT_SANDBOX_REGION"  # which region serves a custom domain (apigateway_serving)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "")


class Outages:
    """The regions that are out (and how), thread-safe; `refused` lists (region, signing service)
    of each AWS API request the switch failed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._regions: dict[str, dict[str, Any]] = {}
        self.refused: deque[tuple[str, str]] = deque(maxlen=10_000)  # bounded for a long-running server

    def begin(self, region: str, aws_apis: bool = False, services: Optional[Iterable[str]] = None) -> None:
        with self._lock:
            self._regions[region] = {"aws_apis": bool(aws_apis),
                                     "services": frozenset(services) if services else None}

    def down(self, region: str, services: Optional[list[str]] = None) -> None:
        """The region cannot be reached at all (or only the named services in it)."""
        self.begin(region, aws_apis=True, services=services)

    def end(self, region: Optional[str] = None) -> None:
        with self._lock:
            if region is None:
                self._regions.clear()
            else:
                self._regions.pop(region, None)

    up = end

    def regions(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {region: {"aws_apis": spec["aws_apis"],
                             **({"services": sorted(spec["services"])} if spec["services"] else {})}
                    for region, spec in self._regions.items()}

    def is_out(self, region: Optional[str]) -> bool:
        """Whether the APIs served in `region` (execute-api hosts, custom domains) fail."""
        with self._lock:
            spec = self._regions.get(region or "")
            return spec is not None and (spec["services"] is None or "execute-api" in spec["services"])

    def apis_out(self, region: Optional[str], service: Optional[str] = None) -> bool:
        """Whether `region`'s AWS API endpoints fail (for `service`, a SigV4 signing name; None:
        for any service)."""
        with self._lock:
            spec = self._regions.get(region or "")
            if spec is None or not spec["aws_apis"]:
                return False
            return spec["services"] is None or service is None or service in spec["services"]

    def refuses(self, region: str, service: str) -> bool:
        """Whether a request signed for (region, service) fails now; a refusal is recorded."""
        refused = self.apis_out(region, service)
        if refused:
            with self._lock:
                self.refused.append((region, service))
        return refused


_ACTIVE: dict[str, Outages] = {}
_ACTIVE_LOCK = threading.Lock()


def active_outages() -> Outages:
    """The process's outage switch, shared by the WSGI middleware, the in-process hook on moto's
    botocore stubber (installed on first use) and the emulated services."""
    with _ACTIVE_LOCK:
        if "outages" not in _ACTIVE:
            _ACTIVE["outages"] = Outages()
            _install_botocore_hook(_ACTIVE["outages"])
        return _ACTIVE["outages"]


def _install_botocore_hook(outages: Outages) -> None:
    """Under `mock_aws()`, fail requests signed for a region whose APIs are out before moto
    answers them. Requests to a loopback endpoint (a SandboxServer) are left to the middleware."""
    from botocore.exceptions import EndpointConnectionError
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if self.enabled and not _is_loopback(urllib.parse.urlsplit(request.url).netloc):
            authorization = request.headers.get("Authorization", b"")
            if isinstance(authorization, bytes):
                authorization = authorization.decode("utf-8", "replace")
            scope = CREDENTIAL_SCOPE.search(authorization)
            if scope and outages.refuses(scope["region"], scope["service"]):
                raise EndpointConnectionError(endpoint_url=request.url)
        return original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = call  # type: ignore[method-assign]


def region_of_host(host: str, environ: Optional[dict[str, Any]] = None) -> Optional[str]:
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
        self._request_resolver: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") == CONTROL_PATH:
            return self._control(environ, start_response)
        host = environ.get("HTTP_HOST") or ""
        served = region_of_host(host, environ)
        if served is not None and self.outages.is_out(served) and not _is_loopback(host):
            return _answer(start_response, 503, {"message": "Service Unavailable"})
        scope = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION") or "")
        if scope and self.outages.refuses(scope["region"], scope["service"]):
            return self._unavailable(environ, start_response, scope["region"])
        return self.app(environ, start_response)

    def _unavailable(self, environ: dict[str, Any], start_response: Callable[..., Any], region: str) -> Iterable[bytes]:
        """503 ServiceUnavailable in the wire format of the request's protocol (XML for RDS and
        EC2, JSON, CBOR...), so botocore reads it as the ClientError an impaired region gives."""
        from drkit.sandbox.fault_requests import error_response
        from drkit.sandbox.faults_http import _read_body, _respond, _view_of_environ

        view = self._resolver().resolve(_view_of_environ(environ, _read_body(environ)))
        status, headers, body = error_response(view, "ServiceUnavailable", 503,
                                               f"{region} is unavailable (sandbox outage)")
        return _respond(start_response, status, headers, body)

    def _resolver(self) -> Any:
        if self._request_resolver is None:
            from drkit.sandbox.fault_requests import RequestResolver

            self._request_resolver = RequestResolver()
        return self._request_resolver

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            spec = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            if method == "POST":
                if not isinstance(spec.get("region"), str) or not spec["region"]:
                    raise ValueError("a region is required")
                services = spec.get("services")
                if services is not None and not (isinstance(services, list)
                                                 and all(isinstance(s, str) for s in services)):
                    raise ValueError("services must be a list of signing names, e.g. [\"s3\"]")
                self.outages.begin(spec["region"], bool(spec.get("aws_apis")), services)
            elif method == "DELETE":
                self.outages.end(spec.get("region"))
            elif method != "GET":
                return _answer(start_response, 405, {"error": f"{method} not allowed"})
        except (ValueError, TypeError, AttributeError) as err:
            return _answer(start_response, 400, {"error": str(err)})
        return _answer(start_response, 200, {"regions": self.outages.regions()})


def _is_loopback(host: str) -> bool:
    return host.split(":")[0] in _LOOPBACK_HOSTS


def _answer(start_response: Callable[..., Any], status: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class RemoteOutage:
    """Drives the outage switch of a sandbox served at `endpoint_url`."""

    def __init__(self, endpoint_url: str, timeout: float = 10.0) -> None:
        self.url = endpoint_url.rstrip("/") + CONTROL_PATH
        self.timeout = timeout

    def begin(self, region: str, aws_apis: bool = False, services: Optional[list[str]] = None) -> dict[str, Any]:
        return self._call("POST", {"region": region, "aws_apis": aws_apis,
                                   **({"services": list(services)} if services else {})})

    def end(self, region: Optional[str] = None) -> dict[str, Any]:
        return self._call("DELETE", {"region": region} if region else None)

    def regions(self) -> dict[str, Any]:
        return dict(self._call("GET")["regions"])

    def _call(self, method: str, payload: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (loopback)
            return dict(json.loads(response.read() or b"{}"))
