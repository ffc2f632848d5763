"""``hybridops failback``: start a failback, show its steps as they pass, print a summary."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from hybridops.cli import _fail, _inventory, _ui_link, console, run_and_watch
from hybridops.constants import WorkflowType
from hybridops.contracts.failback import FailbackInput, FailbackResult, RejoinMethod
from hybridops.inventory import Inventory


def print_failback_summary(data: dict[str, Any], inv: Inventory) -> None:
    status = data.get("status")
    colour = "green" if status == "succeeded" else "red"
    console.print(
        f"\n[bold {colour}]failback {status}[/bold {colour}]  home: {data.get('home')}"
        f"  (from {data.get('old_primary')})"
    )
    if data.get("error"):
        console.print(f"  error: {data['error']}")
    for warning in data.get("warnings") or []:
        console.print(f"  [yellow]warning:[/yellow] {warning}")
    console.print(
        f"  home rejoined by {data.get('rejoin')} in {data.get('rejoin_seconds')} s,"
        f" caught up in {data.get('catch_up_seconds')} s"
    )
    if data.get("moved_aside"):
        console.print(f"  home's old data directory: {data['moved_aside']}")
    console.print(
        f"  write pause: {data.get('write_pause_seconds')} s   switchover: {data.get('switchover_seconds')} s"
    )
    console.print(f"  evidence: {data.get('evidence_dir')}")
    console.print(f"  in the UI: {_ui_link(inv, data.get('workflow_id', ''))}")


def failback(
    home: Annotated[
        str | None, typer.Option(help="The site to bring back (default: the on-prem site)")
    ] = None,
    no_approval: Annotated[
        bool, typer.Option("--no-approval", help="Do not wait for approval before the switchover")
    ] = False,
    rejoin: Annotated[RejoinMethod, typer.Option(help="auto, rewind or reclone")] = RejoinMethod.AUTO,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    workflow_id: Annotated[str | None, typer.Option("--id")] = None,
    reason: str = "manual",
) -> None:
    """Bring the home site back as the primary after a failover (zero data loss), show the
    steps as they pass, and print the write pause and the evidence."""
    inv = _inventory()
    try:
        inp = FailbackInput(
            home=home,
            require_approval=not no_approval,
            rejoin_method=rejoin,
            reason=reason,
            requested_by=os.environ.get("USER", "cli"),
        )
    except ValidationError as err:
        _fail(str(err))
        return
    wf_id = workflow_id or f"failback-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"

    data = run_and_watch(inv, WorkflowType.FAILBACK, inp, wf_id, FailbackResult, json_out)
    if not json_out:
        print_failback_summary(data, inv)
    if data.get("status") != "succeeded":
        raise typer.Exit(1)
