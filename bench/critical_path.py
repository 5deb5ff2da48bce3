"""Benchmark: the whole stack's provision and teardown on the sandbox's `aws` profile, against the
critical path its dependency graph allows.

The sandbox stretches each transitional state to AWS's typical duration divided by --scale
(drkit/durations.py). The critical path is the longest chain of steps through the dependency
graph, each step lasting the sum of the profile's waits it goes through. A ratio of wall time to
critical path near 1.00 means drkit's scheduling and polling add next to nothing to what AWS
itself takes; `wall x scale` models the real-AWS duration.

    PYTHONPATH=. python bench/critical_path.py [--scale 60] [--json] [--spans]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from drkit.config import build_config
from drkit.logs import make_logger
from drkit.pipeline import Pipeline
from drkit.runner import Runner
from drkit.sandbox import SANDBOX_CREDENTIALS, SandboxServer, reset
from drkit.sandbox.timings import SandboxTimings
from drkit.step import Step
from drkit.waiters import WaitPolicy
from steps import all_steps

# The profile's waits each step sits through, in order (sandbox field names). Steps not listed
# wait on nothing the sandbox stretches.
PROVISION_WAITS: dict[str, tuple[str, ...]] = {
    "ensure_vpc": ("nat_pending",),
    # The cluster and its instance are created together and wait side by side (steps/aurora.py).
    "ensure_global_cluster": ("rds_creating",),
    "ensure_replica": ("rds_creating",),
    "ensure_global_table": ("dynamodb_replica_creating",),
}
TEARDOWN_WAITS: dict[str, tuple[str, ...]] = {
    "ensure_replica": ("rds_promoting", "rds_deleting", "rds_deleting"),  # detach, instance, cluster
    "ensure_global_cluster": ("rds_deleting", "rds_deleting"),
    "ensure_global_table": ("dynamodb_replica_deleting",),
    "ensure_vpc": ("nat_deleting",),
}


def step_seconds(step: Step, timings: SandboxTimings, waits: dict[str, tuple[str, ...]]) -> float:
    return sum(getattr(timings, name) for name in waits.get(step.name, ()))


def critical_path(steps: list[Step], timings: SandboxTimings, *, reverse: bool) -> tuple[float, list[str]]:
    """The longest chain through the graph (teardown: the reversed graph) and its length."""
    waits = TEARDOWN_WAITS if reverse else PROVISION_WAITS
    pipeline = Pipeline(steps)
    needs = pipeline.prerequisites(steps, reverse=reverse)
    began: dict[str, tuple[float, list[str]]] = {}
    finish: dict[str, tuple[float, list[str]]] = {}
    for step in (s for batch in pipeline.batches(steps, reverse=reverse) for s in batch):
        # A dependency the step only reads outputs of (Step.reads) is published before that
        # dependency's waits (the VPC's id and subnets come before its NAT gateway).
        early = () if reverse else step.reads()
        start, chain = max((began[k] if k in early else finish[k] for k in needs[step.key]), default=(0.0, []))
        began[step.key] = (start, chain + [step.key])
        finish[step.key] = (start + step_seconds(step, timings, waits), chain + [step.key])
    return max(finish.values(), default=(0.0, []))


def run_phase(runner: Runner, phase: str) -> tuple[float, dict[str, tuple[float, float]]]:
    spans: dict[str, list[float]] = {}
    lock = threading.Lock()
    origin = time.perf_counter()

    def on_event(kind: str, step: Step, result: Any) -> None:
        with lock:
            if kind == "started":
                spans[step.key] = [time.perf_counter() - origin, 0.0]
            elif kind in ("done", "failed") and step.key in spans:
                spans[step.key][1] = time.perf_counter() - origin

    runner.on_event = on_event
    outcome = runner.provision() if phase == "provision" else runner.teardown()
    wall = time.perf_counter() - origin
    if not outcome.ok:
        raise SystemExit(f"{phase} failed: {[str(r.error) for r in outcome.failed]}")
    return wall, {key: (a, b) for key, (a, b) in spans.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=60.0, help="AWS seconds per sandbox second (default 60)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--spans", action="store_true", help="also print each step's start and end")
    args = parser.parse_args()
    timings = SandboxTimings.aws(args.scale, loopback_http_is_tls=True, s3_replication=0, dynamodb_replication=0)
    steps = all_steps()
    figures: dict[str, Any] = {}
    with SandboxServer(timings=timings) as server, tempfile.TemporaryDirectory() as tmp:
        reset()
        config = build_config({"env": "critpath", "state": str(Path(tmp) / "critpath.state.json"),
                               "endpoint_url": server.endpoint_url}, environ={})
        policy = WaitPolicy().scaled(args.scale) if hasattr(WaitPolicy, "scaled") else WaitPolicy()
        runner = Runner(config, steps, log=make_logger("json", level="error"), credentials=dict(SANDBOX_CREDENTIALS),
                        wait_policy=policy)
        # Warm up: moto builds each service's backends (and RDS its orderable-options catalogue)
        # on first use, a cost of the emulator rather than of drkit or AWS.
        runner.plan()
        for phase, reverse in (("provision", False), ("teardown", True)):
            wall, spans = run_phase(runner, phase)
            path, chain = critical_path(steps, timings, reverse=reverse)
            figures[phase] = {"wall_s": round(wall, 2), "critical_path_s": round(path, 2), "chain": chain,
                              "modelled_aws_min": round(wall * args.scale / 60, 1),
                              "ratio": round(wall / path, 2) if path else None,
                              "spans": {k: [round(a, 2), round(b, 2)] for k, (a, b) in spans.items()}}
    if args.json:
        print(json.dumps({"scale": args.scale, "phases": figures}, indent=2))
        return
    print(f"drkit critical path: sandbox `aws` profile at scale {args.scale:g} ({args.scale:g} AWS s per s)")
    print(f"{'phase':<11}{'wall s':>8}{'critical s':>12}{'modelled AWS':>14}  critical chain")
    for phase, f in figures.items():
        print(f"{phase:<11}{f['wall_s']:>8.2f}{f['critical_path_s']:>12.2f}{f['modelled_aws_min']:>10.1f} min"
              f"  {' -> '.join(f['chain'])}")
        if args.spans:
            for key, (a, b) in sorted(f["spans"].items(), key=lambda item: item[1]):
                print(f"    {key:<36}{a:>8.2f} -> {b:>7.2f}")
    print(f"provision ratio {figures['provision']['ratio']:.2f}, teardown ratio {figures['teardown']['ratio']:.2f}")


if __name__ == "__main__":
    main()
