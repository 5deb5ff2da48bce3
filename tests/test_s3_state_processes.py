"""The S3 state lock between real processes, against the sandbox served over HTTP: two runs
racing for one lock, and a holder killed with SIGKILL whose lease runs out before `unlock`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
from click.testing import CliRunner

from drkit.cli import main
from drkit.sandbox import SandboxServer, reset
from drkit.sandbox.extensions import install_all
from drkit.sandbox.timings import SandboxTimings
from tests.conftest import DR

BUCKET = "lock-state"
URL = f"s3://{BUCKET}/team"
LOCK_KEY = "team/state.lock"
LEASE = "3"  # seconds: the holder renews every 0.75 s


def timings(**slower: float) -> SandboxTimings:
    zero = {name: 0 for name in ("nat_pending", "nat_deleting", "rds_creating", "rds_deleting", "rds_promoting",
                                 "dynamodb_replica_creating", "dynamodb_replica_deleting", "s3_replication",
                                 "dynamodb_replication")}
    return SandboxTimings(**{**zero, **slower}, loopback_http_is_tls=True)


@pytest.fixture(scope="module")
def server():
    with SandboxServer(timings=timings()) as running:
        yield running


@pytest.fixture
def s3(server):
    reset()
    client = boto3.client("s3", region_name=DR, endpoint_url=server.endpoint_url,
                          aws_access_key_id="t", aws_secret_access_key="t")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": DR})
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return client


def drkit_process(server, *args: str) -> subprocess.Popen:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "DRKIT_STATE_LEASE_SECONDS": LEASE}
    return subprocess.Popen([sys.executable, "-m", "drkit", *args, "--env", "locks", "--state", URL,
                             "--endpoint-url", server.endpoint_url],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lock_object(s3) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=BUCKET, Key=LOCK_KEY)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def test_two_runs_race_for_the_lock_one_wins_the_other_exits_3_naming_it(server, s3):
    install_all(timings(nat_pending=4))  # the winner holds the lock for at least 4 s
    runs = [drkit_process(server, "provision", "--yes", "--step", "ensure_vpc:dr") for _ in range(2)]
    results = [(run, *run.communicate(timeout=120)) for run in runs]
    codes = sorted(run.returncode for run, _, _ in results)
    assert codes == [0, 3], [(r.returncode, err) for r, _, err in results]
    [(winner, _, _)] = [r for r in results if r[0].returncode == 0]
    [(_, _, refused)] = [r for r in results if r[0].returncode == 3]
    assert f"is locked by `drkit provision` pid {winner.pid}" in refused and URL in refused
    assert len(refused.strip().splitlines()) == 1  # one line, no traceback
    state = json.loads(s3.get_object(Bucket=BUCKET, Key="team/state.json")["Body"].read())
    assert "vpc" in state["steps"]["ensure_vpc:dr"]["resources"]
    assert lock_object(s3) is None


def test_a_killed_holder_keeps_the_lock_until_its_lease_runs_out_and_unlock_is_journaled(server, s3):
    install_all(timings(nat_pending=120))  # the holder waits for its NAT gateway until killed
    holder = drkit_process(server, "provision", "--yes", "--step", "ensure_vpc:dr")
    deadline = time.monotonic() + 60
    while lock_object(s3) is None or lock_object(s3).get("renewals", 0) < 1:
        assert time.monotonic() < deadline and holder.poll() is None, holder.communicate()
        time.sleep(0.1)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    cli = CliRunner()
    args = ["--env", "locks", "--state", URL, "--endpoint-url", server.endpoint_url]

    early = cli.invoke(main, ["state", "unlock", "--yes", *args])
    assert early.exit_code == 3 and "(running)" in early.stderr and "not broken" in early.stderr
    assert lock_object(s3)["pid"] == holder.pid

    deadline = time.monotonic() + 30
    while True:  # the lease, no longer renewed, runs out
        broken = cli.invoke(main, ["state", "unlock", "--yes", *args])
        if broken.exit_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert broken.exit_code == 0, broken.output
    assert "no longer running: stale" in broken.stdout and f"pid {holder.pid}" in broken.stdout
    assert lock_object(s3) is None
    [entry] = s3.list_objects_v2(Bucket=BUCKET, Prefix="team/journals/unlock/")["Contents"]
    journaled = json.loads(s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read())
    assert journaled["holder"]["pid"] == holder.pid and journaled["holder"]["command"] == "provision"
    who = journaled["broken_by"]
    assert who["arn"].startswith("arn:aws:") and who["host"] and who["user"] and who["pid"] == os.getpid()
    assert "token" not in journaled["holder"]

    install_all(timings())
    resumed = drkit_process(server, "provision", "--yes", "--step", "ensure_vpc:dr")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
