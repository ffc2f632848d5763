"""Benchmark of the alert receiver (``hybridops serve alerts``) under an alert storm.

Run as ``.venv/bin/python bench/alerts.py [--requests N] [--groups G] [--clients C]``. It
starts its own Temporal dev server (the venv's ``temporal``, in memory, on a free port) and the
receiver in this process on a free port, then fires notifications from several concurrent
aiohttp clients: each of G distinct incidents (alert groups) is sent N/G times, shuffled, so
most requests are duplicates, as in a storm of resends from several Alertmanagers.

Two phases, each with its own incidents: ``paced`` sends at a fixed rate (the target, 500
alerts/s by default), ``max`` as fast as the clients can. For each it prints throughput,
latency p50/p99 (all, and for the requests that started a run), the answers by result, and the
runs started as Temporal counts them beside the number of distinct incidents (they must be
equal: the exit status is 1 otherwise). It prints figures; it never asserts timings. The runs
(on a task queue no worker serves) are terminated at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from hybridops.alerts.receiver import ALERTS_PATH, AlertReceiver
from hybridops.alerts.routes import RoutesFile, incident_workflow_id, parse_routes
from hybridops.constants import TaskQueue

TOKEN = "bench-token-7f3a9c1e5b2d8046a1c3e5f7"
PHASES = ("warmup", "paced", "max")
"""``warmup`` is not reported: a fresh dev server's first starts are several times slower."""
ALERTNAME = "HybridOpsNoWritablePrimary"
TARGET_RATE = 500.0
"""Alerts a second the receiver should take on this 2-core machine..."""
TARGET_P99_MS = 50.0
"""...with a p99 latency under this."""
MAX_IN_FLIGHT = 64
"""The paced phase's cap on requests in flight (an open loop, bounded)."""


def log(message: str) -> None:
    print(f"# {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def route_name(phase: str) -> str:
    return f"bench-{phase}"


def routes() -> RoutesFile:
    """A route per phase (selected by a ``bench_phase`` label), so each phase's runs are
    counted apart."""
    return parse_routes(
        {
            "routes": [
                {
                    "name": route_name(phase),
                    "match": {"alertname": ALERTNAME, "bench_phase": phase},
                    "runbook": "failover",
                    "auto": False,
                }
                for phase in PHASES
            ]
        }
    )


def notification(phase: str, group: str, starts: datetime) -> bytes:
    """A version-4 webhook body (encoded once per incident: the clients only send bytes)."""
    labels = {"alertname": ALERTNAME, "severity": "critical", "site": "onprem", "bench_phase": phase}
    return json.dumps(
        {
            "version": "4",
            "groupKey": group,
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "hybridops",
            "groupLabels": {"alertname": ALERTNAME},
            "commonLabels": labels,
            "commonAnnotations": {"summary": "No writable PostgreSQL primary at any site"},
            "externalURL": "http://alertmanager:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {"summary": "No writable PostgreSQL primary at any site"},
                    "startsAt": starts.isoformat(),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph",
                    "fingerprint": "0123456789abcdef",
                }
            ],
        }
    ).encode()


@dataclass
class Phase:
    """One storm and what came of it."""

    name: str
    rate: float | None
    """Requests a second, or None: as fast as the clients go."""
    incidents: dict[str, bytes]
    """Workflow id expected per incident, and its notification body."""
    order: list[str]
    """Workflow ids in sending order (each incident many times)."""
    latencies_ms: list[float] = field(default_factory=list)
    started_ms: list[float] = field(default_factory=list)
    """Latencies of the requests that started a run."""
    answers: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    runs_counted: int | None = None
    """Runs on the phase's ids, as the visibility API counts them."""
    runs_described: int = 0
    """Expected ids that describe as existing runs."""


def make_phase(name: str, rate: float | None, requests: int, groups: int, tag: str) -> Phase:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    incidents: dict[str, bytes] = {}
    for g in range(groups):
        group = f'{{}}/{{severity="critical"}}:{{alertname="{ALERTNAME}", bench="{tag}-{name}-{g}"}}'
        starts = base + timedelta(seconds=g % 60)
        incidents[incident_workflow_id(route_name(name), group, starts)] = notification(name, group, starts)
    ids = list(incidents)
    order = [ids[i % groups] for i in range(requests)]
    random.Random(f"{tag}-{name}").shuffle(order)
    return Phase(name, rate, incidents, order)


async def fire(phase: Phase, url: str, clients: int) -> None:
    """Send the phase's storm from ``clients`` concurrent sessions."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) for _ in range(max(1, clients // 4))
    ]

    async def one(i: int, wf_id: str) -> None:
        session = sessions[i % len(sessions)]
        t = time.perf_counter()
        async with session.post(url, data=phase.incidents[wf_id], headers=headers) as resp:
            body = await resp.json()
        ms = (time.perf_counter() - t) * 1000
        phase.latencies_ms.append(ms)
        result = body.get("result") or f"http {resp.status}"
        phase.answers[result] += 1
        if result == "started":
            phase.started_ms.append(ms)

    t0 = time.perf_counter()
    try:
        if phase.rate is None:
            queue = iter(enumerate(phase.order))

            async def client() -> None:
                for i, wf_id in queue:
                    await one(i, wf_id)

            await asyncio.gather(*(client() for _ in range(clients)))
        else:
            gate = asyncio.Semaphore(MAX_IN_FLIGHT)
            tasks = []

            async def paced(i: int, wf_id: str) -> None:
                async with gate:
                    await one(i, wf_id)

            for i, wf_id in enumerate(phase.order):
                due = t0 + i / phase.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the open loop, not waiting for a condition
                tasks.append(asyncio.create_task(paced(i, wf_id)))
            await asyncio.gather(*tasks)
        phase.elapsed_s = time.perf_counter() - t0
    finally:
        for s in sessions:
            await s.close()


async def count_runs(client: Client, phase: Phase, queue: str) -> None:
    """Runs started for the phase, counted two ways: visibility, and describing each id."""
    sem = asyncio.Semaphore(32)

    async def exists(wf_id: str) -> bool:
        async with sem:
            try:
                await client.get_workflow_handle(wf_id).describe()
                return True
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise

    found = await asyncio.gather(*(exists(i) for i in phase.incidents))
    phase.runs_described = sum(found)
    prefix = f"alert-{route_name(phase.name)}-"
    query = f"TaskQueue = '{queue}' AND WorkflowId STARTS_WITH '{prefix}'"
    # Visibility is eventually consistent: poll until it agrees with describe, or 10 s pass.
    deadline = time.monotonic() + 10
    while True:
        total = (await client.count_workflows(query)).count
        if total >= phase.runs_described or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    phase.runs_counted = total


async def terminate_all(client: Client, ids: list[str]) -> int:
    sem = asyncio.Semaphore(32)

    async def one(wf_id: str) -> int:
        async with sem:
            try:
                await client.get_workflow_handle(wf_id).terminate("bench over")
                return 1
            except RPCError:
                return 0

    return sum(await asyncio.gather(*(one(i) for i in ids)))


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def report(phases: list[Phase], args: argparse.Namespace) -> None:
    print()
    print(
        f"Alert storm: {args.requests} requests over {args.groups} distinct incidents per phase,"
        f" {args.clients} concurrent clients"
    )
    cols = (
        f"{'phase':<8} {'alerts/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'start p50':>9} {'start p99':>9} {'incidents':>9} {'runs':>5} {'described':>9}"
    )
    print(cols)
    print("-" * len(cols))
    for p in phases:
        rate = len(p.latencies_ms) / p.elapsed_s if p.elapsed_s else None
        print(
            f"{p.name:<8} {_f(rate, '.0f'):>9} {_f(pct(p.latencies_ms, 50)):>8}"
            f" {_f(pct(p.latencies_ms, 99)):>8} {_f(max(p.latencies_ms, default=None)):>8}"
            f" {_f(pct(p.started_ms, 50)):>9} {_f(pct(p.started_ms, 99)):>9}"
            f" {len(p.incidents):>9} {_f(p.runs_counted, 'd'):>5} {p.runs_described:>9}"
        )
    print()
    for p in phases:
        pace = f"paced at {p.rate:g}/s" if p.rate else "as fast as the clients go"
        answers = ", ".join(f"{k} {v}" for k, v in sorted(p.answers.items()))
        print(f"  {p.name} ({pace}): {answers}")
    print(
        f"  target: {TARGET_RATE:g} alerts/s with p99 under {TARGET_P99_MS:g} ms (figures, not a"
        " pass/fail); runs must equal incidents."
    )
    print("  runs: counted by the visibility API; described: expected ids that exist as runs.")
    if args.warmup:
        print(
            f"  warm-up (not shown): {args.warmup} distinct incidents, one request each, before the phases."
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Machine: {os.cpu_count()} CPU(s), load average {load}, Python {platform.python_version()};"
        " clients, receiver and the Temporal dev server share it."
    )


async def bench(args: argparse.Namespace) -> list[Phase]:
    tag = uuid.uuid4().hex[:8]
    suffix = f"-bench-alerts-{tag}"
    queue = TaskQueue.CONTROL.value + suffix
    temporal_port = free_port()
    log(f"Temporal dev server on 127.0.0.1:{temporal_port} (in memory)")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        port=temporal_port,
        ui=False,
        data_converter=pydantic_data_converter,
    )
    phases: list[Phase] = []
    try:
        client = env.client
        # Every incident of the storm is a new run: the start budget is opened wide (a receiver
        # in production has alerts.starts_per_minute), so the figures are the receiver's own.
        receiver = AlertReceiver(client, routes(), TOKEN, queue_suffix=suffix, starts_per_minute=10**9)
        runner = web.AppRunner(receiver.app(), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}{ALERTS_PATH}"
        log(f"receiver on {url}; runs go to task queue {queue} (no worker)")
        try:
            for name in PHASES:
                rate = args.rate if name == "paced" else None
                requests, groups = (
                    (args.warmup, args.warmup) if name == "warmup" else (args.requests, args.groups)
                )
                if not requests:
                    continue
                phase = make_phase(name, rate, requests, groups, tag)
                log(f"phase {name}: {requests} requests, {groups} incidents")
                await fire(phase, url, args.clients)
                await count_runs(client, phase, queue)
                phases.append(phase)
        finally:
            await runner.cleanup()
            ids = [i for p in phases for i in p.incidents]
            n = await terminate_all(client, ids)
            log(f"terminated {n} runs")
    finally:
        await env.shutdown()
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000, help="requests per phase (default 5000)")
    parser.add_argument("--groups", type=int, default=200, help="distinct incidents per phase (default 200)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument(
        "--warmup", type=int, default=200, help="distinct incidents sent once before measuring (default 200)"
    )
    parser.add_argument(
        "--rate", type=float, default=TARGET_RATE, help="the paced phase's rate (default 500/s)"
    )
    args = parser.parse_args(argv)
    if min(args.groups, args.clients) < 1 or args.requests < args.groups or args.rate <= 0 or args.warmup < 0:
        parser.error("need groups >= 1, requests >= groups, clients >= 1, rate > 0, warmup >= 0")
    phases: list[Phase] = asyncio.run(bench(args))
    report([p for p in phases if p.name != "warmup"], args)
    wrong = [
        p.name for p in phases if p.runs_described != len(p.incidents) or p.runs_counted != len(p.incidents)
    ]
    if wrong:
        print(f"runs started differ from distinct incidents in: {', '.join(wrong)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
