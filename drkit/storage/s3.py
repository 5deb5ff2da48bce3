"""The state in S3: a home bucket, and a replica in the other region that S3 replicates to.

Every write of the state is a compare-and-swap: PutObject with If-Match on the ETag this run last
read or wrote (If-None-Match: * when there was none), so a run that lost its lock can never
overwrite another run's state. Records (audit, journals) are objects of their own, each created
with If-None-Match: * -- S3 has no append, and a record must never be overwritten.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html

When the home bucket's region cannot be reached, reads come from the replica (degraded mode):
the state is as fresh as replication made it (S3 RTC: 15 minutes at worst), nothing may change
it, and records go to the replica and to a local file. `reconcile` copies them home once the
home region is back.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from drkit.aws import AwsGateway
from drkit.errors import (
    AwsCallError, DegradedModeError, DrkitError, EndpointUnreachableError, StateConflictError, StateLockLostError,
    UserInputError,
)
from drkit.retries import busy
from drkit.storage.base import Storage, StreamAuditLog, check_stream_name
from drkit.storage.location import S3StateLocation

if TYPE_CHECKING:
    from drkit.storage.local import LocalStorage

STATE_OBJECT = "state.json"
LOCK_OBJECT = "state.lock"
# Under the cache directory: the local storage a `--no-state` run journals to (see `offline`).
OFFLINE_STATE_FILE = "state.json"
# In the replica, `reconcile/<name>` marks a record written there while the home region was down.
RECONCILE = "reconcile"
# A conditional write racing another write of the same key: retry it.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
CONDITIONAL_CONFLICT = (busy("ConditionalRequestConflict", budget=60),)
PRECONDITION_FAILED = "PreconditionFailed"
# What a region that is down answers, once botocore's and drkit's retries are spent.
UNREACHABLE_CODES = frozenset({"InternalError", "ServiceUnavailable", "500", "502", "503", "504"})


class HomeUnreachable(DrkitError):
    """The home bucket's region did not answer: callers switch to the replica where they can."""


def is_unreachable(exc: BaseException) -> bool:
    return isinstance(exc, EndpointUnreachableError) or (isinstance(exc, AwsCallError) and exc.code in UNREACHABLE_CODES)


class S3Storage(Storage):
    def __init__(self, location: S3StateLocation, aws: AwsGateway, *, cache_dir: Path, lease_seconds: float = 60.0,
                 log: Any = None, warn: Callable[[str], None] | None = None) -> None:
        self.location = location
        self.aws = aws
        self.cache_dir = cache_dir
        self.lease_seconds = lease_seconds
        self.log = log
        self.warn = warn or (lambda line: None)
        self.name = location.url
        self.held_lock: Any = None  # the S3Lock this process holds, if any
        self._etag: str | None = None  # of the state object as last read or written here
        self._home_down = False
        self._home_exists: bool | None = None  # learnt from HeadBucket by require_writable
        self._sequences: dict[str, int] = {}
        self._lock = threading.Lock()

    # Mode ------------------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        return self._home_down

    def require_writable(self, command: str) -> None:
        """Refuse in degraded mode, or when the home bucket does not exist (a typo, or no
        `drkit state init` yet): S3 would answer NoSuchBucket, which drkit's gateway treats as
        "not visible yet" after a create and retries for minutes."""
        if not self._home_down and self._home_exists is False:  # known after _home_reachable
            raise UserInputError(
                f"the state bucket {self.location.bucket} does not exist (in {self.location.region}); "
                f"`drkit {command}` changed nothing",
                hint=f"create it with `drkit state init {self.location.url}`, or fix --state",
            )
        if self._home_down or not self._home_reachable(command):
            raise DegradedModeError(
                f"`drkit {command}` refused: the state bucket {self.location.bucket} in {self.location.region} "
                f"cannot be reached, and only its replica {self.location.replica} in "
                f"{self.location.replica_region} can be read (degraded mode)",
                hint="state show, outputs and verify work now (from the replica); provision and teardown once "
                     "the home region is back (then run `drkit state reconcile`)",
            )

    def avoid_region(self, region: str, why: str) -> None:
        """Degraded mode without asking the home bucket, when it lives in `region` and the run
        must not call that region (a failover away from it)."""
        if region == self.location.region and not self._home_down:
            self._home_down = True
            self.warn(f"drkit: warning: the state bucket's region {region} is not called ({why}); reading the "
                      f"replica s3://{self.location.replica}/{self.location.prefix} in {self.location.replica_region} "
                      "(degraded mode: the state is not written; `drkit state reconcile` applies the run later)")

    def offline(self) -> LocalStorage:
        from drkit.storage.local import LocalStorage

        return LocalStorage(self.cache_dir / OFFLINE_STATE_FILE)

    def _home_reachable(self, command: str) -> bool:
        try:
            self._home_exists = self._home("head_bucket", missing_ok=True) is not None
        except HomeUnreachable:
            return False
        if not self._home_exists:
            self.require_writable(command)  # raises: no bucket
        return True

    def _home(self, operation: str, **params: Any) -> Any:
        """A call on the home bucket; an unreachable region switches this storage to degraded mode."""
        try:
            return self.aws.call("s3", self.location.region, operation, Bucket=self.location.bucket, **params)
        except DrkitError as exc:
            if not is_unreachable(exc):
                raise
            if not self._home_down:
                self._home_down = True
                self.warn(f"drkit: warning: the state bucket's region {self.location.region} cannot be reached "
                          f"({exc.one_line()}); reading the replica s3://{self.location.replica}/{self.location.prefix} "
                          f"in {self.location.replica_region} (degraded mode: read-only, as fresh as replication made it)")
            raise HomeUnreachable(f"the state bucket {self.location.bucket} in {self.location.region} cannot be "
                                  f"reached: {exc.one_line()}") from exc

    def _replica(self, operation: str, **params: Any) -> Any:
        try:
            return self.aws.call("s3", self.location.replica_region, operation, Bucket=self.location.replica, **params)
        except DrkitError as exc:
            if not is_unreachable(exc):
                raise
            raise DrkitError(
                f"neither the state bucket {self.location.bucket} ({self.location.region}) nor its replica "
                f"{self.location.replica} ({self.location.replica_region}) can be reached: {exc.one_line()}",
                hint="reads need one of the two buckets; drkit's resources themselves are found by their tags",
            ) from exc

    # Objects ---------------------------------------------------------------------------------
    def get(self, name: str) -> tuple[str, str, dict[str, Any]] | None:
        """(text, etag, response) of `name` from home, or from the replica in degraded mode."""
        key = self.location.key(name)
        found = None
        if not self._home_down:
            try:
                found = self._home("get_object", Key=key, missing_ok="NoSuchKey")
            except HomeUnreachable:
                found = None
        if self._home_down:
            found = self._replica("get_object", Key=key, missing_ok="NoSuchKey")
        if found is None:
            return None
        return found["Body"].read().decode("utf-8"), found["ETag"], found

    def put_home(self, name: str, text: str, *, if_match: str | None = None, if_none_match: bool = False) -> str | None:
        """Write `name` in the home bucket, conditionally; its new ETag, or None when the condition
        failed (412) or the object to match is gone."""
        condition: dict[str, Any] = {"IfMatch": if_match} if if_match else {}
        if if_none_match:
            condition["IfNoneMatch"] = "*"
        try:
            found = self._home("put_object", Key=self.location.key(name), Body=text.encode("utf-8"),
                               ContentType="application/json", not_yet=CONDITIONAL_CONFLICT,
                               missing_ok="NoSuchKey" if if_match else False, resource=self.location.key(name),
                               **condition)
        except HomeUnreachable:
            self.require_writable("write")  # raises: degraded
            raise
        except AwsCallError as exc:
            if exc.code == PRECONDITION_FAILED:
                return None
            raise
        return None if found is None else found["ETag"]

    def _written_by_us(self, name: str, text: str) -> str | None:
        """After a refused conditional write: the object's ETag if it holds exactly `text` (our
        own write, whose answer was lost and which botocore resent), else None."""
        found = self.get(name)
        return found[1] if found is not None and found[0] == text else None

    # State -----------------------------------------------------------------------------------
    def read_state(self) -> str | None:
        found = self.get(STATE_OBJECT)
        if found is None:
            self._etag = None
            return None
        text, etag, _ = found
        self._etag = None if self._home_down else etag
        return text

    def write_state(self, text: str) -> None:
        if self._home_down:
            self.require_writable("write the state")
        held = self.held_lock
        if held is not None and held.lost:
            raise StateLockLostError(
                f"this run lost its lock on {self.name} ({held.lost}); it stopped before writing the state",
                hint="another run may hold the state now: check `drkit state show`, then re-run",
            )
        etag = self.put_home(STATE_OBJECT, text, if_match=self._etag, if_none_match=self._etag is None)
        if etag is None:
            etag = self._written_by_us(STATE_OBJECT, text)
        if etag is None:
            raise StateConflictError(
                f"the state {self.name} was changed by another run since this run read it; this run stopped "
                "and overwrote nothing",
                hint="re-run: drkit reads the new state and finds its resources by tags",
            )
        self._etag = etag

    def lock(self, command: str):
        from drkit.storage.s3_lock import S3Lock

        return S3Lock(self, command)

    def audit_log(self, run_id: str) -> StreamAuditLog:
        return StreamAuditLog(self, run_id)

    # Records ---------------------------------------------------------------------------------
    def append_record(self, stream: str, record: dict[str, Any]) -> str:
        check_stream_name(stream)
        text = json.dumps(record, sort_keys=True, default=str)
        with self._lock:
            seq = self._sequences.get(stream)
            if seq is None:
                seq = len(self._keys(stream + "/"))
            while True:
                name = f"{stream}/{seq:06d}.json"
                seq += 1
                where = self._append(name, text)
                if where is not None:
                    self._sequences[stream] = seq
                    return where

    def _append(self, name: str, text: str) -> str | None:
        """Create `name`; where it went, or None if it exists already. In degraded mode it goes to
        the replica and to a local file."""
        if not self._home_down:
            try:
                etag = self.put_home(name, text, if_none_match=True)
                if etag is None and self._written_by_us(name, text) is None:
                    return None
                return f"s3://{self.location.bucket}/{self.location.key(name)}"
            except DegradedModeError:
                pass
            except DrkitError as exc:  # an audit record must not be lost: keep it locally
                self.warn(f"drkit: warning: could not write {name} to {self.name} ({exc.one_line()}); kept in "
                          f"{self.cache_dir / 'pending'} for `drkit state reconcile`")
                return self._keep_locally(name, text)
        local = self._keep_locally(name, text)
        for key, body in ((name, text), (f"{RECONCILE}/{name}", "")):  # the record, and a marker to copy it home
            try:
                self._replica("put_object", Key=self.location.key(key), Body=body.encode("utf-8"), IfNoneMatch="*",
                              ContentType="application/json", not_yet=CONDITIONAL_CONFLICT,
                              resource=self.location.key(key))
            except AwsCallError as exc:
                if exc.code != PRECONDITION_FAILED:
                    raise
        return f"s3://{self.location.replica}/{self.location.key(name)} and {local}"

    def _keep_locally(self, name: str, text: str) -> str:
        from drkit.storage.local import write_atomically

        path = self.cache_dir / "pending" / self.location.key(name)
        write_atomically(path, text)
        return str(path)

    def _keys(self, prefix: str, *, replica: bool = False) -> list[str]:
        """Keys (relative to the state prefix) under `prefix`, from home or (degraded) the replica."""
        full = self.location.key(prefix)
        call = self._replica if replica or self._home_down else self._home
        keys: list[str] = []
        params: dict[str, Any] = {"Prefix": full}
        while True:
            try:
                page = call("list_objects_v2", **params)
            except HomeUnreachable:
                return self._keys(prefix, replica=True)
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                break
            params["ContinuationToken"] = page["NextContinuationToken"]
        strip = len(self.location.key(""))
        return sorted(key[strip:] for key in keys)

    def read_records(self, stream: str) -> list[dict[str, Any]]:
        check_stream_name(stream)
        records = []
        for name in self._keys(stream + "/"):
            found = self.get(name)
            if found is not None:
                records.append(json.loads(found[0]))
        return records

    def streams(self, under: str) -> list[str]:
        check_stream_name(under)
        return sorted({name.rsplit("/", 1)[0] for name in self._keys(under + "/")})

    def write_report(self, name: str, text: str) -> str:
        check_stream_name(name)
        where = self._append(f"reports/{name}", text)
        if where is None:
            raise DrkitError(f"report {name} already exists in {self.name}")
        return where

    def read_report(self, name: str) -> str | None:
        check_stream_name(name)
        found = self.get(f"reports/{name}")
        return found[0] if found else None

    # Reconcile -------------------------------------------------------------------------------
    def reconcile(self, apply: Callable[[list[dict[str, Any]]], None] | None = None) -> list[str]:
        """Copy home what was recorded while the home region was down: the records kept in the
        local pending directory, a `--no-state` run's local journal, audit and report, and the
        records marked in the replica (by any machine). Never overwrites; returns the names
        copied. `apply` sees every record first (the runner applies journaled changes of the
        active region to the state), so a reconcile cut short at any point is simply run again."""
        self.require_writable("state reconcile")
        found, cleanups = self._recorded_elsewhere()
        if apply is not None:
            apply([record for record in (_parsed(text) for _, text in found) if record is not None])
        copied = [name for name, text in found if self.put_home(name, text, if_none_match=True) is not None]
        for cleanup in cleanups:
            try:
                cleanup()
            except DrkitError as exc:  # a replica marker left behind: the next reconcile skips its record (412)
                self.warn(f"drkit: warning: could not clear a reconciled marker in the replica: {exc.one_line()}")
        for directory in (self.cache_dir, *self.cache_dir.parents[:-1]):  # up to `.drkit`, never `.`
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        return sorted(set(copied))

    def _recorded_elsewhere(self) -> tuple[list[tuple[str, str]], list[Callable[[], None]]]:
        """(name, text) of each record to copy home, and what to remove once they are."""
        found: list[tuple[str, str]] = []
        cleanups: list[Callable[[], None]] = []
        pending = self.cache_dir / "pending"
        root = pending / self.location.key("") if self.location.prefix else pending
        for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
            found.append((str(path.relative_to(root)), path.read_text(encoding="utf-8")))
            cleanups.append(path.unlink)
        offline = self.offline()
        for stream in offline.streams("journals") + offline.streams("audit"):
            records = offline.read_records(stream)
            found += [(f"{stream}/{i:06d}.json", json.dumps(record, sort_keys=True, default=str))
                      for i, record in enumerate(records)]
            cleanups.append(lambda stream=stream: offline.discard(stream))
        reports = self.cache_dir / "reports"
        for path in sorted(p for p in reports.iterdir() if p.is_file()) if reports.is_dir() else []:
            found.append((f"reports/{path.name}", path.read_text(encoding="utf-8")))
            cleanups.append(path.unlink)
        try:  # what other machines recorded in the replica while the home region was down
            for marker in self._keys(RECONCILE + "/", replica=True):
                name = marker[len(RECONCILE) + 1:]
                got = self._replica("get_object", Key=self.location.key(name), missing_ok="NoSuchKey")
                if got:
                    found.append((name, got["Body"].read().decode("utf-8")))
                cleanups.append(lambda key=self.location.key(marker): self._replica("delete_object", Key=key,
                                                                                     resource=key))
        except DrkitError as exc:
            self.warn(f"drkit: warning: the replica's records could not be copied home yet: {exc.one_line()}")
        for directory in (pending, *(self.cache_dir / f"{OFFLINE_STATE_FILE}.{kind}" for kind in ("journals", "audit")),
                          reports):
            cleanups.append(lambda directory=directory: _remove_empty_dirs(directory))
        return found, cleanups


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _remove_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(path.iterdir()):
            path.rmdir()
    if not any(root.iterdir()):
        root.rmdir()
