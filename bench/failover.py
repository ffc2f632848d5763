"""Benchmark of the failover runbook: the Temporal workflow against a plain sequential script.

Run as ``.venv/bin/python bench/failover.py [--runs N]``. It brings up its own lab (its own
loopback addresses, ports and temp directory, so it never meets the demo lab), runs workers in
this process against the lab's real Temporal dev server, and for each run:

* the workflow: reset the lab, let the writer commit at least 100 writes on onprem, kill
  onprem, run ``FailoverWorkflow`` and await its result;
* the baseline: the same, with the same activity functions called in order by a plain
  script, without Temporal.

It prints figures (wall times, RTO, RPO, orchestration overhead, per-phase durations and
medians beside their targets); it never asserts timings. The lab is torn down at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from temporalio.client import Client, WorkflowFailureError

from activities.failover import FailoverActivities
from hybridops.client import connect
from hybridops.constants import TaskQueue
from hybridops.decision import decide
from hybridops.inventory import HOME_ENV, Inventory
from hybridops.lab.lab import Lab, LabPorts
from hybridops.models import (
    ActivityResult,
    AssessInput,
    DnsCutoverInput,
    EvidenceInput,
    FailoverInput,
    FailoverResult,
    FollowInput,
    PlanInput,
    PromoteInput,
    RepointAppsInput,
    RpoInput,
    RpoMeasure,
    RunStatus,
    SiteInput,
    StepOutcome,
    StepRecord,
    TargetChoice,
    VerifyInput,
)
from hybridops.workload import Ack, read_ledger
from workers.main import build_activities, build_workers
from workflows.failover import FailoverWorkflow

PORTS = LabPorts(net="127.79.0", pg=25432, dns=25353, temporal=27233, ui=28233)
"""The bench lab's addresses: apart from the demo lab's (127.77.0.x, 7233) and the tests'."""
OLD_PRIMARY = "onprem"
WARMUP_ACKS = 100
"""Acknowledged writes on onprem before the disaster."""
WARMUP_TIMEOUT_S = 60.0
WRITER_RTO_TIMEOUT_S = 30.0
WORKFLOW_TIMEOUT_S = 300.0

TARGET_RTO_S = 3.0
TARGET_OVERHEAD_MS_PER_STEP = 25.0
TARGET_RATIO = 1.15

T = TypeVar("T")


# --------------------------------------------------------------------------- measurements


@dataclass
class Measure:
    """One failover, by the workflow or by the script."""

    wall_ms: float
    target: str
    rto_s: float | None
    """RTO as the runbook measured it: its first probe write on the target minus the incident."""
    writer_rto_s: float | None
    """RTO as the writer saw it: its first acknowledged write on the target minus the incident."""
    rpo: RpoMeasure
    steps: list[tuple[str, float]] = field(default_factory=list)
    """Each step's name and duration in ms, in order."""

    @property
    def steps_ms(self) -> float:
        return sum(ms for _, ms in self.steps)

    @property
    def overhead_ms(self) -> float:
        """Wall time not spent inside a step."""
        return self.wall_ms - self.steps_ms

    @property
    def overhead_ms_per_step(self) -> float:
        return self.overhead_ms / len(self.steps) if self.steps else float("nan")


@dataclass
class Run:
    """One run of the bench: the workflow and the script baseline, or what went wrong."""

    number: int
    workflow: Measure | None = None
    script: Measure | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.workflow is None or self.script is None or self.script.wall_ms <= 0:
            return None
        return self.workflow.wall_ms / self.script.wall_ms


def _ms(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds() * 1000


def log(message: str) -> None:
    print(f"# {message}", flush=True)


# --------------------------------------------------------------------------- lab helpers


def _ledger(lab: Lab) -> list[Ack]:
    try:
        return read_ledger(lab.ledger)
    except FileNotFoundError:
        return []


async def poll(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.02) -> T:
    """``check()`` until it returns something other than None; TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def prepare_and_break(lab: Lab) -> datetime:
    """Fresh topology, the writer warmed up on onprem, then onprem killed; the kill's time."""
    await asyncio.to_thread(lab.reset)  # blocking, and it runs event loops of its own

    def warmed() -> int | None:
        n = sum(1 for a in _ledger(lab) if a.site == OLD_PRIMARY)
        return n if n >= WARMUP_ACKS else None

    await poll(f"{WARMUP_ACKS} acknowledged writes on {OLD_PRIMARY}", warmed, WARMUP_TIMEOUT_S)
    return lab.break_site(OLD_PRIMARY)


async def writer_rto(lab: Lab, target: str, at: datetime) -> float:
    """Seconds from ``at`` to the writer's first acknowledged write on ``target``."""

    def first_on_target() -> Ack | None:
        return next((a for a in _ledger(lab) if a.site == target and a.acked_at >= at), None)

    ack = await poll(f"the writer's first write on {target}", first_on_target, WRITER_RTO_TIMEOUT_S)
    return (ack.acked_at - at).total_seconds()


# --------------------------------------------------------------------------- the two ways


async def run_workflow(client: Client, inv: Inventory, lab: Lab, wf_id: str) -> Measure:
    """The runbook as a Temporal workflow on the lab's dev server and this process's workers."""
    at = await prepare_and_break(lab)
    inp = FailoverInput(incident_started_at=at, reason="bench", requested_by="bench/failover.py")
    t0 = time.perf_counter()
    handle = await client.start_workflow(
        FailoverWorkflow.run,
        inp,
        id=wf_id,
        task_queue=inv.queue(TaskQueue.CONTROL),
    )
    result: FailoverResult = await asyncio.wait_for(handle.result(), WORKFLOW_TIMEOUT_S)
    wall_ms = (time.perf_counter() - t0) * 1000
    if result.status != RunStatus.SUCCEEDED or result.target is None:
        raise RuntimeError(f"workflow {wf_id} ended {result.status.value}: {result.error}")
    steps = [(s.name, ms) for s in result.steps if (ms := _ms(s.started_at, s.ended_at)) is not None]
    return Measure(
        wall_ms=wall_ms,
        target=result.target,
        rto_s=result.rto_seconds,
        writer_rto_s=await writer_rto(lab, result.target, at),
        rpo=result.rpo,
        steps=steps,
    )


async def run_script(acts: FailoverActivities, lab: Lab, run_id: str) -> Measure:
    """The same steps, with the same inputs as ``FailoverWorkflow`` passes, in a plain script."""
    at = await prepare_and_break(lab)
    inp = FailoverInput(incident_started_at=at, reason="bench baseline", requested_by="bench/failover.py")
    records: list[StepRecord] = []
    AR = TypeVar("AR", bound=ActivityResult)

    async def step(name: str, call: Callable[[], Any]) -> Any:
        rec = StepRecord(name=name, started_at=datetime.now(UTC))
        records.append(rec)
        result: ActivityResult = await call()
        rec.ended_at, rec.attempts, rec.detail = datetime.now(UTC), result.attempt, result.detail
        rec.outcome = StepOutcome.CHANGED if result.changed else StepOutcome.UNCHANGED
        return result

    t0 = time.perf_counter()
    started = datetime.now(UTC)
    plan = await step("plan", lambda: acts.plan_failover(PlanInput(target=inp.target)))
    assessed = await step(
        "assess", lambda: acts.assess_sites(AssessInput(sites=[s.name for s in plan.sites]))
    )
    decision = decide(plan.sites, assessed.states, plan.current_primary, inp.target, datetime.now(UTC))
    target, old = decision.target, decision.old_primary
    await step("prepare_target", lambda: acts.prepare_target(SiteInput(site=target, run_id=run_id)))
    fence = await step("fence_old_primary", lambda: acts.fence_primary(SiteInput(site=old, run_id=run_id)))
    await step(
        "promote",
        lambda: acts.promote_standby(
            PromoteInput(site=target, wait_for_lsn=fence.fenced_lsn, max_catchup_s=inp.max_catchup_s)
        ),
    )
    await step("repoint_apps", lambda: acts.repoint_apps(RepointAppsInput(site=target)))
    await step("dns_cutover", lambda: acts.dns_cutover(DnsCutoverInput(site=target)))
    verify = await step("verify", lambda: acts.verify_writes(VerifyInput(site=target)))
    rto_s = round((verify.first_write_at - at).total_seconds(), 3)
    lag = next((c.lag_seconds for c in decision.candidates if c.site == target), None)
    rpo = await step(
        "measure_rpo",
        lambda: acts.measure_rpo(RpoInput(site=target, incident_started_at=at, fallback_lag_seconds=lag)),
    )
    others = [s.name for s in plan.sites if s.name not in (target, old) and s.cloud is not None]
    reachable = {s.site for s in assessed.states if s.reachable and s.in_recovery}
    others = [s for s in others if s in reachable]
    if others:
        await step(
            "rejoin_standbys", lambda: acts.follow_primary(FollowInput(sites=others, new_primary=target))
        )
    result = FailoverResult(
        workflow_id=run_id,
        run_id=run_id,
        status=RunStatus.SUCCEEDED,
        input=inp,
        target=target,
        decision=decision,
        steps=records,
        started_at=started,
        ended_at=datetime.now(UTC),
        incident_started_at=at,
        rto_seconds=rto_s,
        rpo=rpo.rpo,
        point_of_no_return_passed=True,
    )
    ev_start = time.perf_counter()
    await acts.write_evidence(EvidenceInput(result=result))
    evidence_ms = (time.perf_counter() - ev_start) * 1000
    wall_ms = (time.perf_counter() - t0) * 1000
    steps = [(r.name, ms) for r in records if (ms := _ms(r.started_at, r.ended_at)) is not None]
    steps.append(("evidence", evidence_ms))
    return Measure(
        wall_ms=wall_ms,
        target=target,
        rto_s=rto_s,
        writer_rto_s=await writer_rto(lab, target, at),
        rpo=rpo.rpo,
        steps=steps,
    )
