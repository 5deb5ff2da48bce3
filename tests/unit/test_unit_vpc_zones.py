"""steps/vpc.py pure helpers: assign_zones and _default_route_target."""

from __future__ import annotations

import pytest

from drkit.errors import DrkitError
from steps.vpc import _default_route_target, assign_zones

ABC = ["us-east-1a", "us-east-1b", "us-east-1c"]
P1, P2, P3, PUB = "private-subnet-1", "private-subnet-2", "private-subnet-3", "public-subnet"


@pytest.mark.parametrize(
    "available, observed, expected",
    [
        pytest.param(ABC, {}, {P1: "us-east-1a", P2: "us-east-1b", P3: "us-east-1c", PUB: "us-east-1a"},
                     id="fresh-spread"),
        pytest.param(ABC + ["us-east-1d"], {},
                     {P1: "us-east-1a", P2: "us-east-1b", P3: "us-east-1c", PUB: "us-east-1a"}, id="fresh-4-zones"),
        pytest.param(ABC, {P2: "us-east-1a"},
                     {P1: "us-east-1b", P2: "us-east-1a", P3: "us-east-1c", PUB: "us-east-1b"},
                     id="keeps-existing-and-avoids-its-zone"),
        pytest.param(ABC, {P1: "us-east-1c", P2: "us-east-1b", P3: "us-east-1a"},
                     {P1: "us-east-1c", P2: "us-east-1b", P3: "us-east-1a", PUB: "us-east-1c"},
                     id="all-existing-kept"),
        pytest.param([], {P1: "z1", P2: "z2", P3: "z3"}, {P1: "z1", P2: "z2", P3: "z3", PUB: "z1"},
                     id="all-existing-need-no-available-zones"),
        pytest.param(ABC, {PUB: "us-east-1c"}, {P1: "us-east-1a", P2: "us-east-1b", P3: "us-east-1c", PUB: "us-east-1c"},
                     id="existing-public-kept"),
        pytest.param(ABC, {P1: None, P2: "us-east-1c"},
                     {P1: "us-east-1a", P2: "us-east-1c", P3: "us-east-1b", PUB: "us-east-1a"},
                     id="none-zone-treated-as-new"),
        pytest.param(["us-east-1a", "us-east-1b"], {P1: "us-east-1z"},
                     {P1: "us-east-1z", P2: "us-east-1a", P3: "us-east-1b", PUB: "us-east-1z"},
                     id="existing-zone-outside-available-counts"),
        pytest.param(["b", "a", "c"], {}, {P1: "b", P2: "a", P3: "c", PUB: "b"}, id="available-order-respected"),
    ],
)
def test_assign_zones(available, observed, expected) -> None:
    before = dict(observed)
    zones = assign_zones(available, observed)
    assert zones == expected
    assert len({zones[P1], zones[P2], zones[P3]}) == 3
    assert observed == before  # pure: input untouched


@pytest.mark.parametrize(
    "available, observed",
    [
        pytest.param([], {}, id="no-zones"),
        pytest.param(["us-east-1a"], {}, id="one-zone"),
        pytest.param(["us-east-1a", "us-east-1b"], {}, id="two-zones"),
        pytest.param(["us-east-1a", "us-east-1b"], {P1: "us-east-1a"}, id="two-zones-one-used"),
        pytest.param(["us-east-1a", "us-east-1a", "us-east-1a"], {}, id="duplicates-are-one-zone"),
    ],
)
def test_assign_zones_needs_three_distinct(available, observed) -> None:
    with pytest.raises(DrkitError, match=r"needs 3 distinct") as info:
        assign_zones(available, observed)
    assert f"only {len(available)} usable" in info.value.message


@pytest.mark.parametrize(
    "table, expected",
    [
        pytest.param({}, None, id="no-routes-key"),
        pytest.param({"Routes": []}, None, id="no-routes"),
        pytest.param({"Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}]},
                     None, id="only-local-route"),
        pytest.param({"Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"},
                                 {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1", "State": "active"}]},
                     "igw-1", id="igw"),
        pytest.param({"Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1", "State": "active"}]},
                     "nat-1", id="nat"),
        pytest.param({"Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "NetworkInterfaceId": "eni-1",
                                  "State": "active"}]}, "eni-1", id="eni"),
        pytest.param({"Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1",
                                  "State": "blackhole"}]}, "blackhole:nat-1", id="nat-blackhole"),
        pytest.param({"Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1",
                                  "State": "blackhole"}]}, "blackhole:igw-1", id="igw-blackhole"),
        pytest.param({"Routes": [{"DestinationCidrBlock": "0.0.0.0/1", "GatewayId": "igw-9"},
                                 {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-2"}]},
                     "igw-2", id="only-exact-default-destination"),
        pytest.param({"Routes": [{"DestinationIpv6CidrBlock": "::/0", "GatewayId": "igw-6"}]}, None,
                     id="ipv6-default-ignored"),
    ],
)
def test_default_route_target(table, expected) -> None:
    assert _default_route_target(table) == expected
