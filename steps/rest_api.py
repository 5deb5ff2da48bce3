"""ensure_rest_api: one region's REST API in front of its payment Lambda.

`payment-api-<role>-<env>`, endpoint type REGIONAL (a custom domain of the same region fronts
it), with `POST /payment` and `GET /health` (Route 53's health checks send GET) as Lambda proxy
integrations, a `prod` stage with throttling on every method (a payment API must not be
unbounded), and the Lambda permissions that let this API -- and only its `prod` stage's two
routes -- invoke the function.
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html

A deployment is a snapshot of the definition; drkit makes a new one only when the definition
changed: the stage's deployment carries the definition's SHA-256 in its description, compared
with the digest of what drkit wants (never timestamps). API names are not unique, so the API is
found by drkit's tags (given in CreateRestApi) and two of them are a duplicate to remove.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from drkit.step import Change, Desired, Observation, Observed, Step, StepContext, known
from drkit.tags import is_owned
from steps.lambda_function import STEP as FUNCTION_STEP, partition_of

API, DEFINITION, STAGE, PERMISSION = "rest-api", "definition", "stage", "permission"
STAGE_NAME = "prod"
STEP = "ensure_rest_api"
ROUTES = (("/payment", "POST"), ("/health", "GET"))
THROTTLING = {"burst_limit": 100, "rate_limit": 50.0}  # per stage, requests per second
DIGEST_PREFIX = "drkit definition sha256:"
PERMISSION_SID = "drkit-apigateway-{method}-{path}"


def integration_uri(partition: str, region: str, function_arn: str) -> str:
    return f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def wanted_routes(uri: str) -> dict[str, dict[str, Any]]:
    """path -> method -> what drkit sets on it. Pure."""
    routes: dict[str, dict[str, Any]] = {}
    for path, method in ROUTES:
        routes.setdefault(path, {})[method] = {"authorization": "NONE", "integration": "AWS_PROXY", "uri": uri}
    return routes


def digest(routes: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(routes, sort_keys=True).encode()).hexdigest()


def source_arn(partition: str, region: str, account: str, api_id: str, method: str, path: str) -> str:
    """Exactly one route of the prod stage of this API."""
    return f"arn:{partition}:execute-api:{region}:{account}:{api_id}/{STAGE_NAME}/{method}{path}"


class EnsureRestApi(Step):
    name = STEP

    def depends_on(self) -> tuple[str, ...]:
        return (f"{FUNCTION_STEP}:{self.role}",)

    def _function_arn(self, ctx: StepContext) -> str | None:
        return ctx.dependency_output(f"{FUNCTION_STEP}:{self.role}", "lambda_function_arn")

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        name = ctx.config.names.api(self.role)
        apis = ctx.aws.paginate("apigateway", ctx.region, "get_rest_apis", "items", limit=500)
        recorded = ctx.recorded_id(API)
        ours = sorted((a for a in apis if a["name"] == name and (
            is_owned(a.get("tags", {}), ctx.config.env, self.name) or a["id"] == recorded)),
            key=lambda a: (a["id"] != recorded, a["id"]))
        resources: dict[str, Observed] = {}
        if ours:
            api = ours[0]
            api_id = api["id"]
            types = (api.get("endpointConfiguration") or {}).get("types", [])
            resources[API] = Observed("rest_api", API, api_id, attrs={"endpoint_types": types},
                                      tags=api.get("tags", {}), owned=is_owned(api.get("tags", {}), ctx.config.env, self.name))
            resources[DEFINITION] = Observed("api_definition", DEFINITION, api_id,
                                             attrs={"routes": self._routes(ctx, api_id)})
            stage = ctx.call("apigateway", "get_stage", restApiId=api_id, stageName=STAGE_NAME, missing_ok=True)
            if stage is not None:
                resources[STAGE] = Observed("api_stage", STAGE, f"{api_id}/{STAGE_NAME}", attrs=self._stage(ctx, api_id, stage))
        statements = self._statements(ctx)
        if statements:
            resources[PERMISSION] = Observed("lambda_permission", PERMISSION, ctx.config.names.lambda_function(self.role),
                                             attrs={"source_arns": sorted(statements.values())})
        duplicates = {API: tuple(a["id"] for a in ours[1:])} if len(ours) > 1 else {}
        return Observation(resources, duplicates=duplicates)

    def _resources(self, ctx: StepContext, api_id: str) -> list[dict[str, Any]]:
        return ctx.aws.paginate("apigateway", ctx.region, "get_resources", "items", restApiId=api_id, limit=500)

    def _routes(self, ctx: StepContext, api_id: str) -> dict[str, Any]:
        routes: dict[str, Any] = {}
        for resource in self._resources(ctx, api_id):
            for method in resource.get("resourceMethods") or {}:
                found = ctx.call("apigateway", "get_method", restApiId=api_id, resourceId=resource["id"],
                                 httpMethod=method)
                integration = found.get("methodIntegration") or {}
                routes.setdefault(resource["path"], {})[method] = {
                    "authorization": found.get("authorizationType"), "integration": integration.get("type"),
                    "uri": integration.get("uri")}
        return routes

    def _stage(self, ctx: StepContext, api_id: str, stage: dict[str, Any]) -> dict[str, Any]:
        deployment = ctx.call("apigateway", "get_deployment", restApiId=api_id,
                              deploymentId=stage.get("deploymentId", ""), missing_ok=True) or {}
        description = deployment.get("description") or ""
        settings = (stage.get("methodSettings") or {}).get("*/*") or {}
        return {
            "definition_digest": description.removeprefix(DIGEST_PREFIX) if description.startswith(DIGEST_PREFIX) else None,
            "throttling": {"burst_limit": settings.get("throttlingBurstLimit"),
                           "rate_limit": settings.get("throttlingRateLimit")},
        }

    def _statements(self, ctx: StepContext) -> dict[str, str]:
        """drkit's statements in the function's resource policy: Sid -> SourceArn."""
        found = ctx.call("lambda", "get_policy", FunctionName=ctx.config.names.lambda_function(self.role),
                         missing_ok=True)
        policy = json.loads(found["Policy"]) if found else {}
        prefix = PERMISSION_SID.split("{", 1)[0]
        return {s["Sid"]: (s.get("Condition") or {}).get("ArnLike", {}).get("AWS:SourceArn")
                for s in policy.get("Statement", []) if s.get("Sid", "").startswith(prefix)}

    # Decide --------------------------------------------------------------------------------
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        name = ctx.config.names.api(self.role)
        routes = self._wanted_routes(ctx)
        api_id = observation.id_of(API) or ctx.recorded_id(API)
        return [
            Desired("rest_api", API, name, {"endpoint_types": ["REGIONAL"]}, ctx.tags_for(API, name),
                    frozenset({"endpoint_types"})),
            Desired("api_definition", DEFINITION, name, known({"routes": routes})),
            Desired("api_stage", STAGE, f"{name}/{STAGE_NAME}", known({
                "definition_digest": digest(routes) if routes else None, "throttling": dict(THROTTLING)})),
            Desired("lambda_permission", PERMISSION, ctx.config.names.lambda_function(self.role),
                    known({"source_arns": self._source_arns(ctx, api_id)})),
        ]

    def _wanted_routes(self, ctx: StepContext) -> dict[str, Any] | None:
        function_arn = self._function_arn(ctx)
        if not function_arn:
            return None
        return wanted_routes(integration_uri(partition_of(ctx.region), ctx.region, function_arn))

    def _source_arns(self, ctx: StepContext, api_id: str | None) -> list[str] | None:
        function_arn = self._function_arn(ctx)
        if not (api_id and function_arn):
            return None
        account = function_arn.split(":")[4]
        return sorted(source_arn(partition_of(ctx.region), ctx.region, account, api_id, m, p) for p, m in ROUTES)

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        api_id = ctx.recorded_id(API)
        base = f"https://{api_id}.execute-api.{ctx.region}.amazonaws.com/{STAGE_NAME}" if api_id else None
        return {"api_id": api_id, "api_endpoint": base and f"{base}/payment", "api_health_url": base and f"{base}/health",
                "api_stage_url": base}

    # Apply: the API ------------------------------------------------------------------------
    def create_rest_api(self, ctx: StepContext, change: Change) -> None:
        def settled() -> Any:
            found = self.observe(ctx).resources.get(API)
            return {"id": found.id} if found is not None and found.owned else None

        api = ctx.call("apigateway", "create_rest_api", name=change.name, description="drkit: payment API",
                       endpointConfiguration={"types": ["REGIONAL"]}, tags=ctx.tags_for(API, change.name),
                       settled=settled, resource=change.name)
        ctx.record(API, "rest_api", api["id"])

    def update_rest_api(self, ctx: StepContext, change: Change) -> None:
        arn = f"arn:{partition_of(ctx.region)}:apigateway:{ctx.region}::/restapis/{change.resource_id}"
        ctx.call("apigateway", "tag_resource", resourceArn=arn, tags=change.expected, resource=change.resource_id)

    def delete_rest_api(self, ctx: StepContext, change: Change) -> None:
        # Also deletes its resources, methods, deployments and stages. AWS allows one
        # DeleteRestApi per 30 s per account: TooManyRequestsException is retried as a throttle.
        api_id = change.resource_id
        ctx.call("apigateway", "delete_rest_api", restApiId=api_id, missing_ok=True, resource=api_id,
                 settled=lambda: None if ctx.call("apigateway", "get_rest_api", restApiId=api_id, missing_ok=True)
                 else {})

    # Apply: routes -------------------------------------------------------------------------
    def create_api_definition(self, ctx: StepContext, change: Change) -> None:
        self.update_api_definition(ctx, change)

    def update_api_definition(self, ctx: StepContext, change: Change) -> None:
        """Converge the routes: add missing resources and methods, set every integration, remove
        what drkit does not want. Each call is idempotent or looks before it repeats."""
        api_id = ctx.recorded_id(API)
        wanted = self._wanted_routes(ctx) or {}
        resources = {r["path"]: r for r in self._resources(ctx, api_id)}
        root = resources["/"]["id"]
        for path, methods in wanted.items():
            if path not in resources:
                resources[path] = self._create_resource(ctx, api_id, root, path)
            resource_id = resources[path]["id"]
            current = self._routes(ctx, api_id).get(path, {})
            for method, spec in methods.items():
                if method in current and current[method]["authorization"] != spec["authorization"]:
                    ctx.call("apigateway", "delete_method", restApiId=api_id, resourceId=resource_id,
                             httpMethod=method, missing_ok=True, resource=f"{api_id} {method} {path}")
                    current.pop(method)
                if method not in current:
                    ctx.call("apigateway", "put_method", restApiId=api_id, resourceId=resource_id, httpMethod=method,
                             authorizationType="NONE", resource=f"{api_id} {method} {path}",
                             settled=lambda: self._method(ctx, api_id, resource_id, method))
                if current.get(method, {}).get("uri") != spec["uri"] or current.get(method, {}).get("integration") != "AWS_PROXY":
                    # Lambda proxy integrations are always invoked with POST.
                    ctx.call("apigateway", "put_integration", restApiId=api_id, resourceId=resource_id,
                             httpMethod=method, type="AWS_PROXY", integrationHttpMethod="POST", uri=spec["uri"],
                             resource=f"{api_id} {method} {path}")
            for extra in set(current) - set(methods):
                ctx.call("apigateway", "delete_method", restApiId=api_id, resourceId=resource_id, httpMethod=extra,
                         missing_ok=True, resource=f"{api_id} {extra} {path}")
        for path, resource in resources.items():
            if path != "/" and path not in wanted and not any(w.startswith(path + "/") for w in wanted):
                ctx.call("apigateway", "delete_resource", restApiId=api_id, resourceId=resource["id"],
                         missing_ok=True, resource=f"{api_id} {path}")
        ctx.record(DEFINITION, "api_definition", api_id)

    def _create_resource(self, ctx: StepContext, api_id: str, root: str, path: str) -> dict[str, Any]:
        def settled() -> Any:
            return next((r for r in self._resources(ctx, api_id) if r["path"] == path), None)

        return ctx.call("apigateway", "create_resource", restApiId=api_id, parentId=root,
                        pathPart=path.lstrip("/"), settled=settled, resource=f"{api_id} {path}")

    def _method(self, ctx: StepContext, api_id: str, resource_id: str, method: str) -> Any:
        return ctx.call("apigateway", "get_method", restApiId=api_id, resourceId=resource_id, httpMethod=method,
                        missing_ok=True)

    def delete_api_definition(self, ctx: StepContext, change: Change) -> None:
        """Deleted with its API."""

    # Apply: deployment and stage -----------------------------------------------------------
    def create_api_stage(self, ctx: StepContext, change: Change) -> None:
        self.update_api_stage(ctx, change)

    def update_api_stage(self, ctx: StepContext, change: Change) -> None:
        api_id = ctx.recorded_id(API)
        wanted = digest(self._wanted_routes(ctx) or {})
        stage = ctx.call("apigateway", "get_stage", restApiId=api_id, stageName=STAGE_NAME, missing_ok=True)
        current = self._stage(ctx, api_id, stage) if stage else {}
        if current.get("definition_digest") != wanted:
            deployment = self._deployment(ctx, api_id, wanted)
            if stage is None:
                ctx.call("apigateway", "create_stage", restApiId=api_id, stageName=STAGE_NAME, deploymentId=deployment,
                         description="drkit: the payment API", tags=ctx.tags_for(STAGE, change.name),
                         settled=lambda: ctx.call("apigateway", "get_stage", restApiId=api_id, stageName=STAGE_NAME,
                                                  missing_ok=True), resource=change.name)
            else:
                ctx.call("apigateway", "update_stage", restApiId=api_id, stageName=STAGE_NAME, resource=change.name,
                         patchOperations=[{"op": "replace", "path": "/deploymentId", "value": deployment}])
        if current.get("throttling") != THROTTLING:
            ctx.call("apigateway", "update_stage", restApiId=api_id, stageName=STAGE_NAME, resource=change.name,
                     patchOperations=[
                         {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(THROTTLING["burst_limit"])},
                         {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(THROTTLING["rate_limit"])},
                     ])
        ctx.record(STAGE, "api_stage", f"{api_id}/{STAGE_NAME}")

    def _deployment(self, ctx: StepContext, api_id: str, wanted: str) -> str:
        """The deployment of this definition: an existing one (a run that stopped before its
        stage pointed at it), else a new one."""
        def existing() -> Any:
            items = ctx.aws.paginate("apigateway", ctx.region, "get_deployments", "items", restApiId=api_id, limit=500)
            return next((d for d in items if d.get("description") == DIGEST_PREFIX + wanted), None)

        found = existing()
        if found is None:
            found = ctx.call("apigateway", "create_deployment", restApiId=api_id, description=DIGEST_PREFIX + wanted,
                             settled=existing, resource=api_id)
        return found["id"]

    def delete_api_stage(self, ctx: StepContext, change: Change) -> None:
        """Deleted with its API."""

    # Apply: the Lambda permission ----------------------------------------------------------
    def create_lambda_permission(self, ctx: StepContext, change: Change) -> None:
        self.update_lambda_permission(ctx, change)

    def update_lambda_permission(self, ctx: StepContext, change: Change) -> None:
        function = ctx.config.names.lambda_function(self.role)
        wanted = {self._sid(arn): arn for arn in self._source_arns(ctx, ctx.recorded_id(API)) or []}
        current = self._statements(ctx)
        for sid, arn in current.items():
            if wanted.get(sid) != arn:
                ctx.call("lambda", "remove_permission", FunctionName=function, StatementId=sid, missing_ok=True,
                         resource=function)
        for sid, arn in wanted.items():
            if current.get(sid) != arn:
                ctx.call("lambda", "add_permission", FunctionName=function, StatementId=sid,
                         Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com", SourceArn=arn,
                         settled=lambda: {"Statement": sid} if self._statements(ctx).get(sid) == arn else None,
                         resource=function)
        ctx.record(PERMISSION, "lambda_permission", function)

    @staticmethod
    def _sid(arn: str) -> str:
        method, path = arn.split("/", 3)[2:4]
        return PERMISSION_SID.format(method=method.lower(), path=path.replace("/", "-"))

    def delete_lambda_permission(self, ctx: StepContext, change: Change) -> None:
        function = ctx.config.names.lambda_function(self.role)
        for sid in self._statements(ctx):
            ctx.call("lambda", "remove_permission", FunctionName=function, StatementId=sid, missing_ok=True,
                     resource=function)
