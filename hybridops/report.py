"""A run's report for people, ``report.md`` and ``report.html``: rendered from its evidence
(:class:`~hybridops.contracts.evidence.Evidence`) here and nowhere else, for every runbook.

Every report has the same parts in the same order: the run (who, when, why, how it ended, its
RTO and RPO), the runbook's own details, the topology the run started from and what it found,
the decision, the steps (a timeline chart in HTML, a table in both), compensations, approvals.
A runbook contributes only its details (:data:`_DETAILS`), read from ``evidence.details``. The
evidence step writes both files (:func:`hybridops.evidence.write_folder`), and the audit report
shows the same measures (:func:`measure_lines`). Pure: no Temporal, no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hybridops.constants import Runbook
from hybridops.contracts.base import ApprovalRecord, OperatorRecord, RtoSplit, StepOutcome
from hybridops.contracts.decision import Decision
from hybridops.contracts.evidence import (
    BootstrapDetails,
    BurstDetails,
    DrillDetails,
    Evidence,
    EvidenceStep,
    FailbackDetails,
    FailoverDetails,
    Rpo,
    RpoMethod,
    Rto,
    RtoMethod,
)
from hybridops.contracts.sites import Topology
from hybridops.decision import CANDIDATE_COLUMNS, candidate_rows, signal_rows
from hybridops.page import (
    Banner,
    Bar,
    Block,
    Chart,
    Code,
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
)

REPORT_MD = "report.md"
REPORT_HTML = "report.html"

STEP_COLUMNS = ("step", "outcome", "attempts", "time", "detail")

_RTO_MEANS = {
    RtoMethod.OUTAGE: "outage: from the incident to the first write through the DNS name",
    RtoMethod.WRITE_PAUSE: "write pause: until a write through the DNS name landed on home",
    RtoMethod.RESTORE: "time to a usable restored database",
}
_RPO_MEANS = {
    RpoMethod.LEDGER: "the writer's acknowledged writes missing on the new primary",
    RpoMethod.LAG: "estimated from the replication lag at decision time",
    RpoMethod.LSN: "home replayed the paused primary's final LSN",
    RpoMethod.NEWEST_ROW: "age of the newest restored row",
}


def report_markdown(ev: Evidence) -> str:
    """``report.md`` of a run."""
    return markdown(run_page(ev))


def report_html(ev: Evidence) -> str:
    """``report.html`` of a run: one self-contained page with the steps' timeline."""
    return html(run_page(ev))


def reports(ev: Evidence) -> dict[str, str]:
    """Both reports of a run, by file name."""
    page = run_page(ev)
    return {REPORT_MD: markdown(page), REPORT_HTML: html(page)}


def run_page(ev: Evidence) -> Page:
    """The run's report as a page (see the module's docstring for its parts)."""
    head: list[Block] = [Banner("error", (Strong("Error:"), " ", ev.error))] if ev.error else []
    if ev.by_hand:
        # A run that failed past the point of no return: the exact next steps, first thing seen.
        steps = [f"{n}. {t}" for n, t in enumerate(ev.by_hand, 1)]
        head.append(Banner("error", (Strong("Finish by hand"), f" (stopped in {ev.stopped_in}):"), steps))
    sections = [
        Section("Run", [Items(_run_lines(ev))]),
        *_DETAILS[ev.runbook](ev),
        *_safety(ev),
        *_decision(ev.decision),
        *_steps(ev),
        *_approvals("Approvals", ev.approvals),
        *_approvals("Refused approvals", ev.refused_approvals),
        *_operator_actions(ev.operator_actions),
    ]
    return Page(
        title=(f"{ev.runbook.value.capitalize()} ", Code(ev.workflow_id), f": {ev.status.value}"),
        head=head,
        sections=sections,
        foot=[Text("Written by the run's evidence step, from its evidence.json.", small=True)],
        html_title=f"{ev.runbook.value.capitalize()} {ev.workflow_id}",
    )


def _at(at: datetime | None) -> str:
    return at.isoformat() if at is not None else "-"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _run_lines(ev: Evidence) -> list[Line]:
    lines: list[Line] = [
        (f"Started: {_at(ev.started_at)} by ", ev.requested_by, " (", ev.reason, ")"),
        f"Ended: {_at(ev.ended_at)}" + (f" ({_s(ev.seconds)})" if ev.seconds is not None else ""),
    ]
    if ev.target is not None or ev.runbook in (Runbook.FAILOVER, Runbook.FAILBACK, Runbook.BURST):
        lines.append(("Target: ", ev.target or "-"))
    lines += measure_lines(ev)
    if ev.point_of_no_return_passed is not None:
        lines.append(f"Point of no return passed: {'yes' if ev.point_of_no_return_passed else 'no'}")
    return lines


def measure_lines(ev: Evidence) -> list[Line]:
    """The run's RTO and RPO, as every report states them (none for a runbook that measures
    none)."""
    return [line for line in (_rto(ev.rto), _rpo(ev.rpo)) if line]


def _objective(m: Rto | Rpo) -> str:
    if m.objective_s is None:
        return ""
    return f"; objective {m.objective_s:g} s: {'met' if m.passed else 'missed'}"


def _rto(rto: Rto | None) -> str:
    if rto is None:
        return ""
    value = _s(rto.seconds) if rto.seconds is not None else "not reached"
    means = f"outage: from {rto.counted_from}" if rto.counted_from else _RTO_MEANS[rto.method]
    since = f", since {rto.since.isoformat()}" if rto.since is not None else ""
    split = f"; {rto_split_text(rto.split)}" if rto.split is not None else ""
    return f"RTO: {value} ({means}{since}{split}{_objective(rto)})"


def rto_split_text(split: RtoSplit) -> str:
    """``detection 1.2 s, decision 0.3 s, execution 0.5 s, reconnect 0.1 s``: the parts measured."""
    parts = (
        ("detection", split.detection_s),
        ("decision", split.decision_s),
        ("execution", split.execution_s),
        ("reconnect", split.reconnect_s),
    )
    return ", ".join(f"{name} {value:.3f} s" for name, value in parts if value is not None)


def _rpo(rpo: Rpo | None) -> str:
    if rpo is None:
        return ""
    if rpo.method == RpoMethod.NONE:
        return "RPO: not measured"
    parts = [] if rpo.transactions_lost is None else [f"{rpo.transactions_lost} transactions lost"]
    parts.append("seconds unknown" if rpo.seconds is None else f"{rpo.seconds:g} s")
    return f"RPO: {', '.join(parts)} ({rpo.method.value}: {_RPO_MEANS[rpo.method]}{_objective(rpo)})"


# ---------------------------------------------------------------------- details, a runbook each


def _failover(ev: Evidence) -> list[Section]:
    d = ev.details
    assert isinstance(d, FailoverDetails)
    lines: list[Line] = []
    if d.dns_repaired:
        lines.append("DNS repaired: the primary was healthy, DNS pointed elsewhere; DNS now points at it")
    if d.lease is not None:
        holder = f" (held by {d.lease.holder.workflow_id})" if d.lease.holder and not d.lease.granted else ""
        lines.append(f"Topology lease: {'granted' if d.lease.granted else 'refused'}{holder}")
    lines += [
        f"Diverged writes on {w.site}: timeline {w.timeline}, {w.from_lsn or '?'} .. {w.to_lsn or '?'}"
        for w in d.diverged
    ]
    lines += [("Fenced as a second writer: ", site) for site in d.fenced]
    if d.fence is not None:
        proof = (
            f"verified: timeline {d.fence.token.timeline}, checkpoint {d.fence.token.lsn}"
            if d.fence.token
            else f"unverified (did not answer; {d.fence.isolated or 'not isolated'})"
        )
        lines.append(f"Old primary's fence: {proof}")
    out = [Section("Failover", [Items(lines)])] if lines else []
    if d.signals:
        header, rows = signal_rows(d.signals)
        blocks: list[Block] = [Table(header, rows)]
        if d.signals.errors:
            blocks.append(Items([("source error: ", e) for e in d.signals.errors]))
        out.append(Section(f"Signals at {d.signals.taken_at.isoformat()}", blocks))
    if d.alerts:
        alerts: list[Line] = [
            (n.status, f" at {n.received_at.isoformat()}: ", ", ".join(n.alertnames) or "-") for n in d.alerts
        ]
        out.append(Section("Alerts", [Items(alerts)]))
    if d.health:
        verdicts = {True: "pass", False: "FAIL", None: "unknown"}
        rows = [
            (
                c.id,
                c.site or "-",
                "-" if c.value is None else str(c.value),
                c.threshold,
                verdicts[c.passed],
                c.source,
                c.detail,
            )
            for c in d.health
        ]
        header = ("check", "site", "value", "threshold", "verdict", "source", "detail")
        out.append(Section("Health after the cutover", [Table(header, rows)]))
    return out


def _failback(ev: Evidence) -> list[Section]:
    d = ev.details
    assert isinstance(d, FailbackDetails)
    rejoin = d.rejoin.value if d.rejoin else "-"
    lines: list[Line] = [
        ("Home (new primary): ", ev.target or "-", "; cloud primary before: ", d.old_primary or "-"),
        (
            f"Home rejoined by: {rejoin}",
            *((" (old data directory moved to ", d.moved_aside, ")") if d.moved_aside else ()),
        ),
        f"Final LSN of the paused primary: {d.final_lsn or '-'}; home's timeline after: {d.timeline or '-'}",
        f"Rejoin {_s(d.rejoin_seconds)}, catch-up {_s(d.catch_up_seconds)},"
        f" switchover {_s(d.switchover_seconds)}",
        f"Old primary rejoined by: {d.old_primary_rejoin.value if d.old_primary_rejoin else '-'}",
    ]
    lines += [("warning: ", w) for w in d.warnings]
    return [Section("Failback", [Items(lines)])]


def _drill(ev: Evidence) -> list[Section]:
    d = ev.details
    assert isinstance(d, DrillDetails)
    backup: Line = "Backup: -"
    if d.backup is not None:
        taken = f" (taken {d.backup.finished_at.isoformat()})" if d.backup.finished_at else ""
        backup = ("Backup: ", d.backup.name, taken)
    target = ev.input.get("target_time")
    lines: list[Line] = [
        "Passed: yes (restored, verified, both objectives met)" if d.passed else "Passed: no",
        backup,
        ("Restore target: ", str(target) if target else "latest"),
        f"Rows restored: {'-' if d.rows_restored is None else d.rows_restored};"
        f" newest row: {_at(d.newest_row_at)}",
    ]
    blocks: list[Block] = [Items(lines)]
    if d.slo:
        rows = [
            (
                c.name,
                "-" if c.measured_s is None else f"{c.measured_s:g} s",
                f"{c.objective_s:g} s",
                "yes" if c.passed else "no",
            )
            for c in d.slo
        ]
        blocks.append(Table(("check", "measured", "objective", "passed"), rows))
    return [Section("Drill", blocks)]


def _burst(ev: Evidence) -> list[Section]:
    d = ev.details
    assert isinstance(d, BurstDetails)
    lines: list[Line] = [
        f"Asked for: +{ev.input.get('extra_nodes', '?')} nodes,"
        f" {ev.input.get('traffic_share', '?')}% of the traffic",
        ("Ended because: ", d.ended_because or "-"),
        f"Estimated cost: {d.cost_estimate:.2f} ({d.node_hours:.3f} node-hours)",
        f"Load checks: {d.checks} over {d.runs} run(s) (continue-as-new);"
        f" peak load {'-' if d.peak_load is None else d.peak_load}",
    ]
    return [Section("Burst", [Items(lines)])]


def _bootstrap(ev: Evidence) -> list[Section]:
    assert isinstance(ev.details, BootstrapDetails)
    dry = bool(ev.input.get("dry_run"))
    return [Section("Bootstrap", [Items([f"Dry run: {'yes (nothing changed)' if dry else 'no'}"])])]


_DETAILS: dict[Runbook, Callable[[Evidence], list[Section]]] = {
    Runbook.FAILOVER: _failover,
    Runbook.FAILBACK: _failback,
    Runbook.DRILL: _drill,
    Runbook.BURST: _burst,
    Runbook.BOOTSTRAP: _bootstrap,
}
"""What each runbook adds to the report: its details section(s), from ``evidence.details``."""


# ---------------------------------------------------------------------- shared parts


def _topology(ev: Evidence) -> Topology | None:
    d = ev.details
    return d.topology if isinstance(d, FailoverDetails | FailbackDetails) else None


def _safety(ev: Evidence) -> list[Section]:
    """What the servers said at the start and what the run found: one shape for every
    runbook that reads the topology."""
    topology = _topology(ev)
    blocks: list[Block] = []
    if topology is not None:
        rows = [
            (
                s.site,
                "down" if not s.reachable else ("standby" if s.in_recovery else "primary"),
                "yes" if s.writable else "no",
                str(s.timeline) if s.timeline is not None else "-",
                s.current_lsn or s.replay_lsn or "-",
                s.upstream or "-",
                ", ".join(
                    m
                    for m, on in (("fenced", s.fenced), (f"promoted by {s.promoted_by}", s.promoted_by))
                    if on
                )
                or "-",
            )
            for s in topology.servers
        ]
        blocks.append(Table(("server", "role", "writable", "timeline", "LSN", "upstream", "marks"), rows))
        blocks.append(
            Items([f"DNS {topology.dns_record} -> {topology.dns_site or topology.dns_value or 'nothing'}"])
        )
    found: list[Line] = [(Code(f.kind.value), ": ", f.detail) for f in ev.findings]
    found += [("blocked by ", Code(b.rule), f" ({b.site}): ", b.detail) for b in ev.blocked_by]
    if found:
        blocks.append(Items(found))
    if not blocks:
        return []
    title = "Topology at the start (from the servers)" if topology is not None else "Findings"
    return [Section(title, blocks)]


def _decision(d: Decision | None) -> list[Section]:
    if d is None:
        return []
    approval = "required" if d.requires_approval else "not required"
    blocks: list[Block] = [
        Text(
            (
                Code(d.decision_id),
                f": {d.decision_type.value} to ",
                d.target or "-",
                f" ({d.target_cloud.value}), mode {d.dr_mode.value}, approval {approval}",
            )
        ),
        Items(list(d.rationale)),
    ]
    if d.candidates:
        blocks.append(Table(CANDIDATE_COLUMNS, candidate_rows(d)))
    return [Section("Decision", blocks)]


def _outcome(step: EvidenceStep, compensation: bool) -> str:
    if step.outcome == StepOutcome.FAILED:
        return "failed"
    if compensation:
        return "compensation"
    return step.outcome.value if step.outcome else "running"


def _ms(step: EvidenceStep) -> str:
    return "-" if step.seconds is None else f"{step.seconds * 1000:.0f} ms"


def _step_table(steps: list[EvidenceStep]) -> Table:
    return Table(
        STEP_COLUMNS,
        [
            (
                s.name + (" (irreversible)" if s.irreversible else ""),
                s.outcome.value if s.outcome else "-",
                str(s.attempts),
                _ms(s),
                s.detail,
            )
            for s in steps
        ],
    )


def _chart(ev: Evidence) -> Chart:
    bars = [
        Bar(
            name=s.name + (" (undo)" if undo else ""),
            started_at=s.started_at,
            ended_at=s.ended_at,
            outcome=_outcome(s, undo),
            attempts=s.attempts,
            tip=f"{s.name}: {s.outcome.value if s.outcome else 'running'}, attempt {s.attempts}, {_ms(s)}"
            + (f", {s.detail}" if s.detail else ""),
        )
        for steps, undo in ((ev.steps, False), (ev.compensations, True))
        for s in steps
    ]
    marks = [
        Mark(
            at=a.at,
            shape="diamond",
            colour="#6a1b9a" if a.approved and not a.refused else "#c62828",
            tip=_approval_text(a),
        )
        for a in [*ev.approvals, *ev.refused_approvals]
    ]
    return Chart(
        label=f"timeline of {ev.workflow_id}",
        started_at=ev.started_at,
        ended_at=ev.ended_at,
        bars=bars,
        marks=marks,
        marks_label="approvals",
        closed=f"ended: {ev.status.value}",
    )


def _steps(ev: Evidence) -> list[Section]:
    out: list[Section] = []
    if ev.steps or ev.compensations:
        out.append(Section("Timeline", [_chart(ev)]))
    if ev.steps:
        out.append(Section("Steps", [_step_table(ev.steps)]))
    if ev.compensations:
        out.append(Section("Compensations", [_step_table(ev.compensations)]))
    return out


def _approval_text(a: ApprovalRecord) -> str:
    verdict = "approved" if a.approved else "rejected"
    return f"{verdict} by {a.by} at {a.at.isoformat()}"


def _approvals(title: str, records: list[ApprovalRecord]) -> list[Section]:
    if not records:
        return []
    lines: list[Line] = []
    for a in records:
        verdict = "approved" if a.approved else "rejected"
        line: tuple[Any, ...] = (f"{verdict} by ", Strong(a.by), f" at {a.at.isoformat()}")
        if a.override:
            line += (" overriding ", Code(a.override))
        if a.identity:
            line += (" (client identity ", Code(a.identity), ")")
        if a.refused:
            line += (": refused, ", a.refused)
        if a.comment:
            line += (": ", a.comment)
        lines.append(line)
    return [Section(title, [Items(lines)])]


def _operator_actions(records: list[OperatorRecord]) -> list[Section]:
    """Pauses, resumes, retries and skips: who (claim and verified signer), when, which step,
    why, and whether the run took it."""
    if not records:
        return []
    lines: list[Line] = []
    for r in records:
        line: tuple[Any, ...] = (f"{r.action.value} by ", Strong(r.by), f" at {r.at.isoformat()}")
        if r.step:
            line += (" on step ", Code(r.step))
        if r.signer:
            line += (" signed by ", Code(r.signer))
        if r.identity:
            line += (" (client identity ", Code(r.identity), ")")
        if r.refused:
            line += (": refused, ", r.refused)
        if r.comment:
            line += (": ", r.comment)
        lines.append(line)
    return [Section("Operator actions", [Items(lines)])]
