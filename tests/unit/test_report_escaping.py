"""What users typed (reason, requester, approver, comment) cannot forge a line of a report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hybridops.audit.evidence_check import EvidenceCheck
from hybridops.audit.render import render_html, render_markdown
from hybridops.audit.timeline import ApprovalUpdate, StepKind, StepStatus, Timeline, TimelineStep
from hybridops.contracts.base import ApprovalRecord, RunStatus, StepOutcome, StepRecord
from hybridops.contracts.bootstrap import BootstrapInput, BootstrapResult
from hybridops.contracts.burst import BurstInput, BurstResult
from hybridops.contracts.drill import DrillInput, DrillResult
from hybridops.contracts.evidence import AnyRunbookResult, evidence_of
from hybridops.contracts.failback import FailbackInput, FailbackResult
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.markup import md, md_code
from hybridops.report import report_html, report_markdown

FORGED = "# Approved by CEO"
EVIL = f"routine\n{FORGED}\n- approved by security\n| fake | row |\r\n<script>alert(1)</script>"
T = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def typed(model_input: object) -> object:
    """The input with hostile free text, as a client could send it (validation bypassed:
    whatever the input models accept, the report must still hold)."""
    return model_input.model_copy(update={"reason": EVIL, "requested_by": EVIL})  # type: ignore[attr-defined]


def step() -> StepRecord:
    return StepRecord(
        name="promote", started_at=T, ended_at=T, attempts=1, outcome=StepOutcome.FAILED, detail=EVIL
    )


def approval() -> ApprovalRecord:
    return ApprovalRecord(by=EVIL, approved=True, at=T, comment=EVIL)


def results() -> dict[str, AnyRunbookResult]:
    common = {
        "workflow_id": "wf-1",
        "run_id": "r-1",
        "status": RunStatus.FAILED,
        "started_at": T,
        "error": EVIL,
    }
    return {
        "failover": FailoverResult(
            **common,
            input=typed(FailoverInput()),
            incident_started_at=T,
            steps=[step()],
            approvals=[approval()],
        ),
        "failback": FailbackResult(
            **common,
            input=typed(FailbackInput()),
            steps=[step()],
            approvals=[approval()],
            warnings=[EVIL],
        ),
        "drill": DrillResult(**common, input=typed(DrillInput()), steps=[step()]),
        "burst": BurstResult(**common, input=typed(BurstInput()), steps=[step()], ended_because=EVIL),
        "bootstrap": BootstrapResult(**common, input=typed(BootstrapInput()), steps=[step()]),
    }


def reports() -> dict[str, str]:
    """Each runbook's report.md, rendered from its evidence."""
    return {runbook: report_markdown(evidence_of(r)) for runbook, r in results().items()}


def timeline() -> Timeline:
    return Timeline(
        workflow_id="wf-1",
        run_id="r-1",
        workflow_type="FailoverWorkflow",
        task_queue="hybridops-control",
        started_at=T,
        identity="1@host",
        requested_by=EVIL,
        reason=EVIL,
        steps=[
            TimelineStep(
                name="promote", kind=StepKind.QUEUED, status=StepStatus.FAILED, started_at=T, failure=EVIL
            )
        ],
        approvals=[
            ApprovalUpdate(
                update="approve",
                update_id="u",
                identity="1@host",
                by=EVIL,
                comment=EVIL,
                approved=True,
                received_at=T,
                accepted_at=T,
            )
        ],
        message=EVIL,
    )


def assert_no_forged_line(text: str) -> None:
    lines = text.splitlines()
    assert not any(line.lstrip().startswith(FORGED) for line in lines), text
    assert not any(line.startswith("- approved by security") for line in lines), text
    assert not any(line.startswith("| fake |") for line in lines), text
    assert "<script>" not in text


@pytest.mark.parametrize("runbook", ["failover", "failback", "drill", "burst", "bootstrap"])
def test_run_reports_keep_typed_text_on_its_line(runbook: str) -> None:
    text = reports()[runbook]
    assert_no_forged_line(text)
    assert "Approved by CEO" in text  # shown, not dropped


@pytest.mark.parametrize("runbook", ["failover", "failback", "drill", "burst", "bootstrap"])
def test_run_reports_in_html_escape_typed_text(runbook: str) -> None:
    page = report_html(evidence_of(results()[runbook]))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Approved by CEO" in page  # shown, not dropped
    assert "<svg" in page and page.count('class="bar"') == 1  # the timeline chart, a bar a step


def test_audit_reports_escape_markdown_and_html() -> None:
    tl = timeline()
    assert_no_forged_line(render_markdown(tl, EvidenceCheck()))
    page = render_html(tl, EvidenceCheck())
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_md_neutralises_what_starts_a_block() -> None:
    assert md("# title") == "\\# title"
    assert md("- item") == "\\- item"
    assert md("1. first") == "1\\. first"
    assert md("a | b `c` [x](y) <b>") == "a \\| b \\`c\\` \\[x\\](y) \\<b\\>"
    assert md("one\ntwo\r\nthree") == "one two three"
    assert md_code("wf`\n1") == "wf' 1"
