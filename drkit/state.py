"""The state: what drkit created, saved after every resource, and how it is loaded and checked.

The state is versioned JSON, kept by a storage (drkit.storage): a local file, written to a
temporary file, fsynced and renamed over the old one, so a run killed at any instant leaves
either the old or the new state, never a torn one; or an S3 object, replaced by a
compare-and-swap write. The state is a cache of what exists, not the only record: every step
also finds its resources by tags, so a lost state never means duplicates.

The local lock and the atomic write live in drkit.storage.local; they are importable from here.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from drkit.config import Config
from drkit.errors import UserInputError
from drkit.storage.base import Storage
from drkit.storage.local import LocalStorage, StateLock, write_atomically  # noqa: F401  (re-exported)

STATE_VERSION = 1


class State:
    """The in-memory state, saved to disk on every change. Safe to share between step threads."""

    def __init__(self, path: Path, data: dict[str, Any], *, persist: bool = True,
                 storage: Storage | None = None) -> None:
        self.path = path
        self._data = data
        self._persist = persist
        self._storage = storage  # None: the local file at `path`
        self._lock = threading.RLock()

    @classmethod
    def new(cls, path: Path, config: Config, *, persist: bool = True, storage: Storage | None = None) -> "State":
        data = {
            "version": STATE_VERSION,
            "env": config.env,
            "primary_region": config.primary_region,
            "dr_region": config.dr_region,
            "steps": {},
        }
        return cls(path, data, persist=persist, storage=storage)

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

    def active_role(self) -> str:
        """The role ('primary' or 'dr') whose region takes writes now: 'primary' until a runbook
        switched it. Names and home regions never change; only this does."""
        with self._lock:
            return str(self._data.get("active", {}).get("role", "primary"))

    def transitions(self) -> list[dict[str, Any]]:
        """Every change of the active region, oldest first (when, from, to, which run)."""
        with self._lock:
            return [dict(t) for t in self._data.get("transitions", [])]

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

    def set_active(self, role: str, region: str, *, run_id: str, runbook: str, at: str) -> bool:
        """Make `role` the active one and record the transition; False (and no write) if it
        already was. A runbook calls this once its target region takes writes."""
        with self._lock:
            before = self.active_role()
            if before == role:
                return False
            self._data["active"] = {"role": role, "region": region, "since": at, "run_id": run_id}
            self._data.setdefault("transitions", []).append(
                {"at": at, "from": before, "to": role, "region": region, "run_id": run_id, "runbook": runbook})
            self._save()
            return True

    def forget_active_if_empty(self) -> None:
        """A stack torn down to nothing has no active region: a new provision starts on the primary
        (the transitions stay, as history)."""
        with self._lock:
            if not self._data["steps"] and "active" in self._data:
                del self._data["active"]
                self._save()

    def apply_journaled(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply the active-region changes runbooks journaled but could not write (`state.active`
        records with recorded=false: degraded mode, --no-state), oldest first; returns those
        applied. One whose run is in the transitions already, or older than the latest recorded
        transition (a later change wins), is left alone: applying twice changes nothing."""
        journaled = sorted((r for r in records if r.get("type") == "state.active" and r.get("recorded") is False
                            and r.get("to_role") in ("primary", "dr")), key=lambda r: str(r.get("at")))
        applied = []
        for record in journaled:
            with self._lock:
                transitions = self.transitions()
                if any(t.get("run_id") == record.get("run_id") for t in transitions):
                    continue
                if transitions and str(transitions[-1].get("at")) > str(record.get("at")):
                    continue
                if self.set_active(record["to_role"], str(record.get("region")), run_id=str(record.get("run_id")),
                                   runbook=str(record.get("runbook")), at=str(record.get("at"))):
                    applied.append(record)
        return applied

    def clear_step(self, step: str) -> None:
        with self._lock:
            if step in self._data["steps"]:
                del self._data["steps"][step]
                self._save()

    def _step(self, step: str) -> dict[str, Any]:
        return self._data["steps"].setdefault(step, {})

    def text(self) -> str:
        with self._lock:
            return json.dumps(self._data, indent=2, sort_keys=True) + "\n"

    def _save(self) -> None:
        if not self._persist:
            return
        if self._storage is None:
            write_atomically(self.path, self.text())
        else:
            self._storage.write_state(self.text())


def load_state(config: Config, *, persist: bool = True, storage: Storage | None = None) -> State:
    """Load the state for `config` (from `storage`, or the one `config` names), or start a new
    one; refuse a corrupt or foreign state."""
    if storage is None and config.state_location is not None:
        from drkit.storage import open_storage

        storage = open_storage(config)
    if storage is None or isinstance(storage, LocalStorage):
        path = config.state_path
        if not path.exists():
            return State.new(path, config, persist=persist, storage=storage)
        text: str | bytes = path.read_bytes()
    else:
        path = storage.name  # type: ignore[assignment]  (shown in messages)
        found = storage.read_state()
        if found is None:
            return State.new(config.state_path, config, persist=persist, storage=storage)
        text = found
    return parse_state(text, path, config, persist=persist, storage=storage)


def parse_state(text: str | bytes, path: Any, config: Config, *, persist: bool = True,
                storage: Storage | None = None) -> State:
    """The state in `text`, checked: refuse a corrupt, malformed or foreign document."""
    try:
        data = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
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
    return State(config.state_path, data, persist=persist, storage=storage)


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
