"""`drkit outputs --write PATH` and `drkit sandbox outage --region R [--end]`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from drkit.cli import main
from drkit.outputs import SEED_OUTPUT_KEYS
from drkit.sandbox import SandboxServer
from drkit.sandbox.outage import active_outages


def test_outputs_write_is_flat_json_with_every_seed_key(tmp_path):
    target = tmp_path / "cfn-outputs" / "flat-outputs.json"
    result = CliRunner().invoke(main, ["outputs", "--env", "w", "--state", str(tmp_path / "w.state.json"),
                                       "--write", str(target), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(target.read_text())
    assert set(SEED_OUTPUT_KEYS) <= set(written)
    assert written == json.loads(result.output)
    assert written["environment_suffix"] == "w" and written["primary_vpc_id"] is None
    assert [p.name for p in target.parent.iterdir()] == ["flat-outputs.json"]  # no temporary left


def test_outputs_write_refuses_a_directory(tmp_path):
    result = CliRunner().invoke(main, ["outputs", "--state", str(tmp_path / "s.json"), "--write", str(tmp_path)])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--write" in result.output


def test_sandbox_outage_against_a_running_sandbox():
    active_outages().end()
    with SandboxServer() as server:
        runner = CliRunner()
        begun = runner.invoke(main, ["sandbox", "outage", "--region", "us-east-1", "--endpoint-url", server.endpoint_url])
        assert begun.exit_code == 0, begun.output
        assert json.loads(begun.output) == {"regions": {"us-east-1": {"aws_apis": False}}}
        request = urllib.request.Request(server.endpoint_url + "/prod/health",
                                         headers={"Host": "abc.execute-api.us-east-1.amazonaws.com"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 503
        ended = runner.invoke(main, ["sandbox", "outage", "--end", "--region", "us-east-1",
                                     "--endpoint-url", server.endpoint_url])
        assert json.loads(ended.output) == {"regions": {}}
    missing = CliRunner().invoke(main, ["sandbox", "outage", "--endpoint-url", "http://127.0.0.1:1"])
    assert missing.exit_code == 2 and "--region" in missing.output
