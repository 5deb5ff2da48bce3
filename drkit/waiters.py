"""Waiting for AWS to reach a state: timeouts, an injectable clock, progress on long waits.

botocore's waiters sleep on the real clock and exist only for some resources, so drkit polls
with its own loop. Each poll goes through AwsGateway.call, so a throttled poll is retried, never
mistaken for success or failure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

from drkit.clock import Clock
from drkit.errors import DrkitError, InterruptedRun, WaitTimeoutError

T = TypeVar("T")


@dataclass(frozen=True)
class WaitPolicy:
    """Polls start after `first_interval` and double up to `max_interval`: short transitions
    (a sandbox, a quick NAT) end quickly, long ones (Aurora: tens of minutes) poll gently."""

    timeout: float = 3600.0
    first_interval: float = 1.0
    max_interval: float = 15.0
    progress_every: float = 30.0


class Waiter:
    def __init__(
        self,
        clock: Clock,
        progress: Callable[[str], None],
        policy: WaitPolicy | None = None,
        interrupt: threading.Event | None = None,
    ) -> None:
        self.clock = clock
        self.progress = progress
        self.policy = policy or WaitPolicy()
        self.interrupt = interrupt or threading.Event()

    def until(
        self,
        what: str,
        poll: Callable[[], T],
        done: Callable[[T], bool],
        *,
        describe: Callable[[T], str] = lambda value: str(value),
        failed: Callable[[T], str | None] = lambda value: None,
        timeout: float | None = None,
    ) -> T:
        """Poll until `done(value)`; raise if `failed(value)` says why, or on timeout.

        `what` names the wait in progress lines ("NAT gateway nat-0abc in us-east-1 to be
        available"); `describe(value)` says where it stands now ("pending").
        """
        timeout = self.policy.timeout if timeout is None else timeout
        interval = self.policy.first_interval
        started = self.clock.monotonic()
        last_report: float | None = None
        while True:
            if self.interrupt.is_set():
                raise InterruptedRun(f"interrupted while waiting for {what}; re-run to resume")
            value = poll()
            if done(value):
                return value
            reason = failed(value)
            if reason:
                raise DrkitError(f"gave up waiting for {what}: {reason}")
            now = self.clock.monotonic()
            elapsed = now - started
            if elapsed >= timeout:
                raise WaitTimeoutError(
                    f"timed out after {elapsed:.0f}s waiting for {what} (last seen: {describe(value)})",
                    hint="re-run the same command: drkit resumes where it stopped",
                )
            if last_report is None or now - last_report >= self.policy.progress_every:
                self.progress(f"waiting for {what}: {describe(value)} ({elapsed:.0f}s of {timeout:.0f}s)")
                last_report = now
            self.clock.sleep(min(interval, timeout - elapsed))
            interval = min(interval * 2, self.policy.max_interval)
