"""The storage behind the state: one interface, a local file or an S3 prefix behind it.

What lives under one state location: the state document, its lock, the audit log (one record
per mutating AWS call) and append-only *streams* of records -- the runbooks' journals
(`journals/<runbook>/<run-id>`) and the record of broken locks (`journals/unlock/<run-id>`) --
and named report files. Streams are append-only: S3 has no append, so in S3 each record is an
object of its own, created with If-None-Match so that no record can ever be overwritten.
"""

from __future__ import annotations

import abc
import re
import secrets
import time
from typing import Any, ContextManager

_STREAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def check_stream_name(name: str) -> None:
    """Stream and report names become object keys and file paths: no `..`, no empty segment."""
    if not _STREAM.match(name) or ".." in name:
        raise ValueError(f"invalid stream or report name {name!r}")


def new_run_id() -> str:
    """Sorts by start time, unique across machines: `20261202T033000Z-1a2b3c4d`."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


class Storage(abc.ABC):
    """Where one env's state, lock, audit log, journals and reports are kept."""

    name: str  # shown to the user: a path, or s3://bucket/prefix

    @property
    def degraded(self) -> bool:
        """True when the home copy cannot be reached and reads come from a replica."""
        return False

    def require_writable(self, command: str) -> None:
        """Refuse (before any other work) a command that must change the state when it cannot."""

    @abc.abstractmethod
    def read_state(self) -> str | None:
        """The state document's text, or None if there is none yet."""

    @abc.abstractmethod
    def write_state(self, text: str) -> None:
        """Replace the state document (atomically; in S3 only if unchanged since read or written)."""

    @abc.abstractmethod
    def lock(self, command: str) -> ContextManager[Any]:
        """The exclusive lock a mutating command holds for its whole run."""

    @abc.abstractmethod
    def audit_log(self, run_id: str) -> Any:
        """The sink (with `append(record)`) the AWS gateway writes one record per mutating call to."""

    @abc.abstractmethod
    def append_record(self, stream: str, record: dict[str, Any]) -> str:
        """Append one record to a stream (never overwriting one); returns where it went."""

    @abc.abstractmethod
    def read_records(self, stream: str) -> list[dict[str, Any]]:
        """A stream's records, oldest first."""

    @abc.abstractmethod
    def streams(self, under: str) -> list[str]:
        """The streams under a path such as `journals/failover`."""

    @abc.abstractmethod
    def write_report(self, name: str, text: str) -> str:
        """Store a report file (e.g. `failover/<run-id>.md`); returns where it went."""

    @abc.abstractmethod
    def read_report(self, name: str) -> str | None: ...

    def journal(self, runbook: str, run_id: str) -> "Journal":
        return Journal(self, f"journals/{runbook}/{run_id}")

    def offline(self) -> "Storage":
        """Where a run that must not reach this storage's buckets (`--no-state`) keeps its journal,
        audit and report, for `drkit state reconcile` to copy home later: a local state's itself."""
        return self


class StreamAuditLog:
    """The AWS gateway's audit sink as a stream: one record per mutating call in `audit/<run-id>`."""

    def __init__(self, storage: Storage, run_id: str) -> None:
        self.storage = storage
        self.stream = f"audit/{run_id}"
        self.path = None  # not one local file

    def append(self, record: dict[str, Any]) -> None:
        self.storage.append_record(self.stream, record)


class Journal:
    """An append-only journal: what a runbook did, one record per step, in order."""

    def __init__(self, storage: Storage, stream: str) -> None:
        check_stream_name(stream)
        self.storage = storage
        self.stream = stream

    def append(self, record: dict[str, Any]) -> str:
        return self.storage.append_record(self.stream, record)

    def records(self) -> list[dict[str, Any]]:
        return self.storage.read_records(self.stream)
