"""ensure_db_secret: the Aurora master credentials, in Secrets Manager, replicated to the DR region.

RDS cannot manage the master password (ManageMasterUserPassword) of a cluster in a global
database, so drkit generates one, once, and keeps it in a secret of its own: created in the
primary region with a replica in the DR region, so the credentials survive the loss of the
primary region. The password exists only in that secret and in the single create call of the
primary cluster; it is never part of an observation, a change, a log line or the state.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/rds-secrets-manager.html#rds-secrets-manager-limitations

Teardown removes the replica first (a replicated primary secret cannot be deleted), then
schedules the secret for deletion with a 7-day recovery window, or deletes it at once when
forced (`drkit teardown --force`, for CI and sandboxes). Provisioning again within the
window restores the secret instead of failing on its name; a restore AWS refuses because the
secret is already going away for good (a forced delete) falls back to creating it anew. A replica
whose replication Failed is repaired by provision: removed from replication, then added again.

Every call that AWS gives no idempotency token (restore, replica add/remove) passes `settled`, a
fresh DescribeSecret, so a lost answer is looked up, never resent into an error.
https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html
"""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import Any, Iterator

from drkit.errors import AwsCallError, DrkitError
from drkit.retries import propagating
from drkit.step import (
    AVAILABLE, DELETING, Change, Desired, Observation, Observed, Step, StepContext, decide_teardown,
)
from drkit.tags import from_aws, is_owned, to_aws

SECRET = "db-secret"
MASTER_USERNAME = "dbadmin"
RECOVERY_WINDOW_DAYS = 7  # the minimum Secrets Manager allows

# A force-deleted secret's name stays taken for a short while after DeleteSecret returns
# (the deletion is asynchronous); CreateSecret then fails with InvalidRequestException.
# https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html#SecretsManager-DeleteSecret-request-ForceDeleteWithoutRecovery
NAME_STILL_TAKEN = (propagating("InvalidRequestException", message="scheduled for deletion"),)
# RestoreSecret on a secret that a forced delete is removing: it cannot come back, create it anew.
GONE_FOR_GOOD = (("InvalidRequestException", "marked for deletion"), ("ResourceNotFoundException", ""))


def generate_master_password() -> str:
    """32 random URL-safe characters (letters, digits, '-' and '_').

    RDS accepts 8-41 printable ASCII characters except '/', '"', '@' and space for an Aurora
    master password; this alphabet has none of the excluded ones and needs no quoting anywhere.
    https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
    """
    return secrets.token_urlsafe(24)


@contextlib.contextmanager
def withholding(secret: str, what: str) -> Iterator[None]:
    """Let no error text that contains `secret` escape (botocore's parameter validation quotes
    the values it rejects): such an error is replaced by one that says what failed, not why."""
    try:
        yield
    except Exception as exc:
        if secret in str(exc):
            raise DrkitError(f"{what} failed; the error text is withheld because it contains the master password") from None
        raise


def master_credentials(ctx: StepContext, secret_arn: str) -> tuple[str, str]:
    """The master username and password from the secret, for the one call that needs them."""
    value = ctx.call("secretsmanager", "get_secret_value", SecretId=secret_arn)
    document = json.loads(value["SecretString"])
    return document["username"], document["password"]


class EnsureDbSecret(Step):
    name = "ensure_db_secret"

    def __init__(self, role: str = "global") -> None:
        super().__init__(role)

    # Observe -------------------------------------------------------------------------------
    def observe(self, ctx: StepContext) -> Observation:
        found = ctx.call("secretsmanager", "describe_secret", SecretId=ctx.config.names.db_secret, missing_ok=True)
        if found is None:
            return Observation({})
        tags = from_aws(found.get("Tags"))
        replication = found.get("ReplicationStatus", [])
        observed = Observed(
            "secret", SECRET, found["ARN"],
            # A secret scheduled for deletion is going away: provision restores it.
            status=DELETING if found.get("DeletedDate") else AVAILABLE,
            attrs={
                "replica_regions": sorted(r["Region"] for r in replication),
                # region -> why: a replica AWS could not create; provision removes and re-adds it.
                "failed_replicas": {r["Region"]: r.get("StatusMessage") or "Failed"
                                    for r in replication if r.get("Status") == "Failed"},
            },
            tags=tags,
            owned=is_owned(tags, ctx.config.env, self.name),
        )
        return Observation({SECRET: observed})

    # Decide --------------------------------------------------------------------------------
    def desired(self, ctx: StepContext, observation: Observation) -> list[Desired]:
        name = ctx.config.names.db_secret
        return [Desired("secret", SECRET, name, {"replica_regions": [ctx.config.dr_region], "failed_replicas": {}},
                        ctx.tags_for(SECRET, name))]

    def plan_teardown(self, ctx: StepContext) -> list[Change]:
        """A secret already scheduled for deletion is done, unless it must go at once."""
        observation = self.observe(ctx)
        changes = decide_teardown(self.key, ctx.region, self.desired(ctx, observation), observation)
        if ctx.force:
            return changes
        return [c for c in changes if observation.get(c.key).status != DELETING]

    def outputs(self, ctx: StepContext) -> dict[str, Any]:
        return {"db_secret_arn": ctx.recorded_id(SECRET), "db_secret_name": ctx.config.names.db_secret}

    # Apply ---------------------------------------------------------------------------------
    def _described(self, ctx: StepContext, secret_id: str) -> dict[str, Any] | None:
        return ctx.call("secretsmanager", "describe_secret", SecretId=secret_id, missing_ok="ResourceNotFoundException")

    def create_secret(self, ctx: StepContext, change: Change) -> None:
        if change.resource_id and self._restore(ctx, change):
            return
        password = generate_master_password()

        def created() -> dict[str, Any] | None:
            """For a lost CreateSecret answer: drkit's secret under this name, live."""
            found = self._described(ctx, change.name)
            owned = found and is_owned(from_aws(found.get("Tags")), ctx.config.env, self.name)
            return {"ARN": found["ARN"]} if owned and not found.get("DeletedDate") else None

        with withholding(password, f"creating secret {change.name}"):
            secret = ctx.call(
                "secretsmanager", "create_secret", Name=change.name,
                Description=f"Aurora master credentials of drkit env {ctx.config.env} (generated once by drkit)",
                SecretString=json.dumps({"username": MASTER_USERNAME, "password": password}),
                AddReplicaRegions=[{"Region": region} for region in change.expected["replica_regions"]],
                Tags=to_aws(ctx.tags_for(change.key, change.name)),
                not_yet=NAME_STILL_TAKEN, settled=created, resource=change.name,
            )
        ctx.record(change.key, "secret", secret["ARN"])

    def _restore(self, ctx: StepContext, change: Change) -> bool:
        """Bring a secret scheduled for deletion back, with the same password. False: AWS refused,
        it is being deleted for good (a forced delete), so the caller creates it anew."""

        def restored() -> dict[str, Any] | None:
            found = self._described(ctx, change.resource_id)
            return {"ARN": found["ARN"]} if found and not found.get("DeletedDate") else None

        try:
            ctx.call("secretsmanager", "restore_secret", SecretId=change.resource_id, settled=restored,
                     resource=change.name)
        except AwsCallError as error:
            if any(error.code == code and fragment in error.message for code, fragment in GONE_FOR_GOOD):
                ctx.log.info("secret.restore_refused", step=self.key, code=error.code, next="create")
                return False
            raise
        ctx.record(change.key, "secret", change.resource_id)
        # It has no replica: a replicated secret cannot be scheduled for deletion.
        self._replicate(ctx, change.resource_id, change.expected["replica_regions"], [])
        return True

    def update_secret(self, ctx: StepContext, change: Change) -> None:
        if change.attribute == "tags":
            ctx.call("secretsmanager", "tag_resource", SecretId=change.resource_id, Tags=to_aws(change.expected),
                     resource=change.name)
        elif change.attribute == "failed_replicas":
            # AWS does not retry a replica that failed (a secret of that name in the region, a
            # KMS problem): take the region out of replication, then add it again.
            failed = sorted(change.actual or {})
            self._replicate(ctx, change.resource_id, [], failed)
            self._replicate(ctx, change.resource_id, failed, [])
        else:
            self._replicate(ctx, change.resource_id, change.expected, change.actual or [])

    def _replicate(self, ctx: StepContext, secret_arn: str, wanted: list[str], current: list[str]) -> None:
        missing = [r for r in wanted if r not in current]
        extra = [r for r in current if r not in wanted]

        def replicas() -> set[str]:
            found = self._described(ctx, secret_arn) or {}
            return {r["Region"] for r in found.get("ReplicationStatus", [])}

        if extra:
            ctx.call("secretsmanager", "remove_regions_from_replication", SecretId=secret_arn,
                     RemoveReplicaRegions=extra, resource=secret_arn,
                     settled=lambda: {"ARN": secret_arn} if not replicas() & set(extra) else None)
        if missing:
            ctx.call("secretsmanager", "replicate_secret_to_regions", SecretId=secret_arn,
                     AddReplicaRegions=[{"Region": r} for r in missing], resource=secret_arn,
                     settled=lambda: {"ARN": secret_arn} if set(missing) <= replicas() else None)

    # Delete --------------------------------------------------------------------------------
    def delete_secret(self, ctx: StepContext, change: Change) -> None:
        current = self._described(ctx, change.resource_id)
        if current is None:
            return
        replicas = [r["Region"] for r in current.get("ReplicationStatus", [])]
        if replicas:
            # "You can't delete a primary secret that is replicated to other Regions."
            self._replicate(ctx, change.resource_id, [], replicas)
        window = {"ForceDeleteWithoutRecovery": True} if ctx.force else {"RecoveryWindowInDays": RECOVERY_WINDOW_DAYS}
        was_scheduled = bool(current.get("DeletedDate"))

        def deleted() -> dict[str, Any] | None:
            """For a lost DeleteSecret answer: gone, or newly scheduled for deletion."""
            found = self._described(ctx, change.resource_id)
            done = found is None or (found.get("DeletedDate") and not (ctx.force and was_scheduled))
            return {"ARN": change.resource_id} if done else None

        ctx.call("secretsmanager", "delete_secret", SecretId=change.resource_id,
                 missing_ok="ResourceNotFoundException", settled=deleted, resource=change.name, **window)
