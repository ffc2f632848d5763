"""What the control worker reads of Temporal for the metrics, every ``interval_s``: the runs
waiting for an approval (each running runbook's ``progress`` query), the running bursts' cost
so far (their ``burst_state``), the last drill that
passed (:func:`hybridops.drills.drill_status`), the objectives runs are measured against
(the policy's, the inventory's drill objectives) and each task queue's backlog (the server's
``DescribeTaskQueue`` statistics: no worker sees its queue's backlog).

Read from the server, never counted in workflow code: the numbers are right after a worker
restart, and workflows stay deterministic (DESIGN.md rule 1). The cost is one visibility
list and one query per running runbook per interval; DR runs are few.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from hybridops import metrics
from hybridops.constants import BURST_STATE_QUERY, PROGRESS_QUERY, TaskQueue, WorkflowType
from hybridops.contracts.base import Progress
from hybridops.contracts.burst import BurstState, burst_cost
from hybridops.drills import drill_status
from hybridops.inventory import Inventory
from hybridops.policy import load_policy

log = logging.getLogger(__name__)

RUNBOOK_TYPES = {
    t.value: t.value.removesuffix("Workflow").lower() for t in WorkflowType if t != WorkflowType.LEASE
}
"""Workflow type to runbook name, for the runbooks (not the lease)."""


def waiting_since(progress: Progress) -> datetime | None:
    """When the run began waiting at its gate (its open approval or override step), or None."""
    if not progress.waiting_for_approval:
        return None
    open_steps = [s for s in progress.steps if s.ended_at is None]
    return open_steps[-1].started_at if open_steps else None


async def observe_once(client: Client, inv: Inventory) -> None:
    """Read the state once and set the gauges."""
    queue = inv.queue(TaskQueue.CONTROL)
    types = " OR ".join(f'WorkflowType = "{t}"' for t in RUNBOOK_TYPES)
    query = f'ExecutionStatus = "Running" AND TaskQueue = "{queue}" AND ({types})'
    waiting: dict[str, list[datetime]] = defaultdict(list)
    burst_cost_so_far = 0.0
    async for wf in client.list_workflows(query, limit=200):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        try:
            progress = await handle.query(PROGRESS_QUERY, result_type=Progress)
            state = (
                await handle.query(BURST_STATE_QUERY, result_type=BurstState)
                if wf.workflow_type == WorkflowType.BURST.value
                else None
            )
        except Exception as err:  # a run that ended meanwhile, a worker restarting
            log.debug("observe: no progress of %s: %s", wf.id, err)
            continue
        since = waiting_since(progress)
        if since is not None:
            waiting[RUNBOOK_TYPES[wf.workflow_type]].append(since)
        if state is not None:
            # The workflow's own formula, on the inventory's prices (the plan copies them).
            burst_cost_so_far += burst_cost(state, inv.burst.price_per_node_hour, datetime.now(UTC))[1]
    metrics.BURST_COST_RUNNING.set(burst_cost_so_far)
    for runbook in RUNBOOK_TYPES.values():
        metrics.WAITING_FOR_APPROVAL.labels(runbook).set(len(waiting[runbook]))
        if waiting[runbook]:
            metrics.WAITING_SINCE.labels(runbook).set(min(waiting[runbook]).timestamp())
        else:
            try:
                metrics.WAITING_SINCE.remove(runbook)
            except KeyError:
                pass
    drills = await drill_status(client, inv)
    metrics.DRILL_MAX_AGE.set(inv.drill.max_age_h * 3600)
    metrics.DRILL_LAST_PASSED.set(drills.last_passed_at.timestamp() if drills.last_passed_at else 0)
    metrics.BURST_BUDGET.set(inv.burst.budget_cap)
    # The objectives the runs are measured against: the policy's constraints (failover,
    # failback), the inventory's drill objectives.
    constraints = load_policy(inv.policy).constraints
    for runbook in ("failover", "failback"):
        metrics.RTO_OBJECTIVE.labels(runbook).set(constraints.rto_max_s)
        metrics.RPO_OBJECTIVE.labels(runbook).set(constraints.rpo_max_s)
    metrics.RTO_OBJECTIVE.labels("drill").set(inv.drill.rto_objective_s)
    metrics.RPO_OBJECTIVE.labels("drill").set(inv.drill.rpo_objective_s)
    for queue in TaskQueue:
        await observe_backlog(client, inv.queue(queue))
    metrics.OBSERVED.set(time.time())


BACKLOG_TYPES = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


async def observe_backlog(client: Client, queue: str) -> None:
    """A task queue's backlog (tasks waiting for a worker) and its age, by task type."""
    for kind, task_type in BACKLOG_TYPES.items():
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueueRef(name=queue),
                task_queue_type=task_type,
                report_stats=True,
            )
        )
        metrics.QUEUE_BACKLOG.labels(queue, kind).set(resp.stats.approximate_backlog_count)
        metrics.QUEUE_BACKLOG_AGE.labels(queue, kind).set(
            resp.stats.approximate_backlog_age.ToTimedelta().total_seconds()
        )


async def observe(client: Client, inv: Inventory, interval_s: float = 15.0) -> None:
    """:func:`observe_once` every ``interval_s`` until cancelled; a failed round is logged and
    the gauges keep their last values (``hybridops_observer_last_success_timestamp_seconds``
    says how old they are)."""
    while True:
        try:
            await observe_once(client, inv)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.warning("observe: %s: %s", type(err).__name__, err)
        await asyncio.sleep(interval_s)
