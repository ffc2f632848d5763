"""Contracts of ``BurstWorkflow`` (see hybridops/contracts/base.py for the rules: no secrets)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hybridops.contracts.base import (
    DAY_S,
    ActivityResult,
    Actor,
    ApprovalRecord,
    Cloud,
    Contract,
    Interval,
    LongSeconds,
    Money,
    OperatorRecord,
    RunStatus,
    ShortText,
    StepRecord,
    TargetChoice,
)
from hybridops.contracts.decision import Decision
from hybridops.contracts.sites import SiteRef, Topology
from hybridops.errors import InputError


class BurstState(Contract):
    """What a burst has done so far: carried across continue-as-new, and what scale-in undoes.
    Set by the workflow itself; never give it in a start."""

    started_at: datetime
    target: str
    cloud: Cloud
    decision: Decision | None = None
    pool_before: int | None = None
    """Nodes in the burst pool before scale-out; set once scale-out was attempted."""
    pool_after: int | None = None
    deployed: list[str] = []
    """Apps a deploy was attempted for (undeploy is idempotent)."""
    weights_before: dict[str, tuple[str, int]] | None = None
    """The weighted record before the shift; set once a shift was attempted."""
    checks: int = 0
    runs: int = 1
    """How many runs (continue-as-new) this burst has taken."""
    carried_from: str | None = None
    """The run id of the run that continued as new with this state. A run takes a state only
    from its own predecessor (``workflow.info().continued_run_id``), so a cron or a retry of a
    start, whose input is copied from that start, cannot smuggle one in."""
    peak_load: float | None = None
    last_load: float | None = None
    steps: list[StepRecord] = []


def burst_cost(
    state: BurstState, price_per_node_hour: dict[str, float], now: datetime
) -> tuple[float, float]:
    """A burst's node-hours until ``now`` and their estimated cost (extra nodes x hours x the
    cloud's price): the workflow's budget check and the control worker's metrics, one formula."""
    if state.pool_before is None or state.pool_after is None:
        return 0.0, 0.0
    hours = (now - state.started_at).total_seconds() / 3600
    node_hours = round((state.pool_after - state.pool_before) * hours, 6)
    price = price_per_node_hour.get(Cloud(state.cloud).value, 0.0)
    return node_hours, round(node_hours * price, 4)


class BurstInput(Contract):
    """Input of ``BurstWorkflow``. Every field is defaulted: ``{}`` starts a valid burst."""

    target: TargetChoice = TargetChoice.AUTO
    extra_nodes: int = Field(default=3, ge=1, le=500)
    """Nodes added to the cloud's burst pool."""
    traffic_share: int = Field(default=30, ge=1, le=100)
    """Percent of the traffic (DNS weight) sent to the cloud while bursting."""
    scale_in_below: float = Field(default=0.6, ge=0, le=1)
    """Scale in once the on-prem load falls below this (0..1)."""
    check_interval_s: Interval = 60.0
    """How often the load is read while bursting: 1 s to 1 hour."""
    budget_cap: Money | None = None
    """Scale in when the estimated cost reaches this; the inventory's ``burst.budget_cap`` if
    absent. At most ten million."""
    max_duration_s: float = Field(default=4 * 3600.0, gt=0, le=31 * DAY_S, allow_inf_nan=False)
    """The teardown deadline: scale in after this long, whatever the load. At most 31 days (a
    season's peak; continue-as-new keeps the history bounded)."""
    checks_per_run: int = Field(default=100, ge=1, le=2000)
    """Continue as new after this many load checks, so the history stays bounded (at most
    2000: a check is a few events, and Temporal caps a history at 51 200)."""
    require_approval: bool = False
    """Wait at the approval gate after deciding, before anything scales; the policy's
    ``approval.burst`` (and a decision that requires approval) makes it wait too."""
    approval_timeout_s: LongSeconds = Field(default=3600.0, gt=0)
    """How long the gate waits (up to 7 days); on timeout nothing has changed and the run ends."""
    reason: ShortText = "manual"
    """Why this burst was started, for the evidence (at most 1000 characters)."""
    requested_by: Actor = "unknown"
    """Who or what started it, for the evidence (at most 200 characters)."""
    state: BurstState | None = None
    """Internal: the burst's state carried across continue-as-new. Not part of the start
    contract: a run refuses it unless its predecessor wrote it (see :func:`carried_state`)."""


def carried_state(inp: BurstInput, continued_run_id: str | None) -> BurstState | None:
    """The state a run may resume from, or ``None`` for a fresh start.

    Scale-in writes ``state.weights_before`` into the application's DNS record and sizes the
    node pool from ``state.pool_before``, past the policy and the budget cap; so a state is
    accepted only from the run that continued as new into this one, which stamped its own run
    id into it. Raises :class:`InputError` naming ``state`` otherwise (a start, a cron or retry copy
    of a start, a state from another run).
    """
    state = inp.state
    if state is None:
        return None
    if continued_run_id is None or state.carried_from != continued_run_id:
        raise InputError(
            "state: the burst's internal carry-over across continue-as-new is refused here; a run"
            " takes it only from the run that continued into this one (it sets the DNS weights"
            " and the node pool that scale-in restores): start without it",
            field="state",
        )
    return state


class BurstResult(Contract):
    """Result of ``BurstWorkflow`` (also its evidence.json)."""

    workflow_id: str
    run_id: str
    status: RunStatus
    runbook: str = "burst"
    input: BurstInput
    target: str | None = None
    decision: Decision | None = None
    ended_because: str = ""
    """``load``, ``stopped``, ``budget``, ``deadline``, or the error."""
    node_hours: float = 0.0
    cost_estimate: float = 0.0
    checks: int = 0
    runs: int = 1
    peak_load: float | None = None
    steps: list[StepRecord] = []
    operator_actions: list[OperatorRecord] = []
    """Pauses, resumes, retries and skips, taken or refused: who, when, why (issue 20 item 4)."""
    compensations: list[StepRecord] = []
    approvals: list[ApprovalRecord] = []
    refused_approvals: list[ApprovalRecord] = []
    """The scale-in: traffic back, workloads removed, node pool back."""
    started_at: datetime
    ended_at: datetime | None = None
    error: str | None = None
    evidence_dir: str | None = None


class BurstPlan(ActivityResult):
    placement: str
    queue_suffix: str = ""
    sites: list[SiteRef]
    home: str
    """The on-prem site: it keeps its share of the traffic."""
    apps: list[str]
    record: str
    ttl: int
    endpoints: dict[str, str]
    price_per_node_hour: dict[str, float]
    budget_cap: float
    topology: Topology | None = None
    """The database's topology when the burst was planned (from the servers): a burst adds
    load to the primary, and holds when there is not exactly one."""


class BurstPlanInput(Contract):
    pass


class PoolInput(Contract):
    cloud: Cloud
    nodes: int | None = None
    """The node count wanted; ``None`` only reads."""
    run_id: str


class PoolResult(ActivityResult):
    nodes_before: int
    nodes: int


class WorkloadsInput(Contract):
    """The fields of a GitOps step (deploy, remove): the base of their inputs."""

    apps: list[str]
    cloud: Cloud
    run_id: str


class DeployWorkloadsInput(WorkloadsInput):
    """Input of ``deploy_workloads``."""


class DeployWorkloadsResult(ActivityResult):
    """Result of ``deploy_workloads``."""


class RemoveWorkloadsInput(WorkloadsInput):
    """Input of ``remove_workloads`` (compensation of ``deploy_workloads``)."""


class RemoveWorkloadsResult(ActivityResult):
    """Result of ``remove_workloads``."""


class WeightsInput(Contract):
    record: str
    weights: dict[str, tuple[str, int]]
    """Set identifier (a site) to (address, weight)."""
    ttl: int


class WeightsResult(ActivityResult):
    before: dict[str, tuple[str, int]]


class LoadResult(ActivityResult):
    load: float | None = None
    """The on-prem load, 0..1; ``None`` when it could not be read."""


class LoadInput(Contract):
    pass


class BurstEvidenceInput(Contract):
    result: BurstResult
