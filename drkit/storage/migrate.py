"""`drkit state migrate`: move a state between a local file and S3 (either way), under both locks.

The destination is written first (in S3 with If-None-Match: *, so an existing state is never
overwritten), then read back and compared; only then is the source retired. A run interrupted
midway leaves the source intact and locked out only until its lock is released.
"""

from __future__ import annotations

import json
from contextlib import ExitStack

from drkit.aws import AuditLog
from drkit.config import Config
from drkit.errors import DrkitError, UserInputError
from drkit.state import parse_state
from drkit.storage import new_run_id, open_storage
from drkit.storage.base import Storage
from drkit.storage.local import LocalStorage, audit_path


def migrate_state(source_config: Config, target_config: Config) -> str:
    source, target = open_storage(source_config), open_storage(target_config)
    if source.name == target.name:
        raise UserInputError(f"the state is already at {target.name}")
    for storage in (source, target):
        storage.require_writable("state migrate")
    with ExitStack() as held:
        held.enter_context(source.lock("state migrate"))
        held.enter_context(target.lock("state migrate"))
        text = source.read_state()
        if text is None:
            raise UserInputError(f"there is no state at {source.name}: nothing to migrate")
        parse_state(text, source.name, source_config, persist=False)  # refuse a corrupt or foreign state
        if target.read_state() is not None:
            raise UserInputError(f"{target.name} already holds a state; nothing was changed",
                                 hint="choose another destination, or move that state aside first")
        target.write_state(text)
        if target.read_state() != text:
            raise DrkitError(f"the state written to {target.name} does not read back the same; the source "
                             f"{source.name} was left as it was")
        audit = _copy_audit(source, target, source_config, target_config)
        journal = _copy_streams(source, target, "journals")
        retired = _retire(source)
    return (f"migrated the state from {source.name} to {target.name} ({audit} audit and {journal} journal "
            f"record(s) copied); {retired}\nuse --state {target_config.state_url or target_config.state_path}")


def _copy_audit(source: Storage, target: Storage, source_config: Config, target_config: Config) -> int:
    """The audit log: lines of the local file, or the S3 records of every run."""
    if isinstance(source, LocalStorage):
        path = audit_path(source_config.state_path)
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
            if path.exists() else []
    else:
        records = [r for stream in source.streams("audit") for r in source.read_records(stream)]
    if isinstance(target, LocalStorage):
        sink = AuditLog(audit_path(target_config.state_path))
        for record in records:
            sink.append(record)
    else:
        stream = f"audit/{new_run_id()}-migrated"
        for record in records:
            target.append_record(stream, record)
    return len(records)


def _copy_streams(source: Storage, target: Storage, under: str) -> int:
    count = 0
    for stream in source.streams(under):
        for record in source.read_records(stream):
            target.append_record(stream, record)
            count += 1
    return count


def _retire(source: Storage) -> str:
    if isinstance(source, LocalStorage):
        kept = source.path.with_name(source.path.name + ".migrated")
        source.path.replace(kept)
        return f"the old state file is kept as {kept}"
    from drkit.storage.s3 import STATE_OBJECT

    key = source.location.key(STATE_OBJECT)
    source._home("delete_object", Key=key, IfMatch=source._etag, resource=key)
    return f"the old state object {source.name}/{STATE_OBJECT} is deleted (its versions stay in the bucket)"
