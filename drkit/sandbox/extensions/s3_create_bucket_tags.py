"""CreateBucket with tags, as AWS takes them.

CreateBucketConfiguration may carry `Tags`, applied to the bucket as it is created:
https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucketConfiguration.html
moto 5.2 parses only the LocationConstraint and drops the tags, so a bucket created by a run that
is killed before anything else could not be recognised as drkit's. This extension applies them
when (and only when) the request creates the bucket.
"""

from __future__ import annotations

from typing import Any

import xmltodict
from moto.s3.responses import S3Response

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_create_bucket_tags_installed"


def install(timings: SandboxTimings) -> None:
    if getattr(S3Response, _MARK, False):
        return
    setattr(S3Response, _MARK, True)
    original = S3Response._bucket_response_put

    def bucket_response_put(self: S3Response, request: Any, bucket_name: str, querystring: dict[str, Any]) -> Any:
        creating = not querystring and bucket_name not in self.backend.buckets
        result = original(self, request, bucket_name, querystring)
        if creating and bucket_name in self.backend.buckets:
            tags = _tags_in(self.body)
            if tags:
                self.backend.put_bucket_tagging(bucket_name, tags)
        return result

    S3Response._bucket_response_put = bucket_response_put  # type: ignore[method-assign]


def _tags_in(body: bytes | None) -> dict[str, str]:
    if not body:
        return {}
    try:
        config = xmltodict.parse(body).get("CreateBucketConfiguration") or {}
    except Exception:  # not XML: no configuration, so no tags
        return {}
    tags = (config.get("Tags") or {}).get("Tag") or []
    if isinstance(tags, dict):
        tags = [tags]
    return {t["Key"]: t.get("Value") or "" for t in tags}
