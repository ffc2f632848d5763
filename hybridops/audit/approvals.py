"""Re-verify a run's approvals and operator actions offline (DESIGN.md rule 15): every
``approve`` Update in its history, its signature checked again against a policy's allowed
signers, for the run's own workflow id, first run id, the decision and verdict it named, and
its age when the run took it (the update's completion time: the run's clock then); and every
``pause``, ``resume``, ``retry`` and ``skip`` (issue 20 item 4) the same way, its signature over
the run, the action, the step and the comment.

A counted approval or a taken operator action that does not verify, or verifies as another
signer than the run recorded, or is unsigned where the policy requires signatures, is a
finding. Refused attempts are listed with what offline verification makes of them (a refusal
is what they should be).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from pydantic import BaseModel
from temporalio.client import WorkflowHistory

from hybridops.audit.timeline import decode
from hybridops.constants import APPROVE_UPDATE, PAUSE_UPDATE, RESUME_UPDATE, RETRY_UPDATE, SKIP_UPDATE
from hybridops.contracts.base import OperatorAction
from hybridops.policy import Policy
from hybridops.signing import approval_message, operator_message, verify_approval

SIGNER_PREFIX = "ssh:"
OPERATOR_UPDATES: dict[str, OperatorAction] = {
    PAUSE_UPDATE: OperatorAction.PAUSE,
    RESUME_UPDATE: OperatorAction.RESUME,
    RETRY_UPDATE: OperatorAction.RETRY,
    SKIP_UPDATE: OperatorAction.SKIP,
}
"""The Updates of operator control, by the action each is."""


class ApprovalCheck(BaseModel):
    """One approval attempt of a run, verified again."""

    update_id: str
    at: datetime | None = None
    """When the run took it (its update's completion)."""
    approved: bool = False
    """The run counted it as an approval (not refused, not a rejection)."""
    counted: bool = False
    """The run counted it (an approval or a rejection that was not refused)."""
    recorded_signer: str | None = None
    signer: str | None = None
    """``ssh:<principal>`` as verified now (None: unsigned, or it does not verify)."""
    ok: bool = False
    """The signature verifies now, by an allowed signer, and was fresh and not replayed."""
    detail: str = ""
    """Why not, or what the run said when it refused it."""
    finding: str = ""
    """A counted attempt that verification contradicts (empty: none)."""


class OperatorVerdict(StrEnum):
    """What offline verification makes of an operator action."""

    VALID = "valid"
    """The run took it and its signature verifies now (an allowed signer, fresh, not replayed)."""
    UNSIGNED = "unsigned"
    """The run took it unsigned, and the policy does not require signatures."""
    INVALID = "invalid"
    """The run took it, and verification contradicts it (a finding)."""
    REFUSED = "refused"
    """The run refused it: it changed nothing."""


class OperatorCheck(BaseModel):
    """One pause, resume, retry or skip of a run, verified again."""

    update_id: str
    action: OperatorAction
    by: str = ""
    """Who it says acted (as typed; ``signer`` is who verifiably did)."""
    step: str | None = None
    """The step a retry or skip was for (None: a pause or resume)."""
    at: datetime | None = None
    """When the run took it (its update's completion)."""
    taken: bool = False
    """The run took it (not refused)."""
    recorded_signer: str | None = None
    signer: str | None = None
    """``ssh:<principal>`` as verified now (None: unsigned, or it does not verify)."""
    ok: bool = False
    """The signature verifies now, by an allowed signer, and was fresh and not replayed."""
    verdict: OperatorVerdict = OperatorVerdict.REFUSED
    detail: str = ""
    """Why not, or what the run said when it refused it."""
    finding: str = ""
    """A taken action that verification contradicts (empty: none)."""


@dataclass(frozen=True)
class _Attempt:
    """One completed Update of the run: what was sent, what the run answered, and when."""

    update_id: str
    name: str
    arg: dict[str, Any]
    record: dict[str, Any]
    at: datetime


def _attempts(history: WorkflowHistory, names: set[str]) -> tuple[str, list[_Attempt]]:
    """The run's first run id and its completed (not failed) Updates named in ``names``, in
    order of completion."""
    first_run = ""
    args: dict[str, tuple[str, dict[str, Any]]] = {}
    out: list[_Attempt] = []
    for event in history.events:
        kind = event.WhichOneof("attributes")
        if kind == "workflow_execution_started_event_attributes":
            first_run = event.workflow_execution_started_event_attributes.first_execution_run_id
        elif kind == "workflow_execution_update_accepted_event_attributes":
            req = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if req.input.name in names:
                values = decode(req.input.args)
                arg = values[0] if values and isinstance(values[0], dict) else {}
                args[req.meta.update_id] = (req.input.name, arg)
        elif kind == "workflow_execution_update_completed_event_attributes":
            uc = event.workflow_execution_update_completed_event_attributes
            sent = args.get(uc.meta.update_id)
            if sent is None or uc.outcome.HasField("failure"):
                continue
            values = decode(uc.outcome.success)
            record = values[0] if values and isinstance(values[0], dict) else {}
            at = event.event_time.ToDatetime().replace(tzinfo=UTC)
            out.append(_Attempt(uc.meta.update_id, sent[0], sent[1], record, at))
    return first_run, out


def verify_approvals(history: WorkflowHistory, policy: Policy) -> list[ApprovalCheck]:
    """Every ``approve`` attempt of the run in ``history``, verified against ``policy``."""
    first_run, attempts = _attempts(history, {APPROVE_UPDATE})
    checks: list[ApprovalCheck] = []
    seen: set[str] = set()
    approvers = policy.approvers
    for a in attempts:
        refused = a.record.get("refused")
        check = ApprovalCheck(
            update_id=a.update_id,
            at=a.at,
            approved=bool(a.record.get("approved")),
            counted=not refused,
            recorded_signer=a.record.get("signer"),
        )
        message = partial(
            approval_message,
            history.workflow_id,
            first_run,
            a.arg.get("decision_id"),
            bool(a.arg.get("approve", True)),
            a.arg.get("override"),
        )
        check.signer, check.detail = _verified(a.arg, message, a.at, seen, policy)
        check.ok = check.signer is not None
        if check.counted:
            check.finding = _finding(
                "counted", check.signer, check.recorded_signer, check.detail, approvers.require_signature
            )
        else:
            check.detail = f"refused by the run: {refused}; offline: {check.detail or 'verifies'}"
        checks.append(check)
    return checks


def verify_operator_actions(history: WorkflowHistory, policy: Policy) -> list[OperatorCheck]:
    """Every pause, resume, retry and skip of the run in ``history``, taken or refused,
    verified against ``policy`` as the run verified it: the signature over
    :func:`hybridops.signing.operator_message` for this run, the action, its step and comment,
    by an allowed signer, fresh when the run took it, and not presented to the run before."""
    first_run, attempts = _attempts(history, set(OPERATOR_UPDATES))
    checks: list[OperatorCheck] = []
    seen: set[str] = set()
    for a in attempts:
        action = OPERATOR_UPDATES[a.name]
        refused = a.record.get("refused")
        step = a.arg.get("step")
        check = OperatorCheck(
            update_id=a.update_id,
            action=action,
            by=str(a.arg.get("by", "")),
            step=step if isinstance(step, str) else None,
            at=a.at,
            taken=not refused,
            recorded_signer=a.record.get("signer"),
        )
        message = partial(
            operator_message,
            history.workflow_id,
            first_run,
            action.value,
            check.step,
            str(a.arg.get("comment", "")),
        )
        check.signer, check.detail = _verified(a.arg, message, a.at, seen, policy)
        check.ok = check.signer is not None
        if not check.taken:
            check.verdict = OperatorVerdict.REFUSED
            check.detail = f"refused by the run: {refused}; offline: {check.detail or 'verifies'}"
        else:
            check.finding = _finding(
                "taken", check.signer, check.recorded_signer, check.detail, policy.approvers.require_signature
            )
            check.verdict = (
                OperatorVerdict.INVALID
                if check.finding
                else OperatorVerdict.VALID
                if check.ok
                else OperatorVerdict.UNSIGNED
            )
        checks.append(check)
    return checks


def _verified(
    arg: dict[str, Any],
    message: Callable[[datetime], bytes],
    at: datetime,
    seen: set[str],
    policy: Policy,
) -> tuple[str | None, str]:
    """The signer of ``arg``'s signature over ``message(signed_at)``, checked at ``at`` (the
    run's clock when it took it), or why none: unsigned, replayed (in ``seen``, which this
    adds to), or what :func:`hybridops.signing.verify_approval` says."""
    signature, signed_text = arg.get("signature"), arg.get("signed_at")
    if not isinstance(signature, str) or not isinstance(signed_text, str):
        return None, "unsigned"
    if signature in seen:
        return None, "signature: replayed (presented earlier in this run)"
    seen.add(signature)
    signed_at = datetime.fromisoformat(signed_text.replace("Z", "+00:00"))
    max_age = timedelta(seconds=policy.approvers.signature_max_age_s)
    signers = {name: s.key for name, s in policy.approvers.signers.items()}
    principal, why = verify_approval(message(signed_at), signature, signed_at, at, max_age, signers)
    return (f"{SIGNER_PREFIX}{principal}", "") if principal else (None, why)


def _finding(taken: str, signer: str | None, recorded_signer: str | None, detail: str, required: bool) -> str:
    """What contradicts an attempt the run ``taken`` (counted, took): its signature does not
    verify where it must, or verifies as another signer than the run recorded."""
    if signer is None and (required or recorded_signer):
        return f"{taken}, but its signature does not verify: {detail}"
    if recorded_signer != signer:
        return f"recorded as signed by {recorded_signer or 'nobody'}, verifies as {signer}"
    return ""
