"""How a run ended and what it measured (status, RTO, RPO), for its audit report.

A history from the server that holds the closing event says it itself: the result (or the
failure's details) is the runbook's result model, and its evidence follows from it
(:func:`~hybridops.contracts.evidence.evidence_of`).

A history exported by the run's evidence step (an evidence folder's ``history.json``) has no
closing event: the step exported it before the run ended, so the history alone says
"running". The run's ending is then read from the ``evidence.json`` beside it, not from the
evidence step's scheduled input in the history, because:

* with placement ``colocated`` (the default; the lab runs ``queues``) the evidence step is a local
  activity, and a local activity reaches the history only as a marker written when its
  workflow task completes, after the export: the exported history holds no trace of the step
  or its input. Only with placement ``queues`` is its ``ActivityTaskScheduled`` event there.
* ``evidence.json`` was written by that same step from that same result: the run's final
  status, its end, its RTO and RPO (nothing changes the result after the step but the folder's
  path). It is listed in the manifest beside it, which :mod:`hybridops.audit.evidence_check`
  checks in the same report; ``hybridops audit verify`` checks the folder against the digest
  the run's history on the server records.

So it is read only when it can be trusted as far as the folder can tell: listed in the
manifest and unchanged, with a history.json that is this run's, and of the same workflow id
and run id; otherwise the report says why it is not used and the run stays "running".
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ValidationError

from hybridops.audit.evidence_check import EvidenceCheck
from hybridops.audit.timeline import Timeline
from hybridops.constants import Runbook
from hybridops.contracts.bootstrap import BootstrapResult
from hybridops.contracts.burst import BurstResult
from hybridops.contracts.drill import DrillResult
from hybridops.contracts.evidence import AnyRunbookResult, Evidence, evidence_of
from hybridops.contracts.failback import FailbackResult
from hybridops.contracts.failover import FailoverResult

EVIDENCE_FILE: Final = "evidence.json"

RESULT_TYPES: Final[dict[Runbook, type[AnyRunbookResult]]] = {
    Runbook.FAILOVER: FailoverResult,
    Runbook.FAILBACK: FailbackResult,
    Runbook.DRILL: DrillResult,
    Runbook.BURST: BurstResult,
    Runbook.BOOTSTRAP: BootstrapResult,
}
"""Each runbook's result model: what its closing event carries."""


class EndingSource(StrEnum):
    """Where the report read the run's ending."""

    HISTORY = "history"
    """The history's closing event (the server's record)."""
    EVIDENCE = "evidence"
    """The ``evidence.json`` beside a history exported before the run closed."""
    NONE = "none"
    """Nowhere: the run is open, or its ending could not be read (``note`` says why)."""


class RunEnding(BaseModel):
    """The run's ending as the audit report states it."""

    source: EndingSource
    status: str
    """The runbook's status (succeeded, held, compensated, rejected, failed), or the closing
    event's kind when the run has no result; ``running`` when the ending is unknown."""
    ended_at: datetime | None = None
    evidence: Evidence | None = None
    """The run's evidence, for its measures; ``None`` when it could not be read."""
    note: str = ""
    """Why the ending or the measures are not shown, when they are not."""


def _from_result(tl: Timeline) -> RunEnding:
    ending = RunEnding(source=EndingSource.HISTORY, status=tl.status, ended_at=tl.ended_at)
    kind = next((t for r, t in RESULT_TYPES.items() if r.value == tl.runbook), None)
    if not isinstance(tl.result, dict) or kind is None:
        ending.note = "the run closed without a runbook result: no measures"
        return ending
    try:
        ending.evidence = evidence_of(kind.model_validate(tl.result))
    except ValidationError as err:
        ending.note = f"its result does not read as today's {kind.__name__} ({err.error_count()} errors)"
    return ending


def _from_evidence(tl: Timeline, folder: Path | None, check: EvidenceCheck) -> RunEnding:
    open_run = RunEnding(source=EndingSource.NONE, status=tl.closed_as)
    why = "the history has no closing event (the run is open, or it was exported before it closed)"
    if folder is None or check.folder is None:
        open_run.note = f"{why}, and no evidence folder was found"
        return open_run
    if EVIDENCE_FILE not in check.files or EVIDENCE_FILE in check.changed + check.missing:
        open_run.note = f"{why}; its evidence.json is not as the run wrote it, so it is not read"
        return open_run
    if check.history_mismatch:
        open_run.note = f"{why}; the evidence folder's history.json is not this run's"
        return open_run
    try:
        ev = Evidence.model_validate_json((folder / EVIDENCE_FILE).read_text())
    except (OSError, ValidationError) as err:
        open_run.note = f"{why}; its evidence.json does not read: {err}"
        return open_run
    if (ev.workflow_id, ev.run_id) != (tl.workflow_id, tl.run_id):
        open_run.note = f"{why}; the evidence folder is of run {ev.workflow_id} {ev.run_id}"
        return open_run
    return RunEnding(source=EndingSource.EVIDENCE, status=ev.status.value, ended_at=ev.ended_at, evidence=ev)


def run_ending(tl: Timeline, folder: Path | None, check: EvidenceCheck) -> RunEnding:
    """The run's ending: from the history's closing event when it has one, else from the
    evidence folder ``folder`` (checked: ``check``) beside it (see the module's docstring)."""
    if tl.closed_as != "running":
        return _from_result(tl)
    return _from_evidence(tl, folder, check)
