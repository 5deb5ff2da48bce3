"""The ordered pipeline: steps resolved into batches by their dependencies, each batch run on a
thread pool (the two regions build side by side), teardown the same graph in reverse."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

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

    def run(
        self,
        steps: Sequence[Step],
        work: Callable[[Step], StepResult],
        *,
        parallel: int,
        reverse: bool = False,
        keep_going: bool = False,
        on_interrupt: Callable[[], None] = lambda: None,
    ) -> list[StepResult]:
        """Run `work` per step, batch by batch. After a failed batch the rest is skipped (unless
        keep_going, for read-only work), so nothing builds on -- or tears down under -- a failure."""
        results: list[StepResult] = []
        failed = False
        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="drkit-step") as pool:
            for batch in self.batches(steps, reverse=reverse):
                if failed and not keep_going:
                    results += [StepResult(step, "", skipped=True) for step in batch]
                    continue
                futures = [pool.submit(_timed, work, step) for step in batch]
                try:
                    # Wait in short slices: a blocking wait is not woken by a SIGINT that lands
                    # on a worker thread, and Ctrl-C must stop a run at once.
                    while not all(f.done() for f in futures):
                        wait(futures, timeout=0.2)
                    batch_results = [f.result() for f in futures]
                except KeyboardInterrupt:
                    # Let running steps stop at their next change or poll, then report it.
                    on_interrupt()
                    for f in futures:
                        f.cancel()
                    pool.shutdown(wait=True)
                    raise InterruptedRun("interrupted; the state file is up to date: re-run to resume") from None
                results += batch_results
                failed = failed or any(r.error for r in batch_results)
        return results


def _timed(work: Callable[[Step], StepResult], step: Step) -> StepResult:
    started = time.monotonic()
    try:
        result = work(step)
    except (DrkitError, Exception) as exc:  # reported per step, rendered by the caller
        result = StepResult(step, "", error=exc)
    result.seconds = time.monotonic() - started
    return result
