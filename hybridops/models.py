"""Pydantic contracts: the inputs and results of workflows and activities.

One ``XxxInput`` and one ``XxxResult`` per workflow and activity, so fields can be added
without breaking running histories. Every model here may be recorded in a Temporal history,
so none of them may carry a secret: they carry references (``password_ref``) instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hybridops.policy import Policy


class Contract(BaseModel):
    """Base of every contract: unknown fields are an error that names them, and no float may
    be ``inf`` or ``nan`` (``timedelta(seconds=inf)`` overflows deep inside a run)."""

    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


# --------------------------------------------------------------------------- bounded input types
# Every number and string a run can be started with is bounded here, once: a value out of these
# bounds fails the run at once, naming the field, before it changes anything.

HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
WEEK_S = 7 * DAY_S

Seconds = Annotated[float, Field(ge=0, le=DAY_S, allow_inf_nan=False)]
"""A wait or a deadline inside a run (catch-up, a write pause, a start delay): 0 to 1 day."""
LongSeconds = Annotated[float, Field(ge=0, le=WEEK_S, allow_inf_nan=False)]
"""A wait for a human (an approval gate): 0 to 7 days (a long weekend with margin)."""
Interval = Annotated[float, Field(ge=1, le=HOUR_S, allow_inf_nan=False)]
"""A polling interval: 1 s to 1 hour."""
Money = Annotated[float, Field(ge=0, le=10_000_000, allow_inf_nan=False)]
"""An amount in the inventory's currency: 0 to ten million."""
Bytes = Annotated[int, Field(ge=0, le=1024**4)]
"""A size in bytes: 0 to 1 TiB."""

REASON_MAX = 1000
ShortText = Annotated[str, Field(max_length=REASON_MAX)]
"""Free text for the evidence (a reason, an approval's comment): at most 1000 characters."""
Actor = Annotated[str, Field(max_length=200)]
"""Who or what acts (a person, ``alert:ROUTE``): at most 200 characters."""
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
"""A name that reaches a path, an argv or a URL (a site, a backup): 1 to 63 characters of
``A-Za-z0-9._-``, not starting with ``.`` or ``-``."""

TIME_MIN, TIME_MAX = datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def _in_range(at: datetime) -> datetime:
    # A naive time is taken as UTC: a run compares it with its own (aware) clock, and a naive
    # one there is a TypeError on every workflow task, a retry loop.
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    if not TIME_MIN <= at < TIME_MAX:
        raise ValueError(f"must be between {TIME_MIN.year} and {TIME_MAX.year}")
    return at


Timestamp = Annotated[datetime, AfterValidator(_in_range)]
"""A point in time given to a run: between 2000 and 2200; naive means UTC."""


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

    by: Actor
    """Who approves: a person's name or handle (at most 200 characters)."""
    approve: bool = True
    """False rejects the run: it compensates and ends as ``rejected``."""
    comment: ShortText = ""
    """Why, for the evidence (at most 1000 characters)."""
    override: str | None = Field(default=None, max_length=40, pattern=r"^[a-z_]+$")
    """Break glass: the safety rule this approval overrides (the run names the rule that
    blocks it); the comment must say why."""
    decision_id: str | None = Field(default=None, max_length=64)
    """The decision approved (``progress.decision_id``); a run whose decision differs refuses it."""


class ApprovalRecord(Contract):
    """An approval (or rejection) as recorded in the evidence."""

    by: str
    approved: bool
    at: datetime
    comment: str = ""
    override: str | None = None
    """The safety rule overridden (break glass), when this approval was one."""
    identity: str | None = None
    """Who it was, as their client's identity says (hybridops.identity), not as typed."""
    decision_id: str | None = None
    refused: str | None = None
    """Why the run refused this attempt (not an approver, four eyes, wrong decision, ...)."""


class RpoMeasure(Contract):
    """Recovery point: acknowledged writes lost, as a count and as seconds."""

    transactions_lost: int | None = None
    seconds: float | None = None
    method: str = "none"
    """``ledger`` (the writer's acknowledgement log), ``lag`` (replication lag at decision
    time, an estimate) or ``none``."""


class SiteState(Contract):
    """What one PostgreSQL server looked like when it was assessed: read from the server
    itself (and its data directory's marks), never from DNS."""

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
    read_only: bool | None = None
    """``default_transaction_read_only`` as a new session gets it (a fenced or paused primary
    is read-only); None when unreachable."""
    system_identifier: str | None = None
    """The cluster's system identifier (``pg_control_system()``): every server of one cluster
    shares it; a server with another one is not a copy of this database."""
    upstream: str | None = None
    """The site a standby replicates from (its ``primary_conninfo`` host), when it is a site."""
    streaming: bool | None = None
    """A standby whose WAL receiver is streaming now."""
    timeline_switch_lsn: str | None = None
    """Where the server's current timeline began (its timeline history), when it can be read:
    the start of the writes it made on its own branch."""
    fenced_by: str | None = None
    """The run whose fence mark the data directory carries."""

    @property
    def writable(self) -> bool:
        """It answers and accepts writes: not in recovery and not read-only."""
        return self.reachable and self.in_recovery is False and self.read_only is not True


class FindingKind(StrEnum):
    """Something the topology shows that a runbook must not act on blindly."""

    SPLIT_BRAIN = "split_brain"
    """More than one server accepts writes."""
    DNS_DISAGREES = "dns_disagrees"
    """DNS points at another server than the one that accepts writes."""
    DNS_NOT_A_SITE = "dns_not_a_site"
    """The DNS record is missing or points at no server of the inventory."""
    NO_WRITABLE_SERVER = "no_writable_server"
    """No server accepts writes (the primary died, or was fenced)."""
    ROLE_UNKNOWN = "role_unknown"
    """A server does not answer and carries no fence mark: it may be a writer nobody sees."""
    SYSTEM_MISMATCH = "system_identifier_mismatch"
    """A server's system identifier differs from the cluster's: not a copy of this database."""
    UPSTREAM_DISAGREES = "upstream_disagrees"
    """The standbys follow different servers."""
    FENCE_UNVERIFIED = "fence_unverified"
    """The old primary did not answer when it was fenced: only its data directory is marked."""


class Finding(Contract):
    """One named disagreement or danger in a topology, for the evidence."""

    kind: FindingKind
    sites: list[str] = []
    detail: str


class DivergedWrites(Contract):
    """Writes a server made on its own branch of history, which another writer does not have:
    the LSN range from where its timeline began to its position when it was read."""

    site: str
    timeline: int | None = None
    from_lsn: str | None = None
    """Where its timeline began (None when the history could not be read)."""
    to_lsn: str | None = None


class Topology(Contract):
    """Who is who, established from the servers (DESIGN.md rule 11); DNS only says where
    clients go, and a disagreement is a finding, never a fact to act on."""

    servers: list[SiteState]
    dns_record: str = ""
    dns_value: str | None = None
    """The address the record holds now."""
    dns_site: str | None = None
    """The site whose address that is; None when it is no site's."""
    writable: list[str] = []
    """Every server that accepts writes now."""
    primary: str | None = None
    """The one writable server, when there is exactly one."""
    last_primary: str | None = None
    """When no server is writable: the server the standbys replicate from (else the one DNS
    points at), the primary that was; a failover's old primary."""
    system_identifier: str | None = None
    """The cluster's system identifier (the one most servers have)."""
    findings: list[Finding] = []

    def state(self, site: str) -> SiteState | None:
        return next((s for s in self.servers if s.site == site), None)

    @property
    def acting_primary(self) -> str | None:
        """The primary a runbook moves away from: the writable one, else the one that was."""
        return self.primary or self.last_primary

    def has(self, kind: FindingKind) -> bool:
        return any(f.kind == kind for f in self.findings)


class FenceToken(Contract):
    """Proof that a primary was fenced while it answered (as CloudNativePG's demotion token):
    a standby that replayed past ``lsn`` on ``timeline`` of ``system_identifier`` has every
    write the old primary ever acknowledged, so promoting it loses nothing."""

    system_identifier: str
    timeline: int
    lsn: str
    """The shutdown checkpoint's LSN (``pg_controldata``: Latest checkpoint location), else the
    last WAL position read before the stop."""


class RuleViolation(Contract):
    """A safety rule that blocks a step (DESIGN.md rule 12)."""

    rule: str
    """``single_writer``, ``roles_known``, ``same_system``, ``not_forked``, ``target_writable``."""
    site: str
    detail: str


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

    value: float = Field(allow_inf_nan=True)
    """A raw observation: a source may report ``nan`` (the decision counts it as missing)."""
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
    """The primary was healthy but DNS pointed elsewhere: the run pointed DNS at it."""
    refused_approvals: list[ApprovalRecord] = []
    """Approval attempts the run refused, with who, when and why (they are in the history too)."""


class Progress(Contract):
    """Answer of the ``progress`` Query (every runbook's: the phase names are the runbook's)."""

    phase: str
    status: RunStatus
    target: str | None = None
    waiting_for_approval: bool = False
    steps: list[StepRecord] = []
    blocked_by: RuleViolation | None = None
    """The safety rule the run waits on an override for (break glass), if any."""
    decision_id: str | None = None
    """The decision an approval at the gate approves."""


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
    """The site the DNS record points at ("" when it points at no site): where clients go,
    which is not always the primary (the servers say who is: the assess step)."""
    dns_value: str | None = None
    """The address the DNS record holds (None: no record)."""
    placement: str
    """``colocated`` or ``queues``: where steps run (see workflows/steps.py)."""
    queue_suffix: str = ""
    """The inventory's ``task_queue_suffix``, appended to the queue of every queued step."""
    policy: Policy | None = None
    """The policy in force (its approvals and safety rules), for runbooks that gather no
    signals (failback); None in histories of runs before it was recorded here."""


class AssessInput(Contract):
    sites: list[str]


class AssessResult(ActivityResult):
    states: list[SiteState]
    topology: Topology | None = None
    """The topology established from these states and DNS (absent in histories of runs
    before it existed, which decided on DNS)."""


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
    token: FenceToken | None = None
    """The fencing proof, when the server answered; None: the fence is unverified (the
    server was unreachable: only its data directory is marked)."""
    isolated: str | None = None
    """What the infra driver did to cut an unreachable server off for good (its isolate
    capability), or why nothing was done."""

    @property
    def verified(self) -> bool:
        return self.token is not None


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
    fence: FenceToken | None = None
    """The old primary's fencing proof: promote only once the target replayed past it."""
    overrides: list[str] = []
    """Safety rules an approver overrode for this step (break glass, recorded)."""
    allow_fenced: bool = False
    """Promote even though the target carries a fence mark: failback's home, a fenced old
    primary that was rejoined as a standby."""


class PromoteResult(ActivityResult):
    timeline: int
    promoted_at: datetime | None = None
    replay_lsn: str | None = None
    last_replay_at: datetime | None = None


class DnsCutoverInput(Contract):
    site: str
    """Point the runbook's DNS record at this site."""
    overrides: list[str] = []
    """Safety rules an approver overrode for this step (break glass, recorded)."""


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


# --------------------------------------------------------------------------- the topology lease


class LeaseHolder(Contract):
    """The run that holds the lease on a database's topology."""

    workflow_id: str
    run_id: str = ""
    runbook: str = ""
    since: datetime | None = None


class LeaseState(Contract):
    """Input of ``TopologyLeaseWorkflow`` (and what it carries across continue-as-new)."""

    key: str
    check_s: float = Field(default=30.0, gt=0, le=3600)
    holder: LeaseHolder | None = None
    granted: int = 0
    """Leases granted so far (over every run of the lease workflow)."""


class LeaseRequest(Contract):
    """Argument of the lease's ``acquire`` Update, and input of ``acquire_lease``."""

    workflow_id: str = Field(min_length=1, max_length=400)
    run_id: str = Field(default="", max_length=100)
    runbook: str = Field(default="", max_length=40)
    wait_s: float = Field(default=0.0, ge=0, le=86400, allow_inf_nan=False)
    """How long to wait for a holder to release it; 0 refuses at once."""


class LeaseGrant(ActivityResult):
    """Answer of ``acquire``: granted, or refused naming who holds it."""

    granted: bool
    holder: LeaseHolder | None = None
    lease_id: str = ""


class ReleaseInput(Contract):
    """Input of ``release_lease``."""

    workflow_id: str


class HolderInput(Contract):
    """Input of ``lease_holder_open``: is this run still open?"""

    workflow_id: str
    run_id: str = ""


class HolderResult(ActivityResult):
    open: bool
    status: str = ""
