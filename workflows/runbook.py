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
from typing import Any, ClassVar, Protocol, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from hybridops.capabilities import Need, unmet
    from hybridops.constants import PROGRESS_QUERY
    from hybridops.contracts.base import (
        ActivityResult,
        EvidenceResult,
        Phase,
        Progress,
        RuleViolation,
        RunStatus,
        StepOutcome,
        StepRecord,
    )
    from hybridops.contracts.sites import PlanResult
    from hybridops.policy import Safety
    from workflows import steps

In = TypeVar("In", bound=BaseModel)
A = TypeVar("A", bound=ActivityResult)
SAFETY_PATCH = "never-two-writers"
"""The patch from which runs hold the topology lease, take the primary from the servers (not
from DNS), wait for approval before fencing and look again after it. Deprecated
(``workflow.deprecate_patch``): the old branch is gone, and the histories recorded before the
patch replay against the release that still had it (tests/histories/README.md)."""


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

    def _placed(
        self,
        placement: str,
        queue_suffix: str,
        site_queues: dict[str, str] | None = None,
        agent_start_s: float = 10.0,
        heartbeat_s: float = steps.HEARTBEAT_TIMEOUT_S,
    ) -> None:
        """Where the steps run from now on (the plan step's answer, so it is in the history)."""
        self._where = steps.Where(placement, queue_suffix, site_queues or None, agent_start_s, heartbeat_s)

    def _placed_by(self, plan: PlanResult) -> None:
        """Where the steps of a runbook on the sites run: its plan step's placement, with each
        site's agent queue and how long an agent may take to answer (the policy's)."""
        timeout = plan.policy.safety.agent_start_timeout_s if plan.policy else Safety().agent_start_timeout_s
        heartbeat = (
            plan.policy.detection.worker_heartbeat_timeout_s if plan.policy else steps.HEARTBEAT_TIMEOUT_S
        )
        self._placed(plan.placement, plan.queue_suffix, plan.site_queues, timeout, heartbeat)

    async def _step(
        self, name: str, step: steps.Step[In, A], arg: In, into: list[StepRecord] | None = None
    ) -> A:
        """Run one step and record it for the evidence (see :func:`steps.record_step`)."""
        records = self._steps if into is None else into
        return await steps.record_step(records, name, step, arg, self._where)

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
