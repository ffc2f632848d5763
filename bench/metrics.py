"""Benchmark of a worker's metrics endpoint: its size and the time a scrape takes.

Run as ``.venv/bin/python bench/metrics.py [--scrapes N]``. It starts its own Temporal dev
server (the venv's ``temporal``), a worker process's metrics as ``python -m workers
--metrics-listen`` builds them (the SDK runtime's Prometheus exporter on loopback, appended to
HybridOps' registry), workers on all four task queues polling, one run of each runbook's end
recorded (what the evidence step records: status, RTO, RPO, a dozen step durations), and the
control worker's observer having read Temporal once. Then it scrapes the endpoint N times, one
after the other, as Prometheus would, and prints the body's size, its series count, and the
scrape latency (median, p90, p99, max), with the time spent rendering HybridOps' own part and
reading the SDK's apart. Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import generate_latest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from hybridops import metrics
from hybridops.constants import Runbook
from hybridops.contracts.base import RunStatus
from hybridops.contracts.evidence import (
    BootstrapDetails,
    BurstDetails,
    Details,
    DrillDetails,
    Evidence,
    EvidenceStep,
    FailbackDetails,
    FailoverDetails,
    Rpo,
    RpoMethod,
    Rto,
    RtoMethod,
)
from hybridops.inventory import Inventory, parse_inventory
from workers.main import build_workers
from workers.observe import observe_once

STEPS = 12
"""Steps per run recorded: a failover has about a dozen."""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def inventory(suffix: str) -> Inventory:
    return parse_inventory(
        {
            "task_queue_suffix": suffix,
            "placement": "queues",
            "sites": {
                "onprem": {"host": "127.0.0.1", "data_dir": "/nonexistent/onprem"},
                "azure": {"host": "127.0.0.2", "cloud": "azure", "data_dir": "/nonexistent/azure"},
                "gcp": {"host": "127.0.0.3", "cloud": "gcp", "data_dir": "/nonexistent/gcp"},
            },
            "dns": {"zone": "example.test", "record": "db.example.test"},
        }
    )


def record_runs() -> None:
    """One ended run of each runbook, as its evidence step records it."""
    details: dict[Runbook, Details] = {
        Runbook.FAILOVER: FailoverDetails(fenced=["onprem"]),
        Runbook.FAILBACK: FailbackDetails(),
        Runbook.DRILL: DrillDetails(passed=True),
        Runbook.BURST: BurstDetails(cost_estimate=1.5),
        Runbook.BOOTSTRAP: BootstrapDetails(),
    }
    t0 = datetime.now(UTC)
    for runbook, detail in details.items():
        steps = [
            EvidenceStep(
                name=f"step_{i}", started_at=t0, ended_at=t0 + timedelta(seconds=i), seconds=float(i)
            )
            for i in range(STEPS)
        ]
        metrics.record_run(
            Evidence(
                runbook=runbook,
                workflow_id=f"bench-{runbook.value}",
                run_id=uuid.uuid4().hex,
                status=RunStatus.SUCCEEDED,
                started_at=t0,
                ended_at=t0 + timedelta(seconds=60),
                requested_by="bench",
                reason="bench",
                input={},
                steps=steps,
                rto=Rto(method=RtoMethod.OUTAGE, seconds=12.5, objective_s=900),
                rpo=Rpo(method=RpoMethod.LEDGER, seconds=0.2, objective_s=300),
                details=detail,
            )
        )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def bench(scrapes: int) -> None:
    sdk_url = metrics.install_sdk_metrics()  # before any client: the runtime with its exporter
    port = metrics.free_loopback_port()
    endpoint = metrics.MetricsEndpoint(f"127.0.0.1:{port}", sdk_url)
    serving = asyncio.create_task(endpoint.serve())
    temporal = Path(sys.executable).parent / "temporal"
    log("Temporal dev server")
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=str(temporal)) as env:
        client = await Client.connect(
            env.client.service_client.config.target_host, data_converter=pydantic_data_converter
        )
        inv = inventory(f"-bench-{uuid.uuid4().hex[:6]}")
        workers = build_workers(client, inv)
        runs = [asyncio.create_task(w.run()) for w in workers]
        try:
            record_runs()
            await observe_once(client, inv)
            url = f"http://127.0.0.1:{port}/metrics"
            body = b""
            for _ in range(50):  # until the SDK's exporter has every queue's pollers
                body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
                if body.count(b"temporal_num_pollers{") >= 4:
                    break
                await asyncio.sleep(0.1)
            latencies: list[float] = []
            for _ in range(scrapes):
                t = time.perf_counter()
                body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
                latencies.append((time.perf_counter() - t) * 1000)
            own = [_timed(lambda: generate_latest(metrics.REGISTRY)) for _ in range(scrapes)]
            sdk = [_timed(lambda: urllib.request.urlopen(sdk_url, timeout=5).read()) for _ in range(scrapes)]
        finally:
            for w in workers:
                await w.shutdown()
            for r in runs:
                r.cancel()
    serving.cancel()
    lines = [ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")]
    ours = [ln for ln in lines if ln.startswith("hybridops_")]
    print(f"# Worker metrics endpoint ({platform.processor() or platform.machine()}, {scrapes} scrapes)")
    print(
        f"body: {len(body) / 1024:.1f} KiB, {len(lines)} series"
        f" ({len(ours)} hybridops_*, {len(lines) - len(ours)} SDK)"
    )
    print(
        f"scrape latency ms: median {statistics.median(latencies):.2f}, p90 {pct(latencies, 90):.2f},"
        f" p99 {pct(latencies, 99):.2f}, max {max(latencies):.2f}"
    )
    print(f"  HybridOps' registry rendered: median {statistics.median(own):.2f} ms")
    print(f"  the SDK's exporter read:       median {statistics.median(sdk):.2f} ms")


def _timed(fn: object) -> float:
    assert callable(fn)
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scrapes", type=int, default=200, help="scrapes to time (default 200)")
    args = parser.parse_args(argv)
    if args.scrapes < 1:
        parser.error("--scrapes: at least 1")
    asyncio.run(bench(args.scrapes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
