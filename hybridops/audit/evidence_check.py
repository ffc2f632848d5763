"""Check a run's evidence folder against its manifest and against the run's history.

``manifest.json`` holds the SHA-256 of every file the run wrote. A file whose hash no longer
matches was changed after the run; a listed file that is gone was removed. Both are what an
auditor must see first. The folder's ``history.json`` is also compared with the history being
audited: the run exported it before it closed, so it must be a prefix of the server's.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel
from temporalio.client import WorkflowHistory

from hybridops.evidence import MANIFEST, sha256

AUDIT_DIR = "audit"
"""Where the audit writes its reports inside an evidence folder: beside the run's own files,
never over them (the manifest protects those)."""


class EvidenceCheck(BaseModel):
    """The verdict on one evidence folder."""

    folder: str | None = None
    """None when no evidence folder was found."""
    files: list[str] = []
    """The files the manifest lists."""
    changed: list[str] = []
    """Listed files whose content no longer matches their SHA-256."""
    missing: list[str] = []
    """Listed files that are gone (or the manifest itself)."""
    unlisted: list[str] = []
    """Files in the folder that the manifest does not list (added after the run)."""
    history_mismatch: str = ""
    """Why the folder's history.json is not the run's, when it is not."""
    note: str = ""

    @property
    def tampered(self) -> bool:
        """The evidence was changed after the run: a changed or missing file, or a history
        that is not the run's."""
        return bool(self.changed or self.missing or self.history_mismatch)

    @property
    def problems(self) -> list[str]:
        """Each problem as one line for people."""
        out = [f"{n}: changed after the run (SHA-256 does not match the manifest)" for n in self.changed]
        out += [f"{n}: missing" for n in self.missing]
        if self.history_mismatch:
            out.append(f"history.json: {self.history_mismatch}")
        out += [f"{n}: not in the manifest (added after the run)" for n in self.unlisted]
        return out


_TASK_EVENTS = frozenset(
    {
        "workflow_task_scheduled_event_attributes",
        "workflow_task_started_event_attributes",
        "workflow_task_completed_event_attributes",
        "workflow_task_failed_event_attributes",
        "workflow_task_timed_out_event_attributes",
    }
)
"""Workflow task events are compared by type only: a speculative task (an Update's) is
written with its final time and attributes when it is persisted, after the export."""


def _history_prefix_problem(stored: WorkflowHistory, run: WorkflowHistory) -> str:
    if len(stored.events) > len(run.events):
        return f"has {len(stored.events)} events, the run has {len(run.events)}"
    for mine, theirs in zip(stored.events, run.events, strict=False):
        kind = mine.WhichOneof("attributes")
        if kind != theirs.WhichOneof("attributes") or mine.event_id != theirs.event_id:
            return f"event {mine.event_id} is a {kind}, the run's is a {theirs.WhichOneof('attributes')}"
        if kind in _TASK_EVENTS:
            continue
        if mine.SerializeToString(deterministic=True) != theirs.SerializeToString(deterministic=True):
            return f"event {mine.event_id} ({kind}) differs from the run's history"
    return ""


def check_evidence(folder: Path | None, history: WorkflowHistory | None = None) -> EvidenceCheck:
    """Check ``folder`` (None or absent: nothing to check, said so)."""
    if folder is None or not folder.is_dir():
        return EvidenceCheck(
            note="no evidence folder found for this run" + (f" (looked at {folder})" if folder else "")
        )
    check = EvidenceCheck(folder=str(folder))
    manifest = folder / MANIFEST
    try:
        digests: dict[str, str] = json.loads(manifest.read_text())["files"]
    except FileNotFoundError:
        check.missing.append(MANIFEST)
        return check
    except (ValueError, KeyError, TypeError) as err:
        check.changed.append(f"{MANIFEST} (unreadable: {err})")
        return check
    check.files = sorted(digests)
    for name, digest in sorted(digests.items()):
        path = folder / name
        if not path.is_file():
            check.missing.append(name)
        elif sha256(path) != digest:
            check.changed.append(name)
    check.unlisted = sorted(
        p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST and p.name not in digests
    )
    stored = folder / "history.json"
    if history is not None and "history.json" in digests and stored.is_file():
        try:
            exported = WorkflowHistory.from_json(history.workflow_id, stored.read_text())
            check.history_mismatch = _history_prefix_problem(exported, history)
        except ValueError as err:
            check.history_mismatch = f"unreadable: {err}"
    return check
