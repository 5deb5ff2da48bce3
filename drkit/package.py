"""Deterministic Lambda deployment packages: the same source always gives the same zip bytes.

Lambda reports `CodeSha256` (base64 of the zip's SHA-256), so drkit compares it with the package
it would upload: a converged re-run makes no call, and changed code means one UpdateFunctionCode.
That only works if the zip is byte-for-byte reproducible: entries sorted, a fixed timestamp
(zip's epoch, 1980-01-01), fixed permissions (0644, readable by the runtime's user), one
compression level, no directory entries and no extra fields.
https://docs.aws.amazon.com/lambda/latest/dg/python-package.html
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Mapping

import lambda_handlers

FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # a regular file, rw-r--r--
HANDLERS_DIR = Path(lambda_handlers.__file__).parent
# The payment processor: lambda_handlers/payment.py is `payment.py` at the zip's root, so the
# function's Handler is "payment.handler".
PAYMENT_MODULES = ("payment.py",)
PAYMENT_HANDLER = "payment.handler"


def build_zip(files: Mapping[str, bytes]) -> bytes:
    """A zip of `files` (archive name -> content) that depends on nothing but them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIMESTAMP)
            info.external_attr = FILE_MODE << 16
            info.create_system = 3  # Unix, so the mode bits are honoured
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()


def code_sha256(package: bytes) -> str:
    """What Lambda reports as CodeSha256 for this package."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode("ascii")


def payment_package(source_dir: Path = HANDLERS_DIR) -> bytes:
    """The payment processor's deployment package, built from lambda_handlers/."""
    return build_zip({name: (source_dir / name).read_bytes() for name in PAYMENT_MODULES})
