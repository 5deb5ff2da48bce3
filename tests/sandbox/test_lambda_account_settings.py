"""Contract: Lambda GetAccountSettings as AWS answers it -- the Region's concurrency limit, and the
unreserved part once a function reserves some.
https://docs.aws.amazon.com/lambda/latest/api/API_GetAccountSettings.html"""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest
from moto import mock_aws

from drkit.sandbox.extensions import install_all


@pytest.fixture
def lam():
    install_all()
    with mock_aws():
        yield boto3.client("lambda", region_name="us-east-2")


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("h.py", "def handler(e, c):\n    return 1\n")
    return buf.getvalue()


def test_account_settings_report_the_region_limit_and_what_reservations_leave(lam):
    limit = lam.get_account_settings()["AccountLimit"]
    assert limit["ConcurrentExecutions"] == 1000
    assert limit["UnreservedConcurrentExecutions"] == 1000
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam.create_function(FunctionName="f", Runtime="python3.12", Role=role, Handler="h.handler", Code={"ZipFile": _zip()})
    lam.put_function_concurrency(FunctionName="f", ReservedConcurrentExecutions=100)
    settings = lam.get_account_settings()
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 900
    assert settings["AccountUsage"]["FunctionCount"] == 1
