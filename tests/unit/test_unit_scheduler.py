"""The scheduler on a virtual clock: fake steps that wait a number of (virtual) seconds, no AWS.

Virtual time moves only when every started step is asleep and no step is ready but unstarted,
so start times are exact and the tests never depend on the machine's speed.
"""

from __future__ import annotations

import threading

import pytest

from drkit.errors import DrkitError, InterruptedRun
from drkit.pipeline import Pipeline, StepResult
from drkit.step import Step
from tests.unit.test_unit_pipeline import Fake


class Timeline:
    """A virtual clock driven by the pipeline's events (see the module docstring)."""

    def __init__(self, steps: list[Step], reverse: bool = False, published: set[str] | None = None) -> None:
        self.published = published if published is not None else set()
        self.steps = {s.key: s for s in steps}
        self.now = 0.0
        self.cond = threading.Condition()
        self.wakes: dict[int, float] = {}
        self.needs = Pipeline(steps).prerequisites(steps, reverse=reverse)
        self.resolved: set[str] = set()
        self.begun: set[str] = set()
        self.log: list[tuple[float, str, str]] = []
        self.stop = False
        self.driver = threading.Thread(target=self._drive, daemon=True)

    def event(self, kind: str, step: Step, result: StepResult | None) -> None:
        with self.cond:
            if kind in ("started", "skipped"):
                self.begun.add(step.key)
            if kind in ("done", "failed", "skipped"):
                self.resolved.add(step.key)
            if kind != "waiting":
                self.log.append((self.now, kind, step.key))
            self.cond.notify_all()

    def sleep(self, seconds: float) -> None:
        with Pipeline.idle(), self.cond:
            me = threading.get_ident()
            self.wakes[me] = self.now + seconds
            self.cond.notify_all()
            while self.now < self.wakes[me]:
                self.cond.wait(0.05)
            del self.wakes[me]

    def _quiet(self) -> bool:
        ready = [k for k, before in self.needs.items() if k not in self.begun
                 and all(b in self.resolved or (b in self.begun and b in self.published
                                                and b in self.steps[k].reads()) for b in before)]
        busy = self.begun - self.resolved
        return not ready and bool(self.wakes) and len(self.wakes) == len(busy)

    def _drive(self) -> None:
        with self.cond:
            while not self.stop:
                if self._quiet():
                    self.now = min(self.wakes.values())
                    self.cond.notify_all()
                self.cond.wait(0.01)

    def __enter__(self) -> "Timeline":
        self.driver.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.cond:
            self.stop = True
        self.driver.join()

    def at(self, kind: str) -> dict[str, float]:
        return {key: t for t, k, key in self.log if k == kind}


def fake_work(timeline: Timeline, seconds: dict[str, float], fail: set[str] = frozenset()):
    def work(step: Step) -> StepResult:
        timeline.sleep(seconds.get(step.key, 0))
        if step.key in fail:
            raise DrkitError(f"boom in {step.key}")
        return StepResult(step, "r")
    return work


def stack() -> list[Step]:
    # The shape of drkit's own graph: a slow step nothing needs (the DynamoDB replica) next to
    # the long Aurora chain that needs the network.
    return [
        Fake("vpc", "primary"),
        Fake("vpc", "dr"),
        Fake("table", "global"),
        Fake("sg", "primary", ("vpc:primary",)),
        Fake("sg", "dr", ("vpc:dr",)),
        Fake("aurora", "primary", ("vpc:primary", "sg:primary")),
        Fake("aurora", "dr", ("aurora:primary", "vpc:dr", "sg:dr")),
    ]


SECONDS = {"vpc:primary": 90, "vpc:dr": 60, "table": 480, "table:global": 480, "sg:primary": 5, "sg:dr": 5,
           "aurora:primary": 1200, "aurora:dr": 1500}


@pytest.mark.parametrize("parallel", [1, 2, 4, 16])
def test_each_step_starts_when_its_own_prerequisites_are_done(parallel) -> None:
    steps = stack()
    with Timeline(steps) as timeline:
        results = Pipeline(steps).run(steps, fake_work(timeline, SECONDS), parallel=parallel, on_event=timeline.event)
    assert all(r.ok for r in results)
    started, done = timeline.at("started"), timeline.at("done")
    # Not after the 480 s table: each as soon as what it reads is there.
    assert started == {"vpc:primary": 0, "vpc:dr": 0, "table:global": 0, "sg:primary": 90, "sg:dr": 60,
                       "aurora:primary": 95, "aurora:dr": 1295}
    assert done["aurora:dr"] == 2795  # the critical path: 90 + 5 + 1200 + 1500
    assert done["table:global"] == 480  # overlapped with the Aurora chain


def test_teardown_runs_the_graph_in_reverse_as_soon_as_dependents_are_gone() -> None:
    steps = stack()
    with Timeline(steps, reverse=True) as timeline:
        Pipeline(steps).run(steps, fake_work(timeline, SECONDS), parallel=4, reverse=True, on_event=timeline.event)
    started = timeline.at("started")
    assert started["aurora:dr"] == 0 and started["table:global"] == 0
    assert started["aurora:primary"] == 1500
    assert started["sg:dr"] == 1500  # needs only aurora:dr gone, not aurora:primary
    assert started["vpc:dr"] == 1505
    assert started["sg:primary"] == 2700 and started["vpc:primary"] == 2705


def test_a_failure_skips_only_what_builds_on_it() -> None:
    steps = stack()
    with Timeline(steps) as timeline:
        results = Pipeline(steps).run(steps, fake_work(timeline, SECONDS, fail={"sg:dr"}), parallel=4,
                                      on_event=timeline.event)
    status = {r.step.key: "skipped" if r.skipped else "failed" if r.error else "ok" for r in results}
    assert status == {"vpc:primary": "ok", "vpc:dr": "ok", "table:global": "ok", "sg:primary": "ok",
                      "sg:dr": "failed", "aurora:primary": "ok", "aurora:dr": "skipped"}
    assert "aurora:dr" not in timeline.at("started")
    assert timeline.at("skipped")["aurora:dr"] == 1295  # decided once its last prerequisite ended


def test_waiting_steps_give_their_parallel_slot_away() -> None:
    # --parallel 1: four steps that each wait 100 s still overlap, since waiting is not work.
    steps = [Fake("w", str(n)) for n in range(4)]
    with Timeline(steps) as timeline:
        Pipeline(steps).run(steps, fake_work(timeline, {s.key: 100 for s in steps}), parallel=1,
                            on_event=timeline.event)
    assert set(timeline.at("done").values()) == {100}


def test_ctrl_c_stops_starting_steps_and_lets_running_ones_stop() -> None:
    steps = stack()
    interrupted = threading.Event()
    seen: list[str] = []

    def work(step: Step) -> StepResult:
        seen.append(step.key)
        if step.key == "table:global":
            interrupted.wait(5)  # a wait that ends at the next poll once interrupted
            return StepResult(step, "r", error=InterruptedRun("interrupted while waiting"))
        return StepResult(step, "r")

    def on_event(kind: str, step: Step, result: StepResult | None) -> None:
        if kind == "done" and step.key == "vpc:primary":  # runs on the main thread, like SIGINT
            raise KeyboardInterrupt

    with pytest.raises(InterruptedRun, match="re-run to resume"):
        Pipeline(steps).run(steps, work, parallel=4, on_interrupt=interrupted.set, on_event=on_event)
    assert interrupted.is_set()
    assert "aurora:primary" not in seen and "aurora:dr" not in seen


class Reader(Fake):
    """A fake step that needs only some outputs of its dependencies."""

    def __init__(self, name: str, role: str, deps: tuple[str, ...], reads: tuple[str, ...]) -> None:
        super().__init__(name, role, deps)
        self._reads = reads

    def reads(self) -> dict[str, tuple[str, ...]]:
        return {dep: ("id",) for dep in self._reads}


def early_stack() -> list[Step]:
    return [
        Fake("vpc", "primary"),  # publishes its id at 10 s, then waits 80 s for its NAT gateway
        Reader("sg", "primary", ("vpc:primary",), ("vpc:primary",)),
        Reader("aurora", "primary", ("vpc:primary", "sg:primary"), ("vpc:primary", "sg:primary")),
        Fake("lambda", "primary", ("vpc:primary",)),  # needs the NAT: reads nothing early
    ]


@pytest.mark.parametrize("fail_vpc", [False, True])
def test_a_step_that_reads_only_published_outputs_starts_before_its_dependency_is_done(fail_vpc) -> None:
    steps = early_stack()
    published: set[str] = set()
    with Timeline(steps, published=published) as timeline:
        def work(step: Step) -> StepResult:
            if step.key == "vpc:primary":
                timeline.sleep(10)
                with timeline.cond:
                    published.add(step.key)
                timeline.sleep(80)
                if fail_vpc:
                    raise DrkitError("NAT gateway failed")
            else:
                timeline.sleep(5 if step.key == "sg:primary" else 600)
                with timeline.cond:
                    published.add(step.key)
            return StepResult(step, "r")

        def early(step: Step, prerequisite: Step) -> bool:
            return prerequisite.key in step.reads() and prerequisite.key in published

        results = Pipeline(steps).run(steps, work, parallel=4, on_event=timeline.event, early=early)
    started = timeline.at("started")
    assert started["sg:primary"] == 10 and started["aurora:primary"] == 15  # not at 90, when vpc is done
    status = {r.step.key: "skipped" if r.skipped else "failed" if r.error else "ok" for r in results}
    if fail_vpc:
        # What started on the published part carries on; what needs the whole step is skipped.
        assert status == {"vpc:primary": "failed", "sg:primary": "ok", "aurora:primary": "ok",
                          "lambda:primary": "skipped"}
    else:
        assert started["lambda:primary"] == 90 and all(v == "ok" for v in status.values())


def test_early_is_not_used_in_reverse() -> None:
    steps = early_stack()
    with Timeline(steps, reverse=True) as timeline:
        Pipeline(steps).run(steps, fake_work(timeline, {"aurora:primary": 100, "sg:primary": 5}), parallel=4,
                            reverse=True, on_event=timeline.event, early=lambda step, prerequisite: True)
    started = timeline.at("started")
    assert started["sg:primary"] == 100 and started["vpc:primary"] == 105
