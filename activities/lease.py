"""The lease's activities: ask the lease workflow for the lease (starting it when it does not
run), and tell it whether its holder's run is still open. See workflows/lease.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.common import Activities, step_activity
from drivers.progress import report as report_progress
from hybridops.constants import ACQUIRE_UPDATE, ActivityName, TaskQueue, WorkflowType
from hybridops.contracts.lease import HolderInput, HolderResult, LeaseGrant, LeaseRequest, LeaseState
from hybridops.errors import ConfigError


class LeaseActivities(Activities):
    """Activities of the topology lease. Built once per worker with its client."""

    def all(self) -> list[Callable[..., Any]]:
        return [self.acquire_lease, self.lease_holder_open]

    def _client(self) -> Client:
        if self.client is None:
            raise ConfigError("the lease needs a Temporal client (a worker's)")
        return self.client

    @step_activity(ActivityName.ACQUIRE_LEASE)
    async def acquire_lease(self, inp: LeaseRequest) -> LeaseGrant:
        """The lease for ``inp``'s run: granted, or refused naming the holder after waiting up to
        ``inp.wait_s``. Idempotent: asked again by the run that holds it, granted again. Starts
        the lease workflow when it does not run (USE_EXISTING: one per database), in the same
        request."""
        inv = self.inventory
        # Update-with-Start: one request starts the lease workflow when it does not run and
        # asks it for the lease (a start, then an Update, were two round trips before a
        # failover's first step).
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            WorkflowType.LEASE.value,
            LeaseState(key=inv.lease.key or inv.dns.record, check_s=inv.lease.check_s),
            id=inv.lease_id(),
            task_queue=inv.queue(TaskQueue.CONTROL),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        update = asyncio.ensure_future(
            self._client().execute_update_with_start_workflow(
                ACQUIRE_UPDATE, inp, start_workflow_operation=start, result_type=LeaseGrant
            )
        )
        try:
            while True:
                done, _ = await asyncio.wait({update}, timeout=5)
                if done:
                    grant = update.result()
                    break
                report_progress({"waiting_for_lease": inv.lease_id()})
        finally:
            if not update.done():
                update.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await update
        holder = grant.holder.workflow_id if grant.holder else "nobody"
        grant.detail = f"lease {grant.lease_id}: " + ("granted" if grant.granted else f"held by {holder}")
        grant.changed = grant.granted
        return grant

    @step_activity(ActivityName.LEASE_HOLDER_OPEN)
    async def lease_holder_open(self, inp: HolderInput) -> HolderResult:
        """Read-only: whether the holder's run is still open (running). A run that is gone
        from the namespace counts as closed."""
        handle = self._client().get_workflow_handle(inp.workflow_id, run_id=inp.run_id or None)
        try:
            desc = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return HolderResult(open=False, status="not found")
            raise
        status = desc.status.name if desc.status else "UNKNOWN"
        return HolderResult(open=desc.status == WorkflowExecutionStatus.RUNNING, status=status)
