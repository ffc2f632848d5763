"""``hybridops audit report``: a run's audit report from its history, and its evidence checked.

The history comes from the server or from an exported file; the timeline is built from its
events alone (:mod:`hybridops.audit.timeline`), and the run's ending and measures from its
closing event, or from the evidence.json beside a history exported before the run closed
(:mod:`hybridops.audit.ending`). The run's evidence folder is checked against
its manifest (:mod:`hybridops.audit.evidence_check`). The report is written as ``report.md``
and ``report.html`` into the output folder: by default ``<evidence folder>/audit/`` (beside
the run's own files, never over them), else ``<output_dir>/audit/<workflow id>/``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import WorkflowHistory

from hybridops.audit.ending import RunEnding, run_ending
from hybridops.audit.evidence_check import AUDIT_DIR, EvidenceCheck, check_evidence
from hybridops.audit.render import render_html, render_markdown
from hybridops.audit.timeline import Timeline, build_timeline
from hybridops.errors import InputError
from hybridops.evidence import MANIFEST, evidence_folder

REPORT_MD = "report.md"
REPORT_HTML = "report.html"


@dataclass
class AuditReport:
    """What ``audit report`` produced."""

    timeline: Timeline
    evidence: EvidenceCheck
    ending: RunEnding
    """How the run ended and what it measured (from the closing event, or the evidence.json
    beside a history exported before the run closed)."""
    out_dir: Path
    files: list[Path]


def find_evidence(tl: Timeline, output_dir: Path, history_file: Path | None = None) -> Path | None:
    """The run's evidence folder: beside the history file when that is an evidence folder's
    ``history.json``, else ``<output_dir>/<runbook>/<workflow id>``, else where the run said
    it wrote it (the result's ``evidence_dir``), when that exists on this machine."""
    candidates: list[Path] = []
    if history_file is not None and (history_file.parent / MANIFEST).exists():
        candidates.append(history_file.parent)
    with contextlib.suppress(InputError):  # an id that leads outside output_dir has no folder there
        candidates.append(evidence_folder(output_dir, tl.runbook, tl.workflow_id))
    if tl.evidence_dir:
        candidates.append(Path(tl.evidence_dir))
    return next((c for c in candidates if c.is_dir()), None)


def write_report(
    history: WorkflowHistory,
    output_dir: Path,
    out: Path | None = None,
    evidence: Path | None = None,
    history_file: Path | None = None,
    sealed: WorkflowHistory | None = None,
) -> AuditReport:
    """Build the timeline, check the evidence, write both reports; returns what was done.

    ``output_dir`` is the inventory's; ``out`` overrides where the reports go; ``evidence``
    names the evidence folder instead of looking for it. ``sealed`` is the history as the
    server stores it when ``history`` was decrypted from it: the evidence's history.json is
    that form, so it is compared with that."""
    tl = build_timeline(history)
    folder = evidence or find_evidence(tl, output_dir, history_file)
    check = check_evidence(folder, sealed or history)
    if evidence is not None and not evidence.is_dir():
        check.note = f"the evidence folder {evidence} does not exist"
    target = out or (
        folder / AUDIT_DIR if folder is not None else evidence_folder(output_dir, AUDIT_DIR, tl.workflow_id)
    )
    target.mkdir(parents=True, exist_ok=True)
    md, page = target / REPORT_MD, target / REPORT_HTML
    ending = run_ending(tl, folder, check)
    md.write_text(render_markdown(tl, check, ending))
    page.write_text(render_html(tl, check, ending))
    return AuditReport(tl, check, ending, target, [md, page])
