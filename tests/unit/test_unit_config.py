"""drkit.config.build_config: precedence, defaults, drkit.toml, and every refusal."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import drkit.config as config_module
from drkit.config import DEFAULT_NETWORKS, NetworkPlan, build_config
from drkit.errors import EXIT_BAD_INPUT, UserInputError

_real_known_regions = functools.cache(config_module.known_regions)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory (no stray drkit.toml); botocore's region data read once."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config_module, "known_regions", _real_known_regions)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# Precedence ---------------------------------------------------------------------------------

def test_defaults() -> None:
    config = build_config({}, environ={})
    assert (config.env, config.primary_region, config.dr_region) == ("dev", "us-east-1", "us-east-2")
    assert config.state_path == Path(".drkit") / "dev.state.json"
    assert (config.profile, config.endpoint_url, config.parallel) == (None, None, 4)
    assert dict(config.networks) == DEFAULT_NETWORKS
    assert config.networks["primary"].vpc_cidr == "10.0.0.0/16"
    assert config.networks["dr"].vpc_cidr == "10.1.0.0/16"


@pytest.mark.parametrize(
    "overrides, toml, environ, expected",
    [
        pytest.param({}, "", {}, {"env": "dev", "primary_region": "us-east-1", "parallel": 4}, id="defaults"),
        pytest.param({}, 'env = "fromfile"\nprimary_region = "us-west-2"\nparallel = 7\n', {},
                     {"env": "fromfile", "primary_region": "us-west-2", "parallel": 7}, id="file-over-defaults"),
        pytest.param({"env": "fromflag", "primary_region": "eu-west-1", "dr_region": "eu-west-2", "parallel": 2},
                     'env = "fromfile"\nprimary_region = "us-west-2"\nparallel = 7\n', {},
                     {"env": "fromflag", "primary_region": "eu-west-1", "dr_region": "eu-west-2", "parallel": 2},
                     id="flags-over-file"),
        pytest.param({"env": None, "parallel": None}, 'env = "fromfile"\nparallel = 7\n', {},
                     {"env": "fromfile", "parallel": 7}, id="none-override-means-unset"),
        pytest.param({}, 'profile = "p1"\n', {}, {"profile": "p1"}, id="profile-from-file"),
        pytest.param({"profile": "p2"}, 'profile = "p1"\n', {}, {"profile": "p2"}, id="profile-flag-wins"),
        pytest.param({}, "", {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"},
                     {"endpoint_url": "http://127.0.0.1:5000"}, id="endpoint-from-environ"),
        pytest.param({"endpoint_url": "http://flag:1"}, 'endpoint_url = "http://file:2"\n',
                     {"AWS_ENDPOINT_URL": "http://env:3"}, {"endpoint_url": "http://flag:1"},
                     id="endpoint-flag-beats-environ-and-file"),
        pytest.param({}, 'endpoint_url = "http://file:2"\n', {}, {"endpoint_url": "http://file:2"},
                     id="endpoint-from-file"),
        pytest.param({}, "", {"ENVIRONMENT_SUFFIX": "ignored", "PRIMARY_REGION": "eu-west-1"},
                     {"env": "dev", "primary_region": "us-east-1"}, id="other-env-vars-not-read-here"),
        pytest.param({"state": "custom/x.json"}, 'state = "file.json"\n', {}, {"state_path": Path("custom/x.json")},
                     id="state-flag-wins"),
        pytest.param({}, 'state = "file.json"\n', {}, {"state_path": Path("file.json")}, id="state-from-file"),
        pytest.param({"env": "prod"}, "", {}, {"state_path": Path(".drkit/prod.state.json")},
                     id="default-state-follows-env"),
        pytest.param({}, 'env = "stage"\n', {}, {"state_path": Path(".drkit/stage.state.json")},
                     id="default-state-follows-file-env"),
        pytest.param({"parallel": "3"}, "", {}, {"parallel": 3}, id="parallel-string"),
    ],
)
def test_precedence(tmp_path: Path, overrides, toml, environ, expected) -> None:
    if toml:
        write(tmp_path / "drkit.toml", toml)  # found in the working directory, no --config needed
    config = build_config(overrides, environ=environ)
    for attribute, value in expected.items():
        assert getattr(config, attribute) == value, attribute



def test_endpoint_environ_beats_file(tmp_path: Path) -> None:
    write(tmp_path / "drkit.toml", 'endpoint_url = "http://file:2"\n')
    config = build_config({}, environ={"AWS_ENDPOINT_URL": "http://env:3"})
    assert config.endpoint_url == "http://env:3"


def test_explicit_config_file(tmp_path: Path) -> None:
    path = write(tmp_path / "other.toml", 'env = "other"\ndr_region = "us-west-2"\n')
    write(tmp_path / "drkit.toml", 'env = "ignored"\n')
    config = build_config({}, config_file=path, environ={})
    assert (config.env, config.dr_region) == ("other", "us-west-2")


def test_network_primary_override(tmp_path: Path) -> None:
    write(tmp_path / "drkit.toml", """
[network.primary]
vpc_cidr = "172.16.0.0/16"
private_subnet_cidrs = ["172.16.1.0/24", "172.16.2.0/24", "172.16.3.0/24"]
public_subnet_cidr = "172.16.100.0/24"
""")
    config = build_config({}, environ={})
    assert config.networks["primary"] == NetworkPlan(
        "172.16.0.0/16", ("172.16.1.0/24", "172.16.2.0/24", "172.16.3.0/24"), "172.16.100.0/24")
    assert config.networks["dr"] == DEFAULT_NETWORKS["dr"]


def test_network_partial_override_keeps_other_defaults(tmp_path: Path) -> None:
    write(tmp_path / "drkit.toml", '[network.dr]\npublic_subnet_cidr = "10.1.200.0/24"\n')
    config = build_config({}, environ={})
    assert config.networks["dr"] == NetworkPlan(
        "10.1.0.0/16", ("10.1.1.0/24", "10.1.2.0/24", "10.1.3.0/24"), "10.1.200.0/24")
    assert isinstance(config.networks["dr"].private_subnet_cidrs, tuple)


# Refusals -----------------------------------------------------------------------------------

def _net(role: str = "primary", **fields: object) -> str:
    lines = [f"[network.{role}]"]
    for key, value in fields.items():
        lines.append(f"{key} = {value!r}".replace("'", '"') if not isinstance(value, list)
                     else f"{key} = [{', '.join(chr(34) + v + chr(34) for v in value)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "overrides, toml, environ, fragment",
    [
        pytest.param({"dr_region": "us-east-1"}, None, {}, "are both 'us-east-1'", id="equal-regions"),
        pytest.param({"primary_region": "us-nowhere-1"}, None, {}, "--primary-region 'us-nowhere-1' is not an AWS region",
                     id="unknown-primary-region"),
        pytest.param({"dr_region": "mars-1"}, None, {}, "--dr-region 'mars-1' is not an AWS region",
                     id="unknown-dr-region"),
        pytest.param({"dr_region": "cn-north-1"}, None, {}, "different AWS partitions", id="cross-partition-cn"),
        pytest.param({"primary_region": "us-gov-west-1"}, None, {}, "different AWS partitions",
                     id="cross-partition-gov"),
        pytest.param({"env": "Bad_Env"}, None, {}, "--env 'Bad_Env' is not usable", id="bad-env"),
        pytest.param({"env": ""}, None, {}, "must not be empty", id="empty-env"),
        pytest.param({}, 'env = "UPPER"\n', {}, "--env 'UPPER' is not usable", id="bad-env-from-file"),
        pytest.param({}, _net(vpc_cidr="10.0.0/16"), {}, "primary VPC CIDR '10.0.0/16' is not a valid CIDR block",
                     id="malformed-cidr"),
        pytest.param({}, _net(vpc_cidr="banana"), {}, "is not a valid CIDR block", id="garbage-cidr"),
        pytest.param({}, _net(vpc_cidr="10.0.0.1/16"), {}, "has host bits set", id="non-strict-cidr"),
        pytest.param({}, _net("dr", public_subnet_cidr="10.1.10.5/24"), {},
                     "dr public subnet CIDR '10.1.10.5/24' is not a valid CIDR block", id="non-strict-subnet"),
        pytest.param({}, _net(vpc_cidr="10.0.0.0/15"), {}, "must have a prefix between /16 and /28",
                     id="prefix-too-short"),
        pytest.param({}, _net(public_subnet_cidr="10.0.10.0/29"), {}, "must have a prefix between /16 and /28",
                     id="prefix-too-long"),
        pytest.param({}, _net(vpc_cidr="fd00::/56"), {}, "must be an IPv4 CIDR block", id="ipv6"),
        pytest.param({}, _net(public_subnet_cidr="10.9.10.0/24"), {},
                     "primary public subnet 10.9.10.0/24 is not inside the primary VPC 10.0.0.0/16",
                     id="subnet-outside-vpc"),
        pytest.param({}, _net(private_subnet_cidrs=["10.0.1.0/24", "10.0.1.0/25", "10.0.3.0/24"]), {},
                     "primary private subnet 1 10.0.1.0/24 overlaps primary private subnet 2 10.0.1.0/25",
                     id="overlapping-private-subnets"),
        pytest.param({}, _net(public_subnet_cidr="10.0.3.128/25"), {},
                     "primary private subnet 3 10.0.3.0/24 overlaps primary public subnet 10.0.3.128/25",
                     id="public-overlaps-private"),
        pytest.param({}, _net("dr", vpc_cidr="10.0.0.0/16",
                              private_subnet_cidrs=["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"],
                              public_subnet_cidr="10.0.10.0/24"), {},
                     "the primary VPC 10.0.0.0/16 overlaps the dr VPC 10.0.0.0/16", id="overlapping-vpcs"),
        pytest.param({}, _net(private_subnet_cidrs=["10.0.1.0/24", "10.0.2.0/24"]), {},
                     "[network.primary] private_subnet_cidrs must list exactly 3 CIDR blocks", id="two-private"),
        pytest.param({}, _net(private_subnet_cidrs=["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24", "10.0.4.0/24"]), {},
                     "must list exactly 3 CIDR blocks", id="four-private"),
        pytest.param({"parallel": 0}, None, {}, "--parallel must be at least 1, not 0", id="parallel-zero"),
        pytest.param({"parallel": -2}, None, {}, "--parallel must be at least 1, not -2", id="parallel-negative"),
        pytest.param({"parallel": "many"}, None, {}, "--parallel must be a whole number, not 'many'",
                     id="parallel-text"),
        pytest.param({}, 'parallel = "x"\n', {}, "--parallel must be a whole number", id="parallel-file"),
        pytest.param({"endpoint_url": "localhost:4566"}, None, {}, "must start with http:// or https://",
                     id="endpoint-no-scheme"),
        pytest.param({}, None, {"AWS_ENDPOINT_URL": "ftp://x"}, "--endpoint-url 'ftp://x' must start with http://",
                     id="endpoint-env-bad-scheme"),
        pytest.param({}, 'colour = "blue"\n', {}, "unknown key(s) colour", id="unknown-key"),
        pytest.param({}, '[network.primary]\nvpc = "10.0.0.0/16"\n', {}, "[network.primary] may only set",
                     id="unknown-network-key"),
        pytest.param({}, '[network.tertiary]\nvpc_cidr = "10.2.0.0/16"\n', {},
                     "[network] may only hold [network.primary] and [network.dr]", id="unknown-network-role"),
        pytest.param({}, 'network = "10.0.0.0/16"\n', {}, "[network] may only hold", id="network-not-table"),
        pytest.param({}, "env = \n", {}, "is not valid TOML", id="invalid-toml"),
        pytest.param({}, "[[[", {}, "is not valid TOML", id="invalid-toml-brackets"),
    ],
)
def test_refusals(tmp_path: Path, overrides, toml, environ, fragment) -> None:
    if toml is not None:
        write(tmp_path / "drkit.toml", toml)
    with pytest.raises(UserInputError) as info:
        build_config(overrides, environ=environ)
    err = info.value
    assert err.exit_code == EXIT_BAD_INPUT == 2
    assert fragment in err.message
    assert "\n" not in err.one_line()


def test_invalid_utf8_toml_refused(tmp_path: Path) -> None:
    (tmp_path / "drkit.toml").write_bytes(b'env = "\xff\xfe"\n')
    with pytest.raises(UserInputError, match="is not valid TOML"):
        build_config({}, environ={})


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(UserInputError) as info:
        build_config({}, config_file=missing, environ={})
    assert info.value.exit_code == 2
    assert info.value.message == f"config file {missing} does not exist"


def test_missing_default_config_file_is_fine() -> None:
    assert not Path("drkit.toml").exists()
    assert build_config({}, environ={}).env == "dev"


def test_unknown_keys_hint_lists_allowed(tmp_path: Path) -> None:
    write(tmp_path / "drkit.toml", 'regoin = "x"\nenv = "dev"\nzzz = 1\n')
    with pytest.raises(UserInputError) as info:
        build_config({}, environ={})
    assert "unknown key(s) regoin, zzz" in info.value.message
    assert "primary_region" in (info.value.hint or "")


def test_region_mapping() -> None:
    config = build_config({"primary_region": "eu-west-1", "dr_region": "eu-central-1"}, environ={})
    assert config.regions == {"primary": "eu-west-1", "dr": "eu-central-1"}
    assert [config.region(r) for r in ("primary", "dr", "global")] == ["eu-west-1", "eu-central-1", "eu-west-1"]


def test_same_partition_non_default_regions_accepted() -> None:
    config = build_config({"primary_region": "cn-north-1", "dr_region": "cn-northwest-1"}, environ={})
    assert (config.primary_region, config.dr_region) == ("cn-north-1", "cn-northwest-1")
