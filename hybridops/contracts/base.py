"""The kernel every runbook shares: the base contract and bounded input types, run status,
phases, step records, progress, approvals, and the base of every activity result.

One ``XxxInput`` and one ``XxxResult`` per workflow and activity, so fields can be added
without breaking running histories. Every model in ``hybridops.contracts`` may be recorded in a
Temporal history, so none of them may carry a secret: they carry references (``password_ref``)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Contract(BaseModel):
    """Base of every contract: unknown fields are an error that names them, and no float may
    be ``inf`` or ``nan`` (``timedelta(seconds=inf)`` overflows deep inside a run)."""

    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


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
    """Where a run is, for every runbook (the ``progress`` Query's ``phase``). A runbook goes
    through the phases of its own sequence (its module's docstring lists them, in order);
    every run starts ``pending`` and ends ``evidence`` then ``done``, and a failed one may
    ``compensate`` between."""

    PENDING = "pending"
    PLAN = "plan"
    DECIDE = "decide"
    APPROVAL = "approval"
    COMPENSATE = "compensate"
    EVIDENCE = "evidence"
    DONE = "done"
    # failover and failback: moving the primary
    PREPARE_TARGET = "prepare_target"
    SYNC_WORKLOADS = "sync_workloads"
    FENCE = "fence_old_primary"
    PROMOTE = "promote"
    REPOINT_APPS = "repoint_apps"
    DNS_CUTOVER = "dns_cutover"
    VERIFY = "verify"
    REJOIN = "rejoin_standbys"
    HEALTH = "check_health"
    AWAIT_RESOLVE = "await_alert_resolve"
    REJOIN_HOME = "rejoin_home"
    CATCH_UP = "catch_up"
    PAUSE_WRITES = "pause_writes"
    REJOIN_OLD_PRIMARY = "rejoin_old_primary"
    RETIRE_FENCES = "retire_fences"
    # drill: a restore that never touches production (and a failover's restore mode)
    BACKUP = "backup"
    RESTORE = "restore"
    START_SCRATCH = "start_scratch"
    TEARDOWN = "teardown"
    # burst: capacity out and back
    SCALE_OUT = "scale_out"
    DEPLOY = "deploy"
    SHIFT_TRAFFIC = "shift_traffic"
    HOLD = "hold"
    SCALE_IN = "scale_in"
    # bootstrap: its phases are its steps (BootstrapStep), each converging a host
    VALIDATE_NETWORK = "validate_network"
    BUILD_IMAGES = "build_images"
    RKE2 = "rke2"
    JENKINS = "jenkins"
    GITOPS_ENROLL = "gitops_enroll"


class RunStatus(StrEnum):
    """How a run ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    HELD = "held"
    """Ended before changing anything (a hold, a refusal, a failure before the first change):
    there was nothing to undo."""
    COMPENSATED = "compensated"
    """Failed before the point of no return; every compensation ran."""
    FAILED = "failed"
    """Failed after the point of no return, or a compensation failed: needs a human."""
    REJECTED = "rejected"
    """An approver said no; compensations ran."""


class RtoSplit(Contract):
    """Where an outage went, in order; the four add up to the RTO. ``None``: not measured."""

    detection_s: float | None = None
    """From the primary's last sign of life to the run's start (the alert path, or a person)."""
    decision_s: float | None = None
    """From the run's start to its first change (plan, assess, signals, the decision, an
    approval when one was asked)."""
    execution_s: float | None = None
    """From the first change to the first write through the DNS name on the new primary."""
    reconnect_s: float | None = None
    """From that write to the clients' own first acknowledged write (the workload's ledger)."""

    @classmethod
    def between(
        cls,
        since: datetime,
        started: datetime,
        changed: datetime | None,
        wrote: datetime,
        end: datetime,
    ) -> RtoSplit:
        """The split of ``since`` .. ``end`` at the run's start, its first change (None: it
        made none before writing, the split has no execution), its own first write through DNS.
        Each boundary is kept in order, so the four always add up to the whole."""

        def s(a: datetime, b: datetime) -> float:
            return round((b - a).total_seconds(), 3)

        t1 = min(max(since, started), end)
        t2 = min(max(t1, changed), end) if changed is not None else None
        t3 = min(max(t2 or t1, wrote), end)
        return cls(
            detection_s=s(since, t1),
            decision_s=s(t1, t2) if t2 is not None else s(t1, t3),
            execution_s=s(t2, t3) if t2 is not None else None,
            reconnect_s=s(t3, end),
        )


class StepOutcome(StrEnum):
    """How one step ended."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    """The world was already as the step wanted it (an idempotent retry)."""
    FAILED = "failed"
    SKIPPED = "skipped"


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
    signature: str | None = Field(default=None, max_length=4000)
    """The approver's armored SSH signature (``ssh-keygen -Y sign -n hybridops-approval``) of
    :func:`hybridops.signing.approval_message` for this run, decision, verdict and override."""
    signed_at: Timestamp | None = None
    """When it was signed (UTC, to the second; naive means UTC): part of the message, and checked
    for age."""


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
    signer: str | None = None
    """Who signed it, verified against the policy's allowed signers (``ssh:<principal>``);
    None when unsigned or when the signature did not verify."""
    signature: str | None = None
    """The signature as sent (``hybridops audit verify`` checks it again, offline)."""
    signed_at: datetime | None = None


class OperatorAction(StrEnum):
    """What an operator does to a running runbook (issue 20 item 4), each authorized like an
    approval (the approvers policy and, where it asks, an SSH signature)."""

    PAUSE = "pause"
    """Hold the run at its next step boundary (the step in flight finishes)."""
    RESUME = "resume"
    """Let a paused run go on."""
    RETRY = "retry"
    """Run again the step that failed past the point of no return (its cause fixed)."""
    SKIP = "skip"
    """Go on past that step without it (the comment says why)."""


class OperatorInput(Contract):
    """Argument of the ``pause``, ``resume``, ``retry`` and ``skip`` Updates."""

    by: Actor
    """Who acts: a person's name or handle (at most 200 characters)."""
    step: str | None = Field(default=None, max_length=63)
    """The step a retry or skip is for: the one the run waits on (``progress.waiting_for_operator``)."""
    comment: ShortText = ""
    """Why, for the evidence; a skip must say it (at most 1000 characters)."""
    signature: str | None = Field(default=None, max_length=4000)
    """The operator's armored SSH signature of :func:`hybridops.signing.operator_message` for
    this run, this action, this step and comment, at ``signed_at``."""
    signed_at: Timestamp | None = None
    """When it was signed (UTC, to the second; naive means UTC): part of the message, and checked
    for age."""


class OperatorRecord(Contract):
    """A pause, resume, retry or skip as the evidence records it, taken or refused."""

    action: OperatorAction
    by: str
    at: datetime
    step: str | None = None
    comment: str = ""
    identity: str | None = None
    """Who it was, as their client's identity header claims."""
    signer: str | None = None
    """``ssh:<principal>`` when its signature verified against the policy's allowed signers."""
    signature: str | None = None
    signed_at: datetime | None = None
    refused: str | None = None
    """Why the run refused it (None: taken). A refused action changed nothing."""


class OperatorWait(Contract):
    """A step that failed past the point of no return, waiting for an operator's retry or skip."""

    step: str
    error: str
    since: datetime
    until: datetime
    """When the wait ends and the run fails as it would have (the policy's
    ``operator.wait_after_failure_s``)."""


class RuleViolation(Contract):
    """A safety rule that blocks a step (DESIGN.md rule 12)."""

    rule: str
    """``single_writer``, ``roles_known``, ``same_system``, ``not_forked``, ``target_writable``."""
    site: str
    detail: str


class AlertNotice(Contract):
    """An Alertmanager notification delivered to the run it started (a resolve, a resend)."""

    status: str
    """``firing`` or ``resolved``."""
    received_at: datetime
    group_key: str = ""
    alertnames: list[str] = []
    ended_at: datetime | None = None
    """The latest ``endsAt`` of the resolved alerts."""


class HealthCheck(Contract):
    """One thing monitoring reports after a failover's cutover (hybridops/health.py), with
    its value, its threshold and where the value came from."""

    id: str
    """``apps.error_rate`` or ``alert.resolved``."""
    site: str | None = None
    """The site it is about (the new primary's), when it is about one."""
    value: float | str | None = None
    """What was observed; ``None`` when nothing reported it."""
    threshold: str = ""
    """What it must be (``<= 0.2``, ``resolved``)."""
    passed: bool | None = None
    """``None``: unknown (no source reports it, no threshold, not waited for)."""
    source: str = ""
    """Where the value came from: ``prometheus``, ``alertmanager``, ``static``, or ``none``."""
    detail: str = ""


class Progress(Contract):
    """Answer of the ``progress`` Query (every runbook's)."""

    phase: Phase
    status: RunStatus
    target: str | None = None
    waiting_for_approval: bool = False
    steps: list[StepRecord] = []
    blocked_by: RuleViolation | None = None
    """The safety rule the run waits on an override for (break glass), if any."""
    decision_id: str | None = None
    """The decision an approval at the gate approves."""
    paused: OperatorRecord | None = None
    """The pause in force (who, when, why): the run waits at its next step boundary."""
    waiting_for_operator: OperatorWait | None = None
    """A step failed past the point of no return: ``hybridops retry`` or ``hybridops skip``."""


class ActivityResult(Contract):
    """Base of every activity result: what happened, and on which attempt."""

    changed: bool = False
    """True when this call changed the world; False when it was already as wanted."""
    attempt: int = 1
    detail: str = ""

    def step_outcome(self) -> StepOutcome:
        """How the step ended, as its record in the evidence says."""
        return StepOutcome.CHANGED if self.changed else StepOutcome.UNCHANGED


class CheckpointInput(Contract):
    """Input of ``checkpoint``: a no-op whose scheduling makes the run so far durable."""

    name: str


class CheckpointResult(ActivityResult):
    """Result of ``checkpoint``: its ``detail`` is the checkpoint's name."""


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
