"""Every AWS name drkit derives from the environment suffix, and each service's naming rules.

The names follow the seed design (`vpc-primary-<env>`, `aurora-global-<env>`, ...). They are all
derived here so that `--env` can be checked against every one of them, with each service's real
length limit and character set, before drkit makes any AWS call.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Callable

ROLES = ("primary", "dr")


@dataclass(frozen=True)
class Names:
    """The names of one environment's resources."""

    env: str
    domain: str = "example.com"  # drkit.toml `domain`: the public zone is payments-<env>.<domain>

    def vpc(self, role: str) -> str:
        return f"vpc-{role}-{self.env}"

    def network_resource(self, role: str, key: str) -> str:
        """Name tag of a VPC part, e.g. `private-subnet-1-primary-dev`."""
        return f"{key}-{role}-{self.env}"

    @property
    def global_cluster(self) -> str:
        return f"aurora-global-{self.env}"

    def aurora_cluster(self, role: str) -> str:
        return f"aurora-{role}-{self.env}"

    def aurora_instance(self, role: str) -> str:
        return f"aurora-{role}-{self.env}-1"

    def db_subnet_group(self, role: str) -> str:
        return f"aurora-subnets-{role}-{self.env}"

    def security_group(self, role: str, purpose: str) -> str:
        return f"{purpose}-sg-{role}-{self.env}"

    def bucket(self, role: str) -> str:
        return f"dr-primary-bucket-{self.env}" if role == "primary" else f"dr-secondary-bucket-{self.env}"

    @property
    def dynamodb_table(self) -> str:
        return f"payment-transactions-{self.env}"

    def lambda_function(self, role: str) -> str:
        return f"payment-processor-{role}-{self.env}"

    def lambda_role(self, role: str) -> str:
        return f"payment-processor-{role}-role-{self.env}"

    @property
    def replication_role(self) -> str:
        return f"s3-replication-role-{self.env}"

    @property
    def db_secret(self) -> str:
        return f"drkit/{self.env}/aurora-master-password"

    def sns_topic(self, role: str) -> str:
        return f"dr-alerts-{role}-{self.env}"

    def api(self, role: str) -> str:
        return f"payment-api-{role}-{self.env}"

    @property
    def hosted_zone(self) -> str:
        return f"payments-{self.env}.{self.domain}"

    @property
    def api_hostname(self) -> str:
        """The one public hostname of the payment API (a custom domain in each region)."""
        return f"api.{self.hosted_zone}"

    def lambda_log_group(self, role: str) -> str:
        return f"/aws/lambda/{self.lambda_function(role)}"

    def derived(self) -> list[tuple[str, str]]:
        """(kind, name) for every name drkit derives, checked by `naming_problems`."""
        names: list[tuple[str, str]] = [
            ("rds_identifier", self.global_cluster),
            ("dynamodb_table", self.dynamodb_table),
            ("iam_role", self.replication_role),
            ("secret", self.db_secret),
            ("dns_zone", self.hosted_zone),
        ]
        for role in ROLES:
            names += [
                ("tag_value", self.vpc(role)),
                ("tag_value", self.network_resource(role, "private-subnet-1")),
                ("rds_identifier", self.aurora_cluster(role)),
                ("rds_identifier", self.aurora_instance(role)),
                ("db_subnet_group", self.db_subnet_group(role)),
                ("security_group", self.security_group(role, "aurora")),
                ("s3_bucket", self.bucket(role)),
                ("lambda_function", self.lambda_function(role)),
                ("iam_role", self.lambda_role(role)),
                ("sns_topic", self.sns_topic(role)),
                ("api_name", self.api(role)),
            ]
        return names


def _s3_bucket(name: str) -> str | None:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
    if not 3 <= len(name) <= 63:
        return f"must be 3-63 characters long (is {len(name)})"
    if not re.fullmatch(r"[a-z0-9.-]+", name):
        return "may contain only lowercase letters, digits, hyphens and dots"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "must begin and end with a letter or digit"
    if ".." in name:
        return "must not contain two adjacent dots"
    try:
        ipaddress.ip_address(name)
        return "must not be formatted as an IP address"
    except ValueError:
        pass
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if name.startswith(prefix):
            return f"must not start with {prefix!r}"
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if name.endswith(suffix):
            return f"must not end with {suffix!r}"
    return None


def _rds_identifier(name: str) -> str | None:
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
    if not 1 <= len(name) <= 63:
        return f"must be 1-63 characters long (is {len(name)})"
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        return "may contain only letters, digits and hyphens"
    if not name[0].isalpha():
        return "must begin with a letter"
    if name.endswith("-") or "--" in name:
        return "must not end with a hyphen or contain two consecutive hyphens"
    return None


def _lambda_function(name: str) -> str | None:
    # https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html
    if not 1 <= len(name) <= 64:
        return f"must be 1-64 characters long (is {len(name)})"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return "may contain only letters, digits, hyphens and underscores"
    return None


def _iam_role(name: str) -> str | None:
    # https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html
    if not 1 <= len(name) <= 64:
        return f"must be 1-64 characters long (is {len(name)})"
    if not re.fullmatch(r"[\w+=,.@-]+", name, flags=re.ASCII):
        return "may contain only letters, digits and + = , . @ _ -"
    return None


def _dynamodb_table(name: str) -> str | None:
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html
    if not 3 <= len(name) <= 255:
        return f"must be 3-255 characters long (is {len(name)})"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return "may contain only letters, digits, underscores, hyphens and dots"
    return None


def _secret(name: str) -> str | None:
    # https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html
    if not 1 <= len(name) <= 512:
        return f"must be 1-512 characters long (is {len(name)})"
    if not re.fullmatch(r"[A-Za-z0-9/_+=.@-]+", name):
        return "may contain only letters, digits and / _ + = . @ -"
    if re.search(r"-[A-Za-z0-9]{6}$", name):
        return "must not end with a hyphen and six characters (Secrets Manager reads it as an ARN suffix)"
    return None


def _dns_zone(name: str) -> str | None:
    # https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DomainNameFormat.html
    if len(name) > 253:
        return f"must be at most 253 characters (is {len(name)})"
    for label in name.split("."):
        if not 1 <= len(label) <= 63:
            return f"label {label!r} must be 1-63 characters long"
        if not re.fullmatch(r"[a-z0-9-]+", label) or label.startswith("-") or label.endswith("-"):
            return f"label {label!r} may contain only lowercase letters, digits and inner hyphens"
    return None


def _db_subnet_group(name: str) -> str | None:
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBSubnetGroup.html
    if not 1 <= len(name) <= 255:
        return f"must be 1-255 characters long (is {len(name)})"
    if not re.fullmatch(r"[a-z0-9._ -]+", name):
        return "may contain only lowercase letters, digits, periods, underscores, spaces and hyphens"
    if name == "default":
        return "must not be 'default'"
    return None


def _security_group(name: str) -> str | None:
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html
    if not 1 <= len(name) <= 255:
        return f"must be 1-255 characters long (is {len(name)})"
    if name.lower().startswith("sg-"):
        return "must not start with 'sg-'"
    if not re.fullmatch(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+", name):
        return "contains a character EC2 does not allow in VPC security group names"
    return None


def _sns_topic(name: str) -> str | None:
    # https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html
    if not 1 <= len(name) <= 256:
        return f"must be 1-256 characters long (is {len(name)})"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return "may contain only letters, digits, hyphens and underscores"
    return None


def _tag_value(name: str) -> str | None:
    # https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html
    if len(name) > 256:
        return f"must be at most 256 characters (is {len(name)})"
    if not re.fullmatch(r"[\w.:+=@/ -]*", name):
        return "contains a character AWS does not allow in tag values"
    return None


def _api_name(name: str) -> str | None:
    if not 1 <= len(name) <= 1024:
        return f"must be 1-1024 characters long (is {len(name)})"
    return None


NAME_RULES: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "s3_bucket": ("S3 bucket name", _s3_bucket),
    "rds_identifier": ("Aurora identifier", _rds_identifier),
    "lambda_function": ("Lambda function name", _lambda_function),
    "iam_role": ("IAM role name", _iam_role),
    "dynamodb_table": ("DynamoDB table name", _dynamodb_table),
    "secret": ("Secrets Manager secret name", _secret),
    "dns_zone": ("Route 53 zone name", _dns_zone),
    "db_subnet_group": ("DB subnet group name", _db_subnet_group),
    "security_group": ("security group name", _security_group),
    "sns_topic": ("SNS topic name", _sns_topic),
    "tag_value": ("Name tag", _tag_value),
    "api_name": ("API Gateway name", _api_name),
}


def naming_problems(env: str, domain: str = "example.com") -> list[str]:
    """Why `env` (with `domain`) would make a derived name invalid, one sentence per broken name."""
    if not env:
        return ["the environment suffix must not be empty"]
    problems = []
    for kind, name in Names(env, domain).derived():
        label, rule = NAME_RULES[kind]
        reason = rule(name)
        if reason:
            problems.append(f"{label} {name!r} {reason}")
    return problems
