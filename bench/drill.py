"""Drill and failback figures on a lab of its own: restore time against database size, and the
failback switchover's write pause. Prints figures; never passes or fails on them.

    .venv/bin/python bench/drill.py [--sizes 16,64,256] [--cycles 2]

For each size (MB of data in the primary), a ``DrillWorkflow`` takes a base backup, restores
it into a scratch server and verifies it: the bench prints the backup, fetch, recovery and RTO
times. Then, with the writer committing every few milliseconds, it fails over to azure (onprem
killed) and fails back with ``FailbackWorkflow``, ``--cycles`` times: the write pause as the
runbook measured it (writes paused until a write through DNS lands at home) and as the writer
saw it (its longest gap between two acknowledged writes).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import psycopg

from hybridops.client import connect
from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.base import TargetChoice
from hybridops.contracts.drill import DrillInput, DrillResult
from hybridops.contracts.failback import FailbackInput, FailbackResult
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.inventory import HOME_ENV, Inventory
from hybridops.lab import Lab, LabPorts
from hybridops.lab.processes import wait_until
from hybridops.workload import read_ledger
from workers.main import build_workers

PORTS = LabPorts(net="127.80.0", pg=35432, dns=35353, temporal=37233, ui=38233)
"""Apart from the demo lab (127.77.0.x), the failover bench (127.79.0.x) and the tests."""


def log(message: str) -> None:
    print(f"# {message}", flush=True)


def sql(lab: Lab, statement: str, dbname: str = "app") -> Any:
    with psycopg.connect(
        host=lab.ip("onprem"), port=lab.ports.pg, user="postgres", dbname=dbname, autocommit=True
    ) as conn:
        cur = conn.execute(statement)
        return cur.fetchone() if cur.description else None


def grow_to(lab: Lab, megabytes: int) -> float:
    """Pad the primary's database to about ``megabytes``; returns its size in MB. Also a fresh
    row in the writer's table, so the drill has an RPO to measure."""
    sql(lab, "CREATE TABLE IF NOT EXISTS bench_pad (id bigserial PRIMARY KEY, pad text NOT NULL)")
    while True:
        (size,) = sql(lab, "SELECT pg_database_size(current_database())")
        if size >= megabytes * 1024 * 1024:
            break
        rows = max(1000, min(50_000, (megabytes * 1024 * 1024 - size) // 1100))
        sql(
            lab,
            f"INSERT INTO bench_pad (pad) SELECT repeat(md5(g::text), 31) FROM generate_series(1, {rows}) g",
        )
    sql(lab, "INSERT INTO hybridops_workload (seq) SELECT coalesce(max(seq), 0) + 1 FROM hybridops_workload")
    return float(size) / 1024 / 1024


async def drills(lab: Lab, inv: Inventory, sizes: list[int]) -> list[dict[str, Any]]:
    client = await connect(inv.temporal)
    rows = []
    for mb in sizes:
        actual = await asyncio.to_thread(grow_to, lab, mb)
        log(f"drill at {actual:.0f} MB")
        handle = await client.start_workflow(
            WorkflowType.DRILL.value,
            DrillInput(take_backup_first=True, requested_by="bench/drill.py"),
            id=f"bench-drill-{mb}-{uuid.uuid4().hex[:6]}",
            task_queue=inv.queue(TaskQueue.CONTROL),
            result_type=DrillResult,
        )
        r: DrillResult = await handle.result()
        steps = {s.name: (s.ended_at - s.started_at).total_seconds() for s in r.steps if s.ended_at}
        rows.append(
            {
                "size_mb": actual,
                "backup_s": steps.get("take_backup"),
                "fetch_s": r.restore.fetch_seconds if r.restore else None,
                "restore_step_s": steps.get("restore_backup"),
                "recovery_s": steps.get("start_scratch"),
                "rto_s": r.rto_seconds,
                "rpo_s": r.rpo_seconds,
                "passed": r.passed,
            }
        )
    return rows


async def cycles(lab: Lab, inv: Inventory, n: int) -> list[dict[str, Any]]:
    client = await connect(inv.temporal)
    rows = []
    for i in range(1, n + 1):
        if i > 1:
            log("lab reset")
            await asyncio.to_thread(lab.stop_code)
            await asyncio.to_thread(lab.reset)
        lab.start_writer()
        await asyncio.to_thread(
            wait_until, "the writer", lambda: lab.ledger.exists() and len(read_ledger(lab.ledger)) >= 200, 60
        )
        log(f"cycle {i}: failover to azure")
        at = lab.break_site("onprem")
        fo = await client.execute_workflow(
            WorkflowType.FAILOVER.value,
            FailoverInput(target=TargetChoice.AZURE, incident_started_at=at, requested_by="bench/drill.py"),
            id=f"bench-failover-{i}-{uuid.uuid4().hex[:6]}",
            task_queue=inv.queue(TaskQueue.CONTROL),
            result_type=FailoverResult,
        )
        log(f"cycle {i}: failback home")
        t0 = time.perf_counter()
        fb: FailbackResult = await client.execute_workflow(
            WorkflowType.FAILBACK.value,
            FailbackInput(require_approval=False, requested_by="bench/drill.py"),
            id=f"bench-failback-{i}-{uuid.uuid4().hex[:6]}",
            task_queue=inv.queue(TaskQueue.CONTROL),
            result_type=FailbackResult,
        )
        wall = time.perf_counter() - t0
        paused = fb.paused_at
        assert paused is not None, fb.error

        def home_writes(since: Any = paused) -> bool:
            return any(a.site == "onprem" and a.acked_at > since for a in read_ledger(lab.ledger))

        await asyncio.to_thread(wait_until, "writes at home", home_writes, 30)
        # The writer's view: from its last acknowledged write before the pause on.
        ledger = read_ledger(lab.ledger)
        before = [a for a in ledger if a.acked_at < paused]
        acks = before[-1:] + [a for a in ledger if a.acked_at >= paused]
        slowest = max(
            ((s.name, (s.ended_at - s.started_at).total_seconds()) for s in fb.steps if s.ended_at),
            key=lambda x: x[1],
            default=("-", 0.0),
        )
        gap = max(
            ((b.acked_at - a.acked_at).total_seconds() for a, b in itertools.pairwise(acks)), default=None
        )
        rows.append(
            {
                "failover_rto_s": fo.rto_seconds,
                "failover_lost": fo.rpo.transactions_lost,
                "failback_wall_s": wall,
                "rejoin_s": fb.rejoin_seconds,
                "switchover_s": fb.switchover_seconds,
                "write_pause_s": fb.write_pause_seconds,
                "writer_gap_s": gap,
                "slowest": f"{slowest[0]} {slowest[1]:.2f}s",
            }
        )
    return rows


def fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3f}{unit}"
    return f"{x}{unit}"


def table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    widths = [max(len(h), 10) for _, h in columns]
    print("  ".join(h.rjust(w) for (_, h), w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(fmt(r.get(k)).rjust(w) for (k, _), w in zip(columns, widths, strict=True)))


async def run(
    lab: Lab, inv: Inventory, sizes: list[int], n: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    client = await connect(inv.temporal)
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, inv):
            await stack.enter_async_context(worker)
        restore_rows = await drills(lab, inv, sizes)
        await asyncio.to_thread(sql, lab, "DROP TABLE IF EXISTS bench_pad")
        cycle_rows = await cycles(lab, inv, n)
    return restore_rows, cycle_rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="16,64,256", help="database sizes in MB (default 16,64,256)")
    parser.add_argument("--cycles", type=int, default=2, help="failover + failback cycles (default 2)")
    args = parser.parse_args()
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error("--sizes: comma-separated whole numbers of MB")
    if len(sizes) < 1 or args.cycles < 1:
        parser.error("--sizes and --cycles: at least one")
    tmp = Path(tempfile.mkdtemp(prefix="hybridops-bench-drill-", dir="/tmp"))
    tmp.chmod(0o755)
    (tmp / "home").mkdir()
    os.environ[HOME_ENV] = str(tmp / "home")
    lab = Lab(tmp / "lab", PORTS, queue_suffix=f"-bench-drill-{uuid.uuid4().hex[:6]}")
    os.environ.update(lab.env())
    try:
        log(f"lab up in {lab.root}")
        inv = lab.up(temporal=True, worker=False, writer=False, monitoring=False)
        inv = inv.model_copy(update={"output_dir": tmp / "output"})
        restore_rows, cycle_rows = asyncio.run(run(lab, inv, sizes, args.cycles))
    finally:
        log("lab down")
        try:
            lab.down()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    table(
        "Restore time against database size (DrillWorkflow: backup, restore, recovery to usable)",
        restore_rows,
        [
            ("size_mb", "size MB"),
            ("backup_s", "backup s"),
            ("fetch_s", "fetch s"),
            ("restore_step_s", "restore s"),
            ("recovery_s", "recovery s"),
            ("rto_s", "RTO s"),
            ("rpo_s", "RPO s"),
            ("passed", "passed"),
        ],
    )
    if len(restore_rows) >= 2 and restore_rows[0]["rto_s"] and restore_rows[0]["size_mb"]:
        first, last = restore_rows[0], restore_rows[-1]
        per_mb = (last["rto_s"] - first["rto_s"]) / max(last["size_mb"] - first["size_mb"], 1e-9)
        ratio, more = last["rto_s"] / first["rto_s"], last["size_mb"] / first["size_mb"]
        print(
            f"  RTO grows {per_mb * 1000:.1f} ms per MB between {first['size_mb']:.0f} and"
            f" {last['size_mb']:.0f} MB (ratio {ratio:.2f} for {more:.1f}x the data)"
        )
    table(
        "Failover then failback, writer running (FailbackWorkflow without approval)",
        cycle_rows,
        [
            ("failover_rto_s", "failover RTO"),
            ("failover_lost", "lost"),
            ("rejoin_s", "rejoin s"),
            ("switchover_s", "switchover"),
            ("write_pause_s", "pause s"),
            ("writer_gap_s", "writer gap"),
            ("failback_wall_s", "failback s"),
            ("slowest", "slowest step"),
        ],
    )
    pauses = [r["write_pause_s"] for r in cycle_rows if r["write_pause_s"] is not None]
    if pauses:
        print(f"  write pause median {statistics.median(pauses):.3f} s over {len(pauses)} cycle(s)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nMachine: {os.cpu_count()} CPU(s), load average {load}, Python {platform.python_version()}.")
    return 0 if all(r["passed"] for r in restore_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
