"""The runbook base: what every runbook workflow shares, so each runbook's module holds only
its own sequence, on the parts it needs.

* :class:`RunbookBase`: the run's state (phase, status, steps, compensations, placement), the
  ``progress`` Query, one recorded way to run a step (``_step``) and to undo one
  (``_undo``), the late-start refusal, and the evidence ending (:meth:`RunbookBase._end`): every
  run, whatever its ending (cancellation included), writes its evidence, then returns or
  fails with its result.

The parts a runbook adds, each usable on its own: the approval gate and break glass
(``workflows/approval.py``: :class:`~workflows.approval.ApprovalGate`,
:class:`~workflows.approval.BreakGlass`), the saga (``workflows/saga.py``:
:class:`~workflows.saga.Saga`, the stack of compensations, and
:class:`~workflows.saga.LeasedSaga`, the sequence run in a saga while holding the topology
lease).

Nothing here may change a runbook's commands: the stored histories replay on this code.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from hybridops.capabilities import Need, unmet
    from hybridops.constants import (
        PAUSE_UPDATE,
        PROGRESS_QUERY,
        RESUME_UPDATE,
        RETRY_UPDATE,
        SKIP_UPDATE,
    )
    from hybridops.contracts.base import (
        ActivityResult,
        EvidenceResult,
        OperatorAction,
        OperatorInput,
        OperatorRecord,
        OperatorWait,
        Phase,
        Progress,
        RuleViolation,
        RunStatus,
        StepOutcome,
        StepRecord,
    )
    from hybridops.contracts.sites import PlanResult
    from hybridops.policy import Policy, Safety
    from workflows import identity, steps
    from workflows.authorization import MAX_REFUSED, operator_refusal

In = TypeVar("In", bound=BaseModel)
A = TypeVar("A", bound=ActivityResult)
SAFETY_PATCH = "never-two-writers"
"""The patch from which runs hold the topology lease, take the primary from the servers (not
from DNS), wait for approval before fencing and look again after it. Deprecated
(``workflow.deprecate_patch``): the old branch is gone, and the histories recorded before the
patch replay against the release that still had it (tests/histories/README.md)."""
OPERATOR_PATCH = "operator-control"
"""The patch from which a step that fails past the point of no return waits for an operator's
retry or skip (issue 20 item 4) instead of ending the run: a run recorded before it ends there
as it did."""
SAFETY_RULE_ERROR = "SafetyRuleViolated"
"""The ``ApplicationError`` type of a step a safety rule blocked: break glass answers it
(workflows/approval.py), not an operator's retry."""


def _blocked_by_rule(err: BaseException) -> bool:
    """Whether a safety rule blocked the step (break glass answers that, not a retry)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    return isinstance(cause, ApplicationError) and cause.type == SAFETY_RULE_ERROR


class Rejected(Exception):
    """An approver rejected the run."""


class RunResult(Protocol):
    """What :meth:`RunbookBase._end` needs of a runbook's result (every ``XxxResult`` has it)."""

    status: RunStatus
    error: str | None
    ended_at: Any
    evidence_dir: str | None

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


R = TypeVar("R", bound=RunResult)


def refuse_missing(needs: list[Need], plan: PlanResult) -> list[str]:
    """Refuse a run that needs a capability the inventory's drivers do not offer, before it
    changes anything (DESIGN.md rule 14): the error names each site, driver and capability.
    Returns the best-effort needs that are not met (the run goes on without them, and says so)."""
    missing, optional = unmet(needs, plan.capabilities, plan.drivers)
    if missing:
        raise ApplicationError(
            "a capability this run needs is missing; nothing was changed: " + "; ".join(missing),
            type="CapabilityMissing",
            non_retryable=True,
        )
    return optional


class RunbookBase:
    """Base of every runbook workflow. A subclass names itself (``RUNBOOK``) and its evidence
    step, defines ``@workflow.run`` (the SDK wants it on the class) and builds its sequence
    from ``_step``."""

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
        self._where = steps.Where()
        """Where steps run: colocated until the plan step says otherwise."""
        # The approval state is here, not on ApprovalGate, so one progress serves every runbook.
        self._waiting_for_approval = False
        self._blocked: list[RuleViolation] = []
        """The safety rules a step waits on an override for (break glass)."""
        self._decision_id: str | None = None
        self._policy: Policy | None = None
        """The policy approvals and operator actions are authorized against, once read (None
        before: the default policy's rules apply to an operator action)."""
        # Operator control (issue 20 item 4): one mechanism around every step, see ``_step``.
        self._operator: list[OperatorRecord] = []
        """Every pause, resume, retry and skip, taken or refused, in order."""
        self._paused: OperatorRecord | None = None
        self._waiting: OperatorWait | None = None
        self._skippable = False
        """Whether the step waiting for an operator may be skipped (its result is not needed)."""
        self._answer: OperatorRecord | None = None
        self._forward_only = False
        """Past the point of no return: a failed step waits for an operator."""

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
            paused=self._paused,
            waiting_for_operator=self._waiting,
        )

    def _visible_steps(self) -> list[StepRecord]:
        return self._steps

    def _placed(
        self,
        placement: str,
        queue_suffix: str,
        site_queues: dict[str, str] | None = None,
        agent_start_s: float = 10.0,
        heartbeat_s: float = steps.HEARTBEAT_TIMEOUT_S,
        agent_restart_s: float = 60.0,
    ) -> None:
        """Where the steps run from now on (the plan step's answer, so it is in the history)."""
        self._where = steps.Where(
            placement, queue_suffix, site_queues or None, agent_start_s, heartbeat_s, agent_restart_s
        )

    def _placed_by(self, plan: PlanResult) -> None:
        """Where the steps of a runbook on the sites run: its plan step's placement, with each
        site's agent queue and how long an agent may take to answer (the policy's)."""
        safety = plan.policy.safety if plan.policy else Safety()
        heartbeat = (
            plan.policy.detection.worker_heartbeat_timeout_s if plan.policy else steps.HEARTBEAT_TIMEOUT_S
        )
        self._placed(
            plan.placement,
            plan.queue_suffix,
            plan.site_queues,
            safety.agent_start_timeout_s,
            heartbeat,
            safety.agent_restart_timeout_s,
        )

    async def _step(
        self,
        name: str,
        step: steps.Step[In, A],
        arg: In,
        into: list[StepRecord] | None = None,
        optional: bool = False,
    ) -> A:
        """Run one step and record it for the evidence (see :func:`steps.record_step`).

        Operator control, the one way for every runbook: a run's own step (not a compensation)
        waits at its start while the run is paused; past the point of no return, a failed step
        that is not ``optional`` (the runbook goes on without it) waits for an operator to
        retry or skip it, at most the policy's ``operator.wait_after_failure_s``, then fails
        as it would have."""
        if into is not None:
            return await steps.record_step(into, name, step, arg, self._where)
        while True:
            await self._pause_point(name)
            try:
                return await steps.record_step(self._steps, name, step, arg, self._where)
            except Exception as err:  # ActivityError; a local activity's can arrive as its cause alone
                if optional or not self._forward_only or _blocked_by_rule(err):
                    raise
                answer = await self._await_operator(name, step)
                if answer is None:
                    raise
                if answer.action == OperatorAction.SKIP:
                    rec = self._record_of(name)
                    rec.outcome = StepOutcome.SKIPPED
                    rec.detail = f"skipped by {answer.by}: {answer.comment} (it failed: {rec.detail})"
                    return step.result()
                # A retry: the failed attempt stays in the records, the step runs again.

    def _record_of(self, name: str) -> StepRecord:
        """The newest record of the step ``name`` (not the newest record: steps run at once
        record in the order they start)."""
        return next(r for r in reversed(self._steps) if r.name == name)

    async def _pause_point(self, name: str) -> None:
        """A step boundary: while the run is paused, wait here (recorded as a step)."""
        if self._paused is None:
            return
        rec = StepRecord(name="paused", started_at=workflow.now())
        self._steps.append(rec)
        pause = self._paused
        await workflow.wait_condition(lambda: self._paused is None)
        resumed = next(
            r for r in reversed(self._operator) if r.action == OperatorAction.RESUME and not r.refused
        )
        rec.ended_at, rec.outcome = workflow.now(), StepOutcome.UNCHANGED
        rec.detail = (
            f"paused by {pause.by} before {name}"
            + (f": {pause.comment}" if pause.comment else "")
            + f"; resumed by {resumed.by}"
            + (f": {resumed.comment}" if resumed.comment else "")
        )

    async def _await_operator(self, name: str, step: steps.Step[Any, Any]) -> OperatorRecord | None:
        """``name`` failed past the point of no return: wait for an operator's retry or skip
        (None: the policy does not wait, the wait expired, or the run was recorded before
        operator control)."""
        wait_s = (self._policy or Policy()).operator.wait_after_failure_s
        if wait_s <= 0 or not workflow.patched(OPERATOR_PATCH):
            return None
        rec = self._record_of(name)
        # One wait at a time: of two steps run at once (steps.together) that both failed, the
        # second waits for the first's answer before its own wait begins.
        await workflow.wait_condition(lambda: self._waiting is None)
        now = workflow.now()
        self._waiting = OperatorWait(
            step=name, error=rec.detail, since=now, until=now + timedelta(seconds=wait_s)
        )
        try:
            step.result()
            self._skippable = True
        except ValidationError:
            self._skippable = False  # the steps after it need its result
        self._answer = None
        try:
            await workflow.wait_condition(lambda: self._answer is not None, timeout=timedelta(seconds=wait_s))
        except TimeoutError:
            rec.detail += f"; no retry or skip within {wait_s:.0f} s (operator.wait_after_failure_s)"
            return None
        finally:
            self._waiting = None
        return self._answer

    # ------------------------------------------------------------------ operator control

    @workflow.update(name=PAUSE_UPDATE)
    def pause(self, inp: OperatorInput) -> OperatorRecord:
        """Pause the run at its next step boundary (the step in flight finishes)."""
        return self._operate(OperatorAction.PAUSE, inp)

    @pause.validator
    def _validate_pause(self, inp: OperatorInput) -> None:
        self._validate_operator(OperatorAction.PAUSE, inp)

    @workflow.update(name=RESUME_UPDATE)
    def resume(self, inp: OperatorInput) -> OperatorRecord:
        """Let a paused run go on."""
        return self._operate(OperatorAction.RESUME, inp)

    @resume.validator
    def _validate_resume(self, inp: OperatorInput) -> None:
        self._validate_operator(OperatorAction.RESUME, inp)

    @workflow.update(name=RETRY_UPDATE)
    def retry(self, inp: OperatorInput) -> OperatorRecord:
        """Run again the step that failed past the point of no return (its cause fixed)."""
        return self._operate(OperatorAction.RETRY, inp)

    @retry.validator
    def _validate_retry(self, inp: OperatorInput) -> None:
        self._validate_operator(OperatorAction.RETRY, inp)

    @workflow.update(name=SKIP_UPDATE)
    def skip(self, inp: OperatorInput) -> OperatorRecord:
        """Go on past the step that failed past the point of no return, without it."""
        return self._operate(OperatorAction.SKIP, inp)

    @skip.validator
    def _validate_skip(self, inp: OperatorInput) -> None:
        self._validate_operator(OperatorAction.SKIP, inp)

    def _operate(self, action: OperatorAction, inp: OperatorInput) -> OperatorRecord:
        """Authorize ``action`` like an approval and record it, taken or refused (a refused
        one changes nothing)."""
        used = {r.signature for r in self._operator if r.signature}
        refusal, signer = operator_refusal(action, inp, self.RUNBOOK, self._policy or Policy(), used)
        record = OperatorRecord(
            action=action,
            by=inp.by.strip(),
            at=workflow.now(),
            step=inp.step,
            comment=inp.comment,
            identity=identity.caller(),
            signer=signer,
            signature=inp.signature,
            signed_at=inp.signed_at,
            refused=refusal,
        )
        self._operator.append(record)
        if refusal is not None:
            return record
        if action == OperatorAction.PAUSE:
            self._paused = record
        elif action == OperatorAction.RESUME:
            self._paused = None
        else:
            self._answer = record
        return record

    def _validate_operator(self, action: OperatorAction, inp: OperatorInput) -> None:
        """What is malformed or pointless now (refused with no trace), as opposed to
        unauthorized (recorded by the handler)."""
        if not inp.by.strip():
            raise ValueError("by: must name who acts")
        if sum(1 for r in self._operator if r.refused) >= MAX_REFUSED:
            raise ValueError(f"{MAX_REFUSED} operator actions were refused already")
        if self._phase in (Phase.COMPENSATE, Phase.EVIDENCE, Phase.DONE):
            # Compensations are shielded and never wait: a pause would not hold them.
            raise ValueError(f"the run is ending (phase: {self._phase})")
        if action == OperatorAction.PAUSE and self._paused is not None:
            raise ValueError(f"already paused by {self._paused.by} at {self._paused.at.isoformat()}")
        if action == OperatorAction.RESUME and self._paused is None:
            raise ValueError("not paused")
        if action in (OperatorAction.RETRY, OperatorAction.SKIP):
            waiting = self._waiting
            if waiting is None or self._answer is not None:
                raise ValueError(
                    f"no step waits for an operator: {action.value} is for a step that failed past the"
                    " point of no return (progress.waiting_for_operator)"
                )
            if inp.step != waiting.step:
                raise ValueError(f"step: the run waits on {waiting.step}, not {inp.step or 'none named'}")
            if action == OperatorAction.SKIP and not inp.comment.strip():
                raise ValueError("comment: a skip must say why (it is recorded)")
            if action == OperatorAction.SKIP and not self._skippable:
                raise ValueError(
                    f"step: {waiting.step} cannot be skipped (the steps after it need its result); retry"
                    " it, or let the wait end and finish by hand"
                )
        if action in (OperatorAction.PAUSE, OperatorAction.RESUME) and inp.step is not None:
            raise ValueError(f"step: a {action.value} is for the run, not a step")

    async def _undo(self, step: steps.Step[In, A], arg: In, name: str | None = None) -> None:
        """Run a compensation, recorded under ``name`` (default: its activity's name)."""
        await self._step(name or step.activity, step, arg, into=self._compensations)

    def _changed_anything(self) -> bool:
        """Whether any step so far changed the world (a run that ends without one is ``held``:
        it had nothing to undo)."""
        return any(s.outcome == StepOutcome.CHANGED for s in self._steps)

    def _collect(self, res: Any) -> None:
        """The run's records into its result."""
        res.steps, res.compensations = self._steps, self._compensations
        res.operator_actions = self._operator

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
        evidence = await steps.run_step(self.EVIDENCE, self.EVIDENCE.input(result=res), self._where)
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
