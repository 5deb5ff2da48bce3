"""drkit.runbook.report: the run report built from hand-written journal records (no AWS).

Each test feeds the records a run would append (schema: the engine's journal) and checks the
figures a person relies on after a switchover or failover: the RTO is the later of "writes
accepted" and "health check healthy", offsets and durations come from the records, and the SVG
is well-formed XML with one bar per step and the RTO marker where the RTO is.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from drkit.runbook.report import build_report, render_markdown, write_report
from drkit.runbook.report_svg import PLOT_LEFT, PLOT_RIGHT, format_duration, render_svg
from drkit.storage.local import LocalStorage

SVG = "{http://www.w3.org/2000/svg}"
RUN_ID = "20261202T190000Z-1a2b3c4d"
T0 = 1_796_000_000.0  # the run's clock: seconds since the epoch
ARN = "arn:aws:iam::123456789012:user/oncall"


class Journal:
    """Builds records the way the engine appends them, stamping at/t from a moving clock."""

    def __init__(self, runbook: str = "switchover") -> None:
        self.runbook = runbook
        self.now = T0
        self.records: list[dict[str, Any]] = []

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        record = {"type": kind, "run_id": RUN_ID, "runbook": self.runbook, "t": self.now,
                  "at": f"t+{self.now - T0:g}", **fields}
        self.records.append(record)
        return record

    def start(self, steps: list[tuple[str, str]], mode: str = "switchover", **options: Any) -> None:
        self.add("run.start", source_role="primary", source_region="us-east-1", target_role="dr",
                 target_region="us-east-2", mode=mode,
                 options={"dry_run": False, "yes": False, "force": False, "to": "dr", **options},
                 identity={"caller_arn": ARN, "local_user": "alice", "host": "laptop"},
                 steps=[{"id": s, "title": title} for s, title in steps])

    def step(self, step: str, title: str, seconds: float, result: str = "ok", calls: int = 0,
             mutating: int = 0, detail: str = "done", what_to_do: str | None = None,
             group: str | None = None) -> None:
        self.add("step.start", step=step, title=title, group=group)
        started_at = self.records[-1]["at"]
        self.now += seconds
        self.add("step.end", step=step, title=title, result=result, started_at=started_at, seconds=seconds,
                 detail=detail, what_to_do=what_to_do,
                 calls=[{"service": "rds", "region": "us-east-2", "operation": "Op", "mutating": i < mutating}
                        for i in range(calls)])

    def measure(self, name: str, value: float, detail: str = "") -> None:
        self.add("measure", name=name, value=value, unit="s", detail=detail)


SWITCHOVER_STEPS = [("check", "Check both regions"), ("drain", "Stop writes and drain replication"),
                    ("promote", "Promote the DR Aurora cluster"), ("dns", "Point DNS at DR")]


def clean_switchover(writes_at: float = 150.0, healthy_at: float = 192.0) -> list[dict[str, Any]]:
    journal = Journal()
    journal.start(SWITCHOVER_STEPS)
    journal.add("verify", phase="before", ok=True, findings=0, lines=["all 28 steps in place"], skipped=None)
    journal.now += 2
    journal.step("check", "Check both regions", 10.0, calls=6)
    journal.add("approval", step="drain", change="stop writes in us-east-1", answer=True, caller_arn=ARN,
                local_user="alice")
    journal.step("drain", "Stop writes and drain replication", 30.0, calls=4, mutating=1)
    journal.step("promote", "Promote the DR Aurora cluster", 100.0, calls=9, mutating=2, group="data")
    journal.step("dns", "Point DNS at DR", 60.0, calls=3, mutating=1)
    journal.measure("writes_accepted", writes_at)
    journal.measure("health_check_healthy", healthy_at)
    journal.measure("rpo_seconds", 0)
    journal.add("state.active", from_role="primary", to_role="dr", region="us-east-2", recorded=True)
    journal.now += 5
    journal.add("verify", phase="after", ok=True, findings=0, lines=["dr is active"], skipped=None)
    journal.add("run.end", result="ok", error=None, what_to_do=None)
    return journal.records


def test_clean_switchover_figures() -> None:
    report = build_report(clean_switchover())
    assert (report["run_id"], report["runbook"], report["mode"], report["result"]) == (
        RUN_ID, "switchover", "switchover", "ok")
    assert report["source"] == {"role": "primary", "region": "us-east-1"}
    assert report["target"] == {"role": "dr", "region": "us-east-2"}
    assert report["rto_seconds"] == 192.0  # health check healthy came after writes were accepted
    assert "2m 30s" in report["rto_basis"] and "3m 12s" in report["rto_basis"]
    assert report["rpo_seconds"] == 0.0 and report["rpo_basis"] == "a switchover loses no write"
    assert report["seconds"] == 207.0 and report["resumed"] == 0
    assert [(e["step"], e["offset_seconds"], e["seconds"], e["result"]) for e in report["timeline"]] == [
        ("check", 2.0, 10.0, "ok"), ("drain", 12.0, 30.0, "ok"),
        ("promote", 42.0, 100.0, "ok"), ("dns", 142.0, 60.0, "ok")]
    assert [(e["calls"], e["mutating_calls"]) for e in report["timeline"]] == [(6, 0), (4, 1), (9, 2), (3, 1)]
    assert (report["calls"], report["mutating_calls"]) == (22, 4)
    assert report["approvals"] == [{"step": "drain", "change": "stop writes in us-east-1", "answer": True,
                                    "caller_arn": ARN, "local_user": "alice", "at": "t+12"}]
    assert report["verify"]["before"]["ok"] and report["verify"]["after"]["lines"] == ["dr is active"]
    assert report["state_active"]["to_role"] == "dr" and report["not_reached"] == []
    assert report["error"] is None and report["what_to_do"] is None
    json.dumps(report)  # the JSON report is exactly this dict


def test_step_group_comes_from_its_start_and_a_lost_start_is_tolerated() -> None:
    records = clean_switchover()
    assert [e["group"] for e in build_report(records)["timeline"]] == [None, None, "data", None]
    records = [r for r in records if not (r["type"] == "step.start" and r["step"] == "promote")]
    promote = build_report(records)["timeline"][2]
    assert (promote["step"], promote["offset_seconds"], promote["seconds"], promote["result"]) == (
        "promote", 42.0, 100.0, "ok")  # its end says when it started and how long it took


def test_rto_is_the_later_measure_whichever_it_is() -> None:
    assert build_report(clean_switchover(writes_at=250.0, healthy_at=90.5))["rto_seconds"] == 250.0


def test_rto_not_measured_names_the_missing_measure() -> None:
    records = [r for r in clean_switchover() if r.get("name") != "health_check_healthy"]
    report = build_report(records)
    assert report["rto_seconds"] is None
    assert "'health_check_healthy'" in report["rto_basis"] and "writes_accepted" not in report["rto_basis"]


def test_clean_switchover_markdown() -> None:
    page = render_markdown(build_report(clean_switchover()))
    lines = page.splitlines()
    assert lines[0] == "# switchover primary (us-east-1) \u2192 dr (us-east-2): OK"
    assert "- **Result:** ok" in lines
    assert any(line.startswith("- **RTO:** 3m 12s (") for line in lines)
    assert any(line.startswith("- **RPO:** 0s (a switchover loses no write)") for line in lines)
    assert f"- **Approved by:** approved by alice ({ARN}) for step `drain` at t+12" in lines
    assert "| 3 | Promote the DR Aurora cluster | ok | +42s | 1m 40s | 9 (2) | done |" in lines
    assert lines[lines.index("### Before") + 2] == "OK: 0 finding(s)"
    assert "## What to do" not in page


def failed_run() -> list[dict[str, Any]]:
    journal = Journal()
    journal.start(SWITCHOVER_STEPS)
    journal.step("check", "Check both regions", 4.0, calls=2)
    journal.step("drain", "Stop writes and drain replication", 300.0, result="failed", calls=40,
                 detail="replication lag stayed at 4200 ms | 5 min", what_to_do="Check the Aurora lag first")
    journal.add("run.end", result="failed", error="replication did not drain within 5 min",
                what_to_do="Writes are stopped in us-east-1: resume them with `drkit switchover --undo`")
    return journal.records


def test_failed_run_carries_what_to_do() -> None:
    report = build_report(failed_run())
    assert report["result"] == "failed"
    assert report["timeline"][1]["result"] == "failed" and report["timeline"][1]["what_to_do"]
    assert [s["step"] for s in report["not_reached"]] == ["promote", "dns"]
    assert report["rto_seconds"] is None and report["rpo_seconds"] is None
    page = render_markdown(report).splitlines()
    assert "- **Result:** failed" in page and "- **RTO:** not measured (" in "\n".join(page)
    assert "**Error:** replication did not drain within 5 min" in page
    assert page[-1] == "Writes are stopped in us-east-1: resume them with `drkit switchover --undo`"
    row = next(line for line in page if line.startswith("| 2 |"))
    assert row.endswith("| replication lag stayed at 4200 ms \\| 5 min |")  # the pipe cannot split the cell
    assert "Not reached: Promote the DR Aurora cluster, Point DNS at DR" in page


def test_failed_step_fills_in_when_run_end_has_no_what_to_do() -> None:
    records = failed_run()
    records[-1].update(error=None, what_to_do=None)
    report = build_report(records)
    assert report["what_to_do"] == "Check the Aurora lag first"
    assert report["error"].startswith("step 'Stop writes and drain replication' failed: replication lag")


def resumed_run(resume: bool = True) -> list[dict[str, Any]]:
    journal = Journal()
    journal.start(SWITCHOVER_STEPS)
    journal.step("check", "Check both regions", 5.0)
    journal.add("step.start", step="drain", title="Stop writes and drain replication", group="data")
    journal.now += 20  # killed here, 20 s into the drain
    journal.add("measure", name="replication_lag_ms", value=40, unit="ms", detail="")
    if not resume:
        return journal.records
    journal.now += 600  # the operator comes back ten minutes later
    journal.start(SWITCHOVER_STEPS)
    journal.add("step.skip", step="check", title="Check both regions", reason="already done")
    journal.step("drain", "Stop writes and drain replication", 8.0)
    journal.step("promote", "Promote the DR Aurora cluster", 3.0)
    journal.step("dns", "Point DNS at DR", 2.0)
    journal.add("run.end", result="ok", error=None, what_to_do=None)
    return journal.records


def test_resumed_run_keeps_the_latest_attempt() -> None:
    report = build_report(resumed_run())
    assert report["result"] == "ok" and report["resumed"] == 1 and report["resume_offsets"] == [625.0]
    assert [(e["step"], e["offset_seconds"], e["seconds"], e["result"]) for e in report["timeline"]] == [
        ("check", 0.0, 5.0, "ok"),  # the resume skipped it: the attempt that did it is its story
        ("drain", 625.0, 8.0, "ok"), ("promote", 633.0, 3.0, "ok"), ("dns", 636.0, 2.0, "ok")]
    assert report["seconds"] == 638.0
    assert (f"- **Resumed:** 1 time(s) by alice ({ARN}); each step shows its latest attempt"
            in render_markdown(report).splitlines())


def test_killed_run_is_incomplete() -> None:
    report = build_report(resumed_run(resume=False))
    assert report["result"] == "incomplete" and report["seconds"] == 25.0
    drain = report["timeline"][-1]
    assert (drain["step"], drain["result"], drain["seconds"], drain["seconds_seen"]) == (
        "drain", "incomplete", None, 20.0)
    assert drain["group"] == "data"
    assert "run.end" in report["error"] and "resume" in report["what_to_do"]
    assert [s["step"] for s in report["not_reached"]] == ["promote", "dns"]
    svg = ET.fromstring(render_svg(report))
    assert [b.get("class") for b in bars(svg)] == ["bar bar-ok", "bar bar-incomplete"]
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert "\u2265 20s" in texts  # it ran at least until the run's last record
    assert [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "not-reached"] == [
        "Promote the DR Aurora cluster", "Point DNS at DR"]


def test_failover_rpo_is_the_last_lag_seen() -> None:
    journal = Journal(runbook="failover")
    journal.start([("fence", "Fence the primary"), ("promote", "Detach and promote DR")], mode="failover",
                  yes=True)
    journal.add("measure", name="replication_lag_ms", value=900, unit="ms", detail="")
    journal.measure("rpo_seconds", 2.5, detail="replication lag 2500 ms seen at 18:59:58Z, before the outage")
    journal.step("fence", "Fence the primary", 1.0)
    journal.step("promote", "Detach and promote DR", 0.4)
    journal.measure("writes_accepted", 1.2)
    journal.measure("health_check_healthy", 1.3)
    journal.add("run.end", result="ok", error=None, what_to_do=None)
    report = build_report(journal.records)
    assert report["rpo_seconds"] == 2.5
    assert report["rpo_basis"] == "replication lag 2500 ms seen at 18:59:58Z, before the outage"
    assert report["rto_seconds"] == 1.3 and report["measures"]["replication_lag_ms"]["value"] == 900
    page = render_markdown(report)
    assert "- **RPO:** 2.5s (replication lag 2500 ms seen at 18:59:58Z, before the outage)" in page
    assert "- **Approved by:** no question asked (--yes given by alice" in page


def bars(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{SVG}rect") if "bar" in (r.get("class") or "").split()]


def test_svg_has_one_bar_per_step_and_the_rto_marker() -> None:
    report = build_report(clean_switchover())
    svg = ET.fromstring(render_svg(report))
    found = bars(svg)
    assert [b.get("data-step") for b in found] == ["check", "drain", "promote", "dns"]
    assert {b.get("fill") for b in found} == {"#2e9e4f"}
    widths = {b.get("data-step"): float(b.get("width")) for b in found}
    assert widths["promote"] == pytest.approx(10 * widths["check"], rel=0.01)  # 100 s vs 10 s
    lefts = {b.get("data-step"): float(b.get("x")) for b in found}
    assert lefts["drain"] == pytest.approx(lefts["check"] + widths["check"], abs=0.02)  # drain starts at check's end
    marker = next(e for e in svg.iter(f"{SVG}line") if e.get("id") == "rto-marker")
    label = next(e for e in svg.iter(f"{SVG}text") if e.get("id") == "rto-label")
    assert label.text == "RTO 3m 12s"
    seconds_per_px = (lefts["promote"] - lefts["check"]) / 40.0  # px per second: promote starts 40 s after check
    assert float(marker.get("x1")) == pytest.approx(lefts["check"] + (192 - 2) * seconds_per_px, abs=0.05)
    title = "".join(next(svg.iter(f"{SVG}text")).itertext())
    assert title == "switchover primary (us-east-1) \u2192 dr (us-east-2) \u2014 OK"


def test_svg_colours_by_result_and_omits_marker_without_rto() -> None:
    svg = ET.fromstring(render_svg(build_report(failed_run())))
    assert [b.get("fill") for b in bars(svg)] == ["#2e9e4f", "#d64545"]
    assert not [e for e in svg.iter() if e.get("id") == "rto-marker"]
    resumed = ET.fromstring(render_svg(build_report(resumed_run())))
    assert [b.get("class") for b in bars(resumed)][0] == "bar bar-ok"
    assert len([e for e in resumed.iter(f"{SVG}line") if e.get("class") == "resume-marker"]) == 1


def test_svg_and_markdown_escape_hostile_text() -> None:
    records = clean_switchover()
    hostile = 'Promote <&> "dr" </svg>\x1b[31m'
    for record in records:
        if record.get("step") == "promote":
            record["title"] = hostile
            record["detail"] = "a & b < c\x00"
    text = render_svg(build_report(records))
    assert "<&>" not in text and "&lt;&amp;&gt;" in text
    svg = ET.fromstring(text)  # raises on any unescaped or XML-forbidden character
    labels = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert 'Promote <&> "dr" </svg>[31m' in labels
    assert len(bars(svg)) == 4


@pytest.mark.parametrize("seconds, expected_labels", [
    (1.0, ["0", "0.2s", "0.4s", "0.6s", "0.8s", "1s"]),
    (207.0, ["0", "30s", "1m", "1m 30s", "2m", "2m 30s", "3m", "3m 30s"]),
    (7200.0, ["0", "15m", "30m", "45m", "1h", "1h 15m", "1h 30m", "1h 45m", "2h"]),
])
def test_svg_axis_ticks_fit_short_and_long_runs(seconds: float, expected_labels: list[str]) -> None:
    journal = Journal()
    journal.start([("only", "The one step")])
    journal.step("only", "The one step", seconds)
    journal.add("run.end", result="ok", error=None, what_to_do=None)
    svg = ET.fromstring(render_svg(build_report(journal.records)))
    assert [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick-label"] == expected_labels
    (bar,) = bars(svg)
    assert float(bar.get("x")) + float(bar.get("width")) <= PLOT_RIGHT + 0.01 and float(bar.get("x")) == PLOT_LEFT


@pytest.mark.parametrize("seconds, text", [(0.42, "0.42s"), (3.44, "3.4s"), (42.4, "42s"), (192, "3m 12s"),
                                           (60, "1m"), (3600, "1h"), (3590, "59m 50s"),
                                           (7170, "2h"), (3900, "1h 5m"), (0, "0s"), (None, "-")])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_write_report_stores_three_files_beside_the_state(tmp_path: Any) -> None:
    storage = LocalStorage(tmp_path / "dev.state.json")
    records = clean_switchover()
    where = write_report(storage, records)
    assert where == {kind: str(tmp_path / "reports" / f"{RUN_ID}.{kind}") for kind in ("json", "md", "svg")}
    assert json.loads((tmp_path / "reports" / f"{RUN_ID}.json").read_text()) == build_report(records)
    assert storage.read_report(f"{RUN_ID}.md") == render_markdown(build_report(records))
    assert len(bars(ET.fromstring(storage.read_report(f"{RUN_ID}.svg")))) == 4


def test_no_records_is_an_error() -> None:
    with pytest.raises(ValueError):
        build_report([])
