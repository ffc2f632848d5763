"""The one shape of every runbook's ``evidence.json``, and how each runbook's result maps onto it.

Every run, whatever its runbook and however it ended, leaves an :class:`Evidence` (DESIGN.md
rule 8): the same top-level fields with the same meaning, so one reader (an auditor, a
dashboard, ``jq``) reads a failover and a drill alike. What only one runbook has sits in
``details``, told apart by its ``runbook``. Its JSON Schema is ``runbooks/evidence.schema.json``
(``make evidence-schema`` writes it from this module; a unit test keeps the two equal).

The workflow results (``FailoverResult`` and the others) are recorded in histories and keep
their shape; the evidence is built from them when it is written (:func:`evidence_of`). Built
from contracts only, it holds no secret either.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field, model_validator

from hybridops.constants import Runbook
from hybridops.contracts.backup import BackupInfo, RestoreResult
from hybridops.contracts.base import (
    AlertNotice,
    ApprovalRecord,
    Contract,
    HealthCheck,
    OperatorRecord,
    Phase,
    RtoSplit,
    RuleViolation,
    RunStatus,
    StepRecord,
)
from hybridops.contracts.bootstrap import BootstrapResult
from hybridops.contracts.burst import BurstResult
from hybridops.contracts.decision import Decision, SignalSnapshot
from hybridops.contracts.drill import DrillResult, SloCheck
from hybridops.contracts.failback import FailbackResult, RejoinOutcome
from hybridops.contracts.failover import FailoverResult
from hybridops.contracts.lease import LeaseGrant
from hybridops.contracts.readiness import LatestReadinessResult
from hybridops.contracts.sites import (
    DivergedWrites,
    FenceResult,
    Finding,
    PickBackupResult,
    RestorePrimaryResult,
    RpoMethod,
    Topology,
)

EVIDENCE_VERSION: Final = 1
"""Bumped when a field changes meaning or goes away (adding one does not)."""

SCHEMA_FILE = "runbooks/evidence.schema.json"
"""Where the schema lives in the repository, relative to its root."""


class _Section(Contract):
    """Base of the evidence's own models: their field docstrings are the schema's descriptions,
    and every field is required in it (a written file always has them all, ``null`` or not)."""

    model_config = ConfigDict(
        **Contract.model_config,
        use_attribute_docstrings=True,
        json_schema_serialization_defaults_required=True,
    )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


class RtoMethod(StrEnum):
    """What an RTO measures: every one is how long clients could not write."""

    OUTAGE = "outage"
    """A failover's: from the incident (the primary's last sign of life, or the run's start)
    to the first write through the DNS name on the new primary."""
    WRITE_PAUSE = "write_pause"
    """A failback's planned switchover: from the moment the cloud primary refused writes to
    the first write through the DNS name on home."""
    RESTORE = "restore"
    """A drill's: from the start of the restore to a usable restored database."""


class _Measure(_Section):
    """What an RTO and an RPO both say: the objective they were checked against, if any."""

    objective_s: float | None = None
    """The objective (a drill's SLO); ``None`` when none was checked."""
    passed: bool | None = None
    """Within the objective; ``None`` when there was none."""


class Rto(_Measure):
    """Recovery time, one shape for every runbook that has one (``method`` says which)."""

    method: RtoMethod
    seconds: float | None = None
    """``None``: not reached (the run ended before clients could write again)."""
    since: datetime | None = None
    """Where it counts from (the old primary's last acknowledged write, the incident, the write
    pause)."""
    counted_from: str | None = None
    """What ``since`` is, in words (a failover's)."""
    split: RtoSplit | None = None
    """Where the time went: detection, decision, execution, client reconnect (a failover's)."""


class Rpo(_Measure):
    """Recovery point: acknowledged writes lost, as a count and as seconds."""

    method: RpoMethod
    transactions_lost: int | None = None
    """``None``: not counted (an estimate by lag, a drill)."""
    seconds: float | None = None


class EvidenceStep(StepRecord):
    """A step (or a compensation) as the run recorded it, with its duration."""

    model_config = _Section.model_config

    seconds: float | None = None
    """``ended_at - started_at``; ``None`` for a step that did not end."""


class FailoverDetails(_Section):
    """What only a failover has."""

    runbook: Literal[Runbook.FAILOVER] = Runbook.FAILOVER
    incident_started_at: datetime | None = None
    """When the incident began: the alert's start, or the run's (``rto.since`` is the old
    primary's last acknowledged write instead, where a writer's ledger saw it)."""
    signals: SignalSnapshot | None = None
    """The signals the decision was taken on."""
    alerts: list[AlertNotice] = []
    """Alert notifications the run received (a resolve, a resend)."""
    topology: Topology | None = None
    """The topology the run started from, established from the servers."""
    diverged: list[DivergedWrites] = []
    """When the run found several writers: the writes each made on its own branch."""
    fenced: list[str] = []
    """Writers the run fenced because they were not the one primary it kept (split brain)."""
    fence: FenceResult | None = None
    """How the old primary was fenced: verified (a token) or not."""
    lease: LeaseGrant | None = None
    dns_repaired: bool = False
    """The primary was healthy but DNS pointed elsewhere: the run pointed DNS at it."""
    health: list[HealthCheck] = []
    """What monitoring reported after the cutover (the apps' error rate at the new primary's
    site against ``constraints.max_error_rate``, the alert resolved), each with its value and
    threshold; empty for a run that did not get that far, or recorded before the check."""
    backup_picked: PickBackupResult | None = None
    """Restore mode: the backup chosen before anything changed."""
    restore: RestorePrimaryResult | None = None
    """Restore mode: the backup restored, its label and time, the WAL replayed to, the timeline
    chosen, the archive's timelines before, how long (fetch, recovery, total)."""
    readiness: LatestReadinessResult | None = None
    """The readiness the run started from: the newest evaluation before it (scheduled or
    ``hybridops ready``), its age and the checks of ``failover to TARGET`` that failed;
    ``None`` for a run that did not read it (before it was read, or it stopped earlier)."""


class FailbackDetails(_Section):
    """What only a failback has."""

    runbook: Literal[Runbook.FAILBACK] = Runbook.FAILBACK
    old_primary: str | None = None
    """The cloud site that was the primary when the run began."""
    other_standbys: list[str] = []
    rejoin: RejoinOutcome | None = None
    """How home was made a standby of the cloud primary."""
    moved_aside: str | None = None
    """Where home's old data directory was moved when it was recloned (never deleted)."""
    old_primary_rejoin: RejoinOutcome | None = None
    final_lsn: str | None = None
    """The paused primary's last WAL position, which home replayed before promotion."""
    first_write_at: datetime | None = None
    """The first write through the DNS name that landed on home (its server clock)."""
    timeline: int | None = None
    """Home's timeline after promotion."""
    rejoin_seconds: float | None = None
    catch_up_seconds: float | None = None
    switchover_seconds: float | None = None
    """From pausing writes to the verified write on home (workflow clock)."""
    warnings: list[str] = []
    """Best-effort steps that failed after the point of no return: a human finishes these."""
    topology: Topology | None = None
    lease: LeaseGrant | None = None


class DrillDetails(_Section):
    """What only a drill has (its RTO and RPO are the top-level ones)."""

    runbook: Literal[Runbook.DRILL] = Runbook.DRILL
    passed: bool = False
    """Restored, verified, and both SLO checks passed."""
    backup: BackupInfo | None = None
    restore: RestoreResult | None = None
    newest_row_at: datetime | None = None
    rows_restored: int | None = None
    slo: list[SloCheck] = []


class BurstDetails(_Section):
    """What only a burst has."""

    runbook: Literal[Runbook.BURST] = Runbook.BURST
    ended_because: str = ""
    """``load``, ``stopped``, ``budget``, ``deadline``, or the error."""
    node_hours: float = 0.0
    cost_estimate: float = 0.0
    checks: int = 0
    runs: int = 1
    """Runs (continue-as-new) the burst took."""
    peak_load: float | None = None


class BootstrapDetails(_Section):
    """A bootstrap has nothing of its own beyond its input and steps."""

    runbook: Literal[Runbook.BOOTSTRAP] = Runbook.BOOTSTRAP


Details = Annotated[
    FailoverDetails | FailbackDetails | DrillDetails | BurstDetails | BootstrapDetails,
    Field(discriminator="runbook"),
]


class Evidence(_Section):
    """A run's ``evidence.json``: the same fields, with the same meaning, for every runbook.
    A field a runbook has no use for is ``null`` (or empty), never absent."""

    # The schema says it too: the details of a failover are a failover's.
    model_config = ConfigDict(
        **_Section.model_config,
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"runbook": {"const": r.value}}},
                    "then": {"properties": {"details": {"properties": {"runbook": {"const": r.value}}}}},
                }
                for r in Runbook
            ]
        },
    )

    evidence_version: Literal[1] = EVIDENCE_VERSION
    runbook: Runbook
    workflow_id: str
    run_id: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    seconds: float | None = None
    """The run's wall time (``ended_at - started_at``)."""
    requested_by: str
    """Who or what started the run (a person, ``alert:ROUTE``, a schedule), as its input says."""
    reason: str
    input: dict[str, Any]
    """The run's input as it was started (the runbook's ``XxxInput``: references, never secrets)."""
    target: str | None = None
    """The site the run acts for: the one a failover promotes, a failback's home, the cloud a
    burst goes to; ``None`` for a drill and a bootstrap, or when the run did not get that far."""
    decision: Decision | None = None
    """The policy's decision with its rationale (failover, burst); ``None`` when none was taken."""
    approvals: list[ApprovalRecord] = []
    """Approvals and rejections at the gate: who, when, their identity, any override (break glass)."""
    refused_approvals: list[ApprovalRecord] = []
    """Attempts the run refused, with who, when and why (``refused``)."""
    operator_actions: list[OperatorRecord] = []
    """Pauses, resumes, retries and skips of the run (issue 20 item 4), in order: who (the
    header's claim and the verified signer), when, the step, why, and ``refused`` when the run
    did not take one (it changed nothing)."""
    steps: list[EvidenceStep] = []
    compensations: list[EvidenceStep] = []
    """The undo steps that ran, in the order they ran."""
    point_of_no_return_passed: bool | None = None
    """Whether the run passed its irreversible step; ``None`` for a runbook that has none."""
    stopped_in: Phase | None = None
    """The phase a run that failed past the point of no return stopped in (its named state);
    ``None`` otherwise."""
    by_hand: list[str] = []
    """What an operator does next, in order, to finish such a run by hand (runbooks/, "When it
    fails"); empty otherwise."""
    rto: Rto | None = None
    """``None`` for a runbook that measures none (burst, bootstrap)."""
    rpo: Rpo | None = None
    findings: list[Finding] = []
    """What the run found in the topology and did not act on blindly."""
    blocked_by: list[RuleViolation] = []
    """Safety rules that blocked a step (overridden by an approval or not)."""
    error: str | None = None
    evidence_dir: str | None = None
    """Where the folder was written (on the worker's machine)."""
    details: Details
    """What only this runbook has; ``details.runbook`` is ``runbook``."""

    @model_validator(mode="after")
    def _details_match(self) -> Evidence:
        if self.details.runbook != self.runbook:
            raise ValueError(f"details: a {self.details.runbook} section in {self.runbook} evidence")
        return self


AnyRunbookResult = FailoverResult | FailbackResult | DrillResult | BurstResult | BootstrapResult
"""A runbook's workflow result: what its evidence is built from."""


def _steps(steps: list[StepRecord]) -> list[EvidenceStep]:
    return [EvidenceStep(**s.model_dump(), seconds=_seconds(s.started_at, s.ended_at)) for s in steps]


_DERIVED = frozenset({"runbook", "input", "steps", "compensations", "rpo"})
"""Fields of the evidence whose value is built from the result's field of the same name (a
failover's ``rpo`` takes the common RPO shape), not that field as it is."""


def _shared(kind: type[Contract], r: AnyRunbookResult) -> dict[str, Any]:
    """``r``'s values of the fields ``kind`` has too: a result's field and the evidence's of
    the same name mean the same (a unit test checks that no result field is left out)."""
    return {n: getattr(r, n) for n in (kind.model_fields.keys() & type(r).model_fields.keys()) - _DERIVED}


def _evidence(r: AnyRunbookResult, details: Details, **own: Any) -> Evidence:
    """The evidence of ``r``: the shared fields, ``details``, and the fields the runbook maps
    its own way (``own``: its RTO and RPO, a failback's ``target``)."""
    return Evidence(
        **_shared(Evidence, r),
        runbook=Runbook(r.runbook),
        seconds=_seconds(r.started_at, r.ended_at),
        requested_by=r.input.requested_by,
        reason=r.input.reason,
        input=r.input.model_dump(mode="json"),
        steps=_steps(r.steps),
        compensations=_steps(getattr(r, "compensations", [])),  # a bootstrap has none: it converges
        details=details,
        **own,
    )


def _within(value: float | None, objective: float | None) -> bool | None:
    return None if value is None or objective is None else value <= objective


def _failover(r: FailoverResult) -> Evidence:
    rpo = Rpo(
        method=r.rpo.method,
        transactions_lost=r.rpo.transactions_lost,
        seconds=r.rpo.seconds,
        objective_s=r.rpo_objective_s,
        passed=_within(r.rpo.seconds, r.rpo_objective_s),
    )
    return _evidence(
        r,
        FailoverDetails(**_shared(FailoverDetails, r)),
        rto=Rto(
            method=RtoMethod.OUTAGE,
            seconds=r.rto_seconds,
            since=r.rto_since or r.incident_started_at,
            counted_from=r.rto_counted_from or None,
            split=r.rto_split,
            objective_s=r.rto_objective_s,
            passed=_within(r.rto_seconds, r.rto_objective_s),
        ),
        rpo=rpo,
    )


def _failback(r: FailbackResult) -> Evidence:
    # Nothing acknowledged is lost once home replayed the paused primary's final LSN and was
    # promoted (the catch-up step and the promotion check it); before that the run lost
    # nothing either, but measured nothing.
    switched = r.point_of_no_return_passed and r.final_lsn is not None
    return _evidence(
        r,
        FailbackDetails(**_shared(FailbackDetails, r)),
        target=r.home,
        rto=Rto(method=RtoMethod.WRITE_PAUSE, seconds=r.write_pause_seconds, since=r.paused_at),
        rpo=Rpo(method=RpoMethod.LSN, transactions_lost=0, seconds=0.0)
        if switched
        else Rpo(method=RpoMethod.NONE),
    )


def _drill(r: DrillResult) -> Evidence:
    checks = {c.name: c for c in r.slo}
    rto, rpo = checks.get("rto"), checks.get("rpo")
    return _evidence(
        r,
        DrillDetails(**_shared(DrillDetails, r)),
        rto=Rto(
            method=RtoMethod.RESTORE,
            seconds=r.rto_seconds,
            objective_s=rto.objective_s if rto else None,
            passed=rto.passed if rto else None,
        ),
        rpo=Rpo(
            method=RpoMethod.NEWEST_ROW if r.rpo_seconds is not None else RpoMethod.NONE,
            seconds=r.rpo_seconds,
            objective_s=rpo.objective_s if rpo else None,
            passed=rpo.passed if rpo else None,
        ),
    )


def evidence_of(result: AnyRunbookResult) -> Evidence:
    """The evidence of a run, from its workflow result."""
    match result:
        case FailoverResult():
            return _failover(result)
        case FailbackResult():
            return _failback(result)
        case DrillResult():
            return _drill(result)
        case BurstResult():
            return _evidence(result, BurstDetails(**_shared(BurstDetails, result)))
        case BootstrapResult():
            return _evidence(result, BootstrapDetails())


def schema() -> dict[str, Any]:
    """The JSON Schema of ``evidence.json``, as the files are written (serialization mode)."""
    out = Evidence.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **out}


def schema_text() -> str:
    """:func:`schema` as the file ``runbooks/evidence.schema.json`` holds it."""
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # make evidence-schema
    print(schema_text(), end="")
