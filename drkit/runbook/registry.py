"""The names a runbook file may use: actions (what a step changes), checks (the read that proves it
worked, also asked first so a resumed step whose effect holds is skipped) and gates (every reason
not to go). Each module registers its own with the decorators below."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from drkit.runbook.model import Known


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str
    failed: str | None = None  # a reason to stop waiting: it will not come true


@dataclass(frozen=True)
class Action:
    name: str
    run: Callable[..., str]  # (rc, direction, spec) -> detail; makes the change, idempotently
    planned: Callable[..., list[str]]  # (rc, direction) -> the exact AWS calls it would make
    change: Callable[..., str]  # (rc, direction) -> what it will change, said to the person asked
    applies: Callable[..., str | None]  # (rc, direction) -> None, or why the step does not apply
    destructive: bool
    preconditions: str


ACTIONS: dict[str, Action] = {}
CHECKS: dict[str, Callable[..., Verdict]] = {}
GATES: dict[str, Callable[..., list[str]]] = {}


def action(name: str, *, planned: Callable[..., list[str]], change: Callable[..., str], destructive: bool = True,
           preconditions: str = "", applies: Callable[..., str | None] = lambda rc, d: None) -> Callable[..., Any]:
    def register(run: Callable[..., str]) -> Callable[..., str]:
        ACTIONS[name] = Action(name, run, planned, change, applies, destructive, preconditions)
        return run

    return register


def check(name: str) -> Callable[..., Any]:
    def register(fn: Callable[..., Verdict]) -> Callable[..., Verdict]:
        CHECKS[name] = fn
        return fn

    return register


def gate(name: str) -> Callable[..., Any]:
    def register(fn: Callable[..., list[str]]) -> Callable[..., list[str]]:
        GATES[name] = fn
        return fn

    return register


def known() -> Known:
    from drkit.runbook import aurora_actions, gates, traffic_actions  # noqa: F401  (they register)

    return Known(frozenset(ACTIONS), frozenset(CHECKS), frozenset(GATES))
