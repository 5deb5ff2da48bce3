"""ACM DNS validation: a certificate is issued only once its validation records can be resolved.

AWS behaviour emulated (moto 5.2 issues every DNS-validated certificate after 60 s of wall time,
records or not):
- RequestCertificate with ValidationMethod DNS leaves the certificate PENDING_VALIDATION, with a
  CNAME per domain name in DomainValidationOptions[].ResourceRecord. ACM issues it after it finds
  every one of those CNAMEs in public DNS, which takes a little while after the record is added.
  https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html
- A record in a zone that the parent domain does not delegate to is never found: the certificate
  stays PENDING_VALIDATION (and times out after 72 hours).
  https://docs.aws.amazon.com/acm/latest/userguide/troubleshooting-DNS-validation.html
The sandbox resolves a record when a public Route 53 hosted zone of the account holds that CNAME
with that value, and `acm_zones_delegated` is on (DRKIT_SANDBOX_ACM_ZONES_DELEGATED=0 turns it
off); the certificate is ISSUED `acm_validation` seconds later (DRKIT_SANDBOX_ACM_VALIDATION).
"""

from __future__ import annotations

from typing import Any

from moto.acm.models import CertBundle
from moto.route53.models import route53_backends

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_acm_validation_installed"
_SEEN = "_drkit_records_seen_at"


def _resolves(account_id: str, name: str, value: str) -> bool:
    """Whether a public hosted zone of the account answers `name` CNAME `value`."""
    wanted = name.rstrip(".").lower()
    for partition_backend in route53_backends[account_id].values():
        for zone in partition_backend.zones.values():
            if zone.private_zone:
                continue
            for record in zone.rrsets:
                values = [v if isinstance(v, str) else v.get("Value") for v in record.records or []]
                if record.type == "CNAME" and record.name.rstrip(".").lower() == wanted and value in values:
                    return True
    return False


def install(timings: SandboxTimings) -> None:
    if getattr(CertBundle, _MARK, False):
        return
    setattr(CertBundle, _MARK, True)
    original_check = CertBundle.check

    def check(self: Any) -> None:
        if not (self.type == "AMAZON_ISSUED" and self.status == "PENDING_VALIDATION"):
            return original_check(self)
        options = self.describe()["Certificate"].get("DomainValidationOptions", [])
        found = timings.acm_zones_delegated and bool(options) and all(
            _resolves(self.arn.split(":")[4], o["ResourceRecord"]["Name"], o["ResourceRecord"]["Value"]) for o in options
        )
        if not found:
            self.__dict__.pop(_SEEN, None)
            return
        seen = self.__dict__.setdefault(_SEEN, timings.now())
        if timings.now() - seen >= timings.acm_validation:
            self.status = "ISSUED"

    CertBundle.check = check  # type: ignore[method-assign]
