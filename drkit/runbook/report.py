"""A runbook run's report, built from its journal records alone (schema: the engine's journal).

Only the journal is read, so a report can be rebuilt for any past run, including one that was
killed (no run.end: result "incomplete") or resumed (several run.start records; a step started,
killed, then started again: the latest attempt is the one shown). Three files go beside the
state: `reports/<run-id>.json` (the figures), `.md` (for people), `.svg` (the timeline picture).
"""

from __future__ import annotations

import json
from typing import Any

from drkit.runbook.report_svg import format_duration, render_svg
from drkit.storage.base import Storage

INCOMPLETE = "incomplete"
RTO_MEASURES = (("writes_accepted", "the target accepted a write through its API"),
                ("health_check_healthy", "the target's health check was healthy"))


def build_report(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's figures: timeline, RTO, RPO, approvals, verify before/after, outcome."""
    if not records:
        raise ValueError("no journal records: nothing to report")
    starts = [i for i, r in enumerate(records) if r.get("type") == "run.start"]
    first = records[starts[0]] if starts else {}
    latest = records[starts[-1]] if starts else {}
    t0 = _t(first) if starts else min(_t(r) for r in records)
    ends = [r for r in records[(starts[-1] if starts else 0):] if r.get("type") == "run.end"]
    end = ends[-1] if ends else None
    last = records[-1]
    measures = {r.get("name"): r for r in records if r.get("type") == "measure"}  # the latest of each
    timeline, not_reached = _timeline(records, t0, latest.get("steps") or [])
    report: dict[str, Any] = {
        "run_id": _first_of(records, "run_id"),
        "runbook": _first_of(records, "runbook"),
        "mode": latest.get("mode"),
        "result": end.get("result") if end else INCOMPLETE,
        "dry_run": bool((latest.get("options") or {}).get("dry_run")),
        "source": {"role": latest.get("source_role"), "region": latest.get("source_region")},
        "target": {"role": latest.get("target_role"), "region": latest.get("target_region")},
        "started_by": first.get("identity"),
        "options": latest.get("options"),
        "started_at": first.get("at") or records[0].get("at"),
        "ended_at": (end or last).get("at"),
        "seconds": _round(_t(end or last) - t0),
        "resumed": max(len(starts) - 1, 0),
        "resume_offsets": [_round(_t(records[i]) - t0) for i in starts[1:]],
        "resumed_by": [records[i].get("identity") for i in starts[1:]],
        **_rto(measures),
        **_rpo(measures, latest.get("mode")),
        "measures": {name: {k: r.get(k) for k in ("value", "unit", "detail")} for name, r in measures.items()},
        "timeline": timeline,
        "not_reached": not_reached,
        "calls": sum(len(r.get("calls") or []) for r in records if r.get("type") == "step.end"),
        "mutating_calls": sum(_mutating(r) for r in records if r.get("type") == "step.end"),
        "approvals": [_pick(r, "step", "change", "answer", "caller_arn", "local_user", "at")
                      for r in records if r.get("type") == "approval"],
        "overrides": [_pick(r, "step", "reasons", "caller_arn", "local_user", "at")
                      for r in records if r.get("type") == "override"],
        "verify": {phase: _latest_verify(records, phase) for phase in ("before", "after")},
        "state_active": _latest_state_active(records),
    }
    report["title"] = _title(report)
    report["error"], report["what_to_do"] = _outcome(end, timeline)
    return report


def write_report(storage: Storage, records: list[dict[str, Any]]) -> dict[str, str]:
    """Store `<run-id>.json`, `.md` and `.svg` through the storage's reports; returns where each went."""
    report = build_report(records)
    if not report["run_id"]:
        raise ValueError("the journal records carry no run_id: cannot name the report")
    texts = {"json": json.dumps(report, indent=2, default=str) + "\n",
             "md": render_markdown(report), "svg": render_svg(report)}
    return {kind: storage.write_report(f"{report['run_id']}.{kind}", text) for kind, text in texts.items()}


def render_markdown(report: dict[str, Any]) -> str:
    rto, rpo = report.get("rto_seconds"), report.get("rpo_seconds")
    lines = [f"# {report['title']}: {str(report['result']).upper()}", "",
             f"- **Result:** {report['result']}" + (" (dry run: nothing was changed)" if report.get("dry_run") else ""),
             f"- **RTO:** {format_duration(rto) if rto is not None else 'not measured'} ({report['rto_basis']})",
             f"- **RPO:** {format_duration(rpo) if rpo is not None else 'not measured'} ({report['rpo_basis']})",
             f"- **Approved by:** {_approvers(report)}",
             f"- **Run:** `{report['run_id']}`, runbook {report.get('runbook')}, mode {report.get('mode')}, "
             f"started {report.get('started_at')}, ended {report.get('ended_at')}, "
             f"took {format_duration(report.get('seconds'))}, {report['calls']} AWS calls "
             f"({report['mutating_calls']} mutating)"]
    by = report.get("started_by") or {}
    if by:
        lines.append(f"- **Started by:** {by.get('local_user')} ({by.get('caller_arn')}) on {by.get('host')}")
    if report.get("resumed"):
        who = ", ".join(f"{i.get('local_user')} ({i.get('caller_arn')})" for i in report["resumed_by"] if i)
        lines.append(f"- **Resumed:** {report['resumed']} time(s)" + (f" by {who}" if who else "")
                     + "; each step shows its latest attempt")
    for override in report.get("overrides") or []:
        lines.append(f"- **Override:** step `{override.get('step')}` forced past a failed gate by "
                     f"{override.get('local_user')} ({override.get('caller_arn')}): "
                     + "; ".join(str(r) for r in override.get("reasons") or []))
    active = report.get("state_active")
    if active:
        lines.append(f"- **Active now:** {active.get('to_role')} ({active.get('region')})"
                     + ("" if active.get("recorded") else " -- NOT recorded in the state"))
    lines += ["", "## Timeline", "",
              "| # | Step | Result | Started | Duration | AWS calls (mutating) | Detail |",
              "|---|------|--------|---------|----------|----------------------|--------|"]
    for number, entry in enumerate(report["timeline"], 1):
        duration = "-" if entry["result"] == "skipped" else format_duration(entry.get("seconds"))
        lines.append(f"| {number} | {_cell(entry['title'])} | {_cell(entry['result'])} | "
                     f"+{format_duration(entry['offset_seconds'])} | {duration} | "
                     f"{entry['calls']} ({entry['mutating_calls']}) | {_cell(entry.get('detail'))} |")
    if report.get("not_reached"):
        lines += ["", "Not reached: " + ", ".join(_cell(s["title"]) for s in report["not_reached"])]
    lines += ["", "## Verify"]
    for phase in ("before", "after"):
        lines += ["", f"### {phase.capitalize()}", "", _verify_summary(report["verify"][phase])]
        found = (report["verify"][phase] or {}).get("lines") or []
        if found:
            lines += ["", "```text", *(str(line).replace("```", "'''") for line in found), "```"]
    if report.get("error") or report.get("what_to_do"):
        lines += ["", "## What to do", ""]
        if report.get("error"):
            lines.append(f"**Error:** {report['error']}")
            lines.append("")
        lines.append(str(report.get("what_to_do") or "See the error above and the failed step's detail."))
    return "\n".join(lines) + "\n"


def _timeline(records: list[dict[str, Any]], t0: float, planned: list[dict[str, Any]]) -> tuple[list, list]:
    """The latest attempt of each step, in start order; plus planned steps never started."""
    attempts: dict[str, dict[str, Any]] = {}
    segment, segment_last_t = 0, {0: t0}  # segment n: the records after the n-th run.start
    for record in records:
        kind, step = record.get("type"), record.get("step")
        if kind == "run.start":
            segment += 1
        segment_last_t[segment] = max(segment_last_t.get(segment, t0), _t(record))
        if kind == "step.start":
            attempts[step] = _entry(record, _t(record) - t0, segment, INCOMPLETE, None,
                                    "started; no end recorded: the run stopped during this step")
        elif kind == "step.end":
            entry = attempts.get(step)
            if entry is None or entry["result"] != INCOMPLETE:  # an end whose start is missing
                entry = attempts[step] = _entry(record, _t(record) - float(record.get("seconds") or 0) - t0,
                                                segment, INCOMPLETE, record.get("started_at"), "")
            entry.update(result=record.get("result"), seconds=_round(record.get("seconds")),
                         calls=len(record.get("calls") or []), mutating_calls=_mutating(record),
                         detail=record.get("detail") or "", what_to_do=record.get("what_to_do"))
            entry["started_at"] = entry["started_at"] or record.get("started_at")
        elif kind == "step.skip":
            if (attempts.get(step) or {}).get("result") == "ok":
                continue  # a resume skips what an earlier attempt did: that attempt is the step's story
            attempts[step] = _entry(record, _t(record) - t0, segment, "skipped", record.get("at"),
                                    record.get("reason") or "")
            attempts[step]["seconds"] = 0.0
    for entry in attempts.values():
        seg = entry.pop("segment")
        if entry["result"] == INCOMPLETE:
            entry["seconds_seen"] = _round(max(segment_last_t[seg] - t0 - entry["offset_seconds"], 0.0))
    timeline = sorted(attempts.values(), key=lambda e: e["offset_seconds"])
    not_reached = [{"step": s.get("id"), "title": s.get("title") or s.get("id")}
                   for s in planned if s.get("id") not in attempts]
    return timeline, not_reached


def _entry(record: dict[str, Any], offset: float, segment: int, result: str, started_at: Any,
           detail: str) -> dict[str, Any]:
    return {"step": record.get("step"), "title": record.get("title") or record.get("step"),
            "group": record.get("group"), "result": result,
            "started_at": started_at if started_at is not None else record.get("at"),
            "offset_seconds": _round(offset), "seconds": None, "calls": 0, "mutating_calls": 0,
            "detail": detail, "what_to_do": None, "segment": segment}


def _rto(measures: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """RTO: until the target takes writes through its API AND its health check is healthy."""
    missing = [name for name, _ in RTO_MEASURES if measures.get(name, {}).get("value") is None]
    if missing:
        return {"rto_seconds": None, "rto_basis": "not measured: the run recorded no "
                + " and no ".join(f"'{name}'" for name in missing) + " measure"}
    values = {name: float(measures[name]["value"]) for name, _ in RTO_MEASURES}
    parts = [f"{what} at {format_duration(values[name])}" for name, what in RTO_MEASURES]
    return {"rto_seconds": _round(max(values.values())),
            "rto_basis": "from the run's start until the later of: " + "; ".join(parts)}


def _rpo(measures: dict[Any, dict[str, Any]], mode: Any) -> dict[str, Any]:
    measure = measures.get("rpo_seconds")
    if not measure or measure.get("value") is None:
        return {"rpo_seconds": None, "rpo_basis": "not measured: the run recorded no 'rpo_seconds' measure"}
    default = {"switchover": "a switchover loses no write",
               "failover": "the last replication lag seen before the outage"}.get(str(mode), "rpo_seconds measure")
    return {"rpo_seconds": _round(float(measure["value"])), "rpo_basis": measure.get("detail") or default}


def _outcome(end: dict[str, Any] | None, timeline: list[dict[str, Any]]) -> tuple[Any, Any]:
    failed = [e for e in timeline if e["result"] == "failed"]
    error = (end or {}).get("error") or (f"step '{failed[-1]['title']}' failed: {failed[-1]['detail']}"
                                         if failed else None)
    what_to_do = (end or {}).get("what_to_do") or (failed[-1]["what_to_do"] if failed else None)
    if end is None:
        error = error or "the journal ends without a run.end record: the run was stopped (killed or lost)"
        what_to_do = what_to_do or ("run the same runbook again to resume it from the step it stopped at; "
                                    "check that step's effect first, it may be half done")
    return error, what_to_do


def _approvers(report: dict[str, Any]) -> str:
    approvals = report.get("approvals") or []
    if not approvals:
        by = report.get("started_by") or {}
        if (report.get("options") or {}).get("yes"):
            return f"no question asked (--yes given by {by.get('local_user')}, {by.get('caller_arn')})"
        return "no approval was asked"
    return "; ".join(f"{'approved' if a.get('answer') else 'DECLINED'} by {a.get('local_user')} "
                     f"({a.get('caller_arn')}) for step `{a.get('step')}` at {a.get('at')}" for a in approvals)


def _verify_summary(verify: dict[str, Any] | None) -> str:
    if not verify:
        return "Not run."
    if verify.get("skipped"):
        return f"Skipped: {verify['skipped']}"
    return f"{'OK' if verify.get('ok') else 'FAILED'}: {verify.get('findings', 0)} finding(s)"


def _title(report: dict[str, Any]) -> str:
    source, target = report["source"], report["target"]
    return (f"{report.get('runbook') or 'runbook'} {source.get('role')} ({source.get('region')}) "
            f"\u2192 {target.get('role')} ({target.get('region')})" + (" [dry run]" if report["dry_run"] else ""))


def _latest_verify(records: list[dict[str, Any]], phase: str) -> dict[str, Any] | None:
    found = [r for r in records if r.get("type") == "verify" and r.get("phase") == phase]
    return _pick(found[-1], "ok", "findings", "lines", "skipped", "at") if found else None


def _latest_state_active(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    found = [r for r in records if r.get("type") == "state.active"]
    return _pick(found[-1], "from_role", "to_role", "region", "recorded", "at") if found else None


def _pick(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: record.get(key) for key in keys}


def _first_of(records: list[dict[str, Any]], key: str) -> Any:
    return next((r[key] for r in records if r.get(key)), None)


def _mutating(record: dict[str, Any]) -> int:
    return sum(1 for call in record.get("calls") or [] if call.get("mutating"))


def _t(record: dict[str, Any]) -> float:
    return float(record.get("t") or 0.0)


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _cell(value: Any) -> str:
    """One Markdown table cell: no pipe or line break may end it early."""
    return str(value if value is not None else "").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
