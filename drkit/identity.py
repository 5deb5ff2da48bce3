"""Who is acting: the AWS principal (STS GetCallerIdentity) and the local user, host and pid --
named in a lock, a broken lock's journal, and a runbook's approvals."""

from __future__ import annotations

import getpass
import os
import socket
from typing import Any

from drkit.errors import DrkitError


def whoami(aws: Any, region: str) -> dict[str, Any]:
    """STS is asked in `region` (a failover asks the healthy one); an unanswered STS is None."""
    try:
        arn = aws.call("sts", region, "get_caller_identity").get("Arn")
    except DrkitError:
        arn = None
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {"arn": arn, "user": user, "host": socket.gethostname(), "pid": os.getpid()}
