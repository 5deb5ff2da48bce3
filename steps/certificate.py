"""ensure_certificate: one region's ACM certificate for the public API name, validated by DNS.

An API Gateway regional custom domain needs a certificate in its own region
(`regionalCertificateArn`), so each region requests one for `api.payments-<env>.<domain>`. ACM
issues it once the validation CNAME it names is resolvable: drkit writes that record into the
zone of ensure_hosted_zone (UPSERT: both regions' certificates for one name and account ask for
the same record) and waits until ISSUED, with progress. If the zone is not delegated from its
parent, validation never completes: after VALIDATION_TIMEOUT drkit stops and names the NS records
to delegate, rather than wait for ACM's own 72-hour timeout.
https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html

RequestCertificate's IdempotencyToken (up to 32 letters and digits) makes a resent request return
the same certificate for an hour; drkit writes it to the state before the call and uses a new
one for each new certificate. The certificate carries drkit's tags from its request.
https://docs.aws.amazon.com/acm/latest/APIReference/API_RequestCertificate.html
"""

from __future__ import annotations

import uuid
from typing import Any

from drkit.errors import DrkitError, WaitTimeoutError
from drkit.retries import in_use
from drkit.step import AVAILABLE, FAILED, PENDING, Change, Desired, Observation, Observed, Step, StepContext
from drkit.tags import from_aws, is_owned, to_aws
from steps.dns_zone import STEP as ZONE_STEP

CERTIFICATE, VALIDATION_RECORD = "certificate", "validation-record"
TOKEN = "certificate-request-token"
STEP = "ensure_certificate"
VALIDATION_TIMEOUT = 30 * 60.0  # ACM usually issues within minutes of the record resolving
VALIDATION_TTL = 300
CERT_STATUS = {"ISSUED": AVAILABLE, "PENDING_VALIDATION": PENDING}
LISTED_STATUSES = ["PENDING_VALIDATION", "ISSUED", "INACTIVE", "EXPIRED", "VALIDATION_TIMED_OUT", "REVOKED", "FAILED"]
# API Gateway releases a certificate a little after its custom domain is deleted.
STILL_USED = (in_use("ResourceInUseException", budget=10 * 60),)


class EnsureCertificate(Step):
    name = STEP

    def depends_on(self) -> tuple[str, ...]:
        return (f"{ZONE_STEP}:global",)

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        domain = ctx.config.names.api_hostname
        summaries = ctx.aws.paginate("acm", ctx.region, "list_certificates", "CertificateSummaryList",
                                     CertificateStatuses=LISTED_STATUSES)
        ours: list[tuple[str, dict[str, str]]] = []
        recorded = ctx.recorded_id(CERTIFICATE)
        for summary in (s for s in summaries if s["DomainName"] == domain):
            tags = from_aws(ctx.call("acm", "list_tags_for_certificate", CertificateArn=summary["CertificateArn"],
                                     missing_ok=True).get("Tags"))
            if is_owned(tags, ctx.config.env, self.name) or summary["CertificateArn"] == recorded:
                ours.append((summary["CertificateArn"], tags))
        if not ours:
            return Observation({})
        # Several (a lost answer after the token expired): keep the recorded one, else the lowest.
        ours.sort(key=lambda item: (item[0] != recorded, item[0]))
        arn, tags = ours[0]
        cert = self._describe(ctx, arn)
        status = CERT_STATUS.get(cert["Status"], FAILED)
        resources = {CERTIFICATE: Observed("certificate", CERTIFICATE, arn, status, {"domain": cert["DomainName"]},
                                           tags, is_owned(tags, ctx.config.env, self.name))}
        record = self._validation_record(cert)
        if record is not None:
            current = self._current_record(ctx, record["Name"])
            if current is not None:
                resources[VALIDATION_RECORD] = Observed("dns_record", VALIDATION_RECORD, record["Name"],
                                                        attrs={"value": current})
        return Observation(resources, facts={"record": record, "status": cert["Status"]},
                           duplicates={CERTIFICATE: tuple(a for a, _ in ours[1:])} if len(ours) > 1 else {})

    def _describe(self, ctx: StepContext, arn: str) -> dict[str, Any]:
        return ctx.call("acm", "describe_certificate", CertificateArn=arn)["Certificate"]

    @staticmethod
    def _validation_record(cert: dict[str, Any]) -> dict[str, str] | None:
        for option in cert.get("DomainValidationOptions", []):
            if option.get("ResourceRecord"):
                return option["ResourceRecord"]
        return None  # ACM adds it a few seconds after the request

    def _zone(self, ctx: StepContext) -> str | None:
        return ctx.dependency_output(f"{ZONE_STEP}:global", "route53_zone_id")

    def _current_record(self, ctx: StepContext, name: str) -> str | None:
        zone = self._zone(ctx)
        if zone is None:
            return None
        found = ctx.call("route53", "list_resource_record_sets", HostedZoneId=zone, StartRecordName=name,
                         StartRecordType="CNAME", MaxItems="1", missing_ok="NoSuchHostedZone")
        for record in (found or {}).get("ResourceRecordSets", []):
            if record["Name"].rstrip(".") == name.rstrip(".") and record["Type"] == "CNAME":
                return (record.get("ResourceRecords") or [{}])[0].get("Value")
        return None

    # Decide --------------------------------------------------------------------------------
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        domain = ctx.config.names.api_hostname
        record = observation.facts.get("record") or {}
        return [
            Desired("certificate", CERTIFICATE, domain, {"domain": domain}, ctx.tags_for(CERTIFICATE, domain)),
            Desired("dns_record", VALIDATION_RECORD, record.get("Name", f"ACM validation of {domain}"),
                    {"value": record["Value"]} if record else {}),
        ]

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {"certificate_arn": ctx.recorded_id(CERTIFICATE)}

    # Apply ---------------------------------------------------------------------------------
    def create_certificate(self, ctx: StepContext, change: Change) -> None:
        if change.resource_id:  # failed, expired or revoked: a new one replaces it
            self.delete_certificate(ctx, change)
        entry = ctx.state.resource(self.key, TOKEN)
        token = entry["id"] if entry and not entry.get("used") else self._new_token(ctx)

        def settled() -> Any:
            found = self.observe(ctx).resources.get(CERTIFICATE)
            return {"CertificateArn": found.id} if found is not None and found.owned else None

        arn = ctx.call("acm", "request_certificate", DomainName=change.name, ValidationMethod="DNS",
                       IdempotencyToken=token, Tags=to_aws(ctx.tags_for(CERTIFICATE, change.name)),
                       settled=settled, resource=change.name)["CertificateArn"]
        ctx.state.record(self.key, TOKEN, "idempotency_token", token, used=True)
        ctx.record(CERTIFICATE, "certificate", arn)
        self._validate(ctx, arn)

    def _new_token(self, ctx: StepContext) -> str:
        token = uuid.uuid4().hex  # 32 letters and digits
        ctx.state.record(self.key, TOKEN, "idempotency_token", token)  # before the call
        return token

    def wait_certificate(self, ctx: StepContext, change: Change) -> None:
        self._validate(ctx, change.resource_id)

    def update_certificate(self, ctx: StepContext, change: Change) -> None:
        ctx.call("acm", "add_tags_to_certificate", CertificateArn=change.resource_id, Tags=to_aws(change.expected),
                 resource=change.resource_id)

    def _validate(self, ctx: StepContext, arn: str) -> None:
        """Write the validation record, then wait until ISSUED; stop with the NS records to
        delegate when ACM never sees it."""
        cert = ctx.waiter.until(
            f"ACM to publish the validation record of {arn}",
            lambda: self._describe(ctx, arn), lambda c: self._validation_record(c) is not None,
            describe=lambda c: "not yet", timeout=5 * 60,
        )
        if cert["Status"] == "ISSUED":
            return
        self._upsert(ctx, self._validation_record(cert))
        try:
            ctx.waiter.until(
                f"certificate {arn} to be ISSUED",
                lambda: self._describe(ctx, arn), lambda c: c["Status"] == "ISSUED",
                describe=lambda c: c["Status"],
                failed=lambda c: c["Status"] if c["Status"] not in ("PENDING_VALIDATION", "ISSUED") else None,
                timeout=VALIDATION_TIMEOUT,
            )
        except WaitTimeoutError:
            zone = ctx.config.names.hosted_zone
            servers = ctx.dependency_output(f"{ZONE_STEP}:global", "route53_name_servers") or []
            raise DrkitError(
                f"{self.key}: ACM did not validate {ctx.config.names.api_hostname} within "
                f"{VALIDATION_TIMEOUT / 60:.0f} min: the zone {zone} is probably not delegated",
                hint=f"at the DNS host of {ctx.config.domain}, add NS records for {zone}: "
                     f"{', '.join(servers) or '(see drkit outputs route53_name_servers)'}; then re-run",
            ) from None

    def create_dns_record(self, ctx: StepContext, change: Change) -> None:
        if not change.expected and ctx.recorded_id(VALIDATION_RECORD):
            return  # planned before the certificate existed; creating it wrote the record
        arn = ctx.recorded_id(CERTIFICATE)
        record = self._validation_record(self._describe(ctx, arn)) if arn else None
        if record is not None:
            self._upsert(ctx, record)

    def update_dns_record(self, ctx: StepContext, change: Change) -> None:
        self.create_dns_record(ctx, change)

    def _upsert(self, ctx: StepContext, record: dict[str, str]) -> None:
        zone = self._zone(ctx)
        if zone is None:
            raise DrkitError(f"{self.key}: the hosted zone of {ZONE_STEP}:global must exist first")
        ctx.call("route53", "change_resource_record_sets", HostedZoneId=zone, ChangeBatch={
            "Comment": f"drkit: ACM validation of {ctx.config.names.api_hostname}",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                "Name": record["Name"], "Type": "CNAME", "TTL": VALIDATION_TTL,
                "ResourceRecords": [{"Value": record["Value"]}]}}]}, resource=record["Name"])
        ctx.record(VALIDATION_RECORD, "dns_record", record["Name"], value=record["Value"])

    # Delete --------------------------------------------------------------------------------
    def delete_dns_record(self, ctx: StepContext, change: Change) -> None:
        """The other region's certificate asks for the same record: it stays while that one does."""
        other = "dr" if self.role == "primary" else "primary"
        if ctx.state.resource_id(f"{STEP}:{other}", VALIDATION_RECORD) == change.resource_id:
            return
        zone, value = self._zone(ctx), self._current_record(ctx, change.resource_id)
        if zone is None or value is None:
            return
        ctx.call("route53", "change_resource_record_sets", HostedZoneId=zone, ChangeBatch={"Changes": [{
            "Action": "DELETE", "ResourceRecordSet": {"Name": change.resource_id, "Type": "CNAME",
                                                      "TTL": VALIDATION_TTL, "ResourceRecords": [{"Value": value}]}}]},
                 settled=lambda: {} if self._current_record(ctx, change.resource_id) is None else None,
                 resource=change.resource_id)

    def delete_certificate(self, ctx: StepContext, change: Change) -> None:
        ctx.call("acm", "delete_certificate", CertificateArn=change.resource_id, missing_ok=True,
                 not_yet=STILL_USED, resource=change.resource_id)
