"""The saga: compensations registered before the step they undo, run in reverse.

A step that changes the world registers its compensation *before* it runs (DESIGN.md rule 3):
if the worker dies mid-step, the compensation is already known. Compensations are idempotent
(undoing something that never happened is a no-op), run in reverse order, and are shielded
from cancellation: once started, they finish.

* :class:`Saga`: the stack of compensations, usable by any runbook on its own (burst builds
  its saga from the state it carries across continue-as-new; drill's teardown is one).
* :class:`LeasedSaga`: a runbook that changes a database's topology runs its sequence in a
  saga while it holds the topology lease (rule 13), and looks before undoing anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from hybridops.contracts.base import Phase, RunStatus
    from hybridops.contracts.lease import LeaseGrant
    from hybridops.contracts.sites import AssessInput
    from workflows import steps
    from workflows.lease import acquire_lease, lease_refused, release_lease
    from workflows.runbook import SAFETY_PATCH, Rejected, RunbookBase


@dataclass
class Saga:
    """A stack of compensations."""

    _stack: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    closed: bool = False
    """True once the point of no return is passed: nothing will be compensated."""

    def register(self, name: str, undo: Callable[[], Awaitable[None]]) -> None:
        """Remember ``undo`` (named ``name``) to run if the runbook fails before it closes."""
        self._stack.append((name, undo))

    def close(self) -> None:
        """The point of no return: from here on, failures go forward, not back."""
        self.closed = True

    @property
    def pending(self) -> list[str]:
        return [name for name, _ in reversed(self._stack)]

    async def compensate(self) -> None:
        """Run every compensation in reverse order, each even if an earlier one failed;
        shielded from cancellation. Raises the first failure once all have run."""
        task = asyncio.ensure_future(self._run_all())
        while True:
            try:
                await asyncio.shield(task)
                return
            except asyncio.CancelledError:
                if task.done():
                    raise
                continue  # a cancellation must not leave the world half undone

    async def _run_all(self) -> None:
        first: BaseException | None = None
        while self._stack:
            _name, undo = self._stack.pop()
            try:
                await undo()
            except Exception as err:
                first = first or err
        if first is not None:
            raise first


class LeasedSaga(RunbookBase):
    """A runbook whose sequence runs in a saga while it holds the topology lease.
    ``PROMOTED_CHECK`` names the look before undoing; :meth:`_promotion_site` says where."""

    PROMOTED_CHECK: ClassVar[str] = "assess_target"
    """The name the look before undoing is recorded under."""
    _beside: asyncio.Future[Any] | None = None
    """The step run while the lease was asked for (:meth:`_lease`), once started."""
    _leased_at_once: bool = False
    """Whether the lease was free when first asked for. Then no other run changed anything
    while ``_beside`` read, unless one released the lease in the few ms between that read and
    the ask (a run ends with several steps after its last change, and each change is checked
    against the servers when it is made)."""

    def _promotion_site(self) -> str | None:
        """The site this run may have promoted (looked at before undoing anything); None:
        the run cannot have promoted (it has not chosen its target yet)."""
        return self._target

    async def _saga(
        self,
        res: Any,
        lease_wait_s: float,
        body: Callable[[Saga], Awaitable[None]],
        beside: Callable[[], Awaitable[Any]] | None = None,
    ) -> BaseException | None:
        """Hold the topology lease, run ``body``; on a failure before the point of no return,
        look (has the target been promoted after all?), then compensate in reverse. Sets the
        result's status and error; returns the failure (None: success). Every ending gives the
        lease back: success, compensation, failure, cancellation.

        ``beside``: a read-only step that runs while the lease is asked for (the body reads
        its outcome, and whether :attr:`_leased_at_once`)."""
        saga = Saga()
        failure: BaseException | None = None
        # Every run is on the patch now; its marker stays where ``patched`` was, so histories
        # recorded on the patch replay (tests/histories/README.md).
        workflow.deprecate_patch(SAFETY_PATCH)
        try:
            lease = await self._lease(res, lease_wait_s, beside)
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
                res.stopped_in = self._phase
                res.by_hand = self._by_hand(self._phase)
                todo = "".join(f" {n}. {t}" for n, t in enumerate(res.by_hand, 1))
                res.error += (
                    f" (past the point of no return, in {self._phase}: finish by hand:{todo}"
                    f" (runbooks/{self.RUNBOOK}.md, 'When it fails'))"
                )
            else:
                self._phase = Phase.COMPENSATE
                held = not saga.pending and not self._changed_anything()
                try:
                    await saga.compensate()
                    if isinstance(err, Rejected):
                        res.status = RunStatus.REJECTED
                    else:
                        res.status = RunStatus.HELD if held else RunStatus.COMPENSATED
                except Exception as comp_err:
                    res.status = RunStatus.FAILED
                    res.error += f"; a compensation failed: {steps.describe_error(comp_err)}"
        if res.lease is not None and res.lease.granted:
            await asyncio.shield(asyncio.ensure_future(release_lease(res.lease)))
        return failure

    async def _lease(
        self, res: Any, wait_s: float, beside: Callable[[], Awaitable[Any]] | None
    ) -> LeaseGrant:
        """Ask for the lease (in ``res.lease`` as soon as it is answered, so that every ending
        gives back a lease that was granted). With ``beside``, that step runs meanwhile and
        the first ask does not wait: a lease held by another run is asked for again, waiting
        up to ``wait_s``, once the step ended, and then :attr:`_leased_at_once` stays False
        (the holder may have changed what the step read)."""
        if beside is None:
            lease: LeaseGrant = await acquire_lease(self.RUNBOOK, wait_s)
            res.lease = lease
            return lease
        ask = asyncio.ensure_future(acquire_lease(self.RUNBOOK, 0.0))
        self._beside = asyncio.ensure_future(beside())
        await asyncio.wait([ask, self._beside])
        self._beside.exception()  # its failure is the body's to raise (a refused run has none)
        lease = res.lease = ask.result()
        if lease.granted:
            self._leased_at_once = True
        elif wait_s > 0:
            lease = res.lease = await acquire_lease(self.RUNBOOK, wait_s)
        return lease

    def _by_hand(self, phase: Phase) -> list[str]:
        """What an operator does, in order, to finish this run by hand when it failed past the
        point of no return in ``phase`` (and no retry or skip came within the operator's
        wait): the run's result and evidence carry it (``by_hand``), and its error says it.
        The runbook's page says the same per phase, under "When it fails"."""
        return [f"see runbooks/{self.RUNBOOK}.md for the {phase} phase; go forward, never undo"]

    def _pass_point_of_no_return(self, saga: Saga, res: Any) -> None:
        """The irreversible step is done: from here nothing is compensated, and a step that
        fails waits for an operator's retry or skip (:meth:`RunbookBase._step`)."""
        saga.close()
        res.point_of_no_return_passed = True
        self._forward_only = True

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
