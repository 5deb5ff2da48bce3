"""`drkit demo`: the whole job end to end in an in-process sandbox.

provision -> verify -> verify --deep (replication canaries) -> a payment through each region's
API, replayed with the same Idempotency-Key (drkit/demo_payments.py) -> an outage of the primary
region: DNS answers the DR region, then the primary again (drkit/demo_failover.py) -> the drill runbook,
planned (switchover and back) and unplanned (failover under an outage, then failback), each with its
measured RTO -> provision again (nothing
may change) -> teardown -> check that nothing drkit owned is left, with the wall time and AWS
calls of each phase.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from drkit.aws import CallStats
from drkit.config import build_config
from drkit.demo_payments import round_trip
from drkit.logs import make_logger
from drkit.outputs import flat_outputs
from drkit.runner import Outcome, Runner
from drkit.sandbox import SANDBOX_CREDENTIALS, SandboxServer
from drkit.step import CREATE, DELETE, UPDATE
from drkit.waiters import WaitPolicy


@dataclass
class PhaseReport:
    name: str
    seconds: float
    calls: int
    mutating: int
    result: str
    ok: bool


def run_demo(env: str = "demo", *, log_format: str = "console", log_level: str = "warning",
             echo: Callable[[str], None] = print, state_dir: Path | None = None) -> list[PhaseReport]:
    from steps import all_steps

    reports: list[PhaseReport] = []
    from drkit.sandbox.extensions import active_timings

    with SandboxServer() as server, tempfile.TemporaryDirectory(prefix="drkit-demo-") as tmp:
        # A drill switches the region back within seconds; on AWS that waits for the switch alarm's
        # next one-minute period. The demo's alarm periods last a second (set once the server has
        # installed its timings).
        active_timings().cloudwatch_period_scale = 60.0
        state_path = (state_dir or Path(tmp)) / f"{env}.state.json"
        config = build_config({"env": env, "state": str(state_path), "endpoint_url": server.endpoint_url},
                              environ={})
        # force: a sandbox keeps nothing for recovery (the database secret is deleted at once).
        runner = Runner(config, all_steps(), log=make_logger(log_format, level=log_level), force=True,
                        credentials=dict(SANDBOX_CREDENTIALS), wait_policy=WaitPolicy(first_interval=0.2, max_interval=1.0))
        echo(f"drkit demo: env {env!r} in a local sandbox at {server.endpoint_url} "
             f"({config.primary_region} -> {config.dr_region})")

        def phase(name: str, action: Callable[[], Outcome], judge: Callable[[Outcome], tuple[bool, str]]) -> Outcome:
            runner.aws.stats = CallStats()
            started = time.monotonic()
            outcome = action()
            seconds = time.monotonic() - started
            ok, result = judge(outcome)
            if outcome.failed:
                ok, result = False, "; ".join(getattr(r.error, "one_line", lambda: str(r.error))() for r in outcome.failed)
            total, mutating = runner.aws.stats.snapshot()
            reports.append(PhaseReport(name, seconds, total, mutating, result, ok))
            echo(f"  {'ok ' if ok else 'BAD'} {name:<22} {seconds:6.2f}s  {total:4d} calls ({mutating:3d} mutating)  {result}")
            return outcome

        def tally(outcome: Outcome, action: str) -> int:
            return sum(1 for c in outcome.changes if c.action == action)

        phase("provision", runner.provision,
              lambda o: (o.ok, f"{tally(o, CREATE)} resources created, {tally(o, UPDATE)} updated"))
        phase("verify", runner.verify,
              lambda o: (o.ok and not o.changes, f"{len(o.changes)} findings"))
        deep = phase("verify --deep", lambda: runner.verify(deep=True),
                     lambda o: (o.ok and not o.changes and all(p.ok for p in o.probes),
                                f"{sum(1 for p in o.probes if p.ok)}/{len(o.probes)} replication checks passed"))
        for probe in deep.probes:
            echo(f"       {probe.describe()}")
        payments(runner, server.endpoint_url, reports, echo)
        failover(runner, reports, echo)
        drills(runner, reports, echo)
        phase("provision again", runner.provision,
              lambda o: (o.ok and runner.aws.stats.mutating == 0, f"{len(o.changes)} changes (converged)"))
        phase("teardown", runner.teardown,
              lambda o: (o.ok, f"{tally(o, DELETE)} resources deleted"))
        phase("nothing left", runner.plan_teardown,
              lambda o: (o.ok and not o.changes, f"{len(o.changes)} drkit resources remain"))
    ok = all(r.ok for r in reports)
    echo("demo " + ("passed" if ok else "FAILED"))
    return reports


def failover(runner: Runner, reports: list[PhaseReport], echo: Callable[[str], None]) -> None:
    """An outage of the primary region: DNS fails over to DR and back (drkit/demo_failover.py)."""
    from drkit.demo_failover import outage

    runner.aws.stats = CallStats()
    ok, seconds, summary, lines = outage(runner)
    total, mutating = runner.aws.stats.snapshot()
    reports.append(PhaseReport("regional outage", seconds, total, mutating, summary, ok))
    echo(f"  {'ok ' if ok else 'BAD'} {'regional outage':<22} {seconds:6.2f}s  {total:4d} calls ({mutating:3d} mutating)  "
         f"{summary}")
    for line in lines:
        echo(f"       {line}")


def drills(runner: Runner, reports: list[PhaseReport], echo: Callable[[str], None]) -> None:
    """The drill runbook twice: a planned switchover and back, then an unplanned failover under the
    sandbox's outage switch and the failback; each prints its measured RTO (runbooks/drill.toml)."""
    from drkit.errors import DrkitError
    from drkit.runbook.context import Options
    from drkit.runbook.run import start

    for name, mode in (("drill (switchover)", "switchover"), ("drill (failover)", "failover")):
        runner.aws.stats = CallStats()
        started = time.monotonic()
        lines: list[str] = []
        try:
            result = start(runner, "drill", Options(yes=True, mode=mode), echo=lines.append)
            figures = _report_figures(result.report.get("json"))
            ok, summary = True, (f"RTO {figures.get('rto_seconds')} s, RPO {figures.get('rpo_seconds')} s, "
                                 f"{len(figures.get('timeline', []))} steps; report {result.report.get('md')}")
        except DrkitError as exc:
            ok, summary = False, exc.one_line()
        seconds = time.monotonic() - started
        total, mutating = runner.aws.stats.snapshot()
        reports.append(PhaseReport(name, seconds, total, mutating, summary, ok))
        echo(f"  {'ok ' if ok else 'BAD'} {name:<22} {seconds:6.2f}s  {total:4d} calls ({mutating:3d} mutating)  {summary}")


def _report_figures(path: str | None) -> dict:
    import json

    return json.loads(Path(path).read_text()) if path else {}


def payments(runner: Runner, endpoint: str, reports: list[PhaseReport], echo: Callable[[str], None]) -> None:
    """One payment through each region's API and its replay, as a client sends them."""
    from drkit.sandbox.extensions import EXTENSION_MODULES

    started = time.monotonic()
    if "apigateway_serving" not in EXTENSION_MODULES:  # a sandbox that cannot run the API yet
        reports.append(PhaseReport("payments", 0.0, 0, 0, "skipped: this sandbox does not serve REST APIs", True))
        echo(f"  ok  {'payments':<22}   0.00s  skipped: this sandbox does not serve REST API stages")
        return
    outputs = flat_outputs(runner.config, runner.outputs())
    results = [round_trip(endpoint, outputs, role, runner.config.region(role), runner.config.names.api_hostname)
               for role in ("primary", "dr")]
    ok = all(r[0] for r in results)
    reports.append(PhaseReport("payments", time.monotonic() - started, 0, 0,
                               f"{sum(r[0] for r in results)}/2 regions took a payment", ok))
    echo(f"  {'ok ' if ok else 'BAD'} {'payments':<22} {time.monotonic() - started:6.2f}s  "
         f"{sum(r[0] for r in results)}/2 regions took a payment and its replay")
    for _, line in results:
        echo(f"       {line}")
