"""Fixtures for the sandbox extensions' contract tests: moto in-process with every extension
installed and every transitional state shortened to a few hundredths of a second.

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


@pytest.fixture
def fast_timings() -> SandboxTimings:
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
            clock=time.monotonic,
        )
    )


@pytest.fixture
def aws(fast_timings: SandboxTimings) -> Iterator[SandboxTimings]:
    with mock_aws():
        yield fast_timings


@pytest.fixture
def wait_until() -> Callable[..., object]:
    """Poll `predicate` every 10 ms until it returns a truthy value (at most `timeout` seconds)."""

    def wait(predicate: Callable[[], object], timeout: float = 0.5) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value or time.monotonic() >= deadline:
                return value
            time.sleep(0.01)

    return wait
