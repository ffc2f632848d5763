"""The decision domain: signals, candidates, constraints and the decision a runbook acts on."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from hybridops.contracts.base import ActivityResult, Cloud, Contract, TargetChoice
from hybridops.contracts.sites import SiteRef
from hybridops.policy import Policy


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
    PRIMARY_SILENT_S = "primary_silent_s"
    """How long the candidate's own site agent has seen the primary take none of its writes,
    in seconds (drivers/postgres/liveness.py): the target's own view of the incident."""


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
    """The site that serves now, never a candidate: for a failover or failback the primary
    the servers name (the topology's acting primary), not where DNS points; for a burst, home."""
    target: TargetChoice = TargetChoice.AUTO
    """``auto`` (the policy chooses), or the cloud the caller asks for: a candidate of that
    cloud, or the site of that name."""


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


class SignalsInput(Contract):
    """Input of ``gather_signals``."""

    sites: list[SiteRef]


class SignalsResult(ActivityResult):
    """The live signals a decision is taken on, recorded so a replay decides the same; and the
    policy, which a burst decides on (a failover decides on its plan's: ``policy_in_force``)."""

    snapshot: SignalSnapshot
    policy: Policy
