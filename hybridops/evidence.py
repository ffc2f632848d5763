"""The evidence folder every run leaves: evidence.json, report.md, history.json, manifest.json.

Pure file writing, called from the ``write_evidence`` activity. Inputs are models that hold
no secrets, so nothing here has to scrub.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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
        lines += ["", "## Decision", ""]
        lines += [f"- {reason}" for reason in r.decision.rationale]
        lines += [
            "",
            "| candidate | eligible | lag bytes | lag s | rejected because |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in r.decision.candidates:
            lines.append(
                f"| {c.site} | {c.eligible} | {c.lag_bytes} | {c.lag_seconds} | {c.rejected_because or '-'} |"
            )
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
    if r.approvals:
        lines += ["", "## Approvals", ""]
        for a in r.approvals:
            verdict = "approved" if a.approved else "rejected"
            lines.append(f"- {verdict} by {a.by} at {a.at.isoformat()} {a.comment}".rstrip())
    return "\n".join(lines) + "\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_evidence(folder: Path, result: FailoverResult, history_json: str | None) -> dict[str, str]:
    """Write the folder; returns file name to SHA-256 (what manifest.json holds)."""
    folder.mkdir(parents=True, exist_ok=True)
    result = result.model_copy(update={"evidence_dir": str(folder)})
    files = {
        "evidence.json": result.model_dump_json(indent=2),
        "report.md": render_report(result),
    }
    if history_json is not None:
        files["history.json"] = history_json
    for name, text in files.items():
        (folder / name).write_text(text)
    digests = {name: sha256(folder / name) for name in files}
    (folder / MANIFEST).write_text(json.dumps({"files": digests}, indent=2, sort_keys=True) + "\n")
    return digests


def verify_manifest(folder: Path) -> list[str]:
    """Files whose content no longer matches the manifest (empty when all match)."""
    digests = json.loads((folder / MANIFEST).read_text())["files"]
    return [n for n, d in digests.items() if not (folder / n).exists() or sha256(folder / n) != d]
