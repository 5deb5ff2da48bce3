"""Runbook files: one TOML file per runbook in `runbooks/`, read and checked before any AWS call.

TOML because a runbook is reviewed in a pull request like code: plain keys, comments, multi-line
strings for the "why" and "what to do", and Python 3.11 reads it without a new dependency.

A runbook has a name, a title, a summary, a default target ("other": the region that is not
active now), whether `verify` runs before and after, and steps. A step has an id, a title, why it
exists, an `action` (what it changes) and/or a `check` (the read that proves it worked), or a
`gate` (every reason not to go, listed at once); a timeout; and what to do when it fails.
Consecutive steps with the same `group` run in parallel. `toward = "source"` points a step at
the region the run started from (a drill switching back); `mode` limits a step to one mode of
the runbook (`drill --mode failover`); `avoid = "source"` refuses any call into the source region
and any Route 53 control-plane call while the step runs (a failover never touches the impaired
region).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drkit.errors import UserInputError

DURATION = re.compile(r"^(?P<n>\d+(\.\d+)?)(?P<unit>s|m|h)$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
STEP_KEYS = {"id", "title", "why", "action", "check", "gate", "timeout", "on_failure", "group", "toward", "mode",
             "avoid"}
RUNBOOK_KEYS = {"name", "title", "summary", "target", "verify", "modes", "avoid", "steps"}


@dataclass(frozen=True)
class StepSpec:
    id: str
    title: str
    why: str
    timeout: float
    on_failure: str
    action: str | None = None
    check: str | None = None
    gate: str | None = None
    group: str | None = None
    toward: str = "target"  # or "source"
    mode: str | None = None
    avoid: str | None = None  # "source": no call into the source region, no Route 53 control plane


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    summary: str
    path: Path
    steps: tuple[StepSpec, ...]
    target: str = "other"
    verify: bool = False
    modes: tuple[str, ...] = ()
    avoid: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def steps_for(self, mode: str | None) -> list[StepSpec]:
        return [s for s in self.steps if s.mode is None or s.mode == (mode or self.default_mode)]

    @property
    def default_mode(self) -> str | None:
        return self.modes[0] if self.modes else None

    def batches(self, mode: str | None) -> list[list[StepSpec]]:
        """Steps in order; consecutive steps of one group form one batch that runs in parallel."""
        batches: list[list[StepSpec]] = []
        for step in self.steps_for(mode):
            if batches and step.group and batches[-1][0].group == step.group:
                batches[-1].append(step)
            else:
                batches.append([step])
        return batches


def seconds(text: Any, where: str) -> float:
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        return float(text)
    match = DURATION.match(str(text).strip())
    if not match:
        raise UserInputError(f"{where}: timeout {text!r} is not a duration such as 90s, 30m or 2h")
    return float(match["n"]) * UNIT_SECONDS[match["unit"]]


def runbooks_dir() -> Path:
    """`runbooks/` of this checkout (beside the `drkit` package)."""
    return Path(__file__).resolve().parents[2] / "runbooks"


def load_runbook(path: Path, known: "Known | None" = None) -> Runbook:
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserInputError(f"runbook {where} cannot be read: {exc}") from None
    unknown = set(data) - RUNBOOK_KEYS
    if unknown:
        raise UserInputError(f"runbook {where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "title", "summary"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise UserInputError(f"runbook {where}: `{key}` must be a non-empty string")
    if data["name"] != path.stem:
        raise UserInputError(f"runbook {where}: name {data['name']!r} must match the file name {path.stem!r}")
    steps, ids = [], set()
    for index, raw in enumerate(data.get("steps") or []):
        step = _step(raw, f"{where} step {index + 1}", known)
        if step.id in ids:
            raise UserInputError(f"runbook {where}: step id {step.id!r} is used twice")
        ids.add(step.id)
        steps.append(step)
    if not steps:
        raise UserInputError(f"runbook {where} has no steps")
    modes = tuple(data.get("modes") or ())
    for step in steps:
        if step.mode is not None and step.mode not in modes:
            raise UserInputError(f"runbook {where}: step {step.id!r} names mode {step.mode!r}, not one of {list(modes)}")
    return Runbook(data["name"], data["title"].strip(), data["summary"].strip(), path, tuple(steps),
                   target=data.get("target", "other"), verify=bool(data.get("verify", False)), modes=modes,
                   avoid=data.get("avoid"), raw=data)


@dataclass(frozen=True)
class Known:
    """The action, check and gate names the engine has (drkit/runbook/actions.py)."""

    actions: frozenset[str]
    checks: frozenset[str]
    gates: frozenset[str]


def _step(raw: Any, where: str, known: Known | None) -> StepSpec:
    if not isinstance(raw, dict):
        raise UserInputError(f"{where}: a step must be a table")
    unknown = set(raw) - STEP_KEYS
    if unknown:
        raise UserInputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("id", "title", "why", "on_failure", "timeout"):
        if not raw.get(key):
            raise UserInputError(f"{where}: `{key}` is required")
    if not (raw.get("action") or raw.get("check") or raw.get("gate")):
        raise UserInputError(f"{where} ({raw['id']}): needs an action, a check or a gate")
    if raw.get("action") and not raw.get("check"):
        raise UserInputError(f"{where} ({raw['id']}): an action needs the check that proves it worked")
    if raw.get("toward", "target") not in ("target", "source"):
        raise UserInputError(f"{where} ({raw['id']}): toward must be 'target' or 'source'")
    if known is not None:
        for kind, names in (("action", known.actions), ("check", known.checks), ("gate", known.gates)):
            if raw.get(kind) and raw[kind] not in names:
                raise UserInputError(f"{where} ({raw['id']}): unknown {kind} {raw[kind]!r}; known: {', '.join(sorted(names))}")
    return StepSpec(
        id=str(raw["id"]), title=str(raw["title"]), why=" ".join(str(raw["why"]).split()),
        timeout=seconds(raw["timeout"], f"{where} ({raw['id']})"), on_failure=" ".join(str(raw["on_failure"]).split()),
        action=raw.get("action"), check=raw.get("check"), gate=raw.get("gate"), group=raw.get("group"),
        toward=raw.get("toward", "target"), mode=raw.get("mode"), avoid=raw.get("avoid"),
    )


def list_runbooks(directory: Path | None = None, known: Known | None = None) -> list[Runbook]:
    directory = directory or runbooks_dir()
    return [load_runbook(p, known) for p in sorted(directory.glob("*.toml"))]


def find_runbook(name: str, directory: Path | None = None, known: Known | None = None) -> Runbook:
    directory = directory or runbooks_dir()
    path = directory / f"{name}.toml"
    if not re.match(r"^[a-z][a-z0-9-]*$", name) or not path.is_file():
        names = ", ".join(p.stem for p in sorted(directory.glob("*.toml")))
        raise UserInputError(f"no runbook {name!r} (known: {names})", hint="`drkit runbook list`")
    return load_runbook(path, known)
