"""The botocore floor in setup.cfg covers every API member drkit relies on (drkit/botocore_floor.py)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import botocore
import pytest

from drkit.botocore_floor import API_MEMBERS, ApiMember, required_botocore, resolve, version_tuple

SETUP_CFG = Path(__file__).resolve().parents[2] / "setup.cfg"


def install_floor(package: str) -> str:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    for line in config["options"]["install_requires"].split("\n"):
        match = re.fullmatch(rf"{package}\s*>=\s*([\d.]+)(,.*)?", line.strip())
        if match:
            return match.group(1)
    raise AssertionError(f"setup.cfg sets no floor for {package}")


@pytest.mark.parametrize("member", API_MEMBERS, ids=lambda m: f"{m.service}.{m.operation}.{m.path}")
def test_every_member_drkit_relies_on_is_in_the_installed_models(member):
    assert resolve(member) is None


@pytest.mark.parametrize("package", ["botocore", "boto3"])
def test_setup_cfg_floor_is_at_least_what_the_members_need(package):
    # boto3 x.y.z requires botocore >= x.y.z (one release train), so the same floor holds for both.
    assert version_tuple(install_floor(package)) >= version_tuple(required_botocore())


def test_the_floor_is_the_s3_etag_conditional_writes_release():
    assert required_botocore() == "1.35.69"
    assert version_tuple(botocore.__version__) >= version_tuple(required_botocore())


def test_resolve_reports_what_is_missing():
    assert resolve(ApiMember("rds", "CreateGlobalCluster", "input:NoSuchThing", "1.0.0", "")) == (
        "rds CreateGlobalCluster.input has no member NoSuchThing")
    assert "no operation" in resolve(ApiMember("rds", "NoSuchOperation", "input:Tags", "1.0.0", ""))
    assert resolve(ApiMember("rds", "DescribeGlobalClusters", "output:GlobalClusters.TagList.Key", "1.0.0", "")) is None
