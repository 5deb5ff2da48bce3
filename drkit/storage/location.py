"""Where the state lives: a local file, or `s3://BUCKET/PREFIX` with a replica bucket in the other region.

`s3://BUCKET/PREFIX` may carry `?region=R&replica=NAME`: the home bucket's region (default: the DR
region) and the replica bucket's name (default: `BUCKET-replica`). The replica is always in the
other of the two configured regions. Both must be known without asking S3, because drkit reads
the replica precisely when the home bucket's region cannot be reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from drkit.errors import UserInputError

SCHEME = "s3://"
REPLICA_SUFFIX = "-replica"
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_QUERY_KEYS = {"region", "replica"}


def is_s3_url(value: str | Path | None) -> bool:
    return isinstance(value, str) and value.startswith(SCHEME)


@dataclass(frozen=True)
class S3StateLocation:
    """The home bucket (in `region`), its replica (in `replica_region`) and the key prefix."""

    bucket: str
    prefix: str
    region: str
    replica: str
    replica_region: str

    def key(self, name: str) -> str:
        """The object key of `name` under the prefix (`prefix/name`, or `name` at the root)."""
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"

    @property
    def full_url(self) -> str:
        """The URL with every default spelt out: the line `drkit state init` prints."""
        return f"{self.url}?region={self.region}&replica={self.replica}"

    def cache_dir(self) -> Path:
        """Local directory for what must survive the loss of both copies: journal records written
        while the home region is down (uploaded by `drkit state reconcile`)."""
        return Path(".drkit") / "s3" / self.bucket / (self.prefix or "_root")


def parse_s3_url(url: str, *, primary_region: str, dr_region: str) -> S3StateLocation:
    """`s3://BUCKET/PREFIX[?region=R&replica=NAME]`, checked before any AWS call (exit 2)."""
    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise UserInputError(f"--state {url!r}: {bucket!r} is not a valid S3 bucket name",
                             hint="3-63 lowercase letters, digits, dots and hyphens")
    if "//" in prefix:
        raise UserInputError(f"--state {url!r}: the prefix has an empty path segment")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - _QUERY_KEYS
    if unknown or any(len(v) != 1 for v in query.values()):
        raise UserInputError(f"--state {url!r}: unknown or repeated parameter(s) {', '.join(sorted(unknown or query))}",
                             hint="allowed: region, replica (each once)")
    region = query.get("region", [dr_region])[0]
    if region not in (primary_region, dr_region):
        raise UserInputError(
            f"--state {url!r}: region {region!r} is neither the primary ({primary_region}) nor the DR region "
            f"({dr_region})", hint="the state bucket lives in one of the two regions, its replica in the other")
    replica_region = dr_region if region == primary_region else primary_region
    replica = query.get("replica", [bucket + REPLICA_SUFFIX])[0]
    if not _BUCKET.match(replica) or ".." in replica or replica == bucket:
        raise UserInputError(f"--state {url!r}: replica bucket name {replica!r} is not usable",
                             hint="pass ?replica=NAME with a valid bucket name other than the home bucket")
    return S3StateLocation(bucket, prefix, region, replica, replica_region)
