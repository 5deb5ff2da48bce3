"""ensure_function: one region's payment processor Lambda, its log group and execution role.

Per region (`payment-processor-<role>-<env>`), in creation order:
- the log group `/aws/lambda/<function>` with a retention period, created *before* the function:
  Lambda writes to that name, and a group Lambda creates itself keeps logs forever. The role
  gets no logs:CreateLogGroup, so it cannot create one either.
- the execution role `payment-processor-<role>-role-<env>` (trusted by lambda.amazonaws.com) and
  its inline policy: the payment table in this region only (the actions the handler calls), its
  own log group, and the VPC network-interface actions Lambda needs to attach the function to
  the private subnets -- those of AWS's `AWSLambdaVPCAccessExecutionRole`, written inline so the
  managed policy's `logs:*` on every resource is left out.
  https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-permissions
- the function: the runtime below, handler `payment.handler` from lambda_handlers/, TABLE_NAME and
  DR_ROLE, the private subnets and the Lambda security group. A new function is waited until
  `Active` (function_active_v2); changed code is one UpdateFunctionCode, then a wait until
  `LastUpdateStatus` is `Successful` (function_updated_v2). The package is deterministic
  (drkit/package.py), so unchanged code has the same CodeSha256 and costs no call.
  https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html

A new role is not assumable by Lambda for a few seconds (IAM propagation): CreateFunction then
answers InvalidParameterValueException "The role defined for the function cannot be assumed by
Lambda", retried for the propagation budget. Teardown deletes the function, the policy, the role
and the log group; the function's hyperplane ENIs outlive it (20-40 min on AWS) and are waited
for by the security-group and VPC teardown, which run after this step.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from drkit.config import known_regions
from drkit.errors import DrkitError
from drkit.package import PAYMENT_HANDLER, code_sha256, payment_package
from drkit.retries import busy, propagating
from drkit.step import AVAILABLE, FAILED, PENDING, Change, Desired, Observation, Observed, Step, StepContext, known
from drkit.tags import is_owned, to_aws
from steps.s3 import canonical_policy

# python3.11 (the seed's) is deprecated since 30 Jun 2026; python3.14 is the newest Python
# runtime Lambda offers (deprecation 30 Jun 2029), botocore's model lists, and moto accepts.
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
RUNTIME = "python3.14"
MEMORY_MB = 256
TIMEOUT_S = 10  # well inside API Gateway's 29 s integration timeout
LOG_RETENTION_DAYS = 30
POLICY_NAME = "payment-processor"
# What lambda_handlers/payment.py calls on its table: a conditional PutItem (idempotency and the
# transaction) and GetItem (replays, and /health's bounded read).
TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem")
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
# AWSLambdaVPCAccessExecutionRole's EC2 actions; AWS documents them on "*" (Lambda creates the
# interfaces on the function's behalf in subnets it picks).
ENI_ACTIONS = (
    "ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:UnassignPrivateIpAddresses",
)
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

LOG_GROUP, ROLE, ROLE_POLICY, FUNCTION = "log-group", "role", "role-policy", "function"
STEP = "ensure_function"

# A role made a moment ago (or its policy) is not yet visible to Lambda.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
ROLE_NOT_YET = (
    propagating("InvalidParameterValueException", message="cannot be assumed by Lambda"),
    propagating("InvalidParameterValueException", message="does not have permissions to call"),
)
# "An update is in progress for resource": one update at a time per function.
UPDATE_IN_PROGRESS = (busy("ResourceConflictException", message="in progress"),)

FUNCTION_STATUS = {"Active": AVAILABLE, "Inactive": AVAILABLE, "Pending": PENDING, "Failed": FAILED}


def partition_of(region: str) -> str:
    return known_regions()[region]


def account_of(arn: str | None) -> str | None:
    return arn.split(":")[4] if arn else None


def execution_policy(partition: str, region: str, account: str, table: str, log_group: str) -> dict[str, Any]:
    """The function's permissions: its table in its own region, its own log group, VPC ENIs. Pure."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PaymentTable", "Effect": "Allow", "Action": list(TABLE_ACTIONS),
             "Resource": f"arn:{partition}:dynamodb:{region}:{account}:table/{table}"},
            {"Sid": "OwnLogGroup", "Effect": "Allow", "Action": list(LOG_ACTIONS),
             "Resource": f"arn:{partition}:logs:{region}:{account}:log-group:{log_group}:*"},
            {"Sid": "VpcNetworkInterfaces", "Effect": "Allow", "Action": list(ENI_ACTIONS), "Resource": "*"},
        ],
    }


def function_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What drkit manages of a function, as GetFunctionConfiguration reports it. Pure."""
    vpc = config.get("VpcConfig") or {}
    return {
        "runtime": config.get("Runtime"),
        "handler": config.get("Handler"),
        "memory_size": config.get("MemorySize"),
        "timeout": config.get("Timeout"),
        "environment": dict((config.get("Environment") or {}).get("Variables") or {}),
        "subnet_ids": sorted(vpc.get("SubnetIds") or []),
        "security_group_ids": sorted(vpc.get("SecurityGroupIds") or []),
        "role": config.get("Role"),
        "code_sha256": config.get("CodeSha256"),
    }


class EnsureFunction(Step):
    name = STEP

    def __init__(self, role: str, package: Callable[[], bytes] = payment_package) -> None:
        super().__init__(role)
        self.package = package  # tests pass another handler to prove code updates

    def depends_on(self) -> tuple[str, ...]:
        return (f"ensure_vpc:{self.role}", f"ensure_security_groups:{self.role}", "ensure_global_table:global")

    def _names(self, ctx: StepContext) -> dict[str, str]:
        names = ctx.config.names
        return {LOG_GROUP: names.lambda_log_group(self.role), ROLE: names.lambda_role(self.role),
                ROLE_POLICY: POLICY_NAME, FUNCTION: names.lambda_function(self.role)}

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        names = self._names(ctx)
        resources: dict[str, Observed] = {}
        group = self._log_group(ctx, names[LOG_GROUP])
        if group is not None:
            tags = ctx.call("logs", "list_tags_for_resource", resourceArn=group["logGroupArn"], missing_ok=True)
            tags = (tags or {}).get("tags", {})
            resources[LOG_GROUP] = Observed("log_group", LOG_GROUP, group["logGroupArn"],
                                            attrs={"retention_days": group.get("retentionInDays")}, tags=tags,
                                            owned=is_owned(tags, ctx.config.env, self.name))
        role = ctx.call("iam", "get_role", RoleName=names[ROLE], missing_ok=True)
        if role is not None:
            role = role["Role"]
            tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
            owned = is_owned(tags, ctx.config.env, self.name)
            resources[ROLE] = Observed("iam_role", ROLE, role["Arn"], tags=tags, owned=owned, attrs={
                "trust_policy": canonical_policy(role.get("AssumeRolePolicyDocument"))})
            policy = ctx.call("iam", "get_role_policy", RoleName=names[ROLE], PolicyName=POLICY_NAME, missing_ok=True)
            if owned and policy is not None:
                resources[ROLE_POLICY] = Observed("iam_role_policy", ROLE_POLICY, f"{names[ROLE]}/{POLICY_NAME}",
                                                  attrs={"document": canonical_policy(policy["PolicyDocument"])})
        found = ctx.call("lambda", "get_function", FunctionName=names[FUNCTION], missing_ok=True)
        if found is not None:
            config, tags = found["Configuration"], found.get("Tags", {})
            status = FUNCTION_STATUS.get(config.get("State", "Active"), FAILED)
            if status == AVAILABLE and config.get("LastUpdateStatus") == "InProgress":
                status = PENDING
            resources[FUNCTION] = Observed("lambda_function", FUNCTION, config["FunctionArn"], status,
                                           function_settings(config), tags, is_owned(tags, ctx.config.env, self.name))
        return Observation(resources)

    def _log_group(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        groups = ctx.aws.paginate("logs", ctx.region, "describe_log_groups", "logGroups", logGroupNamePrefix=name)
        return next((g for g in groups if g["logGroupName"] == name), None)

    def recorded_extras(self, observed: Observed) -> dict[str, Any]:
        return {"name": observed.id.split(":")[-1]} if observed.kind == "lambda_function" else {}

    # Decide --------------------------------------------------------------------------------
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        names = self._names(ctx)
        role_arn = observation.id_of(ROLE) or ctx.recorded_id(ROLE)
        document = self._policy(ctx, role_arn) if role_arn else None
        return [
            Desired("log_group", LOG_GROUP, names[LOG_GROUP], {"retention_days": LOG_RETENTION_DAYS},
                    ctx.tags_for(LOG_GROUP, names[LOG_GROUP])),
            Desired("iam_role", ROLE, names[ROLE], {"trust_policy": canonical_policy(TRUST_POLICY)},
                    ctx.tags_for(ROLE, names[ROLE])),
            Desired("iam_role_policy", ROLE_POLICY, POLICY_NAME, known({"document": document})),
            Desired("lambda_function", FUNCTION, names[FUNCTION], known(self._settings(ctx, role_arn)),
                    ctx.tags_for(FUNCTION, names[FUNCTION])),
        ]

    def _settings(self, ctx: StepContext, role_arn: str | None) -> dict[str, Any]:
        vpc_out = ctx.dependency_output(f"ensure_vpc:{self.role}", "private_subnet_ids")
        sg = ctx.dependency_output(f"ensure_security_groups:{self.role}", "lambda_security_group_id")
        return {
            "runtime": RUNTIME,
            "handler": PAYMENT_HANDLER,
            "memory_size": MEMORY_MB,
            "timeout": TIMEOUT_S,
            "environment": {"TABLE_NAME": ctx.config.names.dynamodb_table, "DR_ROLE": self.role},
            "subnet_ids": sorted(vpc_out) if vpc_out and all(vpc_out) else None,
            "security_group_ids": [sg] if sg else None,
            "role": role_arn,
            "code_sha256": code_sha256(self.package()),
        }

    def _policy(self, ctx: StepContext, role_arn: str) -> Any:
        names = ctx.config.names
        return canonical_policy(execution_policy(partition_of(ctx.region), ctx.region, account_of(role_arn),
                                                 names.dynamodb_table, names.lambda_log_group(self.role)))

    def checks(self, ctx: StepContext, observation: Observation) -> list[Change]:
        """Both regions must run the same code: compare with the other region's CodeSha256."""
        here = observation.get(FUNCTION).attrs.get("code_sha256")
        other_role = "dr" if self.role == "primary" else "primary"
        other = ctx.aws.call("lambda", ctx.config.region(other_role), "get_function_configuration",
                             FunctionName=ctx.config.names.lambda_function(other_role), missing_ok=True)
        if here is None or other is None or other.get("CodeSha256") == here:
            return []
        return [Change(self.key, ctx.region, "lambda_function", FUNCTION, self._names(ctx)[FUNCTION], "update",
                       attribute="code_sha256 across regions", expected=here, actual=other.get("CodeSha256"),
                       note=f"{other_role} runs other code")]

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        arn = ctx.recorded_id(FUNCTION)
        return {
            "lambda_function_name": ctx.config.names.lambda_function(self.role) if arn else None,
            "lambda_function_arn": arn,
            "lambda_role_arn": ctx.recorded_id(ROLE),
            "lambda_log_group": ctx.config.names.lambda_log_group(self.role) if ctx.recorded_id(LOG_GROUP) else None,
        }

    # Apply: log group ----------------------------------------------------------------------
    def create_log_group(self, ctx: StepContext, change: Change) -> None:
        ctx.call("logs", "create_log_group", logGroupName=change.name, tags=ctx.tags_for(change.key, change.name),
                 settled=lambda: {} if self._log_group(ctx, change.name) else None, resource=change.name)
        group = self._log_group(ctx, change.name) or {}
        arn = group.get("logGroupArn") or change.name
        ctx.record(change.key, "log_group", arn)
        self._retention(ctx, change.name)

    def update_log_group(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            ctx.call("logs", "tag_resource", resourceArn=change.resource_id, tags=change.expected,
                     resource=change.name)
        else:
            self._retention(ctx, change.name)

    def _retention(self, ctx: StepContext, name: str) -> None:
        ctx.call("logs", "put_retention_policy", logGroupName=name, retentionInDays=LOG_RETENTION_DAYS, resource=name)

    def delete_log_group(self, ctx: StepContext, change: Change) -> None:
        ctx.call("logs", "delete_log_group", logGroupName=change.name, missing_ok=True, resource=change.name)

    # Apply: role and its policy ------------------------------------------------------------
    def create_iam_role(self, ctx: StepContext, change: Change) -> None:
        def settled() -> Any:
            found = ctx.call("iam", "get_role", RoleName=change.name, missing_ok=True)
            tags = {t["Key"]: t["Value"] for t in (found or {}).get("Role", {}).get("Tags", [])}
            return found if found and is_owned(tags, ctx.config.env, self.name) else None

        role = ctx.call("iam", "create_role", RoleName=change.name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                        Description=f"drkit: execution role of {ctx.config.names.lambda_function(self.role)}",
                        Tags=to_aws(ctx.tags_for(change.key, change.name)), settled=settled,
                        resource=change.name)["Role"]
        ctx.record(change.key, "iam_role", role["Arn"])

    def update_iam_role(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            ctx.call("iam", "tag_role", RoleName=change.name, Tags=to_aws(change.expected), resource=change.name)
        else:
            ctx.call("iam", "update_assume_role_policy", RoleName=change.name, PolicyDocument=json.dumps(TRUST_POLICY),
                     resource=change.name)

    def create_iam_role_policy(self, ctx: StepContext, change: Change) -> None:
        role_name, role_arn = self._names(ctx)[ROLE], ctx.recorded_id(ROLE)
        if role_arn is None:
            raise DrkitError(f"{self.key}: the role {role_name} must exist before its policy")
        names = ctx.config.names
        document = execution_policy(partition_of(ctx.region), ctx.region, account_of(role_arn),
                                    names.dynamodb_table, names.lambda_log_group(self.role))
        ctx.call("iam", "put_role_policy", RoleName=role_name, PolicyName=POLICY_NAME,
                 PolicyDocument=json.dumps(document), resource=role_name)
        ctx.record(change.key, "iam_role_policy", f"{role_name}/{POLICY_NAME}")

    def update_iam_role_policy(self, ctx: StepContext, change: Change) -> None:
        self.create_iam_role_policy(ctx, change)

    def delete_iam_role_policy(self, ctx: StepContext, change: Change) -> None:
        role_name = self._names(ctx)[ROLE]
        ctx.call("iam", "delete_role_policy", RoleName=role_name, PolicyName=POLICY_NAME, missing_ok=True,
                 resource=role_name)

    def delete_iam_role(self, ctx: StepContext, change: Change) -> None:
        ctx.call("iam", "delete_role", RoleName=change.name, missing_ok=True, resource=change.name)

    # Apply: the function -------------------------------------------------------------------
    def create_lambda_function(self, ctx: StepContext, change: Change) -> None:
        if change.resource_id:  # a Failed function: AWS cannot repair it, so it goes first
            self._delete_function(ctx, change.name)
        settings = self._settings(ctx, ctx.recorded_id(ROLE))
        if None in (settings["role"], settings["subnet_ids"], settings["security_group_ids"]):
            raise DrkitError(f"{self.key}: the role, private subnets and Lambda security group must exist first")

        def settled() -> Any:
            found = ctx.call("lambda", "get_function", FunctionName=change.name, missing_ok=True)
            if found and is_owned(found.get("Tags", {}), ctx.config.env, self.name):
                return found["Configuration"]
            return None

        created = ctx.call(
            "lambda", "create_function", FunctionName=change.name, Runtime=RUNTIME, Handler=PAYMENT_HANDLER,
            Role=settings["role"], Code={"ZipFile": self.package()}, MemorySize=MEMORY_MB, Timeout=TIMEOUT_S,
            Description=f"drkit: payment processor ({self.role})",
            Environment={"Variables": settings["environment"]},
            VpcConfig={"SubnetIds": settings["subnet_ids"], "SecurityGroupIds": settings["security_group_ids"]},
            Tags=ctx.tags_for(change.key, change.name), not_yet=ROLE_NOT_YET, settled=settled, resource=change.name,
        )
        ctx.record(change.key, "lambda_function", created["FunctionArn"], name=change.name)
        self._wait(ctx, change.name)

    def wait_lambda_function(self, ctx: StepContext, change: Change) -> None:
        self._wait(ctx, change.name)

    def update_lambda_function(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            ctx.call("lambda", "tag_resource", Resource=change.resource_id, Tags=change.expected, resource=change.name)
            return
        current = function_settings(self._wait(ctx, change.name))
        wanted = known(self._settings(ctx, ctx.recorded_id(ROLE)))
        if change.attribute == "code_sha256":
            if current["code_sha256"] != wanted["code_sha256"]:
                ctx.call("lambda", "update_function_code", FunctionName=change.name, ZipFile=self.package(),
                         not_yet=UPDATE_IN_PROGRESS, resource=change.name)
                self._wait(ctx, change.name)
            return
        # One UpdateFunctionConfiguration sets every drifted setting; later changes find none left.
        if all(current[k] == v for k, v in wanted.items() if k != "code_sha256"):
            return
        ctx.call("lambda", "update_function_configuration", FunctionName=change.name, Runtime=RUNTIME,
                 Handler=PAYMENT_HANDLER, Role=wanted["role"], MemorySize=MEMORY_MB, Timeout=TIMEOUT_S,
                 Environment={"Variables": wanted["environment"]},
                 VpcConfig={"SubnetIds": wanted["subnet_ids"], "SecurityGroupIds": wanted["security_group_ids"]},
                 not_yet=UPDATE_IN_PROGRESS + ROLE_NOT_YET, resource=change.name)
        self._wait(ctx, change.name)

    def _wait(self, ctx: StepContext, name: str) -> dict[str, Any]:
        """Until State is Active and LastUpdateStatus is not InProgress (the conditions of
        botocore's function_active_v2 and function_updated_v2 waiters)."""
        return ctx.waiter.until(
            f"Lambda function {name} in {ctx.region} to be Active and updated",
            lambda: ctx.call("lambda", "get_function_configuration", FunctionName=name),
            lambda c: c.get("State", "Active") == "Active" and c.get("LastUpdateStatus", "Successful") == "Successful",
            describe=lambda c: f"State {c.get('State')}, LastUpdateStatus {c.get('LastUpdateStatus')}",
            failed=lambda c: f"{c.get('StateReason') or c.get('LastUpdateStatusReason')}"
            if "Failed" in (c.get("State"), c.get("LastUpdateStatus")) else None,
        )

    def delete_lambda_function(self, ctx: StepContext, change: Change) -> None:
        self._delete_function(ctx, change.name)

    def _delete_function(self, ctx: StepContext, name: str) -> None:
        ctx.call("lambda", "delete_function", FunctionName=name, missing_ok=True, not_yet=UPDATE_IN_PROGRESS,
                 resource=name)
