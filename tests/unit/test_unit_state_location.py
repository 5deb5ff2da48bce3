"""`--state s3://BUCKET/PREFIX[?region=R&replica=NAME]`: parsed and checked before any AWS call."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.config import build_config
from drkit.errors import UserInputError


def config(state: str):
    return build_config({"env": "test", "state": state}, environ={})


def test_defaults_home_in_the_dr_region_and_the_replica_in_the_other():
    location = config("s3://team-state/prod/dr").state_location
    assert (location.bucket, location.prefix, location.region) == ("team-state", "prod/dr", "us-east-2")
    assert (location.replica, location.replica_region) == ("team-state-replica", "us-east-1")
    assert location.key("state.json") == "prod/dr/state.json"
    assert location.full_url == "s3://team-state/prod/dr?region=us-east-2&replica=team-state-replica"


def test_region_and_replica_can_be_named_and_a_local_path_stays_a_path():
    location = config("s3://team-state/p?region=us-east-1&replica=other-bucket").state_location
    assert (location.region, location.replica, location.replica_region) == ("us-east-1", "other-bucket", "us-east-2")
    local = config("some/dir/test.state.json")
    assert local.state_location is None and local.state_path == Path("some/dir/test.state.json")
    assert config("s3://team-state").state_location.key("state.json") == "state.json"


@pytest.mark.parametrize("url,fragment", [
    ("s3://Bad_Bucket/p", "not a valid S3 bucket name"),
    ("s3://ab/p", "not a valid S3 bucket name"),
    ("s3://team-state/p?region=eu-west-1", "neither the primary"),
    ("s3://team-state/p?colour=blue", "unknown or repeated"),
    ("s3://team-state/p?replica=team-state", "replica bucket name"),
    ("s3://team-state/a//b", "empty path segment"),
])
def test_a_bad_s3_url_is_bad_input(url, fragment):
    with pytest.raises(UserInputError) as info:
        config(url)
    assert fragment in info.value.message and info.value.exit_code == 2
