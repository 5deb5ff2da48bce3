"""Benchmark: provision, converged re-provision and teardown against the sandbox over HTTP.

Prints wall time and AWS calls (total and mutating) per phase, median over --rounds. The
sandbox's transitional states are set to zero so the figures measure drkit, not emulated waits.

    python bench/bench_pipeline.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from drkit.aws import CallStats
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runner import Runner
from drkit.sandbox import SANDBOX_CREDENTIALS, SandboxServer, reset
from drkit.sandbox.timings import SandboxTimings
from drkit.waiters import WaitPolicy
from steps import all_steps

PHASES = ("provision", "re-provision (converged)", "teardown")


def one_round(endpoint: str, state_dir: Path, n: int) -> dict[str, tuple[float, int, int]]:
    env = f"bench{n}"
    config = build_config({"env": env, "state": str(state_dir / f"{env}.state.json"), "endpoint_url": endpoint},
                          environ={})
    runner = Runner(config, all_steps(), log=make_logger("json", level="error"),
                    credentials=dict(SANDBOX_CREDENTIALS), wait_policy=WaitPolicy(first_interval=0.05, max_interval=0.5))
    figures = {}
    for phase, action in zip(PHASES, (runner.provision, runner.provision, runner.teardown)):
        runner.aws.stats = CallStats()
        started = time.perf_counter()
        outcome = action()
        seconds = time.perf_counter() - started
        if not outcome.ok:
            raise SystemExit(f"{phase} failed: {[r.error for r in outcome.failed]}")
        figures[phase] = (seconds, runner.aws.stats.total, runner.aws.stats.mutating)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    zero = SandboxTimings(nat_pending=0, nat_deleting=0, rds_creating=0, rds_deleting=0, rds_promoting=0,
                          dynamodb_replica_creating=0, dynamodb_replica_deleting=0, s3_replication=0,
                          dynamodb_replication=0, lambda_eni_linger=0, acm_validation=0,
                          loopback_http_is_tls=True)
    rounds = []
    with SandboxServer(timings=zero) as server, tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            reset()
            rounds.append(one_round(server.endpoint_url, Path(tmp), n))
    steps = [s.key for s in all_steps()]
    result = {
        phase: {
            "seconds_median": round(statistics.median(r[phase][0] for r in rounds), 3),
            "seconds_all": [round(r[phase][0], 3) for r in rounds],
            "aws_calls": rounds[-1][phase][1],
            "mutating_calls": rounds[-1][phase][2],
        }
        for phase in PHASES
    }
    if args.json:
        print(json.dumps({"steps": steps, "rounds": args.rounds, "phases": result}, indent=2))
        return
    print(f"drkit pipeline benchmark: {len(steps)} steps ({', '.join(steps)}), sandbox over HTTP, "
          f"median of {args.rounds} rounds")
    print(f"{'phase':<26}{'wall s':>9}{'AWS calls':>11}{'mutating':>10}")
    for phase, figures in result.items():
        print(f"{phase:<26}{figures['seconds_median']:>9.2f}{figures['aws_calls']:>11}{figures['mutating_calls']:>10}")


if __name__ == "__main__":
    main()
