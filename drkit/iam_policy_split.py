"""`drkit iam-policy --split`: the one policy document as several customer managed policies, each
within IAM's 6,144-character limit for a managed policy (IAM does not count white space). The
whole document is over it, and over the 10,240 characters all inline policies of a role may
total; a role may have 10 managed policies attached by default (20 with a quota increase).
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html

Statements are never cut: they are packed in order, so a part holds whole statements and the
parts together allow exactly what the one document allows.
"""

from __future__ import annotations

import json
from typing import Any

from drkit.errors import DrkitError

MANAGED_POLICY_LIMIT = 6144
ROLE_MANAGED_POLICIES_DEFAULT = 10


def policy_size(document: dict[str, Any]) -> int:
    """The size IAM checks against its limits: the document's characters, white space excluded."""
    return sum(1 for c in json.dumps(document) if not c.isspace())


def split(document: dict[str, Any], limit: int = MANAGED_POLICY_LIMIT) -> list[dict[str, Any]]:
    """`document`'s statements packed, in order, into documents of at most `limit` characters."""
    parts: list[list[dict[str, Any]]] = [[]]
    for statement in document["Statement"]:
        alone = _document(document, [statement])
        if policy_size(alone) > limit:
            raise DrkitError(f"the IAM statement {statement.get('Sid')!r} alone is {policy_size(alone)} characters, "
                             f"over the {limit} of a managed policy")
        if parts[-1] and policy_size(_document(document, parts[-1] + [statement])) > limit:
            parts.append([])
        parts[-1].append(statement)
    return [_document(document, statements) for statements in parts]


def named_parts(document: dict[str, Any], env: str, limit: int = MANAGED_POLICY_LIMIT) -> list[dict[str, Any]]:
    """The parts as IAM CreatePolicy takes them: a PolicyName and a PolicyDocument each."""
    parts = split(document, limit)
    return [{"PolicyName": f"drkit-operator-{env}-{i}", "PolicyDocument": part} for i, part in enumerate(parts, start=1)]


def _document(template: dict[str, Any], statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": template["Version"], "Statement": statements}
