"""The failover runbook's input, result and evidence input (``workflows/failover.py``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hybridops.contracts.base import (
    Actor,
    AlertNotice,
    ApprovalRecord,
    Contract,
    HealthCheck,
    LongSeconds,
    Name,
    OperatorRecord,
    Phase,
    RtoSplit,
    RuleViolation,
    RunStatus,
    Seconds,
    ShortText,
    StepRecord,
    TargetChoice,
    Timestamp,
)
from hybridops.contracts.decision import Decision, SignalSnapshot
from hybridops.contracts.lease import LeaseGrant
from hybridops.contracts.readiness import LatestReadinessResult
from hybridops.contracts.sites import (
    DivergedWrites,
    FenceResult,
    Finding,
    PickBackupResult,
    RestorePrimaryResult,
    RpoMeasure,
    Topology,
)


class FailoverInput(Contract):
    """Input of ``FailoverWorkflow``. Every field is defaulted: ``{}`` starts a valid run."""

    target: TargetChoice = TargetChoice.AUTO
    """Where to fail over to; ``auto`` lets the decide phase choose."""
    require_approval: bool = False
    """Wait at the approval gate (before promotion) for ``hybridops approve``."""
    approval_timeout_s: LongSeconds = Field(default=3600.0, gt=0)
    """How long the gate waits (up to 7 days); on timeout the run compensates and fails."""
    incident_started_at: Timestamp | None = None
    """When the incident began (an alert's startsAt, ``lab break``); RTO counts from here.
    The run's start is used when absent."""
    reason: ShortText = "manual"
    """Why this run was started, for the evidence (at most 1000 characters)."""
    requested_by: Actor = "unknown"
    """Who or what started the run (a person, an alert route), for the evidence (at most 200
    characters)."""
    await_alert_resolve_s: Seconds = 0.0
    """After a successful failover, wait up to this long for the alert that started the run
    to resolve (monitoring sees a writable primary again), and record it. Alert-started runs
    set it; 0 does not wait. At most a day."""
    max_start_delay_s: Seconds = 300.0
    """A run whose decide phase begins more than this long after the run was started (no
    worker was polling, a worker kept failing on it) stops there, changing nothing: the world
    it was started for may be gone. Start a new run. 0 turns the guard off. At most a day."""
    only_if_primary_down: bool = True
    """Stop before changing anything if the current primary still answers as a writable
    primary: by the time a run starts, the alert (or the page) that prompted it may be stale
    (the primary came back, or someone already failed over). On by default, so ``{}`` from the
    UI cannot fail over a healthy primary; a planned failover sets it false
    (``hybridops failover --planned``)."""
    max_catchup_s: Seconds = 30.0
    """How long promotion waits for the target to replay all WAL it has received (and, when
    the old primary was fenced while alive, up to its last LSN) before it gives up. At most a
    day."""
    lease_wait_s: Seconds = 0.0
    """How long to wait for another runbook that holds the database's topology lease (a
    failover or failback in progress); 0 refuses at once, naming the holder. At most a day."""
    restore_backup: Name = "LATEST"
    """Restore mode only (no standby fit to promote): the backup to restore, a name or
    ``LATEST`` (the newest that finished before ``restore_to``)."""
    restore_to: Timestamp | None = None
    """Restore mode only: stop replaying the WAL archive at this time (naive means UTC);
    absent: replay all of it. A time in the future, or before the backup, is refused before
    anything changes."""


class FailoverResult(Contract):
    """Result of ``FailoverWorkflow`` (also stored as evidence.json)."""

    workflow_id: str
    run_id: str
    status: RunStatus
    runbook: str = "failover"
    input: FailoverInput
    target: str | None = None
    decision: Decision | None = None
    signals: SignalSnapshot | None = None
    """The signals the decision was taken on."""
    alerts: list[AlertNotice] = []
    """Alert notifications the run received (from ``hybridops serve alerts``)."""
    steps: list[StepRecord] = []
    operator_actions: list[OperatorRecord] = []
    """Pauses, resumes, retries and skips, taken or refused: who, when, why (issue 20 item 4)."""
    compensations: list[StepRecord] = []
    approvals: list[ApprovalRecord] = []
    started_at: datetime
    ended_at: datetime | None = None
    incident_started_at: datetime
    rto_seconds: float | None = None
    rto_since: datetime | None = None
    """Where the RTO counts from: the workload's last acknowledged write on the old primary
    when a live writer's ledger saw the outage, else ``incident_started_at``."""
    rto_counted_from: str = ""
    """What ``rto_since`` is, in words."""
    rto_split: RtoSplit | None = None
    """Detection, decision, execution and client reconnect (they add up to the RTO)."""
    rto_objective_s: float | None = None
    """The policy's RTO objective (``constraints.rto_max_s``) the run is checked against."""
    rpo_objective_s: float | None = None
    """The policy's RPO objective (``constraints.rpo_max_s``)."""
    rpo: RpoMeasure = RpoMeasure()
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
    """What the run found and did not act on blindly (DNS disagreeing, a split brain, ...)."""
    diverged: list[DivergedWrites] = []
    """When the run found several writers: the writes each made on its own branch."""
    fenced: list[str] = []
    """Writers the run fenced because they were not the one primary it kept (split brain)."""
    fence: FenceResult | None = None
    """How the old primary was fenced: verified (a token) or not."""
    blocked_by: list[RuleViolation] = []
    """Safety rules that blocked a step (overridden or not)."""
    lease: LeaseGrant | None = None
    """The topology lease this run held (or was refused)."""
    dns_repaired: bool = False
    health: list[HealthCheck] = []
    """What monitoring reported after the cutover (the apps' error rate at the new primary's
    site against ``constraints.max_error_rate``, the alert resolved), each with its value and
    threshold; empty for a run that did not get that far, or recorded before the check."""
    """The primary was healthy but DNS pointed elsewhere: the run pointed DNS at it."""
    restore: RestorePrimaryResult | None = None
    """Restore mode: which backup was restored, the WAL replayed to, the new timeline, how long."""
    backup_picked: PickBackupResult | None = None
    """Restore mode: the backup chosen before anything changed."""
    refused_approvals: list[ApprovalRecord] = []
    """Approval attempts the run refused, with who, when and why (they are in the history too)."""
    readiness: LatestReadinessResult | None = None
    """The readiness the run started from (the newest evaluation, for its chosen target)."""


class EvidenceInput(Contract):
    result: FailoverResult
