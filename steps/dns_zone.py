"""ensure_hosted_zone: the public Route 53 zone `payments-<env>.<domain>` (one step owns it).

The zone holds the certificates' DNS validation records now, and the API's failover records
later. For ACM to see those records the parent domain must delegate to the zone's name servers:
drkit cannot do that (the parent may be anywhere), so the outputs name the NS records, and the
certificate step says so when validation cannot complete.

CreateHostedZone takes no tags, so ownership has two proofs: drkit's tags (added right after the
create) or the CallerReference drkit wrote to the state *before* the call. The reference is also
what makes a resent create safe: AWS refuses a second zone with a reference it has seen
(HostedZoneAlreadyExists), and never accepts a reference again after its zone was deleted, so a
new zone always gets a new reference.
https://docs.aws.amazon.com/Route53/latest/APIReference/API_CreateHostedZone.html
"""

from __future__ import annotations

import uuid
from typing import Any

from drkit.errors import AwsCallError
from drkit.step import Change, Desired, Observation, Observed, Step, StepContext
from drkit.tags import from_aws, is_owned, to_aws

ZONE = "zone"
REFERENCE = "zone-caller-reference"  # state entry written before CreateHostedZone
STEP = "ensure_hosted_zone"
ACM_VALIDATION_SUFFIX = ".acm-validations.aws"


def zone_id(raw_id: str) -> str:
    """`/hostedzone/Z123` -> `Z123`."""
    return raw_id.rsplit("/", 1)[-1]


class EnsureHostedZone(Step):
    name = STEP

    def observe(self, ctx: StepContext) -> Observation:
        zone = self._find(ctx)
        if zone is None:
            return Observation({})
        tags = from_aws(ctx.call("route53", "list_tags_for_resource", ResourceType="hostedzone",
                                 ResourceId=zone_id(zone["Id"]))["ResourceTagSet"].get("Tags"))
        reference = ctx.state.resource_id(self.key, REFERENCE)
        owned = is_owned(tags, ctx.config.env, self.name) or zone.get("CallerReference") == reference
        attrs = {"private": zone.get("Config", {}).get("PrivateZone", False)}
        return Observation({ZONE: Observed("hosted_zone", ZONE, zone_id(zone["Id"]), attrs=attrs, tags=tags,
                                           owned=owned)})

    def _find(self, ctx: StepContext) -> dict[str, Any] | None:
        """The public zone of this name drkit owns or recorded; else any zone of that name."""
        name = ctx.config.names.hosted_zone + "."
        found = ctx.call("route53", "list_hosted_zones_by_name", DNSName=name, MaxItems="100")["HostedZones"]
        zones = [z for z in found if z["Name"] == name]
        recorded = ctx.recorded_id(ZONE)
        reference = ctx.state.resource_id(self.key, REFERENCE)
        for zone in zones:
            if zone_id(zone["Id"]) == recorded or (reference and zone.get("CallerReference") == reference):
                return zone
        public = [z for z in zones if not z.get("Config", {}).get("PrivateZone")]
        return public[0] if public else (zones[0] if zones else None)

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        name = ctx.config.names.hosted_zone
        return [Desired("hosted_zone", ZONE, name, {"private": False}, ctx.tags_for(ZONE, name), frozenset({"private"}))]

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        names = ctx.config.names
        entry = ctx.state.resource(self.key, ZONE) or {}
        return {
            "route53_zone_id": entry.get("id"),
            "route53_zone_name": names.hosted_zone if entry else None,
            "route53_name_servers": entry.get("name_servers"),
            "route53_fqdn": names.api_hostname if entry else None,
            "public_api_url": f"https://{names.api_hostname}/payment" if entry else None,
        }

    def recorded_extras(self, observed: Observed) -> dict[str, Any]:
        return {}

    def adopt(self, ctx: StepContext, desired: Any, observation: Observation) -> None:
        have = observation.resources.get(ZONE)
        if have is not None and have.owned and ctx.recorded_id(ZONE) != have.id:
            ctx.record(ZONE, "hosted_zone", have.id, name_servers=self._name_servers(ctx, have.id))

    # Apply ---------------------------------------------------------------------------------
    def create_hosted_zone(self, ctx: StepContext, change: Change) -> None:
        reference = ctx.state.resource_id(self.key, REFERENCE)
        if reference is None or ctx.state.resource(self.key, REFERENCE).get("used"):
            reference = self._new_reference(ctx)

        def settled() -> Any:
            for zone in ctx.call("route53", "list_hosted_zones_by_name", DNSName=change.name + ".")["HostedZones"]:
                if zone.get("CallerReference") == reference:
                    return ctx.call("route53", "get_hosted_zone", Id=zone["Id"])
            return None

        try:
            created = ctx.call("route53", "create_hosted_zone", Name=change.name, CallerReference=reference,
                               HostedZoneConfig={"Comment": f"drkit {ctx.config.env}: payment API", "PrivateZone": False},
                               settled=settled, resource=change.name)
        except AwsCallError as exc:
            if exc.code != "HostedZoneAlreadyExists":
                raise
            # The reference belonged to a zone deleted since (outside drkit): never reuse it.
            reference = self._new_reference(ctx)
            created = ctx.call("route53", "create_hosted_zone", Name=change.name, CallerReference=reference,
                               HostedZoneConfig={"Comment": f"drkit {ctx.config.env}: payment API", "PrivateZone": False},
                               settled=settled, resource=change.name)
        new_id = zone_id(created["HostedZone"]["Id"])
        ctx.state.record(self.key, REFERENCE, "caller_reference", reference, used=True)
        ctx.record(ZONE, "hosted_zone", new_id, name_servers=created.get("DelegationSet", {}).get("NameServers"))
        self._tag(ctx, new_id, ctx.tags_for(ZONE, change.name))

    def _new_reference(self, ctx: StepContext) -> str:
        reference = f"drkit-{ctx.config.env}-{uuid.uuid4()}"
        ctx.state.record(self.key, REFERENCE, "caller_reference", reference)  # before the call
        return reference

    def update_hosted_zone(self, ctx: StepContext, change: Change) -> None:
        self._tag(ctx, change.resource_id, change.expected)

    def _tag(self, ctx: StepContext, resource_id: str, tags: dict[str, str]) -> None:
        ctx.call("route53", "change_tags_for_resource", ResourceType="hostedzone", ResourceId=resource_id,
                 AddTags=to_aws(tags), resource=resource_id)

    def _name_servers(self, ctx: StepContext, resource_id: str) -> list[str] | None:
        found = ctx.call("route53", "get_hosted_zone", Id=resource_id, missing_ok=True)
        return (found or {}).get("DelegationSet", {}).get("NameServers")

    def _record_names(self, ctx: StepContext, resource_id: str) -> set[str]:
        found = ctx.call("route53", "list_resource_record_sets", HostedZoneId=resource_id)
        return {r["Name"] for r in found["ResourceRecordSets"]}

    def delete_hosted_zone(self, ctx: StepContext, change: Change) -> None:
        """AWS deletes only an empty zone (but for its NS and SOA). ACM validation records are
        the certificate steps' (the two regions share one, so one may be left): they go here;
        a record someone else added makes AWS refuse with HostedZoneNotEmpty, which is reported."""
        records = ctx.aws.paginate("route53", ctx.region, "list_resource_record_sets", "ResourceRecordSets",
                                   HostedZoneId=change.resource_id)
        validation = [r for r in records if r["Type"] == "CNAME" and all(
            v["Value"].rstrip(".").endswith(ACM_VALIDATION_SUFFIX) for v in r.get("ResourceRecords", []))]
        if validation:
            ctx.call("route53", "change_resource_record_sets", HostedZoneId=change.resource_id,
                     ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": r} for r in validation]},
                     settled=lambda: None if any(r["Name"] in self._record_names(ctx, change.resource_id)
                                                 for r in validation) else {},
                     resource=change.resource_id)
        ctx.call("route53", "delete_hosted_zone", Id=change.resource_id, missing_ok="NoSuchHostedZone",
                 resource=change.name)
