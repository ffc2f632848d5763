"""``hybridops audit report`` on a real run: a failover with approval on the lab, reported
from the server's history; then its evidence tampered with, and the report flags it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from temporalio.client import Client

from hybridops.audit.histories import fetch_closed_runs, fetch_history
from hybridops.audit.replay import ReplayOutcome, ReplayReport, replay
from hybridops.audit.report import write_report
from hybridops.cli.replayer import make_replayer
from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
from hybridops.contracts.base import ApprovalInput, ApprovalRecord, Progress, RunStatus
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import assert_failed_over, eventually, start


async def _waiting(handle) -> bool:  # type: ignore[no-untyped-def]
    prog = await handle.query(PROGRESS_QUERY, result_type=Progress)
    return prog.waiting_for_approval


async def test_audit_report_of_an_approved_failover_and_tampered_evidence(
    client: Client, lab: Lab, run_workers: Any
) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.break_site("onprem")
    handle = await start(
        client, inv, FailoverInput(require_approval=True, requested_by="dana", reason="audit")
    )
    await eventually("the approval gate", lambda: _waiting(handle))
    record: ApprovalRecord = await handle.execute_update(
        APPROVE_UPDATE, ApprovalInput(by="alice", comment="go"), result_type=ApprovalRecord
    )
    result: FailoverResult = await handle.result()
    assert result.status == RunStatus.SUCCEEDED
    evidence = Path(inv.output_dir) / "failover" / handle.id

    # From the server's history, through the library.
    src = await fetch_history(client, handle.id)
    assert src.history is not None, src.error
    done = write_report(src.history, Path(inv.output_dir))
    tl, check = done.timeline, done.evidence
    assert done.out_dir == evidence / "audit"
    assert check.folder == str(evidence) and not check.tampered, check.problems
    assert tl.requested_by == "dana" and tl.reason == "audit" and tl.status == "succeeded"
    [approval] = tl.approvals
    assert approval.by == "alice" and approval.approved and approval.comment == "go"
    assert approval.completed_at is not None
    assert abs((approval.received_at - record.at).total_seconds()) < 0.5  # the workflow's own clock
    names = [s.name for s in tl.steps]
    for activity in ("plan_failover", "fence_primary", "promote_standby", "dns_cutover", "verify_writes"):
        assert activity in names
    assert all(s.attempts >= 1 for s in tl.steps)
    # The approval came before fencing (nothing hurts a live primary while a run waits).
    fence = next(s for s in tl.steps if s.name == "fence_primary")
    promote = next(s for s in tl.steps if s.name == "promote_standby")
    assert fence.started_at is not None and approval.received_at <= fence.started_at <= promote.started_at

    md = (evidence / "audit" / "report.md").read_text()
    assert "approved by **alice** at " + approval.received_at.isoformat() in md
    for activity in ("fence_primary", "promote_standby", "dns_cutover"):
        line = next(row for row in md.splitlines() if f"| {activity} |" in row)
        assert "| 1 |" in line, line  # its attempts
    page = (evidence / "audit" / "report.html").read_text()
    assert "<svg" in page and 'data-outcome="changed"' in page and "alice" in page

    # The command line, as an auditor runs it: intact evidence, exit 0.
    env = {**os.environ, **lab.env(), "HYBRIDOPS_INVENTORY": str(lab.root / "inventory.yaml")}
    # The console script, as installed.
    cmd = [str(Path(sys.executable).parent / "hybridops"), "audit", "report", handle.id]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "evidence intact" in out.stdout

    # Someone edits the run's report afterwards: the audit says so, and fails.
    report = evidence / "report.md"
    report.write_text(report.read_text().replace("succeeded", "succeeded without incident"))
    elsewhere = lab.root / "audit-out"
    out = subprocess.run([*cmd, "--out", str(elsewhere)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "EVIDENCE CHANGED AFTER THE RUN" in out.stdout and "report.md" in out.stdout
    flagged = (elsewhere / "report.md").read_text()
    assert "EVIDENCE CHANGED AFTER THE RUN" in flagged and "report.md: changed after the run" in flagged
    assert "EVIDENCE CHANGED AFTER THE RUN" in (elsewhere / "report.html").read_text()

    # The same from the exported history alone (no server needed): still flagged.
    out = subprocess.run(
        [*cmd, "--history", str(evidence / "history.json"), "--out", str(elsewhere)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "report.md" in out.stdout, out.stdout + out.stderr
    # Exported before the run closed, the history has no end: the evidence.json beside it
    # (unchanged) says how the run ended and what it measured.
    assert f"{handle.id}: succeeded," in out.stdout, out.stdout
    exported = (elsewhere / "report.md").read_text()
    assert f"RTO: {result.rto_seconds:.3f} s" in exported and "Closed as: running" not in exported

    # The run replays cleanly with today's code, by id and among every closed run.
    replayed = subprocess.run(
        [str(Path(sys.executable).parent / "hybridops"), "audit", "replay", handle.id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    [one] = json.loads(replayed.stdout)["results"]
    assert (one["workflow_id"], one["outcome"]) == (handle.id, "clean")

    async def listed() -> list[ReplayReport]:
        found = [
            s for s in await fetch_closed_runs(client, ["FailoverWorkflow"]) if s.workflow_id == handle.id
        ]
        return await replay(found, make_replayer) if found else []

    [mine] = await eventually("the run in visibility", listed)
    assert mine.outcome == ReplayOutcome.CLEAN, mine
    # The end state: the target the one writable server, DNS at it, onprem fenced.
    assert_failed_over(lab, result.target)
