"""``hybridops drill ...`` and ``hybridops backup ...``: DR drills, their schedules, backups."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table
from temporalio.client import Client
from temporalio.service import RPCError

from hybridops.cli.common import (
    EXIT_FAILED,
    RunEnding,
    connect,
    console,
    facts,
    fail,
    inventory,
    iso_time,
    print_ending,
    print_error,
    print_json,
    run_runbook,
    say,
    seconds,
)
from hybridops.cli.failures import command_group
from hybridops.constants import WorkflowType
from hybridops.contracts.drill import DrillInput, DrillResult
from hybridops.drills import Overlap, create_schedule, drill_status, list_schedules, schedule_id
from hybridops.inventory import Inventory

drill_app = command_group("DR drills: restore the latest backup into a scratch server.")
schedule_app = command_group("Drill schedules (Temporal Schedules).")
drill_app.add_typer(schedule_app, name="schedule")
backup_app = command_group("Base backups (the inventory's backup driver).")


def _drill_input(raw: str | None, **fields: Any) -> DrillInput:
    try:
        data = json.loads(raw) if raw else {}
    except json.JSONDecodeError as err:
        fail(f"--input: not JSON: {err}")
    if not isinstance(data, dict):
        fail("--input: expected a JSON object")
    try:
        return DrillInput.model_validate({**data, **{k: v for k, v in fields.items() if v is not None}})
    except ValidationError as err:  # named as the option the user typed it in
        e = err.errors()[0]
        fail(f"--input: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}")


def print_drill_summary(ending: RunEnding[DrillResult], inv: Inventory) -> None:
    """A drill's verdict, what it measured against its SLO, and its error, as far as it got."""
    r = ending.result
    verdict = "[green]passed[/green]" if drill_passed(ending) else "[red]failed[/red]"
    measured = facts(
        ("RTO", seconds(r.rto_seconds if r else None)), ("RPO", seconds(r.rpo_seconds if r else None))
    )
    say(f"\ndrill {verdict}" + (f": {measured}" if measured else ""))
    for check in r.slo if r else []:
        say(f"  {check.name}: {escape(check.detail)}")
    print_error(ending)
    print_ending(ending, inv)


def drill_passed(ending: RunEnding[DrillResult]) -> bool:
    return ending.result is not None and ending.result.passed


@drill_app.command("run")
def drill_run(
    backup: Annotated[str, typer.Option(help="A backup name, or LATEST")] = "LATEST",
    target_time: Annotated[str | None, typer.Option(help="Point-in-time restore: ISO time")] = None,
    take_backup_first: Annotated[bool, typer.Option("--take-backup-first")] = False,
    input_json: Annotated[str | None, typer.Option("--input", help="DrillInput as JSON")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run a drill now and show it; exit 1 if it did not pass."""
    inv = inventory()
    inp = _drill_input(
        input_json,
        backup=backup,
        target_time=iso_time(target_time, "--target-time"),
        take_backup_first=take_backup_first or None,
        requested_by=os.environ.get("USER", "cli"),
        reason="manual drill",
    )
    wf_id = f"drill-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"

    run_runbook(
        inv,
        WorkflowType.DRILL,
        inp,
        wf_id,
        DrillResult,
        json_out,
        print_drill_summary,
        drill_passed,
    )


@drill_app.command("status")
def drill_status_cmd(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """When the last drill passed; exit 1 when drills are overdue (``drill.max_age_h``)."""
    inv = inventory()

    async def main() -> Any:
        return await drill_status(await connect(inv.temporal), inv)

    st = asyncio.run(main())
    if json_out:
        print_json({**st.__dict__, "summary": st.summary()})
    else:
        console.print(st.summary(), markup=False)
        table = Table("drill", "status", "started", "closed")
        for r in st.runs[:10]:
            table.add_row(
                r["id"], r["status"], f"{r['started_at']:%Y-%m-%d %H:%M:%S}", f"{r['closed_at'] or '-'}"
            )
        console.print(table)
    if st.overdue:
        raise typer.Exit(EXIT_FAILED)


def _schedule_call(what: str, call: Any) -> None:
    inv = inventory()

    async def main() -> Any:
        client: Client = await connect(inv.temporal)
        return await call(client, inv)

    try:
        asyncio.run(main())
    except RPCError as err:  # the schedule's own words ("schedule not found"), named by action
        fail(f"{what}: {err.message}")


@schedule_app.command("create")
def schedule_create(
    cron: Annotated[str, typer.Option(help='Cron, e.g. "0 3 * * 6" (Saturdays 03:00)')],
    name: Annotated[str, typer.Option("--id", help="Schedule id (drill- is prepended)")] = "weekly",
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the cron")] = "UTC",
    overlap: Annotated[Overlap, typer.Option(help="When a drill still runs at the next time")] = Overlap.SKIP,
    input_json: Annotated[str | None, typer.Option("--input", help="DrillInput as JSON")] = None,
    paused: Annotated[bool, typer.Option("--paused")] = False,
) -> None:
    """Create a schedule that starts a drill; it shows in the Temporal UI under Schedules."""
    inp = _drill_input(input_json)

    async def call(client: Client, inv: Any) -> None:
        sid = await create_schedule(client, inv, name, cron, tz, overlap, inp, paused)
        console.print(f"created schedule {sid}: {cron} ({tz}), overlap {overlap.value}")

    _schedule_call("create", call)


@schedule_app.command("list")
def schedule_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The drill schedules, their next runs and last drills."""

    async def call(client: Client, inv: Any) -> None:
        rows = await list_schedules(client)
        if json_out:
            print_json([r.__dict__ for r in rows])
            return
        table = Table("id", "cron", "tz", "state", "next runs", "recent drills")
        for r in rows:
            nxt = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in r.next_runs) or "-"
            table.add_row(
                r.id, r.cron, r.time_zone, "paused" if r.paused else "active", nxt, ", ".join(r.recent) or "-"
            )
        console.print(table)

    _schedule_call("list", call)


def _on_schedule(action: str, sid: str, note: str = "") -> None:
    async def call(client: Client, inv: Any) -> None:
        handle = client.get_schedule_handle(schedule_id(sid))
        if action == "pause":
            await handle.pause(note=note or "paused with hybridops")
        elif action == "unpause":
            await handle.unpause(note=note or "unpaused with hybridops")
        elif action == "trigger":
            await handle.trigger()
        elif action == "delete":
            await handle.delete()
        done = {"pause": "paused", "unpause": "unpaused", "trigger": "triggered", "delete": "deleted"}[action]
        console.print(f"{schedule_id(sid)}: {done}")

    _schedule_call(action, call)


@schedule_app.command("pause")
def schedule_pause(sid: str, note: str = "") -> None:
    """Stop a schedule from starting drills (it is kept)."""
    _on_schedule("pause", sid, note)


@schedule_app.command("unpause")
def schedule_unpause(sid: str, note: str = "") -> None:
    _on_schedule("unpause", sid, note)


@schedule_app.command("trigger")
def schedule_trigger(sid: str) -> None:
    """Start a drill from the schedule now (its overlap policy applies)."""
    _on_schedule("trigger", sid)


@schedule_app.command("delete")
def schedule_delete(sid: str) -> None:
    _on_schedule("delete", sid)


@backup_app.command("push")
def backup_push(site: Annotated[str | None, typer.Option(help="Default: where DNS points")] = None) -> None:
    """Take a base backup now."""
    from drivers.lazy import Drivers

    info = asyncio.run(Drivers(inventory()).take_backup(site))
    console.print(f"backup {info.name} of {info.site}: {info.end_lsn or ''} {info.size_bytes or ''} bytes")


@backup_app.command("list")
def backup_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The base backups, oldest first."""
    from drivers.backup import make_backup_driver

    inv = inventory()
    backups = asyncio.run(make_backup_driver(inv).list())
    if json_out:
        print(json.dumps([b.model_dump(mode="json") for b in backups], indent=2))
        return
    table = Table("name", "site", "finished", "start LSN", "end LSN", "bytes")
    for b in backups:
        table.add_row(
            b.name,
            b.site or "-",
            f"{b.finished_at or '-'}",
            b.start_lsn or "-",
            b.end_lsn or "-",
            str(b.size_bytes or "-"),
        )
    console.print(table)
