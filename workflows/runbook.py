"""The runbook base: what every runbook workflow shares, so each runbook's module holds only
its own sequence.

* :class:`Runbook`: the run's state (phase, status, steps, compensations, placement), the
  ``progress`` Query, one recorded way to run a step (``_step``) and to undo one
  (``_undo``), the late-start refusal, and the evidence ending (:meth:`Runbook._end`): every
  run, whatever its ending, writes its evidence, then returns or fails with its result.
* :class:`GatedRunbook`: a runbook that changes a database's topology or asks a human. It
  adds the ``approve`` Update (authorization, DESIGN.md rule 15), the approval gate, break
  glass around the steps safety rules guard (rule 12), and the saga runner (rule 3) with the
  topology lease (rule 13) and the look before undoing.

The safety rules themselves are checked inside the guarded activities, right before they act
(``hybridops/topology.py``); a blocked activity fails with ``SafetyRuleViolated`` naming the
rules and sites, non-retryable. :meth:`GatedRunbook._guarded` turns that failure into a wait
at a gate the operator sees (``progress.blocked_by``), records the override with who and why,
and runs the step again carrying it.

Nothing here may change a runbook's commands: the stored histories replay on this code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ClassVar, Protocol, TypeVar, cast

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
    from hybridops.contracts.base import (
        ActivityResult,
        ApprovalInput,
        ApprovalRecord,
        EvidenceResult,
        Phase,
        Progress,
        RuleViolation,
        RunStatus,
        StepOutcome,
        StepRecord,
    )
    from hybridops.contracts.lease import LeaseGrant
    from hybridops.contracts.sites import AssessInput, DnsCutoverInput, PromoteInput
    from hybridops.policy import Policy
    from workflows import identity, steps
    from workflows.lease import acquire_lease, lease_refused, release_lease
    from workflows.saga import Saga

In = TypeVar("In", bound=BaseModel)
A = TypeVar("A", bound=ActivityResult)
G = TypeVar("G", bound=PromoteInput | DnsCutoverInput)
"""The input of a step safety rules guard: it carries the rules an approval overrides."""
SAFETY_PATCH = "never-two-writers"
"""The patch from which runs hold the topology lease, take the primary from the servers (not
from DNS), wait for approval before fencing and look again after it. Deprecated
(``workflow.deprecate_patch``): the old branch is gone, and the histories recorded before the
patch replay against the release that still had it (tests/histories/README.md)."""
SAFETY_RULE_ERROR = "SafetyRuleViolated"
"""The ``ApplicationError`` type of a step a safety rule blocked (hybridops.errors)."""
MAX_REFUSED = 20
"""Refused approval attempts a run records (each is in its history); beyond, they are turned
away by the validator, leaving no trace, so nobody can grow a run's history without bound."""


class Rejected(Exception):
    """An approver rejected the run."""


class RunResult(Protocol):
    """What :meth:`Runbook._end` needs of a runbook's result (every ``XxxResult`` has it)."""

    status: RunStatus
    error: str | None
    ended_at: Any
    evidence_dir: str | None

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


R = TypeVar("R", bound=RunResult)


class Runbook:
    """Base of every runbook workflow. A subclass names itself (``RUNBOOK``), its evidence
    step and that step's input type, defines ``@workflow.run`` (the SDK wants it on the class)
    and builds its sequence from ``_step``."""

    RUNBOOK: ClassVar[str]
    """The runbook's name: in its errors, its approvals' policy and ``runbooks/NAME.md``."""
    EVIDENCE: ClassVar[steps.Step[Any, EvidenceResult]]
    """The evidence step; its input is built as ``EVIDENCE.input(result=res)``."""
    FAILURE_HINT: ClassVar[str] = ""
    """Said after the error of a run that did not succeed (what to do next)."""

    def __init__(self) -> None:
        self._phase = Phase.PENDING
        self._status = RunStatus.RUNNING
        self._steps: list[StepRecord] = []
        self._compensations: list[StepRecord] = []
        self._target: str | None = None
        """The site the run acts on, once known (shown in ``progress``)."""
        self._placement = "colocated"
        self._queue_suffix = ""
        # The approval state is here, not on GatedRunbook, so one progress serves both.
        self._waiting_for_approval = False
        self._blocked: list[RuleViolation] = []
        """The safety rules a step waits on an override for (break glass)."""
        self._decision_id: str | None = None

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> Progress:
        """The current phase and the steps so far."""
        return Progress(
            phase=self._phase,
            status=self._status,
            target=self._target,
            waiting_for_approval=self._waiting_for_approval,
            steps=self._visible_steps(),
            blocked_by=self._blocked[0] if self._blocked else None,
            decision_id=self._decision_id,
        )

    def _visible_steps(self) -> list[StepRecord]:
        return self._steps

    def _records(self) -> list[StepRecord]:
        """Where ``_step`` records a step."""
        return self._steps

    def _placed(self, placement: str, queue_suffix: str) -> None:
        """Where the steps run from now on (the plan step's answer, so it is in the history)."""
        self._placement, self._queue_suffix = placement, queue_suffix

    async def _step(
        self, name: str, step: steps.Step[In, A], arg: In, into: list[StepRecord] | None = None
    ) -> A:
        """Run one step and record it for the evidence (see :func:`steps.record_step`)."""
        records = self._records() if into is None else into
        return await steps.record_step(records, name, step, arg, self._placement, self._queue_suffix)

    async def _undo(self, step: steps.Step[In, A], arg: In) -> None:
        """Run a compensation, recorded under its activity's name."""
        await self._step(step.activity, step, arg, into=self._compensations)

    def _refuse_late_start(self, max_start_delay_s: float, doing: str) -> None:
        """A run that begins long after it was started (a worker was down) stops before it
        looks at the world: the world it was started for may be gone."""
        late = (workflow.now() - workflow.info().workflow_start_time).total_seconds()
        if max_start_delay_s and late > max_start_delay_s:
            raise ApplicationError(
                f"the run began {doing} {late:.0f} s after it was started (more than max_start_delay_s"
                f" {max_start_delay_s:.0f} s): the world it was started for may be gone; start a new run",
                type="StartedTooLate",
                non_retryable=True,
            )

    async def _end(self, res: R, failure: BaseException | None) -> R:
        """The ending every run has: write the evidence, then return the result, re-raise a
        cancellation, or fail with the result as the failure's details."""
        self._status = res.status
        res.ended_at = workflow.now()
        self._phase = Phase.EVIDENCE
        evidence = await steps.run_step(
            self.EVIDENCE, self.EVIDENCE.input(result=res), self._placement, self._queue_suffix
        )
        res.evidence_dir = evidence.path
        self._phase = Phase.DONE
        if isinstance(failure, asyncio.CancelledError):
            raise failure
        if res.status != RunStatus.SUCCEEDED:
            status = res.status.value
            raise ApplicationError(
                f"{self.RUNBOOK} {status}: {res.error}{self.FAILURE_HINT}",
                res.model_dump(mode="json"),
                type=f"{self.RUNBOOK.capitalize()}{status.capitalize()}",
                non_retryable=True,
            )
        return res


# --------------------------------------------------------------------------- approvals


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


class GatedRunbook(Runbook):
    """A runbook with an approval gate, break glass and (for those that move the primary) a
    saga with the topology lease. ``PROMOTED_CHECK`` names the look before undoing."""

    PROMOTED_CHECK: ClassVar[str] = "assess_target"

    def __init__(self) -> None:
        super().__init__()
        self._approvals: list[ApprovalRecord] = []
        self._refused: list[ApprovalRecord] = []
        self._policy: Policy | None = None
        """The policy approvals are authorized against, once decided (None before)."""

    @workflow.update(name=APPROVE_UPDATE)
    def approve(self, inp: ApprovalInput) -> ApprovalRecord:
        """Approve (or reject) the run waiting at its gate; returns the record, with
        ``refused`` saying why when the caller may not (the attempt is recorded)."""
        refusal = approval_refusal(inp, self.RUNBOOK, self._policy, self._decision_id)
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
        """The run's records into its result."""
        res.steps, res.compensations = self._steps, self._compensations
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

    # ------------------------------------------------------------------ the saga

    def _promotion_site(self) -> str | None:
        """The site this run may have promoted (looked at before undoing anything); None:
        the run cannot have promoted, or its history predates the look."""
        return self._target

    async def _saga(
        self, res: Any, lease_wait_s: float, body: Callable[[Saga], Awaitable[None]]
    ) -> BaseException | None:
        """Hold the topology lease, run ``body``; on a failure before the point of no return,
        look (has the target been promoted after all?), then compensate in reverse. Sets the
        result's status and error; returns the failure (None: success). Every ending gives the
        lease back: success, compensation, failure, cancellation."""
        saga = Saga()
        failure: BaseException | None = None
        # Every run is on the patch now; its marker stays where ``patched`` was, so histories
        # recorded on the patch replay (tests/histories/README.md).
        workflow.deprecate_patch(SAFETY_PATCH)
        try:
            lease: LeaseGrant = await acquire_lease(self.RUNBOOK, lease_wait_s)
            res.lease = lease
            if not lease.granted:
                raise lease_refused(lease)
            await body(saga)
            res.status = RunStatus.SUCCEEDED
        except (Exception, asyncio.CancelledError) as err:
            failure = err
            res.error = steps.describe_error(err)
            # Look before undoing: a run replayed after a worker died may not know it promoted
            # already (its result was not recorded), so every run looks.
            site = self._promotion_site()
            if not saga.closed and site is not None:
                await self._close_if_promoted(site, saga, res)
            if saga.closed:
                res.status = RunStatus.FAILED
                res.error += f" (past the point of no return: finish by hand, see runbooks/{self.RUNBOOK}.md)"
            else:
                self._phase = Phase.COMPENSATE
                try:
                    await saga.compensate()
                    res.status = RunStatus.REJECTED if isinstance(err, Rejected) else RunStatus.COMPENSATED
                except Exception as comp_err:
                    res.status = RunStatus.FAILED
                    res.error += f"; a compensation failed: {steps.describe_error(comp_err)}"
        if res.lease is not None and res.lease.granted:
            await asyncio.shield(asyncio.ensure_future(release_lease(res.lease)))
        return failure

    async def _close_if_promoted(self, site: str, saga: Saga, res: Any) -> None:
        """Before undoing anything, look: if ``site`` is already a primary (promotion ran,
        whatever the failure said), the point of no return is behind us, and undoing (an
        unfence, a resume of writes) would make two writable primaries. Unknown counts as
        promoted."""
        try:
            after = await self._step(self.PROMOTED_CHECK, steps.ASSESS, AssessInput(sites=[site]))
            state = after.states[0] if after.states else None
            promoted = state is None or not state.reachable or state.in_recovery is not True
        except ActivityError:
            promoted = True
        if promoted:
            saga.close()
            res.point_of_no_return_passed = True
