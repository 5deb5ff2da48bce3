"""drkit.naming.naming_problems: every derived AWS name checked against its service's rules."""

from __future__ import annotations

import pytest

from drkit.naming import Names, naming_problems

# The longest usable suffix is bounded by the IAM role "payment-processor-primary-role-<env>":
# 31 characters of prefix, IAM's limit is 64, so 33 characters (and 34 is one too many).
LONGEST_VALID = 33


@pytest.mark.parametrize("env", ["dev", "prod-2", "a", "0", "test-env-1", "a" * LONGEST_VALID, "x1y2z3"])
def test_good_suffixes(env: str) -> None:
    assert naming_problems(env) == []


def test_longest_valid_boundary_exact() -> None:
    assert naming_problems("a" * LONGEST_VALID) == []
    env = "a" * (LONGEST_VALID + 1)
    assert naming_problems(env) == [
        f"IAM role name 'payment-processor-primary-role-{env}' must be 1-64 characters long (is 65)"
    ]


# (label in the message, name template, the service's limit, longest suffix that fits)
PER_NAME_LIMITS = [
    ("IAM role name", "payment-processor-primary-role-{}", "1-64", 64, 33),
    ("IAM role name", "payment-processor-dr-role-{}", "1-64", 64, 38),
    ("IAM role name", "s3-replication-role-{}", "1-64", 64, 44),
    ("Lambda function name", "payment-processor-primary-{}", "1-64", 64, 38),
    ("S3 bucket name", "dr-secondary-bucket-{}", "3-63", 63, 43),
    ("S3 bucket name", "dr-primary-bucket-{}", "3-63", 63, 45),
    ("Aurora identifier", "aurora-primary-{}-1", "1-63", 63, 46),
    ("Aurora identifier", "aurora-global-{}", "1-63", 63, 49),
]


@pytest.mark.parametrize("label, template, span, limit, longest", PER_NAME_LIMITS,
                         ids=[t[1].format("env") for t in PER_NAME_LIMITS])
def test_per_name_length_boundary(label: str, template: str, span: str, limit: int, longest: int) -> None:
    ok_env, bad_env = "a" * longest, "a" * (longest + 1)
    assert len(template.format(ok_env)) == limit
    assert not [p for p in naming_problems(ok_env) if p.startswith(f"{label} '{template.format(ok_env)}'")]
    assert (f"{label} '{template.format(bad_env)}' must be {span} characters long (is {limit + 1})"
            in naming_problems(bad_env))


def test_route53_label_boundary() -> None:
    # "payments-<env>" is one DNS label, at most 63 characters: 54 characters of suffix.
    assert not [p for p in naming_problems("a" * 54) if p.startswith("Route 53")]
    env = "a" * 55
    assert (f"Route 53 zone name 'payments-{env}.example.com' label 'payments-{env}' must be 1-63 characters long"
            in naming_problems(env))


@pytest.mark.parametrize(
    "env, expected_present, absent_labels",
    [
        pytest.param("Dev", [
            "S3 bucket name 'dr-primary-bucket-Dev' may contain only lowercase letters, digits, hyphens and dots",
            "Route 53 zone name 'payments-Dev.example.com' label 'payments-Dev' may contain only lowercase "
            "letters, digits and inner hyphens",
        ], ["Aurora identifier", "Lambda function name"], id="uppercase"),
        pytest.param("my_env", [
            "S3 bucket name 'dr-secondary-bucket-my_env' may contain only lowercase letters, digits, hyphens and dots",
            "Aurora identifier 'aurora-global-my_env' may contain only letters, digits and hyphens",
            "Route 53 zone name 'payments-my_env.example.com' label 'payments-my_env' may contain only lowercase "
            "letters, digits and inner hyphens",
        ], ["Lambda function name", "IAM role name"], id="underscore"),
        pytest.param("-dev", [
            "Aurora identifier 'aurora-global--dev' must not end with a hyphen or contain two consecutive hyphens",
        ], ["S3 bucket name"], id="leading-hyphen"),
        pytest.param("dev-", [
            "Aurora identifier 'aurora-global-dev-' must not end with a hyphen or contain two consecutive hyphens",
            "S3 bucket name 'dr-primary-bucket-dev-' must begin and end with a letter or digit",
            "Route 53 zone name 'payments-dev-.example.com' label 'payments-dev-' may contain only lowercase "
            "letters, digits and inner hyphens",
        ], [], id="trailing-hyphen"),
        pytest.param("a--b", [
            "Aurora identifier 'aurora-primary-a--b' must not end with a hyphen or contain two consecutive hyphens",
        ], ["S3 bucket name", "Route 53 zone name"], id="double-hyphen"),
        pytest.param("a.b", [
            "Aurora identifier 'aurora-global-a.b' may contain only letters, digits and hyphens",
            "Lambda function name 'payment-processor-primary-a.b' may contain only letters, digits, hyphens "
            "and underscores",
            "SNS topic name 'dr-alerts-dr-a.b' may contain only letters, digits, hyphens and underscores",
        ], ["S3 bucket name", "Route 53 zone name"], id="dot"),
        pytest.param("a..b", [
            "S3 bucket name 'dr-primary-bucket-a..b' must not contain two adjacent dots",
            "Route 53 zone name 'payments-a..b.example.com' label '' must be 1-63 characters long",
        ], [], id="two-dots"),
        pytest.param("a b", [
            "Lambda function name 'payment-processor-dr-a b' may contain only letters, digits, hyphens and underscores",
        ], [], id="space"),
    ],
)
def test_bad_suffixes_name_the_service(env: str, expected_present: list[str], absent_labels: list[str]) -> None:
    problems = naming_problems(env)
    for reason in expected_present:
        assert reason in problems
    for label in absent_labels:
        assert not [p for p in problems if p.startswith(label)], label
    assert all("\n" not in p for p in problems)


def test_empty_suffix() -> None:
    assert naming_problems("") == ["the environment suffix must not be empty"]


@pytest.mark.parametrize(
    "env, suffix",
    [
        pytest.param("s3alias", "-s3alias", id="s3alias"),
        pytest.param("x-s3alias", "-s3alias", id="x-s3alias"),
        pytest.param("-ol-s3", "--ol-s3", id="ol-s3"),
        pytest.param("-x-s3", "--x-s3", id="x-s3"),
        pytest.param("-table-s3", "--table-s3", id="table-s3"),
        pytest.param("x.mrap", ".mrap", id="mrap"),
    ],
)
def test_forbidden_s3_suffix_reachable(env: str, suffix: str) -> None:
    problems = naming_problems(env)
    for bucket in (f"dr-primary-bucket-{env}", f"dr-secondary-bucket-{env}"):
        assert f"S3 bucket name '{bucket}' must not end with {suffix!r}" in problems


def test_s3alias_is_refused_by_s3_alone() -> None:
    # Every other derived name accepts "s3alias"; only the two buckets refuse it.
    assert naming_problems("s3alias") == [
        "S3 bucket name 'dr-primary-bucket-s3alias' must not end with '-s3alias'",
        "S3 bucket name 'dr-secondary-bucket-s3alias' must not end with '-s3alias'",
    ]


def test_names_derived_cover_both_roles() -> None:
    names = dict()
    for kind, name in Names("dev").derived():
        names.setdefault(kind, set()).add(name)
    assert names["s3_bucket"] == {"dr-primary-bucket-dev", "dr-secondary-bucket-dev"}
    assert {"aurora-global-dev", "aurora-primary-dev-1", "aurora-dr-dev-1"} <= names["rds_identifier"]
    assert names["dns_zone"] == {"payments-dev.example.com"}
