"""``hybridops ready``: is every runbook ready to run now? Runs ``ReadinessWorkflow`` (it reads
only) and prints its checks by runbook; ``--schedule`` makes Temporal run it every 30 minutes.

Exit codes: 0 no check fails (some may warn or be unknown); 1 a check fails (a runbook would
refuse, or fail, at the step that check protects); 2 the command could not run (bad options,
no inventory, Temporal unreachable, no worker took the run in time).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from hybridops.cli.common import EXIT_CANNOT, EXIT_FAILED, connect, console, fail, inventory, print_json
from hybridops.constants import READINESS_ID_PREFIX, READINESS_SCHEDULE_ID, TaskQueue, WorkflowType
from hybridops.contracts.readiness import CheckStatus, ReadinessInput, ReadinessResult
from hybridops.inventory import Inventory

COLOURS = {
    CheckStatus.PASS: "green",
    CheckStatus.WARN: "yellow",
    CheckStatus.UNKNOWN: "dim",
    CheckStatus.FAIL: "red",
}


def readiness_schedule(inv: Inventory, every: timedelta, inp: ReadinessInput) -> Schedule:
    """The Schedule that runs the readiness workflow every ``every`` (a run still going at the
    next time: the next is skipped)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WorkflowType.READINESS.value,
            inp.model_copy(update={"requested_by": f"schedule:{READINESS_SCHEDULE_ID}"}),
            id=f"{READINESS_ID_PREFIX}scheduled",
            task_queue=inv.queue(TaskQueue.CONTROL),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"DR readiness, every {every.total_seconds() / 60:g} min"),
    )


async def ensure_schedule(client: Client, inv: Inventory, every: timedelta, inp: ReadinessInput) -> str:
    """Create the readiness Schedule, or update it to ``every``: idempotent. Returns what it did."""
    schedule = readiness_schedule(inv, every, inp)
    try:
        await client.create_schedule(READINESS_SCHEDULE_ID, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(READINESS_SCHEDULE_ID).update(update)
    return "updated"


async def run_readiness(
    client: Client, inv: Inventory, inp: ReadinessInput, timeout_s: float
) -> ReadinessResult:
    """Start a readiness run and wait up to ``timeout_s`` for its result."""
    wf_id = f"{READINESS_ID_PREFIX}{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
    handle = await client.start_workflow(
        WorkflowType.READINESS.value,
        inp,
        id=wf_id,
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=ReadinessResult,
        execution_timeout=timedelta(seconds=timeout_s + 60),
    )
    return await asyncio.wait_for(handle.result(), timeout_s)


def print_result(result: ReadinessResult) -> None:
    """The verdict per runbook, then every check with what it measured and must be."""
    for runbook, status in result.runbooks.items():
        colour = COLOURS[status]
        console.print(f"{runbook:<24} [{colour}]{status.value}[/{colour}]", highlight=False)
    table = Table(show_lines=False)
    for column in ("check", "status", "measured", "threshold", "runbooks", "protects"):
        table.add_column(column, overflow="fold")
    every = set(result.runbooks)
    for c in result.checks:
        colour = COLOURS[c.status]
        runbooks = "all" if set(c.runbooks) >= every else ", ".join(c.runbooks)
        table.add_row(
            c.id,
            f"[{colour}]{c.status.value}[/{colour}]",
            c.measured + (f" ({c.detail})" if c.detail and c.status != CheckStatus.PASS else ""),
            c.threshold,
            runbooks,
            "; ".join(c.protects),
        )
    console.print(table)
    failed = [c.id for c in result.failed]
    console.print(
        f"{result.workflow_id}: " + (f"[red]not ready[/red]: {', '.join(failed)}" if failed else "ready"),
        highlight=False,
        soft_wrap=True,
    )


def ready(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    schedule: Annotated[
        bool,
        typer.Option("--schedule", help="Create or update the Schedule that runs it, then exit"),
    ] = False,
    every_min: Annotated[
        float, typer.Option("--every", help="With --schedule: minutes between runs", min=1)
    ] = 30.0,
    backup_max_age_h: Annotated[float, typer.Option(help="The newest backup may be this old", min=0)] = 26.0,
    timeout_s: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the run", min=1)] = 120.0,
) -> None:
    """DR readiness: every precondition of every runbook, evaluated now, reading only
    (topology, DNS, replication lag against the RPO objective, credentials, capabilities,
    task queue pollers, the newest backup's age).

    Exit 0: no check fails; 1: a check fails (the runbook it protects would refuse or fail);
    2: the command could not run (options, inventory, Temporal, no worker took the run)."""
    inv = inventory()
    inp = ReadinessInput(backup_max_age_h=backup_max_age_h, requested_by="cli")

    async def main() -> ReadinessResult | str:
        client = await connect(inv.temporal)
        if schedule:
            return await ensure_schedule(client, inv, timedelta(minutes=every_min), inp)
        return await run_readiness(client, inv, inp, timeout_s)

    try:
        outcome = asyncio.run(main())
    except TimeoutError:
        fail(
            f"no readiness result within {timeout_s:g} s: is a worker polling"
            f" {inv.queue(TaskQueue.CONTROL)}? (hybridops worker, or hybridops lab up)",
            EXIT_CANNOT,
        )
    if isinstance(outcome, str):
        if as_json:
            print_json({"schedule": READINESS_SCHEDULE_ID, "action": outcome, "every_min": every_min})
        else:
            console.print(
                f"schedule {READINESS_SCHEDULE_ID} {outcome}: every {every_min:g} min", highlight=False
            )
        return
    if as_json:
        print_json(outcome.model_dump(mode="json"))
    else:
        print_result(outcome)
    if outcome.failed:
        raise typer.Exit(EXIT_FAILED)
