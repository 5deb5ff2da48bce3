"""KMS: an AWS managed key's alias (alias/aws/rds, ...) names no key until the key exists.

AWS creates an AWS managed key the first time a service, or a DescribeKey on its alias, needs
it. Until then ListAliases returns the predefined alias without a TargetKeyId ("aliases that AWS
has created but has not yet associated with a KMS key"). moto 5.2 lists every reserved alias with
a made-up TargetKeyId that is not the key DescribeKey later creates; this extension drops the
TargetKeyId of a reserved alias that is not backed by a key of the account and Region.
https://docs.aws.amazon.com/kms/latest/APIReference/API_ListAliases.html
https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#aws-managed-key
"""

from __future__ import annotations

import json

from moto.kms.responses import KmsResponse

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_kms_managed_aliases"


def install(timings: SandboxTimings) -> None:
    if getattr(KmsResponse, _MARK, False):
        return
    setattr(KmsResponse, _MARK, True)
    original = KmsResponse.list_aliases

    def list_aliases(self: KmsResponse) -> str:
        body = json.loads(original(self))
        keys = self.kms_backend.keys
        for alias in body.get("Aliases", []):
            if alias.get("AliasName", "").startswith("alias/aws/") and alias.get("TargetKeyId") not in keys:
                alias.pop("TargetKeyId", None)
        return json.dumps(body)

    KmsResponse.list_aliases = list_aliases  # type: ignore[method-assign]
