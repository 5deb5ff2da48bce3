"""Contract: an AWS managed alias has no TargetKeyId until its key exists, then the real one.
https://docs.aws.amazon.com/kms/latest/APIReference/API_ListAliases.html"""

from __future__ import annotations

import boto3


def _rds_alias(kms) -> dict:
    return next(a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/aws/rds")


def test_an_aws_managed_alias_names_its_key_only_once_the_key_exists(aws):
    kms = boto3.client("kms", region_name="us-east-2")
    before = _rds_alias(kms)
    assert "TargetKeyId" not in before
    assert before["AliasArn"].endswith(":alias/aws/rds")
    assert kms.list_keys()["Keys"] == []  # listing created nothing

    key = kms.describe_key(KeyId="alias/aws/rds")["KeyMetadata"]  # this creates the managed key
    assert _rds_alias(kms)["TargetKeyId"] == key["KeyId"]
