"""The audit report as markdown and as one self-contained HTML page with an SVG timeline.

Pure rendering of a :class:`~hybridops.audit.timeline.Timeline` and an
:class:`~hybridops.audit.evidence_check.EvidenceCheck`: no I/O, no clock.
"""

from __future__ import annotations

import math
from datetime import datetime

from hybridops.audit.evidence_check import EvidenceCheck
from hybridops.audit.timeline import StepKind, StepStatus, Timeline, TimelineStep
from hybridops.markup import html_text, md, md_code

COLOURS = {
    "changed": "#2e7d32",
    "unchanged": "#81c784",
    "failed": "#c62828",
    "compensation": "#ef6c00",
    "wait": "#90a4ae",
    "canceled": "#bdbdbd",
    "running": "#1565c0",
}
"""Bar colour per outcome (the legend shows them)."""


def outcome(step: TimelineStep) -> str:
    """The colour key of a step: what it did, as the timeline shows it."""
    if step.status in (StepStatus.FAILED, StepStatus.TIMED_OUT):
        return "failed"
    if step.compensation:
        return "compensation"
    if step.kind == StepKind.TIMER:
        return "wait"
    if step.status == StepStatus.CANCELED:
        return "canceled"
    if step.status == StepStatus.RUNNING:
        return "running"
    return "unchanged" if step.changed is False else "changed"


def _offset(tl: Timeline, at: datetime | None) -> str:
    return "-" if at is None else f"+{(at - tl.started_at).total_seconds():.3f} s"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def _origin(tl: Timeline) -> str:
    how = tl.origin.value
    if tl.scheduled_by:
        how += f" `{md_code(tl.scheduled_by)}`"
    return how


def _cell(text: str) -> str:
    return md(text)


def _evidence_lines(check: EvidenceCheck) -> list[str]:
    if check.tampered:
        lines = [f"> **EVIDENCE CHANGED AFTER THE RUN** in `{md_code(check.folder)}`:", ">"]
        lines += [f"> - {md(p)}" for p in check.problems]
        return [*lines, ""]
    if check.folder is None:
        return [f"> Evidence not checked: {md(check.note)}", ""]
    lines = [
        f"Evidence `{md_code(check.folder)}`: every file matches its manifest ({len(check.files)} files)."
    ]
    lines += [f"- {md(p)}" for p in check.problems]  # files added after the run, if any
    return [*lines, ""]


def _step_rows(tl: Timeline, steps: list[TimelineStep]) -> list[str]:
    rows = [
        "| # | step | kind | outcome | attempts | start | duration | detail |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, s in enumerate(steps, 1):
        detail = s.failure or s.detail
        rows.append(
            f"| {i} | {_cell(s.name)} | {s.kind.value} | {s.status.value} ({outcome(s)}) | {s.attempts}"
            f" | {_offset(tl, s.started_at)} | {_secs(s.seconds)} | {_cell(detail)} |"
        )
    return rows


def render_markdown(tl: Timeline, check: EvidenceCheck) -> str:
    """The audit report for people, in markdown."""
    lines = [f"# Audit: {md(tl.workflow_type)} `{md_code(tl.workflow_id)}`: {md(tl.status)}", ""]
    lines += _evidence_lines(check)
    lines += [
        "## Start",
        "",
        f"- Started: {tl.started_at.isoformat()} by client `{md_code(tl.identity)}` ({_origin(tl)})",
        f"- Requested by: {md(tl.requested_by or '-')}; reason: {md(tl.reason or '-')}",
        f"- Run: `{md_code(tl.run_id)}` on task queue `{md_code(tl.task_queue)}`",
        "",
        "## Steps",
        "",
        *_step_rows(tl, [s for s in tl.steps if not s.compensation]),
    ]
    comps = [s for s in tl.steps if s.compensation]
    if comps or tl.compensations:
        lines += ["", "## Compensations", ""]
        lines += (
            _step_rows(tl, comps) if comps else [f"- named by the result: {md(', '.join(tl.compensations))}"]
        )
    lines += ["", "## Approvals", ""]
    if not tl.approvals:
        lines.append("- none")
    for a in tl.approvals:
        verdict = (
            "approved" if a.approved else "rejected" if a.approved is False else f"failed ({md(a.failure)})"
        )
        lines.append(
            f"- {verdict} by **{md(a.by or '?')}** at {a.received_at.isoformat()}"
            f" ({_offset(tl, a.received_at)}),"
            f" update `{md_code(a.update)}` from client `{md_code(a.identity)}`"
            + (f": {md(a.comment)}" if a.comment else "")
        )
    lines += ["", "## Signals", ""]
    if not tl.signals:
        lines.append("- none")
    lines += [
        f"- `{md_code(g.name)}` at {g.at.isoformat()} ({_offset(tl, g.at)})"
        f" from `{md_code(g.identity)}`: {md(g.summary)}"
        for g in tl.signals
    ]
    lines += [
        "",
        "## End",
        "",
        f"- Closed as: {md(tl.closed_as)} at {tl.ended_at.isoformat() if tl.ended_at else '-'}",
        f"- Runbook status: {md(tl.status)}",
    ]
    if tl.message:
        lines.append(f"- Failure: {md(tl.message)}")
    lines += ["", "## Durations", ""]
    lines += [f"- {name}: {_secs(value)}" for name, value in tl.durations().items()]
    lines += ["", "Derived from the run's Temporal history alone (`hybridops audit report`)."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#212121;max-width:1100px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
th{background:#f5f5f5}.alarm{background:#ffebee;border:2px solid #c62828;padding:.6em 1em;font-weight:bold}
.ok{background:#e8f5e9;border:1px solid #2e7d32;padding:.4em 1em}.note{background:#fff8e1;padding:.4em 1em}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:middle}code{background:#f5f5f5;padding:0 3px}
"""


def _nice_step(span: float) -> float:
    raw = span / 8
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


def render_svg(tl: Timeline) -> str:
    """A Gantt chart of the steps on the run's time axis: one bar per step, coloured by
    outcome; approvals (diamonds) and signals (triangles) as marks on their own row."""
    label_w, chart_w, row_h, top = 230, 760, 20, 30
    steps = tl.steps
    t0 = tl.started_at
    ends = [s.ended_at or s.started_at for s in steps] + [tl.ended_at or t0]
    ends += [a.received_at for a in tl.approvals] + [g.at for g in tl.signals]
    span = max((max(ends) - t0).total_seconds(), 1e-3)

    def x(at: datetime) -> float:
        return label_w + (at - t0).total_seconds() / span * chart_w

    rows = len(steps) + 1
    height = top + rows * row_h + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + 20}" height="{height}"'
        f' role="img" aria-label="timeline of {html_text(tl.workflow_id)}" font-size="11"'
        ' font-family="system-ui,sans-serif">'
    ]
    step = _nice_step(span)
    t = 0.0
    while t <= span + 1e-9:
        px = label_w + t / span * chart_w
        out.append(
            f'<line x1="{px:.1f}" y1="{top - 5}" x2="{px:.1f}" y2="{top + rows * row_h}" stroke="#eee"/>'
        )
        label = f"{t * 1000:.0f} ms" if span < 10 else f"{t:.0f} s"
        out.append(f'<text x="{px:.1f}" y="{top - 10}" text-anchor="middle" fill="#757575">{label}</text>')
        t += step
    for i, s in enumerate(steps):
        y = top + i * row_h
        end = s.ended_at or tl.ended_at or s.started_at
        x1, x2 = x(s.started_at), x(end)
        colour = COLOURS[outcome(s)]
        name = html_text(s.name + (" (undo)" if s.compensation else ""))
        tip = html_text(
            f"{s.name}: {s.status.value}, attempt {s.attempts}, {_secs(s.seconds)}"
            + (f", {s.failure}" if s.failure else f", {s.detail}" if s.detail else "")
        )
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{name}</text>')
        out.append(
            f'<rect class="bar" data-outcome="{outcome(s)}" x="{x1:.1f}" y="{y + 3}"'
            f' width="{max(x2 - x1, 2):.1f}" height="{row_h - 6}" fill="{colour}"><title>{tip}</title></rect>'
        )
        if s.attempts > 1:
            out.append(
                f'<text x="{max(x2, x1 + 2) + 4:.1f}" y="{y + 14}" fill="#c62828">&#215;{s.attempts}</text>'
            )
    y = top + len(steps) * row_h
    out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">approvals, signals</text>')
    for a in tl.approvals:
        px, cy = x(a.received_at), y + row_h / 2
        verdict = "approved" if a.approved else "rejected"
        colour = "#6a1b9a" if a.approved else "#c62828"
        tip = html_text(f"{verdict} by {a.by} at {a.received_at.isoformat()}")
        out.append(
            f'<path d="M{px:.1f},{cy - 7} L{px + 7:.1f},{cy} L{px:.1f},{cy + 7} L{px - 7:.1f},{cy} Z"'
            f' fill="{colour}"><title>{tip}</title></path>'
        )
    for g in tl.signals:
        px, cy = x(g.at), y + row_h / 2
        tip = html_text(f"signal {g.name} at {g.at.isoformat()}: {g.summary}")
        out.append(
            f'<path d="M{px - 6:.1f},{cy + 6} L{px + 6:.1f},{cy + 6} L{px:.1f},{cy - 6} Z" fill="#1565c0">'
            f"<title>{tip}</title></path>"
        )
    if tl.ended_at is not None:
        px = x(tl.ended_at)
        out.append(
            f'<line x1="{px:.1f}" y1="{top - 5}" x2="{px:.1f}" y2="{top + rows * row_h}" stroke="#212121"'
            f' stroke-dasharray="3,3"><title>closed: {html_text(tl.closed_as)}</title></line>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html_text(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_steps(tl: Timeline, steps: list[TimelineStep]) -> str:
    return _table(
        ["#", "step", "kind", "outcome", "attempts", "start", "duration", "detail"],
        [
            [
                str(i),
                s.name,
                s.kind.value,
                f"{s.status.value} ({outcome(s)})",
                str(s.attempts),
                _offset(tl, s.started_at),
                _secs(s.seconds),
                s.failure or s.detail,
            ]
            for i, s in enumerate(steps, 1)
        ],
    )


def render_html(tl: Timeline, check: EvidenceCheck) -> str:
    """The audit report as one HTML page: no scripts, no external assets."""
    e = html_text
    if check.tampered:
        items = "".join(f"<li>{e(p)}</li>" for p in check.problems)
        evidence = (
            '<div class="alarm">EVIDENCE CHANGED AFTER THE RUN in'
            f" <code>{e(str(check.folder))}</code><ul>{items}</ul></div>"
        )
    elif check.folder is None:
        evidence = f'<div class="note">Evidence not checked: {e(check.note)}</div>'
    else:
        evidence = (
            f'<div class="ok">Evidence <code>{e(check.folder)}</code>: every file matches its manifest'
            f" ({len(check.files)} files).</div>"
        )
    legend = "".join(f'<span><i style="background:{c}"></i>{e(k)}</span>' for k, c in COLOURS.items())
    approvals = _table(
        ["verdict", "by", "at", "offset", "update", "client", "comment"],
        [
            [
                "approved" if a.approved else "rejected" if a.approved is False else f"failed: {a.failure}",
                a.by,
                a.received_at.isoformat(),
                _offset(tl, a.received_at),
                a.update,
                a.identity,
                a.comment,
            ]
            for a in tl.approvals
        ],
    )
    signals = _table(
        ["signal", "at", "offset", "client", "argument"],
        [[g.name, g.at.isoformat(), _offset(tl, g.at), g.identity, g.summary] for g in tl.signals],
    )
    comps = [s for s in tl.steps if s.compensation]
    durations = _table(["duration", "value"], [[k, _secs(v)] for k, v in tl.durations().items()])
    scheduled = f" <code>{e(tl.scheduled_by)}</code>" if tl.scheduled_by else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Audit {e(tl.workflow_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Audit: {e(tl.workflow_type)} <code>{e(tl.workflow_id)}</code>: {e(tl.status)}</h1>",
        evidence,
        "<h2>Start</h2><ul>",
        f"<li>Started {e(tl.started_at.isoformat())} by client <code>{e(tl.identity)}</code>"
        f" ({e(tl.origin.value)}{scheduled})</li>",
        f"<li>Requested by: {e(tl.requested_by or '-')}; reason: {e(tl.reason or '-')}</li>",
        f"<li>Run <code>{e(tl.run_id)}</code> on task queue <code>{e(tl.task_queue)}</code></li></ul>",
        "<h2>Timeline</h2>",
        f'<div class="legend">{legend}</div>',
        render_svg(tl),
        "<h2>Steps</h2>",
        _html_steps(tl, [s for s in tl.steps if not s.compensation]),
    ]
    if comps:
        parts += ["<h2>Compensations</h2>", _html_steps(tl, comps)]
    parts += ["<h2>Approvals</h2>", approvals if tl.approvals else "<p>none</p>"]
    parts += ["<h2>Signals</h2>", signals if tl.signals else "<p>none</p>"]
    end = tl.ended_at.isoformat() if tl.ended_at else "-"
    parts += [
        "<h2>End</h2><ul>",
        f"<li>Closed as {e(tl.closed_as)} at {e(end)}</li><li>Runbook status: {e(tl.status)}</li>",
        f"<li>Failure: {e(tl.message)}</li>" if tl.message else "",
        "</ul><h2>Durations</h2>",
        durations,
        "<p><small>Derived from the run's Temporal history alone (hybridops audit report).</small></p>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
