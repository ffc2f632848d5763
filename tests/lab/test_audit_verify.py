"""``hybridops audit verify`` on a real failover: the evidence folder checked against the
digests the run's history on the server records, so a manifest rewritten to match an edited
evidence.json is caught, and so are files added or removed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from hybridops.audit.histories import fetch_history
from hybridops.audit.verify import recorded_evidence
from hybridops.contracts.base import RunStatus
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.evidence import MANIFEST, manifest_text, sha256
from hybridops.inventory import Placement
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import assert_failed_over, start


def verify(lab: Lab, workflow_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **lab.env(), "HYBRIDOPS_INVENTORY": str(lab.root / "inventory.yaml")}
    cmd = [str(Path(sys.executable).parent / "hybridops"), "audit", "verify", workflow_id, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def verdict(lab: Lab, workflow_id: str, *args: str) -> tuple[int, dict[str, Any]]:
    out = verify(lab, workflow_id, "--json", *args)
    return out.returncode, json.loads(out.stdout)


@pytest.mark.parametrize("placement", [Placement.COLOCATED, Placement.QUEUES])
async def test_verify_against_the_history_catches_a_rewritten_manifest(
    client: Client, lab: Lab, run_workers: Any, placement: Placement
) -> None:
    inv = lab_inventory(lab, placement=placement)
    await run_workers(client, inv)
    lab.break_site("onprem")
    handle = await start(client, inv, FailoverInput(requested_by="dana", reason="audit"))
    result: FailoverResult = await handle.result()
    assert result.status == RunStatus.SUCCEEDED
    folder = Path(inv.output_dir) / "failover" / handle.id

    # The history on the server holds the manifest's digest (a local activity marker when
    # colocated, an ActivityTaskCompleted when queued).
    src = await fetch_history(client, handle.id)
    assert src.history is not None
    recorded = recorded_evidence(src.history)
    assert recorded is not None and recorded.manifest_recorded
    assert recorded.manifest_sha256 == sha256(folder / MANIFEST) and recorded.path == str(folder)
    assert set(recorded.files) == {"evidence.json", "report.md", "report.html", "history.json"}

    out = verify(lab, handle.id)
    assert out.returncode == 0 and "verified" in out.stdout, out.stdout + out.stderr
    code, clean = verdict(lab, handle.id)
    assert code == 0 and clean["ok"] and clean["findings"] == []

    # evidence.json edited, and the manifest rewritten to match: the folder agrees with
    # itself, only the history tells.
    edited = (folder / "evidence.json").read_text().replace('"dana"', '"someone-else"')
    (folder / "evidence.json").write_text(edited)
    digests = json.loads((folder / MANIFEST).read_text())["files"]
    digests["evidence.json"] = hashlib.sha256(edited.encode()).hexdigest()
    (folder / MANIFEST).write_text(manifest_text(digests))
    assert all(sha256(folder / n) == d for n, d in digests.items())  # consistent with itself
    code, found = verdict(lab, handle.id)
    assert code == 1 and not found["ok"], found
    assert found["manifest_changed"] and found["changed"] == ["evidence.json"], found
    assert found["added"] == [] and found["removed"] == []
    out = verify(lab, handle.id)
    assert out.returncode == 1 and "EVIDENCE DOES NOT MATCH" in out.stdout and "evidence.json" in out.stdout

    # A file added, one removed.
    (folder / "notes.txt").write_text("all fine\n")
    (folder / "report.md").unlink()
    code, found = verdict(lab, handle.id)
    assert code == 1 and found["added"] == ["notes.txt"] and found["removed"] == ["report.md"], found

    # --dir: a copy elsewhere is checked against the same history.
    copy = lab.root / "copy"
    copy.mkdir()
    for name in ("evidence.json", "report.html", "history.json", MANIFEST):
        (copy / name).write_bytes((folder / name).read_bytes())
    code, found = verdict(lab, handle.id, "--dir", str(copy))
    assert code == 1 and found["folder"] == str(copy) and found["removed"] == ["report.md"], found
    # The end state: the target the one writable server, DNS at it, onprem fenced.
    assert_failed_over(lab, result.target)
