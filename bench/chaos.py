"""Chaos bench (issue 9, "Never two writers"): randomized kills across the runbooks.

Run as ``.venv/bin/python bench/chaos.py [--runs N] [--seed S] [--budget-s B]``. It brings up
its own lab (its own loopback addresses, ports, temp directory and Temporal dev server on
SQLite, so it never meets the demo lab), and for each run, chosen by a seeded RNG:

* a runbook: ``failover`` (onprem killed, then the run) or ``failback`` (a failover first,
  then the failback back home);
* one kill at a random moment of the run: the worker (SIGKILL, restarted at once), a database
  server (SIGKILL, started again a second later, as a host reboots) or the DNS API (moto
  frozen with SIGSTOP for three seconds, then let go).

A sampler reads every server every 20 ms through each run. After each run the lab is read
from the servers: exactly one writable, DNS at it, at most one new timeline, acknowledged
writes lost against those the evidence counts. It prints a line per run and the totals:
runs, completed, writable-primary violations (must be 0), lost writes against counted, time
per run. It stops by itself: after ``--runs`` runs or once ``--budget-s`` is spent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from hybridops.constants import Runbook
from hybridops.contracts.base import RunStatus, TargetChoice
from hybridops.contracts.failback import FailbackInput
from hybridops.contracts.failover import FailoverInput
from hybridops.inventory import HOME_ENV, Inventory, write_inventory
from hybridops.lab import Lab, LabPorts
from hybridops.workload import read_ledger
from tests.lab.chaos import (
    WorkerKeeper,
    assert_one_writer,
    finish,
    freeze_dns,
    highest_timeline,
    reboot_site,
    start_run,
    thaw_dns,
)
from tests.lab.sampler import WritableSampler

NET = "127.78.0"
"""The bench lab's loopback /24: apart from the demo lab's (127.77.0.x) and the other benches'.
Temporal and its UI take free ports on 127.0.0.1."""
KILLS = ("worker", "server", "dns")
RUNBOOKS = (Runbook.FAILOVER, Runbook.FAILBACK)
KILL_WINDOW_S = {Runbook.FAILOVER: 2.0, Runbook.FAILBACK: 5.0}
"""A kill lands uniformly within this many seconds of the run's start (about a run's length
here, so some land after the end and kill nothing that matters: that is counted too)."""
DNS_OUTAGE_S = 3.0
SERVER_DOWN_S = 1.0
RUN_TIMEOUT_S = 150.0
WARM_WRITES = 50


@dataclass
class Result:
    n: int
    runbook: Runbook
    kill: str
    victim: str
    at_s: float
    status: str = "-"
    seconds: float = 0.0
    instants: int = 0
    violations: int = 0
    """Sampled instants with two or more writable servers."""
    end_error: str = ""
    """The end-of-run check that failed (one writer, DNS at it, one promotion, lost writes)."""
    lost: int = 0
    counted: int = 0
    writer: str = "-"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _writes_on(lab: Lab, site: str, at_least: int = WARM_WRITES, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        acks = read_ledger(lab.ledger) if lab.ledger.exists() else []
        if sum(1 for a in acks if a.site == site) >= at_least:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no {at_least} acknowledged writes on {site} within {timeout:.0f} s")


async def _kill(lab: Lab, workers: WorkerKeeper, kind: str, victim: str, delay: float) -> None:
    await asyncio.sleep(delay)
    if kind == "worker":
        workers.kill()
    elif kind == "server":
        lab.kill_site(victim)
        await asyncio.sleep(SERVER_DOWN_S)
        await asyncio.to_thread(reboot_site, lab, victim)
    else:
        freeze_dns(lab)
        try:
            await asyncio.sleep(DNS_OUTAGE_S)
        finally:
            thaw_dns(lab)


def _inventory(lab: Lab, out: Path) -> Inventory:
    inv = lab.inventory().model_copy(update={"output_dir": out})
    write_inventory(inv, lab.root / "inventory.yaml")
    return inv


async def one_run(client: Client, lab: Lab, out: Path, res: Result, base: str) -> None:
    await asyncio.to_thread(lab.reset)  # it runs asyncio itself (the DNS record)
    lab.queue_suffix = f"{base}-r{res.n}"  # a run a previous one left behind never meets this one
    inv = _inventory(lab, out)
    workers = WorkerKeeper(lab)
    workers.start()
    runs = []
    began = time.monotonic()
    try:
        with WritableSampler(lab) as sampler:
            lab.start_writer()
            await _writes_on(lab, "onprem")
            start_tl = await asyncio.to_thread(highest_timeline, lab)
            at = lab.break_site("onprem")
            failover_in = FailoverInput(target=TargetChoice.AZURE, incident_started_at=at)
            if res.runbook == Runbook.FAILBACK:
                first = await finish(
                    await start_run(client, inv, Runbook.FAILOVER, failover_in), Runbook.FAILOVER
                )
                runs.append(first)
                if first.status != RunStatus.SUCCEEDED:
                    raise RuntimeError(f"the failover before the failback {first.status}: {first.error}")
                await _writes_on(lab, "azure")
                start_tl = await asyncio.to_thread(highest_timeline, lab)
                arg: Any = FailbackInput(require_approval=False)
            else:
                arg = failover_in
            began = time.monotonic()
            handle: WorkflowHandle[Any, Any] = await start_run(client, inv, res.runbook, arg)
            chaos = asyncio.create_task(_kill(lab, workers, res.kill, res.victim, res.at_s))
            try:
                run = await finish(handle, res.runbook, timeout=RUN_TIMEOUT_S)
            except AssertionError as err:  # stuck: end it, count it
                res.status, res.end_error = "stuck", str(err)
                await handle.terminate("chaos bench: stuck")
                return
            finally:
                await chaos  # a DNS outage or a reboot always ends
            runs.append(run)
            res.status = run.status
        res.instants, res.violations = sampler.instants, len(sampler.violations)
        res.seconds = round(time.monotonic() - began, 2)
        try:
            out_ = await asyncio.to_thread(assert_one_writer, lab, inv, runs, start_tl, None)
            res.lost, res.counted, res.writer = out_.lost, out_.counted, out_.writer
        except AssertionError as err:
            res.end_error = str(err)
    finally:
        workers.stop()
        lab.stop_code()


async def bench(lab: Lab, runs: int, seed: int, budget_s: float, out: Path) -> list[Result]:
    rng = random.Random(seed)
    client = await Client.connect(f"127.0.0.1:{lab.ports.temporal}", data_converter=pydantic_data_converter)
    base = lab.queue_suffix
    results: list[Result] = []
    deadline = time.monotonic() + budget_s
    for n in range(1, runs + 1):
        if time.monotonic() > deadline:
            log(f"budget of {budget_s:.0f} s spent: stopping after {n - 1} runs")
            break
        runbook = rng.choice(RUNBOOKS)
        kind = rng.choice(KILLS)
        victim = {
            "worker": "worker",
            "dns": "dns",
            # failover: a standby (onprem is already the disaster); failback: any server.
            "server": rng.choice(
                ["azure", "gcp"] if runbook == Runbook.FAILOVER else ["onprem", "azure", "gcp"]
            ),
        }[kind]
        res = Result(n, runbook, kind, victim, round(rng.uniform(0, KILL_WINDOW_S[runbook]), 2))
        log(f"run {n}: {runbook.value}, kill {victim} at +{res.at_s} s")
        try:
            await one_run(client, lab, out, res, base)
        except Exception as err:  # the run could not even be set up: reported, the bench goes on
            res.status, res.end_error = "error", f"{type(err).__name__}: {err}"
        results.append(res)
        print_row(res)
    return results


HEADER = (
    f"{'run':>3}  {'runbook':<8}  {'kill':<7} {'at':<6}  {'status':<11} {'s':>6}"
    "  viol/inst  lost/cnt  writer  end"
)


def print_row(r: Result) -> None:
    end = "ok" if not r.end_error else r.end_error[:90]
    print(
        f"{r.n:>3}  {r.runbook.value:<8}  {r.victim:<7} +{r.at_s:<5.2f}  {r.status:<11} {r.seconds:>6.1f}"
        f"  {r.violations:>3}/{r.instants:<5}  {r.lost:>3}/{r.counted:<4}  {r.writer:<6}  {end}",
        flush=True,
    )


def print_report(results: list[Result], seed: int, elapsed: float) -> None:
    done = [r for r in results if r.status == RunStatus.SUCCEEDED]
    times = [r.seconds for r in results if r.seconds]
    violations = sum(r.violations for r in results)
    bad_ends = [r for r in results if r.end_error]
    print()
    print(f"chaos bench, seed {seed}: {len(results)} runs in {elapsed:.0f} s")
    by = {(rb.value, k): 0 for rb in RUNBOOKS for k in KILLS}
    for r in results:
        by[(r.runbook.value, r.kill)] += 1
    print("  mix: " + ", ".join(f"{rb}/{k} {c}" for (rb, k), c in by.items()))
    print(f"  runs                          {len(results)}")
    print(f"  completed (succeeded)         {len(done)}")
    print(f"  writable-primary violations   {violations} sampled instants (must be 0)")
    print(f"  end-state failures            {len(bad_ends)} (one writer, DNS at it, one promotion, writes)")
    print(
        f"  lost writes / counted         {sum(r.lost for r in results)} / {sum(r.counted for r in results)}"
        " (lost must not exceed counted)"
    )
    if times:
        print(
            f"  time per run                  median {statistics.median(times):.1f} s,"
            f" max {max(times):.1f} s (the run with its kill, not the reset)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="runs (default 20)")
    parser.add_argument("--seed", type=int, default=9, help="the RNG's seed (default 9)")
    parser.add_argument("--budget-s", type=float, default=1200.0, help="stop starting runs after this (1200)")
    parser.add_argument("--net", default=NET, help=f"the lab's loopback /24 prefix (default {NET})")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: at least 1")
    ports = LabPorts(net=args.net, pg=45432, dns=45353, temporal=_free_port(), ui=_free_port())
    tmp = Path(tempfile.mkdtemp(prefix="hybridops-bench-chaos-"))
    tmp.chmod(0o755)  # PostgreSQL runs as an unprivileged user when we are root
    (tmp / "home").mkdir()
    os.environ[HOME_ENV] = str(tmp / "home")
    lab = Lab(tmp / "lab", ports, queue_suffix=f"-chaos-{uuid.uuid4().hex[:8]}")
    os.environ.update(lab.env())
    results: list[Result] = []
    began = time.monotonic()
    try:
        log(f"lab up in {lab.root} (Temporal 127.0.0.1:{ports.temporal}, sites {ports.net}.1-3)")
        lab.up(temporal=True, worker=False, writer=False, monitoring=False)
        print(HEADER)
        results = asyncio.run(bench(lab, args.runs, args.seed, args.budget_s, tmp / "output"))
    finally:
        log("lab down")
        try:
            lab.down()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print_report(results, args.seed, time.monotonic() - began)
    failed = any(r.violations or r.end_error for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
