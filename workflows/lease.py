"""``TopologyLeaseWorkflow``: one runbook changes a database's topology at a time
(DESIGN.md rule 13).

A long-lived workflow with a fixed id per database (``Inventory.lease_id``), in the spirit of
the mutex sample of Temporal's samples: runbooks ask it for the lease with an Update (the
``acquire_lease`` activity starts it when it is not running), which answers at once (granted,
or refused naming the holder) or waits up to the request's ``wait_s``. The holder gives it back
with a Signal at every ending (success, compensation, failure, cancellation: the runbook's
``run`` releases before its evidence). A holder that cannot (terminated, timed out, its
namespace reset) is found by a periodic look at its execution, and loses the lease.

The lease is granted again to the run that holds it (a retried acquire after a worker died),
never to two runs; Temporal's single-writer workflow history is what makes this atomic.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from hybridops.constants import ACQUIRE_UPDATE, LEASE_QUERY, RELEASE_SIGNAL, WorkflowType
    from hybridops.contracts.lease import LeaseGrant, LeaseHolder, LeaseRequest, LeaseState
    from workflows.steps import LEASE_ACQUIRE, LEASE_HOLDER_OPEN


@workflow.defn(name=WorkflowType.LEASE.value)
class TopologyLeaseWorkflow:
    """Holds the one lease on a database's topology; runs until nobody needs it."""

    @workflow.init
    def __init__(self, state: LeaseState) -> None:
        # Handlers may run before ``run`` starts (an acquire that started the workflow).
        self.state = state

    @workflow.query(name=LEASE_QUERY)
    def holder(self) -> LeaseHolder | None:
        """Who holds the lease now (None: free)."""
        return self.state.holder

    @workflow.update(name=ACQUIRE_UPDATE)
    async def acquire(self, req: LeaseRequest) -> LeaseGrant:
        """Grant the lease to ``req``'s run when it is free (or already that run's); else wait
        up to ``req.wait_s`` for it, then refuse naming the holder."""
        deadline = workflow.now() + timedelta(seconds=req.wait_s)
        while True:
            held = self.state.holder
            if held is None or held.workflow_id == req.workflow_id:
                if held is None:
                    self.state.granted += 1
                self.state.holder = held or LeaseHolder(
                    workflow_id=req.workflow_id, run_id=req.run_id, runbook=req.runbook, since=workflow.now()
                )
                return LeaseGrant(
                    granted=True, holder=self.state.holder, lease_id=workflow.info().workflow_id
                )
            left = (deadline - workflow.now()).total_seconds()
            if left <= 0:
                return LeaseGrant(granted=False, holder=held, lease_id=workflow.info().workflow_id)
            try:
                # Several waiters may wake on one release: the loop grants it to one of them.
                await workflow.wait_condition(
                    lambda: self.state.holder is None, timeout=timedelta(seconds=left)
                )
            except TimeoutError:
                pass

    @acquire.validator
    def _validate_acquire(self, req: LeaseRequest) -> None:
        if not req.workflow_id.strip():
            raise ValueError("workflow_id: must name the run that asks for the lease")

    @workflow.signal(name=RELEASE_SIGNAL)
    def release(self, workflow_id: str) -> None:
        """Give the lease back; a release by a run that does not hold it changes nothing."""
        if self.state.holder is not None and self.state.holder.workflow_id == workflow_id:
            self.state.holder = None

    @workflow.run
    async def run(self, state: LeaseState) -> LeaseState:
        while True:
            # Free: end once nobody asks for a while (the next acquire starts it again).
            if self.state.holder is None:
                try:
                    await workflow.wait_condition(
                        lambda: self.state.holder is not None, timeout=timedelta(minutes=10)
                    )
                except TimeoutError:
                    if self.state.holder is None and workflow.all_handlers_finished():
                        return self.state
                    continue
            held = self.state.holder
            assert held is not None
            try:
                await workflow.wait_condition(
                    lambda held=held: self.state.holder != held,  # type: ignore[misc]
                    timeout=timedelta(seconds=self.state.check_s),
                )
                continue
            except TimeoutError:
                pass
            alive = await workflow.execute_activity(
                LEASE_HOLDER_OPEN.activity,
                LEASE_HOLDER_OPEN.input(workflow_id=held.workflow_id, run_id=held.run_id),
                result_type=LEASE_HOLDER_OPEN.result,
                start_to_close_timeout=LEASE_HOLDER_OPEN.timeout,
                retry_policy=LEASE_HOLDER_OPEN.retry,
            )
            if not alive.open and self.state.holder == held:
                workflow.logger.warning(
                    "lease holder %s ended (%s) without releasing: lease freed",
                    held.workflow_id,
                    alive.status,
                )
                self.state.holder = None
            if workflow.info().is_continue_as_new_suggested() and workflow.all_handlers_finished():
                workflow.continue_as_new(self.state)


# ---------------------------------------------------------------------- used by the runbooks


async def acquire_lease(runbook: str, wait_s: float) -> LeaseGrant:
    """Ask for the lease for the calling run (a queued activity on the run's own task queue:
    it may wait, and only the control worker needs the client it takes)."""
    info = workflow.info()
    return await workflow.execute_activity(
        LEASE_ACQUIRE.activity,
        LEASE_ACQUIRE.input(workflow_id=info.workflow_id, run_id=info.run_id, runbook=runbook, wait_s=wait_s),
        result_type=LEASE_ACQUIRE.result,
        task_queue=info.task_queue,
        start_to_close_timeout=LEASE_ACQUIRE.timeout + timedelta(seconds=wait_s),
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=LEASE_ACQUIRE.retry,
    )


async def release_lease(grant: LeaseGrant) -> None:
    """Give the lease back (a Signal: no activity, so it works in every ending, even while
    the run is being cancelled). A lease workflow that is gone has nothing to release."""
    try:
        await workflow.get_external_workflow_handle(grant.lease_id).signal(
            RELEASE_SIGNAL, workflow.info().workflow_id
        )
    except Exception as err:  # not found: it ended, and the lease with it
        workflow.logger.warning("releasing lease %s: %s", grant.lease_id, err)


def lease_refused(grant: LeaseGrant) -> ApplicationError:
    """The error of a run that did not get the lease: who holds it, since when."""
    h = grant.holder
    who = (
        f"{h.workflow_id} ({h.runbook or 'a runbook'}, since {h.since:%Y-%m-%dT%H:%M:%SZ})"
        if h and h.since
        else "?"
    )
    return ApplicationError(
        f"another runbook changes this database's topology: {who}; wait for it to end, or start"
        " this run with lease_wait_s to wait (lease " + grant.lease_id + ")",
        type="LeaseHeld",
        non_retryable=True,
    )
