"""ensure_failover_records: Route 53 health checks, the region-switch alarm and the `api.<zone>`
failover alias records (the step the user's design names `ensure_failover_records`).

- an HTTPS health check per region on that region's own execute-api host (never the failover
  name itself, which AWS says gives unpredictable results), `/prod/health`, SNI, every 30 s,
  failure threshold 3, three checker regions. `Type` and `RequestInterval` cannot change after
  creation: a difference there is a refused replacement;
- the region-switch alarm in the DR region and its alarm-based health check, and the CALCULATED
  check (primary HTTPS AND switch) the PRIMARY record uses (design: drkit/region_switch.py);
- PRIMARY -> the primary custom domain's regional target, SECONDARY -> the DR one, both aliases
  with EvaluateTargetHealth and a HealthCheckId; changes are waited until INSYNC.
None of this changes with the active region: only the switch alarm's state does, which `verify`
compares with the state's active region (a finding when they disagree); health and the DNS
answer are reported, not judged.
CreateHealthCheck's CallerReference is fresh per creation and written to the state *before* the
call, so a retry or a resumed run gets the same check back, and a reference is never reused once
its check was deleted (AWS refuses it: HealthCheckAlreadyExists). Checks are tagged right after
creation and found again by reference or tags. Route 53's control plane is called in us-east-1.
https://docs.aws.amazon.com/Route53/latest/APIReference/API_CreateHealthCheck.html
https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-complex-configs.html
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping

from drkit import region_switch
from drkit.errors import AwsCallError, DrkitError
from drkit.retries import in_use
from drkit.step import (DUPLICATE, UPDATE, Change, Desired, Observation, Observed, ProbeResult, Step, StepContext,
                        known)
from drkit.tags import RESOURCE_TAG, from_aws, is_owned, to_aws
from steps.custom_domain import STEP as DOMAIN_STEP
from steps.dns_zone import STEP as ZONE_STEP
from steps.lambda_function import partition_of
from steps.rest_api import STAGE_NAME, STEP as API_STEP

STEP = "ensure_failover_records"
# Route 53's control plane (and its health-check metrics) per partition, whatever the stack's regions.
ROUTE53_REGIONS = {"aws": "us-east-1", "aws-cn": "cn-northwest-1", "aws-us-gov": "us-gov-west-1"}
ROUTE53_REGION = ROUTE53_REGIONS["aws"]


def route53_region(config: Any) -> str:
    return ROUTE53_REGIONS.get(partition_of(config.primary_region), ROUTE53_REGION)
HEALTH_PATH = f"/{STAGE_NAME}/health"
CHECKER_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
SWITCH_ALARM = "switch-alarm"
HEALTH_ALARMS = {"primary": "health-alarm-primary", "dr": "health-alarm-dr"}
ALERTS_STEP = "ensure_alerts"
CHECK_KEYS = {"primary": "health-check-primary", "dr": "health-check-dr"}
SWITCH_CHECK, GATE_CHECK = "health-check-switch", "health-check-primary-gate"
RECORDS = {"primary": "record-primary", "dr": "record-secondary"}
FAILOVER = {"primary": "PRIMARY", "dr": "SECONDARY"}
WRITER = "aurora-global-writer-endpoint"  # state entry: an output, not a resource of this step
HEALTH_CHECK_KEYS = (CHECK_KEYS["primary"], CHECK_KEYS["dr"], SWITCH_CHECK, GATE_CHECK)


def reference_key(key: str) -> str:
    return f"{key}-caller-reference"


class EnsureFailoverRecords(Step):
    name = STEP

    def depends_on(self) -> tuple[str, ...]:
        return (f"{ZONE_STEP}:global", f"{API_STEP}:primary", f"{API_STEP}:dr", f"{DOMAIN_STEP}:primary",
                f"{DOMAIN_STEP}:dr", f"{ALERTS_STEP}:primary", f"{ALERTS_STEP}:dr")

    def r53(self, ctx: StepContext, operation: str, **kwargs: Any) -> Any:
        return ctx.aws.call("route53", route53_region(ctx.config), operation, **kwargs)

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        resources: dict[str, Observed] = {}
        duplicates: dict[str, tuple[str, ...]] = {}
        alarm = self._alarm(ctx)
        if alarm is not None:
            resources[SWITCH_ALARM] = alarm
        resources.update(self._health_alarms(ctx))
        checks = self._health_checks(ctx)
        for key in HEALTH_CHECK_KEYS:
            found = [c for c in checks if self._belongs(ctx, key, c)]
            if found:
                kept = self._keep(ctx, key, found)
                resources[key] = kept
                extra = tuple(sorted(c.id for c in found if c.id != kept.id and c.owned))
                if extra:
                    duplicates[key] = extra
        resources.update(self._records(ctx))
        return Observation(resources, duplicates=duplicates, facts={"global_writer_endpoint": self._writer(ctx)})

    def _writer(self, ctx: StepContext) -> str | None:
        """The Aurora global database's writer endpoint: clients that use it follow a switchover or
        failover with the traffic (an output; the global database is ensure_global_cluster's)."""
        found = ctx.aws.call("rds", ctx.config.primary_region, "describe_global_clusters",
                             GlobalClusterIdentifier=ctx.config.names.global_cluster, missing_ok=True)
        clusters = (found or {}).get("GlobalClusters", [])
        return clusters[0].get("Endpoint") if clusters else None

    def _alarm(self, ctx: StepContext) -> Observed | None:
        name = region_switch.alarm_name(ctx.config)
        found = ctx.aws.call("cloudwatch", ctx.config.dr_region, "describe_alarms", AlarmNames=[name])["MetricAlarms"]
        if not found:
            return None
        alarm = found[0]
        tags = from_aws(ctx.aws.call("cloudwatch", ctx.config.dr_region, "list_tags_for_resource",
                                     ResourceARN=alarm["AlarmArn"]).get("Tags"))
        # Its state (not a setting, never compared) says which record the switch lets DNS answer.
        return Observed("alarm", SWITCH_ALARM, name, attrs={**_alarm_attrs(alarm), "state": alarm.get("StateValue")},
                        tags=tags, owned=is_owned(tags, ctx.config.env, self.name))

    def health_alarm_name(self, ctx: StepContext, role: str) -> str:
        return f"drkit-{role}-health-check-{ctx.config.env}"

    def _health_alarms(self, ctx: StepContext) -> dict[str, Observed]:
        names = {self.health_alarm_name(ctx, role): key for role, key in HEALTH_ALARMS.items()}
        found = ctx.aws.call("cloudwatch", route53_region(ctx.config), "describe_alarms",
                             AlarmNames=sorted(names))["MetricAlarms"]
        resources = {}
        for alarm in found:
            tags = from_aws(ctx.aws.call("cloudwatch", route53_region(ctx.config), "list_tags_for_resource",
                                         ResourceARN=alarm["AlarmArn"]).get("Tags"))
            key = names[alarm["AlarmName"]]
            resources[key] = Observed("alarm", key, alarm["AlarmName"], attrs={
                **_alarm_attrs(alarm), "actions": sorted(alarm.get("AlarmActions", []))}, tags=tags,
                owned=is_owned(tags, ctx.config.env, self.name))
        return resources

    def _health_alarm_params(self, ctx: StepContext, role: str, check_id: str) -> dict[str, Any]:
        """This region's health check failing. Route 53 publishes HealthCheckStatus only in us-east-1
        (per partition: route53_region), so the alarm lives there whatever the stack's regions."""
        return {"Namespace": "AWS/Route53", "MetricName": "HealthCheckStatus",
                "Dimensions": [{"Name": "HealthCheckId", "Value": check_id}], "Statistic": "Minimum", "Period": 60,
                "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Threshold": 1.0,
                "ComparisonOperator": "LessThanThreshold", "TreatMissingData": "breaching",
                "AlarmDescription": f"drkit {ctx.config.env}: the {role} API's Route 53 health check is failing "
                                    f"({ctx.config.region(role)})"}

    def _alerts_topic(self, ctx: StepContext) -> str | None:
        """The alerts topic in the health-check alarms' region, if one of the stack's regions is it."""
        for role in ("primary", "dr"):
            if ctx.config.region(role) == route53_region(ctx.config):
                return ctx.dependency_output(f"{ALERTS_STEP}:{role}", "alerts_topic_arn")
        return None

    def _health_checks(self, ctx: StepContext) -> list[Observed]:
        checks = ctx.aws.paginate("route53", route53_region(ctx.config), "list_health_checks", "HealthChecks")
        tags: dict[str, dict[str, str]] = {}
        ids = [c["Id"] for c in checks]
        for start in range(0, len(ids), 10):
            found = self.r53(ctx, "list_tags_for_resources", ResourceType="healthcheck", ResourceIds=ids[start:start + 10])
            for tag_set in found["ResourceTagSets"]:
                tags[tag_set["ResourceId"]] = from_aws(tag_set.get("Tags"))
        observed = []
        for check in checks:
            own_tags = tags.get(check["Id"], {})
            references = {ctx.state.resource_id(self.key, reference_key(k)): k for k in HEALTH_CHECK_KEYS}
            by_reference = references.get(check.get("CallerReference"))
            owned = is_owned(own_tags, ctx.config.env, self.name) or by_reference is not None
            key = own_tags.get(RESOURCE_TAG) if is_owned(own_tags, ctx.config.env, self.name) else by_reference
            observed.append(Observed("health_check", key or "", check["Id"], attrs=_check_attrs(check),
                                     tags=own_tags, owned=owned))
        return observed

    def _belongs(self, ctx: StepContext, key: str, check: Observed) -> bool:
        return check.key == key or check.id == ctx.recorded_id(key)

    def _keep(self, ctx: StepContext, key: str, found: list[Observed]) -> Observed:
        recorded = ctx.recorded_id(key)
        for check in found:
            if check.id == recorded:
                return check
        return sorted(found, key=lambda c: (not c.owned, c.id))[0]

    def _records(self, ctx: StepContext) -> dict[str, Observed]:
        zone = self._zone(ctx)
        if zone is None:
            return {}
        name = ctx.config.names.api_hostname + "."
        found = self.r53(ctx, "list_resource_record_sets", HostedZoneId=zone, StartRecordName=name,
                         StartRecordType="A", MaxItems="10", missing_ok="NoSuchHostedZone") or {}
        resources = {}
        for record in found.get("ResourceRecordSets", []):
            if record["Name"].lower() != name.lower() or record["Type"] != "A":
                continue
            for role, key in RECORDS.items():
                if record.get("SetIdentifier") == role:
                    alias = record.get("AliasTarget") or {}
                    resources[key] = Observed("failover_record", key, f"{name}{role}", attrs={
                        "failover": record.get("Failover"), "target": alias.get("DNSName", "").rstrip(".").lower(),
                        "target_zone_id": alias.get("HostedZoneId"),
                        "evaluate_target_health": alias.get("EvaluateTargetHealth"),
                        "health_check_id": record.get("HealthCheckId")}, tags={}, owned=True)
        return resources

    def _zone(self, ctx: StepContext) -> str | None:
        return ctx.dependency_output(f"{ZONE_STEP}:global", "route53_zone_id")

    # Desired -------------------------------------------------------------------------------
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        config, names = ctx.config, ctx.config.names
        dr_region = config.dr_region
        wanted: list[Desired] = [Desired(
            "alarm", SWITCH_ALARM, region_switch.alarm_name(config), switch_alarm_attrs(config),
            ctx.tags_for(SWITCH_ALARM, region_switch.alarm_name(config)), region=dr_region)]
        for role in ("primary", "dr"):
            key = CHECK_KEYS[role]
            wanted.append(Desired("health_check", key, f"{names.api_hostname} {role} API", known(
                https_check_attrs(self._api_host(ctx, role))), ctx.tags_for(key, f"{role}-api-health"),
                frozenset({"type", "request_interval"}), region=route53_region(config)))
        wanted.append(Desired("health_check", SWITCH_CHECK, "region switch", {
            "type": "CLOUDWATCH_METRIC",
            "alarm": {"Region": dr_region, "Name": region_switch.alarm_name(config)},
            "insufficient_data": "LastKnownStatus", "inverted": False, "disabled": False},
            ctx.tags_for(SWITCH_CHECK, "region-switch"), frozenset({"type"}), region=route53_region(config)))
        children = [observation.id_of(CHECK_KEYS["primary"]), observation.id_of(SWITCH_CHECK)]
        wanted.append(Desired("health_check", GATE_CHECK, "primary gate", known({
            "type": "CALCULATED", "children": sorted(children) if all(children) else None,
            "health_threshold": 2, "inverted": False, "disabled": False}),
            ctx.tags_for(GATE_CHECK, "primary-gate"), frozenset({"type"}), region=route53_region(config)))
        topic = self._alerts_topic(ctx)
        for role, key in HEALTH_ALARMS.items():
            check = observation.id_of(CHECK_KEYS[role])  # None on a first run: created just before
            params = self._health_alarm_params(ctx, role, check or "")
            attrs = {**_alarm_attrs(params), "actions": [topic] if topic else []}
            if check is None:
                attrs.pop("dimensions")
            name = self.health_alarm_name(ctx, role)
            wanted.append(Desired("alarm", key, name, attrs, ctx.tags_for(key, name), region=route53_region(config)))
        record_checks = {"primary": observation.id_of(GATE_CHECK), "dr": observation.id_of(CHECK_KEYS["dr"])}
        for role, key in RECORDS.items():
            target = ctx.dependency_output(f"{DOMAIN_STEP}:{role}", "custom_domain_target")
            wanted.append(Desired("failover_record", key, f"{names.api_hostname}. {FAILOVER[role]}", known({
                "failover": FAILOVER[role], "target": target and target.rstrip(".").lower(),
                "target_zone_id": ctx.dependency_output(f"{DOMAIN_STEP}:{role}", "custom_domain_hosted_zone_id"),
                "evaluate_target_health": True, "health_check_id": record_checks[role]}), region=route53_region(config)))
        return wanted

    def _api_host(self, ctx: StepContext, role: str) -> str | None:
        api_id = ctx.dependency_output(f"{API_STEP}:{role}", "api_id")
        return f"{api_id}.execute-api.{ctx.config.region(role)}.amazonaws.com" if api_id else None

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {
            "primary_health_check_id": ctx.recorded_id(CHECK_KEYS["primary"]),
            "dr_health_check_id": ctx.recorded_id(CHECK_KEYS["dr"]),
            "region_switch_health_check_id": ctx.recorded_id(SWITCH_CHECK),
            "primary_gate_health_check_id": ctx.recorded_id(GATE_CHECK),
            "region_switch_alarm": region_switch.alarm_name(ctx.config) if ctx.recorded_id(SWITCH_ALARM) else None,
            "region_switch_alarm_region": ctx.config.dr_region,
            "aurora_global_writer_endpoint": ctx.state.resource_id(self.key, WRITER),
        }

    def adopt(self, ctx: StepContext, desired: Any, observation: Observation) -> None:
        writer = observation.facts.get("global_writer_endpoint")
        if writer and ctx.state.resource_id(self.key, WRITER) != writer:
            ctx.state.record(self.key, WRITER, "endpoint", writer)
        for want in desired:
            have = observation.resources.get(want.key)
            if have is not None and have.exists and have.owned and ctx.recorded_id(want.key) != have.id:
                ctx.record(want.key, want.kind, have.id)

    def checks(self, ctx: StepContext, observation: Observation) -> list[Change]:
        """The region switch against the state's active region: a switch that makes DNS answer
        another region than the one the state says takes writes is a finding (a runbook that
        stopped half-way, or a switch flipped by hand). Right after `region_switch.activate` the
        alarm may take a minute to evaluate: AWS evaluates it once a period (60 s)."""
        alarm = observation.get(SWITCH_ALARM)
        says = region_switch.active_of(alarm.attrs.get("state"))
        if not alarm.exists or says == ctx.active_role:
            return []
        return [Change(self.key, ctx.config.dr_region, "alarm", SWITCH_ALARM, alarm.id or "", UPDATE,
                       attribute="region_switch", expected=ctx.active_role, actual=says,
                       note=f"the switch alarm is {alarm.attrs.get('state')}, so DNS answers the {says} region while "
                            f"its API is healthy; the state says {ctx.active_role} is active: switch DNS with the "
                            f"runbook (drkit.region_switch.activate) or finish the runbook that stopped")]

    # Status (verify reports it; a failed-over stack is not drift) ---------------------------
    def status(self, ctx: StepContext) -> list[ProbeResult]:
        results = []
        for role in ("primary", "dr"):
            check = ctx.recorded_id(CHECK_KEYS[role])
            if check is None:
                continue
            found = self.r53(ctx, "get_health_check_status", HealthCheckId=check, missing_ok="NoSuchHealthCheck") or {}
            reports = [o["StatusReport"]["Status"] for o in found.get("HealthCheckObservations", [])]
            healthy = sum(1 for r in reports if r.startswith("Success"))
            results.append(ProbeResult(self.key, ctx.config.region(role), f"{role} API health check", True,
                                       f"{healthy}/{len(reports)} checkers healthy",
                                       reports[0] if reports else "no observations", informational=True))
        switch = region_switch.read(ctx.config, ctx.aws)
        results.append(ProbeResult(self.key, ctx.config.dr_region, "region switch", True,
                                   f"{switch['active']} active", f"alarm {switch['alarm_state']}, "
                                   f"last value {switch['last_value']}", informational=True))
        zone = self._zone(ctx)
        if zone:
            answer = dns_answer(ctx.aws, zone, ctx.config.names.api_hostname, route53_region(ctx.config))
            region = self._region_of_target(ctx, answer)
            results.append(ProbeResult(self.key, region or "?", "DNS answer", True,
                                       f"{ctx.config.names.api_hostname} -> {region or 'unknown'}",
                                       ", ".join(answer), informational=True))
        return results

    def _region_of_target(self, ctx: StepContext, answer: list[str]) -> str | None:
        for role in ("primary", "dr"):
            target = (ctx.dependency_output(f"{DOMAIN_STEP}:{role}", "custom_domain_target") or "").rstrip(".").lower()
            if target and target in answer:
                return ctx.config.region(role)
        return None

    # Apply: the switch alarm ---------------------------------------------------------------
    def create_alarm(self, ctx: StepContext, change: Change) -> None:
        if change.key != SWITCH_ALARM:
            self._put_health_alarm(ctx, change.key, ctx.tags_for(change.key, change.name))
            ctx.record(change.key, "alarm", change.name)
            return
        self._put_alarm(ctx, tags=ctx.tags_for(SWITCH_ALARM, change.name))
        found = ctx.aws.call("cloudwatch", ctx.config.dr_region, "describe_alarms", AlarmNames=[change.name])
        ctx.record(SWITCH_ALARM, "alarm", change.name, arn=found["MetricAlarms"][0]["AlarmArn"])

    def update_alarm(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            arn = ctx.aws.call("cloudwatch", change.region, "describe_alarms",
                               AlarmNames=[change.resource_id])["MetricAlarms"][0]["AlarmArn"]
            ctx.aws.call("cloudwatch", change.region, "tag_resource", ResourceARN=arn,
                         Tags=to_aws(change.expected), resource=change.resource_id)
        elif change.key != SWITCH_ALARM:
            self._put_health_alarm(ctx, change.key)
        else:
            self._put_alarm(ctx)  # PutMetricAlarm rewrites the whole alarm and keeps its state

    def _put_health_alarm(self, ctx: StepContext, key: str, tags: Mapping[str, str] | None = None) -> None:
        role = next(r for r, k in HEALTH_ALARMS.items() if k == key)
        check = ctx.recorded_id(CHECK_KEYS[role])
        topic = self._alerts_topic(ctx)
        actions = [topic] if topic else []
        extra = {"Tags": to_aws(tags)} if tags else {}
        name = self.health_alarm_name(ctx, role)
        ctx.aws.call("cloudwatch", route53_region(ctx.config), "put_metric_alarm", AlarmName=name, ActionsEnabled=True,
                     AlarmActions=actions, OKActions=actions, resource=name,
                     **self._health_alarm_params(ctx, role, check), **extra)

    def _put_alarm(self, ctx: StepContext, tags: Mapping[str, str] | None = None) -> None:
        config = ctx.config
        extra = {"Tags": to_aws(tags)} if tags else {}
        ctx.aws.call("cloudwatch", config.dr_region, "put_metric_alarm", AlarmName=region_switch.alarm_name(config),
                     AlarmDescription="drkit region switch: ALARM = DR active (drkit.region_switch.activate)",
                     Namespace=region_switch.NAMESPACE, MetricName=region_switch.METRIC,
                     Dimensions=region_switch.dimensions(config), Statistic="Maximum", Period=60,
                     EvaluationPeriods=1, DatapointsToAlarm=1, Threshold=1.0,
                     ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="ignore",
                     ActionsEnabled=False, resource=region_switch.alarm_name(config), **extra)

    def delete_alarm(self, ctx: StepContext, change: Change) -> None:
        ctx.aws.call("cloudwatch", change.region, "delete_alarms", AlarmNames=[change.resource_id],
                     resource=change.resource_id)

    # Apply: health checks ------------------------------------------------------------------
    def create_health_check(self, ctx: StepContext, change: Change) -> None:
        config = self._check_config(ctx, change.key)
        entry = ctx.state.resource(self.key, reference_key(change.key)) or {}
        reference = entry.get("id") if entry and not entry.get("used") else self._new_reference(ctx, change.key)
        try:
            created = self._create_check(ctx, change, reference, config)
        except AwsCallError as exc:
            if exc.code != "HealthCheckAlreadyExists":
                raise
            # The reference's check was deleted since, or it was made with other settings: never reuse it.
            reference = self._new_reference(ctx, change.key)
            created = self._create_check(ctx, change, reference, config)
        check_id = created["HealthCheck"]["Id"]
        ctx.record(change.key, "health_check", check_id)
        ctx.state.record(self.key, reference_key(change.key), "caller_reference", reference, used=True)
        self._tag(ctx, check_id, ctx.tags_for(change.key, self._tag_name(change.key)))

    def _create_check(self, ctx: StepContext, change: Change, reference: str, config: dict[str, Any]) -> Any:
        def settled() -> Any:
            for check in ctx.aws.paginate("route53", route53_region(ctx.config), "list_health_checks", "HealthChecks"):
                if check.get("CallerReference") == reference:
                    return {"HealthCheck": check}
            return None

        return self.r53(ctx, "create_health_check", CallerReference=reference, HealthCheckConfig=config,
                        settled=settled, resource=change.name)

    def _new_reference(self, ctx: StepContext, key: str) -> str:
        reference = f"drkit-{ctx.config.env}-{key}-{uuid.uuid4()}"[:64]
        ctx.state.record(self.key, reference_key(key), "caller_reference", reference)  # before the call
        return reference

    def _tag_name(self, key: str) -> str:
        return {CHECK_KEYS["primary"]: "primary-api-health", CHECK_KEYS["dr"]: "dr-api-health",
                SWITCH_CHECK: "region-switch", GATE_CHECK: "primary-gate"}[key]

    def _check_config(self, ctx: StepContext, key: str) -> dict[str, Any]:
        observation = self.observe(ctx)
        want = next(d for d in self.desired(ctx, observation) if d.key == key)
        attrs = want.attrs
        if attrs["type"] == "HTTPS":
            if "fqdn" not in attrs:
                raise DrkitError(f"{self.key}: the {key} needs the REST API of {API_STEP} first")
            return {"Type": "HTTPS", "FullyQualifiedDomainName": attrs["fqdn"], "Port": attrs["port"],
                    "ResourcePath": attrs["resource_path"], "RequestInterval": attrs["request_interval"],
                    "FailureThreshold": attrs["failure_threshold"], "EnableSNI": attrs["enable_sni"],
                    "Regions": list(attrs["regions"]), "Inverted": False, "Disabled": False}
        if attrs["type"] == "CLOUDWATCH_METRIC":
            return {"Type": "CLOUDWATCH_METRIC", "AlarmIdentifier": attrs["alarm"],
                    "InsufficientDataHealthStatus": attrs["insufficient_data"], "Inverted": False, "Disabled": False}
        if "children" not in attrs:
            raise DrkitError(f"{self.key}: the primary gate needs the primary and switch health checks first")
        return {"Type": "CALCULATED", "ChildHealthChecks": attrs["children"], "HealthThreshold": 2,
                "Inverted": False, "Disabled": False}

    def update_health_check(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            self._tag(ctx, change.resource_id, change.expected)
            return
        param = {"fqdn": "FullyQualifiedDomainName", "port": "Port", "resource_path": "ResourcePath",
                 "failure_threshold": "FailureThreshold", "enable_sni": "EnableSNI", "regions": "Regions",
                 "inverted": "Inverted", "disabled": "Disabled", "children": "ChildHealthChecks",
                 "health_threshold": "HealthThreshold", "alarm": "AlarmIdentifier",
                 "insufficient_data": "InsufficientDataHealthStatus"}[change.attribute]
        value = list(change.expected) if isinstance(change.expected, (list, tuple)) else change.expected
        self.r53(ctx, "update_health_check", HealthCheckId=change.resource_id, resource=change.resource_id,
                 **{param: value})

    def delete_health_check(self, ctx: StepContext, change: Change) -> None:
        # HealthCheckInUse while a record or calculated check that used it is still being removed.
        self.r53(ctx, "delete_health_check", HealthCheckId=change.resource_id, missing_ok="NoSuchHealthCheck",
                 not_yet=(in_use("HealthCheckInUse", budget=5 * 60),), resource=change.resource_id)
        if change.attribute != DUPLICATE:
            ctx.state.forget(self.key, reference_key(change.key))

    def _tag(self, ctx: StepContext, check_id: str, tags: Mapping[str, str]) -> None:
        self.r53(ctx, "change_tags_for_resource", ResourceType="healthcheck", ResourceId=check_id,
                 AddTags=to_aws(tags), resource=check_id)

    # Apply: records ------------------------------------------------------------------------
    def _record_set(self, ctx: StepContext, key: str) -> dict[str, Any]:
        role = next(r for r, k in RECORDS.items() if k == key)
        want = next(d for d in self.desired(ctx, self.observe(ctx)) if d.key == key).attrs
        missing = {"target", "target_zone_id", "health_check_id"} - set(want)
        if missing:
            raise DrkitError(f"{self.key}: the {key} needs {', '.join(sorted(missing))} first "
                             f"({DOMAIN_STEP}:{role} and the health checks)")
        return {"Name": ctx.config.names.api_hostname + ".", "Type": "A", "SetIdentifier": role,
                "Failover": FAILOVER[role], "HealthCheckId": want["health_check_id"],
                "AliasTarget": {"HostedZoneId": want["target_zone_id"], "DNSName": want["target"],
                                "EvaluateTargetHealth": True}}

    def create_failover_record(self, ctx: StepContext, change: Change) -> None:
        record, zone = self._record_set(ctx, change.key), self._zone(ctx)

        def settled() -> Any:
            have = self._records(ctx).get(change.key)
            return {"ChangeInfo": {"Id": "", "Status": "INSYNC"}} if have and have.attrs["health_check_id"] == \
                record["HealthCheckId"] and have.attrs["target"] == record["AliasTarget"]["DNSName"] else None

        changed = self.r53(ctx, "change_resource_record_sets", HostedZoneId=zone, settled=settled,
                           ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": record}]},
                           resource=change.name)
        self._wait_insync(ctx, changed)
        ctx.record(change.key, "failover_record", f"{record['Name']}{record['SetIdentifier']}")

    def update_failover_record(self, ctx: StepContext, change: Change) -> None:
        record = self._record_set(ctx, change.key)
        changed = self.r53(ctx, "change_resource_record_sets", HostedZoneId=self._zone(ctx), resource=change.name,
                           ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]})
        self._wait_insync(ctx, changed)

    def delete_failover_record(self, ctx: StepContext, change: Change) -> None:
        zone = self._zone(ctx)
        if zone is None:
            return
        found = self.r53(ctx, "list_resource_record_sets", HostedZoneId=zone,
                         StartRecordName=ctx.config.names.api_hostname + ".", StartRecordType="A", MaxItems="10",
                         missing_ok="NoSuchHostedZone") or {}
        role = next(r for r, k in RECORDS.items() if k == change.key)
        existing = [r for r in found.get("ResourceRecordSets", []) if r.get("SetIdentifier") == role
                    and r["Name"].lower() == ctx.config.names.api_hostname.lower() + "."]
        if not existing:
            return
        changed = self.r53(ctx, "change_resource_record_sets", HostedZoneId=zone, resource=change.name,
                           settled=lambda: None if self._records(ctx).get(change.key) else {"ChangeInfo": {}},
                           ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": existing[0]}]})
        self._wait_insync(ctx, changed)

    def _wait_insync(self, ctx: StepContext, changed: Any) -> None:
        change_id = ((changed or {}).get("ChangeInfo") or {}).get("Id")
        if not change_id:
            return  # the effect was read back already (a lost answer settled by a read)
        ctx.waiter.until(f"Route 53 change {change_id} to be INSYNC",
                         lambda: self.r53(ctx, "get_change", Id=change_id)["ChangeInfo"]["Status"],
                         lambda status: status == "INSYNC", timeout=600)


def https_check_attrs(host: str | None) -> dict[str, Any]:
    return {"type": "HTTPS", "fqdn": host, "port": 443, "resource_path": HEALTH_PATH, "request_interval": 30,
            "failure_threshold": 3, "enable_sni": True, "regions": sorted(CHECKER_REGIONS), "inverted": False,
            "disabled": False}


def switch_alarm_attrs(config: Any) -> dict[str, Any]:
    return {"namespace": region_switch.NAMESPACE, "metric": region_switch.METRIC,
            "dimensions": region_switch.dimensions(config), "statistic": "Maximum", "period": 60,
            "evaluation_periods": 1, "threshold": 1.0, "comparison": "GreaterThanOrEqualToThreshold",
            "treat_missing_data": "ignore"}


def _alarm_attrs(alarm: Mapping[str, Any]) -> dict[str, Any]:
    """The compared settings of an alarm (DescribeAlarms' answer or PutMetricAlarm's parameters)."""
    return {"namespace": alarm.get("Namespace"), "metric": alarm.get("MetricName"),
            "dimensions": sorted(alarm.get("Dimensions", []), key=lambda d: d["Name"]),
            "statistic": alarm.get("Statistic"), "period": alarm.get("Period"),
            "evaluation_periods": alarm.get("EvaluationPeriods"), "threshold": alarm.get("Threshold"),
            "comparison": alarm.get("ComparisonOperator"), "treat_missing_data": alarm.get("TreatMissingData")}


def _check_attrs(check: Mapping[str, Any]) -> dict[str, Any]:
    config = check.get("HealthCheckConfig", {})
    kind = config.get("Type")
    common = {"type": kind, "inverted": bool(config.get("Inverted")), "disabled": bool(config.get("Disabled"))}
    if kind == "CALCULATED":
        return {**common, "children": sorted(config.get("ChildHealthChecks") or []),
                "health_threshold": config.get("HealthThreshold")}
    if kind == "CLOUDWATCH_METRIC":
        return {**common, "alarm": config.get("AlarmIdentifier"),
                "insufficient_data": config.get("InsufficientDataHealthStatus")}
    return {**common, "fqdn": config.get("FullyQualifiedDomainName"), "port": config.get("Port"),
            "resource_path": config.get("ResourcePath"), "request_interval": config.get("RequestInterval"),
            "failure_threshold": config.get("FailureThreshold"), "enable_sni": bool(config.get("EnableSNI")),
            "regions": sorted(config.get("Regions") or [])}


def dns_answer(aws: Any, zone: str, hostname: str, region: str = ROUTE53_REGION) -> list[str]:
    """What Route 53 answers for `hostname` A now (TestDNSAnswer), lower case, no trailing dot."""
    found = aws.call("route53", region, "test_dns_answer", HostedZoneId=zone, RecordName=hostname,
                     RecordType="A")
    return [d.rstrip(".").lower() for d in found.get("RecordData", [])]
