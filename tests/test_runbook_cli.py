"""`drkit runbook`: list, show, history, bad input refused (exit 2) before any AWS call, and a dry
run that makes no mutating call."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from drkit.cli import main
from drkit.runbook.model import find_runbook, list_runbooks, load_runbook
from drkit.runbook.registry import known
from drkit.errors import UserInputError


def drkit(*args: str, **kw):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kw)


def test_every_runbook_file_loads_against_the_engine():
    books = {b.name: b for b in list_runbooks(known=known())}
    assert set(books) == {"switchover", "failover", "failback", "drill"}
    assert books["failover"].avoid == "source" and not books["failover"].verify
    assert books["drill"].modes == ("switchover", "failover")
    assert [s.id for s in books["switchover"].batches(None)[-1]] == ["prove-writes", "prove-health"]


def test_list_and_show_render_for_a_person():
    listed = drkit("runbook", "list")
    assert listed.exit_code == 0 and "switchover" in listed.output and "failback" in listed.output
    shown = drkit("runbook", "show", "failover")
    assert shown.exit_code == 0
    assert "no Route 53 control-plane call" in shown.output
    assert "why:" in shown.output and "if it fails:" in shown.output and "proved by: aurora.target_is_writer" in shown.output


@pytest.mark.parametrize("args, message", [
    (["runbook", "run", "nosuch", "--yes"], "no runbook 'nosuch'"),
    (["runbook", "run", "switchover", "--yes", "--to", "eu-west-9"], "neither the primary"),
    (["runbook", "run", "switchover", "--yes", "--to", "us-east-1"], "already the active region"),
    (["runbook", "run", "drill", "--yes", "--mode", "chaos"], "no mode 'chaos'"),
    (["runbook", "run", "switchover", "--yes", "--no-state"], "--no-state is for the failover runbook only"),
    (["runbook", "run", "failover", "--yes", "--no-state"], "--no-state needs --to"),
    (["runbook", "show", "../etc/passwd"], "no runbook"),
])
def test_bad_input_is_one_line_exit_2_before_any_aws_call(tmp_path, args, message):
    # An endpoint nobody listens on: any AWS call would fail with "cannot reach", not exit 2.
    result = drkit(*args, "--state", str(tmp_path / "x.state.json"), "--endpoint-url", "http://127.0.0.1:9") \
        if args[1] != "show" else drkit(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_runbook_file_with_a_mistake_is_refused_clearly(tmp_path):
    path = tmp_path / "oops.toml"
    path.write_text('name = "oops"\ntitle = "t"\nsummary = "s"\n[[steps]]\nid = "a"\ntitle = "A"\nwhy = "w"\n'
                    'action = "aurora.explode"\ncheck = "aurora.target_is_writer"\ntimeout = "5m"\non_failure = "x"\n')
    with pytest.raises(UserInputError, match="unknown action 'aurora.explode'"):
        load_runbook(path, known())
    path.write_text(path.read_text().replace("aurora.explode", "aurora.switchover").replace('"5m"', '"soon"'))
    with pytest.raises(UserInputError, match="not a duration"):
        load_runbook(path, known())
    with pytest.raises(UserInputError, match="no runbook"):
        find_runbook("oops")


def test_dry_run_prints_steps_and_calls_and_makes_no_mutating_call(tmp_path):
    from drkit.sandbox import SandboxServer

    with SandboxServer() as server:
        result = drkit("runbook", "run", "switchover", "--dry-run", "--state", str(tmp_path / "d.state.json"),
                       "--endpoint-url", server.endpoint_url, "--env", "dry")
    assert result.exit_code == 0, result.output
    assert "would call: rds SwitchoverGlobalCluster in us-east-1" in result.output
    assert "would call: cloudwatch PutMetricData in us-east-2" in result.output
    assert "gate now: NO-GO" in result.output  # nothing is built in this env
    assert "no mutating call was made" in result.output
    assert not (tmp_path / "dry.journals").exists() and not (tmp_path / "reports").exists()


def test_history_lists_nothing_yet(tmp_path):
    result = drkit("runbook", "history", "--state", str(tmp_path / "h.state.json"))
    assert result.exit_code == 0 and "no runbook runs yet" in result.output
