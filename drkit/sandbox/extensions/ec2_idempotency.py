"""EC2 `ClientToken` idempotency for the create calls whose API takes one.

AWS behaviour emulated (moto 5.2 ignores the token and creates a second resource):
- A request repeated with the same client token and the same parameters returns the result of
  the first request, and creates nothing; the same token with different parameters fails with
  `IdempotentParameterMismatch`. Tokens are scoped to the account and Region.
  https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html
Only operations whose botocore model marks a member with the `idempotencyToken` trait take a
token (botocore then fills in a fresh UUID per call, reused by its own retries). Of the EC2 creates
drkit makes, that is CreateRouteTable and CreateNatGateway; CreateVpc, CreateSubnet,
CreateInternetGateway, AllocateAddress and CreateSecurityGroup take no token at all.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses.nat_gateways import NatGateways
from moto.ec2.responses.network_acls import NetworkACLs
from moto.ec2.responses.route_tables import RouteTables

from drkit.sandbox.timings import SandboxTimings

# (response class, method, API operation): creates moto implements whose API takes ClientToken.
IDEMPOTENT_CREATES: tuple[tuple[type, str, str], ...] = (
    (RouteTables, "create_route_table", "CreateRouteTable"),
    (NatGateways, "create_nat_gateway", "CreateNatGateway"),
    (NetworkACLs, "create_network_acl", "CreateNetworkAcl"),
)
# Parameters that are not part of what the token stands for.
_NOT_COMPARED = frozenset({"ClientToken", "Action", "Version"})
_MARK = "_drkit_client_token_installed"


def install(timings: SandboxTimings) -> None:
    lock = threading.Lock()  # one create per token, even on the threaded HTTP server
    for cls, method, operation in IDEMPOTENT_CREATES:
        if getattr(cls, _MARK + method, False):
            continue
        setattr(cls, _MARK + method, True)
        setattr(cls, method, _idempotent(getattr(cls, method), operation, lock))


def _idempotent(original: Callable[[Any], Any], operation: str, lock: threading.Lock) -> Callable[[Any], Any]:
    def create(self: Any) -> Any:
        token = self._get_param("ClientToken")
        if not token:
            return original(self)
        params = _fingerprint(self.querystring)
        tokens = self.ec2_backend.__dict__.setdefault("_drkit_client_tokens", {})
        with lock:
            seen = tokens.get((operation, token))
            if seen is not None:
                if seen[0] != params:
                    raise EC2ClientError(
                        "IdempotentParameterMismatch",
                        f"Client token {token} was used by a previous {operation} request with "
                        "different parameters.",
                    )
                return seen[1]
            result = original(self)
            if isinstance(result, ActionResult) and isinstance(result.result, dict):
                result = ActionResult({**result.result, "ClientToken": token})
            tokens[(operation, token)] = (params, result)
            return result

    create.__name__ = getattr(original, "__name__", "create")
    create.__doc__ = original.__doc__
    return create


def _fingerprint(querystring: dict[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(sorted((k, tuple(v)) for k, v in querystring.items() if k not in _NOT_COMPARED))
