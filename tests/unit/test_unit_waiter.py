"""drkit.waiters.Waiter on a FakeClock: done, failure, timeout, backoff and progress lines."""

from __future__ import annotations

from typing import Iterator

import pytest

from drkit.clock import FakeClock
from drkit.errors import DrkitError, WaitTimeoutError
from drkit.waiters import WaitPolicy, Waiter


def make(policy: WaitPolicy | None = None) -> tuple[Waiter, FakeClock, list[str]]:
    clock, lines = FakeClock(), []
    return Waiter(clock, lines.append, policy, wall_clock=lambda: 3600 * 14 + 62), clock, lines


def poller(values: list[str]):
    """poll() returns `values` one by one and counts its calls."""
    it: Iterator[str] = iter(values)

    def poll() -> str:
        poll.calls += 1  # type: ignore[attr-defined]
        return next(it)

    poll.calls = 0  # type: ignore[attr-defined]
    return poll


@pytest.mark.parametrize(
    "values, sleeps",
    [
        pytest.param(["available"], [], id="done-at-once"),
        pytest.param(["pending", "available"], [1.0], id="one-poll"),
        pytest.param(["pending"] * 4 + ["available"], [1.0, 2.0, 4.0, 8.0], id="doubling"),
        pytest.param(["pending"] * 7 + ["available"], [1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0], id="capped"),
    ],
)
def test_returns_when_done_with_backoff(values: list[str], sleeps: list[float]) -> None:
    waiter, clock, _ = make()
    poll = poller(values)
    assert waiter.until("thing", poll, lambda v: v == "available") == "available"
    assert clock.sleeps == sleeps
    assert poll.calls == len(values)
    assert clock.now == sum(sleeps)


@pytest.mark.parametrize(
    "first, maximum, n, sleeps",
    [
        (0.5, 3.0, 6, [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]),
        (2.0, 2.0, 3, [2.0, 2.0, 2.0]),
        (5.0, 60.0, 5, [5.0, 10.0, 20.0, 40.0, 60.0]),
    ],
)
def test_backoff_policy(first: float, maximum: float, n: int, sleeps: list[float]) -> None:
    waiter, clock, _ = make(WaitPolicy(first_interval=first, max_interval=maximum))
    waiter.until("x", poller(["no"] * n + ["yes"]), lambda v: v == "yes")
    assert clock.sleeps == sleeps


def test_returns_the_done_value() -> None:
    waiter, _, _ = make()
    result = {"State": "available", "Id": "nat-1"}
    assert waiter.until("x", lambda: result, lambda v: v["State"] == "available") is result


@pytest.mark.parametrize(
    "timeout, sleeps, seconds",
    [
        (10.0, [1.0, 2.0, 4.0, 3.0], 10),  # the last sleep is cut to end exactly at the timeout
        (1.0, [1.0], 1),
        (0.0, [], 0),
        (40.0, [1.0, 2.0, 4.0, 8.0, 15.0, 10.0], 40),
    ],
)
def test_timeout(timeout: float, sleeps: list[float], seconds: int) -> None:
    waiter, clock, _ = make()
    with pytest.raises(WaitTimeoutError) as info:
        waiter.until("NAT gateway nat-1 to be available", lambda: {"State": "pending"},
                     lambda v: False, describe=lambda v: v["State"], timeout=timeout)
    assert clock.sleeps == sleeps
    assert info.value.message == (
        f"timed out after {seconds}s waiting for NAT gateway nat-1 to be available (last seen: pending)")
    assert info.value.exit_code == 1
    assert "re-run" in (info.value.hint or "")


def test_timeout_from_policy_and_last_state() -> None:
    waiter, clock, _ = make(WaitPolicy(timeout=5.0))
    states = iter(["a", "b", "c", "d", "e", "f"])
    with pytest.raises(WaitTimeoutError, match=r"after 5s .*\(last seen: d\)$"):
        waiter.until("x", lambda: next(states), lambda v: False)
    assert clock.sleeps == [1.0, 2.0, 2.0]


def test_failed_raises_with_reason() -> None:
    waiter, clock, _ = make()
    states = iter(["pending", "pending", "failed"])
    with pytest.raises(DrkitError) as info:
        waiter.until("NAT gateway nat-1", lambda: next(states), lambda v: v == "available",
                     failed=lambda v: "it is failed: no capacity" if v == "failed" else None)
    assert not isinstance(info.value, WaitTimeoutError)
    assert info.value.message == "gave up waiting for NAT gateway nat-1: it is failed: no capacity"
    assert clock.sleeps == [1.0, 2.0]


def test_done_checked_before_failed() -> None:
    waiter, _, _ = make()
    assert waiter.until("x", lambda: "v", lambda v: True, failed=lambda v: "broken") == "v"


def test_empty_failure_reason_is_not_a_failure() -> None:
    waiter, clock, _ = make()
    states = iter(["a", "b"])
    assert waiter.until("x", lambda: next(states), lambda v: v == "b", failed=lambda v: "") == "b"
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize(
    "policy, polls, expected_lines",
    [
        pytest.param(WaitPolicy(), 2, ["waiting for db: s0 (since 14:01:02 UTC, 0s so far; timeout 60 min)"], id="first-poll-reported"),
        # times of polls: 0, 1, 3, 7, 15, 30, 45, 60, 75 -> reports at 0, 30, 60
        pytest.param(WaitPolicy(), 9, ["waiting for db: s0 (since 14:01:02 UTC, 0s so far; timeout 60 min)", "waiting for db: s5 (since 14:01:02 UTC, 30s so far; timeout 60 min)",
                                       "waiting for db: s7 (since 14:01:02 UTC, 60s so far; timeout 60 min)"], id="every-30s"),
        # first=max=10, every 25: polls at 0,10,...,70 (the last one done) -> reports at 0, 30, 60
        pytest.param(WaitPolicy(first_interval=10, max_interval=10, progress_every=25), 8,
                     ["waiting for db: s0 (since 14:01:02 UTC, 0s so far; timeout 60 min)", "waiting for db: s3 (since 14:01:02 UTC, 30s so far; timeout 60 min)",
                      "waiting for db: s6 (since 14:01:02 UTC, 60s so far; timeout 60 min)"], id="every-25s-on-10s-polls"),
    ],
)
def test_progress_lines(policy: WaitPolicy, polls: int, expected_lines: list[str]) -> None:
    waiter, _, lines = make(policy)
    counter = iter(range(100))
    states = [f"s{i}" for i in range(polls)]

    def poll() -> str:
        return f"s{next(counter)}"

    waiter.until("db", poll, lambda v: v == states[-1])
    assert lines == expected_lines


def test_no_progress_when_done_at_once() -> None:
    waiter, _, lines = make()
    waiter.until("x", lambda: 1, lambda v: True)
    assert lines == []


@pytest.mark.parametrize(
    "what, usually",
    [
        ("NAT gateway nat-0abc in us-east-1 to be available", "; AWS usually takes ~1.5 min; timeout"),
        ("Aurora instance aurora-primary-dev-1 in us-east-1 to be available", "; AWS usually takes ~10 min; timeout"),
        ("Aurora cluster aurora-dr-dev in us-east-2 to be gone", "; AWS usually takes ~2 min; timeout"),
        ("DynamoDB replica of t in us-east-2 to be ACTIVE", "; AWS usually takes ~8 min; timeout"),
        ("something drkit has no figure for", "; timeout"),
    ],
)
def test_long_waits_say_how_long_aws_usually_takes(what: str, usually: str) -> None:
    waiter, _, lines = make()
    states = iter(["pending", "available"])
    waiter.until(what, lambda: next(states), lambda v: v == "available")
    assert lines == [f"waiting for {what}: pending (since 14:01:02 UTC, 0s so far{usually} 60 min)"]


def test_scaled_policy_polls_in_proportion_and_never_faster_than_real_at_scale_1() -> None:
    assert WaitPolicy().scaled(60) == WaitPolicy(timeout=60, first_interval=1 / 60, max_interval=0.25,
                                                  progress_every=0.5)
    assert WaitPolicy().scaled(1) == WaitPolicy()


def test_sleeps_lend_the_slot_out() -> None:
    entered: list[str] = []

    class Idle:
        def __enter__(self):
            entered.append("in")

        def __exit__(self, *exc):
            entered.append("out")

    clock = FakeClock()
    waiter = Waiter(clock, lambda line: None, idle=Idle)
    states = iter(["a", "b", "c"])
    waiter.until("x", lambda: next(states), lambda v: v == "c")
    assert entered == ["in", "out", "in", "out"] and len(clock.sleeps) == 2
