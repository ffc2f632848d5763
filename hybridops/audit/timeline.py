"""A run's timeline, built from its Temporal history events alone.

Nothing here asks the workers or reads the evidence: the history is the record the server
kept, so an audit built from it holds even when the evidence folder was changed. Payloads are
decoded with HybridOps' data converter (``hybridops.client.DATA_CONVERTER``) into plain JSON
values, so a history of an older model version still reads.

How each part is derived:

* start: the ``WorkflowExecutionStarted`` event: its ``identity`` (the client that started
  it), its input (``requested_by``, ``reason``), its search attributes (a schedule stamps
  ``TemporalScheduledById``), a parent workflow or a cron schedule.
* steps: local activities are ``MarkerRecorded`` events named ``core_local_activity``; the
  marker's ``data`` detail holds the activity type, the attempt it ended on, when it was first
  scheduled and when it completed; its ``failure`` says why it failed. Queued activities are
  ``ActivityTaskScheduled`` / ``Started`` (attempt) / ``Completed`` / ``Failed`` /
  ``TimedOut`` / ``Canceled`` events tied by the scheduled event id.
* waits: ``TimerStarted`` then ``TimerFired`` or ``TimerCanceled`` (a gate that was answered).
* approvals: ``WorkflowExecutionUpdateAccepted`` (the request: update name, the client's
  identity, the argument with ``by``) and ``...UpdateCompleted`` (the returned record or the
  failure); an update the validator refused leaves no event, so none is shown. When: the
  start of the workflow task that delivered it (the accepted event names that task), which
  is the workflow's clock in its handler; the accepted event itself is only written when the
  task completes, after the local activities the approval let run.
* signals: ``WorkflowExecutionSignaled``, with its decoded argument.
* end: the closing event; a runbook's result (or its failure's details) is its result model,
  whose ``compensations`` names the steps that undid others: the last activities of those
  types after the first failure are marked as compensations.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from hybridops.client import DATA_CONVERTER

LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker name sdk-core gives a local activity's record."""
SCHEDULED_BY = "TemporalScheduledById"
"""The search attribute a Temporal Schedule stamps on the runs it starts."""
ALERT_PREFIX = "alert:"
"""``requested_by`` of runs the alert receiver starts (``alert:<route>``)."""


class Origin(StrEnum):
    """How a run came to be started."""

    MANUAL = "manual"
    """A person or a program through a client (CLI, UI, API)."""
    SCHEDULE = "schedule"
    ALERT = "alert"
    PARENT = "parent workflow"
    CRON = "cron"
    CONTINUED = "continued as new"


class StepKind(StrEnum):
    """How a step ran."""

    LOCAL = "local activity"
    QUEUED = "activity"
    TIMER = "timer"


class StepStatus(StrEnum):
    """How a step ended, as the history says."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed out"
    CANCELED = "canceled"
    FIRED = "fired"
    """A timer that ran out (a gate nobody answered, a wait that expired)."""
    RUNNING = "running"
    """No closing event yet (a run still open, or cut short)."""


class TimelineStep(BaseModel):
    """One activity (or timer) of the run."""

    name: str
    """The activity type (or ``timer <id>``)."""
    kind: StepKind
    status: StepStatus
    started_at: datetime
    ended_at: datetime | None = None
    attempts: int = 1
    """The attempt it ended on (1 when it did not retry)."""
    task_queue: str = ""
    failure: str = ""
    detail: str = ""
    """The result's ``detail``, when the result has one."""
    changed: bool | None = None
    """The result's ``changed``, when the result has one."""
    compensation: bool = False
    """This step undid an earlier one (from the result's ``compensations``)."""
    event_id: int = 0

    @property
    def seconds(self) -> float | None:
        """How long it took, from first scheduling to its end."""
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()


class ApprovalUpdate(BaseModel):
    """An Update the run accepted (the approval gate's ``approve``)."""

    update: str
    update_id: str
    identity: str
    """The client that sent it."""
    by: str = ""
    """Who approved, from the argument (``by``)."""
    comment: str = ""
    approved: bool | None = None
    """From the returned record (or the argument); None when the update failed."""
    received_at: datetime
    """When the run received it: the start of the workflow task that delivered it (the
    workflow's clock as its handler saw it)."""
    accepted_at: datetime
    """The accepted event's time: written when that workflow task completed, so after any
    local activities the same task ran."""
    completed_at: datetime | None = None
    failure: str = ""


class ReceivedSignal(BaseModel):
    """A Signal the run received."""

    name: str
    at: datetime
    identity: str
    summary: str
    """The decoded argument, short."""


class Timeline(BaseModel):
    """Everything the audit report says, as derived from the history."""

    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    started_at: datetime
    ended_at: datetime | None = None
    identity: str
    """The client identity on the start event (``pid@host`` for the SDK clients)."""
    requested_by: str = ""
    reason: str = ""
    origin: Origin = Origin.MANUAL
    scheduled_by: str = ""
    """The Schedule's id, when a Schedule started the run."""
    input: Any = None
    steps: list[TimelineStep] = []
    approvals: list[ApprovalUpdate] = []
    signals: list[ReceivedSignal] = []
    closed_as: str = "running"
    """The closing event: completed, failed, canceled, terminated, timed out, continued as new."""
    status: str = ""
    """The runbook's own status from its result (succeeded, held, compensated, rejected, failed)."""
    message: str = ""
    """The failure's message (or the termination's reason)."""
    result: Any = None
    """The result, or the failure's details (a runbook's result model as JSON)."""
    compensations: list[str] = []
    evidence_dir: str = ""
    """Where the run said it wrote its evidence (on the worker's machine)."""
    runbook: str = ""

    @property
    def seconds(self) -> float | None:
        """The run's wall time."""
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()

    def durations(self) -> dict[str, float]:
        """Named durations in seconds: the run, time in activities, in waits, the rest."""
        out: dict[str, float] = {}
        if self.seconds is not None:
            out["run"] = self.seconds
        work = [s.seconds or 0.0 for s in self.steps if s.kind != StepKind.TIMER]
        waits = [s.seconds or 0.0 for s in self.steps if s.kind == StepKind.TIMER]
        out["activities"] = sum(work)
        out["waiting"] = sum(waits)
        if self.seconds is not None:
            out["orchestration"] = max(0.0, self.seconds - out["activities"] - out["waiting"])
        return out


# ---------------------------------------------------------------------- decoding


def _time(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _json_time(value: Any) -> datetime | None:
    """A prost Timestamp as sdk-core serialises it in marker data: ``{seconds, nanos}``."""
    if isinstance(value, dict) and "seconds" in value:
        return datetime.fromtimestamp(int(value["seconds"]), UTC) + timedelta(
            microseconds=int(value.get("nanos", 0)) // 1000
        )
    return None


def decode(payloads: Payloads | list[Payload]) -> list[Any]:
    """Payloads as JSON values, through the data converter (no type hints: plain data)."""
    items = list(payloads.payloads if isinstance(payloads, Payloads) else payloads)
    if not items:
        return []
    try:
        return list(DATA_CONVERTER.payload_converter.from_payloads(items, None))
    except Exception as err:  # an undecodable payload is shown, not fatal to the audit
        return [f"<undecodable payload: {err}>"]


def _first(payloads: Payloads | list[Payload]) -> Any:
    values = decode(payloads)
    return values[0] if values else None


def describe_failure(failure: Failure) -> str:
    """``Type: message`` of the innermost application failure, as people read it."""
    f = failure
    while f.HasField("cause") and not f.HasField("application_failure_info"):
        f = f.cause
    kind = f.application_failure_info.type if f.HasField("application_failure_info") else ""
    return f"{kind}: {f.message}" if kind else f.message


def _failure_details(failure: Failure) -> Any:
    if failure.HasField("application_failure_info"):
        return _first(failure.application_failure_info.details)
    return None


def _short(value: Any, limit: int = 160) -> str:
    if isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, "", [], {}))
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------- building


def _start(tl_fields: dict[str, Any], event: HistoryEvent, workflow_id: str) -> None:
    a = event.workflow_execution_started_event_attributes
    inp = _first(a.input)
    requested_by = str(inp.get("requested_by", "")) if isinstance(inp, dict) else ""
    reason = str(inp.get("reason", "")) if isinstance(inp, dict) else ""
    scheduled_by = ""
    if SCHEDULED_BY in a.search_attributes.indexed_fields:
        value = _first([a.search_attributes.indexed_fields[SCHEDULED_BY]])
        scheduled_by = str(value[0] if isinstance(value, list) and value else value or "")
    if scheduled_by:
        origin = Origin.SCHEDULE
    elif requested_by.startswith(ALERT_PREFIX):
        origin = Origin.ALERT
    elif a.HasField("parent_workflow_execution"):
        origin = Origin.PARENT
    elif a.cron_schedule:
        origin = Origin.CRON
    elif a.continued_execution_run_id:
        origin = Origin.CONTINUED
    else:
        origin = Origin.MANUAL
    tl_fields.update(
        workflow_id=a.workflow_id or workflow_id,
        run_id=a.original_execution_run_id,
        workflow_type=a.workflow_type.name,
        task_queue=a.task_queue.name,
        started_at=_time(event.event_time),
        identity=a.identity,
        requested_by=requested_by,
        reason=reason,
        origin=origin,
        scheduled_by=scheduled_by,
        input=inp,
    )


def _result_fields(step: TimelineStep, result: Any) -> None:
    if isinstance(result, dict):
        step.detail = str(result.get("detail", "") or "")
        changed = result.get("changed")
        step.changed = changed if isinstance(changed, bool) else None


def _local_activity(event: HistoryEvent, task_began: datetime | None) -> TimelineStep | None:
    """A local activity's step from its marker; ``task_began`` is when its work began as far
    as the history tells: the end of the previous local activity of the same workflow task,
    or that task's start."""
    a = event.marker_recorded_event_attributes
    if a.marker_name != LOCAL_ACTIVITY_MARKER:
        return None
    data = _first(a.details["data"]) if "data" in a.details else None
    data = data if isinstance(data, dict) else {}
    ended = _json_time(data.get("complete_time")) or _time(event.event_time)
    # The marker's original_schedule_time is the start when it is before the completion. On
    # this SDK it often is not: sdk-core stamps it a few ms after the previous local activity
    # completed, which can be after this one's own complete_time. Then the start is when the
    # previous local activity of the same workflow task ended (or the task began): ours run
    # one after the other.
    scheduled = _json_time(data.get("original_schedule_time"))
    if scheduled is not None and scheduled <= ended:
        started = scheduled
    else:
        started = task_began if task_began is not None and task_began <= ended else ended
    step = TimelineStep(
        name=str(data.get("activity_type", "local activity")),
        kind=StepKind.LOCAL,
        status=StepStatus.FAILED if a.HasField("failure") else StepStatus.COMPLETED,
        started_at=started,
        ended_at=ended,
        attempts=int(data.get("attempt", 1) or 1),
        event_id=event.event_id,
    )
    if a.HasField("failure"):
        step.failure = describe_failure(a.failure)
    elif "result" in a.details:
        _result_fields(step, _first(a.details["result"]))
    return step


def build_timeline(history: WorkflowHistory) -> Timeline:
    """The run's timeline from ``history``'s events (see the module's docstring)."""
    fields: dict[str, Any] = {}
    steps: list[TimelineStep] = []
    queued: dict[int, TimelineStep] = {}
    timers: dict[str, TimelineStep] = {}
    approvals: dict[str, ApprovalUpdate] = {}
    signals: list[ReceivedSignal] = []
    end: dict[str, Any] = {}
    task_started: dict[int, datetime] = {}  # workflow task started event id -> time
    task_delivered: dict[int, datetime] = {}  # workflow task scheduled event id -> its start
    task_began: dict[int, datetime] = {}  # workflow task completed event id -> work began

    for event in history.events:
        kind = event.WhichOneof("attributes")
        at = _time(event.event_time)
        if kind == "workflow_execution_started_event_attributes":
            _start(fields, event, history.workflow_id)
        elif kind == "workflow_task_started_event_attributes":
            task_started[event.event_id] = at
            task_delivered[event.workflow_task_started_event_attributes.scheduled_event_id] = at
        elif kind == "workflow_task_completed_event_attributes":
            began = task_started.get(event.workflow_task_completed_event_attributes.started_event_id)
            if began is not None:
                task_began[event.event_id] = began
        elif kind == "marker_recorded_event_attributes":
            task = event.marker_recorded_event_attributes.workflow_task_completed_event_id
            step = _local_activity(event, task_began.get(task))
            if step is not None:
                steps.append(step)
                if step.ended_at is not None:
                    task_began[task] = max(step.ended_at, task_began.get(task, step.ended_at))
        elif kind == "activity_task_scheduled_event_attributes":
            a = event.activity_task_scheduled_event_attributes
            step = TimelineStep(
                name=a.activity_type.name,
                kind=StepKind.QUEUED,
                status=StepStatus.RUNNING,
                started_at=at,
                task_queue=a.task_queue.name,
                event_id=event.event_id,
            )
            queued[event.event_id] = step
            steps.append(step)
        elif kind == "activity_task_started_event_attributes":
            s = event.activity_task_started_event_attributes
            if s.scheduled_event_id in queued:
                queued[s.scheduled_event_id].attempts = max(1, s.attempt)
        elif kind == "activity_task_completed_event_attributes":
            c = event.activity_task_completed_event_attributes
            if c.scheduled_event_id in queued:
                step = queued[c.scheduled_event_id]
                step.status, step.ended_at = StepStatus.COMPLETED, at
                _result_fields(step, _first(c.result))
        elif kind == "activity_task_failed_event_attributes":
            f = event.activity_task_failed_event_attributes
            if f.scheduled_event_id in queued:
                step = queued[f.scheduled_event_id]
                step.status, step.ended_at = StepStatus.FAILED, at
                step.failure = describe_failure(f.failure)
        elif kind == "activity_task_timed_out_event_attributes":
            t = event.activity_task_timed_out_event_attributes
            if t.scheduled_event_id in queued:
                step = queued[t.scheduled_event_id]
                step.status, step.ended_at = StepStatus.TIMED_OUT, at
                step.failure = describe_failure(t.failure)
        elif kind == "activity_task_canceled_event_attributes":
            x = event.activity_task_canceled_event_attributes
            if x.scheduled_event_id in queued:
                step = queued[x.scheduled_event_id]
                step.status, step.ended_at = StepStatus.CANCELED, at
        elif kind == "timer_started_event_attributes":
            ts = event.timer_started_event_attributes
            wait = ts.start_to_fire_timeout.ToTimedelta().total_seconds()
            step = TimelineStep(
                name=f"wait (timer {ts.timer_id}, {wait:g} s)",
                kind=StepKind.TIMER,
                status=StepStatus.RUNNING,
                started_at=at,
                event_id=event.event_id,
            )
            timers[ts.timer_id] = step
            steps.append(step)
        elif kind == "timer_fired_event_attributes":
            timer_id = event.timer_fired_event_attributes.timer_id
            if timer_id in timers:
                timers[timer_id].status, timers[timer_id].ended_at = StepStatus.FIRED, at
        elif kind == "timer_canceled_event_attributes":
            timer_id = event.timer_canceled_event_attributes.timer_id
            if timer_id in timers:
                timers[timer_id].status, timers[timer_id].ended_at = StepStatus.CANCELED, at
        elif kind == "workflow_execution_update_accepted_event_attributes":
            u = event.workflow_execution_update_accepted_event_attributes
            req = u.accepted_request
            arg = _first(req.input.args)
            arg = arg if isinstance(arg, dict) else {}
            approvals[req.meta.update_id] = ApprovalUpdate(
                update=req.input.name,
                update_id=req.meta.update_id,
                identity=req.meta.identity,
                by=str(arg.get("by", "")),
                comment=str(arg.get("comment", "")),
                approved=arg.get("approve") if isinstance(arg.get("approve"), bool) else None,
                received_at=task_delivered.get(u.accepted_request_sequencing_event_id, at),
                accepted_at=at,
            )
        elif kind == "workflow_execution_update_completed_event_attributes":
            uc = event.workflow_execution_update_completed_event_attributes
            approval = approvals.get(uc.meta.update_id)
            if approval is not None:
                approval.completed_at = at
                if uc.outcome.HasField("failure"):
                    approval.failure, approval.approved = describe_failure(uc.outcome.failure), None
                else:
                    record = _first(uc.outcome.success)
                    if isinstance(record, dict):
                        approval.by = str(record.get("by", approval.by))
                        if isinstance(record.get("approved"), bool):
                            approval.approved = record["approved"]
        elif kind == "workflow_execution_signaled_event_attributes":
            sg = event.workflow_execution_signaled_event_attributes
            values = decode(sg.input)
            signals.append(
                ReceivedSignal(
                    name=sg.signal_name,
                    at=at,
                    identity=sg.identity,
                    summary=_short(values[0] if len(values) == 1 else values),
                )
            )
        elif kind == "workflow_execution_completed_event_attributes":
            end.update(closed_as="completed", ended_at=at)
            end["result"] = _first(event.workflow_execution_completed_event_attributes.result)
        elif kind == "workflow_execution_failed_event_attributes":
            failure = event.workflow_execution_failed_event_attributes.failure
            end.update(closed_as="failed", ended_at=at, message=failure.message)
            end["result"] = _failure_details(failure)
        elif kind == "workflow_execution_canceled_event_attributes":
            end.update(closed_as="canceled", ended_at=at)
            end["result"] = _first(event.workflow_execution_canceled_event_attributes.details)
        elif kind == "workflow_execution_terminated_event_attributes":
            t_attrs = event.workflow_execution_terminated_event_attributes
            end.update(
                closed_as="terminated", ended_at=at, message=f"{t_attrs.reason} (by {t_attrs.identity})"
            )
        elif kind == "workflow_execution_timed_out_event_attributes":
            end.update(closed_as="timed out", ended_at=at)
        elif kind == "workflow_execution_continued_as_new_event_attributes":
            end.update(closed_as="continued as new", ended_at=at)

    if not fields:
        raise ValueError(f"{history.workflow_id}: the history has no WorkflowExecutionStarted event")
    tl = Timeline(**fields, steps=steps, approvals=list(approvals.values()), signals=signals, **end)
    result = tl.result if isinstance(tl.result, dict) else {}
    tl.status = str(result.get("status", "")) or tl.closed_as
    tl.runbook = str(result.get("runbook", "")) or tl.workflow_type.removesuffix("Workflow").lower()
    tl.evidence_dir = str(result.get("evidence_dir", "") or "")
    tl.compensations = [
        str(c.get("name", "")) for c in result.get("compensations", []) or [] if isinstance(c, dict)
    ]
    if not tl.message and result.get("error"):
        tl.message = str(result["error"])
    _mark_compensations(tl)
    return tl


def _mark_compensations(tl: Timeline) -> None:
    """Mark the activities the result names as compensations.

    Compensations run last (before the evidence), in the order the result lists them; each is
    matched to the last activity of its type before the next one's match, walking back from
    the end, so a step and an undo of the same activity type are told apart."""
    i = len(tl.steps)
    for name in reversed(tl.compensations):
        i -= 1
        while i >= 0 and tl.steps[i].name != name:
            i -= 1
        if i < 0:
            return
        tl.steps[i].compensation = True
