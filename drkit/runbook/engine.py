"""Runs a runbook: the state lock, the journal, each step's check-first/act/prove cycle, approvals,
parallel groups, verify before and after, and the report.

Every step first asks its check: an effect that already holds (a resumed run, a re-run) is
skipped, so a run killed at any instant is continued by `resume` without doing anything twice.
A failed step stops the run with the step's own "what to do", journaled; the run stays resumable.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from drkit.errors import DegradedModeError, DrkitError, InterruptedRun
from drkit.runbook.context import RunContext
from drkit.runbook.model import StepSpec
from drkit.runbook.registry import ACTIONS, CHECKS, GATES, Verdict


class RunbookFailed(DrkitError):
    """A step failed: the message says which and what to do; the run can be resumed."""


class RunbookDeclined(DrkitError):
    """The person asked said no: nothing more was changed."""


@dataclass
class StepOutcome:
    step: StepSpec
    result: str  # ok | skipped | failed
    detail: str


def done_steps(records: list[dict[str, Any]]) -> set[str]:
    """Steps a journal shows finished (ok or skipped): a resume does not run them again."""
    return {r["step"] for r in records if r.get("type") in ("step.end", "step.skip") and r.get("result", "ok") != "failed"}


def execute(rc: RunContext, *, resumed: set[str] = frozenset()) -> list[StepOutcome]:  # type: ignore[assignment]
    """Run every step not already done, batch by batch. Raises RunbookFailed/RunbookDeclined."""
    outcomes: list[StepOutcome] = []
    rc.aws.listeners.append(rc.listen)
    try:
        if rc.runbook.verify and not resumed:
            verify(rc, "before")
        for batch in rc.runbook.batches(rc.mode):
            todo = [s for s in batch if s.id not in resumed]
            if len(todo) == 1:
                outcomes.append(run_step(rc, todo[0]))
            elif todo:
                with ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="drkit-runbook") as pool:
                    futures = [pool.submit(run_step, rc, s) for s in todo]
                    errors = []
                    for future in futures:
                        try:
                            outcomes.append(future.result())
                        except DrkitError as exc:
                            errors.append(exc)
                    if errors:
                        raise errors[0]
        if rc.runbook.verify:
            verify(rc, "after")
    finally:
        rc.aws.listeners.remove(rc.listen)
    return outcomes


def run_step(rc: RunContext, spec: StepSpec) -> StepOutcome:
    direction = rc.direction(spec.toward)
    avoid = spec.avoid or rc.runbook.avoid
    started = rc.now()
    rc.record("step.start", step=spec.id, title=spec.title, group=spec.group)
    rc.echo(f"- {spec.title}")
    with rc.recording(avoid) as calls:
        try:
            result, detail = _step_body(rc, spec, direction)
        except InterruptedRun:
            rc.record("step.end", step=spec.id, title=spec.title, result="failed", started_at=started,
                      seconds=round(rc.now() - started, 3), detail="interrupted", calls=calls, what_to_do=None)
            raise
        except DrkitError as exc:
            rc.record("step.end", step=spec.id, title=spec.title, result="failed", started_at=started,
                      seconds=round(rc.now() - started, 3), detail=exc.one_line(), calls=calls,
                      what_to_do=spec.on_failure)
            rc.echo(f"  FAILED: {exc.one_line()}")
            if isinstance(exc, (RunbookDeclined, RunbookFailed)):
                raise
            raise RunbookFailed(f"step {spec.id!r} ({spec.title}) failed: {exc.one_line()}. What to do: "
                                f"{spec.on_failure}", hint=f"then `drkit runbook resume {rc.run_id}`") from exc
    if result == "skipped":
        rc.record("step.skip", step=spec.id, title=spec.title, reason=detail, calls=calls)
        rc.echo(f"  skipped: {detail}")
    else:
        rc.record("step.end", step=spec.id, title=spec.title, result="ok", started_at=started,
                  seconds=round(rc.now() - started, 3), detail=detail, calls=calls, what_to_do=None)
        rc.echo(f"  ok: {detail}")
    return StepOutcome(spec, result, detail)


def _step_body(rc: RunContext, spec: StepSpec, direction: Any) -> tuple[str, str]:
    if spec.gate:
        reasons = GATES[spec.gate](rc, direction)
        if not reasons:
            return "ok", "go"
        if not rc.options.force:
            listed = "; ".join(reasons)
            raise RunbookFailed(f"no-go ({len(reasons)} reason(s)): {listed}. What to do: {spec.on_failure}",
                                hint="nothing was changed")
        rc.record("override", step=spec.id, reasons=reasons, **_who(rc))
        rc.echo("  NO-GO overridden with --force (journaled): " + "; ".join(reasons))
        return "ok", "overridden with --force: " + "; ".join(reasons)
    action = ACTIONS.get(spec.action) if spec.action else None
    check = CHECKS[spec.check] if spec.check else None
    if action is not None:
        why_not = action.applies(rc, direction)
        if why_not:
            return "skipped", why_not
    if check is not None and action is not None:
        holds = check(rc, direction)
        if holds.ok:
            return "skipped", f"already holds: {holds.detail}"
    detail = ""
    if action is not None:
        if action.destructive and not rc.options.yes:
            change = action.change(rc, direction)
            answer = rc.ask(f"{spec.title}: {change}. Proceed?")
            rc.record("approval", step=spec.id, change=change, answer=bool(answer), **_who(rc))
            if not answer:
                raise RunbookDeclined(f"declined at step {spec.id!r}: nothing more was changed",
                                      hint=f"`drkit runbook resume {rc.run_id}` continues from this step")
        detail = action.run(rc, direction, spec)
    if check is not None:
        verdict: Verdict = rc.waiter.until(f"{spec.title} ({spec.check})", lambda: check(rc, direction),
                                           lambda v: v.ok, describe=lambda v: v.detail, failed=lambda v: v.failed,
                                           timeout=spec.timeout)
        detail = f"{detail}; {verdict.detail}" if detail else verdict.detail
    return "ok", detail


def _who(rc: RunContext) -> dict[str, Any]:
    return {"caller_arn": rc.identity.get("caller_arn"), "local_user": rc.identity.get("local_user")}


def verify(rc: RunContext, phase: str) -> None:
    """`drkit verify` of the whole stack, in the report. Skipped where it would call the impaired region."""
    if rc.runbook.avoid == "source" or rc.runner is None or rc.options.no_state:
        rc.record("verify", phase=phase, ok=None, findings=0, lines=[],
                  skipped="a failover never reads the impaired region")
        return
    outcome = rc.runner.verify()
    lines = [f"{c.step}: {c.describe()}" for c in outcome.changes]
    lines += [f"{r.step.key}: {r.error}" for r in outcome.failed]
    rc.record("verify", phase=phase, ok=outcome.ok and not outcome.changes, findings=len(outcome.changes),
              lines=lines[:50], skipped=None)
    rc.echo(f"- verify {phase}: {len(outcome.changes)} finding(s)" + (f", {len(outcome.failed)} step(s) failed"
                                                                      if outcome.failed else ""))


def holding_lock(rc: RunContext) -> Any:
    """The state lock for the run (one runbook or provision at a time per env). A failover in
    degraded mode (the state's home region down) runs without it, journaled: it must never wait
    for the failed region."""
    if rc.options.no_state:
        return nullcontext()
    try:
        if rc.storage.degraded and rc.runbook.avoid == "source":
            raise DegradedModeError("the state's home region is down")
        lock = rc.storage.lock(f"runbook {rc.runbook.name} {rc.run_id}")
        lock.__enter__()
    except DegradedModeError as exc:
        if rc.runbook.avoid != "source":
            raise
        rc.echo(f"drkit: warning: running without the state lock ({exc.one_line()}); journaled to the replica "
                "and locally")
        rc.record("fact", name="lock", value="not held", detail=exc.one_line())
        return nullcontext()
    return _Release(lock)


class _Release:
    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> Any:
        return self.lock

    def __exit__(self, *exc: object) -> None:
        self.lock.__exit__(*exc)

