"""Re-verify a run's approvals offline (DESIGN.md rule 15): every ``approve`` Update in its
history, its signature checked again against a policy's allowed signers, for the run's own
workflow id, first run id, the decision and verdict it named, and its age when the run took it
(the update's completion time: the run's clock then).

A counted approval that does not verify, or verifies as another signer than the run
recorded, or is unsigned where the policy requires signatures, is a finding. Refused attempts
are listed with what offline verification makes of them (a refusal is what they should be).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import WorkflowHistory

from hybridops.audit.timeline import decode
from hybridops.constants import APPROVE_UPDATE
from hybridops.policy import Policy
from hybridops.signing import approval_message, verify_approval

SIGNER_PREFIX = "ssh:"


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


def verify_approvals(history: WorkflowHistory, policy: Policy) -> list[ApprovalCheck]:
    """Every ``approve`` attempt of the run in ``history``, verified against ``policy``."""
    first_run = ""
    args: dict[str, dict[str, Any]] = {}
    checks: list[ApprovalCheck] = []
    seen: set[str] = set()
    approvers = policy.approvers
    signers = {name: s.key for name, s in approvers.signers.items()}
    for event in history.events:
        kind = event.WhichOneof("attributes")
        if kind == "workflow_execution_started_event_attributes":
            first_run = event.workflow_execution_started_event_attributes.first_execution_run_id
        elif kind == "workflow_execution_update_accepted_event_attributes":
            req = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if req.input.name == APPROVE_UPDATE:
                values = decode(req.input.args)
                args[req.meta.update_id] = values[0] if values and isinstance(values[0], dict) else {}
        elif kind == "workflow_execution_update_completed_event_attributes":
            uc = event.workflow_execution_update_completed_event_attributes
            arg = args.get(uc.meta.update_id)
            if arg is None or uc.outcome.HasField("failure"):
                continue
            values = decode(uc.outcome.success)
            record = values[0] if values and isinstance(values[0], dict) else {}
            at = event.event_time.ToDatetime().replace(tzinfo=UTC)
            refused = record.get("refused")
            check = ApprovalCheck(
                update_id=uc.meta.update_id,
                at=at,
                approved=bool(record.get("approved")),
                counted=not refused,
                recorded_signer=record.get("signer"),
            )
            check.signer, check.detail = _verified(
                history.workflow_id, first_run, arg, at, seen, policy, signers
            )
            check.ok = check.signer is not None
            if check.counted:
                check.finding = _finding(check, approvers.require_signature)
            else:
                check.detail = f"refused by the run: {refused}; offline: {check.detail or 'verifies'}"
            checks.append(check)
    return checks


def _verified(
    workflow_id: str,
    first_run: str,
    arg: dict[str, Any],
    at: datetime,
    seen: set[str],
    policy: Policy,
    signers: dict[str, str],
) -> tuple[str | None, str]:
    signature, signed_text = arg.get("signature"), arg.get("signed_at")
    if not isinstance(signature, str) or not isinstance(signed_text, str):
        return None, "unsigned"
    if signature in seen:
        return None, "signature: replayed (presented earlier in this run)"
    seen.add(signature)
    signed_at = datetime.fromisoformat(signed_text.replace("Z", "+00:00"))
    message = approval_message(
        workflow_id,
        first_run,
        arg.get("decision_id"),
        bool(arg.get("approve", True)),
        arg.get("override"),
        signed_at,
    )
    max_age = timedelta(seconds=policy.approvers.signature_max_age_s)
    principal, why = verify_approval(message, signature, signed_at, at, max_age, signers)
    return (f"{SIGNER_PREFIX}{principal}", "") if principal else (None, why)


def _finding(check: ApprovalCheck, required: bool) -> str:
    if check.signer is None and (required or check.recorded_signer):
        return f"counted, but its signature does not verify: {check.detail}"
    if check.recorded_signer != check.signer:
        return f"recorded as signed by {check.recorded_signer or 'nobody'}, verifies as {check.signer}"
    return ""
