"""The evidence folder every run leaves: evidence.json, report.md, report.html, history.json,
manifest.json.

Pure file writing, called from every runbook's evidence activity. evidence.json is one shape
for all runbooks (:class:`hybridops.contracts.evidence.Evidence`). Inputs are models that hold
no secrets, so nothing here has to scrub.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from hybridops.contracts.evidence import Evidence
from hybridops.errors import InputError
from hybridops.report import reports

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


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_folder(folder: Path, ev: Evidence, history_json: str | None) -> dict[str, str]:
    """Write any runbook's evidence folder: ``ev`` as evidence.json (its ``evidence_dir`` set
    to ``folder``), its reports (report.md, report.html: :mod:`hybridops.report`), the
    history, and the manifest. Returns name to SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    ev = ev.model_copy(update={"evidence_dir": str(folder)})
    files = {"evidence.json": ev.model_dump_json(indent=2), **reports(ev)}
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
