"""drkit's configuration: where each value comes from, and every check made before any AWS call.

Precedence: command-line flags, then environment variables, then `drkit.toml`, then defaults.
Validation covers the environment suffix (against every derived AWS name), the regions (against
botocore's own partition data), the CIDR plan and the AWS profile.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from drkit.errors import UserInputError
from drkit.naming import ROLES, Names, naming_problems
from drkit.storage.location import S3StateLocation, is_s3_url, parse_s3_url

DEFAULT_ENV = "dev"
DEFAULT_PRIMARY_REGION = "us-east-1"
DEFAULT_DR_REGION = "us-east-2"
DEFAULT_CONFIG_FILE = "drkit.toml"
DEFAULT_PARALLEL = 4
DEFAULT_DOMAIN = "example.com"


@dataclass(frozen=True)
class NetworkPlan:
    """The CIDRs of one region's VPC (the seed: 10.0.0.0/16 primary, 10.1.0.0/16 dr), and the
    zones its subnets may use, in order of preference (empty: any zone the account offers)."""

    vpc_cidr: str
    private_subnet_cidrs: tuple[str, str, str]
    public_subnet_cidr: str
    availability_zones: tuple[str, ...] = ()  # zone names (us-east-1a) or zone ids (use1-az1)

    @classmethod
    def default(cls, second_octet: int) -> "NetworkPlan":
        base = f"10.{second_octet}"
        return cls(
            vpc_cidr=f"{base}.0.0/16",
            private_subnet_cidrs=(f"{base}.1.0/24", f"{base}.2.0/24", f"{base}.3.0/24"),
            public_subnet_cidr=f"{base}.10.0/24",
        )


DEFAULT_NETWORKS = {"primary": NetworkPlan.default(0), "dr": NetworkPlan.default(1)}


@dataclass(frozen=True)
class Config:
    env: str = DEFAULT_ENV
    primary_region: str = DEFAULT_PRIMARY_REGION
    dr_region: str = DEFAULT_DR_REGION
    state_path: Path = Path(".drkit") / f"{DEFAULT_ENV}.state.json"
    profile: str | None = None
    endpoint_url: str | None = None
    parallel: int = DEFAULT_PARALLEL
    networks: Mapping[str, NetworkPlan] = field(default_factory=lambda: dict(DEFAULT_NETWORKS))
    domain: str = DEFAULT_DOMAIN  # the public zone is payments-<env>.<domain>
    alerts_email: str | None = None  # drkit.toml: subscribed to each region's alerts topic
    # `--state s3://...`: the state, lock, audit log and journals live in S3 (state_path is then
    # only the local cache location, never the state itself).
    state_url: str | None = None

    @property
    def state_location(self) -> S3StateLocation | None:
        if self.state_url is None:
            return None
        return parse_s3_url(self.state_url, primary_region=self.primary_region, dr_region=self.dr_region)

    @property
    def state_name(self) -> str:
        """Where the state is, as shown to the user."""
        return self.state_url or str(self.state_path)

    def region(self, role: str) -> str:
        """The AWS region of a role ('primary' or 'dr'); 'global' resources live in primary."""
        return self.dr_region if role == "dr" else self.primary_region

    @property
    def names(self) -> Names:
        return Names(self.env, self.domain)

    @property
    def regions(self) -> dict[str, str]:
        return {"primary": self.primary_region, "dr": self.dr_region}


# Keys accepted in drkit.toml, beside the [network.primary] and [network.dr] tables.
_FILE_KEYS = {"env", "primary_region", "dr_region", "state", "profile", "endpoint_url", "parallel", "domain",
              "alerts_email"}
_NETWORK_KEYS = {"vpc_cidr", "private_subnet_cidrs", "public_subnet_cidr", "availability_zones"}
# A zone id names the same physical zone in every account; zone names are shuffled per account.
# https://docs.aws.amazon.com/ram/latest/userguide/working-with-az-ids.html
_ZONE_ID = re.compile(r"^[a-z]{2,}[0-9]+-az[0-9]+$")


def read_config_file(path: Path, *, required: bool) -> dict[str, Any]:
    """Parse drkit.toml; unknown keys are errors, so a typo never silently falls back."""
    if not path.exists():
        if required:
            raise UserInputError(f"config file {path} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = set(data) - _FILE_KEYS - {"network"}
    if unknown:
        raise UserInputError(
            f"config file {path}: unknown key(s) {', '.join(sorted(unknown))}",
            hint=f"allowed: {', '.join(sorted(_FILE_KEYS | {'network'}))}",
        )
    networks = data.get("network", {})
    if not isinstance(networks, dict) or set(networks) - set(ROLES):
        raise UserInputError(f"config file {path}: [network] may only hold [network.primary] and [network.dr]")
    for role, table in networks.items():
        if not isinstance(table, dict) or set(table) - _NETWORK_KEYS:
            raise UserInputError(
                f"config file {path}: [network.{role}] may only set {', '.join(sorted(_NETWORK_KEYS))}"
            )
    return data


def build_config(
    overrides: Mapping[str, Any],
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Merge flags and env vars (`overrides`, None when unset) over the file and the defaults."""
    environ = os.environ if environ is None else environ
    explicit_file = config_file is not None
    file_path = config_file or Path(DEFAULT_CONFIG_FILE)
    file_data = read_config_file(file_path, required=explicit_file)

    def pick(key: str, file_key: str | None = None, default: Any = None) -> Any:
        value = overrides.get(key)
        if value is not None:
            return value
        value = file_data.get(file_key or key)
        return default if value is None else value

    env = str(pick("env", default=DEFAULT_ENV))
    state = pick("state", default=None)
    parallel = pick("parallel", default=DEFAULT_PARALLEL)
    networks = dict(DEFAULT_NETWORKS)
    for role, table in file_data.get("network", {}).items():
        base = networks[role]
        networks[role] = NetworkPlan(
            vpc_cidr=str(table.get("vpc_cidr", base.vpc_cidr)),
            private_subnet_cidrs=tuple(table.get("private_subnet_cidrs", base.private_subnet_cidrs)),  # type: ignore[arg-type]
            public_subnet_cidr=str(table.get("public_subnet_cidr", base.public_subnet_cidr)),
            availability_zones=_zone_list(table.get("availability_zones", base.availability_zones), role),
        )
    primary_region = str(pick("primary_region", default=DEFAULT_PRIMARY_REGION))
    dr_region = str(pick("dr_region", default=DEFAULT_DR_REGION))
    state_url = str(state) if is_s3_url(str(state) if state else None) else None
    if state_url:
        state_path = parse_s3_url(state_url, primary_region=primary_region, dr_region=dr_region).cache_dir() / "state.json"
    else:
        state_path = Path(state) if state else Path(".drkit") / f"{env}.state.json"
    config = Config(
        env=env,
        primary_region=primary_region,
        dr_region=dr_region,
        state_path=state_path,
        state_url=state_url,
        profile=pick("profile") or None,
        endpoint_url=overrides.get("endpoint_url") or environ.get("AWS_ENDPOINT_URL") or file_data.get("endpoint_url") or None,
        parallel=_positive_int(parallel, "--parallel"),
        networks=networks,
        domain=str(pick("domain", default=DEFAULT_DOMAIN)).rstrip(".").lower(),
        alerts_email=_email(pick("alerts_email")),
    )
    validate(config)
    return config


def _email(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    local, _, domain = text.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in text):
        raise UserInputError(f"alerts_email {text!r} in drkit.toml is not an email address")
    return text


def _zone_list(value: Any, role: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(z, str) for z in value):
        raise UserInputError(f"[network.{role}] availability_zones must be a list of zone names or zone ids")
    return tuple(value)


def _positive_int(value: Any, label: str) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise UserInputError(f"{label} must be a whole number, not {value!r}")
    number = int(value)
    if number < 1:
        raise UserInputError(f"{label} must be at least 1, not {number}")
    return number


def validate(config: Config) -> None:
    """Refuse a configuration AWS would reject or that could not work, with one clear line."""
    _validate_domain(config.domain)
    problems = naming_problems(config.env, config.domain)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserInputError(f"--env {config.env!r} is not usable: {problems[0]}{more}")
    _validate_regions(config.primary_region, config.dr_region)
    _validate_networks(config.networks)
    for role, plan in config.networks.items():
        _validate_zones(plan.availability_zones, role, config.region(role))
    _validate_endpoint(config.endpoint_url)
    if config.state_url is None:
        check_state_path(config.state_path)


def _validate_endpoint(url: str | None) -> None:
    """An endpoint botocore could send to: http(s), a host, and a port if any that is a number."""
    if not url:
        return
    if not url.startswith(("http://", "https://")):
        raise UserInputError(f"--endpoint-url {url!r} must start with http:// or https://")
    parsed = urlparse(url)
    try:
        parsed.port
    except ValueError:
        raise UserInputError(f"--endpoint-url {url!r} has an invalid port") from None
    if not parsed.hostname:
        raise UserInputError(f"--endpoint-url {url!r} has no host", hint="e.g. http://127.0.0.1:5000")


def check_state_path(path: Path, *, creatable: bool = False) -> None:
    """Refuse a state path that could never hold the state file, before any AWS call: otherwise a
    run would create resources and then fail to record them. `creatable` also proves the file
    (and its lock and audit file beside it) can be created there, by creating and removing a
    temporary file in the nearest existing directory -- the one test that also holds for root,
    read-only mounts and ACLs."""
    try:
        if path.is_dir():
            raise UserInputError(f"state path {path} is a directory", hint="give a file path, e.g. --state DIR/env.state.json")
        for ancestor in path.parents:
            if ancestor.is_dir():
                break
            if ancestor.exists():
                raise UserInputError(f"state path {path} is under {ancestor}, which is a file, not a directory")
        else:  # pragma: no cover - the root always exists
            return
    except OSError as exc:
        raise UserInputError(f"state path {path} cannot be checked: {exc.strerror}") from None
    if not creatable:
        return
    try:
        fd, probe = tempfile.mkstemp(prefix=".drkit-probe.", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserInputError(
            f"state path {path} cannot be created: {ancestor} is not writable ({exc.strerror})",
            hint="pass a writable --state",
        ) from None


def _validate_domain(domain: str) -> None:
    """A DNS name of at least two labels (RFC 1035 letters, digits, hyphens)."""
    labels = domain.split(".")
    if len(labels) < 2 or not all(re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", label) for label in labels):
        raise UserInputError(f"domain {domain!r} in drkit.toml is not a DNS domain name like example.com")


@functools.lru_cache(maxsize=1)
def known_regions() -> dict[str, str]:
    """Every region botocore's partition data knows, mapped to its partition (read once)."""
    import botocore.session

    session = botocore.session.get_session()
    regions: dict[str, str] = {}
    for partition in session.get_available_partitions():
        for region in session.get_available_regions("ec2", partition_name=partition):
            regions[region] = partition
    return regions


def _validate_regions(primary: str, dr: str) -> None:
    if primary == dr:
        raise UserInputError(
            f"--primary-region and --dr-region are both {primary!r}",
            hint="disaster recovery needs two different regions",
        )
    regions = known_regions()
    for label, region in (("--primary-region", primary), ("--dr-region", dr)):
        if region not in regions:
            raise UserInputError(f"{label} {region!r} is not an AWS region botocore knows")
    if regions[primary] != regions[dr]:
        raise UserInputError(
            f"regions {primary!r} ({regions[primary]}) and {dr!r} ({regions[dr]}) are in different "
            "AWS partitions; an Aurora global database cannot span partitions"
        )


def _network(cidr: str, label: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise UserInputError(f"{label} {cidr!r} is not a valid CIDR block: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise UserInputError(f"{label} {cidr!r} must be an IPv4 CIDR block")
    # https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html: /16 to /28.
    if not 16 <= net.prefixlen <= 28:
        raise UserInputError(f"{label} {cidr!r} must have a prefix between /16 and /28")
    return net


def _validate_networks(networks: Mapping[str, NetworkPlan]) -> None:
    vpcs = {}
    for role, plan in networks.items():
        if len(plan.private_subnet_cidrs) != 3:
            raise UserInputError(f"[network.{role}] private_subnet_cidrs must list exactly 3 CIDR blocks")
        vpc = _network(plan.vpc_cidr, f"{role} VPC CIDR")
        vpcs[role] = vpc
        subnets = [
            (f"{role} private subnet {i}", _network(c, f"{role} private subnet {i} CIDR"))
            for i, c in enumerate(plan.private_subnet_cidrs, start=1)
        ] + [(f"{role} public subnet", _network(plan.public_subnet_cidr, f"{role} public subnet CIDR"))]
        for label, subnet in subnets:
            if not subnet.subnet_of(vpc):
                raise UserInputError(f"{label} {subnet} is not inside the {role} VPC {vpc}")
        for i, (label_a, a) in enumerate(subnets):
            for label_b, b in subnets[i + 1 :]:
                if a.overlaps(b):
                    raise UserInputError(f"{label_a} {a} overlaps {label_b} {b}")
    if vpcs["primary"].overlaps(vpcs["dr"]):
        raise UserInputError(
            f"the primary VPC {vpcs['primary']} overlaps the dr VPC {vpcs['dr']}",
            hint="the regions' networks must not overlap so they can ever be peered",
        )


def _validate_zones(zones: tuple[str, ...], role: str, region: str) -> None:
    """Pinned zones: each a zone name of the role's region (us-east-1a) or a zone id (use1-az1),
    no repeats, and at least the 3 distinct zones the private subnets need."""
    if not zones:
        return
    for zone in zones:
        is_name = len(zone) == len(region) + 1 and zone.startswith(region) and zone[-1].isalpha() and zone[-1].islower()
        if not (is_name or _ZONE_ID.match(zone)):
            raise UserInputError(
                f"[network.{role}] availability_zones: {zone!r} is neither a zone of {region} "
                f"(like {region}a) nor a zone id (like use1-az1)"
            )
    repeated = sorted({z for z in zones if zones.count(z) > 1})
    if repeated:
        raise UserInputError(f"[network.{role}] availability_zones lists {', '.join(repeated)} more than once")
    if len(zones) < 3:
        raise UserInputError(
            f"[network.{role}] availability_zones lists {len(zones)} zone(s); the 3 private subnets need 3 distinct zones"
        )
