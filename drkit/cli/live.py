"""The operator's view of a long run: one line per step, redrawn in place on a terminal.

On AWS a provision takes tens of minutes, mostly waiting; interleaved log lines from a dozen
steps do not tell a person what is going on. On a terminal (and without --log-format json or
--json) `LiveView` shows each step's state -- waiting for dependencies, observing, the AWS
operation it is making, what it waits for and for how long, done, failed -- plus a total, and
sends the detailed structured log to `<env>.log.jsonl` beside the state, so nothing is lost.
Anywhere else, nothing changes: the plain log lines of today.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import structlog

from drkit.config import Config
from drkit.pipeline import StepResult
from drkit.step import Step


def log_path(config: Config) -> Path:
    return config.state_path.with_name(config.state_path.name.replace(".state.json", "") + ".log.jsonl")


@dataclass
class StepLine:
    key: str
    region: str
    state: str = "waiting for dependencies"
    activity: str = ""
    since: float = 0.0
    seconds: float | None = None


@dataclass
class Board:
    """What the view shows, fed by pipeline events and log events; safe across step threads."""

    clock: Callable[[], float] = time.monotonic
    lines: dict[str, StepLine] = field(default_factory=dict)
    threads: dict[int, str] = field(default_factory=dict)
    started: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_event(self, kind: str, step: Step, result: StepResult | None) -> None:
        now = self.clock()
        with self.lock:
            if self.started is None:
                self.started = now
            line = self.lines.get(step.key)
            if kind == "waiting" or line is None:
                line = self.lines[step.key] = StepLine(step.key, step.role, since=now)
            if kind == "started":
                self.threads[threading.get_ident()] = step.key
                line.state, line.activity, line.since = "observing", "", now
            elif kind in ("done", "failed", "skipped"):
                line.state = {"done": "done", "failed": "failed", "skipped": "skipped: a step it needs failed"}[kind]
                line.seconds = result.seconds if result is not None else None
                if kind == "failed" and result is not None and result.error is not None:
                    error = result.error
                    line.activity = getattr(error, "one_line", lambda: f"{type(error).__name__}: {error}")()
                else:
                    line.activity = ""

    def on_log(self, event: dict[str, Any]) -> None:
        """A log event from a step's thread says what that step is doing now."""
        with self.lock:
            key = self.threads.get(threading.get_ident())
            line = self.lines.get(key) if key else None
            if line is None or line.state in ("done", "failed"):
                return
            name = event.get("event")
            if name == "aws.mutate":
                activity = f"{event.get('operation')} {event.get('resource') or ''}".strip()
            elif name == "wait":
                activity = str(event.get("progress", "")).split(" (since")[0]
            else:
                return
            if activity != line.activity:
                line.state, line.activity, line.since = "working", activity, self.clock()

    def render_lines(self) -> list[str]:
        now = self.clock()
        with self.lock:
            rows = []
            for line in self.lines.values():
                if line.state in ("done", "failed") and line.seconds is not None:
                    text = f"{line.state} in {_clock(line.seconds)}" + (f": {line.activity}" if line.activity else "")
                elif line.state == "working":
                    text = f"{line.activity} -- {_clock(now - line.since)}"
                else:
                    text = line.state
                rows.append(f"{_mark(line.state)} {line.key:<34} {text}")
            states = [line.state for line in self.lines.values()]
            elapsed = now - self.started if self.started is not None else 0.0
            total = (f"{states.count('done')}/{len(states)} done, {sum(s in ('observing', 'working') for s in states)} "
                     f"running, {states.count('failed')} failed -- {_clock(elapsed)}")
        return rows + [total]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _mark(state: str) -> str:
    return {"done": "✓", "failed": "✗", "observing": "…", "working": "…"}.get(state, "·")


def wanted(stream: IO[str], *, log_format: str, as_json: bool) -> bool:
    """Only on a terminal, and only when the user asked for neither JSON logs nor JSON output."""
    if as_json or log_format == "json":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LiveView:
    """Redraws the board in place with rich while the runner works; logs go to the log file."""

    def __init__(self, runner: Any, *, stream: IO[str] | None = None) -> None:
        from rich.console import Console

        self.runner = runner
        self.board = Board()
        self.console = Console(file=stream or sys.stderr)
        self.path = log_path(runner.config)
        self._live: Any = None

    def _feed(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        self.board.on_log(event)
        return event

    def _renderable(self) -> Any:
        from rich.text import Text

        return Text("\n".join(self.board.render_lines()))

    @contextmanager
    def attached(self) -> Iterator["LiveView"]:
        """Route the runner's logs to the file (and the board), its events to the board, and
        redraw until the run ends."""
        from rich.live import Live

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as log_file:
            logger = structlog.wrap_logger(
                structlog.PrintLogger(log_file),
                processors=[self._feed, structlog.processors.add_log_level,
                            structlog.processors.TimeStamper(fmt="iso", utc=True),
                            structlog.processors.JSONRenderer(sort_keys=True)],
                cache_logger_on_first_use=False,
            )
            saved = (self.runner.log, self.runner.aws.log, self.runner.on_event)
            self.runner.log = logger
            self.runner.aws.log = logger
            self.runner.on_event = self.board.on_event
            self._live = Live(get_renderable=self._renderable, console=self.console, refresh_per_second=4,
                              transient=False)
            try:
                self._live.start()
                yield self
            finally:
                self._live.stop()
                self.runner.log, self.runner.aws.log, self.runner.on_event = saved
        self.console.print(f"detailed log: {self.path}", highlight=False, markup=False, soft_wrap=True)

    def pausing(self, confirm: Callable[[Any], bool]) -> Callable[[Any], bool]:
        """Stop redrawing while the plan is shown and the question asked; resume for the work."""

        def wrapped(planned: Any) -> bool:
            self._live.stop()
            self.board.lines.clear()
            self.board.started = None
            try:
                return confirm(planned)
            finally:
                self._live.start()

        return wrapped


@contextmanager
def live_view(runner: Any, *, log_format: str, as_json: bool, stream: IO[str] | None = None) -> Iterator[LiveView | None]:
    """A LiveView on a terminal; None (today's plain lines) anywhere else."""
    stream = stream or sys.stderr
    if not wanted(stream, log_format=log_format, as_json=as_json):
        yield None
        return
    with LiveView(runner, stream=stream).attached() as view:
        yield view
