"""The state lock in S3: an object created with If-None-Match: *, held under a renewed lease.

Acquire creates `<prefix>/state.lock`; S3 answers 412 while it exists, so exactly one run holds
it (as Terraform's S3 backend `use_lockfile` does). The holder renews it from a background
thread (a PutObject with If-Match on the ETag it last wrote), so its LastModified says the holder
is alive. A lock whose lease has run out belongs to a run that died; it is still broken only by
`drkit state unlock`, which journals who broke it. Release and unlock are conditional deletes
(If-Match): nobody ever deletes a lock that changed hands.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from drkit import identity
from drkit.errors import AwsCallError, DrkitError, StateLockedError
from drkit.storage.base import new_run_id
from drkit.storage.s3 import LOCK_OBJECT, PRECONDITION_FAILED, S3Storage

RENEWALS_PER_LEASE = 4


def whoami(storage: S3Storage) -> dict[str, Any]:
    """Who holds or breaks the lock, asked in the state bucket's region."""
    return identity.whoami(storage.aws, storage.location.region)


class S3Lock:
    def __init__(self, storage: S3Storage, command: str) -> None:
        self.storage = storage
        self.command = command
        self.token: str | None = None
        self.etag: str | None = None
        self.lost: str | None = None  # why this run no longer holds the lock
        self._body: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renew_lock = threading.Lock()

    @property
    def path(self) -> str:
        return f"{self.storage.name}/{LOCK_OBJECT}"

    # Holding ---------------------------------------------------------------------------------
    def acquire(self) -> None:
        token = secrets.token_hex(16)
        body = {**whoami(self.storage), "command": self.command, "token": token, "renewals": 0,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "lease_seconds": self.storage.lease_seconds}
        text = json.dumps(body, sort_keys=True)
        etag = self.storage.put_home(LOCK_OBJECT, text, if_none_match=True)
        if etag is None:
            etag = self.storage._written_by_us(LOCK_OBJECT, text)  # our create, its answer lost
        if etag is None:
            raise StateLockedError(
                f"state {self.storage.name} is locked by {self.describe_holder()}",
                hint="wait for that run to finish; if it is dead, run `drkit state unlock`",
            )
        self.token, self.etag, self._body, self.lost = token, etag, body, None
        self.storage.held_lock = self
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep_renewing, name="drkit-lock-lease", daemon=True)
        self._thread.start()

    def _keep_renewing(self) -> None:
        interval = self.storage.lease_seconds / RENEWALS_PER_LEASE
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    return
            except DrkitError as exc:  # unreachable for a moment: the lease may run out, keep trying
                self.storage.warn(f"drkit: warning: could not renew the lock on {self.storage.name}: {exc.one_line()}")

    def renew(self) -> bool:
        """Extend the lease; False (and `lost` says why) when the lock is no longer ours."""
        with self._renew_lock:
            if self.token is None or self.lost:
                return False
            body = {**self._body, "renewals": self._body["renewals"] + 1,
                    "renewed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            text = json.dumps(body, sort_keys=True)
            etag = self.storage.put_home(LOCK_OBJECT, text, if_match=self.etag)
            if etag is None:
                etag = self.storage._written_by_us(LOCK_OBJECT, text)
            if etag is None:
                self.lost = "the lock was broken (`drkit state unlock`) and may be held by another run now"
                self.storage.warn(f"drkit: error: {self.lost}: this run will not write the state again")
                return False
            self.etag, self._body = etag, body
            return True

    def release(self) -> None:
        """Stop renewing and delete the lock only if it is still ours (a conditional delete)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.token is not None and not self.lost:
            try:
                self._delete_own()
            except DrkitError as exc:  # HomeUnreachable included
                self.storage.warn(f"drkit: warning: could not release the lock on {self.storage.name} "
                                  f"({exc.one_line()}); "
                                  "its lease will run out: break it with `drkit state unlock`")
        if self.storage.held_lock is self:
            self.storage.held_lock = None
        self.token = None

    def _delete_own(self) -> None:
        """A lock that changed hands (412) or is gone is not ours to delete."""
        try:
            self.storage._home("delete_object", Key=self.storage.location.key(LOCK_OBJECT), IfMatch=self.etag,
                               missing_ok="NoSuchKey", resource=self.storage.location.key(LOCK_OBJECT))
        except AwsCallError as exc:
            if exc.code != PRECONDITION_FAILED:
                raise

    def __enter__(self) -> "S3Lock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # Looking at it ---------------------------------------------------------------------------
    def holder(self) -> dict[str, Any] | None:
        """The lock's content plus `etag` and `age_seconds` (since its last renewal), or None."""
        found = self.storage.get(LOCK_OBJECT)
        if found is None:
            return None
        text, etag, response = found
        try:
            holder = json.loads(text)
        except json.JSONDecodeError:
            holder = {}
        holder = holder if isinstance(holder, dict) else {}
        holder["etag"] = etag
        holder["age_seconds"] = _age_seconds(response)
        return holder

    def lease_live(self, holder: dict[str, Any]) -> bool:
        lease = holder.get("lease_seconds")
        lease = lease if isinstance(lease, (int, float)) and not isinstance(lease, bool) else self.storage.lease_seconds
        return holder["age_seconds"] < lease

    def describe_holder(self, holder: dict[str, Any] | None = None) -> str:
        holder = holder if holder is not None else self.holder()
        if holder is None:
            return "nobody (the lock is gone)"
        who = ", ".join(f"{k} {holder[k]}" for k in ("user", "arn") if holder.get(k))
        if self.lease_live(holder):
            lease = f"lease renewed {holder['age_seconds']:.0f}s ago (running)"
        else:
            lease = f"lease expired: last renewed {holder['age_seconds']:.0f}s ago (no longer running: stale)"
        return (f"`drkit {holder.get('command')}` pid {holder.get('pid')} on {holder.get('host')}"
                f"{f' ({who})' if who else ''} since {holder.get('since')}; {lease}")

    def break_lock(self, holder: dict[str, Any]) -> str:
        """Delete the lock shown to the user (If-Match on its ETag) and journal who broke it."""
        try:
            self.storage._home("delete_object", Key=self.storage.location.key(LOCK_OBJECT), IfMatch=holder["etag"],
                               missing_ok="NoSuchKey", resource=self.storage.location.key(LOCK_OBJECT))
        except AwsCallError as exc:
            if exc.code != PRECONDITION_FAILED:
                raise
            raise StateLockedError(
                f"state {self.storage.name} changed hands while you were asked; it is now locked by "
                f"{self.describe_holder()}; nothing was broken",
                hint="run `drkit state unlock` again",
            ) from None
        described = self.describe_holder(holder)
        shown = {k: v for k, v in holder.items() if k not in ("token",)}
        where = self.storage.append_record(f"journals/unlock/{new_run_id()}", {
            "event": "lock broken", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "broken_by": whoami(self.storage), "holder": shown})
        return f"{described}; journaled at {where}"


def _age_seconds(response: dict[str, Any]) -> float:
    """Seconds since the object was last written, by S3's own clock when it sent a Date header
    (so a skewed local clock cannot make a live lease look expired)."""
    modified = response.get("LastModified")
    if modified is None:
        return float("inf")
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        now = parsedate_to_datetime(date) if date else datetime.now(timezone.utc)
    except (TypeError, ValueError):
        now = datetime.now(timezone.utc)
    return max(0.0, (now - modified).total_seconds())
