"""The audit timeline, built from the stored histories' events alone, and its reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from hybridops.audit.ending import EndingSource, run_ending
from hybridops.audit.evidence_check import check_evidence
from hybridops.audit.histories import HISTORY_SUFFIX, load_history_file
from hybridops.audit.render import render_html, render_markdown
from hybridops.audit.report import write_report
from hybridops.audit.timeline import Origin, StepKind, StepStatus, Timeline, build_timeline
from hybridops.contracts.evidence import evidence_of
from hybridops.contracts.failover import FailoverResult
from hybridops.evidence import write_folder
from tests.unit.evidence_step import write_failover_evidence

HISTORIES = Path(__file__).parents[1] / "histories"


def timeline(scenario: str) -> Timeline:
    src = load_history_file(HISTORIES / f"failover-{scenario}{HISTORY_SUFFIX}")
    assert src.history is not None, src.error
    return build_timeline(src.history)


def test_a_successful_run_in_order_with_times() -> None:
    tl = timeline("succeeded")
    assert tl.workflow_type == "FailoverWorkflow" and tl.workflow_id == "failover-succeeded"
    assert tl.closed_as == "completed" and tl.status == "succeeded" and not tl.message
    assert tl.origin == Origin.MANUAL and tl.requested_by == "history-capture" and tl.identity
    names = [s.name for s in tl.steps]
    assert names[:4] == ["acquire_lease", "plan_failover", "assess_sites", "gather_signals"]
    assert names.index("fence_primary") < names.index("promote_standby") < names.index("dns_cutover")
    assert names[-1] == "write_evidence"
    assert all(s.status == StepStatus.COMPLETED and s.attempts >= 1 for s in tl.steps)
    assert {s.kind for s in tl.steps} == {StepKind.LOCAL, StepKind.QUEUED}  # checkpoint is queued
    for s in tl.steps:
        assert s.ended_at is not None and tl.started_at <= s.started_at <= s.ended_at
    assert tl.ended_at is not None and tl.ended_at >= tl.steps[-1].started_at
    assert tl.durations()["run"] > 0 and not tl.compensations


def test_queued_activities_from_scheduled_started_completed() -> None:
    tl = timeline("succeeded-queues")
    queued = [s for s in tl.steps if s.kind == StepKind.QUEUED]
    assert {s.name for s in queued} >= {"assess_sites", "promote_standby", "dns_cutover", "write_evidence"}
    assert all(s.task_queue.startswith("hybridops-") and s.status == StepStatus.COMPLETED for s in queued)
    promote = next(s for s in queued if s.name == "promote_standby")
    assert promote.changed is True and "promoted" in promote.detail and (promote.seconds or 0) > 0


def test_a_compensated_run_marks_the_failure_and_the_undos() -> None:
    tl = timeline("compensated")
    assert tl.closed_as == "failed" and tl.status == "compensated"
    assert "InjectedFault" in tl.message
    promote = next(s for s in tl.steps if s.name == "promote_standby")
    assert promote.status == StepStatus.FAILED and "InjectedFault" in promote.failure
    undone = [s.name for s in tl.steps if s.compensation]
    assert undone == tl.compensations == ["unfence_primary", "release_target"]
    assert all(s.started_at >= promote.started_at for s in tl.steps if s.compensation)


def test_approval_and_rejection_from_the_update_events() -> None:
    approved = timeline("approved")
    [a] = approved.approvals
    assert (a.update, a.by, a.approved, a.comment) == ("approve", "alice", True, "go")
    assert a.identity and a.completed_at is not None and a.accepted_at >= approved.started_at
    gate = next(s for s in approved.steps if s.kind == StepKind.TIMER)
    assert gate.status == StepStatus.CANCELED  # answered before the timeout
    rejected = timeline("rejected")
    [r] = rejected.approvals
    assert (r.by, r.approved) == ("carol", False) and rejected.status == "rejected"
    # The gate comes before anything is prepared or fenced: a rejection has nothing to undo.
    assert [s.name for s in rejected.steps if s.compensation] == []
    assert not any(s.name == "fence_primary" for s in rejected.steps)


def test_policy_hold_and_alert_start_and_signal() -> None:
    hold = timeline("policy-hold")
    assert "PolicyHold" in hold.message and not any(s.name == "prepare_target" for s in hold.steps)
    alert = timeline("alert-resolved")
    assert alert.origin == Origin.ALERT and alert.requested_by.startswith("alert:")
    [sig] = alert.signals
    assert sig.name == "alert" and "resolved" in sig.summary


def test_reports_say_it_all_and_the_html_is_self_contained() -> None:
    tl = timeline("approved")
    check = check_evidence(None)
    md = render_markdown(tl, check)
    assert "approved by **alice**" in md and "promote_standby" in md and "Evidence not checked" in md
    page = render_html(tl, check)
    assert "<svg" in page and page.count('class="bar"') == len(tl.steps)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in page
    assert "<link" not in page and "src=" not in page


async def test_a_changed_evidence_file_is_flagged(tmp_path: Path) -> None:
    """The evidence written for the stored run, then one file edited and one removed."""
    src = load_history_file(HISTORIES / f"failover-compensated{HISTORY_SUFFIX}")
    assert src.history is not None
    tl = build_timeline(src.history)
    result = FailoverResult.model_validate(tl.result)
    folder = Path((await write_failover_evidence(tmp_path, result, src.history)).path)
    assert folder == tmp_path / "failover" / tl.workflow_id
    intact = write_report(src.history, tmp_path)
    assert intact.out_dir == folder / "audit" and not intact.evidence.tampered
    assert intact.evidence.files == ["evidence.json", "history.json", "report.html", "report.md"]

    (folder / "report.md").write_text((folder / "report.md").read_text().replace("compensated", "succeeded"))
    (folder / "evidence.json").unlink()
    done = write_report(src.history, tmp_path)
    assert done.evidence.tampered
    assert done.evidence.changed == ["report.md"] and done.evidence.missing == ["evidence.json"]
    md = (folder / "audit" / "report.md").read_text()
    assert "EVIDENCE CHANGED AFTER THE RUN" in md and "report.md: changed after the run" in md
    assert "evidence.json: missing" in md
    assert "EVIDENCE CHANGED AFTER THE RUN" in (folder / "audit" / "report.html").read_text()


async def test_an_exported_history_that_is_not_the_runs_is_flagged(tmp_path: Path) -> None:
    src = load_history_file(HISTORIES / f"failover-approved{HISTORY_SUFFIX}")
    other = load_history_file(HISTORIES / f"failover-rejected{HISTORY_SUFFIX}")
    assert src.history is not None and other.history is not None
    result = FailoverResult.model_validate(build_timeline(src.history).result)
    # The manifest matches the wrong history.
    folder = Path((await write_failover_evidence(tmp_path, result, other.history)).path)
    check = check_evidence(folder, src.history)
    assert check.tampered and "differs" in check.history_mismatch
    assert json.loads((folder / "manifest.json").read_text())["files"]


def exported(history: WorkflowHistory) -> WorkflowHistory:
    """``history`` as the run's evidence step exported it into its folder: cut where that step
    ran, before the run closed. A local activity's marker is written when its workflow task
    completes (after the export): the cut is before that task's completion; a queued one's
    scheduled event is there, nothing after it."""
    step = build_timeline(history).steps[-1]
    assert step.name == "write_evidence"
    event = next(e for e in history.events if e.event_id == step.event_id)
    if step.kind == StepKind.LOCAL:
        end = event.marker_recorded_event_attributes.workflow_task_completed_event_id - 1
    else:
        end = step.event_id
    return WorkflowHistory(history.workflow_id, [e for e in history.events if e.event_id <= end])


def _exported_with_evidence(tmp_path: Path, scenario: str) -> tuple[WorkflowHistory, FailoverResult, Path]:
    src = load_history_file(HISTORIES / f"failover-{scenario}{HISTORY_SUFFIX}")
    assert src.history is not None
    result = FailoverResult.model_validate(build_timeline(src.history).result)
    cut = exported(src.history)
    folder = tmp_path / "failover" / result.workflow_id
    write_folder(folder, evidence_of(result), cut.to_json())
    return cut, result, folder


@pytest.mark.parametrize("scenario", ["succeeded", "succeeded-queues"])
def test_an_exported_history_reports_the_runs_real_ending_and_measures(tmp_path: Path, scenario: str) -> None:
    """``audit report --history <evidence>/history.json`` of a failover that succeeded: the
    history has no closing event (the evidence step exported it), yet the report states how the
    run ended and its RTO and RPO, from the evidence.json beside it."""
    cut, result, folder = _exported_with_evidence(tmp_path, scenario)
    assert result.status.value == "succeeded" and result.rto_seconds is not None
    done = write_report(cut, tmp_path / "other", history_file=folder / "history.json")
    assert done.timeline.closed_as == "running"  # the history alone cannot say
    assert not done.evidence.tampered and done.ending.source == EndingSource.EVIDENCE
    assert done.ending.status == "succeeded" and done.ending.ended_at == result.ended_at
    md = (folder / "audit" / "report.md").read_text()
    title = md.splitlines()[0]
    assert title.endswith(": succeeded") and "running" not in title, title
    assert "Closed as: running" not in md and "Runbook status: succeeded" in md
    assert f"Ended: succeeded at {result.ended_at.isoformat() if result.ended_at else '?'}" in md
    assert f"RTO: {result.rto_seconds:.3f} s" in md
    assert f"RPO: {result.rpo.seconds:g} s" in md or f"RPO: {result.rpo.transactions_lost} transactions" in md
    page = (folder / "audit" / "report.html").read_text()
    assert ": succeeded</h1>" in page and f"RTO: {result.rto_seconds:.3f} s" in page


def test_an_exported_history_with_a_changed_evidence_json_is_not_read_for_its_ending(tmp_path: Path) -> None:
    cut, _, folder = _exported_with_evidence(tmp_path, "succeeded")
    forged = json.loads((folder / "evidence.json").read_text()) | {"status": "failed"}
    (folder / "evidence.json").write_text(json.dumps(forged))
    done = write_report(cut, tmp_path, history_file=folder / "history.json")
    assert done.evidence.tampered and done.evidence.changed == ["evidence.json"]
    assert done.ending.source == EndingSource.NONE and done.ending.evidence is None
    assert done.ending.status == "running" and "not as the run wrote it" in done.ending.note
    md = (folder / "audit" / "report.md").read_text()
    assert (
        md.splitlines()[0].endswith(": running") and "RTO:" not in md and "failed" not in md.splitlines()[0]
    )


def test_a_closed_history_reports_the_measures_of_its_result() -> None:
    tl = timeline("succeeded")
    result = FailoverResult.model_validate(tl.result)
    md = render_markdown(tl, check_evidence(None), run_ending(tl, None, check_evidence(None)))
    assert f"RTO: {result.rto_seconds:.3f} s" in md and "RPO: " in md and "Closed as: completed" in md
    assert render_markdown(tl, check_evidence(None)) == md  # the ending from the history by default
