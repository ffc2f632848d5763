"""The DR drill's activities. They read backups and the WAL archive and act only inside the
drill's own scratch directory, on the scratch address; DNS is only read (by the plan)."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.common import Activities, step_activity, write_run_evidence
from drivers.backup import BackupDriver
from drivers.backup.scratch import DATA, ScratchServer
from drivers.lazy import Drivers
from hybridops.constants import ActivityName
from hybridops.contracts.backup import BackupInfo
from hybridops.contracts.base import EvidenceResult
from hybridops.contracts.drill import (
    BackupStepResult,
    DrillEvidenceInput,
    DrillPlan,
    DrillPlanInput,
    RestoreInput,
    RestoreStepResult,
    ScratchInput,
    ScratchResult,
    TakeBackupInput,
    TeardownInput,
    TeardownResult,
    VerifyRestoreInput,
    VerifyRestoreResult,
)
from hybridops.errors import ConfigError, PreconditionFailed
from hybridops.inventory import Inventory


class DrillActivities(Activities):
    """Activities of ``DrillWorkflow``, with the backup and DNS drivers the inventory names."""

    @classmethod
    def build(cls, inventory: Inventory, client: Client | None) -> DrillActivities:
        """With drivers of its own, built on first use."""
        return cls(inventory, Drivers(inventory), client)

    @property
    def backups(self) -> BackupDriver:
        return self.drivers.backup

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.plan_drill,
            self.take_backup,
            self.restore_backup,
            self.start_scratch,
            self.verify_restore,
            self.teardown_scratch,
            self.write_drill_evidence,
        ]

    # ------------------------------------------------------------------ helpers

    def _scratch_root(self) -> Path:
        root = self.inventory.backup.scratch_dir
        if root is None:
            raise ConfigError("backup.scratch_dir: required to run drills")
        return Path(root)

    def _scratch(self, scratch_dir: str) -> Path:
        """The drill's directory, which must be inside ``backup.scratch_dir``: a drill acts
        nowhere else."""
        path = Path(scratch_dir).resolve()
        root = self._scratch_root().resolve()
        if root not in path.parents:
            raise ConfigError(f"scratch directory {path} is not under backup.scratch_dir {root}")
        return path

    async def _source(self) -> str:
        """The plan's backup source; "" when there is no single writable primary (a drill
        restores existing backups without one; only ``take_backup_first`` needs it)."""
        try:
            return await self._primary()
        except PreconditionFailed:
            return ""

    async def _primary(self) -> str:
        """The backup source: the one writable server, established from the servers (DNS
        may be stale). A split brain, or no writable server, is refused with the findings."""
        return await self.drivers.topology.primary()

    # ------------------------------------------------------------------ activities

    @step_activity(ActivityName.PLAN_DRILL)
    async def plan_drill(self, inp: DrillPlanInput) -> DrillPlan:
        """Read-only: where the drill restores, the objectives, and that the scratch address is
        no production server's."""
        inv = self.inventory
        b = inv.backup
        address = f"{b.scratch_host}:{b.scratch_port}"
        for name, site in inv.sites.items():
            if site.host == b.scratch_host and site.port == b.scratch_port:
                raise ConfigError(f"backup.scratch_host/scratch_port: {address} is site {name}'s server")
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", inp.workflow_id)
        return DrillPlan(
            placement=inv.placement.value,
            queue_suffix=inv.task_queue_suffix,
            scratch_dir=str(self._scratch_root() / safe),
            scratch_address=address,
            primary=await self._source(),
            table=inv.workload.table,
            rto_objective_s=inv.drill.rto_objective_s,
            rpo_objective_s=inv.drill.rpo_objective_s,
            detail=f"scratch {address}",
        )

    @step_activity(ActivityName.TAKE_BACKUP)
    async def take_backup(self, inp: TakeBackupInput) -> BackupStepResult:
        info = await self.backups.backup(inp.site or await self._primary())
        return BackupStepResult(backup=info, changed=True, detail=f"backup {info.name} of {inp.site}")

    @step_activity(ActivityName.RESTORE_BACKUP)
    async def restore_backup(self, inp: RestoreInput) -> RestoreStepResult:
        """Fetch the backup into the drill's scratch directory (emptied first: a retry starts
        over) and configure recovery. The RTO counts from here."""
        started = datetime.now(UTC)
        scratch = self._scratch(inp.scratch_dir)
        backups = await self.backups.list()
        if not backups:
            raise PreconditionFailed("no backups to restore: take one first (hybridops backup push)")
        await ScratchServer(self.inventory, scratch).teardown()  # a failed earlier attempt's leftovers
        # The driver resolves LATEST (with a target time: the newest backup finished before it).
        restored = await self.backups.restore(inp.backup, scratch / DATA, inp.target_time)
        info = next((b for b in backups if b.name == restored.backup), BackupInfo(name=restored.backup))
        return RestoreStepResult(
            restore=restored,
            backup=info,
            started_at=started,
            changed=True,
            detail=f"{info.name} restored ({restored.fetch_seconds:.2f} s fetch)",
        )

    @step_activity(ActivityName.START_SCRATCH)
    async def start_scratch(self, inp: ScratchInput) -> ScratchResult:
        """Start the restored server on the scratch address; done when recovery has finished
        and it answers as a primary."""
        usable_at = await ScratchServer(self.inventory, self._scratch(inp.scratch_dir)).start()
        return ScratchResult(usable_at=usable_at, changed=True, detail=f"usable at {usable_at:%H:%M:%S.%f}")

    @step_activity(ActivityName.VERIFY_RESTORE)
    async def verify_restore(self, inp: VerifyRestoreInput) -> VerifyRestoreResult:
        """Read-only, on the scratch server: the writer's table, its rows, its newest row."""
        present, rows, newest = await ScratchServer(
            self.inventory, self._scratch(inp.scratch_dir)
        ).newest_row(inp.table)
        detail = (
            f"{rows} rows, newest {newest.isoformat()}" if newest else f"table {inp.table} missing or empty"
        )
        return VerifyRestoreResult(table_present=present, rows=rows or 0, newest_row_at=newest, detail=detail)

    @step_activity(ActivityName.TEARDOWN_SCRATCH)
    async def teardown_scratch(self, inp: TeardownInput) -> TeardownResult:
        """Stop the scratch server and remove its directory; idempotent."""
        scratch = self._scratch(inp.scratch_dir)
        existed = scratch.exists()
        await ScratchServer(self.inventory, scratch).teardown()
        if scratch.exists():
            await asyncio.to_thread(shutil.rmtree, scratch)
        return TeardownResult(changed=existed, detail="removed" if existed else "nothing to remove")

    @step_activity(ActivityName.WRITE_DRILL_EVIDENCE)
    async def write_drill_evidence(self, inp: DrillEvidenceInput) -> EvidenceResult:
        return await write_run_evidence(self.client, Path(self.inventory.output_dir), inp.result)
