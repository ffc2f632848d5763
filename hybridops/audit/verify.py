"""Verify a run's evidence folder against the run's history held by Temporal.

``manifest.json`` lies in the folder it hashes, so whoever can edit ``evidence.json`` can
rewrite the manifest to match. What the folder held is also recorded outside it: the evidence
step's result (:class:`hybridops.contracts.base.EvidenceResult`: every file's SHA-256 and the
manifest's own) is in the run's history, as the payload of its ``ActivityTaskCompleted``
event, or of its local activity marker when steps run colocated. The folder's own
``history.json`` cannot help: the evidence step exported it before it had a result.

So the digests come from the server's history, and the folder is checked against them: the
manifest first (rewritten?), then every file (changed, removed), then whatever is there that
the run did not write (added).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.api.common.v1 import Payloads
from temporalio.client import WorkflowHistory

from hybridops.audit.evidence_check import AUDIT_DIR
from hybridops.audit.timeline import LOCAL_ACTIVITY_MARKER, decode
from hybridops.evidence import MANIFEST, manifest_text, sha256

EVIDENCE_ACTIVITY_SUFFIX = "evidence"
"""Every runbook's evidence step is an activity named ``write_[<runbook>_]evidence``."""


class RecordedEvidence(BaseModel):
    """What the run's history says its evidence step wrote."""

    activity: str
    event_id: int
    """The ``ActivityTaskCompleted`` event, or the local activity's marker."""
    path: str
    """The folder, as the worker that wrote it saw it."""
    files: dict[str, str]
    """File name to SHA-256, every file but the manifest."""
    manifest_sha256: str
    manifest_recorded: bool = True
    """False for runs from before the result carried the manifest's digest: it is then derived
    from ``files`` (the manifest's layout is deterministic)."""


class Verification(BaseModel):
    """The verdict on one run's evidence folder."""

    workflow_id: str
    run_id: str = ""
    folder: str | None = None
    recorded: RecordedEvidence | None = None
    manifest_changed: bool = False
    """``manifest.json`` is not the one the run wrote (rewritten, or gone)."""
    changed: list[str] = []
    """Files whose SHA-256 is not the one the history records."""
    added: list[str] = []
    """Files the run did not write (``audit/``, where the audit writes its reports, aside)."""
    removed: list[str] = []
    """Files the run wrote that are gone."""
    note: str = ""
    """Why nothing could be compared, when nothing could."""

    @property
    def clean(self) -> bool:
        return self.recorded is not None and self.folder is not None and not self.findings

    @property
    def findings(self) -> list[str]:
        """Each finding as one line for people."""
        out = []
        if self.manifest_changed:
            out.append(f"{MANIFEST}: not the manifest the run wrote (its SHA-256 is not the history's)")
        out += [f"{n}: changed (SHA-256 is not the one in the run's history)" for n in self.changed]
        out += [f"{n}: added (the run did not write it)" for n in self.added]
        out += [f"{n}: removed" for n in self.removed]
        return out


def _evidence_result(activity: str, event_id: int, value: object) -> RecordedEvidence | None:
    if not activity.endswith(EVIDENCE_ACTIVITY_SUFFIX) or not isinstance(value, dict):
        return None
    path, files = value.get("path"), value.get("files")
    if not isinstance(path, str) or not isinstance(files, dict):
        return None
    digests = {str(k): str(v) for k, v in files.items()}
    recorded = value.get("manifest_sha256")
    return RecordedEvidence(
        activity=activity,
        event_id=event_id,
        path=path,
        files=digests,
        manifest_sha256=recorded
        if isinstance(recorded, str)
        else hashlib.sha256(manifest_text(digests).encode()).hexdigest(),
        manifest_recorded=isinstance(recorded, str),
    )


def first_value(payloads: Payloads) -> Any:
    values = decode(payloads)
    return values[0] if values else None


def recorded_evidence(history: WorkflowHistory) -> RecordedEvidence | None:
    """The evidence step's completed result in ``history`` (the last one, should a run have
    more), or ``None`` when the run recorded none (it failed, or is still running)."""
    found: RecordedEvidence | None = None
    scheduled: dict[int, str] = {}
    for event in history.events:
        kind = event.WhichOneof("attributes")
        if kind == "activity_task_scheduled_event_attributes":
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif kind == "activity_task_completed_event_attributes":
            c = event.activity_task_completed_event_attributes
            activity = scheduled.get(c.scheduled_event_id, "")
            found = _evidence_result(activity, event.event_id, first_value(c.result)) or found
        elif kind == "marker_recorded_event_attributes":
            m = event.marker_recorded_event_attributes
            if m.marker_name != LOCAL_ACTIVITY_MARKER or m.HasField("failure") or "result" not in m.details:
                continue
            data = first_value(m.details["data"]) if "data" in m.details else None
            activity = str(data.get("activity_type", "")) if isinstance(data, dict) else ""
            found = _evidence_result(activity, event.event_id, first_value(m.details["result"])) or found
    return found


def _files_in(folder: Path) -> set[str]:
    """Every file under ``folder``, as paths relative to it, but the audit's own reports."""
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).parts[0] != AUDIT_DIR
    }


def verify_folder(history: WorkflowHistory, folder: Path | None = None, run_id: str = "") -> Verification:
    """Check ``folder`` (default: the path the history records) against ``history``."""
    out = Verification(workflow_id=history.workflow_id, run_id=run_id)
    out.recorded = rec = recorded_evidence(history)
    if rec is None:
        out.note = "the run's history records no completed evidence step: nothing to verify against"
        return out
    folder = folder if folder is not None else Path(rec.path)
    if not folder.is_dir():
        out.note = f"no evidence folder at {folder}"
        return out
    out.folder = str(folder)
    manifest = folder / MANIFEST
    out.manifest_changed = manifest.is_file() and sha256(manifest) != rec.manifest_sha256
    present = _files_in(folder)
    for name, digest in sorted(rec.files.items()):
        if name not in present:
            out.removed.append(name)
        elif sha256(folder / name) != digest:
            out.changed.append(name)
    out.added = sorted(present - set(rec.files) - {MANIFEST})
    if not manifest.is_file():
        out.removed.append(MANIFEST)
    return out
