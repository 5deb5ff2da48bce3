"""The run report's timeline picture: a self-contained SVG Gantt chart, readable at a glance.

Plain string building (no dependency), every text escaped: step titles, details and errors
come from AWS and from users. One row per step, a bar from its start for its duration coloured
by result, a time axis in seconds or minutes, and a marker at the RTO. The same layout serves a
1-second sandbox run and a 2-hour AWS run: the axis ticks adapt, and a bar is never thinner
than 2 px, so an instant step stays visible.
"""

from __future__ import annotations

import math
import re
from typing import Any
from xml.sax.saxutils import escape

WIDTH = 1000
LABEL_RIGHT = 300  # step titles end here (right-aligned)
PLOT_LEFT = 312
PLOT_RIGHT = WIDTH - 96  # room after a bar for its duration label
ROWS_TOP = 104
ROW_HEIGHT = 22
BAR_HEIGHT = 14
TITLE_CHARS = 42

COLOURS = {"ok": "#2e9e4f", "failed": "#d64545", "skipped": "#a3a3a3", "incomplete": "#e3a21a"}
NICE_STEPS = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200,
              1800, 3600, 7200, 14400)
MAX_TICKS = 8

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def format_duration(seconds: float | None) -> str:
    """`0.42s`, `3.4s`, `42s`, `3m 12s`, `1h 5m`: precise for sandbox runs, short for long ones."""
    if seconds is None:
        return "-"
    if seconds == 0:
        return "0s"
    if seconds < 10:
        return f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60}s" if whole % 60 else f"{whole // 60}m"
    hours, minutes = divmod(round(whole / 60), 60)
    return f"{hours}h {minutes}m" if minutes else f"{hours}h"


def render_svg(report: dict[str, Any]) -> str:
    timeline = report.get("timeline") or []
    not_reached = report.get("not_reached") or []
    domain, step = _axis(report)
    rows = len(timeline) + len(not_reached)
    rows_bottom = ROWS_TOP + max(rows, 1) * ROW_HEIGHT
    height = rows_bottom + 44

    def x(value: float) -> float:
        return round(PLOT_LEFT + max(value, 0.0) / domain * (PLOT_RIGHT - PLOT_LEFT), 2)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>']
    out += _header(report)
    for index in range(rows):  # zebra rows first, so grid and bars draw over them
        if index % 2 == 0:
            top = ROWS_TOP + index * ROW_HEIGHT
            out.append(f'<rect x="8" y="{top}" width="{WIDTH - 16}" height="{ROW_HEIGHT}" fill="#f4f5f7"/>')
    for tick in _ticks(domain, step):
        tx = x(tick)
        out.append(f'<line class="tick" x1="{tx}" y1="{ROWS_TOP}" x2="{tx}" y2="{rows_bottom + 4}" '
                   f'stroke="#d9dce1" stroke-width="1"/>')
        out.append(f'<text class="tick-label" x="{tx}" y="{rows_bottom + 18}" text-anchor="middle" fill="#555">'
                   f'{_text(_tick_label(tick))}</text>')
    out.append(f'<line x1="{PLOT_LEFT}" y1="{rows_bottom + 4}" x2="{PLOT_RIGHT}" y2="{rows_bottom + 4}" '
               f'stroke="#888"/>')
    out.append(f'<text x="{PLOT_RIGHT}" y="{rows_bottom + 34}" text-anchor="end" fill="#777" font-size="11">'
               f'time since the run started</text>')
    for index, entry in enumerate(timeline):
        out += _row(entry, ROWS_TOP + index * ROW_HEIGHT, x)
    for index, planned in enumerate(not_reached, len(timeline)):  # a failed or killed run's remaining steps
        top = ROWS_TOP + index * ROW_HEIGHT
        out.append(f'<text class="not-reached" x="{LABEL_RIGHT}" y="{top + 15}" text-anchor="end" fill="#999">'
                   f'{_text(_shorten(str(planned.get("title") or planned.get("step"))))}</text>')
        out.append(f'<text x="{PLOT_LEFT + 4}" y="{top + 15}" fill="#999" font-style="italic">not reached</text>')
    for offset in report.get("resume_offsets") or []:
        rx = x(offset)
        out.append(f'<line class="resume-marker" x1="{rx}" y1="{ROWS_TOP - 4}" x2="{rx}" y2="{rows_bottom}" '
                   f'stroke="#555" stroke-width="1" stroke-dasharray="2 3"/>')
        out.append(f'<text x="{rx + 3}" y="{ROWS_TOP - 6}" fill="#555" font-size="10">resumed</text>')
    if report.get("rto_seconds") is not None:
        out += _rto_marker(report["rto_seconds"], x(report["rto_seconds"]), rows_bottom)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _header(report: dict[str, Any]) -> list[str]:
    result = str(report.get("result") or "incomplete")
    colour = COLOURS.get(result, "#333")
    rto = report.get("rto_seconds")
    rpo = report.get("rpo_seconds")
    facts = [f"run {report.get('run_id')}", f"started {report.get('started_at') or '?'}",
             f"took {format_duration(report.get('seconds'))}",
             f"RTO {format_duration(rto) if rto is not None else 'not measured'}",
             f"RPO {format_duration(rpo) if rpo is not None else 'not measured'}"]
    if report.get("resumed"):
        facts.append(f"resumed {report['resumed']}x")
    summary = " \u00b7 ".join(facts)
    lines = [f'<text x="12" y="26" font-size="17" font-weight="bold" fill="#111">{_text(report.get("title"))} \u2014 '
             f'<tspan fill="{colour}">{_text(result.upper())}</tspan></text>',
             f'<text x="12" y="48" fill="#444">{_text(summary)}</text>']
    legend_x = 12
    for result_name in ("ok", "failed", "skipped", "incomplete"):
        lines.append(f'<rect x="{legend_x}" y="62" width="12" height="10" fill="{COLOURS[result_name]}"/>')
        lines.append(f'<text x="{legend_x + 16}" y="71" font-size="11" fill="#444">{result_name}</text>')
        legend_x += 90
    return lines


def _row(entry: dict[str, Any], top: int, x: Any) -> list[str]:
    result = str(entry.get("result"))
    offset = float(entry.get("offset_seconds") or 0.0)
    seconds = entry.get("seconds")
    shown = seconds if seconds is not None else entry.get("seconds_seen") or 0.0
    left = x(offset)
    width = max(round(x(offset + shown) - left, 2), 2.0)
    title = str(entry.get("title") or entry.get("step"))
    duration = "skipped" if result == "skipped" else format_duration(seconds)
    if result == "incomplete":  # killed: it ran at least until the last record of its attempt
        duration = "\u2265 " + format_duration(shown)
    hover = (f"{title} [{entry.get('step')}]: {result}, {duration}, from +{format_duration(offset)}"
             + (f"; group {entry['group']}" if entry.get("group") else "")
             + (f"; {entry['detail']}" if entry.get("detail") else ""))
    dashed = ' stroke="#9a6a00" stroke-dasharray="3 2"' if result == "incomplete" else ""
    bar_y = top + (ROW_HEIGHT - BAR_HEIGHT) // 2
    return [f'<g class="step"><title>{_text(hover)}</title>',
            f'<text x="{LABEL_RIGHT}" y="{top + 15}" text-anchor="end" fill="#222">{_text(_shorten(title))}</text>',
            f'<rect class="bar bar-{_attr(result)}" data-step="{_attr(entry.get("step"))}" x="{left}" '
            f'y="{bar_y}" width="{width}" height="{BAR_HEIGHT}" rx="2" '
            f'fill="{COLOURS.get(result, "#666")}"{dashed}/>',
            f'<text x="{round(left + width + 4, 2)}" y="{top + 15}" font-size="11" fill="#444">'
            f'{_text(duration)}</text>',
            "</g>"]


def _rto_marker(rto: float, at: float, rows_bottom: int) -> list[str]:
    near_right = at > PLOT_LEFT + 0.8 * (PLOT_RIGHT - PLOT_LEFT)
    label_x, anchor = (at - 4, "end") if near_right else (at + 4, "start")
    return [f'<line id="rto-marker" x1="{at}" y1="{ROWS_TOP - 18}" x2="{at}" y2="{rows_bottom + 4}" '
            f'stroke="#1f4fd1" stroke-width="2" stroke-dasharray="6 3"/>',
            f'<text id="rto-label" x="{label_x}" y="{ROWS_TOP - 8}" text-anchor="{anchor}" fill="#1f4fd1" '
            f'font-weight="bold">{_text("RTO " + format_duration(rto))}</text>']


def _axis(report: dict[str, Any]) -> tuple[float, float]:
    """The axis's end (a whole number of ticks) and tick step, covering every bar and marker."""
    ends = [float(report.get("seconds") or 0.0), float(report.get("rto_seconds") or 0.0)]
    ends += [float(o) for o in report.get("resume_offsets") or []]
    for entry in report.get("timeline") or []:
        length = entry.get("seconds") if entry.get("seconds") is not None else entry.get("seconds_seen")
        ends.append(float(entry.get("offset_seconds") or 0.0) + float(length or 0.0))
    span = max(max(ends), 0.1)
    step = next((s for s in NICE_STEPS if span / s <= MAX_TICKS), NICE_STEPS[-1])
    return math.ceil(span / step - 1e-9) * step, step


def _ticks(domain: float, step: float) -> list[float]:
    return [round(i * step, 6) for i in range(int(round(domain / step)) + 1)]


def _tick_label(value: float) -> str:
    """`0.2s`, `45s`, `1m 30s`, `15m`, `1h 15m`: the units of the run's own durations."""
    if value == 0:
        return "0"
    return f"{value:g}s" if value < 60 else format_duration(value)


def _shorten(title: str) -> str:
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "\u2026"


def _text(value: Any) -> str:
    """Text content: XML-escaped, with characters XML 1.0 forbids (e.g. ANSI escapes) removed."""
    return escape(_NOT_XML.sub("", str(value if value is not None else "")))


def _attr(value: Any) -> str:
    return escape(_NOT_XML.sub("", str(value if value is not None else "")), {'"': "&quot;"})
