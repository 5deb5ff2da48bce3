"""`drkit runbook`: list, show, run, resume and history of the declared runbooks (runbooks/*.toml)."""

from __future__ import annotations

import json
import sys
import textwrap

import click

from drkit.cli.common import common_options, reports_errors, require_a_way_to_confirm
from drkit.errors import EXIT_FAILURE


def _options(**kw):
    from drkit.runbook.context import Options

    return Options(**kw)


def _ask(yes: bool):
    def ask(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            return False
        return click.confirm(question, default=False)

    return ask


@click.group()
def runbook():
    """Operate the stack: switchover, failover, failback and drills, as declared in runbooks/.

    Each run is journaled beside the state (resume it by its id after any interruption) and ends
    with a report (reports/<run-id>.json, .md and .svg) with the measured RTO and RPO.
    """


@runbook.command("list")
@reports_errors
def list_():
    """The runbooks and what each is for."""
    from drkit.runbook.run import runbooks

    for book in runbooks():
        modes = f" (modes: {', '.join(book.modes)})" if book.modes else ""
        click.echo(f"{book.name:<12} {book.title}{modes}")


@runbook.command()
@click.argument("name")
@reports_errors
def show(name):
    """Render runbook NAME for a person: every step, why, what it does, what proves it, what to do."""
    from drkit.runbook.model import find_runbook
    from drkit.runbook.registry import known

    book = find_runbook(name, known=known())
    click.echo(f"{book.title}\n{'=' * len(book.title)}\n")
    click.echo(textwrap.fill(" ".join(book.summary.split()), 100) + "\n")
    if book.modes:
        click.echo(f"Modes: {', '.join(book.modes)} (default {book.modes[0]})\n")
    if book.avoid == "source":
        click.echo("Every step acts only through the target region: no call into the impaired region, no Route 53 "
                   "control-plane call.\n")
    number = 0
    for mode in book.modes or (None,):
        if mode:
            click.echo(f"--mode {mode}:")
        for batch in book.batches(mode):
            number += 1
            for step in batch:
                tag = f" [runs in parallel: {step.group}]" if len(batch) > 1 else ""
                click.echo(f"{number}. {step.title}{tag}" + (" (back toward the starting region)" if step.toward == "source" else ""))
                click.echo(textwrap.fill(f"why: {step.why}", 100, initial_indent="   ", subsequent_indent="     "))
                what = (f"gate: {step.gate} (every reason listed; --force overrides, journaled)" if step.gate else
                        f"does: {step.action}" if step.action else "waits")
                click.echo(f"   {what}" + (f"; proved by: {step.check}" if step.check else "") +
                           f"; timeout {step.timeout:.0f}s")
                click.echo(textwrap.fill(f"if it fails: {step.on_failure}", 100, initial_indent="   ",
                                         subsequent_indent="     "))
        click.echo("")


@runbook.command()
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Print every step, its preconditions and the exact AWS calls; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before each step that changes something.")
@click.option("--force", is_flag=True, help="Override a no-go gate (journaled with who overrode it).")
@click.option("--to", "to", metavar="REGION", help="Target region (or role: primary, dr).  [default: the region that is not active]")
@click.option("--mode", help="The runbook's mode (drill: switchover or failover).")
@click.option("--no-state", is_flag=True, help="failover only: run from tags alone when neither the state nor its replica can be read.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@common_options
@reports_errors
def run(settings, name, dry_run, yes, force, to, mode, no_state, as_json):
    """Run runbook NAME (switchover, failover, failback, drill).

    Exit codes: 0 done; 1 a step failed, the gate said no-go, or you declined (resume with
    `drkit runbook resume RUN_ID`); 2 bad input; 3 another run holds the state lock.
    """
    from drkit.runbook.run import dry_run as plan, start

    options = _options(dry_run=dry_run, yes=yes, force=force, to=to, mode=mode, no_state=no_state)
    if dry_run:
        runner = settings.runner()
        for line in plan(runner, name, options):
            click.echo(line)
        return
    if not as_json:
        require_a_way_to_confirm(yes)
    runner = settings.runner(writes_state=not no_state)
    _finish(lambda echo: start(runner, name, options, echo=echo, ask=_ask(yes)), as_json)


@runbook.command()
@click.argument("run_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before each step that changes something.")
@click.option("--force", is_flag=True, help="Override a no-go gate (journaled).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@common_options
@reports_errors
def resume(settings, run_id, yes, force, as_json):
    """Continue run RUN_ID where it stopped: each step first checks whether its effect holds."""
    from drkit.runbook.run import resume as go

    if not as_json:
        require_a_way_to_confirm(yes)
    runner = settings.runner(writes_state=True)
    _finish(lambda echo: go(runner, run_id, _options(yes=yes, force=force), echo=echo, ask=_ask(yes)), as_json)


def _finish(work, as_json):
    from drkit.errors import DrkitError

    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        result = work(echo)
    except DrkitError as exc:
        if as_json:
            click.echo(json.dumps({"result": "failed", "error": exc.one_line()}, indent=2))
        raise
    if as_json:
        click.echo(json.dumps({"run_id": result.run_id, "runbook": result.runbook, "result": result.result,
                               "source": result.source, "target": result.target, "report": result.report}, indent=2))
    else:
        click.echo(f"{result.runbook} {result.result}: run {result.run_id}" +
                   (f"; report {result.report.get('md')}" if result.report else ""))
    if result.result != "ok":
        sys.exit(EXIT_FAILURE)


@runbook.command()
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@common_options
@reports_errors
def history(settings, as_json):
    """Every runbook run of this env, newest first (reads the journals only; no AWS call for a local state)."""
    from drkit.runbook.run import history as runs
    from drkit.storage import open_storage

    storage = open_storage(settings.config())
    found = runs(storage)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no runbook runs yet")
    for run_ in found:
        click.echo(f"{run_['run_id']}  {run_['runbook']:<10} {run_['from']} -> {run_['to']}  {run_['result']}"
                   + (f" (resumed {run_['resumes']}x)" if run_["resumes"] else "") + (f"  by {run_['by']}" if run_["by"] else ""))
