"""The HybridOps worker: one process serving one or more task queues.

Each queue's worker registers the activities whose step runs on that queue (the step table,
workflows/steps.py), so a worker serving only ``hybridops-dns`` registers the DNS steps and
builds no infra or backup driver (DESIGN.md rule 7; drivers are built on first use,
drivers/lazy.py). The control queue hosts the workflows and the control steps (plans,
checkpoints, evidence, the lease); with the inventory's placement ``colocated`` every step runs
as a local activity on the workflow's worker, so the control worker then registers them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.bootstrap import BootstrapActivities
from activities.burst import BurstActivities
from activities.common import activity_name
from activities.decide import DecideActivities
from activities.drill import DrillActivities
from activities.failback import FailbackActivities
from activities.failover import FailoverActivities
from activities.lease import LeaseActivities
from activities.readiness import ReadinessActivities
from activities.sites import SiteActivities
from drivers.lazy import Drivers, Part
from drivers.postgres.liveness import LivenessCollector, LivenessProbe
from hybridops import metrics
from hybridops.constants import ActivityName, TaskQueue
from hybridops.errors import ConfigError
from hybridops.inventory import Inventory, Placement
from hybridops.policy import load_policy
from workflows.identity import IdentityInterceptor
from workflows.metrics import RunMetricsInterceptor
from workflows.registry import WORKFLOWS, workflow_runner
from workflows.steps import STEPS

log = logging.getLogger(__name__)

QUEUE_OF: dict[ActivityName, TaskQueue] = {name: step.queue for name, step in STEPS.items()}
"""Every activity's task queue, by name: the step table's (the lease's steps included)."""


WARM: dict[TaskQueue, tuple[Part, ...]] = {
    TaskQueue.CONTROL: (Part.POSTGRES, Part.DNS, Part.SIGNALS, Part.TOPOLOGY),
    TaskQueue.DB: (Part.POSTGRES, Part.DNS, Part.TOPOLOGY),
    TaskQueue.DNS: (Part.POSTGRES, Part.DNS, Part.TOPOLOGY),
    TaskQueue.INFRA: (Part.INFRA,),
}
"""The drivers a worker builds when it starts, per queue it serves: those its queue's steps of
a failover call (plan and signals; assess and promotion's rules; the cutover's rules; prepare
and repoint). The backup driver is built on first use (restore mode, drills). With placement
``colocated`` the control worker runs every step, so it warms them all."""
AGENT_WARM = (Part.POSTGRES, Part.TOPOLOGY)
"""A site agent's: its own server's driver, and the reader its promotion's rules use (it holds
no DNS credentials)."""


def warm_parts(inventory: Inventory, queues: Sequence[TaskQueue]) -> list[Part]:
    """The drivers a worker serving ``queues`` builds at start (:data:`WARM`)."""
    if inventory.placement == Placement.COLOCATED and TaskQueue.CONTROL in queues:
        queues = tuple(TaskQueue)
    return list(dict.fromkeys(p for q in queues for p in WARM.get(q, ())))


def every_activity(
    inventory: Inventory,
    client: Client | None,
    local_sites: frozenset[str] | None = None,
    drivers: Drivers | None = None,
) -> list[Callable[..., Any]]:
    """Every activity of every runbook, sharing one set of drivers (``drivers``, else built
    on first use); ``local_sites``: the sites whose server and files this process controls
    (None: all)."""
    drivers = drivers or Drivers(inventory, local_sites=local_sites)
    return [
        *SiteActivities(inventory, drivers).all(),
        *FailoverActivities(inventory, drivers, client).all(),
        *DecideActivities(inventory, drivers).all(),
        *FailbackActivities(inventory, drivers, client).all(),
        *DrillActivities(inventory, drivers, client).all(),
        *BurstActivities(inventory, drivers, client).all(),
        *BootstrapActivities(inventory, drivers, client).all(),
        *LeaseActivities(inventory, drivers, client).all(),
        *ReadinessActivities(inventory, drivers, client).all(),
    ]


def serves(queue: TaskQueue, placement: Placement, name: str) -> bool:
    """Whether the worker of ``queue`` registers the activity ``name``."""
    try:
        home = QUEUE_OF[ActivityName(name)]
    except (ValueError, KeyError):
        raise ConfigError(
            f"activity {name!r} has no step in workflows/steps.py: no queue serves it"
        ) from None
    return home == queue or (queue == TaskQueue.CONTROL and placement == Placement.COLOCATED)


def registrations(
    inventory: Inventory,
    queues: Sequence[TaskQueue],
    activities: Sequence[Callable[..., Any]],
) -> dict[TaskQueue, list[Callable[..., Any]]]:
    """The activities each queue's worker registers, out of ``activities``; a name given twice
    is an error that names it."""
    names = [activity_name(fn) for fn in activities]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"activities registered twice: {twice}")
    return {
        queue: [
            fn for fn, name in zip(activities, names, strict=True) if serves(queue, inventory.placement, name)
        ]
        for queue in queues
    }


STICKY_TIMEOUT = timedelta(seconds=3)
"""How long a run's next workflow task waits for the worker that has the run cached (its sticky
queue) before any control worker takes it, replaying the history. The SDK's default, 10 s, is
10 s more of a failover's RTO when that worker died mid-run; a replay costs milliseconds."""


def local_sites_of(inventory: Inventory) -> frozenset[str] | None:
    """The sites whose files a worker of the shared queues controls: all of them when steps run
    colocated (one host), none under placement ``queues`` (each site's agent does)."""
    return None if inventory.placement == Placement.COLOCATED else frozenset()


def agent_activities(inventory: Inventory, site: str, client: Client | None) -> list[Callable[..., Any]]:
    """What the agent of ``site`` registers: the steps that touch a server's process or files
    (``on_site`` in the step table), with drivers that control ``site`` alone."""
    inventory.site(site)
    on_site = {str(name) for name, step in STEPS.items() if step.on_site}
    drivers = Drivers(inventory, local_sites=frozenset({site}))
    drivers.warm(AGENT_WARM)
    return [fn for fn in every_activity(inventory, client, drivers=drivers) if activity_name(fn) in on_site]


def build_agent(client: Client, inventory: Inventory, site: str) -> Worker:
    """The site agent of ``site``: a worker on its own queue, next to its server."""
    return Worker(
        client,
        task_queue=inventory.site_queue(site),
        activities=agent_activities(inventory, site, client),
        interceptors=[IdentityInterceptor()],
    )


def build_workers(
    client: Client,
    inventory: Inventory,
    queues: Sequence[TaskQueue] = tuple(TaskQueue),
    activities: Sequence[Callable[..., Any]] | None = None,
) -> list[Worker]:
    """Workers for ``queues``. ``activities`` replaces the runbooks' (tests do that); each is
    registered on its step's queue all the same."""
    if activities is not None:
        acts = list(activities)
    else:
        # Built now, not in the first step (a failover's RTO pays for every first).
        drivers = Drivers(inventory, local_sites=local_sites_of(inventory))
        drivers.warm(warm_parts(inventory, queues))
        acts = every_activity(inventory, client, drivers=drivers)
    return [
        Worker(
            client,
            task_queue=inventory.queue(queue),
            workflows=WORKFLOWS if queue == TaskQueue.CONTROL else [],
            workflow_runner=workflow_runner(),
            activities=registered,
            sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
            # Hands the caller's identity (a start's, an approval's) to the workflow.
            interceptors=[IdentityInterceptor(), RunMetricsInterceptor()],
        )
        for queue, registered in registrations(inventory, queues, acts).items()
    ]


async def run_workers(
    client: Client, inventory: Inventory, queues: Sequence[TaskQueue], sites: Sequence[str] = ()
) -> None:
    """Serve ``queues``, and be the agent of each of ``sites``, until cancelled."""
    workers = build_workers(client, inventory, queues) if queues else []
    workers += [build_agent(client, inventory, site) for site in sites]
    log.info(
        "worker serving %s",
        ", ".join([q.value for q in queues] + [f"{inventory.site_queue(s)} (agent of {s})" for s in sites]),
    )
    await asyncio.gather(*(w.run() for w in workers), *(p.run() for p in observers(inventory, sites)))


def observers(inventory: Inventory, sites: Sequence[str]) -> list[LivenessProbe]:
    """An agent is an observer of every site's server (drivers/postgres/liveness.py), its
    views served at the process's ``/metrics/liveness``."""
    if not sites:
        return []
    detection = load_policy(inventory.policy).detection
    probes = [LivenessProbe(inventory, site, detection) for site in sites]
    metrics.LIVENESS_REGISTRY.register(LivenessCollector(probes))
    return probes
