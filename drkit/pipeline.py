"""The ordered pipeline: each step starts the moment the steps it depends on are done (teardown:
the moment the steps that depend on it are gone), so a slow step delays only what needs it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from drkit.errors import DrkitError, InterruptedRun, UserInputError
from drkit.step import Change, Step


@dataclass
class StepResult:
    step: Step
    region: str
    changes: list[Change] = field(default_factory=list)
    error: BaseException | None = None
    skipped: bool = False
    seconds: float = 0.0
    detail: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped


class Pipeline:
    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        keys = [s.key for s in self.steps]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate step keys in {keys}")
        for step in self.steps:
            for dep in step.depends_on():
                if dep not in keys:
                    raise ValueError(f"{step.key} depends on unknown step {dep}")

    def select(self, names: Sequence[str] | None) -> list[Step]:
        """Steps named by `--step` (a family like ensure_vpc, or a key like ensure_vpc:dr)."""
        if not names:
            return list(self.steps)
        chosen = [s for s in self.steps if s.name in names or s.key in names]
        unknown = [n for n in names if not any(n in (s.name, s.key) for s in self.steps)]
        if unknown:
            known = sorted({s.name for s in self.steps} | {s.key for s in self.steps})
            raise UserInputError(f"unknown step {unknown[0]!r}", hint=f"steps: {', '.join(known)}")
        return chosen

    def batches(self, steps: Sequence[Step], *, reverse: bool = False) -> list[list[Step]]:
        """Dependency levels among `steps`: every step comes after the steps it depends on."""
        chosen = {s.key: s for s in steps}
        level: dict[str, int] = {}

        def depth(step: Step, trail: tuple[str, ...] = ()) -> int:
            if step.key in trail:
                raise ValueError(f"dependency cycle: {' -> '.join(trail + (step.key,))}")
            if step.key not in level:
                deps = [chosen[d] for d in step.depends_on() if d in chosen]
                level[step.key] = 1 + max((depth(d, trail + (step.key,)) for d in deps), default=-1)
            return level[step.key]

        for step in steps:
            depth(step)
        ordered = [[s for s in self.steps if s.key in chosen and level[s.key] == n] for n in range(max(level.values(), default=-1) + 1)]
        return list(reversed(ordered)) if reverse else ordered

    def prerequisites(self, steps: Sequence[Step], *, reverse: bool = False) -> dict[str, set[str]]:
        """For each chosen step, the chosen steps that must finish before it starts: the ones it
        depends on, or for teardown (reverse) the ones that depend on it."""
        chosen = {s.key for s in steps}
        needs: dict[str, set[str]] = {key: set() for key in chosen}
        for step in steps:
            for dep in step.depends_on():
                if dep in chosen:
                    if reverse:
                        needs[dep].add(step.key)
                    else:
                        needs[step.key].add(dep)
        return needs

    def run(
        self,
        steps: Sequence[Step],
        work: Callable[[Step], StepResult],
        *,
        parallel: int,
        reverse: bool = False,
        keep_going: bool = False,
        on_interrupt: Callable[[], None] = lambda: None,
        on_event: Callable[[str, Step, StepResult | None], None] | None = None,
        early: Callable[[Step, Step], bool] | None = None,
    ) -> list[StepResult]:
        """Run `work` per step, each the moment its prerequisites are done (see `prerequisites`).

        Every step gets its own thread, because a step spends most of its time waiting on AWS;
        `parallel` bounds how many steps observe and apply at once (a step waiting on AWS gives
        its slot back, see `idle`). A step whose prerequisite failed or was skipped is skipped
        (unless keep_going, for read-only work), so nothing builds on -- or tears down under -- a
        failure; steps that do not need the failed one carry on. `on_event(kind, step, result)`
        reports "waiting" (for prerequisites), "started", "done", "failed" and "skipped".
        `early(step, prerequisite)` may say that a still-running prerequisite has already
        published all that `step` reads of it (see Step.reads); not used in reverse.
        Results come back in dependency-level order, as `batches` lists them.
        """
        order = [s for batch in self.batches(steps, reverse=reverse) for s in batch]  # also checks cycles
        if not order:
            return []
        needs = self.prerequisites(order, reverse=reverse)
        notify = on_event or (lambda kind, step, result: None)
        results: dict[str, StepResult] = {}
        running: dict[str, Future[StepResult]] = {}
        slots = threading.BoundedSemaphore(max(1, parallel))
        for step in order:
            notify("waiting", step, None)
        with ThreadPoolExecutor(max_workers=len(order), thread_name_prefix="drkit-step") as pool:
            try:
                while len(results) < len(order):
                    self._start_ready(order, needs, results, running, keep_going, notify,
                                      lambda step: pool.submit(self._slotted, slots, work, step, notify),
                                      None if reverse else early)
                    if not running:
                        continue
                    # Wait in short slices: a blocking wait is not woken by a SIGINT that lands
                    # on a worker thread, and Ctrl-C must stop a run at once. With `early`, the
                    # slices are shorter: a published output is noticed at the next one.
                    finished, _ = wait(list(running.values()), timeout=0.05 if early else 0.2,
                                       return_when=FIRST_COMPLETED)
                    for key in [k for k, f in running.items() if f in finished]:
                        result = running.pop(key).result()
                        results[key] = result
                        notify("failed" if result.error is not None else "done", result.step, result)
            except KeyboardInterrupt:
                # Let running steps stop at their next change or poll, then report it.
                on_interrupt()
                pool.shutdown(wait=True, cancel_futures=True)
                raise InterruptedRun("interrupted; the state file is up to date: re-run to resume") from None
        return [results[s.key] for s in order]

    @staticmethod
    def _start_ready(order: list[Step], needs: dict[str, set[str]], results: dict[str, StepResult],
                     running: dict[str, Future], keep_going: bool, notify: Callable,
                     submit: Callable[[Step], Future], early: Callable[[Step, Step], bool] | None) -> None:
        """Skip the steps a failure blocks and start every step whose prerequisites are done
        (or, per `early`, have published what it reads)."""
        steps = {s.key: s for s in order}
        progressed = True
        while progressed:
            progressed = False
            for step in order:
                if step.key in results or step.key in running:
                    continue
                before = [results.get(k) for k in needs[step.key]]
                pending = [k for k in needs[step.key] if k not in results]
                if pending and not (early and all(k in running and early(step, steps[k]) for k in pending)):
                    continue
                if not keep_going and any(not r.ok for r in before if r is not None):
                    results[step.key] = StepResult(step, "", skipped=True)
                    notify("skipped", step, results[step.key])
                    progressed = True
                    continue
                running[step.key] = submit(step)

    @staticmethod
    def _slotted(slots: threading.BoundedSemaphore, work: Callable[[Step], StepResult], step: Step,
                 notify: Callable) -> StepResult:
        with slots:
            _HELD.slots = slots
            try:
                notify("started", step, None)
                return _timed(work, step)
            finally:
                _HELD.slots = None

    @staticmethod
    @contextmanager
    def idle() -> Iterator[None]:
        """While a step waits on AWS, it gives its `--parallel` slot to a step with work to do."""
        slots = getattr(_HELD, "slots", None)
        if slots is None:
            yield
            return
        slots.release()
        try:
            yield
        finally:
            slots.acquire()


# The slot held by the step running on this thread (one step per thread; see Pipeline.idle).
_HELD = threading.local()


def _timed(work: Callable[[Step], StepResult], step: Step) -> StepResult:
    started = time.monotonic()
    try:
        result = work(step)
    except (DrkitError, Exception) as exc:  # reported per step, rendered by the caller
        result = StepResult(step, "", error=exc)
    result.seconds = time.monotonic() - started
    return result
