"""drkit.state: State recording (saved at once), load_state refusals, and StateLock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from drkit.config import Config
from drkit.errors import EXIT_BAD_INPUT, EXIT_LOCKED, StateLockedError, UserInputError
from drkit.state import STATE_VERSION, State, StateLock, load_state


def config_for(path: Path, env: str = "dev", primary: str = "us-east-1", dr: str = "us-east-2") -> Config:
    # Config built directly (no validation needed for state tests, and no botocore region lookup).
    return Config(env=env, primary_region=primary, dr_region=dr, state_path=path)


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# State ----------------------------------------------------------------------------------------

def test_new_state_not_written_until_a_change(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dev.state.json"
    state = load_state(config_for(path))
    assert not path.exists()
    assert state.snapshot() == {"version": STATE_VERSION, "env": "dev", "primary_region": "us-east-1",
                                "dr_region": "us-east-2", "steps": {}}


def test_record_saves_at_once_after_each_record(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dev.state.json"
    state = State.new(path, config_for(path))
    state.record("ensure_vpc:primary", "vpc", "vpc", "vpc-1")
    assert read(path)["steps"] == {"ensure_vpc:primary": {"resources": {"vpc": {"kind": "vpc", "id": "vpc-1"}}}}
    state.record("ensure_vpc:primary", "private-subnet-1", "subnet", "subnet-1", availability_zone="us-east-1a")
    assert read(path)["steps"]["ensure_vpc:primary"]["resources"] == {
        "vpc": {"kind": "vpc", "id": "vpc-1"},
        "private-subnet-1": {"kind": "subnet", "id": "subnet-1", "availability_zone": "us-east-1a"},
    }
    state.record("ensure_vpc:dr", "vpc", "vpc", "vpc-2")
    on_disk = read(path)
    assert on_disk["steps"]["ensure_vpc:dr"]["resources"]["vpc"]["id"] == "vpc-2"
    assert (on_disk["version"], on_disk["env"]) == (STATE_VERSION, "dev")
    assert on_disk == state.snapshot()
    # no temporary files left beside it
    assert sorted(p.name for p in path.parent.iterdir()) == ["dev.state.json"]
    assert state.resource_id("ensure_vpc:primary", "private-subnet-1") == "subnet-1"
    assert state.resource_id("ensure_vpc:primary", "nope") is None


def test_record_replaces_and_unchanged_record_does_not_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = State.new(path, config_for(path))
    state.record("s", "k", "vpc", "vpc-1")
    os.utime(path, (1, 1))
    state.record("s", "k", "vpc", "vpc-1")
    assert path.stat().st_mtime == 1  # an identical entry is not written again
    state.record("s", "k", "vpc", "vpc-2")
    assert read(path)["steps"]["s"]["resources"]["k"] == {"kind": "vpc", "id": "vpc-2"}


def test_forget(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = State.new(path, config_for(path))
    state.record("s", "a", "vpc", "vpc-1")
    state.record("s", "b", "subnet", "subnet-1")
    state.forget("s", "a")
    assert read(path)["steps"]["s"]["resources"] == {"b": {"kind": "subnet", "id": "subnet-1"}}
    state.forget("s", "missing")
    state.forget("other", "a")
    assert read(path)["steps"]["s"]["resources"] == {"b": {"kind": "subnet", "id": "subnet-1"}}
    assert state.resource("s", "a") is None


def test_set_outputs_and_clear_step(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = State.new(path, config_for(path))
    state.set_outputs("s", {"vpc_id": "vpc-1", "ids": ["a", "b"]})
    assert read(path)["steps"]["s"]["outputs"] == {"vpc_id": "vpc-1", "ids": ["a", "b"]}
    assert state.outputs("s") == {"vpc_id": "vpc-1", "ids": ["a", "b"]}
    state.set_outputs("s", {"vpc_id": "vpc-9"})
    assert read(path)["steps"]["s"]["outputs"] == {"vpc_id": "vpc-9"}
    assert state.all_outputs() == {"s": {"vpc_id": "vpc-9"}}
    state.clear_step("s")
    assert read(path)["steps"] == {}


def test_returned_dicts_are_copies(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = State.new(path, config_for(path))
    state.record("s", "a", "vpc", "vpc-1")
    state.resource("s", "a")["id"] = "tampered"
    state.resources("s")["a"]["id"] = "tampered"
    assert state.resource_id("s", "a") == "vpc-1"


def test_persist_false_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = load_state(config_for(path), persist=False)
    state.record("s", "a", "vpc", "vpc-1")
    assert not path.exists()
    assert state.resource_id("s", "a") == "vpc-1"


def test_load_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = load_state(config_for(path))
    state.record("s", "a", "vpc", "vpc-1")
    state.set_outputs("s", {"vpc_id": "vpc-1"})
    again = load_state(config_for(path))
    assert again.resource_id("s", "a") == "vpc-1"
    assert again.outputs("s") == {"vpc_id": "vpc-1"}


GOOD = {"version": STATE_VERSION, "env": "dev", "primary_region": "us-east-1", "dr_region": "us-east-2",
        "steps": {}}


@pytest.mark.parametrize(
    "content, fragment",
    [
        pytest.param(b"{not json", "is not valid JSON", id="corrupt"),
        pytest.param(b"", "is not valid JSON", id="empty"),
        pytest.param(b"\xff\xfe\x00", "is not valid JSON", id="not-utf8"),
        pytest.param(json.dumps(GOOD)[:40].encode(), "is not valid JSON", id="torn"),
        pytest.param(b"[1, 2, 3]", "is not a drkit state file", id="list"),
        pytest.param(b'{"hello": "world"}', "is not a drkit state file", id="other-json"),
        pytest.param(json.dumps({**GOOD, "steps": []}).encode(), "is not a drkit state file", id="steps-not-dict"),
        pytest.param(json.dumps({k: v for k, v in GOOD.items() if k != "version"}).encode(),
                     "is not a drkit state file", id="no-version"),
        pytest.param(json.dumps({**GOOD, "version": 2}).encode(), "has version 2; this drkit reads version 1",
                     id="newer-version"),
        pytest.param(json.dumps({**GOOD, "version": "1"}).encode(), "has version '1'", id="string-version"),
        pytest.param(json.dumps({**GOOD, "env": "prod"}).encode(), "belongs to env 'prod', not 'dev'",
                     id="other-env"),
        pytest.param(json.dumps({**GOOD, "primary_region": "eu-west-1"}).encode(),
                     "belongs to primary region 'eu-west-1', not 'us-east-1'", id="other-primary"),
        pytest.param(json.dumps({**GOOD, "dr_region": "us-west-2"}).encode(),
                     "belongs to dr region 'us-west-2', not 'us-east-2'", id="other-dr"),
        pytest.param(json.dumps({k: v for k, v in GOOD.items() if k != "env"}).encode(),
                     "belongs to env None, not 'dev'", id="missing-env"),
    ],
)
def test_load_state_refusals_leave_file_untouched(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "dev.state.json"
    path.write_bytes(content)
    before = path.stat().st_mtime_ns
    with pytest.raises(UserInputError) as info:
        load_state(config_for(path))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert fragment in info.value.message
    assert str(path) in info.value.message
    assert "\n" not in info.value.one_line()
    assert path.read_bytes() == content
    assert path.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.state.json"]


def test_load_state_accepts_matching_file(tmp_path: Path) -> None:
    path = tmp_path / "dev.state.json"
    data = {**GOOD, "steps": {"s": {"resources": {"a": {"kind": "vpc", "id": "vpc-7"}}}}}
    path.write_text(json.dumps(data))
    assert load_state(config_for(path)).resource_id("s", "a") == "vpc-7"


# StateLock ------------------------------------------------------------------------------------

def test_lock_path_and_release(tmp_path: Path) -> None:
    state_path = tmp_path / "dev.state.json"
    lock = StateLock(state_path, "provision")
    assert lock.path == tmp_path / "dev.state.json.lock"
    lock.acquire()
    holder = json.loads(lock.path.read_text())
    assert holder["pid"] == os.getpid()
    assert holder["command"] == "provision"
    assert holder["host"] == socket.gethostname()
    lock.release()
    assert not lock.path.exists()
    lock.release()  # releasing twice is harmless


def test_second_acquire_is_refused_naming_the_holder(tmp_path: Path) -> None:
    state_path = tmp_path / "dev.state.json"
    with StateLock(state_path, "provision"):
        other = StateLock(state_path, "teardown")
        with pytest.raises(StateLockedError) as info:
            other.acquire()
        err = info.value
        assert err.exit_code == EXIT_LOCKED == 3
        assert f"state {state_path} is locked by `drkit provision` pid {os.getpid()}" in err.message
        assert "(running)" in err.message
        assert "drkit state unlock" in (err.hint or "")
        # the refused run must not have removed the holder's lock
        other.release()
        assert other.path.exists()
    assert not (tmp_path / "dev.state.json.lock").exists()


def test_same_instance_cannot_acquire_twice(tmp_path: Path) -> None:
    lock = StateLock(tmp_path / "s.json", "plan")
    lock.acquire()
    with pytest.raises(StateLockedError):
        lock.acquire()
    lock.release()
    assert not lock.path.exists()


def test_break_lock(tmp_path: Path) -> None:
    state_path = tmp_path / "dev.state.json"
    holder = StateLock(state_path, "provision")
    holder.acquire()
    breaker = StateLock(state_path, "state unlock")
    text = breaker.break_lock()
    assert text is not None and f"`drkit provision` pid {os.getpid()}" in text
    assert not breaker.path.exists()
    assert breaker.break_lock() is None
    breaker.acquire()  # free again
    breaker.release()


def _exited_pid() -> int:
    """The pid of a process that has exited and been reaped (subprocess.run hides the pid)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stale_lock_is_described_as_no_longer_running(tmp_path: Path) -> None:
    state_path = tmp_path / "dev.state.json"
    pid = _exited_pid()
    lock_path = tmp_path / "dev.state.json.lock"
    lock_path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "command": "provision",
                                     "since": "2024-01-01T00:00:00Z"}))
    with pytest.raises(StateLockedError) as info:
        StateLock(state_path, "plan").acquire()
    assert info.value.message == (
        f"state {state_path} is locked by `drkit provision` pid {pid} on {socket.gethostname()} "
        "(no longer running: stale) since 2024-01-01T00:00:00Z")
    assert lock_path.exists()


@pytest.mark.parametrize(
    "content, expected",
    [
        pytest.param(json.dumps({"pid": 1, "host": "elsewhere.example", "command": "provision", "since": "T"}),
                     "`drkit provision` pid 1 on elsewhere.example since T", id="other-host-no-liveness"),
        pytest.param("garbage{", "an unknown holder (unreadable lock file)", id="unreadable"),
    ],
)
def test_describe_holder(tmp_path: Path, content: str, expected: str) -> None:
    lock = StateLock(tmp_path / "s.json", "plan")
    lock.path.write_text(content)
    assert lock.describe_holder() == expected


def test_a_run_releases_only_its_own_lock_after_an_unlock(tmp_path: Path) -> None:
    """Run A's lock is broken (unlock), run B takes the lock, then A finishes: B's lock stays."""
    state_path = tmp_path / "dev.state.json"
    run_a = StateLock(state_path, "provision")
    run_a.acquire()
    assert StateLock(state_path, "state unlock").break_lock() is not None
    run_b = StateLock(state_path, "provision")
    run_b.acquire()
    run_a.release()
    assert json.loads(run_b.path.read_text())["token"] == run_b.token
    with pytest.raises(StateLockedError):  # a third run is still refused
        StateLock(state_path, "teardown").acquire()
    run_b.release()
    assert not run_b.path.exists()


def test_release_tolerates_a_broken_lock_that_nobody_took(tmp_path: Path) -> None:
    run_a = StateLock(tmp_path / "dev.state.json", "provision")
    run_a.acquire()
    run_a.path.unlink()
    run_a.release()
    assert not run_a.path.exists()


def test_locks_carry_distinct_random_tokens(tmp_path: Path) -> None:
    tokens = set()
    for _ in range(3):
        lock = StateLock(tmp_path / "dev.state.json", "provision")
        lock.acquire()
        tokens.add(json.loads(lock.path.read_text())["token"])
        lock.release()
    assert len(tokens) == 3 and all(len(t) == 32 for t in tokens)


def test_break_lock_leaves_a_lock_that_changed_hands_since_it_was_shown(tmp_path: Path) -> None:
    state_path = tmp_path / "dev.state.json"
    first = StateLock(state_path, "provision")
    first.acquire()
    shown = first.path.read_text()
    first.release()
    second = StateLock(state_path, "teardown")
    second.acquire()
    with pytest.raises(StateLockedError) as info:
        StateLock(state_path, "state unlock").break_lock(expected=shown)
    assert "changed hands" in info.value.message and "`drkit teardown`" in info.value.message
    assert json.loads(second.path.read_text())["token"] == second.token


def test_holder_is_running_only_for_a_live_pid_on_this_host(tmp_path: Path) -> None:
    lock = StateLock(tmp_path / "s.json", "plan")
    assert lock.holder_is_running() is False  # no lock at all
    lock.acquire()
    assert lock.holder_is_running() is True
    lock.release()
    for holder in ({"pid": _exited_pid(), "host": socket.gethostname()},
                   {"pid": os.getpid(), "host": "elsewhere.example"},
                   {"pid": "1", "host": socket.gethostname()}):
        lock.path.write_text(json.dumps(holder))
        assert lock.holder_is_running() is False, holder


def _with_step(entry: object) -> bytes:
    return json.dumps({**GOOD, "steps": {"ensure_vpc:primary": entry}}).encode()


VPC = {"kind": "vpc", "id": "vpc-1"}


@pytest.mark.parametrize(
    "content, fragment",
    [
        pytest.param(_with_step("vpc-1"), "step 'ensure_vpc:primary' is a string (\"vpc-1\"), not an object",
                     id="step-a-string"),
        pytest.param(_with_step(None), "step 'ensure_vpc:primary' is missing or null", id="step-null"),
        pytest.param(_with_step([VPC]), "step 'ensure_vpc:primary' is a list", id="step-a-list"),
        pytest.param(_with_step({"resources": [VPC]}), "resources is a list", id="resources-a-list"),
        pytest.param(_with_step({"resources": "vpc-1"}), "resources is a string", id="resources-a-string"),
        pytest.param(_with_step({"resources": {"vpc": "vpc-1"}}), "resource 'vpc' is a string", id="resource-a-string"),
        pytest.param(_with_step({"resources": {"vpc": {"kind": "vpc", "id": 7}}}),
                     "resource 'vpc': id is a number (7), not a non-empty string", id="id-a-number"),
        pytest.param(_with_step({"resources": {"vpc": {"kind": "vpc", "id": ""}}}), "id is a string (\"\")",
                     id="id-empty"),
        pytest.param(_with_step({"resources": {"vpc": {"kind": "vpc"}}}), "id is missing or null", id="id-missing"),
        pytest.param(_with_step({"resources": {"vpc": {"id": "vpc-1", "kind": ["vpc"]}}}), "kind is a list",
                     id="kind-a-list"),
        pytest.param(_with_step({"resources": {"vpc": VPC}, "outputs": ["vpc-1"]}),
                     "step 'ensure_vpc:primary': outputs is a list", id="outputs-a-list"),
        pytest.param(_with_step({"outputs": True}), "outputs is a boolean (true)", id="outputs-a-boolean"),
    ],
)
def test_load_state_refuses_a_file_malformed_inside(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "dev.state.json"
    path.write_bytes(content)
    with pytest.raises(UserInputError) as info:
        load_state(config_for(path))
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert f"state file {path} is malformed: " in info.value.message and fragment in info.value.message
    assert "nothing was changed" in info.value.message and "\n" not in info.value.one_line()
    assert path.read_bytes() == content


def test_load_state_accepts_extras_and_steps_without_resources_or_outputs(tmp_path: Path) -> None:
    path = tmp_path / "dev.state.json"
    path.write_text(json.dumps({**GOOD, "steps": {
        "a": {}, "b": {"outputs": {"x": [1, 2]}},
        "c": {"resources": {"k": {"kind": "db_cluster", "id": "c-1", "arn": "arn:x", "extra": {"n": 1}}}}}}))
    state = load_state(config_for(path))
    assert state.resource("c", "k") == {"kind": "db_cluster", "id": "c-1", "arn": "arn:x", "extra": {"n": 1}}
