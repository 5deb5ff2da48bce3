"""What a step is: observe (read-only) -> decide (pure) -> apply -> record.

A step owns an ordered set of resources in one region role. `observe` reads what exists (by the
ids in state and by drkit's tags), `desired` says what should exist, and `decide` -- a pure
function -- turns the two into `Change`s. The same changes are the plan (`drkit plan`), the
findings (`drkit verify`) and the work (`drkit provision`); teardown is decided the same way.
Each change is applied by the step method `<action>_<kind>`, which records the resource in the
state file the moment it exists.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

from drkit.aws import AwsGateway
from drkit.config import Config
from drkit.errors import InterruptedRun, RefusedChangeError
from drkit.state import State
from drkit.tags import ownership_tags, resource_tags
from drkit.waiters import Waiter

CREATE = "create"
UPDATE = "update"
REPLACE = "replace"  # a difference drkit refuses to repair in place
WAIT = "wait"  # a resource in a transitional state drkit waits out
DELETE = "delete"
SKIP = "skip"  # teardown leaves a resource drkit cannot prove it owns
DUPLICATE = "duplicate"  # the attribute of a DELETE that removes an extra copy of a resource

MUTATING_ACTIONS = frozenset({CREATE, UPDATE, DELETE})

# Observed status values.
AVAILABLE = "available"
PENDING = "pending"
FAILED = "failed"
DELETING = "deleting"
ABSENT = "absent"


@dataclass(frozen=True)
class Observed:
    """One resource as AWS reports it now."""

    kind: str
    key: str
    id: str | None = None
    status: str = AVAILABLE
    attrs: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    owned: bool = True  # drkit's ownership tags are on it

    @property
    def exists(self) -> bool:
        return self.id is not None and self.status != ABSENT


@dataclass(frozen=True)
class Desired:
    """One resource as drkit wants it."""

    kind: str
    key: str
    name: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    immutable: frozenset[str] = frozenset()
    region: str | None = None  # where it lives, when not in the step's own region (a replica)


@dataclass(frozen=True)
class Observation:
    """Everything a step observed: its resources, and facts the desired state depends on."""

    resources: Mapping[str, Observed]
    facts: Mapping[str, Any] = field(default_factory=dict)
    # key -> ids of further resources carrying drkit's tags for that key (a lost create answer,
    # then a resend): provably drkit's, so provision removes them and teardown deletes them.
    duplicates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, key: str, kind: str = "") -> Observed:
        return self.resources.get(key) or Observed(kind=kind, key=key, status=ABSENT)

    def id_of(self, key: str) -> str | None:
        """The id of a usable resource (not one that is failed or going away)."""
        found = self.resources.get(key)
        return found.id if found and found.exists and found.status not in (FAILED, DELETING) else None


@dataclass(frozen=True)
class Change:
    """One thing that differs: a planned action, and (from verify) a finding."""

    step: str
    region: str
    kind: str
    key: str
    name: str
    action: str
    attribute: str | None = None
    expected: Any = None
    actual: Any = None
    resource_id: str | None = None
    note: str = ""

    def describe(self) -> str:
        what = f"{self.kind.replace('_', ' ')} {self.name}"
        if self.resource_id:
            what += f" ({self.resource_id})"
        if self.action == CREATE:
            text = f"create {what}"
        elif self.action == DELETE and self.attribute == DUPLICATE:
            text = f"delete duplicate {what}"
        elif self.action == DELETE:
            text = f"delete {what}"
        elif self.action == WAIT:
            text = f"wait for {what}: {self.actual}"
        elif self.action == SKIP:
            text = f"leave {what}"
        else:
            verb = "replace needed (refused)" if self.action == REPLACE else "update"
            text = f"{verb} {what}: {self.attribute} expected {self.expected!r}, actual {self.actual!r}"
        return f"{text} -- {self.note}" if self.note else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "region": self.region,
            "kind": self.kind,
            "key": self.key,
            "name": self.name,
            "action": self.action,
            "attribute": self.attribute,
            "expected": self.expected,
            "actual": self.actual,
            "resource_id": self.resource_id,
            "note": self.note,
            "description": self.describe(),
        }


def known(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The desired attributes whose value is known now (None: not yet). Another step's output is
    unknown until that step has run with this state (a first run, or a lost state file); such an
    attribute is left out of the comparison rather than compared with a placeholder, which would
    read as drift."""
    return {k: v for k, v in attrs.items() if v is not None}


def decide(
    step: str,
    region: str,
    desired: Sequence[Desired],
    observation: Observation,
    recorded: Mapping[str, str | None] | None = None,
) -> list[Change]:
    """The changes that turn what was observed into what is desired. Pure: no AWS, no state.

    `recorded` (resource key -> id in the state file) lets drkit adopt a resource whose ownership
    tags were lost only when the state proves drkit created it. Anything else that exists under
    drkit's name without drkit's tags is refused, never taken over: teardown would delete it.
    """
    changes: list[Change] = []
    step_region = region
    for want in desired:
        have = observation.get(want.key, want.kind)
        region = want.region or step_region

        def change(action: str, **kw: Any) -> Change:
            return Change(step, region, want.kind, want.key, want.name, action, resource_id=have.id, **kw)

        changes += duplicate_deletes(step, region, want, have.id, observation)
        foreign = have.exists and not have.owned and recorded is not None and recorded.get(want.key) != have.id
        if foreign:
            changes.append(change(REPLACE, attribute="ownership", expected="drkit's ownership tags",
                                  actual="none", note="it exists but is not drkit's; drkit will not adopt it"))
            continue

        if not have.exists or have.status in (FAILED, DELETING):
            # resource_id names the failed or departing predecessor, for handlers that must
            # wait for it to be gone (a deleting NAT holds its Elastic IP until then).
            note = f"replaces {have.id}, which is {have.status}" if have.exists else ""
            changes.append(Change(step, region, want.kind, want.key, want.name, CREATE,
                                  expected=dict(want.attrs), resource_id=have.id if have.exists else None,
                                  note=note))
            continue
        if have.status == PENDING:
            changes.append(change(WAIT, attribute="status", expected=AVAILABLE, actual=have.status))
        for attribute, expected in want.attrs.items():
            actual = have.attrs.get(attribute)
            if actual != expected:
                action = REPLACE if attribute in want.immutable else UPDATE
                changes.append(change(action, attribute=attribute, expected=expected, actual=actual))
        missing = {k: v for k, v in want.tags.items() if have.tags.get(k) != v}
        if missing:
            actual_tags = {k: have.tags.get(k) for k in missing}
            changes.append(change(UPDATE, attribute="tags", expected=missing, actual=actual_tags))
    return changes


def duplicate_deletes(step: str, region: str, want: Desired, kept: str | None, observation: Observation) -> list[Change]:
    """DELETEs for the extra copies of one resource, naming the copy drkit keeps."""
    note = f"also tagged as drkit's {want.key!r}" + (f"; drkit keeps {kept}" if kept else "")
    return [Change(step, region, want.kind, want.key, want.name, DELETE, attribute=DUPLICATE, resource_id=extra,
                   note=note)
            for extra in observation.duplicates.get(want.key, ())]


def refuse_replacements(changes: Sequence[Change]) -> None:
    """Stop before any change if one of them would need a replacement (drkit never replaces)."""
    refused = [c for c in changes if c.action == REPLACE]
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise RefusedChangeError(
            f"{refused[0].step}: {refused[0].describe()}{more}",
            hint="drkit does not replace resources in place; revert the configuration or tear down first",
        )


def decide_teardown(step: str, region: str, desired: Sequence[Desired], observation: Observation) -> list[Change]:
    """Delete what exists, in reverse creation order; leave what drkit cannot prove it owns."""
    changes: list[Change] = []
    for want in reversed(desired):
        have = observation.resources.get(want.key)
        where = want.region or region
        changes += duplicate_deletes(step, where, want, have.id if have else None, observation)
        if have is None or not have.exists:
            continue
        if not have.owned:
            note = "its drkit ownership tags are gone; delete it by hand if it is drkit's"
            changes.append(Change(step, where, want.kind, want.key, want.name, SKIP, resource_id=have.id, note=note))
        else:
            changes.append(Change(step, where, want.kind, want.key, want.name, DELETE, resource_id=have.id))
    return changes


@dataclass(frozen=True)
class ProbeResult:
    """What a deep-verify canary measured. `ok` is None when there was no data to judge by:
    reported as such, and never counted as a pass."""

    step: str
    region: str
    check: str
    ok: bool | None
    measured: str
    detail: str = ""
    informational: bool = False  # a status `verify` reports (which region DNS answers), never a finding

    def describe(self) -> str:
        if self.informational:
            return f"{self.check}: {self.measured}" + (f" ({self.detail})" if self.detail else "")
        verdict = {True: "ok", False: "FAILED", None: "NO DATA"}[self.ok]
        return f"{verdict}: {self.check}: {self.measured}" + (f" ({self.detail})" if self.detail else "")

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "region": self.region, "check": self.check, "ok": self.ok,
                "measured": self.measured, "detail": self.detail, "description": self.describe()}


@dataclass(frozen=True)
class Assessment:
    """One observation of a step and what it implies."""

    observation: Observation
    desired: list[Desired]
    changes: list[Change]


@dataclass
class StepContext:
    """What a step runs with: no globals, everything passed in."""

    config: Config
    aws: AwsGateway
    state: State
    waiter: Waiter
    log: Any
    step: "Step"
    force: bool = False  # teardown --force: delete what would otherwise be kept for recovery
    # Told each time this step publishes its outputs mid-run, so that steps which `read()` only
    # those outputs can start before this step is done (the runner wires it to the pipeline).
    published: Callable[[str], None] = field(default=lambda step_key: None, repr=False)

    def check_interrupt(self) -> None:
        """Stop between changes once the user has interrupted the run."""
        if self.waiter.interrupt.is_set():
            raise InterruptedRun(f"{self.step.key}: interrupted; the state file is up to date, re-run to resume")

    @property
    def region(self) -> str:
        return self.config.region(self.step.role)

    @property
    def active_role(self) -> str:
        """The role whose region takes writes now (the state's active region; 'primary' until a
        runbook switched it): what verify judges the Aurora writer and the DNS switch by."""
        return self.state.active_role()

    def call(self, service: str, operation: str, **kwargs: Any) -> Any:
        """An AWS call in this step's region."""
        return self.aws.call(service, self.region, operation, **kwargs)

    def recorded_id(self, key: str) -> str | None:
        return self.state.resource_id(self.step.key, key)

    def record(self, key: str, kind: str, resource_id: str, **extra: Any) -> None:
        self.state.record(self.step.key, key, kind, resource_id, **extra)
        self.log.info("resource.recorded", step=self.step.key, key=key, kind=kind, id=resource_id)

    def owner_tags(self) -> dict[str, str]:
        return ownership_tags(self.config.env, self.step.dr_role, self.step.name)

    def tags_for(self, key: str, name: str) -> dict[str, str]:
        return resource_tags(self.config.env, self.step.dr_role, self.step.name, key, name)

    def dependency_output(self, step_key: str, name: str) -> Any:
        return self.state.outputs(step_key).get(name)


class Step(abc.ABC):
    """A unit of the pipeline: one family of resources in one region role."""

    name: ClassVar[str]

    def __init__(self, role: str) -> None:
        self.role = role

    @property
    def key(self) -> str:
        return f"{self.name}:{self.role}"

    @property
    def dr_role(self) -> str:
        """The DR-Role tag value: primary, dr or global."""
        return self.role

    def depends_on(self) -> tuple[str, ...]:
        """Keys of the steps whose outputs this one reads."""
        return ()

    def reads(self) -> dict[str, tuple[str, ...]]:
        """For a dependency whose outputs are all this step needs of it: those output names.
        Such a step may start as soon as the dependency has published them in this run (the
        security groups need the VPC's id, not its NAT gateway being available). A dependency
        not named here must be done first."""
        return {}

    # Read-only ------------------------------------------------------------------------------
    @abc.abstractmethod
    def observe(self, ctx: StepContext) -> Observation:
        """Read what exists. Makes no mutating call and writes no state."""

    @abc.abstractmethod
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        """What should exist, in creation order."""

    def checks(self, ctx: StepContext, observation: Observation) -> list[Change]:
        """Findings that are not a single attribute's difference (override where needed)."""
        return []

    def assess(self, ctx: StepContext) -> Assessment:
        observation = self.observe(ctx)
        desired = self.desired(ctx, observation)
        recorded = {want.key: ctx.recorded_id(want.key) for want in desired}
        return Assessment(observation, desired, decide(self.key, ctx.region, desired, observation, recorded))

    def plan(self, ctx: StepContext) -> list[Change]:
        return self.assess(ctx).changes

    def verify(self, ctx: StepContext) -> list[Change]:
        assessment = self.assess(ctx)
        return assessment.changes + self.checks(ctx, assessment.observation)

    def plan_teardown(self, ctx: StepContext) -> list[Change]:
        observation = self.observe(ctx)
        return decide_teardown(self.key, ctx.region, self.desired(ctx, observation), observation)

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        """Values later steps and `drkit outputs` read, derived from the state."""
        return {}

    def status(self, ctx: StepContext) -> list[ProbeResult]:
        """Operational state `verify` reports without judging it (health, the region DNS answers
        now): informational ProbeResults. Read-only."""
        return []

    def probe(self, ctx: StepContext) -> list[ProbeResult]:
        """Deep verify: prove the resources work (replication, ...) with canaries that clean up
        after themselves. Only runs on a step whose plain verify found nothing."""
        return []

    # Mutating -------------------------------------------------------------------------------
    def create(self, ctx: StepContext, assessment: Assessment | None = None) -> list[Change]:
        """Converge: adopt what exists, refuse replacements, apply the rest in order.

        `assessment` lets a caller that has just observed this step (and found nothing to
        change) skip a second round of reads.
        """
        assessment = assessment or self.assess(ctx)
        self.adopt(ctx, assessment.desired, assessment.observation)
        changes = assessment.changes
        refuse_replacements(changes)
        for change in changes:
            ctx.check_interrupt()
            self.apply(ctx, change)
            self.publish(ctx)
        self.publish(ctx)
        return changes

    def publish(self, ctx: StepContext) -> None:
        """Save the outputs known so far, so later steps (and `reads()` ones at once) see them."""
        ctx.state.set_outputs(self.key, self.outputs(ctx))
        ctx.published(self.key)

    def delete(self, ctx: StepContext) -> list[Change]:
        changes = self.plan_teardown(ctx)
        for change in changes:
            if change.action == DELETE:
                ctx.check_interrupt()
                self.apply(ctx, change)
                if change.attribute != DUPLICATE:  # the state never recorded a duplicate
                    ctx.state.forget(self.key, change.key)
        if not any(c.action == SKIP for c in changes):
            ctx.state.clear_step(self.key)
        return changes

    def recorded_extras(self, observed: Observed) -> dict[str, Any]:
        """Values besides the id that the state keeps for a resource (an ARN, an endpoint that
        outputs need), taken from its observation. Create handlers record the same ones."""
        return {}

    def adopt(self, ctx: StepContext, desired: Sequence[Desired], observation: Observation) -> None:
        """Record what exists whenever the state's entry differs from it: resources found by tags
        that the state did not know (a lost or stale state), or whose extras it lost."""
        for want in desired:
            have = observation.resources.get(want.key)
            if have is None or not have.exists:
                continue
            entry = {"kind": want.kind, "id": have.id, **self.recorded_extras(have)}
            if ctx.state.resource(self.key, want.key) != entry:
                if ctx.recorded_id(want.key) != have.id:
                    ctx.log.info("resource.adopted", step=self.key, key=want.key, id=have.id)
                ctx.record(want.key, want.kind, have.id, **self.recorded_extras(have))

    def apply(self, ctx: StepContext, change: Change) -> None:
        handler = getattr(self, f"{change.action}_{change.kind}", None)
        if handler is None:
            raise NotImplementedError(f"{type(self).__name__} cannot {change.action} a {change.kind}")
        handler(ctx, change)
