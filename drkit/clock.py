"""Time, injectable: real for drkit runs, fake for tests that must never sleep."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time. Sleeps end early when `interrupt` is set (Ctrl-C), so a run stops promptly."""

    def __init__(self, interrupt: threading.Event | None = None) -> None:
        self.interrupt = interrupt or threading.Event()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self.interrupt.wait(seconds)


@dataclass
class FakeClock:
    """A clock whose sleep returns at once and moves time forward; records every sleep."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
