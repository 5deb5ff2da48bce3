"""Fault injection over HTTP: a WSGI middleware in front of moto, its control endpoint, and a
client for tests that drive the sandbox from another process (a CLI subprocess, say).

Control endpoint (JSON):
    POST   /drkit-sandbox/faults   {"kind": "lost_response", "service": "ec2", "operation": "CreateVpc",
                                    "nth": 1, "times": 1}
                                   {"kind": "throttle", "probability": 0.5, "seed": 7,
                                    "services": ["ec2"], "bare_status": null}
    GET    /drkit-sandbox/faults   {"armed": [...], "injected": [...]}
    DELETE /drkit-sandbox/faults   disarms everything and forgets what was injected
"""

from __future__ import annotations

import io
import json
import urllib.request
from http import HTTPStatus
from typing import Any, Callable, Iterable, Optional

from drkit.sandbox.fault_requests import RequestView
from drkit.sandbox.faults import FaultInjector

CONTROL_PATH = "/drkit-sandbox/faults"

StartResponse = Callable[..., Any]


class FaultMiddleware:
    """Applies the injector's faults to the requests the wrapped WSGI app serves."""

    def __init__(self, app: Callable[..., Iterable[bytes]], injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") == CONTROL_PATH:
            return self._control(environ, start_response)
        if not self.injector.active:
            return self.app(environ, start_response)
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        view = self.injector.resolver.resolve(_view_of_environ(environ, body))
        refused = self.injector.before(view)
        if refused is not None:
            return _respond(start_response, *refused)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        result = self.app(environ, capture)
        try:
            chunks = b"".join(result)  # moto has processed the request once this is read
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        lost = self.injector.after(view, int(captured["status"].split()[0]))
        if lost is not None:
            return _respond(start_response, *lost)
        start_response(captured["status"], captured["headers"])
        return [chunks]

    def _control(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            if method == "POST":
                spec = json.loads(_read_body(environ) or b"{}")
                self.injector.arm(spec)
                answer: dict[str, Any] = {"armed": self.injector.armed()}
            elif method == "DELETE":
                self.injector.clear()
                answer = {"cleared": True}
            elif method == "GET":
                answer = {"armed": self.injector.armed(), "injected": self.injector.injected()}
            else:
                return _respond(start_response, 405, {"Content-Type": "application/json"},
                                json.dumps({"error": f"{method} not allowed"}).encode())
        except (ValueError, TypeError) as err:
            return _respond(start_response, 400, {"Content-Type": "application/json"},
                            json.dumps({"error": str(err)}).encode())
        return _respond(start_response, 200, {"Content-Type": "application/json"}, json.dumps(answer).encode())


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated"):  # chunked: the server marks the end
        return stream.read()
    return b""


def _view_of_environ(environ: dict[str, Any], body: bytes) -> RequestView:
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return RequestView(environ.get("REQUEST_METHOD", "GET"), headers.get("host", ""),
                       environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", ""), headers, body)


def _respond(start_response: StartResponse, status: int, headers: dict[str, str], body: bytes) -> list[bytes]:
    phrase = HTTPStatus(status).phrase
    start_response(f"{status} {phrase}", [*headers.items(), ("Content-Length", str(len(body)))])
    return [body]


class RemoteFaults:
    """Arms and reads faults of a sandbox served at `endpoint_url` (same API as FaultInjector)."""

    def __init__(self, endpoint_url: str, timeout: float = 10.0) -> None:
        self.url = endpoint_url.rstrip("/") + CONTROL_PATH
        self.timeout = timeout

    def lost_response(self, service: str, operation: str, nth: int = 1, times: int = 1) -> None:
        self._call("POST", {"kind": "lost_response", "service": service, "operation": operation,
                            "nth": nth, "times": times})

    def throttle(self, probability: float, seed: int = 0, services: Optional[list[str]] = None,
                 operations: Optional[list[str]] = None, bare_status: Optional[int] = None,
                 times: Optional[int] = None) -> None:
        self._call("POST", {"kind": "throttle", "probability": probability, "seed": seed, "services": services,
                            "operations": operations, "bare_status": bare_status, "times": times})

    def injected(self) -> list[dict[str, Any]]:
        return list(self._call("GET")["injected"])

    def armed(self) -> list[dict[str, Any]]:
        return list(self._call("GET")["armed"])

    def clear(self) -> None:
        self._call("DELETE")

    def _call(self, method: str, payload: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (loopback)
            return dict(json.loads(response.read() or b"{}"))
