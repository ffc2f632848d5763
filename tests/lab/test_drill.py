"""DrillWorkflow on the real lab: a drill passes and measures its RTO and RPO without touching
production; a too-tight objective fails the drill but still tears down; a schedule fires one;
``drill status`` says when the last one passed."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from drivers.lazy import Drivers
from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.drill import DrillInput, DrillResult
from hybridops.drills import create_schedule, drill_status, schedule_id
from hybridops.inventory import Inventory
from hybridops.lab import Lab
from hybridops.workload import read_ledger
from tests.conftest import lab_inventory
from tests.lab.helpers import assert_one_writer, dns_changes, dns_points_at, eventually, fenced, role


def production(lab: Lab) -> dict[str, Any]:
    """What a drill must leave alone: roles, fence marks, DNS (and its change count), the
    timelines in the WAL archive, and who replicates from the primary."""
    import psycopg

    with psycopg.connect(
        host=lab.ip("onprem"), port=lab.ports.pg, user="postgres", dbname="postgres"
    ) as conn:
        streaming = sorted(r[0] for r in conn.execute("SELECT application_name FROM pg_stat_replication"))
    return {
        "roles": {s: role(lab, s) for s in ("onprem", "azure", "gcp")},
        "fenced": {s: fenced(lab, s) for s in ("onprem", "azure", "gcp")},
        "dns": dns_points_at(lab),
        "dns_changes": dns_changes(lab),
        "history_files": sorted(p.name for p in lab.archive.glob("*.history")),
        "streaming": streaming,
    }


async def backup_with_rows(lab: Lab, inv: Inventory) -> None:
    """A base backup, then the writer's rows after it, archived (they come back through the
    archive). Switching the WAL segment stands for ``archive_timeout`` passing."""
    import psycopg

    await Drivers(inv).take_backup(None)
    lab.start_writer()
    await eventually("200 acknowledged writes", lambda: _acks(lab, 200))
    with psycopg.connect(
        host=lab.ip("onprem"), port=lab.ports.pg, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        (segment,) = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()  # type: ignore[misc]

        async def archived() -> bool:
            (last,) = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()  # type: ignore[misc]
            return last is not None and last >= segment

        await eventually(f"segment {segment} archived", archived)


async def _acks(lab: Lab, n: int) -> bool:
    return lab.ledger.exists() and len(read_ledger(lab.ledger)) >= n


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


async def run_drill(client: Client, inv: Inventory, inp: DrillInput | dict[str, Any]) -> Any:
    return await client.start_workflow(
        WorkflowType.DRILL.value,
        inp,
        id=f"test-drill-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=DrillResult,
    )


async def test_a_drill_passes_and_never_touches_production(client: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    await backup_with_rows(lab, inv)
    before = production(lab)

    result: DrillResult = await (await run_drill(client, inv, {})).result()

    assert result.passed and result.error is None
    assert result.rto_seconds is not None and 0 < result.rto_seconds < inv.drill.rto_objective_s
    assert result.rpo_seconds is not None and 0 <= result.rpo_seconds < inv.drill.rpo_objective_s
    assert result.rows_restored and result.rows_restored > 0
    assert [c.name for c in result.slo] == ["rto", "rpo"] and all(c.passed for c in result.slo)
    names = [s.name for s in result.steps]
    assert names == ["plan", "restore_backup", "start_scratch", "verify_restore", "teardown_scratch"]
    # Torn down: nothing listens on the scratch address, the directory is gone.
    assert not listening(f"{inv.backup.scratch_host}:{inv.backup.scratch_port}")
    assert not any(Path(inv.backup.scratch_dir or "").glob("*"))
    # Production untouched (the writer's rows in the ledger keep growing: that is the writer).
    lab.stop_code()
    assert production(lab) == before
    evidence = json.loads((Path(result.evidence_dir or "") / "evidence.json").read_text())
    assert evidence["details"]["passed"] and evidence["rto"]["seconds"] == result.rto_seconds
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


async def test_a_too_tight_rpo_fails_the_drill_but_tears_down(client: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    await backup_with_rows(lab, inv)
    lab.stop_code()  # the writer stops: the newest restored row is now certainly in the past

    handle = await run_drill(client, inv, DrillInput(rpo_objective_s=0))
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    details: dict[str, Any] = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert not details["passed"] and details["status"] == "failed"
    rpo = next(c for c in details["slo"] if c["name"] == "rpo")
    assert not rpo["passed"] and "> objective 0 s" in rpo["detail"]
    assert next(c for c in details["slo"] if c["name"] == "rto")["passed"]
    assert details["steps"][-1]["name"] == "teardown_scratch" and details["steps"][-1]["outcome"] == "changed"
    assert not listening(f"{inv.backup.scratch_host}:{inv.backup.scratch_port}")
    assert not any(Path(inv.backup.scratch_dir or "").glob("*"))
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


async def test_a_drill_without_a_backup_fails_clearly(client: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    with pytest.raises(WorkflowFailureError) as failure:
        await (await run_drill(client, inv, {})).result()
    details: dict[str, Any] = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert "no backups to restore" in details["error"]
    assert details["steps"][-1]["name"] == "teardown_scratch"
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


async def test_a_scheduled_drill_fires_and_status_follows(client: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    assert (await drill_status(client, inv)).overdue  # no drill has passed yet
    lab.start_writer()  # rows for the RPO; the scheduled drill takes its own backup first
    await eventually("100 acknowledged writes", lambda: _acks(lab, 100))

    name = f"t-{uuid.uuid4().hex[:8]}"
    sid = await create_schedule(
        client, inv, name, "0 3 * * 6", tz="Europe/Paris", inp=DrillInput(take_backup_first=True)
    )
    handle = client.get_schedule_handle(sid)
    try:
        desc = await handle.describe()
        assert desc.schedule.spec.cron_expressions or desc.schedule.spec.calendars
        assert desc.schedule.spec.time_zone_name == "Europe/Paris"
        assert desc.info.next_action_times and desc.info.next_action_times[0].weekday() in (4, 5)
        await handle.pause(note="test")
        assert (await handle.describe()).schedule.state.paused
        await handle.unpause()
        await handle.trigger()

        query = (
            f'WorkflowType = "{WorkflowType.DRILL.value}" AND TaskQueue = "{inv.queue(TaskQueue.CONTROL)}"'
        )

        async def completed() -> list[Any]:
            runs = [w async for w in client.list_workflows(query)]
            return [w for w in runs if w.status == WorkflowExecutionStatus.COMPLETED]

        (run,) = await eventually("the scheduled drill to complete", completed, timeout=90)
        assert run.id.startswith(f"{sid}-run")
        result = await client.get_workflow_handle(run.id, result_type=DrillResult).result()
        assert result.passed and result.input.requested_by == f"schedule:{sid}"
        status = await drill_status(client, inv)
        assert not status.overdue and status.last_passed_id == run.id
    finally:
        await handle.delete()
    assert schedule_id(name) == sid
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)
