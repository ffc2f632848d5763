"""Break glass: a step that a safety rule blocks waits for an approval overriding that rule
by name (DESIGN.md rule 12), shared by the runbooks that promote and move DNS.

The rules themselves are checked inside the guarded activities, right before they act
(``hybridops/topology.py``); a blocked activity fails with ``SafetyRuleViolated`` naming
the rules and sites, non-retryable. This mixin turns that failure into a wait at a gate the
operator sees (``progress.blocked_by``), records the override with who and why, and runs the
step again carrying it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from hybridops.contracts.base import (
        ActivityResult,
        ApprovalInput,
        ApprovalRecord,
        RuleViolation,
        StepOutcome,
        StepRecord,
    )
    from hybridops.contracts.sites import DnsCutoverInput, PromoteInput
    from hybridops.policy import Policy
    from workflows import identity, steps

A = TypeVar("A", bound=ActivityResult)
SAFETY_PATCH = "never-two-writers"
"""Runs from this patch on hold the topology lease, take the primary from the servers (not
from DNS), wait for approval before fencing and look again after it; the histories of earlier
runs replay on the old path."""
SAFETY_RULE_ERROR = "SafetyRuleViolated"
"""The ``ApplicationError`` type of a step a safety rule blocked (hybridops.errors)."""


class Rejected(Exception):
    """An approver rejected the run."""


def blocking_rules(err: BaseException) -> list[RuleViolation]:
    """The safety rules that blocked a step, from its failure (empty: something else failed)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if not isinstance(cause, ApplicationError) or cause.type != SAFETY_RULE_ERROR or not cause.details:
        return []
    detail = cause.details[0]
    if not isinstance(detail, dict):
        return []
    rules = [r for r in str(detail.get("rules", "")).split(",") if r]
    sites = [x for x in str(detail.get("sites", "")).split(",") if x]
    return [RuleViolation(rule=r, site=", ".join(sites), detail=cause.message) for r in rules]


def validate_override(inp: ApprovalInput, blocked: list[RuleViolation]) -> None:
    """An override names a rule that blocks the run, and says why; nothing else is one."""
    rules = [b.rule for b in blocked]
    if inp.override is not None and not blocked:
        raise ValueError("override: the run is not blocked by a safety rule")
    if blocked and inp.approve:
        if inp.override not in rules:
            raise ValueError(
                f"override: the run is blocked by {', '.join(rules)}; name the rule you override"
            )
        if not inp.comment.strip():
            raise ValueError("comment: an override must say why (it is recorded)")


MAX_REFUSED = 20
"""Refused approval attempts a run records (each is in its history); beyond, they are turned
away by the validator, leaving no trace, so nobody can grow a run's history without bound."""


def approval_refusal(
    inp: ApprovalInput, runbook: str, policy: Policy | None, decision_id: str | None
) -> str | None:
    """Why the run refuses this approval (None: it counts): the caller's identity (from its
    client, never typed) against the policy's approvers, four eyes, and the decision it names.
    ``policy`` None: a run from before approvals were authorization (its history replays)."""
    if policy is None:
        return None
    who = identity.caller()
    reason = policy.approvers.refusal(runbook, who, identity.starter(), inp.override is not None)
    if reason:
        return reason
    if inp.decision_id is not None and decision_id is not None and inp.decision_id != decision_id:
        return f"decision_id: the approval names {inp.decision_id}, the run waits on decision {decision_id}"
    if policy.approvers.require_decision_id and decision_id is not None and inp.decision_id is None:
        return "decision_id: name the decision you approve (hybridops approve shows and sends it)"
    return None


class SafetyGuard:
    """Mixin of a runbook workflow with ``_steps``, ``_approvals``, ``_waiting_for_approval``,
    ``_blocked`` and a ``_step`` method (its approve update appends to ``_approvals`` and
    clears ``_waiting_for_approval``; its validator calls :func:`validate_override`)."""

    _steps: list[StepRecord]
    _approvals: list[ApprovalRecord]
    _refused: list[ApprovalRecord]
    _waiting_for_approval: bool
    _blocked: list[RuleViolation]

    def _record_approval(
        self, inp: ApprovalInput, runbook: str, policy: Policy | None, decision_id: str | None
    ) -> ApprovalRecord:
        """The approve Update's handler, for every runbook: authorize, then record (a refused
        attempt is kept, with who and why; it does not open the gate)."""
        refusal = approval_refusal(inp, runbook, policy, decision_id)
        record = ApprovalRecord(
            by=inp.by.strip(),
            approved=inp.approve and refusal is None,
            at=workflow.now(),
            comment=inp.comment,
            override=inp.override,
            identity=identity.caller(),
            decision_id=inp.decision_id,
            refused=refusal,
        )
        if refusal is not None:
            self._refused.append(record)
            return record
        self._approvals.append(record)
        self._waiting_for_approval = False
        return record

    def _validate_approval(self, inp: ApprovalInput, phase: str) -> None:
        """The approve Update's validator, for every runbook: what is malformed (refused with no
        trace: nothing is recorded) as opposed to unauthorized (recorded by the handler)."""
        if not inp.by.strip():
            raise ValueError("by: must name who approves")
        if not self._waiting_for_approval:
            raise ValueError(f"not waiting for approval (phase: {phase})")
        if len(self._refused) >= MAX_REFUSED:
            raise ValueError(f"{MAX_REFUSED} approval attempts were refused already; start a new run")
        validate_override(inp, self._blocked)

    async def _step(
        self,
        name: str,
        step: steps.Step,
        arg: BaseModel,
        rtype: type[A],
        into: list[StepRecord] | None = None,
    ) -> A:
        raise NotImplementedError

    async def _approval_wait(self, timeout_s: float, records: list[StepRecord]) -> ApprovalRecord:
        """The approval gate, for every runbook: wait for an approval that counts (refused
        attempts do not open it), at most ``timeout_s``; a rejection raises :class:`Rejected`,
        the timeout ``ApprovalTimeout``. The gate is a step in ``records``."""
        rec = StepRecord(name="approval", started_at=workflow.now())
        records.append(rec)
        self._waiting_for_approval = True
        try:
            await workflow.wait_condition(
                lambda: not self._waiting_for_approval, timeout=timedelta(seconds=timeout_s)
            )
        except TimeoutError:
            self._waiting_for_approval = False
            rec.ended_at, rec.outcome = workflow.now(), StepOutcome.FAILED
            rec.detail = f"no approval within {timeout_s:.0f} s"
            raise ApplicationError(rec.detail, type="ApprovalTimeout", non_retryable=True) from None
        decision = self._approvals[-1]
        rec.ended_at = workflow.now()
        rec.detail = f"{'approved' if decision.approved else 'rejected'} by {decision.by}"
        rec.outcome = StepOutcome.CHANGED if decision.approved else StepOutcome.FAILED
        if not decision.approved:
            raise Rejected(f"rejected by {decision.by}: {decision.comment}".rstrip(": "))
        return decision

    async def _guarded(
        self,
        name: str,
        step: steps.Step,
        arg: PromoteInput | DnsCutoverInput,
        rtype: type[A],
        policy: Policy,
        blocked_into: list[RuleViolation],
    ) -> A:
        """Run a step that safety rules guard. When a rule blocks it and the policy allows
        break glass, wait for an approval that overrides that rule by name (who and why are
        recorded), then try again with the override; a rejection or the timeout fails it."""
        while True:
            try:
                return await self._step(name, step, arg, rtype)
            except Exception as err:  # ActivityError; a local activity's can arrive as its cause alone
                blocked = blocking_rules(err)
                if not blocked or not policy.safety.break_glass:
                    raise
                blocked_into += blocked
                approval = await self._override_gate(blocked, policy.safety.break_glass_timeout_s)
                arg = arg.model_copy(update={"overrides": [*arg.overrides, approval.override]})

    async def _override_gate(self, blocked: list[RuleViolation], timeout_s: float) -> ApprovalRecord:
        self._blocked = blocked
        rec = StepRecord(name=f"override_{blocked[0].rule}", started_at=workflow.now())
        self._steps.append(rec)
        self._waiting_for_approval = True
        try:
            await workflow.wait_condition(
                lambda: not self._waiting_for_approval, timeout=timedelta(seconds=timeout_s)
            )
        except TimeoutError:
            self._waiting_for_approval, self._blocked = False, []
            rec.ended_at, rec.outcome = workflow.now(), StepOutcome.FAILED
            rec.detail = f"no override of {blocked[0].rule} within {timeout_s:.0f} s: {blocked[0].detail}"
            raise ApplicationError(rec.detail, type="SafetyRuleViolated", non_retryable=True) from None
        self._blocked = []
        approval = self._approvals[-1]
        rec.ended_at = workflow.now()
        if not approval.approved:
            rec.outcome = StepOutcome.FAILED
            rec.detail = f"override of {blocked[0].rule} refused by {approval.by}"
            raise Rejected(f"{rec.detail}: {approval.comment}".rstrip(": "))
        rec.outcome = StepOutcome.CHANGED
        rec.detail = f"{approval.override} overridden by {approval.by}: {approval.comment}"
        return approval
