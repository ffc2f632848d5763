"""A failover's restore mode against the real lab: onprem and azure dead (servers and agents
killed, as hosts die), gcp's standby stopped (not fit to promote), so the run restores the
newest backup onto gcp from the WAL archive and starts it as the primary on a new timeline.

One lab for the module, reset between cases; each case takes its own backup (a reset drops
the backups of the databases it replaced)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory

from drivers.lazy import Drivers
from drivers.postgres.restore import RESTORE_MARK
from drivers.postgres.timelines import archived_timelines
from hybridops.cli.replayer import make_replayer
from hybridops.contracts.base import RunStatus, StepOutcome
from hybridops.contracts.decision import DrMode
from hybridops.contracts.failover import FailoverResult
from hybridops.inventory import Inventory
from hybridops.lab import Lab
from hybridops.workload import read_ledger
from tests.conftest import lab_inventory
from tests.lab.chaos import WorkerKeeper
from tests.lab.helpers import (
    assert_one_writer,
    dns_points_at,
    eventually,
    fenced,
    role,
    start,
    timeline,
)
from workers.main import build_agent
from workflows.failover import FailoverWorkflow


async def two_hosts_die(lab: Lab) -> datetime:
    """A backup of onprem, then gcp's standby stopped (unfit), azure's and onprem's hosts
    killed (``hybridops lab break onprem azure``). Returns the incident's time."""
    await Drivers(lab.inventory()).take_backup("onprem")
    lab.postgres.stop_server("gcp")
    lab.break_site("azure")
    return lab.break_site("onprem")


def the_archive_timelines(lab: Lab) -> set[int]:
    return set(archived_timelines(lab.archive))


async def test_restore_mode_end_to_end(client: Client, module_lab: Lab, run_workers) -> None:
    """``{}`` as from the UI: the decision is restore, to gcp (azure's host is dead); the
    writer resumes on gcp, the RPO is counted from its ledger, one writer, DNS at it."""
    lab = module_lab
    inv = lab_inventory(lab)
    # The control workers, and gcp's agent alone: onprem's and azure's hosts are dead.
    await run_workers(client, inv, agents=False)
    agent = build_agent(client, inv, "gcp")
    running = asyncio.create_task(agent.run())
    try:
        await _end_to_end(client, lab, inv)
    finally:
        await agent.shutdown()
        running.cancel()


async def _end_to_end(client: Client, lab: Lab, inv: Inventory) -> None:
    lab.start_writer()
    await eventually("the writer's first 100 writes", _ledger_at_least(lab, 100))
    before = the_archive_timelines(lab)
    at = await two_hosts_die(lab)

    handle = await start(client, inv, {})
    result: FailoverResult = await handle.result()

    assert result.status == RunStatus.SUCCEEDED, result.error
    assert result.decision is not None and result.decision.dr_mode == DrMode.RESTORE
    assert result.target == "gcp" and dns_points_at(lab) == "gcp"
    names = [s.name for s in result.steps]
    probe = next(s for s in result.steps if s.name == "probe_agent_azure")
    assert probe.outcome == StepOutcome.SKIPPED and "host is down" in probe.detail
    assert names.index("pick_backup") < names.index("prepare_target") < names.index("fence_old_primary")
    assert names.index("fence_azure") < names.index("restore_primary") < names.index("dns_cutover")
    assert "promote" not in names
    for site in ("onprem", "azure"):
        fence = next(s for s in result.steps if s.name == f"fence_{site}" or s.name == "fence_old_primary")
        assert fence.outcome == StepOutcome.SKIPPED and "host is down" in fence.detail
    assert "isolate_old_primary" in names and "isolate_azure" in names

    # Evidence of the restore: which backup, to where, the new timeline, how long.
    restore = result.restore
    assert restore is not None and restore.changed
    assert result.backup_picked is not None and restore.backup == result.backup_picked.backup.name
    assert restore.backup_site == "onprem" and restore.backup_finished_at is not None
    assert restore.replayed_to_lsn and restore.restore_seconds > 0
    assert set(restore.archived_timelines) == before
    assert restore.timeline > max(before, default=1) and timeline(lab, "gcp") == restore.timeline
    assert restore.timeline in the_archive_timelines(lab)  # its history file, archived by gcp
    assert restore.replaced and Path(restore.replaced).is_dir()  # the old standby, kept

    # The writer resumes through the DNS name on the restored primary; the RPO is counted from
    # its ledger, exactly as after a promotion.
    async def resumed() -> bool:
        return any(a.site == "gcp" for a in read_ledger(lab.ledger))

    await eventually("the writer's first write on gcp", resumed, timeout=60)
    assert result.rpo.method == "ledger", result.rpo
    assert result.rpo.transactions_lost is not None and result.rpo.seconds is not None
    assert result.rto_seconds is not None and result.rto_seconds > 0
    assert role(lab, "onprem") == "down" and role(lab, "azure") == "down"

    folder = Path(inv.output_dir) / "failover" / handle.id
    evidence = json.loads((folder / "evidence.json").read_text())
    assert evidence["details"]["restore"]["backup"] == restore.backup
    history = WorkflowHistory.from_json(handle.id, (folder / "history.json").read_text())
    await make_replayer([FailoverWorkflow]).replay_workflow(history)
    assert_one_writer(lab)
    assert at <= result.started_at


@pytest.mark.parametrize("crash", ["crash:at-swapping", "crash"])
async def test_worker_killed_mid_restore(client: Client, module_lab: Lab, crash: str) -> None:
    """The restoring agent is SIGKILLed mid-restore (``at-swapping``: the copy complete and
    marked beside the data directory, not yet in place) or once the restore is done and before
    its result is recorded (``crash``). The retry finishes the swap with the copy it finds, or
    finds the restored server marked by this run and proves it: one restore, one writer."""
    lab = module_lab
    inv = lab_inventory(lab, faults={"restore_primary": crash})
    keeper = WorkerKeeper(lab)
    keeper.start()
    try:
        await two_hosts_die(lab)
        handle = await start(client, inv, {})
        result: FailoverResult = await handle.result()
    finally:
        keeper.stop()
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert keeper.deaths, "the crash fault did not fire"
    restore = result.restore
    assert restore is not None and restore.attempt >= 2
    if crash == "crash":
        assert not restore.changed and "already restored by" in restore.detail
    else:
        assert restore.changed and restore.detail.startswith("restored ")
    # One restore: one old standby moved aside, no fetch left behind. (The keeper's agents
    # outlive lab break, so the target may be azure: its server died, its host did not.)
    assert result.target in ("azure", "gcp")
    data_dir = lab.data_dir(result.target)
    assert len(list(data_dir.parent.glob(f"{data_dir.name}.replaced-*"))) == 1
    assert not data_dir.with_name(data_dir.name + ".hybridops-restore").exists()
    assert json.loads((data_dir / RESTORE_MARK).read_text())["run_id"] == handle.id
    assert_one_writer(lab)


async def test_point_in_time_before_any_backup_is_refused(
    client: Client, module_lab: Lab, run_workers
) -> None:
    """A ``restore_to`` before the backup finished: refused by ``pick_backup``, naming the
    field, before anything changed (nothing fenced, gcp's old directory in place)."""
    lab = module_lab
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    await two_hosts_die(lab)
    early = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    handle = await start(client, inv, {"restore_to": early})
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "restore_to" in str(failed.value.cause)
    assert not fenced(lab, "onprem") and not fenced(lab, "azure")
    data_dir = lab.data_dir("gcp")
    assert not list(data_dir.parent.glob(f"{data_dir.name}.replaced-*"))
    assert dns_points_at(lab) == "onprem"


def _ledger_at_least(lab: Lab, n: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return lab.ledger.exists() and len(read_ledger(lab.ledger)) >= n

    return check
