"""Fixtures for the sandbox extensions' contract tests: moto in-process with every extension
installed and every transitional state shortened to a few hundredths of a second.

The extensions read a clock that moves only when a test waits (`wait_until` advances it), so a
state of 0.2 s is still there however slowly a loaded machine runs the test: no real-time race.

`install_all` updates the process-wide timings in place, so each test sets them again (other test
modules may have installed a fake clock or longer durations).
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

import pytest
from moto import mock_aws

from drkit.sandbox.extensions import install_all
from drkit.sandbox.timings import SandboxTimings

SHORT = 0.05


class SandboxClock:
    """Time for the sandbox's transitional states: real time is ignored, waits advance it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def sandbox_clock() -> SandboxClock:
    return SandboxClock()


@pytest.fixture
def fast_timings(sandbox_clock: SandboxClock) -> SandboxTimings:
    return install_all(
        SandboxTimings(
            nat_pending=SHORT,
            nat_deleting=SHORT,
            rds_creating=SHORT,
            rds_deleting=SHORT,
            rds_global_deleting=SHORT,
            dynamodb_replica_creating=SHORT,
            s3_replication=SHORT,
            dynamodb_replication=SHORT,
            clock=sandbox_clock,
        )
    )


@pytest.fixture
def aws(fast_timings: SandboxTimings) -> Iterator[SandboxTimings]:
    with mock_aws():
        yield fast_timings


@pytest.fixture
def wait_until(sandbox_clock: SandboxClock) -> Callable[..., object]:
    """Poll `predicate` every 10 ms of sandbox time until it returns a truthy value (at most
    `timeout` seconds of it); a short real pause lets the sandbox's own threads run."""

    def wait(predicate: Callable[[], object], timeout: float = 0.5) -> object:
        deadline = sandbox_clock() + timeout
        while True:
            value = predicate()
            if value or sandbox_clock() >= deadline:
                return value
            sandbox_clock.advance(0.01)
            time.sleep(0.001)

    return wait
