"""The live view: its board from pipeline and log events, when it is used, and a real run
through it on a pretend terminal (tests never need a TTY)."""

from __future__ import annotations

import io
import json

import pytest

from drkit.cli.live import Board, live_view, log_path, wanted
from drkit.pipeline import StepResult
from tests.unit.test_unit_pipeline import Fake


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream, log_format, as_json, expected", [
    (Terminal(), "console", False, True),
    (Terminal(), "json", False, False),
    (Terminal(), "console", True, False),
    (io.StringIO(), "console", False, False),
])
def test_only_on_a_terminal_without_json(stream, log_format, as_json, expected) -> None:
    assert wanted(stream, log_format=log_format, as_json=as_json) is expected


def test_board_shows_each_steps_state_and_a_total() -> None:
    now = [100.0]
    board = Board(clock=lambda: now[0])
    vpc, sg, db = Fake("vpc", "primary"), Fake("sg", "primary", ("vpc:primary",)), Fake("db", "primary")
    for step in (vpc, sg, db):
        board.on_event("waiting", step, None)
    board.on_event("started", vpc, None)  # on this thread, so this thread's logs are vpc's
    board.on_log({"event": "aws.mutate", "operation": "create_nat_gateway", "resource": "nat-primary"})
    now[0] = 130.0
    board.on_log({"event": "wait", "progress": "waiting for NAT gateway nat-1 in us-east-1 to be available: "
                                              "pending (since 14:01:02 UTC, 0s so far; timeout 60 min)"})
    now[0] = 172.0
    lines = board.render_lines()
    assert lines[0].split(None, 2)[1:] == ["vpc:primary", "waiting for NAT gateway nat-1 in us-east-1 to be "
                                                          "available: pending -- 0:42"]
    assert lines[1].endswith("sg:primary                         waiting for dependencies")
    assert lines[-1] == "0/3 done, 1 running, 0 failed -- 1:12"
    board.on_event("done", vpc, StepResult(vpc, "us-east-1", seconds=75))
    failed = StepResult(db, "us-east-1", error=RuntimeError("boom"), seconds=3)
    board.on_event("failed", db, failed)
    lines = board.render_lines()
    assert "vpc:primary" in lines[0] and lines[0].endswith("done in 1:15")
    assert lines[2].endswith("failed in 0:03: RuntimeError: boom")
    assert lines[-1] == "1/3 done, 0 running, 1 failed -- 1:12"


def test_a_run_through_the_live_view_logs_to_the_file_and_restores_the_runner(moto, make_runner) -> None:
    runner = make_runner()
    screen = Terminal()
    before = (runner.log, runner.aws.log, runner.on_event)
    with live_view(runner, log_format="console", as_json=False, stream=screen) as view:
        assert view is not None
        outcome = runner.provision(confirm=view.pausing(lambda planned: True))
    assert outcome.ok
    assert (runner.log, runner.aws.log, runner.on_event) == before
    events = [json.loads(line) for line in log_path(runner.config).read_text().splitlines()]
    assert any(e["event"] == "aws.mutate" and e["operation"] == "create_vpc" for e in events)
    assert any(e["event"] == "wait" and "NAT gateway" in e["progress"] for e in events)
    shown = screen.getvalue()
    assert "ensure_vpc:primary" in shown and "2/2 done, 0 running, 0 failed" in shown
    assert f"detailed log: {log_path(runner.config)}" in shown


def test_without_a_terminal_nothing_changes(moto, make_runner) -> None:
    runner = make_runner()
    with live_view(runner, log_format="console", as_json=False, stream=io.StringIO()) as view:
        assert view is None
        assert runner.provision().ok
    assert not log_path(runner.config).exists()
