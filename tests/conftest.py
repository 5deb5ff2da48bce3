"""Shared fixtures: moto with drkit's extensions, a fake clock shared by drkit and the sandbox,
and a Runner factory with its state file in a temporary directory."""

from __future__ import annotations

import functools
import marshal
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import botocore.loaders
import pytest
from moto import mock_aws

from drkit.aws import RetryPolicy
from drkit.clock import FakeClock
from drkit.config import build_config
from drkit.logs import make_logger
from drkit.runner import Runner
from drkit.sandbox.extensions import install_all
from drkit.sandbox.timings import SandboxTimings
from steps.vpc import EnsureVpc

PRIMARY = "us-east-1"
DR = "us-east-2"


def _plain(data: Any) -> Any:
    """JSON data with botocore's OrderedDicts as dicts (ordered too), which marshal can write."""
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_plain(value) for value in data]
    return data


@pytest.fixture(scope="session", autouse=True)
def parsed_botocore_data() -> Iterator[None]:
    """botocore's data files (service models, endpoints) are parsed once per test process.

    moto gives each test a fresh default session and each Runner makes its own; each new session
    would decompress and parse the same JSON again (a fifth of a moto test's time). Each load still
    gets its own fresh copy, as from the file: botocore edits a loaded model in place (it strips
    `/{Bucket}` from S3's request URIs), so sharing one copy between sessions would not be safe."""
    original = botocore.loaders.JSONFileLoader.load_file
    parsed: dict[str, bytes] = {}

    def load_file(self: botocore.loaders.JSONFileLoader, file_path: str) -> Any:
        if file_path not in parsed:
            parsed[file_path] = marshal.dumps(_plain(original(self, file_path)))
        return marshal.loads(parsed[file_path])

    botocore.loaders.JSONFileLoader.load_file = load_file  # type: ignore[method-assign]
    yield
    botocore.loaders.JSONFileLoader.load_file = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test reach a real account: fake credentials, no profile, no endpoint."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE", "ENVIRONMENT_SUFFIX",
                 "PRIMARY_REGION", "DR_REGION", "DRKIT_STATE", "DRKIT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", PRIMARY)
    # drkit never launches an instance from an image: moto need not parse its AMI catalogue for
    # each region's EC2 backend (a tenth of a VPC test's time).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture
def clock() -> FakeClock:
    """One fake clock for drkit's waiters and the sandbox's transitional states: waits take no
    real time, yet NAT gateways really are `pending` until enough (fake) time has passed."""
    fake = FakeClock()
    install_all(SandboxTimings(nat_pending=30, nat_deleting=60, rds_creating=300, rds_deleting=60,
                               rds_promoting=120, dynamodb_replica_creating=60, dynamodb_replica_deleting=60,
                               s3_replication=5, dynamodb_replication=1, clock=fake.monotonic))
    return fake


@pytest.fixture
def moto(clock: FakeClock):
    with mock_aws():
        yield


@pytest.fixture
def make_runner(tmp_path: Path, clock: FakeClock) -> Callable[..., Runner]:
    """A Runner over `steps` (default: the two ensure_vpc steps, which the engine tests use;
    pass steps=all_steps() for the whole stack)."""

    def factory(env: str = "test", *, state: Path | None = None, steps: list | None = None,
                force: bool = False, **overrides: Any) -> Runner:
        config = build_config(
            {"env": env, "state": str(state or tmp_path / f"{env}.state.json"), **overrides}, environ={}
        )
        chosen = steps if steps is not None else [EnsureVpc("primary"), EnsureVpc("dr")]
        return Runner(config, chosen, clock=clock, log=make_logger("json", level="warning"),
                      retry=RetryPolicy(botocore_max_attempts=1), force=force)

    return factory


@pytest.fixture
def ec2() -> Callable[[str], Any]:
    return lambda region=PRIMARY: boto3.client("ec2", region_name=region)


def owned_filters(env: str, role: str | None = None) -> list[dict]:
    filters = [{"Name": "tag:ManagedBy", "Values": ["drkit"]}, {"Name": "tag:Environment", "Values": [env]}]
    if role:
        filters.append({"Name": "tag:DR-Role", "Values": [role]})
    return filters


@functools.cache
def reader(service: str, region: str = PRIMARY) -> Any:
    """A boto3 client for reading AWS (moto) back, made once per process: making one costs more
    than the reads a test does with it. moto serves it in whichever test uses it (its hook is
    process-wide). For reads only: register no event handler on it."""
    return boto3.client(service, region_name=region)

