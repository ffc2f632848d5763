"""The audit report as markdown and as one self-contained HTML page with an SVG timeline.

Pure rendering of a :class:`~hybridops.audit.timeline.Timeline`, an
:class:`~hybridops.audit.evidence_check.EvidenceCheck` and the run's
:class:`~hybridops.audit.ending.RunEnding`, as one :class:`~hybridops.page.Page` written both
ways (:mod:`hybridops.page`); the run's measures are stated as its own report states them
(:func:`hybridops.report.measure_lines`). No I/O, no clock.
"""

from __future__ import annotations

from datetime import datetime

from hybridops.audit.ending import EndingSource, RunEnding, run_ending
from hybridops.audit.evidence_check import EvidenceCheck
from hybridops.audit.timeline import StepKind, StepStatus, Timeline, TimelineStep
from hybridops.page import (
    Banner,
    Bar,
    Block,
    Chart,
    Code,
    Inline,
    Items,
    Line,
    Mark,
    Page,
    Section,
    Strong,
    Table,
    Text,
    html,
    markdown,
    seconds_text,
)
from hybridops.report import measure_lines


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


def _evidence(check: EvidenceCheck) -> Banner:
    if check.tampered:
        head: Line = (Strong("EVIDENCE CHANGED AFTER THE RUN"), " in ", Code(str(check.folder)), ":")
        return Banner("alarm", head, list(check.problems))
    if check.folder is None:
        return Banner("note", f"Evidence not checked: {check.note}")
    head = ("Evidence ", Code(check.folder), f": every file matches its manifest ({len(check.files)} files).")
    return Banner("ok", head, list(check.problems))  # files added after the run, if any


def _steps(tl: Timeline, steps: list[TimelineStep]) -> Table:
    return Table(
        ("#", "step", "kind", "outcome", "attempts", "start", "duration", "detail"),
        [
            (
                str(i),
                s.name,
                s.kind.value,
                f"{s.status.value} ({outcome(s)})",
                str(s.attempts),
                _offset(tl, s.started_at),
                seconds_text(s.seconds),
                s.failure or s.detail,
            )
            for i, s in enumerate(steps, 1)
        ],
    )


def _chart(tl: Timeline) -> Chart:
    bars = [
        Bar(
            name=s.name + (" (undo)" if s.compensation else ""),
            started_at=s.started_at,
            ended_at=s.ended_at,
            outcome=outcome(s),
            attempts=s.attempts,
            tip=f"{s.name}: {s.status.value}, attempt {s.attempts}, {seconds_text(s.seconds)}"
            + (f", {s.failure}" if s.failure else f", {s.detail}" if s.detail else ""),
        )
        for s in tl.steps
    ]
    marks = [
        Mark(
            at=a.received_at,
            shape="diamond",
            colour="#6a1b9a" if a.approved else "#c62828",
            tip=f"{'approved' if a.approved else 'rejected'} by {a.by} at {a.received_at.isoformat()}",
        )
        for a in tl.approvals
    ]
    marks += [
        Mark(
            at=g.at,
            shape="triangle",
            colour="#1565c0",
            tip=f"signal {g.name} at {g.at.isoformat()}: {g.summary}",
        )
        for g in tl.signals
    ]
    return Chart(
        label=f"timeline of {tl.workflow_id}",
        started_at=tl.started_at,
        ended_at=tl.ended_at,
        bars=bars,
        marks=marks,
        closed=f"closed: {tl.closed_as}",
    )


def _approvals(tl: Timeline) -> list[Line]:
    lines: list[Line] = []
    for a in tl.approvals:
        verdict: tuple[Inline, ...] = (
            ("approved",)
            if a.approved
            else ("rejected",)
            if a.approved is False
            else ("failed (", a.failure, ")")
        )
        lines.append(
            (
                *verdict,
                " by ",
                Strong(a.by or "?"),
                f" at {a.received_at.isoformat()} ({_offset(tl, a.received_at)}), update ",
                Code(a.update),
                " from client ",
                Code(a.identity),
                *((": ", a.comment) if a.comment else ()),
            )
        )
    return lines or ["none"]


def _end(tl: Timeline, ending: RunEnding) -> list[Line]:
    if ending.source == EndingSource.EVIDENCE:
        at = ending.ended_at.isoformat() if ending.ended_at else "-"
        lines: list[Line] = [
            "Closed: after this history was exported (by the run's evidence step, before the run closed)",
            f"Ended: {ending.status} at {at}, as its evidence.json beside the history records it",
        ]
    else:
        lines = [f"Closed as: {tl.closed_as} at {tl.ended_at.isoformat() if tl.ended_at else '-'}"]
    lines.append(f"Runbook status: {ending.status}")
    if tl.message:
        lines.append(("Failure: ", tl.message))
    if ending.evidence is not None:
        lines += measure_lines(ending.evidence)
    if ending.note:
        lines.append(("Note: ", ending.note))
    return lines


def _source(ending: RunEnding) -> str:
    told = "Derived from the run's Temporal history (hybridops audit report)"
    if ending.source == EndingSource.EVIDENCE:
        return f"{told}; its ending and measures from the evidence.json beside the exported history."
    return f"{told} alone."


def audit_page(tl: Timeline, check: EvidenceCheck, ending: RunEnding | None = None) -> Page:
    """The audit report as a page; ``ending`` defaults to what the history alone says."""
    ending = ending or run_ending(tl, None, check)
    scheduled: tuple[Inline, ...] = (" ", Code(tl.scheduled_by)) if tl.scheduled_by else ()
    start: list[Line] = [
        (
            f"Started: {tl.started_at.isoformat()} by client ",
            Code(tl.identity),
            f" ({tl.origin.value}",
            *scheduled,
            ")",
        ),
        ("Requested by: ", tl.requested_by or "-", "; reason: ", tl.reason or "-"),
        ("Run: ", Code(tl.run_id), " on task queue ", Code(tl.task_queue)),
    ]
    comps = [s for s in tl.steps if s.compensation]
    sections = [
        Section("Start", [Items(start)]),
        Section("Timeline", [_chart(tl)]),
        Section("Steps", [_steps(tl, [s for s in tl.steps if not s.compensation])]),
    ]
    if comps or tl.compensations:
        named: Block = (
            _steps(tl, comps) if comps else Items([("named by the result: ", ", ".join(tl.compensations))])
        )
        sections.append(Section("Compensations", [named]))
    signals: list[Line] = [
        (
            Code(g.name),
            f" at {g.at.isoformat()} ({_offset(tl, g.at)}) from ",
            Code(g.identity),
            ": ",
            g.summary,
        )
        for g in tl.signals
    ]
    sections += [
        Section("Approvals", [Items(_approvals(tl))]),
        Section("Signals", [Items(signals or ["none"])]),
        Section("End", [Items(_end(tl, ending))]),
        Section("Durations", [Items([f"{name}: {seconds_text(v)}" for name, v in tl.durations().items()])]),
    ]
    return Page(
        title=("Audit: ", tl.workflow_type, " ", Code(tl.workflow_id), f": {ending.status}"),
        head=[_evidence(check)],
        sections=sections,
        foot=[Text(_source(ending), small=True)],
        html_title=f"Audit {tl.workflow_id}",
    )


def render_markdown(tl: Timeline, check: EvidenceCheck, ending: RunEnding | None = None) -> str:
    """The audit report for people, in markdown."""
    return markdown(audit_page(tl, check, ending))


def render_html(tl: Timeline, check: EvidenceCheck, ending: RunEnding | None = None) -> str:
    """The audit report as one HTML page: no scripts, no external assets."""
    return html(audit_page(tl, check, ending))
