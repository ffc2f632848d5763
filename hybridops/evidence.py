"""The evidence folder every run leaves: evidence.json, report.md, history.json, manifest.json.

Pure file writing, called from the ``write_evidence`` activity. Inputs are models that hold
no secrets, so nothing here has to scrub.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from hybridops.decision import CANDIDATE_COLUMNS, candidate_rows, signal_rows
from hybridops.models import FailoverResult, StepRecord

MANIFEST = "manifest.json"


def _ms(step: StepRecord) -> str:
    if step.ended_at is None:
        return "-"
    return f"{(step.ended_at - step.started_at).total_seconds() * 1000:.0f} ms"


def render_report(r: FailoverResult) -> str:
    """The run as a short markdown report for people."""
    rto = f"{r.rto_seconds:.3f} s" if r.rto_seconds is not None else "not reached"
    lines = [
        f"# {r.runbook.capitalize()} `{r.workflow_id}`: {r.status.value}",
        "",
        f"- Started: {r.started_at.isoformat()} by {r.input.requested_by} ({r.input.reason})",
        f"- Incident started: {r.incident_started_at.isoformat()}",
        f"- Target: {r.target or '-'}",
        f"- RTO: {rto}",
        f"- RPO: {r.rpo.transactions_lost if r.rpo.transactions_lost is not None else '?'}"
        f" transactions, {r.rpo.seconds if r.rpo.seconds is not None else '?'} s ({r.rpo.method})",
        f"- Point of no return passed: {'yes' if r.point_of_no_return_passed else 'no'}",
    ]
    if r.error:
        lines += ["", f"**Error:** {r.error}"]
    if r.decision:
        d = r.decision
        lines += ["", "## Decision", ""]
        lines.append(
            f"`{d.decision_id}`: {d.decision_type.value} to {d.target or '-'} ({d.target_cloud.value}),"
            f" mode {d.dr_mode.value}, approval {'required' if d.requires_approval else 'not required'}"
        )
        lines += [""] + [f"- {reason}" for reason in d.rationale] + [""]
        lines += _table(CANDIDATE_COLUMNS, candidate_rows(d))
    if r.signals:
        header, rows = signal_rows(r.signals)
        lines += ["", f"## Signals at {r.signals.taken_at.isoformat()}", "", *_table(header, rows)]
        lines += [f"- source error: {e}" for e in r.signals.errors]
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
            lines.append(f"| {s.name}{mark} | {outcome} | {s.attempts} | {_ms(s)} | {s.detail} |")
    if r.alerts:
        lines += ["", "## Alerts", ""]
        for notice in r.alerts:
            names = ", ".join(notice.alertnames) or "-"
            lines.append(f"- {notice.status} at {notice.received_at.isoformat()}: {names}")
    if r.approvals:
        lines += ["", "## Approvals", ""]
        for a in r.approvals:
            verdict = "approved" if a.approved else "rejected"
            lines.append(f"- {verdict} by {a.by} at {a.at.isoformat()} {a.comment}".rstrip())
    return "\n".join(lines) + "\n"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    def cells(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    return [cells(header), cells(tuple("---" for _ in header))] + [cells(r) for r in rows]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_folder(folder: Path, result: BaseModel, report: str, history_json: str | None) -> dict[str, str]:
    """Write any runbook's evidence folder: ``result`` as evidence.json (its ``evidence_dir``
    set), ``report`` as report.md, the history, and the manifest. Returns name to SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    if "evidence_dir" in type(result).model_fields:
        result = result.model_copy(update={"evidence_dir": str(folder)})
    files = {"evidence.json": result.model_dump_json(indent=2), "report.md": report}
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


def write_evidence(folder: Path, result: FailoverResult, history_json: str | None) -> dict[str, str]:
    """A failover's evidence folder (see :func:`write_folder`)."""
    return write_folder(folder, result, render_report(result), history_json)


def verify_manifest(folder: Path) -> list[str]:
    """Files whose content no longer matches the manifest (empty when all match)."""
    digests = json.loads((folder / MANIFEST).read_text())["files"]
    return [n for n, d in digests.items() if not (folder / n).exists() or sha256(folder / n) != d]
