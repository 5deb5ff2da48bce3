"""What a runbook run works with: the provisioning run's gateway, waiter, state and storage (one way
to do each thing), the direction of the run, its journal, and who is acting."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from drkit.aws import AwsGateway, is_mutating
from drkit.config import Config
from drkit.errors import DrkitError
from drkit.identity import whoami
from drkit.state import State
from drkit.storage.base import Journal, Storage
from drkit.waiters import Waiter

ROUTE53_CONTROL_PLANE = "route53"  # every route53 API is the control plane (us-east-1)


class ImpairedRegionCallRefused(DrkitError):
    """A call a failover must never make: into the impaired region, or to Route 53's control plane."""


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


@dataclass(frozen=True)
class Direction:
    """Which way a step acts: from the region that has the writer to the one that gets it."""

    frm: str  # role
    to: str  # role


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    yes: bool = False
    force: bool = False
    no_state: bool = False
    to: str | None = None
    mode: str | None = None


@dataclass
class RunContext:
    config: Config
    aws: AwsGateway
    state: State
    storage: Storage
    waiter: Waiter
    run_id: str
    runbook: Any  # drkit.runbook.model.Runbook
    source: str  # role active when the run started
    target: str  # role the run moves the writer to
    options: Options
    journal: Journal | None = None
    echo: Callable[[str], None] = print
    ask: Callable[[str], bool] = lambda question: False
    identity: dict[str, Any] = field(default_factory=dict)
    started_t: float = 0.0  # wall time of the run's first start (survives resumes)
    now: Callable[[], float] = time.time
    runner: Any = None  # the provisioning Runner (verify before/after)
    facts: dict[str, Any] = field(default_factory=dict)  # measured along the way (journaled too)
    _calls: threading.local = field(default_factory=threading.local, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def mode(self) -> str | None:
        return self.options.mode or self.runbook.default_mode

    def direction(self, toward: str) -> Direction:
        return Direction(self.source, self.target) if toward == "target" else Direction(self.target, self.source)

    def region(self, role: str) -> str:
        return self.config.region(role)

    # Journal ---------------------------------------------------------------------------------
    def record(self, kind: str, **fields: Any) -> None:
        """Append one journal record (durably; never in a dry run)."""
        if self.journal is None:
            return
        now = self.now()
        with self._lock:
            self.journal.append({"type": kind, "run_id": self.run_id, "runbook": self.runbook.name,
                                 "at": iso(now), "t": now, **fields})

    def measure(self, name: str, value: Any, unit: str, detail: str = "") -> None:
        if name in self.facts:
            return
        self.facts[name] = value
        self.record("measure", name=name, value=value, unit=unit, detail=detail)

    def remember(self, name: str, value: Any, **detail: Any) -> None:
        """A fact a resumed run needs (the canary's id, the failover path), journaled."""
        self.facts[name] = value
        self.record("fact", name=name, value=value, **detail)

    def since_start(self) -> float:
        return round(self.now() - self.started_t, 3)

    # Calls -------------------------------------------------------------------------------------
    @contextmanager
    def recording(self, avoid: str | None) -> Iterator[list[dict[str, Any]]]:
        """The AWS calls made on this thread while inside, and (avoid='source') a refusal of any
        call into the source region or to Route 53's control plane."""
        calls: list[dict[str, Any]] = []
        forbidden = self.region(self.source) if avoid == "source" else None
        previous = getattr(self._calls, "active", None)
        self._calls.active = (calls, forbidden)
        try:
            yield calls
        finally:
            self._calls.active = previous

    def avoiding_source(self) -> bool:
        """Whether the step on this thread must not call the source region (a failover's step)."""
        active = getattr(self._calls, "active", None)
        return bool(active and active[1])

    def listen(self, service: str, region: str, operation: str) -> None:
        """The gateway's listener: records the call for the current step, refuses forbidden ones."""
        active = getattr(self._calls, "active", None)
        if active is None:
            return
        calls, forbidden = active
        if forbidden and (region == forbidden or service == ROUTE53_CONTROL_PLANE):
            why = "the impaired region" if region == forbidden else "Route 53's control plane"
            raise ImpairedRegionCallRefused(
                f"refused {service} {operation} in {region}: a failover never calls {why}")
        calls.append({"service": service, "region": region, "operation": operation,
                      "mutating": is_mutating(operation)})


def who_is_acting(aws: AwsGateway, region: str) -> dict[str, Any]:
    """The caller identity from STS (in `region`, the healthy one) and the local user."""
    found = whoami(aws, region)
    return {"caller_arn": found["arn"], "local_user": found["user"], "host": found["host"]}
