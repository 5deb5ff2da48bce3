"""The state's active region: recorded with each transition, and forgotten with the stack."""

from __future__ import annotations

import json

from drkit.config import build_config
from drkit.state import State, load_state


def test_transitions_are_recorded_and_a_torn_down_stack_starts_on_the_primary(tmp_path):
    config = build_config({"env": "act", "state": str(tmp_path / "act.state.json")}, environ={})
    state = State.new(config.state_path, config)
    assert state.active_role() == "primary"
    state.record("ensure_vpc:primary", "vpc", "vpc", "vpc-1")
    assert state.set_active("dr", "us-east-2", run_id="r1", runbook="switchover", at="2026-12-02T00:00:00Z")
    assert not state.set_active("dr", "us-east-2", run_id="r2", runbook="switchover", at="x")  # already: no write
    saved = json.loads(config.state_path.read_text())
    assert saved["active"]["role"] == "dr" and [t["run_id"] for t in saved["transitions"]] == ["r1"]
    assert load_state(config).active_role() == "dr"
    state.forget_active_if_empty()
    assert load_state(config).active_role() == "dr"  # resources remain: still active
    state.clear_step("ensure_vpc:primary")
    state.forget_active_if_empty()
    reread = load_state(config)
    assert reread.active_role() == "primary" and len(reread.transitions()) == 1
