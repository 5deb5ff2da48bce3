"""The state file: what drkit created, written atomically after every resource, and its lock.

The state is versioned JSON. Each write goes to a temporary file in the same directory, is
fsynced and renamed over the old file, so a run killed at any instant leaves either the old or
the new state, never a torn one. The state is a cache of what exists, not the only record:
every step also finds its resources by tags, so a lost state file never means duplicates.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from drkit.config import Config
from drkit.errors import StateLockedError, UserInputError

STATE_VERSION = 1


class State:
    """The in-memory state, saved to disk on every change. Safe to share between step threads."""

    def __init__(self, path: Path, data: dict[str, Any], *, persist: bool = True) -> None:
        self.path = path
        self._data = data
        self._persist = persist
        self._lock = threading.RLock()

    @classmethod
    def new(cls, path: Path, config: Config, *, persist: bool = True) -> "State":
        data = {
            "version": STATE_VERSION,
            "env": config.env,
            "primary_region": config.primary_region,
            "dr_region": config.dr_region,
            "steps": {},
        }
        return cls(path, data, persist=persist)

    # Reading -------------------------------------------------------------------------------
    def resource(self, step: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._data["steps"].get(step, {}).get("resources", {}).get(key)
            return dict(found) if found else None

    def resource_id(self, step: str, key: str) -> str | None:
        found = self.resource(step, key)
        return found.get("id") if found else None

    def resources(self, step: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._data["steps"].get(step, {}).get("resources", {}).items()}

    def outputs(self, step: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._data["steps"].get(step, {}).get("outputs", {}))

    def all_outputs(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v.get("outputs", {})) for k, v in self._data["steps"].items()}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._data))

    # Recording -----------------------------------------------------------------------------
    def record(self, step: str, key: str, kind: str, resource_id: str, **extra: Any) -> None:
        """Remember one resource and save at once (never batched: a crash must not lose it)."""
        with self._lock:
            entry = {"kind": kind, "id": resource_id, **extra}
            resources = self._step(step).setdefault("resources", {})
            if resources.get(key) == entry:
                return
            resources[key] = entry
            self._save()

    def forget(self, step: str, key: str) -> None:
        with self._lock:
            resources = self._step(step).get("resources", {})
            if key in resources:
                del resources[key]
                self._save()

    def set_outputs(self, step: str, outputs: dict[str, Any]) -> None:
        with self._lock:
            if self._step(step).get("outputs") == outputs:
                return
            self._step(step)["outputs"] = outputs
            self._save()

    def clear_step(self, step: str) -> None:
        with self._lock:
            if step in self._data["steps"]:
                del self._data["steps"][step]
                self._save()

    def _step(self, step: str) -> dict[str, Any]:
        return self._data["steps"].setdefault(step, {})

    def _save(self) -> None:
        if self._persist:
            write_atomically(self.path, json.dumps(self._data, indent=2, sort_keys=True) + "\n")


def write_atomically(path: Path, text: str) -> None:
    """temp file in the same directory, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_state(config: Config, *, persist: bool = True) -> State:
    """Load the state for `config`, or start a new one; refuse a corrupt or foreign file."""
    path = config.state_path
    if not path.exists():
        return State.new(path, config, persist=persist)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(
            f"state file {path} is not valid JSON ({exc}); nothing was changed",
            hint="restore it from a backup, or move it aside: drkit finds its resources by tags",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), dict) or "version" not in data:
        raise UserInputError(f"state file {path} is not a drkit state file; nothing was changed")
    if type(data["version"]) is not int or data["version"] != STATE_VERSION:
        raise UserInputError(
            f"state file {path} has version {data['version']!r}; this drkit reads version {STATE_VERSION}"
        )
    expected = {"env": config.env, "primary_region": config.primary_region, "dr_region": config.dr_region}
    for key, want in expected.items():
        if data.get(key) != want:
            raise UserInputError(
                f"state file {path} belongs to {key.replace('_', ' ')} {data.get(key)!r}, not {want!r}; nothing was changed",
                hint="pass the matching --env/--primary-region/--dr-region, or another --state",
            )
    problem = shape_problem(data["steps"])
    if problem:
        raise UserInputError(
            f"state file {path} is malformed: {problem}; nothing was changed",
            hint="restore it from a backup, or move it aside: drkit finds its resources by tags",
        )
    return State(path, data, persist=persist)


def shape_problem(steps: dict[str, Any]) -> str | None:
    """What is wrong inside `steps`, or None: each step maps to an object whose `resources` map
    keys to objects with a string kind and a non-empty string id, and whose `outputs` is an object.
    Caught here, a hand-edited file is refused before any AWS call instead of failing mid-run."""
    for step, entry in steps.items():
        if not isinstance(entry, dict):
            return f"step {step!r} is {_kind(entry)}, not an object"
        resources = entry.get("resources", {})
        if not isinstance(resources, dict):
            return f"step {step!r}: resources is {_kind(resources)}, not an object"
        for key, resource in resources.items():
            where = f"step {step!r} resource {key!r}"
            if not isinstance(resource, dict):
                return f"{where} is {_kind(resource)}, not an object"
            for field in ("kind", "id"):
                value = resource.get(field)
                if not isinstance(value, str) or not value:
                    return f"{where}: {field} is {_kind(value)}, not a non-empty string"
        outputs = entry.get("outputs", {})
        if not isinstance(outputs, dict):
            return f"step {step!r}: outputs is {_kind(outputs)}, not an object"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "missing or null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    shown = json.dumps(value)
    return f"{names.get(type(value), type(value).__name__)} ({shown if len(shown) <= 40 else shown[:37] + '...'})"


class StateLock:
    """An exclusive lock beside the state file, naming its holder.

    Created with O_EXCL so that two runs (even on a shared filesystem) cannot both hold it. A run
    that dies leaves it behind on purpose: `drkit state unlock` breaks it once a human has
    checked that the holder is gone, as with Terraform's force-unlock. Each lock carries a random
    token, and a run removes only the lock holding its own token: after an unlock, the run whose
    lock was broken must not delete the lock of the run that came next.
    """

    def __init__(self, state_path: Path, command: str) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self.command = command
        self.token: str | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "token": token,
        }
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise StateLockedError(
                f"state {self.path.with_suffix('')} is locked by {self.describe_holder()}",
                hint="wait for that run to finish; if it is dead, run `drkit state unlock`",
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(holder, fh)
            fh.flush()
            os.fsync(fh.fileno())
        self.token = token

    def holder(self) -> dict[str, Any] | None:
        """The lock file's content, or None if there is no lock (or it cannot be read as one)."""
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return holder if isinstance(holder, dict) else None

    def holder_is_running(self) -> bool:
        """True when the holder provably still runs: same host, and its pid is alive."""
        holder = self.holder()
        if holder is None or holder.get("host") != socket.gethostname():
            return False
        return _pid_alive(_as_pid(holder.get("pid")))

    def describe_holder(self) -> str:
        holder = self.holder()
        if holder is None:
            return "an unknown holder (unreadable lock file)"
        alive = ""
        if holder.get("host") == socket.gethostname():
            alive = " (running)" if _pid_alive(_as_pid(holder.get("pid"))) else " (no longer running: stale)"
        return (
            f"`drkit {holder.get('command')}` pid {holder.get('pid')} on {holder.get('host')}"
            f"{alive} since {holder.get('since')}"
        )

    def release(self) -> None:
        """Remove the lock only if it is still ours: it may have been broken and taken by another run.

        Reading and unlinking are two steps; the window between them is the time of one read of
        a tiny file, and closing it would need a human to break the lock in exactly that instant.
        """
        if self.token is None:
            return
        holder = self.holder()
        if holder is not None and holder.get("token") == self.token:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.token = None

    def break_lock(self, *, expected: str | None = None) -> str | None:
        """Remove the lock whoever holds it; returns who held it, or None if unlocked.

        `expected` is the lock file's text as shown to the user: if another run has taken the
        lock since, that run's lock is left alone and a StateLockedError names it.
        """
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        if expected is not None and text != expected:
            raise StateLockedError(
                f"state {self.path.with_suffix('')} changed hands while you were asked; it is now locked by "
                f"{self.describe_holder()}; nothing was broken",
                hint="run `drkit state unlock` again",
            )
        holder = self.describe_holder()
        try:
            self.path.unlink()
        except FileNotFoundError:
            return None
        return holder

    def __enter__(self) -> "StateLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _as_pid(value: Any) -> int:
    return value if type(value) is int else 0


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
