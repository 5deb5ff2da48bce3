"""Which availability zones ensure_vpc's subnets go in.

The three private subnets need three distinct zones; the public subnet goes with private-subnet-1
(the NAT lives there). Candidates are the zones `drkit.toml` pins (by zone name or zone id, in
the order given), else every `available` zone of the region. Some accounts are offered a zone
where CreateSubnet is refused -- "Value (us-east-1e) for parameter availabilityZone is invalid.
Subnets can currently only be created in the following availability zones: ..." (error code
InvalidParameterValue) -- so such a zone is remembered for the rest of the run and the next
candidate is used. Subnets that exist stay where they are (a subnet's zone cannot change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from drkit.errors import AwsCallError, DrkitError

PRIVATE_SUBNETS = ("private-subnet-1", "private-subnet-2", "private-subnet-3")
PUBLIC_SUBNET = "public-subnet"

# The message of CreateSubnet's refusal of a zone the account may not create subnets in.
ZONE_REFUSED = "subnets can currently only be created in the following availability zones"


def is_zone_refusal(exc: AwsCallError) -> bool:
    """Whether CreateSubnet refused the zone itself (InvalidParameterValue is broad: match the text)."""
    return exc.code == "InvalidParameterValue" and ZONE_REFUSED in exc.message.lower()


def assign_zones(available: list[str], observed: dict[str, str | None],
                 refused: Iterable[str] = ()) -> dict[str, str]:
    """Zones for the subnets: keep existing subnets where they are, spread new private ones.

    Pure. `available` is in order of preference; `refused` are zones CreateSubnet refused in
    this run (never chosen for a new subnet, though an existing subnet may already be there).
    """
    refused = set(refused)
    usable = [z for z in available if z not in refused]
    zones = {k: z for k, z in observed.items() if z}
    for key in PRIVATE_SUBNETS:
        if key in zones:
            continue
        used = {zones[k] for k in PRIVATE_SUBNETS if k in zones}
        free = [z for z in usable if z not in used]
        if not free:
            more = f" ({len(refused)} refused by CreateSubnet: {', '.join(sorted(refused))})" if refused else ""
            raise DrkitError(
                f"the region offers only {len(usable)} usable availability zone(s){more}; "
                "drkit needs 3 distinct ones for the private subnets"
            )
        zones[key] = free[0]
    if PUBLIC_SUBNET not in zones:
        beside_nat = zones[PRIVATE_SUBNETS[0]]
        zones[PUBLIC_SUBNET] = beside_nat if beside_nat not in refused else next(iter(usable), beside_nat)
    return zones


def candidate_zones(offered: list[dict[str, Any]], pinned: tuple[str, ...], region: str) -> list[str]:
    """Zone names in order of preference: the pinned ones (names or zone ids) or all offered."""
    if not pinned:
        return sorted(z["ZoneName"] for z in offered)
    by_name_or_id = {z["ZoneName"]: z["ZoneName"] for z in offered} | {z["ZoneId"]: z["ZoneName"] for z in offered
                                                                         if z.get("ZoneId")}
    unknown = [p for p in pinned if p not in by_name_or_id]
    if unknown:
        offered_text = ", ".join(f"{z['ZoneName']} ({z.get('ZoneId', '?')})" for z in offered)
        raise DrkitError(
            f"availability zone(s) {', '.join(unknown)} pinned in drkit.toml are not available in {region}",
            hint=f"available: {offered_text or 'none'}",
        )
    return [by_name_or_id[p] for p in pinned]


@dataclass
class ZoneMemory:
    """What one run knows about a region's zones: the candidates and where subnets are (from
    the last observation, plus what this run created), and the zones CreateSubnet refused."""

    candidates: list[str] = field(default_factory=list)
    placed: dict[str, str] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)

    def zone_for(self, key: str, planned: str) -> str:
        """The zone to create subnet `key` in now: the plan's, unless a refusal moved things."""
        if not self.candidates:
            return planned
        return assign_zones(self.candidates, self.placed, self.refused)[key]
