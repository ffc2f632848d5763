"""Contracts of backups, restores and DR drills (see hybridops/contracts/base.py for the rules: every
model here may be recorded in a history, so none carries a secret)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hybridops.contracts.backup import BackupInfo, RestoreResult
from hybridops.contracts.base import (
    ActivityResult,
    Actor,
    Contract,
    Name,
    OperatorRecord,
    RunStatus,
    Seconds,
    ShortText,
    StepRecord,
    Timestamp,
)


class DrillInput(Contract):
    """Input of ``DrillWorkflow``. Every field is defaulted: ``{}`` starts a valid drill."""

    backup: Name = "LATEST"
    """The backup to restore: a name (``A-Za-z0-9._-``, at most 63 characters), or ``LATEST``."""
    target_time: Timestamp | None = None
    """Point-in-time restore: stop recovery at this time (naive means UTC). Absent: all
    archived WAL."""
    rto_objective_s: Seconds | None = Field(default=None, gt=0)
    """Override the inventory's ``drill.rto_objective_s`` for this drill (at most a day)."""
    rpo_objective_s: Seconds | None = None
    """Override the inventory's ``drill.rpo_objective_s`` for this drill (at most a day)."""
    take_backup_first: bool = False
    """Take a fresh base backup before restoring (the lab's first drill needs one)."""
    reason: ShortText = "drill"
    """Why this drill was started, for the evidence (at most 1000 characters)."""
    requested_by: Actor = "unknown"
    """Who or what started it, for the evidence (at most 200 characters)."""


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
    operator_actions: list[OperatorRecord] = []
    """Pauses, resumes, retries and skips, taken or refused: who, when, why (issue 20 item 4)."""
    compensations: list[StepRecord] = []
    started_at: datetime
    ended_at: datetime | None = None
    error: str | None = None
    evidence_dir: str | None = None


class DrillPlanInput(Contract):
    workflow_id: str


class DrillPlan(ActivityResult):
    """What the inventory says a drill needs: read once, so it is in the history."""

    placement: str
    queue_suffix: str = ""
    scratch_dir: str
    """This drill's own directory under the inventory's ``backup.scratch_dir``."""
    scratch_address: str
    """``host:port`` the scratch server listens on: never a production address."""
    primary: str
    """Where DNS points: the server a fresh backup is taken from (only if asked)."""
    table: str
    """The writer's table, whose newest row gives the RPO."""
    rto_objective_s: float
    rpo_objective_s: float


class TakeBackupInput(Contract):
    site: str


class BackupStepResult(ActivityResult):
    backup: BackupInfo


class RestoreInput(Contract):
    backup: str
    target_time: datetime | None = None
    scratch_dir: str


class RestoreStepResult(ActivityResult):
    restore: RestoreResult
    backup: BackupInfo
    started_at: datetime
    """When this attempt began fetching: the drill's RTO counts from here."""


class ScratchInput(Contract):
    """Input of ``start_scratch``, and the base of ``teardown_scratch``'s."""

    scratch_dir: str


class TeardownInput(ScratchInput):
    """Input of ``teardown_scratch``."""


class TeardownResult(ActivityResult):
    """Result of ``teardown_scratch``."""


class ScratchResult(ActivityResult):
    usable_at: datetime | None = None
    """When the restored server first answered as a writable primary (recovery done)."""


class VerifyRestoreInput(Contract):
    scratch_dir: str
    table: str


class VerifyRestoreResult(ActivityResult):
    table_present: bool
    rows: int = 0
    newest_row_at: datetime | None = None


class DrillEvidenceInput(Contract):
    result: DrillResult
