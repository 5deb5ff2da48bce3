"""A region that cannot be reached, for tests of what drkit does when a region is down.

In-process only (moto's `mock_aws()`): every request signed for a region that is down (the
region of its SigV4 credential scope) fails before it is processed, the way a request fails when
the region's endpoints do not answer -- botocore raises EndpointConnectionError ("Could not
connect to the endpoint URL"), after its own retries, exactly as on a connection refused.

    with region_outage() as outage:
        outage.down("us-east-2")                    # every service; or services=["s3"]
        ...
        outage.up("us-east-2")                      # the region is back
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


class RegionOutage:
    """The regions (and optionally only some services in them) that are down in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: dict[str, Optional[frozenset[str]]] = {}
        self.refused: list[tuple[str, str]] = []  # (region, signing service) of each refused request

    def down(self, region: str, services: Optional[list[str]] = None) -> None:
        with self._lock:
            self._down[region] = frozenset(services) if services else None

    def up(self, region: Optional[str] = None) -> None:
        with self._lock:
            if region is None:
                self._down.clear()
            else:
                self._down.pop(region, None)

    def refuses(self, region: str, service: str) -> bool:
        with self._lock:
            if region not in self._down:
                return False
            services = self._down[region]
            refused = services is None or service in services
            if refused:
                self.refused.append((region, service))
            return refused


_process: dict[str, RegionOutage] = {}
_process_lock = threading.Lock()


def active_outage() -> RegionOutage:
    """This process's outage switch, its hook on moto's stubber installed once."""
    with _process_lock:
        if "outage" not in _process:
            _process["outage"] = RegionOutage()
            _install_hook(_process["outage"])
        return _process["outage"]


@contextmanager
def region_outage() -> Iterator[RegionOutage]:
    """The switch, with every region up on entry and on exit."""
    outage = active_outage()
    outage.up()
    try:
        yield outage
    finally:
        outage.up()


def _install_hook(outage: RegionOutage) -> None:
    from botocore.exceptions import EndpointConnectionError
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if self.enabled:
            authorization = request.headers.get("Authorization", b"")
            if isinstance(authorization, bytes):
                authorization = authorization.decode("utf-8", "replace")
            scope = _CREDENTIAL_SCOPE.search(authorization)
            if scope and outage.refuses(scope.group(1), scope.group(2)):
                raise EndpointConnectionError(endpoint_url=request.url)
        return original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = call  # type: ignore[method-assign]
