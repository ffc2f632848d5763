"""DR readiness: what one evaluation costs on the lab, whole and per check, so the cost of the
Schedule (every 30 minutes by default) is known. Prints figures; never passes or fails on them.

    .venv/bin/python bench/readiness.py [--runs 5]

Brings up a lab of its own (its own Temporal dev server, PostgreSQL onprem primary with azure
and gcp standbys, DNS, one base backup; no writer, no monitoring), starts the workers and the
site agents in this process, then:

* runs ``ReadinessWorkflow`` ``--runs`` times through the dev server (what ``hybridops ready``
  and the Schedule do): the wall time of one evaluation, median and max;
* times each reading the checks rest on (plan, assess, secrets, task queues, newest backup, WAL
  archive, drills, schedules, signals, the DNS API probe, the Terraform state locks) by
  calling its activity directly, as many times, and the pure evaluation of the checks on those
  readings; each check is then shown with the reading it needs (a check costs its reading:
  the verdicts themselves are computed in microseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.decide import DecideActivities
from activities.readiness import ReadinessActivities
from activities.sites import SiteActivities
from bench.lab import bench_lab
from drivers.lazy import Drivers
from hybridops.client import connect
from hybridops.constants import READINESS_ID_PREFIX, TaskQueue, WorkflowType
from hybridops.contracts.readiness import (
    BackupAgeInput,
    DnsProbeInput,
    DrillRecordInput,
    QueuesInput,
    ReadinessInput,
    ReadinessResult,
    SchedulesInput,
    SecretsInput,
    TerraformStateInput,
    WalContinuityInput,
)
from hybridops.contracts.sites import AssessInput, PlanInput
from hybridops.decision import signal_targets, topology_of
from hybridops.lab import Lab
from hybridops.lab.layout import LabPorts
from hybridops.readiness import ApiReadings, MoreReadings, evaluate, failover_request, queues_used
from workers.main import build_agent, build_workers

PORTS = LabPorts(net="127.98.251", pg=26432, dns=26353, temporal=27733, ui=28733)
"""The bench lab's addresses: apart from the demo lab's, the tests' and bench/failover.py's."""

READING_OF = {
    "topology": "assess",
    "credentials": "secrets",
    "credentials.dns_api": "dns_api",
    "credentials.cloud_api": "signals",
    "credentials.terraform_state": "tf_state",
    "temporal.queue": "queues",
    "temporal.schedules": "schedules",
    "backups.newest_age": "backup",
    "backups.wal_continuity": "wal",
    "drills": "drills",
    "decision": "signals",
}
"""A check id's beginning to the reading it rests on (the longest that matches); the rest rest
on the plan. ``decision.target`` rests on the assessment too (both are paid for)."""


def reading_of(check_id: str) -> str:
    found = [k for k in READING_OF if check_id == k or check_id.startswith(k + ".")]
    return READING_OF[max(found, key=len)] if found else "plan"


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} {max(values) * 1000:8.1f}"


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.perf_counter()
    out = await call()
    return time.perf_counter() - began, out


async def bench(lab: Lab, runs: int) -> None:
    inv = lab.inventory()
    client = await connect(inv.temporal)
    workers: list[Worker] = build_workers(client, inv, tuple(TaskQueue))
    workers += [build_agent(client, inv, site) for site in inv.sites]  # each site's agent
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        whole: list[float] = []
        result: ReadinessResult | None = None
        for _ in range(runs + 1):  # the first warms the worker's sandbox: not counted
            seconds, result = await timed(
                lambda: client.execute_workflow(
                    WorkflowType.READINESS.value,
                    ReadinessInput(),
                    id=f"{READINESS_ID_PREFIX}bench-{uuid.uuid4().hex[:8]}",
                    task_queue=inv.queue(TaskQueue.CONTROL),
                    result_type=ReadinessResult,
                )
            )
            whole.append(seconds)
        whole = whole[1:]
        assert result is not None

        drivers = Drivers(inv)
        sites, ready = SiteActivities(inv, drivers), ReadinessActivities(inv, drivers, client)
        decide = DecideActivities(inv, drivers)
        env = ActivityEnvironment()
        readings: dict[str, list[float]] = {}
        last: dict[str, Any] = {}
        plan = await env.run(sites.plan_sites, PlanInput())
        assessed = await env.run(sites.assess_sites, AssessInput(sites=[s.name for s in plan.sites]))
        request = failover_request(topology_of(plan, assessed.states))
        assert request is not None, "the bench lab has one primary"
        targets = signal_targets(request, plan.sites)
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "plan": lambda: env.run(sites.plan_sites, PlanInput()),
            "assess": lambda: env.run(sites.assess_sites, AssessInput(sites=[s.name for s in plan.sites])),
            "secrets": lambda: env.run(ready.check_secrets, SecretsInput()),
            "queues": lambda: env.run(ready.describe_queues, QueuesInput(queues=list(queues_used(plan)))),
            "backup": lambda: env.run(ready.newest_backup, BackupAgeInput()),
            "wal": lambda: env.run(ready.verify_wal_archive, WalContinuityInput()),
            "drills": lambda: env.run(ready.last_drill, DrillRecordInput()),
            "schedules": lambda: env.run(
                ready.describe_schedules, SchedulesInput(queue=inv.queue(TaskQueue.CONTROL))
            ),
            "signals": lambda: env.run(decide.gather_signals, targets),
            "dns_api": lambda: env.run(ready.probe_dns, DnsProbeInput()),
            "tf_state": lambda: env.run(ready.terraform_state, TerraformStateInput()),
        }
        for _ in range(runs):
            for name, call in calls.items():
                seconds, last[name] = await timed(call)
                readings.setdefault(name, []).append(seconds)
        pure: list[float] = []
        for _ in range(runs):
            began = time.perf_counter()
            evaluate(
                last["plan"],
                topology_of(last["plan"], last["assess"].states),
                last["secrets"],
                last["queues"],
                last["backup"],
                ReadinessInput(),
                datetime.now(UTC),
                more=MoreReadings(last["wal"], last["drills"], last["schedules"], last["signals"]),
                api=ApiReadings(last["dns_api"], last["tf_state"]),
            )
            pure.append(time.perf_counter() - began)
    finally:
        for w in workers:
            await w.shutdown()
        for t in tasks:
            t.cancel()

    print(
        f"{runs} evaluations, {os.cpu_count()} CPUs, Python {platform.python_version()}, lab placement"
        f" {inv.placement.value}"
    )
    print(f"{'':34} {'median ms':>8} {'max ms':>8}")
    print(f"{'one evaluation (ReadinessWorkflow)':34} {_ms(whole)}")
    for name, values in readings.items():
        print(f"{'  reading: ' + name:34} {_ms(values)}")
    print(f"{'  evaluating every check (pure)':34} {_ms(pure)}")
    print(f"verdict of the last run: {result.status.value}; {len(result.checks)} checks")
    print(f"{'check':40} {'status':8} {'rests on':10} {'median ms':>9}")
    for check in result.checks:
        reading = reading_of(check.id)
        cost = statistics.median(readings[reading]) * 1000
        print(f"{check.id:40} {check.status.value:8} {reading:10} {cost:9.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with bench_lab("readiness", PORTS) as lab:
        lab.up(temporal=True, worker=False, writer=False, monitoring=False)
        lab.ensure_backup()  # a healthy lab: every check can pass
        asyncio.run(bench(lab, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
