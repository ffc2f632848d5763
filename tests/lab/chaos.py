"""The chaos matrix's parts: a worker kept alive through kills, the kills themselves (a DNS API
frozen, a server killed and rebooted), and the one assertion every case ends with.

Used by tests/lab/test_chaos_*.py and bench/chaos.py. Every case ends in
:func:`assert_one_writer`: exactly one writable server (read from the servers), DNS points at
it, at most one promotion (one new timeline), every acknowledged write of a server other than
the new primary present on it or counted by the evidence, and the evidence folders in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
from pydantic import BaseModel
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from drivers.postgres.binaries import chown_to
from hybridops.constants import Runbook, TaskQueue, WorkflowType
from hybridops.contracts.failback import FailbackResult
from hybridops.contracts.failover import FailoverResult
from hybridops.evidence import MANIFEST, verify_manifest
from hybridops.inventory import Inventory
from hybridops.lab import Lab
from hybridops.lab.layout import SITES
from hybridops.workload import Ack, read_ledger
from tests.lab.helpers import ask, dns_points_at, eventually, polling, role, spawn_worker, timeline
from tests.lab.sampler import WritableSampler

PROMOTE_MARK = "hybridops.promoted.json"
"""The driver's promote mark (drivers/postgres/server.py), written just before ``pg_promote``."""
FAILOVER_STEPS = (
    "plan_failover",
    "assess_sites",
    "gather_signals",
    "latest_readiness",
    "prepare_target",
    "fence_primary",
    "isolate_site",
    "check_promotion",
    "promote_standby",
    "repoint_apps",
    "dns_cutover",
    "verify_writes",
    "measure_rpo",
    "follow_primary",
    "write_evidence",
)
"""Every activity a failover with a reachable second standby runs, in order (onprem's server
dead, its agent alive: the fence is unverified and the control worker isolates the site). On
placement ``queues`` it schedules no ``decided`` checkpoint since patch
``failover-readiness-with-assess`` (workflows/failover.py): the readiness is read with the
servers, and the task that decides schedules the first change."""
FAILBACK_STEPS = (
    "plan_failover",
    "assess_sites",
    "checkpoint",
    "rejoin_standby",
    "catch_up",
    "pause_writes",
    "check_promotion",
    "promote_home",
    "repoint_apps",
    "dns_cutover",
    "verify_writes",
    "fence_primary",
    "retire_fence",
    "write_failback_evidence",
)
"""Every activity a failback runs (a crash fault fires on the first call of each)."""

TASK_TIMEOUT = timedelta(seconds=2)
"""The runs' workflow task timeout. A worker killed inside a workflow task (local activities
run inside one) is noticed by the server when the task times out; Temporal's default 10 s
would make the matrix wait 10 s a case for nothing but the clock. Same path, shorter wait."""
RUN_TIMEOUT_S = 180.0
"""A run of the matrix that has not ended by then is stuck: the case fails saying so."""
WARM_WRITES = 50
"""Acknowledged writes on the primary before the disaster, so there are writes to lose."""


# ---------------------------------------------------------------------- the world


def writable_now(lab: Lab) -> tuple[str, ...]:
    """The sites a new client could write to now, read from the servers (a site whose role
    cannot be read fails: :class:`tests.lab.helpers.RoleUnknown`)."""
    sampler = WritableSampler(lab)
    try:
        writable = sampler.sample()
        sampler.check_known()
        return writable
    finally:
        sampler.close()


def _replicas(lab: Lab, site: str) -> dict[str, str]:
    with psycopg.connect(
        host=lab.ip(site), port=lab.ports.pg, user="postgres", dbname="postgres", connect_timeout=2
    ) as conn:
        rows = conn.execute("SELECT application_name, state FROM pg_stat_replication").fetchall()
        return {r[0]: r[1] for r in rows}


def assert_starting_topology(lab: Lab) -> None:
    """What ``lab.reset()`` promises: onprem the one writable primary, azure and gcp
    streaming from it, DNS at onprem, no fence, pause, promotion or crash marks."""
    assert writable_now(lab) == ("onprem",), writable_now(lab)
    assert [role(lab, s) for s in SITES] == ["primary", "standby", "standby"]
    assert _replicas(lab, "onprem") == {"azure": "streaming", "gcp": "streaming"}
    assert dns_points_at(lab) == "onprem"
    marks = ("hybridops.fence.json", "hybridops.pause.json", "hybridops.promoted.json")
    left = [f"{s}/{m}" for s in SITES for m in marks if (lab.data_dir(s) / m).exists()]
    assert left == [], left
    assert not lab.faults_dir.exists() or list(lab.faults_dir.iterdir()) == []
    assert timeline(lab, "onprem") == 1


def highest_timeline(lab: Lab) -> int:
    """The highest timeline of the writable servers (the current primary's)."""
    return max(timeline(lab, s) for s in writable_now(lab))


async def writes_on(lab: Lab, site: str, at_least: int = WARM_WRITES, timeout: float = 60) -> None:
    async def enough() -> bool:
        acks = read_ledger(lab.ledger) if lab.ledger.exists() else []
        return sum(1 for a in acks if a.site == site) >= at_least

    try:
        await eventually(f"{at_least} acknowledged writes on {site}", enough, timeout=timeout)
    except AssertionError as err:
        log = lab.log("writer")
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else ["(no writer log)"]
        raise AssertionError(f"{err}\nthe writer's log ends:\n" + "\n".join(tail)) from None


def freeze_dns(lab: Lab) -> None:
    """The DNS API unreachable: moto's process stopped (SIGSTOP), its zone kept in memory.
    Connections are accepted by the kernel and never answered, as behind a dead route."""
    pid = lab.pid("dns")
    assert pid is not None, "the lab's DNS API is not running"
    os.killpg(pid, signal.SIGSTOP)


def thaw_dns(lab: Lab) -> None:
    pid = lab.pid("dns")
    assert pid is not None, "the lab's DNS API is gone"
    os.killpg(pid, signal.SIGCONT)


def reboot_site(lab: Lab, site: str, timeout: float = 30) -> None:
    """Start ``site``'s server again once its killed postmaster is gone (as a host reboots)."""
    pid_file = lab.data_dir(site) / "postmaster.pid"

    def reaped() -> bool:
        # A zombie still holds its pid, and pg_ctl would take it for a running server.
        try:
            return not psutil.pid_exists(int(pid_file.read_text().split("\n", 1)[0]))
        except (FileNotFoundError, ValueError):
            return True

    deadline = time.monotonic() + timeout
    while not reaped():
        assert time.monotonic() < deadline, f"{site}'s killed server was never reaped"
        time.sleep(0.02)
    lab.pg_start(site)


def interrupt_promotion(lab: Lab, site: str, run_id: str) -> str:
    """The window of an interrupted promotion, made without racing a kill: PostgreSQL removes
    ``standby.signal`` after it chose the new timeline and before the switch is durable, so a
    standby killed in between starts again as a primary on its old timeline. Here: the
    standby (caught up) stopped cleanly, ``run_id``'s promote mark written as the driver
    writes it before ``pg_promote`` (the timeline it leaves, where its replay ended), the
    signal file removed, the server started. Returns the replay LSN the mark records."""
    row = ask(
        lab,
        site,
        "SELECT pg_last_wal_replay_lsn()::text, (SELECT timeline_id FROM pg_control_checkpoint()),"
        " pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()",
    )
    assert row is not None and row[2], f"{site} is not a caught-up standby: {row}"
    replay_lsn, tli = str(row[0]), int(row[1])
    data = lab.data_dir(site)
    lab.postgres.stop_server(site)
    mark = {"promoted_by": run_id, "at": "2026-01-01T00:00:00+00:00", "from_timeline": tli}
    mark["replay_lsn"] = replay_lsn
    (data / PROMOTE_MARK).write_text(json.dumps(mark))
    chown_to(data / PROMOTE_MARK, lab.run_as)
    (data / "standby.signal").unlink()
    lab.pg_start(site)
    return replay_lsn


# ---------------------------------------------------------------------- workers


@dataclass
class WorkerKeeper:
    """The lab's worker processes, each restarted whenever it dies, as a supervisor would: the
    control worker (``hybridops worker``) and each site's agent (``hybridops worker --site``).
    A crash fault SIGKILLs whichever runs its step; :meth:`kill` does it from outside. Each
    death is recorded with its return code (``-9`` for SIGKILL)."""

    lab: Lab
    deaths: list[int] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    @staticmethod
    def names() -> list[str | None]:
        """None: the control worker; a site: its agent."""
        return [None, *SITES]

    def start(self) -> None:
        for site in self.names():
            self.procs[site or ""] = spawn_worker(self.lab, site)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None:
                    self.deaths.append(proc.returncode)
                    self.procs[name] = spawn_worker(self.lab, name or None)
            await asyncio.sleep(0.05)

    def kill(self, site: str | None = None) -> None:
        """SIGKILL the control worker, or ``site``'s agent (the keeper restarts it)."""
        proc = self.procs.get(site or "")
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@contextlib.asynccontextmanager
async def kept_worker(lab: Lab) -> AsyncIterator[WorkerKeeper]:
    keeper = WorkerKeeper(lab)
    since = datetime.now(UTC)
    keeper.start()
    try:
        await polling(lab, keeper.names(), since)
        yield keeper
    finally:
        keeper.stop()


# ---------------------------------------------------------------------- runs


@dataclass
class Run:
    """One run of the case and how it ended."""

    runbook: Runbook
    workflow_id: str
    status: str
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)


_TYPES: dict[Runbook, tuple[WorkflowType, type[BaseModel]]] = {
    Runbook.FAILOVER: (WorkflowType.FAILOVER, FailoverResult),
    Runbook.FAILBACK: (WorkflowType.FAILBACK, FailbackResult),
}


async def start_run(client: Client, inv: Inventory, runbook: Runbook, arg: Any) -> WorkflowHandle[Any, Any]:
    wf_type, result_type = _TYPES[runbook]
    return await client.start_workflow(
        wf_type.value,
        arg,
        id=f"chaos-{runbook.value}-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=result_type,
        task_timeout=TASK_TIMEOUT,
    )


async def finish(handle: WorkflowHandle[Any, Any], runbook: Runbook, timeout: float = RUN_TIMEOUT_S) -> Run:
    """Wait for the run's end (bounded): its status, error and result as the workflow gave them."""
    try:
        result = await asyncio.wait_for(handle.result(), timeout)
    except WorkflowFailureError as err:
        details = getattr(err.cause, "details", None) or [{}]
        data = details[0] if isinstance(details[0], dict) else {}
        return Run(runbook, handle.id, str(data.get("status", "failed")), str(data.get("error", err)), data)
    except TimeoutError:
        raise AssertionError(f"{runbook.value} run {handle.id} did not end within {timeout:.0f} s") from None
    data = result.model_dump(mode="json")
    return Run(runbook, handle.id, str(data["status"]), str(data.get("error") or ""), data)


# ---------------------------------------------------------------------- the one assertion


@dataclass(frozen=True)
class Outcome:
    """What :func:`assert_one_writer` found, for a case's or the bench's report."""

    writer: str
    timeline: int
    lost: int
    counted: int


def _present(lab: Lab, site: str, seqs: list[int]) -> set[int]:
    with psycopg.connect(host=lab.ip(site), port=lab.ports.pg, user="postgres", dbname="app") as conn:
        rows = conn.execute("SELECT seq FROM hybridops_workload WHERE seq = ANY(%s)", (seqs,)).fetchall()
        return {r[0] for r in rows}


def evidence_of(inv: Inventory, run: Run) -> dict[str, Any]:
    """The run's evidence.json, after checking the folder holds it and a manifest that matches."""
    folder = Path(inv.output_dir) / run.runbook.value / run.workflow_id
    assert folder.is_dir(), f"no evidence folder for {run.workflow_id} ({folder.name})"
    names = {p.name for p in folder.iterdir()}
    assert {"evidence.json", MANIFEST} <= names, f"{run.workflow_id}: evidence folder holds {sorted(names)}"
    assert verify_manifest(folder) == [], f"{run.workflow_id}: files differ from the manifest"
    data: dict[str, Any] = json.loads((folder / "evidence.json").read_text())
    return data


def assert_one_writer(
    lab: Lab, inv: Inventory, runs: list[Run], start_timeline: int, promoted: bool | None = True
) -> Outcome:
    """The issue's end-of-case assertion. ``start_timeline``: the primary's timeline when the
    case began; ``promoted``: True when the case must promote exactly once, None for at most
    once (a case whose right ending may be to promote nobody)."""
    lab.stop_code()  # the writer: the ledger stops growing
    writable = writable_now(lab)
    assert len(writable) == 1, f"exactly one writable server at the end, found {list(writable) or 'none'}"
    writer = writable[0]
    points = dns_points_at(lab)
    assert points == writer, f"DNS points at {points}, the writable server is {writer}"
    tl = timeline(lab, writer)
    if promoted:
        assert tl == start_timeline + 1, (
            f"{writer} is on timeline {tl}: not promoted exactly once from {start_timeline}"
        )
    else:
        assert tl <= start_timeline + 1, (
            f"{writer} is on timeline {tl}: promoted more than once from {start_timeline}"
        )

    counted = 0
    acks = read_ledger(lab.ledger) if lab.ledger.exists() else []
    for run in runs:
        evidence = evidence_of(inv, run)
        rpo = evidence.get("rpo") or {}
        counted += int(rpo.get("transactions_lost") or 0)
        assert_rto_is_the_outage(evidence, acks)
    elsewhere = [a.seq for a in acks if a.site != writer]
    missing = set(elsewhere) - _present(lab, writer, elsewhere) if elsewhere else set()
    assert len(missing) <= counted, (
        f"{len(missing)} acknowledged writes missing on {writer}, the evidence counts {counted}"
        f" (first missing: {sorted(missing)[:10]})"
    )
    return Outcome(writer, tl, len(missing), counted)


def assert_rto_is_the_outage(evidence: dict[str, Any], acks: list[Ack]) -> None:
    """A failover whose RTO counts from the writer's ledger states the outage the writer saw:
    from its last acknowledged write on the old primary to its first on the new one (within
    100 ms), and its split adds up to it."""
    rto = evidence.get("rto") or {}
    if evidence.get("runbook") != "failover" or "ledger" not in (rto.get("counted_from") or ""):
        return
    target, since = evidence["target"], datetime.fromisoformat(rto["since"])
    last = max(a.acked_at for a in acks if a.site != target and a.acked_at <= since)
    back = min(a.acked_at for a in acks if a.site == target and a.acked_at > last)
    outage = (back - last).total_seconds()
    assert abs(rto["seconds"] - outage) <= 0.1, f"RTO {rto['seconds']} s, the writer's outage {outage:.3f} s"
    split = rto["split"]
    keys = ("detection_s", "decision_s", "execution_s", "reconnect_s")
    parts = [split[k] for k in keys if split[k] is not None]
    assert abs(sum(parts) - rto["seconds"]) <= 0.005, (split, rto["seconds"])


def assert_case(
    lab: Lab,
    inv: Inventory,
    runs: list[Run],
    start_timeline: int,
    sampler: WritableSampler,
    promoted: bool | None = True,
    succeeded: bool = True,
    premise: frozenset[str] = frozenset(),
    until: datetime | None = None,
) -> Outcome | None:
    """Every check of a case, each reported even when another failed: the sampler (no instant
    with two writers, see :meth:`WritableSampler.check` for ``premise``), the end state
    (:func:`assert_one_writer`) and, with ``succeeded``, the last run's status."""
    failures: list[str] = []
    out: Outcome | None = None
    try:
        sampler.check(premise, until)
    except AssertionError as err:
        failures.append(f"sampler: {err}")
    try:
        out = assert_one_writer(lab, inv, runs, start_timeline, promoted)
    except AssertionError as err:
        failures.append(f"end state: {err}")
    last = runs[-1]
    if succeeded and last.status != "succeeded":
        failures.append(f"{last.runbook.value} {last.workflow_id} {last.status}: {last.error}")
    if failures:
        # Each run's ending and its steps, whole: a failure under load must say which step.
        for run in runs:
            steps = ", ".join(f"{s.get('name')}={s.get('outcome')}" for s in run.result.get("steps", []))
            failures.append(f"run {run.workflow_id} {run.status}: {run.error}; steps: {steps or '-'}")
        raise AssertionError("\n".join(failures))
    return out
