"""``hybridops audit verify``'s offline re-verification (hybridops/audit/approvals.py) of a run's
operator actions (pause, resume, retry, skip) and approvals, on a history made here: the
Updates a run would record, signed with keys made here, as the workflow verified them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    HistoryEvent,
    WorkflowExecutionStartedEventAttributes,
    WorkflowExecutionUpdateAcceptedEventAttributes,
    WorkflowExecutionUpdateCompletedEventAttributes,
)
from temporalio.api.update.v1 import Input, Meta, Outcome, Request
from temporalio.client import WorkflowHistory

from hybridops.audit.approvals import OperatorVerdict, verify_approvals, verify_operator_actions
from hybridops.client import DATA_CONVERTER
from hybridops.constants import APPROVE_UPDATE, PAUSE_UPDATE, RESUME_UPDATE, RETRY_UPDATE, SKIP_UPDATE
from hybridops.contracts.base import (
    ApprovalInput,
    ApprovalRecord,
    OperatorAction,
    OperatorInput,
    OperatorRecord,
)
from hybridops.policy import Policy, parse_policy
from hybridops.signing import approval_message, operator_message
from hybridops.sshkeygen import make_key, sign

WORKFLOW_ID = "failover-audit-1"
FIRST_RUN = "run-first"
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    root = tmp_path_factory.mktemp("keys")
    return {name: (root / name, make_key(root / name, name)) for name in ("bob", "mallory")}


def _policy(keys: dict[str, tuple[Path, str]], require: bool = True) -> Policy:
    return parse_policy(
        {"approvers": {"require_signature": require, "signers": {"bob": {"key": keys["bob"][1]}}}}
    )


class RunHistory:
    """A failover's history, Update by Update, as the server records them."""

    def __init__(self) -> None:
        self.events: list[HistoryEvent] = []
        self._event(
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            START,
            workflow_execution_started_event_attributes=WorkflowExecutionStartedEventAttributes(
                first_execution_run_id=FIRST_RUN
            ),
        )

    def _event(self, kind: EventType.ValueType, at: datetime, **attributes: Any) -> None:
        when = Timestamp()
        when.FromDatetime(at)
        self.events.append(
            HistoryEvent(event_id=len(self.events) + 1, event_time=when, event_type=kind, **attributes)
        )

    def update(self, name: str, arg: BaseModel, answer: BaseModel | None, at: datetime) -> None:
        """An Update the run accepted and completed at ``at`` with ``answer`` (None: it failed)."""
        update_id = f"u{len(self.events)}"
        args = Payloads(payloads=DATA_CONVERTER.payload_converter.to_payloads([arg]))
        self._event(
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
            at,
            workflow_execution_update_accepted_event_attributes=WorkflowExecutionUpdateAcceptedEventAttributes(
                accepted_request=Request(meta=Meta(update_id=update_id), input=Input(name=name, args=args))
            ),
        )
        outcome = Outcome()
        if answer is None:
            outcome.failure.message = "refused by the handler"
        else:
            outcome.success.payloads.extend(DATA_CONVERTER.payload_converter.to_payloads([answer]))
        self._event(
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
            at,
            workflow_execution_update_completed_event_attributes=WorkflowExecutionUpdateCompletedEventAttributes(
                meta=Meta(update_id=update_id), outcome=outcome
            ),
        )

    def operator(
        self,
        action: OperatorAction,
        inp: OperatorInput,
        at: datetime,
        signer: str | None = None,
        refused: str | None = None,
    ) -> None:
        """An operator action as the run recorded it: taken (with the signer it verified) or
        refused."""
        record = OperatorRecord(
            action=action,
            by=inp.by,
            at=at,
            step=inp.step,
            comment=inp.comment,
            signer=signer,
            signature=inp.signature,
            signed_at=inp.signed_at,
            refused=refused,
        )
        name = {
            OperatorAction.PAUSE: PAUSE_UPDATE,
            OperatorAction.RESUME: RESUME_UPDATE,
            OperatorAction.RETRY: RETRY_UPDATE,
            OperatorAction.SKIP: SKIP_UPDATE,
        }[action]
        self.update(name, inp, record, at)

    def history(self) -> WorkflowHistory:
        return WorkflowHistory(WORKFLOW_ID, self.events)


def signed_input(
    key: Path,
    action: OperatorAction,
    step: str | None = None,
    comment: str = "",
    signed_at: datetime = START,
    **message: Any,
) -> OperatorInput:
    """``bob``'s input for ``action``, signed with ``key`` over this run's message (or over one
    with ``message``'s fields changed: another run, step, action)."""
    fields: dict[str, Any] = {
        "workflow_id": WORKFLOW_ID,
        "run_id": FIRST_RUN,
        "action": action.value,
        "step": step,
        "comment": comment,
        "signed_at": signed_at,
    } | message
    return OperatorInput(
        by="bob",
        step=step,
        comment=comment,
        signature=sign(operator_message(**fields), key),
        signed_at=signed_at,
    )


def test_taken_operator_actions_verify_and_refused_ones_say_why(keys: dict[str, tuple[Path, str]]) -> None:
    bob, mallory = keys["bob"][0], keys["mallory"][0]
    run = RunHistory()
    at = START + timedelta(seconds=30)
    run.operator(OperatorAction.PAUSE, signed_input(bob, OperatorAction.PAUSE, comment="look"), at, "ssh:bob")
    run.operator(OperatorAction.RESUME, signed_input(bob, OperatorAction.RESUME), at, "ssh:bob")
    retry = signed_input(bob, OperatorAction.RETRY, "repoint_apps")
    run.operator(
        OperatorAction.RETRY, OperatorInput(by="bob", step="repoint_apps"), at, refused="unsigned: ..."
    )
    for inp in (
        signed_input(bob, OperatorAction.RETRY, "repoint_apps", run_id="another-run"),
        signed_input(bob, OperatorAction.SKIP, "repoint_apps"),  # a skip's, sent as a retry
        signed_input(bob, OperatorAction.RETRY, "verify"),
        signed_input(mallory, OperatorAction.RETRY, "repoint_apps"),
    ):
        run.operator(OperatorAction.RETRY, inp.model_copy(update={"step": "repoint_apps"}), at, refused="x")
    run.operator(OperatorAction.RETRY, retry, at, "ssh:bob")
    run.operator(OperatorAction.RETRY, retry, at, refused="signature: replayed")
    why = "apps repointed by hand"
    run.operator(
        OperatorAction.SKIP, signed_input(bob, OperatorAction.SKIP, "dns_cutover", why), at, "ssh:bob"
    )
    # A validator's refusal leaves no record; a handler's failure is not an action taken.
    run.update(SKIP_UPDATE, signed_input(bob, OperatorAction.SKIP, "verify", why), None, at)
    # An approval in the same run is not an operator action (and the other way round).
    run.update(APPROVE_UPDATE, ApprovalInput(by="bob"), ApprovalRecord(by="bob", at=at, approved=True), at)

    checks = verify_operator_actions(run.history(), _policy(keys))
    assert [(c.action, c.step, c.verdict) for c in checks] == [
        (OperatorAction.PAUSE, None, OperatorVerdict.VALID),
        (OperatorAction.RESUME, None, OperatorVerdict.VALID),
        *[(OperatorAction.RETRY, "repoint_apps", OperatorVerdict.REFUSED)] * 5,
        (OperatorAction.RETRY, "repoint_apps", OperatorVerdict.VALID),
        (OperatorAction.RETRY, "repoint_apps", OperatorVerdict.REFUSED),
        (OperatorAction.SKIP, "dns_cutover", OperatorVerdict.VALID),
    ]
    assert all(c.signer == "ssh:bob" and c.ok and not c.finding for c in checks if c.taken)
    assert all(c.by == "bob" and c.at == at for c in checks)
    refused = [c.detail for c in checks if not c.taken]
    assert "unsigned" in refused[0]
    assert all("does not verify" in d for d in refused[1:4]), refused
    assert "not in approvers.signers" in refused[4]
    assert "replayed" in refused[5] and refused[5].startswith("refused by the run: signature: replayed")
    assert not any(c.finding for c in checks), "a refusal is what a bad signature should get"
    assert verify_approvals(run.history(), _policy(keys))[0].update_id not in {c.update_id for c in checks}


def test_a_taken_action_that_does_not_verify_is_a_finding(keys: dict[str, tuple[Path, str]]) -> None:
    """What a history rewritten, a worker with a bug, or a policy changed since would show."""
    bob = keys["bob"][0]
    run = RunHistory()
    at = START + timedelta(seconds=30)
    # Signed for another step than the one it is recorded for.
    forged = signed_input(bob, OperatorAction.RETRY, "verify").model_copy(update={"step": "repoint_apps"})
    run.operator(OperatorAction.RETRY, forged, at, "ssh:bob")
    # Signed an hour before the run took it (the policy's 900 s).
    late = START + timedelta(hours=1)
    run.operator(
        OperatorAction.SKIP, signed_input(bob, OperatorAction.SKIP, "repoint_apps", "why"), late, "ssh:bob"
    )
    # Taken unsigned.
    run.operator(OperatorAction.PAUSE, OperatorInput(by="carol"), at)
    # Recorded as alice's, verifies as bob's.
    run.operator(OperatorAction.RESUME, signed_input(bob, OperatorAction.RESUME), at, "ssh:alice")

    checks = verify_operator_actions(run.history(), _policy(keys, require=True))
    assert all(c.verdict == OperatorVerdict.INVALID and c.taken for c in checks)
    assert "does not verify" in checks[0].finding
    assert "expired" in checks[1].finding
    assert "unsigned" in checks[2].finding
    assert checks[3].finding == "recorded as signed by ssh:alice, verifies as ssh:bob"
    # Where the policy does not require signatures, an unsigned action is what it allows.
    relaxed = verify_operator_actions(run.history(), _policy(keys, require=False))
    assert relaxed[2].verdict == OperatorVerdict.UNSIGNED and not relaxed[2].finding
    assert relaxed[0].verdict == OperatorVerdict.INVALID, "signed as bob, but not for this step"


def test_approvals_verify_from_the_same_history(keys: dict[str, tuple[Path, str]]) -> None:
    """The approvals' walk over the history is the operator actions' walk: unchanged by them."""
    bob = keys["bob"][0]
    run = RunHistory()
    at = START + timedelta(seconds=30)
    decision = "dec-0123456789abcdef"
    signature = sign(approval_message(WORKFLOW_ID, FIRST_RUN, decision, True, None, START), bob)
    inp = ApprovalInput(by="bob", decision_id=decision, signature=signature, signed_at=START)
    run.update(APPROVE_UPDATE, inp, ApprovalRecord(by="bob", at=at, approved=True, signer="ssh:bob"), at)
    run.update(
        APPROVE_UPDATE,
        inp,
        ApprovalRecord(by="bob", at=at, approved=False, refused="signature: replayed"),
        at,
    )
    run.operator(OperatorAction.PAUSE, OperatorInput(by="bob"), at)
    checks = verify_approvals(run.history(), _policy(keys))
    assert [(c.approved, c.counted, c.signer, c.ok, c.finding) for c in checks] == [
        (True, True, "ssh:bob", True, ""),
        (False, False, None, False, ""),
    ]
    assert "replayed" in checks[1].detail
