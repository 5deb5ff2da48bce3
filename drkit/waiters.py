"""Waiting for AWS to reach a state: timeouts, an injectable clock, progress on long waits.

botocore's waiters sleep on the real clock and exist only for some resources, so drkit polls
with its own loop. Each poll goes through AwsGateway.call, so a throttled poll is retried, never
mistaken for success or failure.
"""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager, TypeVar

from drkit.clock import Clock
from drkit.durations import human, typical_for
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

    def scaled(self, scale: float) -> "WaitPolicy":
        """The policy for a sandbox whose minutes last 1/scale as long (DRKIT_SANDBOX_SCALE): a
        15 s poll overshoot is noise against AWS's minutes, but would dominate at 1/60 scale."""
        if scale <= 1:
            return self
        return WaitPolicy(timeout=self.timeout / scale, first_interval=self.first_interval / scale,
                          max_interval=self.max_interval / scale, progress_every=self.progress_every / scale)


class Waiter:
    def __init__(
        self,
        clock: Clock,
        progress: Callable[[str], None],
        policy: WaitPolicy | None = None,
        interrupt: threading.Event | None = None,
        idle: Callable[[], ContextManager[None]] = nullcontext,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.progress = progress
        self.policy = policy or WaitPolicy()
        self.interrupt = interrupt or threading.Event()
        self.idle = idle  # the pipeline lends the step's --parallel slot out while it sleeps
        self.wall_clock = wall_clock  # for "since 14:02:11 UTC" in progress lines

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
        since = time.strftime("%H:%M:%S UTC", time.gmtime(self.wall_clock()))
        typical = typical_for(what)
        usually = f"; AWS usually takes ~{human(typical.seconds)}" if typical else ""
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
                self.progress(f"waiting for {what}: {describe(value)} (since {since}, {elapsed:.0f}s so far"
                              f"{usually}; timeout {human(timeout)})")
                last_report = now
            with self.idle():
                self.clock.sleep(min(interval, timeout - elapsed))
            interval = min(interval * 2, self.policy.max_interval)
