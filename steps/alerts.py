"""ensure_alerts: each region's operational-alerts SNS topic, encrypted with a customer managed
KMS key that CloudWatch alarms can use, and (with `alerts_email` in drkit.toml) its email
subscription.

CloudWatch alarms cannot publish to a topic encrypted with the AWS managed `alias/aws/sns` key:
its key policy cannot be changed to let `cloudwatch.amazonaws.com` use it. So each region gets a
customer managed key whose policy allows exactly kms:Decrypt and kms:GenerateDataKey* to
cloudwatch.amazonaws.com (plus the account's own administration), with rotation on.
https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger

CreateKey has no idempotency token: a reference written to the state before the call goes into
the key's description, and a lost answer is settled by finding it. The key is found again by its
alias. Teardown schedules the key's deletion (7 days, AWS's minimum); a key pending deletion
counts as gone.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from drkit.errors import AwsCallError
from drkit.step import ABSENT, Change, Desired, Observation, Observed, Step, StepContext, known
from drkit.tags import from_aws, is_owned, to_aws
from steps.lambda_function import partition_of

STEP = "ensure_alerts"
KEY, ALIAS, TOPIC, SUBSCRIPTION = "alerts-key", "alerts-key-alias", "alerts-topic", "alerts-email"
REFERENCE = "alerts-key-reference"
DELETION_WINDOW_DAYS = 7
CLOUDWATCH_KEY_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey*"]


def key_policy(partition: str, account: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Id": "drkit-alerts", "Statement": [
        {"Sid": "AccountAdministersTheKey", "Effect": "Allow", "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "CloudWatchAlarmsPublishToTheTopic", "Effect": "Allow",
         "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": CLOUDWATCH_KEY_ACTIONS, "Resource": "*",
         "Condition": {"StringEquals": {"aws:SourceAccount": account}}},  # no confused deputy
    ]}


def allows_cloudwatch(policy_text: str | None) -> bool:
    try:
        statements = json.loads(policy_text or "{}").get("Statement", [])
    except ValueError:
        return False
    for statement in statements if isinstance(statements, list) else [statements]:
        principal = (statement.get("Principal") or {})
        services = principal.get("Service") if isinstance(principal, dict) else None
        services = [services] if isinstance(services, str) else services or []
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else actions or []
        if statement.get("Effect") == "Allow" and "cloudwatch.amazonaws.com" in services and \
                set(CLOUDWATCH_KEY_ACTIONS) <= set(actions):
            return True
    return False


class EnsureAlerts(Step):
    name = STEP

    def alias_name(self, ctx: StepContext) -> str:
        return f"alias/drkit-alerts-{self.role}-{ctx.config.env}"

    def topic_name(self, ctx: StepContext) -> str:
        return ctx.config.names.sns_topic(self.role)

    def observe(self, ctx: StepContext) -> Observation:
        account = ctx.aws.call("sts", ctx.region, "get_caller_identity")["Account"]
        resources: dict[str, Observed] = {}
        by_alias = ctx.call("kms", "describe_key", KeyId=self.alias_name(ctx), missing_ok="NotFoundException")
        key = by_alias
        if key is None and ctx.recorded_id(KEY):
            key = ctx.call("kms", "describe_key", KeyId=ctx.recorded_id(KEY), missing_ok="NotFoundException")
        if key is not None:
            meta = key["KeyMetadata"]
            gone = meta["KeyState"] in ("PendingDeletion", "PendingReplicaDeletion")
            tags = {} if gone else {t["TagKey"]: t["TagValue"] for t in ctx.call(
                "kms", "list_resource_tags", KeyId=meta["KeyId"]).get("Tags", [])}
            attrs = {}
            if not gone:
                policy = ctx.call("kms", "get_key_policy", KeyId=meta["KeyId"], PolicyName="default")["Policy"]
                rotation = ctx.call("kms", "get_key_rotation_status", KeyId=meta["KeyId"])["KeyRotationEnabled"]
                attrs = {"enabled": meta["KeyState"] == "Enabled", "customer_managed": meta.get("KeyManager") == "CUSTOMER",
                         "allows_cloudwatch": allows_cloudwatch(policy), "rotation": rotation}
            resources[KEY] = Observed("kms_key", KEY, meta["KeyId"], status=ABSENT if gone else "available",
                                      attrs={**attrs, "arn": meta["Arn"]}, tags=tags,
                                      owned=is_owned(tags, ctx.config.env, self.name) or meta["KeyId"] == ctx.recorded_id(KEY))
        if by_alias is not None:
            resources[ALIAS] = Observed("kms_alias", ALIAS, self.alias_name(ctx),
                                        attrs={"target": by_alias["KeyMetadata"]["KeyId"]})
        arn = f"arn:{partition_of(ctx.region)}:sns:{ctx.region}:{account}:{self.topic_name(ctx)}"
        found = ctx.call("sns", "get_topic_attributes", TopicArn=arn, missing_ok="NotFound")
        if found is not None:
            tags = from_aws(ctx.call("sns", "list_tags_for_resource", ResourceArn=arn).get("Tags"))
            resources[TOPIC] = Observed("sns_topic", TOPIC, arn, attrs={
                "kms_key": found["Attributes"].get("KmsMasterKeyId")}, tags=tags,
                owned=is_owned(tags, ctx.config.env, self.name))
            email = ctx.config.alerts_email
            if email:
                subs = ctx.call("sns", "list_subscriptions_by_topic", TopicArn=arn).get("Subscriptions", [])
                for sub in subs:
                    if sub.get("Protocol") == "email" and sub.get("Endpoint") == email:
                        resources[SUBSCRIPTION] = Observed("subscription", SUBSCRIPTION, sub["SubscriptionArn"])
        return Observation(resources, facts={"account": account})

    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        key = observation.resources.get(KEY)
        key_arn = key.attrs.get("arn") if key is not None and key.exists else None
        wanted = [
            Desired("kms_key", KEY, f"drkit alerts key {self.role}", known({
                "enabled": True, "customer_managed": True, "allows_cloudwatch": True, "rotation": True}),
                ctx.tags_for(KEY, self.alias_name(ctx)), frozenset({"customer_managed"})),
            Desired("kms_alias", ALIAS, self.alias_name(ctx), known({"target": observation.id_of(KEY)})),
            Desired("sns_topic", TOPIC, self.topic_name(ctx), known({"kms_key": key_arn}),
                    ctx.tags_for(TOPIC, self.topic_name(ctx))),
        ]
        if ctx.config.alerts_email:
            wanted.append(Desired("subscription", SUBSCRIPTION, f"{self.topic_name(ctx)} -> {ctx.config.alerts_email}"))
        return wanted

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {"alerts_topic_arn": ctx.recorded_id(TOPIC),
                "alerts_key_arn": (ctx.state.resource(self.key, KEY) or {}).get("arn")}

    def recorded_extras(self, observed: Observed) -> dict[str, Any]:
        return {"arn": observed.attrs["arn"]} if observed.kind == "kms_key" else {}

    # Apply: key ----------------------------------------------------------------------------
    def create_kms_key(self, ctx: StepContext, change: Change) -> None:
        account = ctx.aws.call("sts", ctx.region, "get_caller_identity")["Account"]
        reference = f"drkit-{uuid.uuid4()}"
        ctx.state.record(self.key, REFERENCE, "reference", reference)  # before the call
        description = f"drkit {ctx.config.env} {self.role} alerts topic key ({reference})"

        def settled() -> Any:
            for listed in ctx.aws.paginate("kms", ctx.region, "list_keys", "Keys"):
                meta = ctx.call("kms", "describe_key", KeyId=listed["KeyId"])["KeyMetadata"]
                if meta.get("Description") == description:
                    return {"KeyMetadata": meta}
            return None

        tags = [{"TagKey": k, "TagValue": v} for k, v in sorted(ctx.tags_for(KEY, self.alias_name(ctx)).items())]
        created = ctx.call("kms", "create_key", Description=description, KeyUsage="ENCRYPT_DECRYPT",
                           KeySpec="SYMMETRIC_DEFAULT", Policy=json.dumps(key_policy(partition_of(ctx.region), account)),
                           Tags=tags, settled=settled, resource=change.name)["KeyMetadata"]
        ctx.record(KEY, "kms_key", created["KeyId"], arn=created["Arn"])
        ctx.call("kms", "enable_key_rotation", KeyId=created["KeyId"], resource=created["KeyId"])

    def update_kms_key(self, ctx: StepContext, change: Change) -> None:
        key_id = change.resource_id
        if change.attribute == "tags":
            ctx.call("kms", "tag_resource", KeyId=key_id, resource=key_id,
                     Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(change.expected.items())])
        elif change.attribute == "allows_cloudwatch":
            account = ctx.aws.call("sts", ctx.region, "get_caller_identity")["Account"]
            ctx.call("kms", "put_key_policy", KeyId=key_id, PolicyName="default", resource=key_id,
                     Policy=json.dumps(key_policy(partition_of(ctx.region), account)))
        elif change.attribute == "rotation":
            ctx.call("kms", "enable_key_rotation", KeyId=key_id, resource=key_id)
        elif change.attribute == "enabled":
            ctx.call("kms", "enable_key", KeyId=key_id, resource=key_id)

    def delete_kms_key(self, ctx: StepContext, change: Change) -> None:
        try:
            ctx.call("kms", "schedule_key_deletion", KeyId=change.resource_id, PendingWindowInDays=DELETION_WINDOW_DAYS,
                     missing_ok="NotFoundException", resource=change.resource_id)
        except AwsCallError as exc:
            if exc.code != "KMSInvalidStateException":  # already pending deletion (a lost answer)
                raise

    # Apply: alias --------------------------------------------------------------------------
    def create_kms_alias(self, ctx: StepContext, change: Change) -> None:
        target = ctx.recorded_id(KEY)

        def settled() -> Any:
            found = ctx.call("kms", "describe_key", KeyId=change.name, missing_ok="NotFoundException")
            return {} if found and found["KeyMetadata"]["KeyId"] == target else None

        ctx.call("kms", "create_alias", AliasName=change.name, TargetKeyId=target, settled=settled, resource=change.name)
        ctx.record(ALIAS, "kms_alias", change.name)

    def update_kms_alias(self, ctx: StepContext, change: Change) -> None:
        ctx.call("kms", "update_alias", AliasName=change.name, TargetKeyId=change.expected, resource=change.name)

    def delete_kms_alias(self, ctx: StepContext, change: Change) -> None:
        ctx.call("kms", "delete_alias", AliasName=change.resource_id, missing_ok="NotFoundException",
                 resource=change.resource_id)

    # Apply: topic and subscription ---------------------------------------------------------
    def create_sns_topic(self, ctx: StepContext, change: Change) -> None:
        """CreateTopic is idempotent by name: a resend returns the same topic."""
        key_arn = (ctx.state.resource(self.key, KEY) or {}).get("arn")
        created = ctx.call("sns", "create_topic", Name=change.name, Attributes={"KmsMasterKeyId": key_arn},
                           Tags=to_aws(ctx.tags_for(TOPIC, change.name)), resource=change.name)
        ctx.record(TOPIC, "sns_topic", created["TopicArn"])

    def update_sns_topic(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            ctx.call("sns", "tag_resource", ResourceArn=change.resource_id, Tags=to_aws(change.expected),
                     resource=change.resource_id)
        else:
            ctx.call("sns", "set_topic_attributes", TopicArn=change.resource_id, AttributeName="KmsMasterKeyId",
                     AttributeValue=change.expected, resource=change.resource_id)

    def delete_sns_topic(self, ctx: StepContext, change: Change) -> None:
        ctx.call("sns", "delete_topic", TopicArn=change.resource_id, resource=change.resource_id)

    def create_subscription(self, ctx: StepContext, change: Change) -> None:
        """Subscribe is idempotent for the same endpoint; the address must confirm (AWS emails it)."""
        found = ctx.call("sns", "subscribe", TopicArn=ctx.recorded_id(TOPIC), Protocol="email",
                         Endpoint=ctx.config.alerts_email, ReturnSubscriptionArn=True, resource=change.name)
        ctx.record(SUBSCRIPTION, "subscription", found["SubscriptionArn"])

    def delete_subscription(self, ctx: StepContext, change: Change) -> None:
        if (change.resource_id or "").startswith("arn:"):  # a pending one goes with its topic
            ctx.call("sns", "unsubscribe", SubscriptionArn=change.resource_id, missing_ok=True,
                     resource=change.resource_id)
