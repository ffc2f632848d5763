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

``--restore`` benches restore mode instead (a few minutes): at three database sizes (filler
rows loaded on onprem, then a base backup), a promotion (onprem killed, gcp promoted) beside a
restore (gcp's standby stopped, azure and onprem killed, the backup restored onto gcp from the
WAL archive), each the workflow with site agents and the writer running; it prints both RTOs,
the restore's fetch and recovery seconds, and how each grows with size.
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
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import ActivityEnvironment

from activities.decide import DecideActivities
from activities.failover import FailoverActivities
from activities.sites import SiteActivities
from hybridops.client import connect
from hybridops.constants import TaskQueue
from hybridops.contracts.base import ActivityResult, RunStatus, StepOutcome, StepRecord
from hybridops.contracts.decision import DecisionRequest
from hybridops.contracts.failover import EvidenceInput, FailoverInput, FailoverResult
from hybridops.contracts.sites import (
    AssessInput,
    DnsCutoverInput,
    FenceInput,
    FollowInput,
    PlanInput,
    PrepareInput,
    PromoteInput,
    RepointAppsInput,
    RpoInput,
    RpoMeasure,
    VerifyInput,
)
from hybridops.decision import decide, signal_targets
from hybridops.inventory import HOME_ENV, DnsKind, Inventory, Placement
from hybridops.lab import Lab, LabPorts
from hybridops.metrics import free_loopback_port, start_metrics
from hybridops.workload import Ack, read_ledger
from workers.main import build_agent, build_workers
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
TARGET_RTO_GAP_MS = 50.0
"""Issue 21: an operator-started failover's RTO within 50 ms of the plain script's."""

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
    """Each step's name and duration in ms, in order (the evidence step is not one of them:
    the workflow writes its evidence after its result's steps are closed)."""
    evidence_ms: float | None = None
    """The evidence step. Workflow: from its result's ``ended_at`` (closed just before the
    evidence step) to the server's close time, so the evidence step and the completion."""
    history: str = ""
    """Workflow only: its workflow tasks (failed or timed out ones are worth a look)."""
    gaps: list[str] = field(default_factory=list)
    """Gaps over 5 ms between steps, as ``a -> b: N ms``."""
    client_ms: float | None = None
    """Workflow only: wall time minus the server's start-to-close time (start RPC, result
    long-poll)."""
    lead_ms: float | None = None
    """From the incident (the kill) to the runbook's start: ``lab.break_site`` returning. It is
    part of both RTOs but not of the wall time."""
    head_ms: float | None = None
    """From the start call to the first step's start."""
    gaps_ms: float | None = None
    """Between one step's end and the next one's start, summed."""
    tail_ms: float | None = None
    """From the last step's end to the result (the workflow's evidence step is in here)."""
    timeline: list[str] = field(default_factory=list)
    """Workflow only: its history's events up to the verify step, as ms since the start call:
    where the time between steps goes (workflow tasks, dispatch to a queue, markers)."""
    handoffs: tuple[int, float] | None = None
    """Workflow only: the stretches of its RTO path with no step running, count and ms
    (:func:`_handoffs`)."""

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
    """The workflow with site agents (placement ``queues``, the lab's and production's)."""
    colocated: Measure | None = None
    """The same workflow with every step a local activity of the control worker."""
    script: Measure | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.workflow is None or self.script is None or self.script.wall_ms <= 0:
            return None
        return self.workflow.wall_ms / self.script.wall_ms


def _ms(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds() * 1000


def _durations(records: list[StepRecord]) -> list[tuple[str, float]]:
    return [(r.name, ms) for r in records if (ms := _ms(r.started_at, r.ended_at)) is not None]


def _breakdown(
    m: Measure, records: list[StepRecord], at: datetime, started: datetime, ended: datetime
) -> Measure:
    """Where the time outside the steps went: before the first, between them, after the last."""
    done = [r for r in records if r.ended_at is not None]
    m.lead_ms = _ms(at, started)
    if done:
        m.head_ms = _ms(started, done[0].started_at)
        m.gaps_ms = sum(
            (b.started_at - a.ended_at).total_seconds() * 1000
            for a, b in itertools.pairwise(done)
            if a.ended_at is not None
        )
        m.gaps = [
            f"{a.name} -> {b.name}: {gap:.0f} ms"
            for a, b in itertools.pairwise(done)
            if a.ended_at is not None and (gap := (b.started_at - a.ended_at).total_seconds() * 1000) > 5
        ]
        m.tail_ms = _ms(done[-1].ended_at or ended, ended)
    return m


def log(message: str) -> None:
    print(f"# {message}", flush=True)


def _timeline(events: Any, started: datetime) -> list[str]:
    """The history's events to the verify step's completion, each as ``+ms NAME`` since the start
    call; an activity's events name it (by its scheduled event), a marker its patch or step."""
    names: dict[int, str] = {}
    out: list[str] = []
    for e in events:
        kind = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower()
        at = _ms(started, e.event_time.ToDatetime().replace(tzinfo=UTC)) or 0.0
        what = ""
        if e.HasField("activity_task_scheduled_event_attributes"):
            a = e.activity_task_scheduled_event_attributes
            names[e.event_id] = what = f"{a.activity_type.name} on {a.task_queue.name}"
        elif e.HasField("activity_task_started_event_attributes"):
            what = names.get(e.activity_task_started_event_attributes.scheduled_event_id, "")
        elif e.HasField("activity_task_completed_event_attributes"):
            what = names.get(e.activity_task_completed_event_attributes.scheduled_event_id, "")
        elif e.HasField("marker_recorded_event_attributes"):
            details = e.marker_recorded_event_attributes.details
            what = ",".join(k for k in ("patch_id", "activity_type") if k in details)
            for k in ("patch_id", "activity_type"):
                if k in details and details[k].payloads:
                    what = details[k].payloads[0].data.decode(errors="replace").strip('"')
        out.append(f"{at:+8.1f} ms  {kind}  {what}".rstrip())
        if kind == "activity_task_completed" and what.startswith("verify_writes"):
            break
    return out


def _handoffs(events: Any, until: str = "dns_cutover") -> tuple[int, float] | None:
    """The orchestration on the RTO path, from the history: from the workflow's start to the
    ``until`` step's completion (clients sent to the new primary), the stretches when no step
    was running (workflow tasks, markers, dispatch to a queue and a worker's poll), as their
    count and total ms. The script has none of these; what else the RTOs differ by is the
    steps themselves, run in worker processes. None when the step is not in the history."""
    start: datetime | None = None
    names: dict[int, str] = {}
    began: dict[int, datetime] = {}
    spans: list[tuple[datetime, datetime]] = []
    end: datetime | None = None
    for e in events:
        at = e.event_time.ToDatetime().replace(tzinfo=UTC)
        if e.HasField("workflow_execution_started_event_attributes"):
            start = at
        elif e.HasField("activity_task_scheduled_event_attributes"):
            names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif e.HasField("activity_task_started_event_attributes"):
            began[e.activity_task_started_event_attributes.scheduled_event_id] = at
        elif e.HasField("activity_task_completed_event_attributes"):
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            if sid in began:
                spans.append((began[sid], at))
            if names.get(sid) == until:
                end = at
                break
    if start is None or end is None:
        return None
    count, idle, covered = 0, 0.0, start
    for a, b in sorted(spans):
        if a > covered:
            gap = (a - covered).total_seconds() * 1000
            count, idle = count + (gap >= 0.5), idle + gap
        covered = max(covered, b)
    return count, idle


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
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    handle = await client.start_workflow(
        FailoverWorkflow.run,
        inp,
        id=wf_id,
        task_queue=inv.queue(TaskQueue.CONTROL),
    )
    result: FailoverResult = await asyncio.wait_for(handle.result(), WORKFLOW_TIMEOUT_S)
    wall_ms = (time.perf_counter() - t0) * 1000
    ended = datetime.now(UTC)
    if result.status != RunStatus.SUCCEEDED or result.target is None:
        raise RuntimeError(f"workflow {wf_id} ended {result.status.value}: {result.error}")
    desc = await handle.describe()  # after the clock stopped
    history = await handle.fetch_history()
    measure = Measure(
        wall_ms=wall_ms,
        target=result.target,
        rto_s=result.rto_seconds,
        writer_rto_s=await writer_rto(lab, result.target, at),
        rpo=result.rpo,
        steps=_durations(result.steps),
    )
    kinds = Counter(EventType.Name(e.event_type) for e in history.events)
    measure.history = (
        ", ".join(
            f"{kinds[f'EVENT_TYPE_WORKFLOW_TASK_{k.upper()}']} {k}"
            for k in ("completed", "failed", "timed_out")
        )
        + f", {kinds['EVENT_TYPE_MARKER_RECORDED']} markers"
    )
    measure.timeline = _timeline(history.events, started)
    measure.handoffs = _handoffs(history.events)
    if desc.close_time is not None:
        measure.client_ms = wall_ms - (desc.close_time - desc.start_time).total_seconds() * 1000
        if result.ended_at is not None:
            measure.evidence_ms = _ms(result.ended_at, desc.close_time)
    return _breakdown(measure, result.steps, at, started, ended)


async def run_script(
    acts: SiteActivities, own: FailoverActivities, signals: DecideActivities, lab: Lab, run_id: str
) -> Measure:
    """The same steps, with the same inputs as ``FailoverWorkflow`` passes, in a plain script."""
    at = await prepare_and_break(lab)
    inp = FailoverInput(incident_started_at=at, reason="bench baseline", requested_by="bench/failover.py")
    records: list[StepRecord] = []

    # Activities run in the SDK's test activity context (no worker, no server): the code is
    # the same as a run's, and the difference from the workflow's wall time is Temporal's.
    env = ActivityEnvironment()

    async def step(name: str, call: Callable[[], Any]) -> Any:
        rec = StepRecord(name=name, started_at=datetime.now(UTC))
        records.append(rec)

        async def invoke() -> ActivityResult:
            return await call()

        result: ActivityResult = await env.run(invoke)
        rec.ended_at, rec.attempts, rec.detail = datetime.now(UTC), result.attempt, result.detail
        rec.outcome = StepOutcome.CHANGED if result.changed else StepOutcome.UNCHANGED
        return result

    t0 = time.perf_counter()
    started = datetime.now(UTC)
    plan = await step("plan", lambda: acts.plan_sites(PlanInput()))
    assessed = await step(
        "assess", lambda: acts.assess_sites(AssessInput(sites=[s.name for s in plan.sites]))
    )
    request = DecisionRequest(current_primary=plan.dns_site, target=inp.target)
    gathered = await step(
        "gather_signals", lambda: signals.gather_signals(signal_targets(request, plan.sites))
    )
    decision, _ = decide(request, plan, assessed.states, gathered)
    assert decision.target is not None, decision.rationale
    target, old = decision.target, decision.old_primary
    await step("prepare_target", lambda: acts.prepare_target(PrepareInput(site=target, run_id=run_id)))
    fence = await step("fence_old_primary", lambda: acts.fence_primary(FenceInput(site=old, run_id=run_id)))
    await step(
        "promote",
        lambda: acts.promote_standby(
            PromoteInput(
                site=target, run_id=run_id, wait_for_lsn=fence.fenced_lsn, max_catchup_s=inp.max_catchup_s
            )
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
    await env.run(own.write_evidence, EvidenceInput(result=result))
    evidence_ms = (time.perf_counter() - ev_start) * 1000
    wall_ms = (time.perf_counter() - t0) * 1000
    ended = datetime.now(UTC)
    measure = Measure(
        wall_ms=wall_ms,
        target=target,
        rto_s=rto_s,
        writer_rto_s=await writer_rto(lab, target, at),
        rpo=rpo.rpo,
        steps=_durations(records),
        evidence_ms=evidence_ms,
    )
    return _breakdown(measure, records, at, started, ended)


# --------------------------------------------------------------------------- the bench


def _describe(err: BaseException) -> str:
    if isinstance(err, WorkflowFailureError) and err.cause is not None:
        err = err.cause
    return f"{type(err).__name__}: {err}"


async def scrape_every_second(url: str) -> None:
    """What the lab's Prometheus does to a worker: read its endpoint every second."""
    while True:
        try:
            await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        except OSError as err:  # not listening yet; Prometheus would record a failed scrape too
            log(f"metrics scrape failed: {err}")
        await asyncio.sleep(1)


async def bench(lab: Lab, inv: Inventory, runs: int, tag: str, with_metrics: bool = False) -> list[Run]:
    """``runs`` runs of the workflow with site agents, of the workflow colocated, and of the
    script, with workers (the agents too) in this process; with
    ``with_metrics``, the worker's metrics on (the SDK's exporter, HybridOps' registry, the
    endpoint) and scraped every second, as ``python -m workers --metrics-listen`` is in the lab."""
    scraper: asyncio.Task[None] | None = None
    if with_metrics:
        listen = f"127.0.0.1:{free_loopback_port()}"
        start_metrics(listen)  # before the client connects: the runtime with its exporter
        scraper = asyncio.create_task(scrape_every_second(f"http://{listen}/metrics"))
    client = await connect(inv.temporal)
    acts = SiteActivities(inv)
    own = FailoverActivities(inv)
    signals = DecideActivities(inv)
    colocated = inv.model_copy(
        update={"placement": Placement.COLOCATED, "task_queue_suffix": inv.task_queue_suffix + "-colocated"}
    )
    results: list[Run] = []
    async with AsyncExitStack() as stack:
        workers = [*build_workers(client, inv), *build_workers(client, colocated, [TaskQueue.CONTROL])]
        workers += [build_agent(client, inv, site) for site in inv.sites]
        for worker in workers:
            await stack.enter_async_context(worker)
        for n in range(1, runs + 1):
            run = Run(n)
            results.append(run)
            for name, on, attr in (("site agents", inv, "workflow"), ("colocated", colocated, "colocated")):
                log(f"run {n}/{runs}: workflow ({name})")
                try:
                    setattr(
                        run, attr, await run_workflow(client, on, lab, f"bench-failover-{tag}-{attr}-{n}")
                    )
                except Exception as err:
                    run.errors.append(f"workflow ({name}): {_describe(err)}")
                    log(f"run {n}: workflow ({name}) failed: {_describe(err)}")
            log(f"run {n}/{runs}: script baseline")
            try:
                run.script = await run_script(acts, own, signals, lab, f"bench-script-{tag}-{n}")
            except Exception as err:
                run.errors.append(f"script: {_describe(err)}")
                log(f"run {n}: script failed: {_describe(err)}")
    if scraper is not None:
        scraper.cancel()
    return results


def print_placements(results: list[Run]) -> None:
    """The RTO with a site agent per database against every step on the control worker."""
    print("Site agents against the colocated worker (RTO as the run measured it, and as the writer saw it):")
    cols = (
        f"{'run':>3}  {'agents s':>8}  {'colocated s':>11}  {'ratio':>5}"
        f"  {'writer agents s':>15}  {'writer colocated s':>18}"
    )
    print(cols)
    print("-" * len(cols))
    ratios = []
    for r in results:
        a, c = r.workflow, r.colocated
        ratio = a.rto_s / c.rto_s if a and c and a.rto_s and c.rto_s else None
        if ratio is not None:
            ratios.append(ratio)
        print(
            f"{r.number:>3}  {_f(a.rto_s if a else None, '.3f', 8)}  {_f(c.rto_s if c else None, '.3f', 11)}"
            f"  {_f(ratio, '.2f', 5)}  {_f(a.writer_rto_s if a else None, '.3f', 15)}"
            f"  {_f(c.writer_rto_s if c else None, '.3f', 18)}"
        )
    median = _median(list(ratios))
    print(f"median RTO ratio, site agents / colocated: {_f(median, '.2f')}")
    print()


# --------------------------------------------------------------------------- printing


def _f(value: float | None, fmt: str = ".1f", width: int = 0) -> str:
    text = "-" if value is None or value != value else format(value, fmt)
    return text.rjust(width)


def _median(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None and v == v]
    return statistics.median(clean) if clean else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "met" if value < limit else "NOT met"


def print_report(results: list[Run], lab: Lab) -> None:
    ok = [r for r in results if r.workflow is not None]
    print()
    where = f"lab {lab.ports.net}.x, Temporal 127.0.0.1:{lab.ports.temporal}"
    print(f"Failover bench: {len(results)} run(s); {where}")
    print()
    cols = (
        f"{'run':>3}  {'workflow ms':>11}  {'script ms':>9}  {'ratio':>5}  {'RTO wf s':>8}"
        f"  {'RTO writer s':>12}  {'RPO tx':>6}  {'RPO s':>6}  {'overhead ms':>11}  {'ms/step':>7}  target"
    )
    print(cols)
    print("-" * len(cols))
    for r in results:
        w, sw = r.workflow, r.script
        script_ms = _f(sw.wall_ms, ".1f", 9) if sw else "-".rjust(9)
        if w is None:
            print(f"{r.number:>3}  {'failed':>11}  {script_ms}")
            continue
        tx = str(w.rpo.transactions_lost) if w.rpo.transactions_lost is not None else "-"
        print(
            f"{r.number:>3}  {_f(w.wall_ms, '.1f', 11)}  {script_ms}"
            f"  {_f(r.ratio, '.2f', 5)}  {_f(w.rto_s, '.3f', 8)}  {_f(w.writer_rto_s, '.3f', 12)}"
            f"  {tx:>6}  {_f(w.rpo.seconds, '.3f', 6)}"
            f"  {_f(w.overhead_ms, '.1f', 11)}  {_f(w.overhead_ms_per_step, '.1f', 7)}  {w.target}"
        )
    print()
    print("Baseline script, per run (same activities, called in order, no Temporal):")
    cols = (
        f"{'run':>3}  {'script ms':>9}  {'RTO script s':>12}  {'RTO writer s':>12}  {'RPO tx':>6}"
        f"  {'RPO s':>6}  {'steps ms':>8}  {'evidence ms':>11}  {'glue ms':>7}  {'lead ms':>7}  target"
    )
    print(cols)
    print("-" * len(cols))
    for r in results:
        s = r.script
        if s is None:
            print(f"{r.number:>3}  failed")
            continue
        tx = str(s.rpo.transactions_lost) if s.rpo.transactions_lost is not None else "-"
        print(
            f"{r.number:>3}  {_f(s.wall_ms, '.1f', 9)}  {_f(s.rto_s, '.3f', 12)}"
            f"  {_f(s.writer_rto_s, '.3f', 12)}  {tx:>6}  {_f(s.rpo.seconds, '.3f', 6)}"
            f"  {_f(s.steps_ms, '.1f', 8)}  {_f(s.evidence_ms, '.1f', 11)}"
            f"  {_f(s.overhead_ms - (s.evidence_ms or 0.0), '.1f', 7)}  {_f(s.lead_ms, '.1f', 7)}  {s.target}"
        )
    print()
    print("Workflow overhead, per run: where the wall time outside the steps went")
    cols = (
        f"{'run':>3}  {'overhead ms':>11}  {'head ms':>7}  {'gaps ms':>7}  {'tail ms':>7}"
        f"  {'evidence ms':>11}  {'client ms':>9}  steps  {'lead ms':>7}"
    )
    print(cols)
    print("-" * len(cols))
    for r in ok:
        w = r.workflow
        assert w is not None
        print(
            f"{r.number:>3}  {_f(w.overhead_ms, '.1f', 11)}  {_f(w.head_ms, '.1f', 7)}"
            f"  {_f(w.gaps_ms, '.1f', 7)}  {_f(w.tail_ms, '.1f', 7)}  {_f(w.evidence_ms, '.1f', 11)}"
            f"  {_f(w.client_ms, '.1f', 9)}  {len(w.steps):>5}"
            f"  {_f(w.lead_ms, '.1f', 7)}"
        )
    for r in ok:
        w = r.workflow
        assert w is not None
        print(
            f"  run {r.number} workflow tasks: {w.history}"
            + (f"; gaps: {'; '.join(w.gaps)}" if w.gaps else "")
        )
    last = ok[-1].workflow if ok else None
    if last is not None and last.timeline:
        print(f"  run {ok[-1].number}'s history to the verify step (ms since the start call):")
        for line in last.timeline:
            print(f"    {line}")
    print("  head: start call to the first step; gaps: between steps;")
    print("  tail: last step to the result, including the workflow's evidence step (history fetch).")
    print("  evidence: result closed to workflow closed (server time): the evidence step, completion.")
    print("  client: wall minus the server's start-to-close time: start RPC and result long-poll.")
    print("  lead (not in the wall time, in both RTOs): from the kill to the start call, that is")
    print("  lab.break_site returning; the baseline table shows the same for the script.")
    print()
    names: list[str] = []
    for r in results:
        for m in (r.workflow, r.script):
            for name, _ in m.steps if m else []:
                if name not in names:
                    names.append(name)
    print("Per-phase mean durations (ms):")
    cols = f"{'phase':<20}  {'workflow':>9}  {'script':>9}"
    print(cols)
    print("-" * len(cols))
    for name in names:
        wf = [ms for r in results if r.workflow for n, ms in r.workflow.steps if n == name]
        sc = [ms for r in results if r.script for n, ms in r.script.steps if n == name]
        print(f"{name:<20}  {_f(_mean(wf), '.1f', 9)}  {_f(_mean(sc), '.1f', 9)}")
    sc_ev = [r.script.evidence_ms for r in results if r.script and r.script.evidence_ms is not None]
    wf_ev = [r.workflow.evidence_ms for r in results if r.workflow and r.workflow.evidence_ms is not None]
    print(f"{'evidence':<20}  {_f(_mean(wf_ev), '.1f', 9)}  {_f(_mean(sc_ev), '.1f', 9)}")
    print("  (the workflow's evidence step is not in its result's steps: it is part of its overhead)")
    print()
    ws = [r.workflow for r in results if r.workflow]
    ss = [r.script for r in results if r.script]
    rto = _median([w.rto_s for w in ws])
    wrto = _median([w.writer_rto_s for w in ws])
    per_step = _median([w.overhead_ms_per_step for w in ws])
    ratio = _median([r.ratio for r in results])
    diff_per_step = _median(
        [
            (r.workflow.wall_ms - r.script.wall_ms) / len(r.workflow.steps)
            for r in results
            if r.workflow and r.script and r.workflow.steps
        ]
    )
    gap = _median(
        [
            (r.workflow.rto_s - r.script.rto_s) * 1000
            for r in results
            if r.workflow and r.script and r.workflow.rto_s is not None and r.script.rto_s is not None
        ]
    )
    hand = [w.handoffs for w in ws if w.handoffs is not None]
    hand_ms = _median([h[1] for h in hand])
    hand_n = _median([float(h[0]) for h in hand])
    rows: list[tuple[str, str, str, str]] = [
        ("workflow wall", f"{_f(_median([w.wall_ms for w in ws]))} ms", "", ""),
        ("script wall", f"{_f(_median([s.wall_ms for s in ss]))} ms", "", ""),
        ("ratio workflow/script", _f(ratio, ".2f"), f"under {TARGET_RATIO}", _verdict(ratio, TARGET_RATIO)),
        ("RTO (workflow)", f"{_f(rto, '.3f')} s", f"under {TARGET_RTO_S:g} s", _verdict(rto, TARGET_RTO_S)),
        ("RTO (writer)", f"{_f(wrto, '.3f')} s", f"under {TARGET_RTO_S:g} s", _verdict(wrto, TARGET_RTO_S)),
        ("RTO (script)", f"{_f(_median([s.rto_s for s in ss]), '.3f')} s", "", ""),
        (
            "RTO workflow - script",
            f"{_f(gap)} ms",
            f"under {TARGET_RTO_GAP_MS:g} ms",
            _verdict(gap, TARGET_RTO_GAP_MS),
        ),
        (
            "  of it, handoffs",
            f"{_f(hand_ms)} ms",
            f"{_f(hand_n, 'g')} on the path, {_f(hand_ms / hand_n if hand_ms and hand_n else None)} ms each",
            "",
        ),
        (
            "RPO",
            f"{_f(_median([w.rpo.transactions_lost for w in ws]), 'g')} tx,"
            f" {_f(_median([w.rpo.seconds for w in ws]), '.3f')} s",
            "",
            "",
        ),
        ("overhead total", f"{_f(_median([w.overhead_ms for w in ws]))} ms", "", ""),
        ("wall difference/step", f"{_f(diff_per_step)} ms", "(workflow - script) / steps", ""),
        (
            "overhead per step",
            f"{_f(per_step)} ms",
            f"under {TARGET_OVERHEAD_MS_PER_STEP:g} ms a step",
            _verdict(per_step, TARGET_OVERHEAD_MS_PER_STEP),
        ),
    ]
    print(f"Medians across {len(ws)} workflow run(s) and {len(ss)} script run(s):")
    cols = f"{'figure':<22}  {'median':>16}  {'target':<28}  verdict"
    print(cols)
    print("-" * len(cols))
    for label, value, target, verdict in rows:
        print(f"{label:<22}  {value:>16}  {target:<28}  {verdict}")
    print(
        "  handoffs: from the workflow's start to DNS changed, the stretches with no step running"
        " (workflow tasks, markers, dispatch to another process's queue); the script has none."
        " The rest of the RTO difference is the steps themselves, run by worker processes."
    )
    print()
    errors = [f"run {r.number}: {e}" for r in results for e in r.errors]
    if errors:
        print("Failures:")
        for e in errors:
            print(f"  {e}")
        print()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Machine: {os.cpu_count()} CPU(s), load average {load}, Python {platform.python_version()},"
        f" {platform.platform()}."
    )
    print(
        "Note: figures vary on shared machines (CPU contention, disk, other labs); compare runs"
        " made on the same machine, and read medians rather than single runs."
    )


# --------------------------------------------------------------------------- restore mode

RESTORE_FILLER_MB = (0, 32, 128)
"""Filler loaded on onprem before each pair of runs: the database grows by about this much."""


def _load_filler(lab: Lab, mb: int) -> None:
    import psycopg

    with psycopg.connect(
        host=lab.ip(OLD_PRIMARY), port=lab.ports.pg, user="postgres", dbname="app", autocommit=True
    ) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_filler")
        if mb:
            # About 1 KB a row (a page holds 7 of these 1000-byte rows: 8 KB).
            rows = mb * 1024 * 7 // 8
            conn.execute(
                "CREATE TABLE bench_filler AS SELECT g, repeat(md5(g::text), 31) AS pad"
                f" FROM generate_series(1, {rows}) g"
            )


@dataclass
class RestorePair:
    filler_mb: int
    backup_mb: float | None = None
    promote_rto_s: float | None = None
    promote_writer_rto_s: float | None = None
    restore_rto_s: float | None = None
    restore_writer_rto_s: float | None = None
    restore_step_s: float | None = None
    fetch_s: float | None = None
    recovery_s: float | None = None
    rpo_lost: int | None = None
    errors: list[str] = field(default_factory=list)


async def _one_failover(client: Client, inv: Inventory, lab: Lab, restore: bool, mb: int, wf_id: str) -> Any:
    await asyncio.to_thread(lab.reset)
    await asyncio.to_thread(_load_filler, lab, mb)
    from drivers.lazy import Drivers

    info = await Drivers(lab.inventory()).take_backup(OLD_PRIMARY)

    def warmed() -> int | None:
        n = sum(1 for a in _ledger(lab) if a.site == OLD_PRIMARY)
        return n if n >= WARMUP_ACKS else None

    await poll(f"{WARMUP_ACKS} acknowledged writes on {OLD_PRIMARY}", warmed, WARMUP_TIMEOUT_S)
    if restore:
        await asyncio.to_thread(lab.postgres.stop_server, "gcp")
        lab.break_site("azure")
    at = lab.break_site(OLD_PRIMARY)
    inp = FailoverInput(
        target="gcp",
        incident_started_at=at,
        max_catchup_s=300,
        reason="bench",
        requested_by="bench/failover.py --restore",
    )
    handle = await client.start_workflow(
        FailoverWorkflow.run, inp, id=wf_id, task_queue=inv.queue(TaskQueue.CONTROL)
    )
    result: FailoverResult = await asyncio.wait_for(handle.result(), WORKFLOW_TIMEOUT_S * 4)
    if result.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"{wf_id} ended {result.status.value}: {result.error}")
    writer = await writer_rto(lab, "gcp", at)
    return info, result, writer


async def bench_restore(lab: Lab, inv: Inventory, tag: str) -> list[RestorePair]:
    client = await connect(inv.temporal)
    pairs: list[RestorePair] = []
    async with AsyncExitStack() as stack:
        workers = [*build_workers(client, inv), *[build_agent(client, inv, site) for site in inv.sites]]
        for worker in workers:
            await stack.enter_async_context(worker)
        for mb in RESTORE_FILLER_MB:
            pair = RestorePair(mb)
            pairs.append(pair)
            for restore in (False, True):
                what = "restore" if restore else "promotion"
                log(f"filler {mb} MB: {what}")
                try:
                    info, res, writer = await _one_failover(
                        client, inv, lab, restore, mb, f"bench-{what}-{tag}-{mb}"
                    )
                except Exception as err:
                    pair.errors.append(f"{what}: {_describe(err)}")
                    log(f"filler {mb} MB: {what} failed: {_describe(err)}")
                    continue
                pair.backup_mb = (info.size_bytes or 0) / 2**20
                if restore:
                    pair.restore_rto_s, pair.restore_writer_rto_s = res.rto_seconds, writer
                    if res.restore is not None:
                        pair.restore_step_s = res.restore.restore_seconds
                        pair.fetch_s, pair.recovery_s = (
                            res.restore.fetch_seconds,
                            res.restore.recovery_seconds,
                        )
                    pair.rpo_lost = res.rpo.transactions_lost
                else:
                    pair.promote_rto_s, pair.promote_writer_rto_s = res.rto_seconds, writer
    return pairs


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y on x (None with fewer than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return None
    return statistics.linear_regression([x for x, _ in points], [y for _, y in points]).slope


def print_restore_report(pairs: list[RestorePair]) -> None:
    print("Restore mode beside promotion, by database size (one run each; RTO as the run measured it:")
    print("the writer's last acknowledged write on onprem to its first on gcp, from its ledger).")
    cols = (
        f"{'backup MB':>9}  {'promote RTO s':>13}  {'restore RTO s':>13}  {'restore step s':>14}"
        f"  {'fetch s':>7}  {'recovery s':>10}  {'restore lost tx':>15}"
    )
    print(cols)
    print("-" * len(cols))
    for p in pairs:
        print(
            f"{_f(p.backup_mb, '.0f', 9)}  {_f(p.promote_rto_s, '.3f', 13)}  {_f(p.restore_rto_s, '.3f', 13)}"
            f"  {_f(p.restore_step_s, '.3f', 14)}  {_f(p.fetch_s, '.3f', 7)}  {_f(p.recovery_s, '.3f', 10)}"
            f"  {_f(p.rpo_lost, 'g', 15)}"
        )
    for label, attr in (("promotion RTO", "promote_rto_s"), ("restore RTO", "restore_rto_s")):
        pts = [
            (p.backup_mb, v) for p in pairs if p.backup_mb is not None and (v := getattr(p, attr)) is not None
        ]
        slope = _slope(pts)
        print(f"{label} grows by {_f(slope * 100 if slope is not None else None, '.2f')} s per 100 MB")
    errors = [f"{p.filler_mb} MB: {e}" for p in pairs for e in p.errors]
    for e in errors:
        print(f"  failed: {e}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Machine: {os.cpu_count()} CPU(s), load average {load}.")


def run_restore_lab(tmp: Path, tag: str) -> list[RestorePair]:
    lab = Lab(tmp / "lab-restore", PORTS, queue_suffix=f"-bench-{tag}-restore")
    saved = dict(os.environ)
    os.environ.update(lab.env())
    try:
        log(f"lab up in {lab.root} (restore mode, sites {PORTS.net}.1-3)")
        inv = lab.up(temporal=True, worker=False, writer=True, monitoring=False, dns=DnsKind.ROUTE53)
        inv = inv.model_copy(update={"output_dir": tmp / "output"})
        return asyncio.run(bench_restore(lab, inv, tag))
    finally:
        log("lab down")
        try:
            lab.down()
        finally:
            os.environ.clear()
            os.environ.update(saved)


# --------------------------------------------------------------------------- main


def run_lab(tmp: Path, kind: DnsKind, runs: int, tag: str, metrics: bool = False) -> tuple[Lab, list[Run]]:
    """Bring up a lab on ``kind`` DNS under ``tmp``, bench it, take it down."""
    lab = Lab(tmp / f"lab-{kind.value}", PORTS, queue_suffix=f"-bench-{tag}-{kind.value}")
    saved = dict(os.environ)
    os.environ.update(lab.env())
    results: list[Run] = []
    try:
        log(
            f"lab up in {lab.root} (Temporal 127.0.0.1:{PORTS.temporal}, sites {PORTS.net}.1-3,"
            f" DNS {kind.value})"
        )
        # No monitoring: the bench measures failovers, and an alert must not start runs of its own.
        inv = lab.up(temporal=True, worker=False, writer=True, monitoring=False, dns=kind)
        # Evidence goes to the temp dir, not to the repository's output/.
        inv = inv.model_copy(update={"output_dir": tmp / "output"})
        log(f"worker metrics {'on, scraped every second' if metrics else 'off'}")
        results = asyncio.run(bench(lab, inv, runs, tag, metrics))
    finally:
        log("lab down")
        try:
            lab.down()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return lab, results


def print_outage_by_dns(by_kind: dict[DnsKind, list[Run]]) -> None:
    """The write outage as the writer saw it, per DNS backend, side by side."""
    print("Write outage as the writer saw it (last acknowledged write on onprem to the first on the")
    print("new primary), per DNS backend: route53 = the record read through the Route53 API once per")
    print("TTL; rfc2136 = resolved through the DNS protocol from BIND by a stub resolver and its cache.")
    cols = f"{'DNS':<8}  {'runs':>4}  {'workflow median s':>17}  {'script median s':>15}  per run (workflow)"
    print(cols)
    print("-" * len(cols))
    for kind, results in by_kind.items():
        ws = [r.workflow.writer_rto_s for r in results if r.workflow]
        ss = [r.script.writer_rto_s for r in results if r.script]
        each = ", ".join(_f(x, ".3f") for x in ws)
        print(
            f"{kind.value:<8}  {len(results):>4}  {_f(_median(ws), '.3f', 17)}"
            f"  {_f(_median(ss), '.3f', 15)}  {each}"
        )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument(
        "--dns",
        type=DnsKind,
        choices=[DnsKind.ROUTE53, DnsKind.RFC2136],
        default=DnsKind.ROUTE53,
        help="the lab's DNS: route53 (default), or rfc2136, which benches a lab on BIND after one"
        " on Route53 and prints the writer's outage on both side by side",
    )
    parser.add_argument(
        "--metrics", action="store_true", help="the worker's metrics on and scraped every second"
    )
    parser.add_argument(
        "--restore",
        action="store_true",
        help="restore mode beside promotion at three database sizes, instead of the usual bench",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: at least 1")
    tag = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="hybridops-bench-", dir="/tmp"))
    tmp.chmod(0o755)  # PostgreSQL runs as an unprivileged user when we are root
    (tmp / "home").mkdir()
    os.environ[HOME_ENV] = str(tmp / "home")
    if args.restore:
        try:
            pairs = run_restore_lab(tmp, tag)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print_restore_report(pairs)
        return 1 if any(p.errors for p in pairs) else 0
    kinds = [DnsKind.ROUTE53] + ([DnsKind.RFC2136] if args.dns == DnsKind.RFC2136 else [])
    by_kind: dict[DnsKind, list[Run]] = {}
    try:
        for kind in kinds:
            lab, by_kind[kind] = run_lab(tmp, kind, args.runs, tag, args.metrics)
            print(f"=== DNS: {kind.value} ===")
            print_report(by_kind[kind], lab)
            print_placements(by_kind[kind])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(by_kind) > 1:
        print_outage_by_dns(by_kind)
    return 1 if any(r.errors for results in by_kind.values() for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
