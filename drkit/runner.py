"""drkit's operations -- plan, provision, verify, teardown, outputs -- over the pipeline.

The CLI and `drkit demo` are thin layers over `Runner`; tests drive it directly too.
Mutating operations hold the state lock for their whole run and show what they will do before
doing it (`confirm` decides), the pyinfra way: prepare -> show changes -> confirm -> execute.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from drkit.aws import AuditLog, AwsGateway, RetryPolicy
from drkit.clock import Clock, SystemClock
from drkit.config import Config
from drkit.logs import make_logger
from drkit.pipeline import Pipeline, StepResult
from drkit.state import State, load_state
from drkit.storage import new_run_id, open_storage
from drkit.storage.local import audit_path as local_audit_path
from drkit.step import DELETE, MUTATING_ACTIONS, WAIT, Assessment, Step, StepContext, refuse_replacements
from drkit.waiters import WaitPolicy, Waiter

Confirm = Callable[[list[StepResult]], bool]


def audit_path(config: Config):
    """The local audit file beside a local state file (an S3 state keeps it under its prefix)."""
    return local_audit_path(config.state_path)


@dataclass
class Outcome:
    """What an operation did: per-step results, and whether the user declined.

    planning_failed: a mutating operation stopped at its plan because some step could not be
    observed; its results hold the *planned* changes, none of which was applied.
    """

    results: list[StepResult]
    declined: bool = False
    applied: bool = False
    planning_failed: bool = False

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def probes(self) -> list:
        return [p for r in self.results for p in (r.detail or []) if not getattr(p, "informational", False)]

    @property
    def statuses(self) -> list:
        """What verify reports without judging (health-check status, the region DNS answers)."""
        return [p for r in self.results for p in (r.detail or []) if getattr(p, "informational", False)]

    @property
    def failed(self) -> list[StepResult]:
        return [r for r in self.results if r.error is not None]

    @property
    def changes(self) -> list:
        return [c for r in self.results for c in r.changes]


def sandbox_wait_policy(config: Config, environ: Mapping[str, str] | None = None) -> WaitPolicy:
    """Polls scaled to a sandbox running the `aws` profile at DRKIT_SANDBOX_SCALE. Only with an
    endpoint URL: against AWS itself, polls keep their real-world pace whatever the environment."""
    environ = os.environ if environ is None else environ
    if not config.endpoint_url or environ.get("DRKIT_SANDBOX_PROFILE", "").lower() != "aws":
        return WaitPolicy()
    try:
        scale = float(environ.get("DRKIT_SANDBOX_SCALE", "60"))
    except ValueError:
        return WaitPolicy()
    return WaitPolicy().scaled(scale)


def _known(value: Any) -> bool:
    """An output is known once it and (for a list, such as subnet ids) each of its items is."""
    if isinstance(value, list):
        return bool(value) and all(item is not None for item in value)
    return value is not None


class Runner:
    def __init__(
        self,
        config: Config,
        steps: Sequence[Step],
        *,
        aws: AwsGateway | None = None,
        clock: Clock | None = None,
        log: Any = None,
        wait_policy: WaitPolicy | None = None,
        retry: RetryPolicy | None = None,
        credentials: dict[str, str] | None = None,
        force: bool = False,
    ) -> None:
        self.config = config
        self.force = force
        self.pipeline = Pipeline(steps)
        self.interrupt = threading.Event()
        self.clock = clock or SystemClock(self.interrupt)
        self.log = log or make_logger()
        # One id per run: the S3 audit log and journals group their records by it.
        self.run_id = new_run_id()
        self.storage = open_storage(config, credentials=credentials, clock=self.clock, retry=retry)
        self.aws = aws or AwsGateway(
            profile=config.profile,
            endpoint_url=config.endpoint_url,
            credentials=credentials,
            clock=self.clock,
            retry=retry,
            audit=self.storage.audit_log(self.run_id) if config.state_location else AuditLog(audit_path(config)),
            log=self.log,
            interrupt=self.interrupt,
        )
        self.waiter = Waiter(self.clock, lambda line: self.log.info("wait", progress=line),
                             wait_policy or sandbox_wait_policy(config), self.interrupt, idle=Pipeline.idle)
        # Told of each step's progress through the pipeline (the live view); None: nobody listens.
        self.on_event: Callable[[str, Step, StepResult | None], None] | None = None
        self._published: set[str] = set()  # steps that published outputs in the current run

    def context(self, step: Step, state: State) -> StepContext:
        return StepContext(self.config, self.aws, state, self.waiter, self.log.bind(step=step.key), step, self.force,
                           published=self._published.add)

    def _early(self, state: State) -> Callable[[Step, Step], bool]:
        """A step may start before a prerequisite is done once that prerequisite has published,
        in this run, every output the step reads of it (Step.reads), each one known."""

        def ready(step: Step, prerequisite: Step) -> bool:
            names = step.reads().get(prerequisite.key)
            if not names or prerequisite.key not in self._published:
                return False
            outputs = state.outputs(prerequisite.key)
            return all(_known(outputs.get(name)) for name in names)

        return ready

    def _run(self, steps: Sequence[Step], state: State, work: Callable[[Step, StepContext], list], **kw: Any) -> list[StepResult]:
        def one(step: Step) -> StepResult:
            ctx = self.context(step, state)
            return StepResult(step, ctx.region, work(step, ctx))

        self._published.clear()
        return self.pipeline.run(steps, one, parallel=self.config.parallel, on_interrupt=self.interrupt.set,
                                 on_event=self.on_event, **kw)

    # Read-only -----------------------------------------------------------------------------
    def plan(self, step_names: Sequence[str] | None = None) -> Outcome:
        state = load_state(self.config, persist=False, storage=self.storage)
        steps = self.pipeline.select(step_names)
        return Outcome(self._run(steps, state, lambda s, ctx: s.plan(ctx), keep_going=True))

    def verify(self, step_names: Sequence[str] | None = None, *, deep: bool = False) -> Outcome:
        """Findings per step; with `deep`, also each clean step's canary probes (in .detail)."""
        state = load_state(self.config, persist=False, storage=self.storage)
        steps = self.pipeline.select(step_names)

        def one(step: Step) -> StepResult:
            ctx = self.context(step, state)
            findings = step.verify(ctx)
            probes = step.probe(ctx) if deep and not findings else []
            return StepResult(step, ctx.region, findings, detail=step.status(ctx) + probes)

        return Outcome(self.pipeline.run(steps, one, parallel=self.config.parallel, keep_going=True,
                                         on_interrupt=self.interrupt.set))

    def plan_teardown(self, step_names: Sequence[str] | None = None) -> Outcome:
        state = load_state(self.config, persist=False, storage=self.storage)
        steps = self.pipeline.select(step_names)
        return Outcome(self._run(steps, state, lambda s, ctx: s.plan_teardown(ctx), keep_going=True, reverse=True))

    def outputs(self) -> dict[str, Any]:
        return load_state(self.config, persist=False, storage=self.storage).all_outputs()

    # Mutating ------------------------------------------------------------------------------
    def _reconcile(self) -> tuple[list[str], list[dict[str, Any]]]:
        """Copy home what was journaled while an S3 state's home region was down, or by a
        `--no-state` run (drkit.storage.s3), and apply to the state the active-region changes
        those journals hold. Under the state lock. Returns (records copied, changes applied)."""
        reconcile = getattr(self.storage, "reconcile", None)
        if reconcile is None:
            return [], []
        applied: list[dict[str, Any]] = []

        def apply(records: list[dict[str, Any]]) -> None:
            applied.extend(load_state(self.config, storage=self.storage).apply_journaled(records))

        copied = reconcile(apply=apply)
        if copied:
            self.log.info("state.reconciled", records=len(copied))
        for change in applied:
            self.log.info("state.active_reconciled", role=change["to_role"], region=change.get("region"),
                          run_id=change.get("run_id"))
        return copied, applied

    def reconcile(self) -> tuple[list[str], list[dict[str, Any]]]:
        """`drkit state reconcile`: _reconcile under the state lock, once the home region is back."""
        self.storage.require_writable("state reconcile")
        with self.storage.lock("state reconcile"):
            return self._reconcile()

    def provision(self, step_names: Sequence[str] | None = None, *, confirm: Confirm = lambda _: True) -> Outcome:
        self.storage.require_writable("provision")
        with self.storage.lock("provision"):
            self._reconcile()
            state = load_state(self.config, storage=self.storage)
            steps = self.pipeline.select(step_names)
            assessments: dict[str, Assessment] = {}

            def assess(step: Step, ctx: StepContext) -> list:
                assessments[step.key] = step.assess(ctx)
                return assessments[step.key].changes

            planned = self._run(steps, state, assess, keep_going=True)
            outcome = Outcome(planned)
            if outcome.failed:
                return Outcome(planned, planning_failed=True)
            refuse_replacements(outcome.changes)
            needs_work = {r.step.key for r in planned if any(c.action in MUTATING_ACTIONS | {WAIT} for c in r.changes)}
            if needs_work and not confirm(planned):
                return Outcome(planned, declined=True)
            # Every step runs: one with nothing to change still adopts what its tags found (a
            # lost state file) and refreshes its outputs, reusing its observation (no reads);
            # one with changes observes afresh, since time has passed and earlier steps acted.
            def converge(step: Step, ctx: StepContext) -> list:
                return step.create(ctx, None if step.key in needs_work else assessments[step.key])

            applied = self._run(steps, state, converge, early=self._early(state))
            return Outcome(applied, applied=bool(needs_work))

    def teardown(self, step_names: Sequence[str] | None = None, *, confirm: Confirm = lambda _: True) -> Outcome:
        self.storage.require_writable("teardown")
        with self.storage.lock("teardown"):
            self._reconcile()
            state = load_state(self.config, storage=self.storage)
            steps = self.pipeline.select(step_names)
            planned = self._run(steps, state, lambda s, ctx: s.plan_teardown(ctx), keep_going=True, reverse=True)
            outcome = Outcome(planned)
            if outcome.failed:
                return Outcome(planned, planning_failed=True)
            if any(c.action == DELETE for c in outcome.changes) and not confirm(planned):
                return Outcome(planned, declined=True)
            done = self._run(steps, state, lambda s, ctx: s.delete(ctx), reverse=True)
            state.forget_active_if_empty()
            return Outcome(done, applied=True)
