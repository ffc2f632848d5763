"""FailbackWorkflow on the real dev server against the real lab: a whole cycle (failover, writes
on the cloud, failback) with the writer running, and a failback whose promotion fails."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory

from drivers.postgres import binaries as pgbin
from drivers.postgres.local import LocalPostgresDriver
from hybridops.cli.replayer import make_replayer
from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY, TaskQueue, WorkflowType
from hybridops.contracts.base import ApprovalInput, Progress, RunStatus, TargetChoice
from hybridops.contracts.failback import FailbackInput, FailbackResult, RejoinMethod, RejoinOutcome
from hybridops.contracts.failover import FailoverInput
from hybridops.evidence import verify_manifest
from hybridops.inventory import Inventory
from hybridops.lab import Lab
from hybridops.workload import Ack, read_ledger
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    assert_one_writer,
    can_write,
    dns_points_at,
    eventually,
    fenced,
    role,
    scheduled_queues,
    start,
    timeline,
)
from tests.lab.sampler import WritableSampler
from workflows.failback import FailbackWorkflow

SITES = ("onprem", "azure", "gcp")


async def _start_failback(client: Client, inv: Inventory, arg: Any) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        WorkflowType.FAILBACK.value,
        arg,
        id=f"test-failback-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=FailbackResult,
    )


async def _failover_to_azure(client: Client, inv: Inventory, lab: Lab) -> Any:
    at = lab.break_site("onprem")
    handle = await start(client, inv, FailoverInput(target=TargetChoice.AZURE, incident_started_at=at))
    result = await handle.result()
    assert result.status == RunStatus.SUCCEEDED and dns_points_at(lab) == "azure"
    return result


def _acks(lab: Lab) -> list[Ack]:
    return read_ledger(lab.ledger) if lab.ledger.exists() else []


def _present(lab: Lab, site: str, seqs: list[int]) -> set[int]:
    with psycopg.connect(host=lab.ip(site), port=lab.ports.pg, user="postgres", dbname="app") as conn:
        rows = conn.execute("SELECT seq FROM hybridops_workload WHERE seq = ANY(%s)", (seqs,)).fetchall()
        return {r[0] for r in rows}


def _replicas(lab: Lab, site: str) -> dict[str, str]:
    with psycopg.connect(host=lab.ip(site), port=lab.ports.pg, user="postgres", dbname="postgres") as conn:
        rows = conn.execute("SELECT application_name, state FROM pg_stat_replication").fetchall()
        return {r[0]: r[1] for r in rows}


async def _writes_on(lab: Lab, site: str, at_least: int) -> bool:
    return sum(1 for a in _acks(lab) if a.site == site) >= at_least


async def _reaped(lab: Lab, site: str) -> bool:
    pid = int((lab.data_dir(site) / "postmaster.pid").read_text().split("\n", 1)[0])
    return not psutil.pid_exists(pid)


async def _waiting(handle: WorkflowHandle[Any, Any]) -> bool:
    prog = await handle.query(PROGRESS_QUERY, result_type=Progress)
    return prog.waiting_for_approval


def _no_marks(lab: Lab, site: str) -> bool:
    d = lab.data_dir(site)
    return not any((d / name).exists() for name in ("hybridops.fence.json", "hybridops.pause.json"))


async def test_full_cycle_with_the_writer_running(client: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.start_writer()
    try:
        await eventually("writes on onprem", lambda: _writes_on(lab, "onprem", 200), timeout=60)
        failover = await _failover_to_azure(client, inv, lab)
        await eventually("writes on azure", lambda: _writes_on(lab, "azure", 200), timeout=60)
        # Writes acknowledged by onprem that never reached azure were the failover's RPO
        # (asynchronous replication, a killed primary), and the failover measured exactly
        # those; the rewind discards them on onprem too. Everything else must survive.
        on_onprem = [a.seq for a in _acks(lab) if a.site == "onprem"]
        lost_in_failover = set(on_onprem) - _present(lab, "azure", on_onprem)
        assert len(lost_in_failover) == failover.rpo.transactions_lost

        with WritableSampler(lab) as sampler:
            handle = await _start_failback(client, inv, FailbackInput(reason="test: failback"))
            await eventually("the approval gate", lambda: _waiting(handle), timeout=120)
            # At the gate: home is a streaming standby of azure, still marked; nothing moved.
            assert role(lab, "onprem") == "standby" and fenced(lab, "onprem")
            assert _replicas(lab, "azure").get("onprem") == "streaming"
            assert dns_points_at(lab) == "azure" and can_write(lab, "azure")
            await handle.execute_update(APPROVE_UPDATE, ApprovalInput(by="alice", comment="home"))
            result: FailbackResult = await handle.result()
            count_at_end = len(_acks(lab))
            again = len(on_onprem) + 200
            await eventually("writes on onprem again", lambda: _writes_on(lab, "onprem", again))
        assert sampler.instants > 50, sampler.instants
        sampler.check()  # no instant with two writable servers, none with a role unknown
        assert sampler.violations == [], sampler.violations
        assert sampler.seen_writable == {"onprem", "azure"}
    finally:
        lab.stop_code()  # the writer

    assert result.status == RunStatus.SUCCEEDED, result.error
    assert result.home == "onprem" and result.old_primary == "azure" and result.other_standbys == ["gcp"]
    assert result.rejoin == RejoinOutcome.REWOUND and result.moved_aside is None
    assert result.old_primary_rejoin == RejoinOutcome.REWOUND
    assert result.point_of_no_return_passed and result.warnings == []
    assert result.write_pause_seconds is not None and 0 < result.write_pause_seconds < 10
    names = [s.name for s in result.steps]
    assert names == [
        "plan",
        "assess",
        "rejoin_home",
        "catch_up",
        "approval",
        "plan_again",  # the look after the waits, before pausing anything
        "assess_again",
        "pause_writes",
        "wait_replayed",
        "promote_home",
        "repoint_apps",
        "dns_cutover",
        "verify",
        "rejoin_gcp",
        "fence_old_primary",
        "rejoin_old_primary",
        # Each fence mark is in its own site's data directory: its agent retires it.
        "retire_fence_onprem",
        "retire_fence_azure",
    ]
    assert [(a.by, a.approved) for a in result.approvals] == [("alice", True)]

    # The lab is as it began: onprem the writable primary, both clouds its streaming standbys,
    # DNS at onprem, no marks left.
    assert dns_points_at(lab) == "onprem"
    assert role(lab, "onprem") == "primary" and can_write(lab, "onprem")
    assert role(lab, "azure") == "standby" and role(lab, "gcp") == "standby"
    assert _replicas(lab, "onprem") == {"azure": "streaming", "gcp": "streaming"}
    assert timeline(lab, "onprem") == 3
    assert not fenced(lab, "onprem") and not (lab.data_dir("onprem") / "standby.signal").exists()
    assert all(_no_marks(lab, s) for s in SITES)
    status = lab.status()
    assert [status[f"pg:{s}"] for s in SITES] == ["primary", "standby", "standby"]

    # Zero data loss in the switchover: every acknowledged write is on onprem, except those
    # the failover (asynchronous replication, a killed primary) had already lost.
    acks = _acks(lab)
    missing = {a.seq for a in acks} - _present(lab, "onprem", [a.seq for a in acks])
    assert missing <= lost_in_failover, sorted(missing - lost_in_failover)[:20]
    assert {a.site for a in acks[:count_at_end]} >= {"onprem", "azure"}

    # The pause as the writer saw it: the longest gap between two acknowledged writes.
    assert result.paused_at is not None and result.first_write_at is not None
    around = [a.acked_at for a in acks if a.acked_at >= result.paused_at.replace(microsecond=0)]
    gap = max((b - a).total_seconds() for a, b in itertools.pairwise(around))
    print(
        f"\nfailback: rejoin {result.rejoin_seconds} s, catch-up {result.catch_up_seconds} s,"
        f" switchover {result.switchover_seconds} s, write pause {result.write_pause_seconds} s"
        f" (writer's longest gap {gap:.3f} s), {sampler.instants} samples, lost in failover"
        f" {len(lost_in_failover)}"
    )

    # Evidence: every file, a manifest that matches, a history that replays.
    folder = Path(inv.output_dir) / "failback" / handle.id
    files = {p.name for p in folder.iterdir()}
    assert files >= {"evidence.json", "report.md", "history.json", "manifest.json"}
    assert verify_manifest(folder) == []
    evidence = json.loads((folder / "evidence.json").read_text())
    assert evidence["status"] == "succeeded" and evidence["rto"]["seconds"] == result.write_pause_seconds
    history = WorkflowHistory.from_json(handle.id, (folder / "history.json").read_text())
    await make_replayer([FailbackWorkflow]).replay_workflow(history)
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


async def test_promote_failure_compensates(client: Client, lab: Lab, run_workers) -> None:
    """Home is re-cloned (forced), writes pause, promotion fails: writes resume on azure, DNS
    stays, home stays a standby of azure; its old data directory was moved aside, not deleted."""
    inv = lab_inventory(lab, faults={"promote_home": "fail"})
    await run_workers(client, inv)
    await _failover_to_azure(client, inv, lab)
    with WritableSampler(lab) as sampler:
        handle = await _start_failback(
            client, inv, FailbackInput(require_approval=False, rejoin_method=RejoinMethod.RECLONE)
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    sampler.check()  # no instant with two writable servers, none with a role unknown
    assert sampler.violations == [] and sampler.seen_writable == {"azure"}
    details = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert details["status"] == "compensated", details["error"]
    assert "InjectedFault" in details["error"]
    assert [c["name"] for c in details["compensations"]] == ["resume_writes"]
    assert details["compensations"][0]["outcome"] == "changed"
    assert details["rejoin"] == "recloned" and not details["point_of_no_return_passed"]
    # azure's agent resumed its own server's writes; the reader checked the others first.
    history = await handle.fetch_history()
    queues = scheduled_queues(history)
    assert queues["check_resume"] == {inv.queue(TaskQueue.DB)}
    assert queues["resume_writes"] == {inv.site_queue("azure")}

    assert dns_points_at(lab) == "azure" and can_write(lab, "azure")
    assert role(lab, "onprem") == "standby" and fenced(lab, "onprem")
    assert _replicas(lab, "azure") == {"onprem": "streaming", "gcp": "streaming"}
    assert _no_marks(lab, "azure")
    # Rejoining again changes nothing: home already streams from azure.
    again = await LocalPostgresDriver(inv).rewind("onprem", "azure", "again")
    assert again.outcome == RejoinOutcome.UNCHANGED and not again.changed
    moved = Path(details["moved_aside"])
    assert moved.parent == lab.data_dir("onprem").parent and (moved / "PG_VERSION").exists()
    evidence = json.loads((Path(inv.output_dir) / "failback" / handle.id / "evidence.json").read_text())
    assert evidence["status"] == "compensated"
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


async def test_a_blocked_promotion_waits_no_longer_than_the_pause(
    client: Client, lab: Lab, run_workers
) -> None:
    """A safety rule blocks home's promotion while writes are paused: the override is waited
    for no longer than writes may stay paused (``max_pause_s``, not the policy's hour); then
    the run stops naming the rule, writes resume on azure, DNS stays there."""
    inv = lab_inventory(lab, faults={"promote_home": "block:not_forked"})
    await run_workers(client, inv)
    await _failover_to_azure(client, inv, lab)
    handle = await _start_failback(client, inv, FailbackInput(require_approval=False, max_pause_s=2))
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    details = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert details["status"] == "compensated", details["error"]
    assert "no override of not_forked within 2 s" in details["error"]
    assert [c["name"] for c in details["compensations"]] == ["resume_writes"]
    assert not details["point_of_no_return_passed"]
    assert dns_points_at(lab) == "azure" and can_write(lab, "azure")
    assert role(lab, "onprem") == "standby"
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert assert_one_writer(lab) == "azure"


def test_input_from_the_ui() -> None:
    """``{}`` is a valid input; a mistyped field is an error that names it."""
    assert FailbackInput.model_validate({}) == FailbackInput()
    assert FailbackInput().require_approval and FailbackInput().home is None
    with pytest.raises(ValidationError, match="max_pause_s"):
        FailbackInput.model_validate({"max_pause_s": 0})
    with pytest.raises(ValidationError, match="hom"):
        FailbackInput.model_validate({"hom": "onprem"})


async def test_nothing_to_fail_back_changes_nothing(client: Client, lab: Lab, run_workers) -> None:
    """onprem is still the writable primary: the run refuses once it has read the servers,
    before touching anything."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    handle = await _start_failback(client, inv, {})
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    details = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert "NothingToFailBack" in details["error"] and details["compensations"] == []
    assert [s["name"] for s in details["steps"]] == ["plan", "assess"]
    assert role(lab, "onprem") == "primary" and can_write(lab, "onprem") and dns_points_at(lab) == "onprem"
    assert _replicas(lab, "onprem") == {"azure": "streaming", "gcp": "streaming"}
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


async def test_diverged_home_is_rewound(client: Client, lab: Lab, run_workers) -> None:
    """Home took writes azure never saw (a staged split brain on its old timeline): pg_rewind
    discards them, and home comes back with azure's history only."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    await _failover_to_azure(client, inv, lab)
    signal = lab.data_dir("onprem") / "standby.signal"
    signal.unlink()  # lift the fence, as nobody should, to make the divergence
    await eventually("the killed onprem to be reaped", lambda: _reaped(lab, "onprem"))
    lab.pg_start("onprem")
    stray = list(range(1_000_000, 1_001_000))
    with psycopg.connect(
        host=lab.ip("onprem"), port=lab.ports.pg, user="postgres", dbname="app", autocommit=True
    ) as conn:
        conn.execute("INSERT INTO hybridops_workload (seq) SELECT unnest(%s::bigint[])", (stray,))
    lab.kill_site("onprem")
    signal.write_text("")
    pgbin.chown_to(signal, lab.run_as)

    handle = await _start_failback(client, inv, FailbackInput(require_approval=False))
    result: FailbackResult = await handle.result()
    assert result.status == RunStatus.SUCCEEDED and result.rejoin == RejoinOutcome.REWOUND
    rejoin = next(s for s in result.steps if s.name == "rejoin_home")
    assert "(pg_rewind)" in rejoin.detail
    assert role(lab, "onprem") == "primary" and dns_points_at(lab) == "onprem"
    assert _present(lab, "onprem", stray) == set()
    assert _replicas(lab, "onprem") == {"azure": "streaming", "gcp": "streaming"}
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)
