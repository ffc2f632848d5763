"""The HybridOps worker: one process serving one or more task queues.

The control queue hosts the workflows and, since local activities run on the worker of the
workflow, every activity whose driver this process holds. The other queues host the
activities of their capability (DESIGN.md rule 7).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.bootstrap import BootstrapActivities
from activities.burst import BurstActivities
from activities.decide import DecideActivities
from activities.dns import make_dns_driver
from activities.drill import DrillActivities
from activities.failback import FailbackActivities
from activities.failover import FailoverActivities
from activities.infra import make_infra_driver
from activities.lease import LeaseActivities
from activities.postgres import make_postgres_driver
from hybridops.constants import TaskQueue
from hybridops.inventory import Inventory
from workflows.bootstrap import BootstrapWorkflow
from workflows.burst import BurstWorkflow
from workflows.drill import DrillWorkflow
from workflows.failback import FailbackWorkflow
from workflows.failover import FailoverWorkflow
from workflows.identity import IdentityInterceptor
from workflows.lease import TopologyLeaseWorkflow

log = logging.getLogger(__name__)

WORKFLOWS = [
    FailoverWorkflow,
    FailbackWorkflow,
    DrillWorkflow,
    BurstWorkflow,
    BootstrapWorkflow,
    TopologyLeaseWorkflow,
]


def build_activities(inventory: Inventory, client: Client | None) -> FailoverActivities:
    """The activities with the drivers the inventory chooses."""
    return FailoverActivities(
        inventory,
        make_postgres_driver(inventory),
        make_dns_driver(inventory.dns),
        make_infra_driver(inventory.infra),
        client,
    )


def build_workers(
    client: Client,
    inventory: Inventory,
    queues: Sequence[TaskQueue] = tuple(TaskQueue),
    activities: Sequence[Callable[..., Any]] | None = None,
) -> list[Worker]:
    """Workers for ``queues``. ``activities`` replaces the runbook's (tests do that)."""
    if activities is not None:
        acts = list(activities)
    else:
        acts = build_activities(inventory, client).all() + DecideActivities(inventory).all()
        acts += FailbackActivities(inventory, make_postgres_driver(inventory), client).all()
        acts += DrillActivities.build(inventory, client).all()
        acts += BurstActivities(
            inventory, make_infra_driver(inventory.infra), make_dns_driver(inventory.dns), client
        ).all()
        acts += BootstrapActivities(inventory, client).all()
        acts += LeaseActivities(inventory, client).all()
    workers = []
    for queue in queues:
        workers.append(
            Worker(
                client,
                task_queue=inventory.queue(queue),
                workflows=WORKFLOWS if queue == TaskQueue.CONTROL else [],
                activities=acts,
                # Hands the caller's identity (a start's, an approval's) to the workflow.
                interceptors=[IdentityInterceptor()],
            )
        )
    return workers


async def run_workers(client: Client, inventory: Inventory, queues: Sequence[TaskQueue]) -> None:
    """Serve ``queues`` until cancelled."""
    workers = build_workers(client, inventory, queues)
    log.info("worker serving %s", ", ".join(q.value for q in queues))
    await asyncio.gather(*(w.run() for w in workers))
