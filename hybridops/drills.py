"""DR drills from the outside: starting one, Temporal Schedules that start them, and the
question an auditor asks first: when did the last drill pass, and is one overdue?

Schedules are Temporal's own (visible in the UI under Schedules); each starts
``DrillWorkflow`` on the control queue with a ``DrillInput``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
)

from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.drill import DrillInput
from hybridops.errors import InputError
from hybridops.inventory import Inventory

SCHEDULE_PREFIX = "drill-"
"""Drill schedules' ids start with this (``hybridops drill schedule list`` shows only those)."""


class Overlap(StrEnum):
    """What a schedule does when a drill is still running at the next time (Temporal's)."""

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    CANCEL_OTHER = "cancel_other"
    TERMINATE_OTHER = "terminate_other"
    ALLOW_ALL = "allow_all"

    def temporal(self) -> ScheduleOverlapPolicy:
        return ScheduleOverlapPolicy[self.name]


_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")


def check_cron(cron: str) -> str:
    """A five-field cron expression (or ``@daily``-style); an :class:`InputError` naming
    ``--cron`` otherwise. The server parses it for good; this catches the obvious early."""
    cron = cron.strip()
    if cron.startswith("@"):
        return cron
    fields = cron.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise InputError(
            f"--cron: {cron!r} is not a cron expression of five fields (minute hour day month weekday)",
            field="cron",
        )
    return cron


def check_time_zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"--tz: unknown time zone {tz!r} (an IANA name like Europe/Paris)", field="tz"
        ) from None
    return tz


def schedule_id(name: str) -> str:
    """``drill-<name>`` (the prefix is added when missing)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
        raise InputError(f"--id: {name!r}: use a-z, 0-9 and '-'", field="id")
    return name if name.startswith(SCHEDULE_PREFIX) else SCHEDULE_PREFIX + name


async def create_schedule(
    client: Client,
    inv: Inventory,
    name: str,
    cron: str,
    tz: str = "UTC",
    overlap: Overlap = Overlap.SKIP,
    inp: DrillInput | None = None,
    paused: bool = False,
) -> str:
    """Create a drill schedule; returns its id. A schedule of that id must not exist."""
    sid = schedule_id(name)
    drill = (inp or DrillInput()).model_copy(
        update={"requested_by": f"schedule:{sid}", "reason": "scheduled drill"}
    )
    await client.create_schedule(
        sid,
        Schedule(
            action=ScheduleActionStartWorkflow(
                WorkflowType.DRILL.value,
                drill,
                id=f"{sid}-run",
                task_queue=inv.queue(TaskQueue.CONTROL),
            ),
            spec=ScheduleSpec(cron_expressions=[check_cron(cron)], time_zone_name=check_time_zone(tz)),
            policy=SchedulePolicy(overlap=overlap.temporal()),
            state=ScheduleState(note=f"DR drill, {cron} ({tz})", paused=paused),
        ),
    )
    return sid


@dataclass
class ScheduleRow:
    id: str
    cron: str
    time_zone: str
    paused: bool
    note: str
    next_runs: list[datetime]
    recent: list[str]


async def list_schedules(client: Client) -> list[ScheduleRow]:
    rows = []
    async for entry in await client.list_schedules():
        if not entry.id.startswith(SCHEDULE_PREFIX):
            continue
        desc = await client.get_schedule_handle(entry.id).describe()
        spec = desc.schedule.spec
        rows.append(
            ScheduleRow(
                id=entry.id,
                cron=", ".join(spec.cron_expressions) or "(calendar)",
                time_zone=spec.time_zone_name or "UTC",
                paused=desc.schedule.state.paused,
                note=desc.schedule.state.note or "",
                next_runs=list(desc.info.next_action_times[:3]),
                recent=[getattr(a.action, "workflow_id", "?") for a in desc.info.recent_actions[-3:]],
            )
        )
    return sorted(rows, key=lambda r: r.id)


@dataclass
class DrillStatus:
    """The answer of ``hybridops drill status``."""

    last_passed_at: datetime | None
    last_passed_id: str | None
    last_run_at: datetime | None
    last_run_id: str | None
    last_run_status: str | None
    max_age_h: float
    overdue: bool
    runs: list[dict[str, Any]]

    def summary(self) -> str:
        if self.last_passed_at is None:
            return f"OVERDUE: no drill has passed (maximum age {self.max_age_h:g} h)"
        age_h = (datetime.now(UTC) - self.last_passed_at).total_seconds() / 3600
        verdict = "OVERDUE" if self.overdue else "ok"
        return (
            f"{verdict}: the last drill passed {age_h:.1f} h ago ({self.last_passed_id},"
            f" {self.last_passed_at:%Y-%m-%d %H:%M} UTC); maximum age {self.max_age_h:g} h"
        )


def overdue(last_passed_at: datetime | None, max_age_h: float, now: datetime) -> bool:
    """A drill is overdue when none passed, or the last passed more than ``max_age_h`` before
    ``now``. Pure: ``hybridops drill status`` and the readiness check ``drills.last_passed``
    both decide with it."""
    return last_passed_at is None or now - last_passed_at > timedelta(hours=max_age_h)


async def drill_status(
    client: Client, inv: Inventory, now: datetime | None = None, limit: int = 20
) -> DrillStatus:
    """The recent drills on this inventory's queue, newest first, and whether one is overdue.

    A drill passed when its run completed (a drill that misses its objectives fails its run).
    """
    now = now or datetime.now(UTC)
    query = f'WorkflowType = "{WorkflowType.DRILL.value}" AND TaskQueue = "{inv.queue(TaskQueue.CONTROL)}"'
    runs: list[dict[str, Any]] = []
    async for wf in client.list_workflows(query, limit=limit):
        runs.append(
            {
                "id": wf.id,
                "status": wf.status.name if wf.status else "UNKNOWN",
                "started_at": wf.start_time,
                "closed_at": wf.close_time,
            }
        )
    runs.sort(key=lambda r: r["started_at"], reverse=True)
    passed = [r for r in runs if r["status"] == WorkflowExecutionStatus.COMPLETED.name and r["closed_at"]]
    last_pass = max(passed, key=lambda r: r["closed_at"]) if passed else None
    return DrillStatus(
        last_passed_at=last_pass["closed_at"] if last_pass else None,
        last_passed_id=last_pass["id"] if last_pass else None,
        last_run_at=runs[0]["started_at"] if runs else None,
        last_run_id=runs[0]["id"] if runs else None,
        last_run_status=runs[0]["status"] if runs else None,
        max_age_h=inv.drill.max_age_h,
        overdue=overdue(last_pass["closed_at"] if last_pass else None, inv.drill.max_age_h, now),
        runs=runs,
    )
