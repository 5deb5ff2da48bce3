"""ensure_custom_domain: the public API name served by this region's API Gateway.

The Route 53 failover name `api.payments-<env>.<domain>` only works over TLS if each region
answers for it: an API Gateway *regional* custom domain of that name, with the ACM certificate
of the same region (`regionalCertificateArn`), and a base path mapping to the `prod` stage.
Without them a client reaching a region gets the `*.execute-api` certificate or a 403. The
domain's `regionalDomainName` and `regionalHostedZoneId` are what the failover alias records
point at (a later issue); they are outputs here.
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-regional-api-custom-domain-create.html

Custom domain names are unique per region and account, so the domain is found by name; it
carries drkit's tags from CreateDomainName. Neither create has an idempotency token: after a lost
answer, drkit reads whether the domain or mapping exists before it asks again.
"""

from __future__ import annotations

from typing import Any

from drkit.errors import DrkitError
from drkit.step import Change, Desired, Observation, Observed, Step, StepContext, known
from drkit.tags import is_owned
from steps.certificate import STEP as CERTIFICATE_STEP
from steps.lambda_function import partition_of
from steps.rest_api import STAGE_NAME, STEP as API_STEP

DOMAIN, MAPPING = "domain-name", "base-path-mapping"
STEP = "ensure_custom_domain"
SECURITY_POLICY = "TLS_1_2"
ROOT_PATH = "(none)"  # API Gateway's name for the empty base path


class EnsureCustomDomain(Step):
    name = STEP

    def depends_on(self) -> tuple[str, ...]:
        return (f"{CERTIFICATE_STEP}:{self.role}", f"{API_STEP}:{self.role}")

    def observe(self, ctx: StepContext) -> Observation:
        name = ctx.config.names.api_hostname
        found = ctx.call("apigateway", "get_domain_name", domainName=name, missing_ok=True)
        if found is None:
            return Observation({})
        tags = found.get("tags", {})
        attrs = {
            "certificate_arn": found.get("regionalCertificateArn"),
            "endpoint_types": (found.get("endpointConfiguration") or {}).get("types", []),
            "security_policy": found.get("securityPolicy"),
        }
        owned = is_owned(tags, ctx.config.env, self.name)
        resources = {DOMAIN: Observed("domain_name", DOMAIN, name, attrs=attrs, tags=tags, owned=owned)}
        if owned:
            mappings = ctx.call("apigateway", "get_base_path_mappings", domainName=name, missing_ok=True) or {}
            for mapping in mappings.get("items", []):
                if mapping.get("basePath") in (ROOT_PATH, "", None):
                    resources[MAPPING] = Observed("base_path_mapping", MAPPING, f"{name}/{ROOT_PATH}", attrs={
                        "rest_api_id": mapping.get("restApiId"), "stage": mapping.get("stage")})
        facts = {"regional_domain_name": found.get("regionalDomainName"),
                 "regional_hosted_zone_id": found.get("regionalHostedZoneId")}
        return Observation(resources, facts=facts)

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        name = ctx.config.names.api_hostname
        return [
            Desired("domain_name", DOMAIN, name, known({
                "certificate_arn": self._certificate(ctx), "endpoint_types": ["REGIONAL"],
                "security_policy": SECURITY_POLICY}), ctx.tags_for(DOMAIN, name), frozenset({"endpoint_types"})),
            Desired("base_path_mapping", MAPPING, f"{name}/{ROOT_PATH}",
                    known({"rest_api_id": self._api(ctx), "stage": STAGE_NAME})),
        ]

    def _certificate(self, ctx: StepContext) -> str | None:
        return ctx.dependency_output(f"{CERTIFICATE_STEP}:{self.role}", "certificate_arn")

    def _api(self, ctx: StepContext) -> str | None:
        return ctx.dependency_output(f"{API_STEP}:{self.role}", "api_id")

    def recorded_extras(self, observed: Observed) -> dict[str, Any]:
        return {}

    def adopt(self, ctx: StepContext, desired: Any, observation: Observation) -> None:
        super().adopt(ctx, desired, observation)
        if observation.facts.get("regional_domain_name"):
            entry = ctx.state.resource(self.key, DOMAIN)
            if entry and entry.get("target") != observation.facts["regional_domain_name"]:
                ctx.record(DOMAIN, "domain_name", entry["id"], target=observation.facts["regional_domain_name"],
                           target_zone_id=observation.facts["regional_hosted_zone_id"])

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        entry = ctx.state.resource(self.key, DOMAIN) or {}
        return {
            "custom_domain_name": entry.get("id"),
            "custom_domain_target": entry.get("target"),
            "custom_domain_hosted_zone_id": entry.get("target_zone_id"),
        }

    # Apply ---------------------------------------------------------------------------------
    def create_domain_name(self, ctx: StepContext, change: Change) -> None:
        certificate = self._certificate(ctx)
        if certificate is None:
            raise DrkitError(f"{self.key}: the certificate of {CERTIFICATE_STEP}:{self.role} must be issued first")

        def settled() -> Any:
            found = ctx.call("apigateway", "get_domain_name", domainName=change.name, missing_ok=True)
            return found if found and is_owned(found.get("tags", {}), ctx.config.env, self.name) else None

        created = ctx.call("apigateway", "create_domain_name", domainName=change.name,
                           regionalCertificateArn=certificate, endpointConfiguration={"types": ["REGIONAL"]},
                           securityPolicy=SECURITY_POLICY, tags=ctx.tags_for(DOMAIN, change.name),
                           settled=settled, resource=change.name)
        ctx.record(DOMAIN, "domain_name", change.name, target=created.get("regionalDomainName"),
                   target_zone_id=created.get("regionalHostedZoneId"))

    def update_domain_name(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            arn = f"arn:{partition_of(ctx.region)}:apigateway:{ctx.region}::/domainnames/{change.resource_id}"
            ctx.call("apigateway", "tag_resource", resourceArn=arn, tags=change.expected, resource=change.resource_id)
            return
        path = {"certificate_arn": "/regionalCertificateArn", "security_policy": "/securityPolicy"}[change.attribute]
        ctx.call("apigateway", "update_domain_name", domainName=change.resource_id, resource=change.resource_id,
                 patchOperations=[{"op": "replace", "path": path, "value": change.expected}])

    def delete_domain_name(self, ctx: StepContext, change: Change) -> None:
        ctx.call("apigateway", "delete_domain_name", domainName=change.resource_id, missing_ok=True,
                 resource=change.resource_id)

    def create_base_path_mapping(self, ctx: StepContext, change: Change) -> None:
        domain, api_id = ctx.config.names.api_hostname, self._api(ctx)
        if api_id is None:
            raise DrkitError(f"{self.key}: the API of {API_STEP}:{self.role} must exist first")

        def settled() -> Any:
            found = ctx.call("apigateway", "get_base_path_mapping", domainName=domain, basePath=ROOT_PATH,
                             missing_ok=True)
            return found if found and found.get("restApiId") == api_id else None

        ctx.call("apigateway", "create_base_path_mapping", domainName=domain, restApiId=api_id, stage=STAGE_NAME,
                 settled=settled, resource=domain)
        ctx.record(MAPPING, "base_path_mapping", change.name)

    def update_base_path_mapping(self, ctx: StepContext, change: Change) -> None:
        path = {"rest_api_id": "/restapiId", "stage": "/stage"}[change.attribute]
        ctx.call("apigateway", "update_base_path_mapping", domainName=ctx.config.names.api_hostname,
                 basePath=ROOT_PATH, patchOperations=[{"op": "replace", "path": path, "value": change.expected}],
                 resource=change.name)

    def delete_base_path_mapping(self, ctx: StepContext, change: Change) -> None:
        ctx.call("apigateway", "delete_base_path_mapping", domainName=ctx.config.names.api_hostname,
                 basePath=ROOT_PATH, missing_ok=True, resource=change.name)
