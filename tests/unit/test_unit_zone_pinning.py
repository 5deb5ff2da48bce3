"""drkit.toml's `availability_zones` (zone pinning): parsed, validated before any AWS call, and
resolved to zone names by steps.vpc_zones (pure)."""

from __future__ import annotations

from pathlib import Path

import botocore.client
import pytest
from click.testing import CliRunner

from drkit.cli import main
from drkit.config import build_config
from drkit.errors import DrkitError, UserInputError
from steps.vpc_zones import assign_zones, candidate_zones

OFFERED = [{"ZoneName": "us-east-1a", "ZoneId": "use1-az6"}, {"ZoneName": "us-east-1b", "ZoneId": "use1-az1"},
           {"ZoneName": "us-east-1c", "ZoneId": "use1-az2"}, {"ZoneName": "us-east-1d", "ZoneId": "use1-az4"}]


def config_with(tmp_path: Path, zones: str, role: str = "primary"):
    path = tmp_path / "drkit.toml"
    path.write_text(f"[network.{role}]\navailability_zones = {zones}\n")
    return build_config({}, config_file=path, environ={})


def test_pinned_zones_are_read_per_role(tmp_path):
    config = config_with(tmp_path, '["use1-az1", "us-east-1c", "use1-az4"]')
    assert config.networks["primary"].availability_zones == ("use1-az1", "us-east-1c", "use1-az4")
    assert config.networks["primary"].vpc_cidr == "10.0.0.0/16"  # the CIDRs keep their defaults
    assert config.networks["dr"].availability_zones == ()


@pytest.mark.parametrize("zones,message", [
    ('["us-east-1a", "us-east-1b"]', "3 distinct zones"),
    ('["us-east-1a", "us-east-1b", "us-east-1a"]', "us-east-1a more than once"),
    ('["us-east-2a", "us-east-1b", "us-east-1c"]', "'us-east-2a' is neither a zone of us-east-1"),
    ('["us-east-1a", "us-east-1b", "az1"]', "'az1' is neither"),
    ('"us-east-1a"', "must be a list"),
    ('[1, 2, 3]', "must be a list"),
])
def test_bad_pinned_zones_are_refused(tmp_path, zones, message):
    with pytest.raises(UserInputError, match=message):
        config_with(tmp_path, zones)


def test_bad_pinned_zones_exit_2_before_any_aws_call(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", lambda *a: calls.append(a))
    path = tmp_path / "drkit.toml"
    path.write_text('[network.dr]\navailability_zones = ["us-east-2a"]\n')
    result = CliRunner().invoke(main, ["plan", "--config", str(path), "--state", str(tmp_path / "s.json")])
    assert result.exit_code == 2 and calls == []
    assert result.output.startswith("drkit: error: ") and result.output.count("\n") == 1


def test_a_misspelt_key_is_still_an_error(tmp_path):
    path = tmp_path / "drkit.toml"
    path.write_text('[network.primary]\navailability_zone = ["us-east-1a", "us-east-1b", "us-east-1c"]\n')
    with pytest.raises(UserInputError, match="may only set"):
        build_config({}, config_file=path, environ={})


def test_candidates_follow_the_pinned_order_by_name_or_id():
    assert candidate_zones(OFFERED, ("use1-az4", "us-east-1a", "use1-az1"), "us-east-1") == [
        "us-east-1d", "us-east-1a", "us-east-1b"]
    assert candidate_zones(list(reversed(OFFERED)), (), "us-east-1") == [
        "us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]


def test_a_pinned_zone_the_region_does_not_offer_is_an_error():
    with pytest.raises(DrkitError, match="use1-az3 pinned in drkit.toml are not available in us-east-1"):
        candidate_zones(OFFERED, ("use1-az1", "use1-az3", "use1-az4"), "us-east-1")


def test_refused_zones_are_skipped_for_new_subnets_only():
    zones = assign_zones(["a", "b", "c", "d"], {"private-subnet-1": "b"}, refused={"b", "c"})
    assert zones == {"private-subnet-1": "b", "private-subnet-2": "a", "private-subnet-3": "d",
                     "public-subnet": "a"}  # the public subnet cannot join subnet 1 in a refused zone
    with pytest.raises(DrkitError, match="refused by CreateSubnet: b, c"):
        assign_zones(["a", "b", "c", "d"], {}, refused={"b", "c"})
