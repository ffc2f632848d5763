"""The evidence folder every run leaves: evidence.json, report.md, history.json, manifest.json.

Pure file writing, called from every runbook's evidence activity. evidence.json is one shape
for all runbooks (:class:`hybridops.contracts.evidence.Evidence`). Inputs are models that hold
no secrets, so nothing here has to scrub.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from hybridops.contracts.base import RuleViolation, StepRecord
from hybridops.contracts.evidence import Evidence
from hybridops.contracts.failover import FailoverResult
from hybridops.contracts.sites import DivergedWrites, FenceResult, Finding, Topology
from hybridops.decision import CANDIDATE_COLUMNS, candidate_rows, signal_rows
from hybridops.errors import InputError
from hybridops.markup import md, md_code

MANIFEST = "manifest.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._:@+=-]")
_NAME_CHARS = 120
"""Longest folder name kept from an id (a file name may have 255 bytes; the digest follows)."""


def path_safe(name: str) -> str:
    """``name`` as one folder name: itself when it is made of letters, digits and ``._:@+=-``
    only (the ids HybridOps and Temporal's schedules make are); otherwise every other character
    becomes ``_`` and a digest of the original follows, so two different ids never share a
    folder. Never empty, never ``.`` or ``..``, never hidden, never a path."""
    safe = _UNSAFE.sub("_", name)[:_NAME_CHARS]
    if safe == name and safe.strip(".") and not safe.startswith("."):
        return safe
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{safe.lstrip('.') or '_'}-{digest}"


def evidence_folder(output_dir: Path, runbook: str, workflow_id: str) -> Path:
    """``output_dir/<runbook>/<workflow id>``, both made path-safe (:func:`path_safe`), and
    checked to be inside ``output_dir`` once resolved (a symlink in the way must not lead the
    evidence elsewhere): an id ``../../x`` or ``/etc`` writes nowhere but there."""
    root = Path(output_dir).resolve()
    folder = root / path_safe(runbook) / path_safe(workflow_id)
    if not folder.resolve().is_relative_to(root):
        raise InputError(
            f"workflow_id: its evidence folder {folder} leads outside {root}", workflow_id=workflow_id
        )
    return folder


def _ms(step: StepRecord) -> str:
    if step.ended_at is None:
        return "-"
    return f"{(step.ended_at - step.started_at).total_seconds() * 1000:.0f} ms"


def render_report(r: FailoverResult) -> str:
    """The run as a short markdown report for people."""
    rto = f"{r.rto_seconds:.3f} s" if r.rto_seconds is not None else "not reached"
    lines = [
        f"# {r.runbook.capitalize()} `{md_code(r.workflow_id)}`: {r.status.value}",
        "",
        f"- Started: {r.started_at.isoformat()} by {md(r.input.requested_by)} ({md(r.input.reason)})",
        f"- Incident started: {r.incident_started_at.isoformat()}",
        f"- Target: {md(r.target or '-')}",
        f"- RTO: {rto}",
        f"- RPO: {r.rpo.transactions_lost if r.rpo.transactions_lost is not None else '?'}"
        f" transactions, {r.rpo.seconds if r.rpo.seconds is not None else '?'} s ({r.rpo.method})",
        f"- Point of no return passed: {'yes' if r.point_of_no_return_passed else 'no'}",
    ]
    if r.error:
        lines += ["", f"**Error:** {md(r.error)}"]
    lines += safety_section(r.topology, r.findings, r.diverged, r.fenced, r.fence, r.blocked_by)
    if r.decision:
        d = r.decision
        lines += ["", "## Decision", ""]
        lines.append(
            f"`{md_code(d.decision_id)}`: {d.decision_type.value} to {md(d.target or '-')}"
            f" ({d.target_cloud.value}),"
            f" mode {d.dr_mode.value}, approval {'required' if d.requires_approval else 'not required'}"
        )
        lines += [""] + [f"- {md(reason)}" for reason in d.rationale] + [""]
        lines += _table(CANDIDATE_COLUMNS, candidate_rows(d))
    if r.signals:
        header, rows = signal_rows(r.signals)
        lines += ["", f"## Signals at {r.signals.taken_at.isoformat()}", "", *_table(header, rows)]
        lines += [f"- source error: {md(e)}" for e in r.signals.errors]
    for title, steps in (("Steps", r.steps), ("Compensations", r.compensations)):
        if not steps:
            continue
        lines += [
            "",
            f"## {title}",
            "",
            "| step | outcome | attempts | time | detail |",
            "| --- | --- | --- | --- | --- |",
        ]
        for s in steps:
            mark = " (irreversible)" if s.irreversible else ""
            outcome = s.outcome.value if s.outcome else "-"
            lines.append(f"| {md(s.name)}{mark} | {outcome} | {s.attempts} | {_ms(s)} | {md(s.detail)} |")
    if r.alerts:
        lines += ["", "## Alerts", ""]
        for notice in r.alerts:
            names = md(", ".join(notice.alertnames) or "-")
            lines.append(f"- {md(notice.status)} at {notice.received_at.isoformat()}: {names}")
    if r.approvals:
        lines += ["", "## Approvals", ""]
        for a in r.approvals:
            verdict = "approved" if a.approved else "rejected"
            lines.append(f"- {verdict} by {md(a.by)} at {a.at.isoformat()} {md(a.comment)}".rstrip())
    return "\n".join(lines) + "\n"


def safety_section(
    topology: Topology | None,
    findings: list[Finding],
    diverged: list[DivergedWrites],
    fenced: list[str],
    fence: FenceResult | None,
    blocked_by: list[RuleViolation],
) -> list[str]:
    """What the servers said at the start, what the run found and how it fenced: one shape
    for every runbook that changes the topology."""
    if topology is None:
        return []
    rows: list[tuple[str, ...]] = [
        (
            s.site,
            "down" if not s.reachable else ("standby" if s.in_recovery else "primary"),
            "yes" if s.writable else "no",
            str(s.timeline) if s.timeline is not None else "-",
            s.current_lsn or s.replay_lsn or "-",
            s.upstream or "-",
            ", ".join(
                m for m, on in (("fenced", s.fenced), (f"promoted by {s.promoted_by}", s.promoted_by)) if on
            )
            or "-",
        )
        for s in topology.servers
    ]
    lines = ["", "## Topology at the start (from the servers)", ""]
    lines += _table(("server", "role", "writable", "timeline", "LSN", "upstream", "marks"), rows)
    lines += ["", f"- DNS {topology.dns_record} -> {topology.dns_site or topology.dns_value or 'nothing'}"]
    lines += [f"- finding `{f.kind.value}`: {md(f.detail)}" for f in findings]
    lines += [
        f"- diverged writes on {d.site}: timeline {d.timeline}, {d.from_lsn or '?'} .. {d.to_lsn or '?'}"
        for d in diverged
    ]
    lines += [f"- fenced as a second writer: {site}" for site in fenced]
    if fence is not None:
        proof = (
            f"verified: timeline {fence.token.timeline}, checkpoint {fence.token.lsn}"
            if fence.token
            else f"unverified (did not answer; {fence.isolated or 'not isolated'})"
        )
        lines.append(f"- old primary's fence: {proof}")
    lines += [f"- blocked by `{md(b.rule)}` ({md(b.site)}): {md(b.detail)}" for b in blocked_by]
    return lines


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    def cells(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(md(c) for c in row) + " |"

    rule = "| " + " | ".join("---" for _ in header) + " |"
    return [cells(header), rule] + [cells(r) for r in rows]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_folder(folder: Path, ev: Evidence, report: str, history_json: str | None) -> dict[str, str]:
    """Write any runbook's evidence folder: ``ev`` as evidence.json (its ``evidence_dir`` set
    to ``folder``), ``report`` as report.md, the history, and the manifest. Returns name to
    SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    ev = ev.model_copy(update={"evidence_dir": str(folder)})
    files = {"evidence.json": ev.model_dump_json(indent=2), "report.md": report}
    if history_json is not None:
        files["history.json"] = history_json
    for name, text in files.items():
        (folder / name).write_text(text)
    digests = {name: sha256(folder / name) for name in files}
    (folder / MANIFEST).write_text(manifest_text(digests))
    return digests


def manifest_text(digests: dict[str, str]) -> str:
    """``manifest.json`` for these digests. Deterministic (sorted keys, one layout), so the
    manifest's own SHA-256 follows from the digests the run's history records."""
    return json.dumps({"files": digests}, indent=2, sort_keys=True) + "\n"


def verify_manifest(folder: Path) -> list[str]:
    """Files whose content no longer matches the manifest (empty when all match)."""
    digests = json.loads((folder / MANIFEST).read_text())["files"]
    return [n for n, d in digests.items() if not (folder / n).exists() or sha256(folder / n) != d]
