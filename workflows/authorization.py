"""Who may act on a run (DESIGN.md rule 15): approvals at a gate, and the operator's pause,
resume, retry and skip (issue 20 item 4), authorized the one way: an SSH signature verified
against the policy's allowed signers (for this run and what the attempt says), then who it is
(the verified signer, else the identity header: a claim) against the runbook's approvers and
four eyes. Pure and deterministic (``workflow.now()``, the run's own ids): a replay decides the
same, and ``hybridops audit verify`` can decide it again offline.

Nothing here may change a runbook's commands: the stored histories replay on this code.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import NamedTuple

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from hybridops.contracts.base import ApprovalInput, OperatorAction, OperatorInput
    from hybridops.policy import Approvers, Policy
    from hybridops.signing import approval_message, operator_message, verify_approval
    from workflows import identity

SIGNER_PREFIX = "ssh:"
"""How a verified signer appears among identities (``ssh:<principal>``, in approvers lists)."""
MAX_REFUSED = 20
"""Refused attempts a run records (each is in its history); beyond, they are turned away by
the validator, leaving no trace, so nobody can grow a run's history without bound."""


class Verdict(NamedTuple):
    """What the run makes of an approval attempt."""

    refusal: str | None
    """Why it does not count (None: it does)."""
    signer: str | None = None
    """``ssh:<principal>`` when its signature verified against the policy's signers."""


def approval_refusal(
    inp: ApprovalInput,
    runbook: str,
    policy: Policy | None,
    decision_id: str | None,
    used_signatures: Collection[str] = (),
) -> Verdict:
    """Whether the run takes this approval: its signature (verified against the policy's
    allowed signers, for this run, decision and verdict), then who it is (the verified signer,
    else the client's identity header: a claim) against the policy's approvers, four eyes,
    and the decision it names. ``policy`` None: a run from before approvals were authorization
    (its history replays)."""
    if policy is None:
        return Verdict(None)
    approvers = policy.approvers
    signer, aliases = None, list[str]()
    if inp.signature is not None:
        principal, why = _verify(inp, approvers, used_signatures)
        if principal is None:
            return Verdict(why)
        signer, aliases = f"{SIGNER_PREFIX}{principal}", approvers.signers[principal].identities
    elif approvers.require_signature:
        return Verdict(
            f"unsigned: the policy requires a signed approval (hybridops approve --sign-key); "
            f"the header's {identity.caller() or 'no identity'} is only a claim"
        )
    who = signer or identity.caller()
    reason = approvers.refusal(runbook, who, identity.starter(), inp.override is not None, aliases)
    if reason:
        return Verdict(reason, signer)
    if inp.decision_id is not None and decision_id is not None and inp.decision_id != decision_id:
        return Verdict(
            f"decision_id: the approval names {inp.decision_id}, the run waits on decision {decision_id}",
            signer,
        )
    if approvers.require_decision_id and decision_id is not None and inp.decision_id is None:
        return Verdict(
            "decision_id: name the decision you approve (hybridops approve shows and sends it)", signer
        )
    return Verdict(None, signer)


def _verify(inp: ApprovalInput, approvers: Approvers, used: Collection[str]) -> tuple[str | None, str]:
    """The signer's principal, or why the signature does not count. The message is rebuilt
    from this run's own ids, so one made for another run or decision does not verify."""
    assert inp.signature is not None
    if inp.signed_at is None:
        return None, "signed_at: a signature needs the time it was signed (it is part of the message)"
    if inp.signature in used:
        return None, "signature: replayed (already presented to this run)"
    info = workflow.info()
    message = approval_message(
        info.workflow_id,
        info.first_execution_run_id,
        inp.decision_id,
        inp.approve,
        inp.override,
        inp.signed_at,
    )
    return _check(message, inp.signature, inp.signed_at, approvers)


def _check(
    message: bytes, signature: str, signed_at: datetime, approvers: Approvers
) -> tuple[str | None, str]:
    return verify_approval(
        message,
        signature,
        signed_at,
        workflow.now(),
        timedelta(seconds=approvers.signature_max_age_s),
        {name: s.key for name, s in approvers.signers.items()},
    )


def operator_refusal(
    action: OperatorAction,
    inp: OperatorInput,
    runbook: str,
    policy: Policy,
    used_signatures: Collection[str] = (),
) -> Verdict:
    """Whether the run takes this pause, resume, retry or skip: authorized exactly as an
    approval of ``runbook`` (its approvers, four eyes, ``require_signature``), the signature
    over :func:`hybridops.signing.operator_message` for this run, this action, its step and
    comment, so one made for another run, action or step does not verify, an old one is
    expired and one already presented is replayed."""
    approvers = policy.approvers
    signer, aliases = None, list[str]()
    if inp.signature is not None:
        if inp.signed_at is None:
            return Verdict("signed_at: a signature needs the time it was signed (it is part of the message)")
        if inp.signature in used_signatures:
            return Verdict("signature: replayed (already presented to this run)")
        info = workflow.info()
        message = operator_message(
            info.workflow_id, info.first_execution_run_id, action.value, inp.step, inp.comment, inp.signed_at
        )
        principal, why = _check(message, inp.signature, inp.signed_at, approvers)
        if principal is None:
            return Verdict(why)
        signer, aliases = f"{SIGNER_PREFIX}{principal}", approvers.signers[principal].identities
    elif approvers.require_signature:
        return Verdict(
            f"unsigned: the policy requires a signed {action.value} (hybridops {action.value} --sign-key);"
            f" the header's {identity.caller() or 'no identity'} is only a claim"
        )
    who = signer or identity.caller()
    reason = approvers.refusal(runbook, who, identity.starter(), False, aliases, action.value)
    return Verdict(reason, signer)
