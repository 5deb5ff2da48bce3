"""A region that cannot be reached, for tests of what drkit does when a region is down.

The switch is the sandbox's one outage switch (drkit.sandbox.outage): `down` makes every request
signed for the region (the region of its SigV4 credential scope), or only the named services',
fail before it is processed, the way a request fails when the region's endpoints do not answer:
in-process botocore raises EndpointConnectionError ("Could not connect to the endpoint URL")
after its own retries, as on a connection refused; over HTTP the sandbox answers 503. The
region's execute-api hosts fail too (unless `services` leaves execute-api out).

    with region_outage() as outage:
        outage.down("us-east-2")                    # every service; or services=["s3"]
        ...
        outage.up("us-east-2")                      # the region is back
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from drkit.sandbox.outage import Outages, active_outages

RegionOutage = Outages  # the name this module's users knew


def active_outage() -> Outages:
    """This process's outage switch (the same object as `active_outages()`)."""
    return active_outages()


@contextmanager
def region_outage() -> Iterator[Outages]:
    """The switch, with every region up (and nothing refused yet) on entry, every region up on exit."""
    outage = active_outages()
    outage.up()
    outage.refused.clear()
    try:
        yield outage
    finally:
        outage.up()
