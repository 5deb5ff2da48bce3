"""drkit.step.decide / decide_teardown / Observation.id_of: pure tables, no AWS."""

from __future__ import annotations

import pytest

from drkit.step import (
    ABSENT, AVAILABLE, CREATE, DELETE, DELETING, FAILED, PENDING, REPLACE, SKIP, UPDATE, WAIT,
    Change, Desired, Observation, Observed, decide, decide_teardown,
)

STEP, REGION = "ensure_vpc:primary", "us-east-1"
TAGS = {"Name": "vpc-primary-dev", "ManagedBy": "drkit", "Environment": "dev"}
ATTRS = {"cidr_block": "10.0.0.0/16", "enable_dns_hostnames": True}


def want(key: str = "vpc", attrs=ATTRS, tags=TAGS, immutable=("cidr_block",)) -> Desired:
    return Desired("vpc", key, f"name-{key}", dict(attrs), dict(tags), frozenset(immutable))


def have(key: str = "vpc", id: str | None = "vpc-1", status: str = AVAILABLE, attrs=ATTRS, tags=TAGS,
         owned: bool = True) -> Observed:
    return Observed("vpc", key, id, status, dict(attrs), dict(tags), owned)


def obs(*items: Observed) -> Observation:
    return Observation({o.key: o for o in items})


def summary(changes: list[Change]) -> list[tuple]:
    return [(c.key, c.action, c.attribute, c.expected, c.actual, c.resource_id, c.note) for c in changes]


@pytest.mark.parametrize(
    "observation, expected",
    [
        pytest.param(obs(), [("vpc", CREATE, None, ATTRS, None, None, "")], id="absent-not-observed"),
        pytest.param(obs(have(id=None)), [("vpc", CREATE, None, ATTRS, None, None, "")], id="no-id"),
        pytest.param(obs(have(status=ABSENT)), [("vpc", CREATE, None, ATTRS, None, None, "")], id="status-absent"),
        pytest.param(obs(have(status=FAILED)),
                     [("vpc", CREATE, None, ATTRS, None, "vpc-1", "replaces vpc-1, which is failed")], id="failed"),
        pytest.param(obs(have(status=DELETING)),
                     [("vpc", CREATE, None, ATTRS, None, "vpc-1", "replaces vpc-1, which is deleting")], id="deleting"),
        pytest.param(obs(have(status=PENDING)),
                     [("vpc", WAIT, "status", AVAILABLE, PENDING, "vpc-1", "")], id="pending"),
        pytest.param(obs(have()), [], id="fully-matching"),
        pytest.param(obs(have(tags={**TAGS, "CostCenter": "42", "Owner": "me"})), [],
                     id="extra-user-tags-are-not-a-change"),
        pytest.param(obs(have(attrs={**ATTRS, "enable_dns_hostnames": False})),
                     [("vpc", UPDATE, "enable_dns_hostnames", True, False, "vpc-1", "")], id="mutable-diff"),
        pytest.param(obs(have(attrs={"cidr_block": "10.0.0.0/16"})),
                     [("vpc", UPDATE, "enable_dns_hostnames", True, None, "vpc-1", "")], id="mutable-attr-missing"),
        pytest.param(obs(have(attrs={**ATTRS, "cidr_block": "10.9.0.0/16"})),
                     [("vpc", REPLACE, "cidr_block", "10.0.0.0/16", "10.9.0.0/16", "vpc-1", "")], id="immutable-diff"),
        pytest.param(obs(have(attrs={**ATTRS, "unrelated": 1})), [], id="extra-observed-attr-ignored"),
        pytest.param(obs(have(tags={k: v for k, v in TAGS.items() if k != "Name"})),
                     [("vpc", UPDATE, "tags", {"Name": "vpc-primary-dev"}, {"Name": None}, "vpc-1", "")],
                     id="missing-tag"),
        pytest.param(obs(have(tags={"Name": "other", "ManagedBy": "drkit"})),
                     [("vpc", UPDATE, "tags", {"Name": "vpc-primary-dev", "Environment": "dev"},
                       {"Name": "other", "Environment": None}, "vpc-1", "")],
                     id="different-and-missing-tags-one-change"),
        pytest.param(obs(have(status=PENDING, attrs={**ATTRS, "enable_dns_hostnames": False})),
                     [("vpc", WAIT, "status", AVAILABLE, PENDING, "vpc-1", ""),
                      ("vpc", UPDATE, "enable_dns_hostnames", True, False, "vpc-1", "")],
                     id="pending-and-diff"),
        pytest.param(obs(have(status=FAILED, attrs={"cidr_block": "x"}, tags={})),
                     [("vpc", CREATE, None, ATTRS, None, "vpc-1", "replaces vpc-1, which is failed")],
                     id="failed-ignores-attr-and-tag-diffs"),
        pytest.param(obs(have(key="other")), [("vpc", CREATE, None, ATTRS, None, None, "")],
                     id="other-key-does-not-count"),
    ],
)
def test_decide_single_resource(observation: Observation, expected: list[tuple]) -> None:
    assert summary(decide(STEP, REGION, [want()], observation)) == expected


def test_decide_change_fields_and_order() -> None:
    desired = [want("a"), want("b"), want("c")]
    observation = obs(have("b", id="id-b", attrs={**ATTRS, "cidr_block": "10.1.0.0/16"}, tags={}),
                      have("c", id="id-c"))
    changes = decide(STEP, REGION, desired, observation)
    assert [(c.key, c.action, c.attribute) for c in changes] == [
        ("a", CREATE, None), ("b", REPLACE, "cidr_block"), ("b", UPDATE, "tags")]
    assert all(c.step == STEP and c.region == REGION and c.kind == "vpc" for c in changes)
    assert [c.name for c in changes] == ["name-a", "name-b", "name-b"]
    assert changes[2].expected == TAGS
    # a create carries the attributes to create with (what apply reads), and no resource id
    assert (changes[0].expected, changes[0].resource_id, changes[0].actual) == (ATTRS, None, None)


def test_decide_is_pure() -> None:
    observation = obs(have(attrs={"cidr_block": "x"}))
    desired = [want()]
    assert decide(STEP, REGION, desired, observation) == decide(STEP, REGION, desired, observation)
    assert observation.resources["vpc"].attrs == {"cidr_block": "x"}


@pytest.mark.parametrize(
    "observation, expected",
    [
        pytest.param(obs(), [], id="nothing-exists"),
        pytest.param(obs(have("a", id=None), have("b", status=ABSENT)), [], id="absent-nothing"),
        pytest.param(obs(have("a", id="id-a"), have("b", id="id-b"), have("c", id="id-c")),
                     [("c", DELETE, "id-c"), ("b", DELETE, "id-b"), ("a", DELETE, "id-a")], id="reverse-order"),
        pytest.param(obs(have("a", id="id-a"), have("c", id="id-c")),
                     [("c", DELETE, "id-c"), ("a", DELETE, "id-a")], id="gap"),
        pytest.param(obs(have("a", id="id-a"), have("b", id="id-b", owned=False)),
                     [("b", SKIP, "id-b"), ("a", DELETE, "id-a")], id="not-owned-skipped"),
        pytest.param(obs(have("a", id="id-a", status=FAILED), have("b", id="id-b", status=PENDING),
                         have("c", id="id-c", status=DELETING)),
                     [("c", DELETE, "id-c"), ("b", DELETE, "id-b"), ("a", DELETE, "id-a")],
                     id="transitional-still-deleted"),
        pytest.param(obs(have("zzz", id="id-z")), [], id="undesired-key-ignored"),
    ],
)
def test_decide_teardown(observation: Observation, expected: list[tuple]) -> None:
    desired = [want("a"), want("b"), want("c")]
    changes = decide_teardown(STEP, REGION, desired, observation)
    assert [(c.key, c.action, c.resource_id) for c in changes] == expected
    for c in changes:
        assert (c.step, c.region, c.kind, c.name) == (STEP, REGION, "vpc", f"name-{c.key}")
        if c.action == SKIP:
            assert "ownership tags are gone" in c.note
        else:
            assert c.note == ""


@pytest.mark.parametrize(
    "observed, expected",
    [
        (None, None),
        (have(status=AVAILABLE), "vpc-1"),
        (have(status=PENDING), "vpc-1"),
        (have(status=FAILED), None),
        (have(status=DELETING), None),
        (have(status=ABSENT), None),
        (have(id=None), None),
    ],
)
def test_observation_id_of(observed: Observed | None, expected: str | None) -> None:
    observation = obs(observed) if observed else obs()
    assert observation.id_of("vpc") == expected


def test_observation_get_absent_default() -> None:
    got = obs().get("nope", "subnet")
    assert (got.kind, got.key, got.id, got.status, got.exists) == ("subnet", "nope", None, ABSENT, False)


@pytest.mark.parametrize(
    "change, text",
    [
        (Change("s", "r", "nat_gateway", "k", "nat-dev", CREATE), "create nat gateway nat-dev"),
        (Change("s", "r", "vpc", "k", "v", DELETE, resource_id="vpc-1"), "delete vpc v (vpc-1)"),
        (Change("s", "r", "vpc", "k", "v", WAIT, actual="pending", resource_id="vpc-1"),
         "wait for vpc v (vpc-1): pending"),
        (Change("s", "r", "vpc", "k", "v", SKIP, note="why"), "leave vpc v -- why"),
        (Change("s", "r", "vpc", "k", "v", UPDATE, attribute="a", expected=1, actual=2),
         "update vpc v: a expected 1, actual 2"),
        (Change("s", "r", "vpc", "k", "v", REPLACE, attribute="a", expected="x", actual="y"),
         "replace needed (refused) vpc v: a expected 'x', actual 'y'"),
    ],
)
def test_change_describe(change: Change, text: str) -> None:
    assert change.describe() == text
    assert change.as_dict()["description"] == text


@pytest.mark.parametrize("recorded, expected", [
    pytest.param({"vpc": "vpc-1"}, [("vpc", UPDATE, "tags")], id="state-proves-it-is-drkits: repair the tags"),
    pytest.param({"vpc": None}, [("vpc", REPLACE, "ownership")], id="not-in-state: refuse, never adopt"),
    pytest.param({"vpc": "vpc-other"}, [("vpc", REPLACE, "ownership")], id="state-names-another: refuse"),
    pytest.param({}, [("vpc", REPLACE, "ownership")], id="empty-state: refuse"),
])
def test_a_resource_without_drkits_tags_is_adopted_only_if_the_state_recorded_it(recorded, expected) -> None:
    untagged = obs(have(tags={"Name": "vpc-primary-dev"}, owned=False))
    changes = decide(STEP, REGION, [want()], untagged, recorded)
    assert [(c.key, c.action, c.attribute) for c in changes] == expected


def test_without_a_state_to_consult_decide_judges_attributes_only() -> None:
    untagged = obs(have(tags=TAGS, owned=False))
    assert decide(STEP, REGION, [want()], untagged) == []
