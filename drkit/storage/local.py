"""The state kept on local disk, as drkit always kept it: the state file written atomically, an
O_EXCL lock file beside it, the audit log as JSON lines beside it, and journals and reports in
directories beside it (`<env>.journals/`, and `reports/`: report names start with a run id,
unique across envs, so the issue's `reports/<run-id>.json` beside the state is shared by envs)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from drkit.aws import AuditLog
from drkit.errors import StateLockedError
from drkit.storage.base import Storage, check_stream_name


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


def audit_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name.replace(".state.json", "") + ".audit.jsonl")


class LocalStorage(Storage):
    """A state file on this machine. Nothing here changes how a local state behaved before."""

    def __init__(self, state_path: Path) -> None:
        self.path = state_path
        self.name = str(state_path)
        self._stem = state_path.name.replace(".state.json", "")

    def read_state(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_state(self, text: str) -> None:
        write_atomically(self.path, text)

    def lock(self, command: str) -> StateLock:
        return StateLock(self.path, command)

    def audit_log(self, run_id: str) -> AuditLog:
        return AuditLog(audit_path(self.path))

    def append_record(self, stream: str, record: dict[str, Any]) -> str:
        path = self._stream_path(stream)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return str(path)

    def read_records(self, stream: str) -> list[dict[str, Any]]:
        try:
            lines = self._stream_path(stream).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def streams(self, under: str) -> list[str]:
        check_stream_name(under)
        kind, _, rest = under.partition("/")
        root = self.path.with_name(f"{self._stem}.{kind}")
        base = root / rest if rest else root
        if not base.is_dir():
            return []
        return sorted(f"{kind}/{p.relative_to(root).with_suffix('')}" for p in base.rglob("*.jsonl"))

    def discard(self, stream: str) -> None:
        """Remove a stream once it was copied elsewhere (`drkit state reconcile`)."""
        self._stream_path(stream).unlink(missing_ok=True)

    def write_report(self, name: str, text: str) -> str:
        check_stream_name(name)
        path = self._reports / name
        write_atomically(path, text)
        return str(path)

    def read_report(self, name: str) -> str | None:
        check_stream_name(name)
        try:
            return (self._reports / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    @property
    def _reports(self) -> Path:
        return self.path.with_name("reports")

    def _stream_path(self, stream: str) -> Path:
        check_stream_name(stream)
        kind, _, rest = stream.partition("/")
        return self.path.with_name(f"{self._stem}.{kind}") / f"{rest or 'records'}.jsonl"
