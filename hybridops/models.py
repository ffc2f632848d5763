"""Pydantic contracts: the inputs and results of workflows and activities.

One ``XxxInput`` and one ``XxxResult`` per workflow and activity, so fields can be added
without breaking running histories. Every model here may be recorded in a Temporal history,
so none of them may carry a secret: they carry references (``password_ref``) instead.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hybridops.policy import Policy


class Contract(BaseModel):
    """Base of every contract: unknown fields are an error that names them."""

    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------- enums


class Cloud(StrEnum):
    """A cloud that can take over from, or burst out of, the on-prem site."""

    AZURE = "azure"
    GCP = "gcp"


class TargetChoice(StrEnum):
    """What a failover run is asked to fail over to."""

    AZURE = "azure"
    GCP = "gcp"
    AUTO = "auto"


class Phase(StrEnum):
    """The failover runbook's phases, in order."""

    PENDING = "pending"
    DECIDE = "decide"
    PREPARE_TARGET = "prepare_target"
    FENCE = "fence_old_primary"
    APPROVAL = "approval"
    PROMOTE = "promote"
    REPOINT_APPS = "repoint_apps"
    DNS_CUTOVER = "dns_cutover"
    VERIFY = "verify"
    REJOIN = "rejoin_standbys"
    AWAIT_RESOLVE = "await_alert_resolve"
    COMPENSATE = "compensate"
    EVIDENCE = "evidence"
    DONE = "done"


class RunStatus(StrEnum):
    """How a run ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    COMPENSATED = "compensated"
    """Failed before the point of no return; every compensation ran."""
    FAILED = "failed"
    """Failed after the point of no return, or a compensation failed: needs a human."""
    REJECTED = "rejected"
    """An approver said no; compensations ran."""


class StepOutcome(StrEnum):
    """How one step ended."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    """The world was already as the step wanted it (an idempotent retry)."""
    FAILED = "failed"
    SKIPPED = "skipped"


# --------------------------------------------------------------------------- workflow I/O


class FailoverInput(Contract):
    """Input of ``FailoverWorkflow``. Every field is defaulted: ``{}`` starts a valid run."""

    target: TargetChoice = TargetChoice.AUTO
    """Where to fail over to; ``auto`` lets the decide phase choose."""
    require_approval: bool = False
    """Wait at the approval gate (before promotion) for ``hybridops approve``."""
    approval_timeout_s: float = Field(default=3600.0, gt=0)
    """How long the gate waits; on timeout the run compensates and fails."""
    incident_started_at: datetime | None = None
    """When the incident began (an alert's startsAt, ``lab break``); RTO counts from here.
    The run's start is used when absent."""
    reason: str = "manual"
    """Why this run was started, for the evidence."""
    requested_by: str = "unknown"
    """Who or what started the run (a person, an alert route), for the evidence."""
    await_alert_resolve_s: float = Field(default=0.0, ge=0)
    """After a successful failover, wait up to this long for the alert that started the run
    to resolve (monitoring sees a writable primary again), and record it. Alert-started runs
    set it; 0 does not wait."""
    max_start_delay_s: float = Field(default=300.0, ge=0)
    """A run whose decide phase begins more than this long after the run was started (no
    worker was polling, a worker kept failing on it) stops there, changing nothing: the world
    it was started for may be gone. Start a new run. 0 turns the guard off."""
    only_if_primary_down: bool = False
    """Stop before changing anything if the current primary still answers as a writable
    primary. Alert-started runs set it: by the time the run starts, the alert may be stale
    (the primary came back, or someone already failed over)."""
    max_catchup_s: float = Field(default=30.0, ge=0)
    """How long promotion waits for the target to replay all WAL it has received (and, when
    the old primary was fenced while alive, up to its last LSN) before it gives up."""


class StepRecord(Contract):
    """One step of a run, as the evidence shows it."""

    name: str
    started_at: datetime
    ended_at: datetime | None = None
    attempts: int = 0
    outcome: StepOutcome | None = None
    detail: str = ""
    irreversible: bool = False


class ApprovalInput(Contract):
    """Argument of the ``approve`` Update."""

    by: str
    """Who approves: a person's name or handle."""
    approve: bool = True
    """False rejects the run: it compensates and ends as ``rejected``."""
    comment: str = ""


class ApprovalRecord(Contract):
    """An approval (or rejection) as recorded in the evidence."""

    by: str
    approved: bool
    at: datetime
    comment: str = ""


class RpoMeasure(Contract):
    """Recovery point: acknowledged writes lost, as a count and as seconds."""

    transactions_lost: int | None = None
    seconds: float | None = None
    method: str = "none"
    """``ledger`` (the writer's acknowledgement log), ``lag`` (replication lag at decision
    time, an estimate) or ``none``."""


class SiteState(Contract):
    """What one PostgreSQL server looked like when it was assessed."""

    site: str
    reachable: bool
    in_recovery: bool | None = None
    timeline: int | None = None
    receive_lsn: str | None = None
    replay_lsn: str | None = None
    current_lsn: str | None = None
    last_replay_at: datetime | None = None
    fenced: bool = False
    promoted_by: str | None = None
    """The run that promoted this server, when HybridOps did."""
    error: str = ""


class DecisionType(StrEnum):
    """What a decision says to do."""

    FAILOVER = "failover"
    BURST = "burst"
    FAILBACK = "failback"
    HOLD = "hold"
    """Do nothing: no candidate passes the policy."""


class DrMode(StrEnum):
    """How a chosen target would take over."""

    WARM_PROMOTE = "warm_promote"
    """Promote a streaming standby (fresh signals, lag within the RPO objective)."""
    RESTORE = "restore"
    """Restore from backup: no standby is fit for promotion, but the cloud passes the rest."""
    DENY = "deny"
    """Not allowed."""
    SCALE_OUT = "scale_out"
    """A burst: add capacity in the cloud; the database does not move."""


class TargetCloud(StrEnum):
    AZURE = "azure"
    GCP = "gcp"
    NONE = "none"


class SignalName(StrEnum):
    """The signals the policy reads about each candidate. Units are in the names' docs."""

    STANDBY_UP = "standby_up"
    """1 when the candidate's database answers as a streaming standby, else 0."""
    LAG_BYTES = "lag_bytes"
    """WAL the standby has not replayed, against the furthest known position."""
    LAG_SECONDS = "lag_seconds"
    """How far behind the standby's replay is, in seconds (0 when it replayed all it got)."""
    LATENCY_MS = "latency_ms"
    """Client latency to the candidate's site, in milliseconds."""
    ERROR_RATE = "error_rate"
    """Share of failed requests at the candidate's site, 0..1."""
    CAPACITY = "capacity"
    """Free capacity of the candidate's cluster, in nodes."""
    CREDITS = "credits"
    """Cloud credits (budget) left, in the inventory's currency."""
    HOURLY_COST = "hourly_cost"
    """What running there costs per hour, in the inventory's currency."""
    SLO_SCORE = "slo_score"
    """How well the site has met its SLOs lately, 0..1 (1 is best)."""
    LOAD = "load"
    """How busy the site is, 0..1 (a burst's scale-in signal)."""


class Signal(Contract):
    """One observed value and where it came from."""

    value: float
    source: str
    """The driver that observed it: ``postgres``, ``prometheus``, ``static``, ..."""
    observed_at: datetime | None = None
    """When it was observed; ``None`` for static values, which never go stale."""


class CandidateSignals(Contract):
    """Everything known about one candidate when the decision was taken."""

    site: str
    cloud: Cloud | None = None
    values: dict[SignalName, Signal] = {}
    notes: list[str] = []
    """What a source said beyond numbers (``fenced``, ``unreachable: ...``)."""


class SignalSnapshot(Contract):
    """The signals a decision rests on: recorded in the history and the evidence, so a
    replay (and an auditor) decides on exactly the same data."""

    taken_at: datetime
    candidates: list[CandidateSignals] = []
    errors: list[str] = []
    """Sources that could not be read (they leave their signals missing, not zero)."""


class Violation(Contract):
    """A constraint of the policy a candidate failed."""

    constraint: str
    """The policy key, e.g. ``constraints.rpo_max_s``, or ``signals`` when data is missing."""
    detail: str
    """With the numbers: ``lag 420 s > 300 s``."""


class Candidate(Contract):
    """One site considered by a decision, with its verdict."""

    site: str
    cloud: Cloud | None = None
    eligible: bool
    mode: DrMode = DrMode.DENY
    """How this candidate could take over under the policy."""
    score: float | None = None
    """Weighted score in 0..1 among the eligible candidates (higher is better)."""
    components: dict[str, float] = {}
    """Each weighted criterion's normalised value, 0..1."""
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    violations: list[Violation] = []
    warnings: list[str] = []
    rejected_because: str = ""


class DecisionRequest(Contract):
    """What a decision is asked about."""

    decision_type: DecisionType = DecisionType.FAILOVER
    current_primary: str
    """The site that serves now (where DNS points): never a candidate."""
    target: str = "auto"
    """``auto``, or the site or cloud the caller asks for."""


class Decision(Contract):
    """What the policy engine decided, and why."""

    decision_id: str = ""
    """A digest of the request, the policy and the signals: the same inputs give the same id."""
    decision_type: DecisionType = DecisionType.FAILOVER
    target: str | None = None
    """The chosen site; ``None`` when the decision is ``hold``."""
    target_cloud: TargetCloud = TargetCloud.NONE
    dr_mode: DrMode = DrMode.DENY
    requires_approval: bool = False
    old_primary: str
    strategy: str = ""
    rationale: list[str]
    candidates: list[Candidate]

    @property
    def cloud(self) -> Cloud | None:
        return None if self.target_cloud == TargetCloud.NONE else Cloud(self.target_cloud.value)


class AlertNotice(Contract):
    """An Alertmanager notification delivered to the run it started (a resolve, a resend)."""

    status: str
    """``firing`` or ``resolved``."""
    received_at: datetime
    group_key: str = ""
    alertnames: list[str] = []
    ended_at: datetime | None = None
    """The latest ``endsAt`` of the resolved alerts."""


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
    compensations: list[StepRecord] = []
    approvals: list[ApprovalRecord] = []
    started_at: datetime
    ended_at: datetime | None = None
    incident_started_at: datetime
    rto_seconds: float | None = None
    rpo: RpoMeasure = RpoMeasure()
    point_of_no_return_passed: bool = False
    error: str | None = None
    evidence_dir: str | None = None


class Progress(Contract):
    """Answer of the ``progress`` Query (every runbook's: the phase names are the runbook's)."""

    phase: str
    status: RunStatus
    target: str | None = None
    waiting_for_approval: bool = False
    steps: list[StepRecord] = []


# --------------------------------------------------------------------------- activity I/O


class ActivityResult(Contract):
    """Base of every activity result: what happened, and on which attempt."""

    changed: bool = False
    """True when this call changed the world; False when it was already as wanted."""
    attempt: int = 1
    detail: str = ""


class CheckpointInput(Contract):
    """Input of ``checkpoint``: a no-op whose scheduling makes the run so far durable."""

    name: str


class PlanInput(Contract):
    """Input of ``plan_failover``."""

    target: TargetChoice = TargetChoice.AUTO


class SiteRef(Contract):
    """A site as the workflow needs to know it: no addresses, no credentials."""

    name: str
    cloud: Cloud | None = None


class PlanResult(ActivityResult):
    """What the inventory and DNS say the topology is."""

    sites: list[SiteRef]
    dns_record: str
    current_primary: str
    """The site the DNS record points at: the primary clients use."""
    placement: str
    """``colocated`` or ``queues``: where steps run (see workflows/steps.py)."""
    queue_suffix: str = ""
    """The inventory's ``task_queue_suffix``, appended to the queue of every queued step."""


class AssessInput(Contract):
    sites: list[str]


class AssessResult(ActivityResult):
    states: list[SiteState]


class SignalsInput(Contract):
    """Input of ``gather_signals``."""

    sites: list[SiteRef]


class SignalsResult(ActivityResult):
    """The live signals and the policy a decision is taken on (so a replay decides the same)."""

    snapshot: SignalSnapshot
    policy: Policy


class SiteInput(Contract):
    """Input of activities that act on one site."""

    site: str
    run_id: str = ""
    """The workflow id acting, recorded in marks (fencing) so they can be traced."""


class FenceResult(ActivityResult):
    was_running: bool
    was_read_only: bool = False
    fenced_lsn: str | None = None
    """The old primary's last WAL position when it was fenced while alive."""


class UnfenceInput(Contract):
    site: str
    restart: bool
    """Start the server again: it was running before it was fenced."""


class PrepareResult(ActivityResult):
    started: bool = False
    """The target's server was started by this call (compensation stops it again)."""


class PromoteInput(Contract):
    site: str
    run_id: str = ""
    wait_for_lsn: str | None = None
    max_catchup_s: float = 30.0


class PromoteResult(ActivityResult):
    timeline: int
    promoted_at: datetime | None = None
    replay_lsn: str | None = None
    last_replay_at: datetime | None = None


class DnsCutoverInput(Contract):
    site: str
    """Point the runbook's DNS record at this site."""


class DnsResult(ActivityResult):
    record: str
    value: str
    previous: str | None = None


class RepointAppsInput(Contract):
    site: str


class VerifyInput(Contract):
    site: str
    """The site the DNS name must lead to."""
    deadline_s: float = 30.0


class VerifyResult(ActivityResult):
    resolved_to: str
    first_write_at: datetime
    """Commit time of the first probe write that succeeded through the DNS name."""


class RpoInput(Contract):
    site: str
    incident_started_at: datetime
    fallback_lag_seconds: float | None = None


class RpoResult(ActivityResult):
    rpo: RpoMeasure


class FollowInput(Contract):
    sites: list[str]
    new_primary: str


class EvidenceInput(Contract):
    result: FailoverResult


class EvidenceResult(ActivityResult):
    path: str
    files: dict[str, str]
    """File name to SHA-256."""
    manifest_sha256: str | None = None
    """SHA-256 of the folder's ``manifest.json``. This result is in the run's history held by
    Temporal, outside the folder, so ``hybridops audit verify`` can tell a rewritten manifest
    from the run's own. ``None`` in runs from before it was recorded."""


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as JSON-ready data (datetimes as ISO strings)."""
    return model.model_dump(mode="json")
