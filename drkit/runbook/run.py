"""Start, resume, dry-run and list runbook runs over a provisioning Runner (its gateway, waiter,
storage and verify): one way to do each thing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from drkit import region_switch
from drkit.aws import is_mutating
from drkit.errors import DrkitError, InterruptedRun, UserInputError
from drkit.runbook.context import Options, RunContext, who_is_acting
from drkit.runbook.engine import RunbookDeclined, RunbookFailed, done_steps, execute, holding_lock
from drkit.runbook.model import Runbook, find_runbook, list_runbooks
from drkit.runbook.registry import ACTIONS, GATES, known
from drkit.state import State, load_state
from drkit.storage.base import Storage, StreamAuditLog, new_run_id

OTHER = {"primary": "dr", "dr": "primary"}


@dataclass
class RunResult:
    run_id: str
    runbook: str
    result: str  # ok | failed | declined | interrupted
    source: str
    target: str
    error: str | None = None
    report: dict[str, str] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)


def runbooks() -> list[Runbook]:
    return list_runbooks(known=known())


def _state(runner: Any, options: Options) -> State:
    if options.no_state:
        return State.new(runner.config.state_path, runner.config, persist=False)
    return load_state(runner.config, storage=runner.storage)


def _journal_storage(runner: Any, options: Options) -> Storage:
    """--no-state: the journal goes to a local file (the state's storage cannot be reached), which
    `drkit state reconcile` copies home later."""
    return runner.storage.offline() if options.no_state else runner.storage


def _avoid_impaired(runner: Any, book: Runbook, options: Options, role: str) -> None:
    """A failover calls nothing in the impaired region, its state bucket included: an S3 state
    whose home is there is read from its replica (degraded mode) and the run journaled there."""
    avoid = getattr(runner.storage, "avoid_region", None)
    if book.avoid == "source" and not options.no_state and avoid is not None:
        region = runner.config.region(role)
        avoid(region, f"a {book.name} never calls the impaired region {region}")


def prepare(runner: Any, name: str, options: Options, *, echo: Callable[[str], None] = print,
            ask: Callable[[str], bool] = lambda q: False, run_id: str | None = None,
            direction: tuple[str, str] | None = None) -> RunContext:
    """Check everything the user gave before any AWS call (one-line errors, exit 2)."""
    book = find_runbook(name, known=known())
    if options.mode is not None and options.mode not in book.modes:
        raise UserInputError(f"runbook {name} has no mode {options.mode!r}"
                             + (f" (modes: {', '.join(book.modes)})" if book.modes else " (it has no modes)"))
    to = region_switch.role_of(runner.config, options.to) if options.to else None
    if options.no_state and book.avoid != "source":
        raise UserInputError(f"--no-state is for the failover runbook only, not {name}")
    if options.no_state and to is None:
        raise UserInputError("--no-state needs --to REGION: without a state, drkit cannot tell which region is active")
    if direction is not None or to is not None:  # the impaired region is known before any read
        _avoid_impaired(runner, book, options, direction[0] if direction else OTHER[to])
    state = _state(runner, options)
    source = OTHER[to] if options.no_state and to else state.active_role()
    target = to or OTHER[source]
    if direction is not None:  # a resumed run keeps the direction it started with
        source, target = direction
    elif target == source:
        raise UserInputError(f"{runner.config.region(target)} is already the active region; nothing to {name}")
    _avoid_impaired(runner, book, options, source)
    run_id = run_id or new_run_id()
    storage = _journal_storage(runner, options)
    if storage is not runner.storage:  # --no-state: the audit of AWS calls stays local too
        runner.aws.audit = StreamAuditLog(storage, run_id)
    return RunContext(runner.config, runner.aws, state, storage, runner.waiter, run_id, book, source, target,
                      options, echo=echo, ask=ask, runner=runner)


def start(runner: Any, name: str, options: Options, **kw: Any) -> RunResult:
    rc = prepare(runner, name, options, **kw)
    return _run(rc, resumed=set())


def resume(runner: Any, run_id: str, options: Options, **kw: Any) -> RunResult:
    # A --no-state run's journal is local (no AWS call to look there first).
    found = find_run(runner.storage.offline(), run_id) or find_run(_journal_storage(runner, options), run_id)
    if found is None:
        raise UserInputError(f"no runbook run {run_id!r} in {runner.storage.name}", hint="`drkit runbook history`")
    name, records = found
    first = next(r for r in records if r.get("type") == "run.start")
    if records[-1].get("type") == "run.end" and records[-1].get("result") == "ok":
        raise UserInputError(f"run {run_id} ({name}) already finished ok; nothing to resume")
    was = first.get("options", {})
    options = replace(options, to=first["target_region"], mode=was.get("mode"),
                      force=options.force or bool(was.get("force")), no_state=bool(was.get("no_state")))
    rc = prepare(runner, name, options, run_id=run_id, direction=(first["source_role"], first["target_role"]),
                 **{k: v for k, v in kw.items() if k in ("echo", "ask")})
    rc.started_t = float(first["t"])
    for record in records:
        if record.get("type") in ("fact", "measure"):
            rc.facts[record["name"]] = record.get("value")
    return _run(rc, resumed=done_steps(records), records=records)


def _run(rc: RunContext, *, resumed: set[str], records: list[dict[str, Any]] | None = None) -> RunResult:
    rc.journal = rc.storage.journal(rc.runbook.name, rc.run_id)
    rc.identity = who_is_acting(rc.aws, rc.region(rc.target))
    with holding_lock(rc):
        if not records:
            rc.started_t = rc.now()
        rc.record("run.start", resumed=bool(records), source_role=rc.source, source_region=rc.region(rc.source),
                  target_role=rc.target, target_region=rc.region(rc.target), mode=rc.mode,
                  options={"yes": rc.options.yes, "force": rc.options.force, "no_state": rc.options.no_state,
                           "mode": rc.options.mode, "to": rc.options.to},
                  identity=rc.identity, steps=[{"id": s.id, "title": s.title} for s in rc.runbook.steps_for(rc.mode)])
        rc.echo(f"{rc.runbook.title}: {rc.region(rc.source)} -> {rc.region(rc.target)} (run {rc.run_id})")
        result, error = "ok", None
        try:
            execute(rc, resumed=resumed)
        except RunbookDeclined as exc:
            result, error = "declined", exc.one_line()
        except InterruptedRun as exc:
            result, error = "interrupted", exc.one_line()
        except DrkitError as exc:
            result, error = "failed", exc.one_line()
        what = None
        if result == "failed":
            what = error.split("What to do: ", 1)[1] if error and "What to do: " in error else None
        rc.record("run.end", result=result, error=error, what_to_do=what)
        all_records = rc.journal.records()
        report = write_report(rc, all_records)
    outcome = RunResult(rc.run_id, rc.runbook.name, result, rc.source, rc.target, error, report, all_records)
    if result in ("failed", "interrupted"):
        raise (InterruptedRun if result == "interrupted" else RunbookFailed)(
            f"{rc.runbook.name} {result}: {error}", hint=f"`drkit runbook resume {rc.run_id}` continues it")
    if result == "declined":
        raise RunbookDeclined(error or "declined")
    return outcome


def write_report(rc: RunContext, records: list[dict[str, Any]]) -> dict[str, str]:
    try:
        from drkit.runbook.report import write_report as store
    except ImportError:  # pragma: no cover  (the report module lands with the runbooks)
        return {}
    try:
        return store(rc.storage, records)
    except DrkitError as exc:
        rc.echo(f"drkit: warning: the report could not be stored ({exc.one_line()}); the journal has every record")
        return {}


def find_run(storage: Storage, run_id: str) -> tuple[str, list[dict[str, Any]]] | None:
    for book in list_runbooks(known=None):
        stream = f"journals/{book.name}/{run_id}"
        if stream in storage.streams(f"journals/{book.name}"):
            return book.name, storage.journal(book.name, run_id).records()
    return None


def history(storage: Storage) -> list[dict[str, Any]]:
    """Every run, newest first: id, runbook, regions, result (or in progress), when, who."""
    runs = []
    for book in list_runbooks(known=None):
        for stream in storage.streams(f"journals/{book.name}"):
            records = storage.read_records(stream)
            starts = [r for r in records if r.get("type") == "run.start"]
            if not starts:
                continue
            end = records[-1] if records[-1].get("type") == "run.end" else None
            runs.append({"run_id": starts[0]["run_id"], "runbook": book.name, "started_at": starts[0]["at"],
                         "from": starts[0].get("source_region"), "to": starts[0].get("target_region"),
                         "result": end["result"] if end else "in progress", "resumes": len(starts) - 1,
                         "by": (starts[0].get("identity") or {}).get("caller_arn")})
    return sorted(runs, key=lambda r: r["run_id"], reverse=True)


def dry_run(runner: Any, name: str, options: Options) -> list[str]:
    """Every step, its preconditions, and the exact AWS calls it would make; reads only."""
    rc = prepare(runner, name, options)

    def reads_only(service: str, region: str, operation: str) -> None:
        if is_mutating(operation):
            raise DrkitError(f"dry run: refused {service} {operation} in {region} (a mutating call)")

    runner.aws.listeners.append(reads_only)
    try:
        return _dry_run_lines(rc)
    finally:
        runner.aws.listeners.remove(reads_only)


def _dry_run_lines(rc: RunContext) -> list[str]:
    lines = [f"{rc.runbook.title} (dry run): {rc.region(rc.source)} -> {rc.region(rc.target)}"]
    for index, batch in enumerate(rc.runbook.batches(rc.mode), 1):
        for spec in batch:
            d = rc.direction(spec.toward)
            lines.append(f"{index}. {spec.title}" + (f"   [parallel group {spec.group}]" if spec.group else ""))
            lines.append(f"   why: {spec.why}")
            if spec.gate:
                with rc.recording(spec.avoid or rc.runbook.avoid):
                    try:
                        reasons = GATES[spec.gate](rc, d)
                    except DrkitError as exc:
                        reasons = [exc.one_line()]
                lines.append("   gate now: " + ("GO" if not reasons else "NO-GO: " + "; ".join(reasons)))
            if spec.action:
                act = ACTIONS[spec.action]
                if act.preconditions:
                    lines.append(f"   preconditions: {act.preconditions}")
                lines += [f"   would call: {call}" for call in act.planned(rc, d)]
                lines.append(f"   changes: {act.change(rc, d)}" + ("  (asks first unless --yes)" if act.destructive else ""))
            if spec.check:
                lines.append(f"   proved by: {spec.check} (timeout {spec.timeout:.0f}s)")
            lines.append(f"   if it fails: {spec.on_failure}")
    lines.append("dry run: no mutating call was made")
    return lines
