"""Contracts of the failback runbook (``FailbackWorkflow``) and its activities.

Failback brings the site that failed (the *home* site, on-prem by default) back as the
primary after a failover: rejoin it as a standby of the cloud primary (pg_rewind, else a fresh
base backup), let it catch up, then a planned switchover with zero data loss. Like every
contract (see :mod:`hybridops.contracts.base`), none of these may carry a secret."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hybridops.contracts.base import (
    HOUR_S,
    ActivityResult,
    Actor,
    ApprovalRecord,
    Bytes,
    Contract,
    LongSeconds,
    Name,
    OperatorRecord,
    Phase,
    RuleViolation,
    RunStatus,
    Seconds,
    ShortText,
    StepRecord,
)
from hybridops.contracts.lease import LeaseGrant
from hybridops.contracts.sites import (
    Finding,
    PromoteInput,
    PromoteResult,
    RejoinMethod,
    RejoinOutcome,
    SiteInput,
    Topology,
)


class FailbackInput(Contract):
    """Input of ``FailbackWorkflow``. Every field is defaulted: ``{}`` starts a valid run."""

    home: Name | None = None
    """The site to bring back as the primary (a site name of the inventory); the inventory's
    on-prem site when absent."""
    require_approval: bool = True
    """Wait at the approval gate (after catch-up, before writes are paused) for
    ``hybridops approve``."""
    approval_timeout_s: LongSeconds = Field(default=3600.0, gt=0)
    """How long the gate waits (up to 7 days); on timeout the run stops, leaving home a standby."""
    rejoin_method: RejoinMethod = RejoinMethod.AUTO
    """How home is made a standby of the cloud primary (``reclone`` forces a base backup)."""
    max_catchup_s: Seconds = Field(default=300.0, gt=0)
    """How long home may take, once rejoined, to come within ``max_lag_bytes`` of the cloud
    primary (before the approval gate; writes still flow). At most a day."""
    max_lag_bytes: Bytes = 1024 * 1024
    """How close home must be before the switchover pauses writes (at most 1 TiB)."""
    max_pause_s: float = Field(default=30.0, gt=0, le=HOUR_S, allow_inf_nan=False)
    """With writes paused, how long home may take to replay the paused primary's final LSN;
    beyond it, writes resume on the cloud primary and the run stops (compensated). At most an
    hour: writes are refused meanwhile."""
    max_start_delay_s: Seconds = 300.0
    """A run that begins planning more than this long after it was started stops there,
    changing nothing (the world it was started for may be gone). 0 turns the guard off. At
    most a day."""
    reason: ShortText = "manual"
    """Why this run was started, for the evidence (at most 1000 characters)."""
    requested_by: Actor = "unknown"
    """Who or what started the run, for the evidence (at most 200 characters)."""
    lease_wait_s: Seconds = 0.0
    """How long to wait for another runbook holding the database's topology lease; 0 refuses
    at once, naming the holder. At most a day."""


class FailbackResult(Contract):
    """Result of ``FailbackWorkflow`` (also stored as evidence.json)."""

    workflow_id: str
    run_id: str
    status: RunStatus
    runbook: str = "failback"
    input: FailbackInput
    home: str | None = None
    """The site brought back as the primary."""
    old_primary: str | None = None
    """The cloud site that was the primary when the run began (where DNS pointed)."""
    other_standbys: list[str] = []
    rejoin: RejoinOutcome | None = None
    """How home was made a standby of the cloud primary."""
    moved_aside: str | None = None
    """Where home's old data directory was moved when it had to be recloned (never deleted)."""
    old_primary_rejoin: RejoinOutcome | None = None
    paused_at: datetime | None = None
    """When the cloud primary stopped accepting writes (its server clock)."""
    final_lsn: str | None = None
    """The paused primary's last WAL position, which home replayed before promotion."""
    first_write_at: datetime | None = None
    """The first write through the DNS name that landed on home (its server clock)."""
    write_pause_seconds: float | None = None
    """The switchover's write pause: from ``paused_at`` until DNS pointed home and a write
    through it succeeded (``first_write_at``)."""
    rejoin_seconds: float | None = None
    catch_up_seconds: float | None = None
    switchover_seconds: float | None = None
    """From pausing writes to the verified write on home (workflow clock)."""
    timeline: int | None = None
    """Home's timeline after promotion."""
    steps: list[StepRecord] = []
    operator_actions: list[OperatorRecord] = []
    """Pauses, resumes, retries and skips, taken or refused: who, when, why (issue 20 item 4)."""
    compensations: list[StepRecord] = []
    approvals: list[ApprovalRecord] = []
    warnings: list[str] = []
    """Best-effort steps that failed after the point of no return (a standby that did not
    rejoin): the failback is done, a human finishes these."""
    started_at: datetime
    ended_at: datetime | None = None
    point_of_no_return_passed: bool = False
    stopped_in: Phase | None = None
    """The phase a run that failed past the point of no return stopped in (its named state);
    ``None`` otherwise."""
    by_hand: list[str] = []
    """What an operator does next, in order, to finish such a run by hand (runbooks/, "When it
    fails"); empty otherwise."""
    error: str | None = None
    evidence_dir: str | None = None
    topology: Topology | None = None
    """The topology the run started from, established from the servers."""
    findings: list[Finding] = []
    blocked_by: list[RuleViolation] = []
    """Safety rules that blocked a step (overridden or not)."""
    lease: LeaseGrant | None = None
    """The topology lease this run held (or was refused)."""
    refused_approvals: list[ApprovalRecord] = []
    """Approval attempts the run refused, with who, when and why."""


class RejoinInput(Contract):
    """Input of ``rejoin_standby``: make ``site`` a streaming standby of ``source``."""

    site: str
    source: str
    run_id: str = ""
    method: RejoinMethod = RejoinMethod.AUTO


class RejoinResult(ActivityResult):
    outcome: RejoinOutcome
    moved_aside: str | None = None
    """The old data directory's new name, when it was recloned."""
    saved_config: str | None = None
    """Where the site's configuration, logs and marks were saved before a rewind or reclone."""
    fallback_reason: str = ""
    """Why a cheaper method was not enough (follow did not stream, pg_rewind failed)."""
    seconds: float = 0.0


class CatchUpInput(Contract):
    """Input of ``catch_up``: wait until ``site`` has replayed close enough to ``source``."""

    site: str
    source: str
    max_lag_bytes: int = 0
    target_lsn: str | None = None
    """Replay at least this far (the paused primary's final LSN); the source's current LSN
    when absent."""
    timeout_s: float = 60.0
    run_id: str = ""
    """The run waiting: a site this run promoted already (a retry after a crash) is past it."""


class CatchUpResult(ActivityResult):
    replay_lsn: str | None = None
    target_lsn: str | None = None
    lag_bytes: int = 0
    waited_s: float = 0.0


class PauseInput(SiteInput):
    """Input of ``pause_writes``: the primary to pause, and the run pausing it."""


class PauseResult(ActivityResult):
    """Result of ``pause_writes``."""

    paused_at: datetime
    """Server time when every new session became read-only."""
    final_lsn: str
    """The last WAL position once client sessions were ended and the segment switched."""
    was_read_only: bool = False
    sessions_ended: int = 0


class ResumeInput(SiteInput):
    """Input of ``resume_writes`` (compensation of ``pause_writes``)."""


class ResumeResult(ActivityResult):
    """Result of ``resume_writes``."""


class PromoteHomeInput(PromoteInput):
    """Input of ``promote_home``: the fields of a failover's promotion (``allow_fenced`` is
    forced on: home carries the fence mark of the failover that left it)."""


class PromoteHomeResult(PromoteResult):
    """Result of ``promote_home``."""


class RetireFenceInput(Contract):
    """Input of ``retire_fence``: remove the fence marks of sites that have their role back."""

    sites: list[str]


class RetireFenceResult(ActivityResult):
    """Result of ``retire_fence``."""


class FailbackEvidenceInput(Contract):
    result: FailbackResult
