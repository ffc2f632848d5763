"""Contracts of backups, restores and DR drills (see hybridops/models.py for the rules: every
model here may be recorded in a history, so none carries a secret)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hybridops.models import Contract, RunStatus, StepRecord


class BackupInfo(Contract):
    """One base backup, as the backup system lists it."""

    name: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    start_lsn: str | None = None
    end_lsn: str | None = None
    size_bytes: int | None = None
    site: str | None = None
    """The server it was taken from, when known."""


class RestoreResult(Contract):
    """A backup fetched into a data directory, with recovery configured (not started)."""

    backup: str
    """The backup's real name (``LATEST`` resolved)."""
    data_dir: str
    target_time: datetime | None = None
    """Recovery stops at this time; ``None``: replays all archived WAL (``latest``)."""
    fetch_seconds: float = 0.0


class WalVerifyResult(Contract):
    ok: bool
    detail: str = ""


# --------------------------------------------------------------------------- DR drills


class DrillInput(Contract):
    """Input of ``DrillWorkflow``. Every field is defaulted: ``{}`` starts a valid drill."""

    backup: str = "LATEST"
    """The backup to restore: a name, or ``LATEST``."""
    target_time: datetime | None = None
    """Point-in-time restore: stop recovery at this time. Absent: all archived WAL."""
    rto_objective_s: float | None = Field(default=None, gt=0)
    """Override the inventory's ``drill.rto_objective_s`` for this drill."""
    rpo_objective_s: float | None = Field(default=None, ge=0)
    """Override the inventory's ``drill.rpo_objective_s`` for this drill."""
    take_backup_first: bool = False
    """Take a fresh base backup before restoring (the lab's first drill needs one)."""
    reason: str = "drill"
    requested_by: str = "unknown"


class SloCheck(Contract):
    name: str
    """``rto`` or ``rpo``."""
    measured_s: float | None
    objective_s: float
    passed: bool
    detail: str = ""


class DrillResult(Contract):
    """Result of ``DrillWorkflow`` (also its evidence.json)."""

    workflow_id: str
    run_id: str
    status: RunStatus
    runbook: str = "drill"
    input: DrillInput
    passed: bool = False
    """Restored, verified, and both SLO checks passed."""
    backup: BackupInfo | None = None
    restore: RestoreResult | None = None
    rto_seconds: float | None = None
    """Time from the start of the restore to a usable restored database."""
    rpo_seconds: float | None = None
    """Age of the newest restored row of the writer's table at the restore's start (or at the
    target time of a point-in-time restore)."""
    newest_row_at: datetime | None = None
    rows_restored: int | None = None
    slo: list[SloCheck] = []
    steps: list[StepRecord] = []
    compensations: list[StepRecord] = []
    started_at: datetime
    ended_at: datetime | None = None
    error: str | None = None
    evidence_dir: str | None = None
