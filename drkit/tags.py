"""drkit's ownership tags: how a resource is marked as drkit's, found again, and repaired.

Every taggable resource gets Name, Environment, Project, ManagedBy, DR-Role, the step that owns
it and the resource's key within that step, all in the create call itself. The last two let a
step find each of its resources with one filtered describe call, with or without a state file.
"""

from __future__ import annotations

from typing import Iterable, Mapping

MANAGED_BY = "drkit"
PROJECT = "DisasterRecovery"
STEP_TAG = "drkit:step"
RESOURCE_TAG = "drkit:resource"


def ownership_tags(env: str, dr_role: str, step: str) -> dict[str, str]:
    """The tags every resource of one step shares (and that a describe filters on)."""
    return {
        "Environment": env,
        "Project": PROJECT,
        "ManagedBy": MANAGED_BY,
        "DR-Role": dr_role,
        STEP_TAG: step,
    }


def resource_tags(env: str, dr_role: str, step: str, key: str, name: str) -> dict[str, str]:
    return {"Name": name, **ownership_tags(env, dr_role, step), RESOURCE_TAG: key}


def to_aws(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def from_aws(tag_list: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list or ()}


def tag_specifications(resource_type: str, tags: Mapping[str, str]) -> list[dict]:
    """EC2's TagSpecifications, so a resource is never created untagged."""
    return [{"ResourceType": resource_type, "Tags": to_aws(tags)}]


def ec2_tag_filters(tags: Mapping[str, str]) -> list[dict]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]


def missing_tags(desired: Mapping[str, str], actual: Mapping[str, str]) -> dict[str, str]:
    """Desired tags absent or different on the resource. Tags drkit does not set are left alone."""
    return {k: v for k, v in desired.items() if actual.get(k) != v}


def is_owned(tags: Mapping[str, str], env: str, step: str) -> bool:
    """Whether the tags say this resource belongs to drkit's `step` in `env`."""
    return (
        tags.get("ManagedBy") == MANAGED_BY
        and tags.get("Environment") == env
        and tags.get(STEP_TAG) == step
    )
