"""S3 replication (cross-Region and same-Region) as AWS runs it.

moto 5.2 stores a replication configuration, loses parts of it on GetBucketReplication and never
copies anything. This extension emulates (each point cites the AWS page it follows):

- GetBucketReplication returns the configuration that was put, element for element (`Filter`,
  `DeleteMarkerReplication`, `Priority`, `ID`, `ExistingObjectReplication`,
  `SourceSelectionCriteria`, and in `Destination` `ReplicationTime`, `Metrics`, `StorageClass`,
  `Account`, `AccessControlTranslation`, `EncryptionConfiguration`); a rule put without an `ID`
  gets a generated one.
  https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketReplication.html
- PutBucketReplication requirements, each an `InvalidRequest`: versioning Enabled on the source
  ("Versioning must be 'Enabled' on the bucket to apply a replication configuration", already in
  moto) and on every destination ("Destination bucket must have versioning enabled."), which must
  exist ("Destination bucket must exist."); a rule with a `Filter` (V2 schema) must have `Priority`
  and `DeleteMarkerReplication`; a rule without one (V1) may not have `DeleteMarkerReplication`; a
  tag-based rule may not replicate delete markers.
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication.html#replication-requirements
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-add-config.html
- New object versions written after the configuration was added (PutObject, CopyObject,
  CompleteMultipartUpload, POST uploads) that an Enabled rule matches (`Filter` prefix and tags,
  empty filter = all objects, V1 `Prefix`) are copied asynchronously, `timings.s3_replication`
  seconds later, to each destination bucket (any Region, any account of the sandbox): same key,
  body, version ID, creation time, metadata, tags, ACL, object-lock retention and encryption type;
  `Destination.StorageClass` overrides the storage class. When several rules match for one
  destination, the highest `Priority` wins. SSE-KMS objects are replicated only with
  `SourceSelectionCriteria.SseKmsEncryptedObjects` Enabled; objects that are themselves replicas
  are not replicated again.
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-what-is-isnot-replicated.html
- HeadObject/GetObject on a source object that a rule matches report `ReplicationStatus`
  `PENDING` until every destination has its copy, then `COMPLETED` (`FAILED` if a destination
  bucket is gone or no longer versioned); the copies report `REPLICA`.
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html
- A DELETE without a version ID adds a delete marker; it is replicated (same version ID) only by
  V2 rules with `DeleteMarkerReplication.Status` Enabled and by V1 rules (which replicate
  user-created delete markers). Deleting a specific version is never replicated.
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-what-is-isnot-replicated.html#replication-delete-op

Copies are made lazily, at the start of the next S3 request after they are due (moto's S3
responses are wrapped), so no thread is involved; `flush_replication()` makes every pending copy at
once.
"""

from __future__ import annotations

import copy
import random
import string
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

from moto.s3.exceptions import S3ClientError
from moto.s3.models import FakeDeleteMarker, FakeKey, S3Backend, s3_backends
from moto.s3.responses import S3Response

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_s3_replication_installed"
_CONFIG_ATTR = "_drkit_replication_config"
_STATUS_ATTR = "_drkit_replication_status"

_lock = threading.RLock()
_local = threading.local()
_timings: SandboxTimings | None = None
_pending: list["_Job"] = []
_shape_cache: dict[str, Any] = {}


class InvalidRequest(S3ClientError):
    code = "InvalidRequest"

    def __init__(self, message: str) -> None:
        super().__init__("InvalidRequest", message)


@dataclass
class _Destination:
    account_id: str
    bucket: str
    rule: dict[str, Any]
    done: bool = False
    failed: bool = False


@dataclass
class _Job:
    source_account: str
    source_partition: str
    source_bucket: str
    key_name: str
    version: Any  # the FakeKey or FakeDeleteMarker being replicated
    is_delete_marker: bool
    destinations: list[_Destination]
    created_at: float = field(default=0.0)
    source: Any = None  # the source FakeBucket (a reset of moto replaces it)


def _t() -> SandboxTimings:
    assert _timings is not None, "s3_replication extension is not installed"
    return _timings


# --- configuration ---------------------------------------------------------------------------


def _config_shape() -> Any:
    shape = _shape_cache.get("ReplicationConfiguration")
    if shape is None:
        import botocore.session

        model = botocore.session.get_session().get_service_model("s3")
        shape = model.shape_for("ReplicationConfiguration")
        _shape_cache["ReplicationConfiguration"] = shape
    return shape


def _parse_configuration(xml: str | bytes) -> dict[str, Any]:
    """Parse the PutBucketReplication body with botocore's own S3 XML rules (types, lists)."""
    from botocore.parsers import RestXMLParser

    parser = RestXMLParser()
    body = xml.encode("utf-8") if isinstance(xml, str) else xml
    root = parser._parse_xml_string_to_dom(body)
    return parser._parse_shape(_config_shape(), root)


def _bucket_from_arn(arn: str) -> str:
    return arn.split(":::", 1)[1] if ":::" in arn else arn


def _is_v2(rule: dict[str, Any]) -> bool:
    return "Filter" in rule


def _tag_based(rule: dict[str, Any]) -> bool:
    flt = rule.get("Filter") or {}
    return "Tag" in flt or bool((flt.get("And") or {}).get("Tags"))


def _validate_configuration(source_account: str, partition: str, config: dict[str, Any]) -> None:
    for rule in config.get("Rules", []):
        if _is_v2(rule):
            if "Priority" not in rule:
                raise InvalidRequest(
                    "Priority must be specified for this version of Cross Region Replication "
                    "configuration schema. Please refer to S3 Developer Guide for more information."
                )
            if "DeleteMarkerReplication" not in rule:
                raise InvalidRequest(
                    "DeleteMarkerReplication must be specified for this version of Cross Region "
                    "Replication configuration schema. Please refer to S3 Developer Guide for more "
                    "information."
                )
            if _tag_based(rule) and rule["DeleteMarkerReplication"].get("Status") == "Enabled":
                raise InvalidRequest(
                    "Delete marker replication is not supported if any Tag filter is specified. "
                    "Please refer to S3 Developer Guide for more information."
                )
        elif "DeleteMarkerReplication" in rule:
            raise InvalidRequest(
                "DeleteMarkerReplication cannot be used for this version of Cross Region "
                "Replication configuration schema. Please refer to S3 Developer Guide for more "
                "information."
            )
        destination = rule.get("Destination") or {}
        name = _bucket_from_arn(destination.get("Bucket", ""))
        account = destination.get("Account") or source_account
        bucket = s3_backends[account][partition].buckets.get(name)
        if bucket is None:
            raise InvalidRequest("Destination bucket must exist.")
        if not bucket.is_versioned:
            raise InvalidRequest("Destination bucket must have versioning enabled.")


def _stored_config(bucket: Any) -> dict[str, Any] | None:
    return bucket.__dict__.get(_CONFIG_ATTR) if getattr(bucket, "replication", None) else None


# --- rule matching ---------------------------------------------------------------------------


def _tags_of(backend: S3Backend, key: FakeKey) -> dict[str, str]:
    try:
        return backend.tagger.get_tag_dict_for_resource(key.arn)
    except Exception:  # pragma: no cover - defensive
        return {}


def _rule_matches(rule: dict[str, Any], key_name: str, tags: dict[str, str]) -> bool:
    if rule.get("Status") != "Enabled":
        return False
    if not _is_v2(rule):
        return key_name.startswith(rule.get("Prefix", "") or "")
    flt = rule.get("Filter") or {}
    prefix = flt.get("Prefix", "")
    wanted: list[dict[str, str]] = []
    if "Tag" in flt:
        wanted.append(flt["Tag"])
    if "And" in flt:
        prefix = flt["And"].get("Prefix", prefix)
        wanted.extend(flt["And"].get("Tags", []))
    if prefix and not key_name.startswith(prefix):
        return False
    return all(tags.get(tag["Key"]) == tag["Value"] for tag in wanted)


def _select_rules(config: dict[str, Any], key_name: str, tags: dict[str, str], account: str) -> list[_Destination]:
    """One rule per destination bucket: among matching rules, the highest Priority wins."""
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for rule in config.get("Rules", []):
        if not _rule_matches(rule, key_name, tags):
            continue
        destination = rule["Destination"]
        target = (destination.get("Account") or account, _bucket_from_arn(destination["Bucket"]))
        best = chosen.get(target)
        if best is None or rule.get("Priority", 0) > best.get("Priority", 0):
            chosen[target] = rule
    return [_Destination(acct, bucket, rule) for (acct, bucket), rule in chosen.items()]


# --- recording new versions ------------------------------------------------------------------


def _consider(kind: str, backend: S3Backend, bucket_name: str, version: Any) -> None:
    """Decide, once the request has fully applied (metadata, tags), whether to replicate."""
    bucket = backend.buckets.get(bucket_name)
    if bucket is None:
        return
    config = _stored_config(bucket)
    if not config:
        return
    if kind == "object":
        if version.__dict__.get(_STATUS_ATTR) == "REPLICA":
            return  # replicas are not replicated again
        if version.encryption == "aws:kms" and not any(
            ((r.get("SourceSelectionCriteria") or {}).get("SseKmsEncryptedObjects") or {}).get("Status")
            == "Enabled"
            for r in config.get("Rules", [])
        ):
            return  # SSE-KMS objects need an explicit opt-in
        destinations = _select_rules(config, version.name, _tags_of(backend, version), bucket.account_id)
        if not destinations:
            return
        version.__dict__[_STATUS_ATTR] = "PENDING"
    else:
        destinations = [
            d
            for d in _select_rules(config, version.name, {}, bucket.account_id)
            if not _is_v2(d.rule)
            or (
                not _tag_based(d.rule)
                and (d.rule.get("DeleteMarkerReplication") or {}).get("Status") == "Enabled"
            )
        ]
        if not destinations:
            return
    job = _Job(
        backend.account_id,
        bucket.partition,
        bucket_name,
        version.name,
        version,
        kind == "delete_marker",
        destinations,
        _t().now(),
        bucket,
    )
    with _lock:
        _pending.append(job)


def _note(kind: str, backend: S3Backend, bucket_name: str, version: Any) -> None:
    if getattr(_local, "replicating", False):
        return
    batch = getattr(_local, "batch", None)
    if batch is None:
        _consider(kind, backend, bucket_name, version)
    else:
        batch.append((kind, backend, bucket_name, version))


# --- copying ---------------------------------------------------------------------------------


def _copy_object(job: _Job, dest: _Destination) -> None:
    source_backend = s3_backends[job.source_account][job.source_partition]
    dest_backend = s3_backends[dest.account_id][job.source_partition]
    bucket = dest_backend.buckets.get(dest.bucket)
    if bucket is None or not bucket.is_versioned:
        dest.failed = True
        return
    src: FakeKey = job.version
    if job.is_delete_marker:
        existing = bucket.keys.get(job.key_name)
        marker = FakeDeleteMarker(key=existing if existing is not None else SimpleNamespace(name=job.key_name))
        marker._version_id = src.version_id
        marker.last_modified = src.last_modified
        bucket.keys[job.key_name] = marker
        dest.done = True
        return
    destination = dest.rule.get("Destination") or {}
    encryption, kms_key_id = src.encryption, src.kms_key_id
    if encryption == "aws:kms":
        kms_key_id = (destination.get("EncryptionConfiguration") or {}).get("ReplicaKmsKeyID") or kms_key_id
    replica = dest_backend.put_object(
        bucket_name=dest.bucket,
        key_name=job.key_name,
        value=src.value,
        storage=destination.get("StorageClass") or src.storage_class,
        encryption=encryption,
        kms_key_id=kms_key_id,
        bucket_key_enabled=src.bucket_key_enabled,
        lock_mode=src.lock_mode,
        lock_legal_status=src.lock_legal_status,
        lock_until=src.lock_until,
        checksum_value=src.checksum_value,
        disable_notification=True,
    )
    # Replicas keep the source's version ID and creation time.
    replica._version_id = src.version_id
    replica.last_modified = src.last_modified
    replica.set_metadata(copy.deepcopy(dict(src.metadata)), replace=True)
    replica.checksum_algorithm = src.checksum_algorithm
    replica.website_redirect_location = src.website_redirect_location
    replica.set_acl(copy.deepcopy(src.acl))
    tags = source_backend.tagger.list_tags_for_resource(src.arn).get("Tags", [])
    if tags:
        dest_backend.tagger.tag_resource(replica.arn, tags)
    replica.__dict__[_STATUS_ATTR] = "REPLICA"
    dest.done = True


def _still_there(job: _Job) -> bool:
    """False once moto was reset or the version was permanently deleted before it was copied."""
    bucket = s3_backends[job.source_account][job.source_partition].buckets.get(job.source_bucket)
    if bucket is None or bucket is not job.source:
        return False
    return any(version is job.version for version in bucket.keys.getlist(job.key_name, []))


def _run(job: _Job) -> None:
    if not _still_there(job):
        return
    _local.replicating = True
    try:
        for dest in job.destinations:
            if not dest.done and not dest.failed:
                _copy_object(job, dest)
    finally:
        _local.replicating = False
    if not job.is_delete_marker:
        failed = any(d.failed for d in job.destinations)
        job.version.__dict__[_STATUS_ATTR] = "FAILED" if failed else "COMPLETED"


def _process(only_due: bool) -> None:
    with _lock:
        if not _pending:
            return
        t = _t()
        due = [j for j in _pending if not only_due or t.elapsed_since(j.created_at) >= t.s3_replication]
        if not due:
            return
        _pending[:] = [j for j in _pending if j not in due]
        for job in due:
            _run(job)


def flush_replication() -> None:
    """Make every pending replica now (for tests)."""
    _process(only_due=False)


# --- installation ----------------------------------------------------------------------------


def _wrap_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: S3Response, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "batch", None) is not None:
            return original(self, *args, **kwargs)  # nested dispatch (ambiguous -> bucket/key)
        _process(only_due=True)
        _local.batch = []
        try:
            return original(self, *args, **kwargs)
        finally:
            batch, _local.batch = _local.batch, None
            for entry in batch:
                _consider(*entry)

    wrapper.__name__ = original.__name__
    return wrapper


def install(timings: SandboxTimings) -> None:
    global _timings
    if getattr(S3Backend, _MARK, False):
        return
    setattr(S3Backend, _MARK, True)
    _timings = timings

    for name in ("bucket_response", "key_response"):
        setattr(S3Response, name, _wrap_request(getattr(S3Response, name)))

    original_response_dict = FakeKey.response_dict.fget  # type: ignore[attr-defined]

    def response_dict(self: FakeKey) -> dict[str, Any]:
        headers = original_response_dict(self)
        status = self.__dict__.get(_STATUS_ATTR)
        if status:
            headers["x-amz-replication-status"] = status
        return headers

    FakeKey.response_dict = property(response_dict)  # type: ignore[assignment]

    original_from_xml = S3Response._replication_config_from_xml

    def replication_config_from_xml(self: S3Response, xml: str) -> dict[str, Any]:
        config = original_from_xml(self, xml)
        parsed = _parse_configuration(xml)
        for rule in parsed.get("Rules", []):
            if "ID" not in rule:
                rule["ID"] = "".join(random.choice(string.ascii_letters + string.digits) for _ in range(30))
        bucket = self.backend.get_bucket(self.bucket_name)
        _validate_configuration(bucket.account_id, bucket.partition, parsed)
        config["_drkit_parsed"] = parsed
        return config

    S3Response._replication_config_from_xml = replication_config_from_xml  # type: ignore[method-assign]

    original_put_replication = S3Backend.put_bucket_replication

    def put_bucket_replication(self: S3Backend, bucket_name: str, replication: dict[str, Any]) -> None:
        parsed = replication.pop("_drkit_parsed", None)
        original_put_replication(self, bucket_name, replication)
        self.get_bucket(bucket_name).__dict__[_CONFIG_ATTR] = parsed

    S3Backend.put_bucket_replication = put_bucket_replication  # type: ignore[method-assign]

    original_delete_replication = S3Backend.delete_bucket_replication

    def delete_bucket_replication(self: S3Backend, bucket_name: str) -> None:
        original_delete_replication(self, bucket_name)
        self.get_bucket(bucket_name).__dict__.pop(_CONFIG_ATTR, None)

    S3Backend.delete_bucket_replication = delete_bucket_replication  # type: ignore[method-assign]

    original_get_replication = S3Response.get_bucket_replication

    def get_bucket_replication(self: S3Response) -> Any:
        bucket = self.backend.get_bucket(self.bucket_name)
        parsed = _stored_config(bucket)
        if parsed is None:
            return original_get_replication(self)
        from moto.core.responses import ActionResult

        self.data["Action"] = "GetBucketReplication"
        return self.serialized(ActionResult({"ReplicationConfiguration": copy.deepcopy(parsed)}))

    S3Response.get_bucket_replication = get_bucket_replication  # type: ignore[method-assign]

    original_put_object = S3Backend.put_object

    def put_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> FakeKey:
        key = original_put_object(self, bucket_name, key_name, *args, **kwargs)
        if self.get_bucket(bucket_name).is_versioned:
            _note("object", self, bucket_name, key)
        return key

    S3Backend.put_object = put_object  # type: ignore[method-assign]

    original_delete_object = S3Backend.delete_object

    def delete_object(
        self: S3Backend, bucket_name: str, key_name: str, version_id: str | None = None, bypass: bool = False
    ) -> tuple[bool, dict[str, Any]]:
        success, meta = original_delete_object(self, bucket_name, key_name, version_id=version_id, bypass=bypass)
        if success and version_id is None and meta.get("delete-marker") == "true":
            marker = self.get_bucket(bucket_name).keys.getlist(key_name, [None])[-1]
            if isinstance(marker, FakeDeleteMarker):
                _note("delete_marker", self, bucket_name, marker)
        return success, meta

    S3Backend.delete_object = delete_object  # type: ignore[method-assign]
