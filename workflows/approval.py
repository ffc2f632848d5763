"""The parts of a runbook that wait for a human, each usable on its own.

* :class:`ApprovalGate`: the ``approve`` Update (authorization, DESIGN.md rule 15) and the
  approval gate, a step in the run's records that waits for an approval that counts.
* :class:`BreakGlass`: an approval gate that also guards the steps safety rules guard
  (rule 12). The safety rules themselves are checked inside the guarded activities, right
  before they act (``hybridops/topology.py``); a blocked activity fails with
  ``SafetyRuleViolated`` naming the rules and sites, non-retryable.
  :meth:`BreakGlass._guarded` turns that failure into a wait at a gate the operator sees
  (``progress.blocked_by``), records the override with who and why, and runs the step again
  carrying it.

Nothing here may change a runbook's commands: the stored histories replay on this code.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from hybridops.constants import APPROVE_UPDATE
    from hybridops.contracts.base import (
        ActivityResult,
        ApprovalInput,
        ApprovalRecord,
        Phase,
        RuleViolation,
        StepOutcome,
        StepRecord,
    )
    from hybridops.contracts.sites import DnsCutoverInput, PromoteInput, RestorePrimaryInput
    from hybridops.policy import Policy
    from workflows import identity, steps
    from workflows.authorization import MAX_REFUSED, approval_refusal
    from workflows.runbook import SAFETY_RULE_ERROR, Rejected, RunbookBase

A = TypeVar("A", bound=ActivityResult)
G = TypeVar("G", bound=PromoteInput | DnsCutoverInput | RestorePrimaryInput)
"""The input of a step safety rules guard: it carries the rules an approval overrides."""


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


class ApprovalGate(RunbookBase):
    """A runbook that may wait for a human: the ``approve`` Update (authorized against the
    policy, DESIGN.md rule 15) and the gate that waits for it."""

    def __init__(self) -> None:
        super().__init__()
        self._approvals: list[ApprovalRecord] = []
        self._refused: list[ApprovalRecord] = []

    @workflow.update(name=APPROVE_UPDATE)
    def approve(self, inp: ApprovalInput) -> ApprovalRecord:
        """Approve (or reject) the run waiting at its gate; returns the record, with
        ``refused`` saying why when the caller may not (the attempt is recorded)."""
        used = {r.signature for r in (*self._approvals, *self._refused) if r.signature}
        refusal, signer = approval_refusal(inp, self.RUNBOOK, self._policy, self._decision_id, used)
        record = ApprovalRecord(
            by=inp.by.strip(),
            approved=inp.approve and refusal is None,
            at=workflow.now(),
            comment=inp.comment,
            override=inp.override,
            identity=identity.caller(),
            decision_id=inp.decision_id,
            refused=refusal,
            signer=signer,
            signature=inp.signature,
            signed_at=inp.signed_at,
        )
        if refusal is not None:
            self._refused.append(record)
            return record
        self._approvals.append(record)
        self._waiting_for_approval = False
        return record

    @approve.validator
    def _validate_approve(self, inp: ApprovalInput) -> None:
        """What is malformed (refused with no trace: nothing is recorded) as opposed to
        unauthorized (recorded by the handler)."""
        if not inp.by.strip():
            raise ValueError("by: must name who approves")
        if not self._waiting_for_approval:
            raise ValueError(f"not waiting for approval (phase: {self._phase})")
        if len(self._refused) >= MAX_REFUSED:
            raise ValueError(f"{MAX_REFUSED} approval attempts were refused already; start a new run")
        validate_override(inp, self._blocked)

    def _collect(self, res: Any) -> None:
        """The run's records into its result, its approvals and refused attempts too."""
        super()._collect(res)
        res.approvals, res.refused_approvals = self._approvals, self._refused

    # ------------------------------------------------------------------ the gate

    async def _approval_gate(
        self, timeout_s: float, records: list[StepRecord] | None = None
    ) -> ApprovalRecord:
        """Wait for an approval that counts (refused attempts do not open it), at most
        ``timeout_s``; a rejection raises :class:`Rejected`, the timeout ``ApprovalTimeout``.
        The gate is a step in ``records`` (the run's steps by default)."""
        self._phase = Phase.APPROVAL
        rec = StepRecord(name="approval", started_at=workflow.now())
        (self._steps if records is None else records).append(rec)
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


class BreakGlass(ApprovalGate):
    """An approval gate that also lets an approver override, by name, a safety rule that
    blocks a guarded step (when the policy allows break glass)."""

    async def _guarded(
        self,
        name: str,
        step: steps.Step[G, A],
        arg: G,
        policy: Policy,
        blocked_into: list[RuleViolation],
    ) -> A:
        """Run a step that safety rules guard. When a rule blocks it and the policy allows
        break glass, wait for an approval that overrides that rule by name (who and why are
        recorded), then try again with the override; a rejection or the timeout fails it."""
        while True:
            try:
                return await self._step(name, step, arg)
            except Exception as err:  # ActivityError; a local activity's can arrive as its cause alone
                blocked = blocking_rules(err)
                if not blocked or not policy.safety.break_glass:
                    raise
                blocked_into += blocked
                approval = await self._override_gate(blocked, policy.safety.break_glass_timeout_s)
                # model_copy keeps the type (a PromoteHomeInput stays one); mypy sees the union.
                arg = cast(G, arg.model_copy(update={"overrides": [*arg.overrides, approval.override]}))

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
