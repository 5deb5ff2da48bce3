"""drkit.pipeline.Pipeline: batches, select and run, with tiny fake steps (no AWS)."""

from __future__ import annotations

import threading

import pytest

from drkit.errors import DrkitError, UserInputError
from drkit.pipeline import Pipeline, StepResult
from drkit.step import Step


class Fake(Step):
    """A step whose family name and dependencies are set per instance."""

    def __init__(self, name: str, role: str, deps: tuple[str, ...] = ()) -> None:
        super().__init__(role)
        self.name = name  # type: ignore[misc]
        self._deps = deps

    def depends_on(self) -> tuple[str, ...]:
        return self._deps

    def observe(self, ctx):  # pragma: no cover - never called
        raise AssertionError("no AWS in unit tests")

    def desired(self, ctx, observation):  # pragma: no cover
        raise AssertionError("no AWS in unit tests")


def graph() -> list[Step]:
    # vpc:primary, vpc:dr  <- db:primary (needs both vpcs), db:dr (needs vpc:dr and db:primary)
    # dns:global needs db:primary and db:dr; logs:global needs nothing
    return [
        Fake("vpc", "primary"),
        Fake("vpc", "dr"),
        Fake("db", "primary", ("vpc:primary", "vpc:dr")),
        Fake("db", "dr", ("vpc:dr", "db:primary")),
        Fake("dns", "global", ("db:primary", "db:dr")),
        Fake("logs", "global"),
    ]


def keys(batches: list[list[Step]]) -> list[list[str]]:
    return [[s.key for s in batch] for batch in batches]


FULL = [["vpc:primary", "vpc:dr", "logs:global"], ["db:primary"], ["db:dr"], ["dns:global"]]


@pytest.mark.parametrize(
    "chosen, reverse, expected",
    [
        pytest.param(None, False, FULL, id="all"),
        pytest.param(None, True, list(reversed(FULL)), id="all-reverse"),
        pytest.param(["db:dr", "vpc:dr"], False, [["vpc:dr"], ["db:dr"]], id="subset-keeps-deps-among-chosen"),
        pytest.param(["dns:global"], False, [["dns:global"]], id="deps-outside-selection-ignored"),
        pytest.param(["dns:global", "vpc:primary"], False, [["vpc:primary", "dns:global"]],
                     id="unrelated-selection-single-level-pipeline-order"),
        pytest.param(["db:primary", "vpc:primary"], True, [["db:primary"], ["vpc:primary"]], id="subset-reverse"),
        pytest.param([], False, [], id="nothing"),
    ],
)
def test_batches(chosen, reverse, expected) -> None:
    steps = graph()
    pipeline = Pipeline(steps)
    selection = steps if chosen is None else [s for s in reversed(steps) if s.key in chosen]
    assert keys(pipeline.batches(selection, reverse=reverse)) == expected


def test_batches_order_is_pipeline_order_not_selection_order() -> None:
    steps = graph()
    assert keys(Pipeline(steps).batches(list(reversed(steps)))) == FULL


@pytest.mark.parametrize(
    "steps, fragment",
    [
        pytest.param([Fake("a", "x", ("b:x",)), Fake("b", "x", ("a:x",))], "dependency cycle: a:x -> b:x -> a:x",
                     id="two-cycle"),
        pytest.param([Fake("a", "x", ("a:x",))], "dependency cycle: a:x -> a:x", id="self-cycle"),
        pytest.param([Fake("r", "x"), Fake("a", "x", ("c:x", "r:x")), Fake("b", "x", ("a:x",)),
                      Fake("c", "x", ("b:x",))], "dependency cycle: a:x -> c:x -> b:x -> a:x", id="three-cycle"),
    ],
)
def test_cycles_raise(steps, fragment) -> None:
    pipeline = Pipeline(steps)
    with pytest.raises(ValueError) as info:
        pipeline.batches(steps)
    assert str(info.value) == fragment


@pytest.mark.parametrize(
    "steps, fragment",
    [
        ([Fake("a", "x"), Fake("a", "x")], "duplicate step keys"),
        ([Fake("a", "x", ("nope:x",))], "a:x depends on unknown step nope:x"),
    ],
)
def test_constructor_refuses_bad_graphs(steps, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        Pipeline(steps)


@pytest.mark.parametrize(
    "names, expected",
    [
        (None, ["vpc:primary", "vpc:dr", "db:primary", "db:dr", "dns:global", "logs:global"]),
        ([], ["vpc:primary", "vpc:dr", "db:primary", "db:dr", "dns:global", "logs:global"]),
        (["vpc"], ["vpc:primary", "vpc:dr"]),
        (["vpc:dr"], ["vpc:dr"]),
        (["dns:global", "vpc"], ["vpc:primary", "vpc:dr", "dns:global"]),
        (["db:dr", "db"], ["db:primary", "db:dr"]),
    ],
)
def test_select(names, expected) -> None:
    assert [s.key for s in Pipeline(graph()).select(names)] == expected


@pytest.mark.parametrize("names, bad", [(["nope"], "nope"), (["vpc", "vpc:west"], "vpc:west"),
                                        (["primary"], "primary"), (["VPC"], "VPC")])
def test_select_unknown(names, bad) -> None:
    with pytest.raises(UserInputError) as info:
        Pipeline(graph()).select(names)
    err = info.value
    assert err.exit_code == 2
    assert err.message == f"unknown step {bad!r}"
    assert err.hint == ("steps: db, db:dr, db:primary, dns, dns:global, logs, logs:global, "
                        "vpc, vpc:dr, vpc:primary")


class Recorder:
    def __init__(self, fail: set[str] = frozenset(), error_result: set[str] = frozenset()) -> None:
        self.fail, self.error_result = fail, error_result
        self.ran: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, step: Step) -> StepResult:
        with self._lock:
            self.ran.append(step.key)
        if step.key in self.fail:
            raise DrkitError(f"boom in {step.key}")
        if step.key in self.error_result:
            return StepResult(step, "r", error=RuntimeError("reported"))
        return StepResult(step, "r", changes=[])


def outcome(results: list[StepResult]) -> list[tuple[str, str]]:
    def status(r: StepResult) -> str:
        return "skipped" if r.skipped else ("error" if r.error else "ok")
    return [(r.step.key, status(r)) for r in results]


@pytest.mark.parametrize(
    "fail, reverse, keep_going, expected",
    [
        pytest.param(set(), False, False,
                     [("vpc:primary", "ok"), ("vpc:dr", "ok"), ("logs:global", "ok"), ("db:primary", "ok"),
                      ("db:dr", "ok"), ("dns:global", "ok")], id="all-ok"),
        pytest.param({"vpc:dr"}, False, False,
                     [("vpc:primary", "ok"), ("vpc:dr", "error"), ("logs:global", "ok"), ("db:primary", "skipped"),
                      ("db:dr", "skipped"), ("dns:global", "skipped")], id="failure-skips-later-batches"),
        pytest.param({"vpc:dr"}, False, True,
                     [("vpc:primary", "ok"), ("vpc:dr", "error"), ("logs:global", "ok"), ("db:primary", "ok"),
                      ("db:dr", "ok"), ("dns:global", "ok")], id="keep-going"),
        pytest.param({"db:dr"}, False, False,
                     [("vpc:primary", "ok"), ("vpc:dr", "ok"), ("logs:global", "ok"), ("db:primary", "ok"),
                      ("db:dr", "error"), ("dns:global", "skipped")], id="late-failure"),
        pytest.param({"db:dr"}, True, False,
                     [("dns:global", "ok"), ("db:dr", "error"), ("db:primary", "skipped"), ("vpc:primary", "skipped"),
                      ("vpc:dr", "skipped"), ("logs:global", "ok")], id="teardown-failure-spares-unrelated"),
    ],
)
def test_run(fail, reverse, keep_going, expected) -> None:
    work = Recorder(fail)
    steps = graph()
    results = Pipeline(steps).run(steps, work, parallel=2, reverse=reverse, keep_going=keep_going)
    assert outcome(results) == expected
    assert sorted(work.ran) == sorted(k for k, s in expected if s != "skipped")
    for r in results:
        if r.error:
            assert isinstance(r.error, DrkitError) and str(r.error) == f"boom in {r.step.key}"
        if r.skipped:
            assert r.region == "" and not r.ok


def test_returned_error_result_also_stops_its_dependents() -> None:
    work = Recorder(error_result={"vpc:primary"})
    results = Pipeline(graph()).run(graph(), work, parallel=1)
    assert outcome(results)[:4] == [("vpc:primary", "error"), ("vpc:dr", "ok"), ("logs:global", "ok"),
                                    ("db:primary", "skipped")]


def test_run_records_seconds_and_parallel_zero_is_clamped() -> None:
    results = Pipeline(graph()).run(graph(), Recorder(), parallel=0)
    assert all(r.ok and r.seconds >= 0 for r in results)
    assert len(results) == 6


def test_non_drkit_exception_is_captured() -> None:
    def work(step: Step) -> StepResult:
        raise KeyError("oops")

    results = Pipeline([Fake("a", "x")]).run([Fake("a", "x")], work, parallel=1)
    assert isinstance(results[0].error, KeyError) and not results[0].ok
