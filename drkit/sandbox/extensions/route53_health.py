"""Route 53 health checks that are evaluated, failover answers, and CreateHealthCheck idempotency.

moto stores health checks but never evaluates them (GetHealthCheckStatus always says "Success"),
drops `AlarmIdentifier`/`InsufficientDataHealthStatus`, ignores `CallerReference`, and has no
TestDNSAnswer. AWS behaviour emulated:
- CreateHealthCheck: the same CallerReference and settings return the existing check; other
  settings, or the reference of a deleted check, are `HealthCheckAlreadyExists` (409).
  https://docs.aws.amazon.com/Route53/latest/APIReference/API_CreateHealthCheck.html
- Endpoint checks (HTTP/HTTPS) request `FullyQualifiedDomainName` + `ResourcePath` through the
  sandbox's API Gateway serving; 2xx/3xx is a success; the status changes after
  `FailureThreshold` consecutive results the other way; `Inverted` flips it; `Disabled` is healthy.
  A region under a sandbox outage (drkit.sandbox.outage) fails every request to its APIs.
  https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html
- CALCULATED checks are healthy when at least `HealthThreshold` children are; CLOUDWATCH_METRIC
  checks follow their alarm: ALARM unhealthy, OK healthy, INSUFFICIENT_DATA per
  `InsufficientDataHealthStatus` (LastKnownStatus: the last status with data, healthy if none).
  https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-creating-values.html
- GetHealthCheckStatus reports one observation per checker region (not for CALCULATED checks).
- TestDNSAnswer answers failover records as Route 53 does: PRIMARY while healthy, SECONDARY when
  the primary is unhealthy and the secondary healthy, PRIMARY when both are (fail open); an alias
  record's RecordData is the alias target's DNS name.
  https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-how-route-53-chooses-records.html
- ChangeResourceRecordSets CREATE of a record that exists is InvalidChangeBatch.
Each evaluation is one round of the checkers (at most one per `route53_health_interval` sandbox
seconds per check), so a failure threshold of 3 takes three reads of the status.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlparse

from moto.route53 import urls as route53_urls
from moto.route53.exceptions import InvalidInput, ResourceRecordAlreadyExists, Route53ClientError
from moto.route53.models import HealthCheck, Route53Backend
from moto.route53.responses import Route53

from drkit.sandbox.outage import active_outages, region_of_host
from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_route53_health_installed"
CHECKER_REGIONS = ["us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-southeast-1", "ap-southeast-2",
                   "ap-northeast-1", "sa-east-1"]
ENDPOINT_TYPES = {"HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH"}


class HealthCheckAlreadyExists(Route53ClientError):
    def __init__(self, reference: str) -> None:
        super().__init__("HealthCheckAlreadyExists",
                         f"A health check with caller reference {reference} already exists or was deleted.")


def _extra(check: HealthCheck) -> dict[str, Any]:
    return check.__dict__.setdefault("_drkit", {"healthy": True, "fails": 0, "oks": 0, "last_probe": None,
                                                "last_known": True, "report": "Success: initial"})


def install(timings: SandboxTimings) -> None:
    if getattr(Route53, _MARK, False):
        return
    setattr(Route53, _MARK, True)
    route53_urls.url_paths[r"{0}/(?P<api_version>[\d_-]+)/testdnsanswer$"] = Route53.dispatch
    _patch_config()
    _patch_create_update_delete()
    _patch_records()

    def get_health_check_status(self: Route53) -> Any:
        from moto.core.responses import ActionResult

        check = self.backend.get_health_check(self._get_param("HealthCheckId"))
        if check.type_ == "CALCULATED":
            raise InvalidInput("GetHealthCheckStatus doesn't support calculated health checks.")
        evaluate(self.backend, check, _endpoint_of(self), timings)
        report = _extra(check)["report"]
        regions = check.regions or CHECKER_REGIONS
        return ActionResult({"HealthCheckObservations": [
            {"Region": r, "IPAddress": "127.0.0.1", "StatusReport": {"Status": report, "CheckedTime": _now()}}
            for r in regions]})

    def test_dns_answer(self: Route53) -> Any:
        from moto.core.responses import ActionResult

        zone = self.backend.get_hosted_zone(self._get_param("hostedzoneid") or self._get_param("HostedZoneId"))
        name = (self._get_param("recordname") or self._get_param("RecordName") or "").rstrip(".") + "."
        rtype = self._get_param("recordtype") or self._get_param("RecordType")
        chosen = answer(self.backend, zone, name, rtype, _endpoint_of(self), timings)
        data = [] if chosen is None else _record_data(chosen)
        return ActionResult({"Nameserver": "ns-sandbox.drkit", "RecordName": name, "RecordType": rtype,
                             "RecordData": data, "ResponseCode": "NOERROR" if data else "NXDOMAIN",
                             "Protocol": "UDP"})

    Route53.get_health_check_status = get_health_check_status  # type: ignore[method-assign]
    Route53.test_dns_answer = test_dns_answer  # type: ignore[attr-defined]


# -- configuration AWS keeps and moto drops ----------------------------------------------------

def _patch_config() -> None:
    original = HealthCheck.health_check_config.fget

    def health_check_config(self: HealthCheck) -> dict[str, Any]:
        config = original(self)
        extra = _extra(self)
        if self.type_ in ("CALCULATED", "CLOUDWATCH_METRIC"):
            for key in ("IPAddress", "Port", "RequestInterval", "FailureThreshold", "MeasureLatency"):
                config.pop(key, None)
        if self.type_ == "CLOUDWATCH_METRIC":
            config["AlarmIdentifier"] = extra.get("alarm")
            config["InsufficientDataHealthStatus"] = extra.get("insufficient", "LastKnownStatus")
        return config

    HealthCheck.health_check_config = property(health_check_config)  # type: ignore[assignment]


def _patch_create_update_delete() -> None:
    create, update = Route53.create_health_check, Route53.update_health_check
    delete = Route53Backend.delete_health_check

    def create_health_check(self: Route53) -> Any:
        from moto.core.responses import ActionResult

        reference = self._get_param("CallerReference")
        config = self._get_param("HealthCheckConfig") or {}
        deleted: set = self.backend.__dict__.setdefault("_drkit_deleted_references", set())
        if reference in deleted:
            raise HealthCheckAlreadyExists(reference)
        for check in self.backend.health_checks.values():
            if check.caller_reference == reference:
                if _extra(check).get("request") != config:
                    raise HealthCheckAlreadyExists(reference)
                return ActionResult({"HealthCheck": check})
        before = set(self.backend.health_checks)
        result = create(self)
        check = next(c for i, c in self.backend.health_checks.items() if i not in before)
        extra = _extra(check)
        extra.update(request=config, alarm=config.get("AlarmIdentifier"),
                     insufficient=config.get("InsufficientDataHealthStatus", "LastKnownStatus"))
        return result

    def update_health_check(self: Route53) -> Any:
        check = self.backend.get_health_check(self._get_param("HealthCheckId"))
        extra = _extra(check)
        if self._get_param("AlarmIdentifier"):
            extra["alarm"] = self._get_param("AlarmIdentifier")
        if self._get_param("InsufficientDataHealthStatus"):
            extra["insufficient"] = self._get_param("InsufficientDataHealthStatus")
        if self._get_param("Inverted") is not None:  # moto keeps the old value for False
            check.inverted = str(self._get_param("Inverted")).lower() == "true"
        if self._get_param("Disabled") is not None:
            check.disabled = str(self._get_param("Disabled")).lower() == "true"
        if self._get_param("EnableSNI") is not None:
            check.enable_sni = str(self._get_param("EnableSNI")).lower() == "true"
        check.health_check_version += 1
        regions, children = check.regions, check.children
        result = update(self)
        # moto clears Regions and ChildHealthChecks a request leaves out; AWS keeps them.
        if self._get_param("Regions") is None:
            check.regions = regions
        if self._get_param("ChildHealthChecks") is None:
            check.children = children
        return result

    def delete_health_check(self: Route53Backend, health_check_id: str) -> None:
        check = self.health_checks.get(health_check_id)
        if check is not None:
            self.__dict__.setdefault("_drkit_deleted_references", set()).add(check.caller_reference)
        delete(self, health_check_id)

    Route53.create_health_check = create_health_check  # type: ignore[method-assign]
    Route53.update_health_check = update_health_check  # type: ignore[method-assign]
    Route53Backend.delete_health_check = delete_health_check  # type: ignore[method-assign]


def _patch_records() -> None:
    change = Route53Backend.change_resource_record_sets

    def change_resource_record_sets(self: Route53Backend, zoneid: str, change_list: list[dict[str, Any]]) -> None:
        zone = self.get_hosted_zone(zoneid)
        for item in change_list:
            if item["Action"] != "CREATE":
                continue
            wanted = item["ResourceRecordSet"]
            name = wanted["Name"].rstrip(".") + "."
            for record in zone.rrsets:
                if (record.name.rstrip(".") + "." == name and record.type == wanted["Type"]
                        and record.set_identifier == wanted.get("SetIdentifier")):
                    raise ResourceRecordAlreadyExists(name=name, _type=wanted["Type"])
        change(self, zoneid, change_list)

    Route53Backend.change_resource_record_sets = change_resource_record_sets  # type: ignore[method-assign]


# -- evaluation --------------------------------------------------------------------------------

def evaluate(backend: Route53Backend, check: HealthCheck, endpoint: str | None, timings: SandboxTimings,
             depth: int = 0) -> bool:
    """Whether `check` is healthy now (one round of the checkers, if one is due)."""
    extra = _extra(check)
    if check.disabled:
        return True
    if check.type_ == "CALCULATED":
        children = [backend.health_checks.get(c) for c in check.children or []]
        healthy_children = sum(1 for c in children if c is not None and evaluate(backend, c, endpoint, timings, depth + 1))
        raw = healthy_children >= int(check.health_threshold or 0)
        extra["report"] = f"{healthy_children} of {len(children)} child health checks healthy"
    elif check.type_ == "CLOUDWATCH_METRIC":
        raw = _alarm_health(backend.account_id, extra)
    elif check.type_ in ENDPOINT_TYPES:
        raw = _endpoint_health(check, extra, endpoint, timings)
    else:
        raw = True  # TCP and others: not emulated, healthy
    return (not raw) if check.inverted else raw


def _alarm_health(account_id: str, extra: dict[str, Any]) -> bool:
    from moto.cloudwatch.models import cloudwatch_backends

    alarm_id = extra.get("alarm") or {}
    backend = cloudwatch_backends[account_id][alarm_id.get("Region", "us-east-1")]
    alarm = backend.alarms.get(alarm_id.get("Name", ""))
    if alarm is None:
        state = "INSUFFICIENT_DATA"
    elif active_outages().apis_out(alarm_id.get("Region")):
        state = "INSUFFICIENT_DATA"  # Route 53 cannot read the alarm's data stream
    else:
        state = alarm.state_value
    if state == "ALARM":
        extra["last_known"], extra["report"] = False, "Failure: the alarm is in ALARM"
        return False
    if state == "OK":
        extra["last_known"], extra["report"] = True, "Success: the alarm is OK"
        return True
    policy = extra.get("insufficient", "LastKnownStatus")
    healthy = {"Healthy": True, "Unhealthy": False}.get(policy, extra.get("last_known", True))
    extra["report"] = f"{'Success' if healthy else 'Failure'}: insufficient data ({policy})"
    return healthy


def _endpoint_health(check: HealthCheck, extra: dict[str, Any], endpoint: str | None, timings: SandboxTimings) -> bool:
    now = timings.now()
    due = extra["last_probe"] is None or now - extra["last_probe"] >= timings.route53_health_interval
    if due:
        extra["last_probe"] = now
        ok, report = probe(check, endpoint)
        extra["report"] = report
        threshold = int(check.failure_threshold or 3)
        if ok:
            extra["oks"], extra["fails"] = extra["oks"] + 1, 0
            if extra["oks"] >= threshold:
                extra["healthy"] = True
        else:
            extra["fails"], extra["oks"] = extra["fails"] + 1, 0
            if extra["fails"] >= threshold:
                extra["healthy"] = False
    return extra["healthy"]


def probe(check: HealthCheck, endpoint: str | None) -> tuple[bool, str]:
    """One request of a checker: GET fqdn + path through the sandbox's API serving."""
    from drkit.sandbox.extensions.apigateway_serving import find_target, serve
    from drkit.sandbox.extensions.lambda_invoke import loopback_endpoint

    host = (check.fqdn or "").lower()
    environ = _probe_environ(host, check.resource_path or "/", endpoint or loopback_endpoint())
    region = region_of_host(host)
    if region is not None and active_outages().is_out(region):
        return False, "Failure: Connection timed out. The endpoint or the internet connection is down."
    target = find_target(environ)
    if target is None:
        return False, f"Failure: DNS resolution failed for {host}"
    status, _, _ = serve(environ, target)
    if 200 <= status < 400:
        return True, f"Success: HTTP Status Code {status}, OK"
    return False, f"Failure: HTTP Status Code {status}"


def _probe_environ(host: str, path: str, endpoint: str) -> dict[str, Any]:
    server = urlparse(endpoint)
    path, _, query = path.partition("?")
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "HTTP_HOST": host,
            "HTTP_USER_AGENT": "Amazon-Route53-Health-Check-Service (ref drkit-sandbox)",
            "SERVER_NAME": server.hostname or "127.0.0.1", "SERVER_PORT": str(server.port or 80),
            "wsgi.url_scheme": server.scheme or "http", "wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0",
            "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1"}


def _endpoint_of(response: Route53) -> str | None:
    """The sandbox server this request came through (None in-process: a loopback one is used)."""
    url = urlparse(getattr(response, "uri", "") or "")
    return f"{url.scheme}://{url.netloc}" if url.hostname in ("127.0.0.1", "localhost") else None


# -- failover answers --------------------------------------------------------------------------

def answer(backend: Route53Backend, zone: Any, name: str, rtype: str, endpoint: str | None,
           timings: SandboxTimings) -> Any:
    records = [r for r in zone.rrsets if r.name.rstrip(".") + "." == name and r.type == rtype]
    if not records:
        return None
    by_role = {r.failover: r for r in records if r.failover}
    if not by_role:
        return records[0]

    def healthy(record: Any) -> bool:
        check = backend.health_checks.get(record.health_check_id or "")
        return True if check is None else evaluate(backend, check, endpoint, timings)

    primary, secondary = by_role.get("PRIMARY"), by_role.get("SECONDARY")
    primary_ok = primary is not None and healthy(primary)
    secondary_ok = secondary is not None and healthy(secondary)
    if primary_ok or not secondary_ok:
        return primary or secondary  # fail open: both unhealthy -> the primary
    return secondary


def _record_data(record: Any) -> list[str]:
    alias = record.alias_target
    if alias:
        return [alias.get("DNSName", "").rstrip(".").lower()]
    return [v if isinstance(v, str) else v.get("Value") for v in record.records or []]


def _now() -> Any:
    from moto.core.utils import utcnow

    return utcnow()
