"""``hybridops failback``: start a failback, show its steps as they pass, print a summary."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape

from hybridops.cli.common import (
    RunEnding,
    facts,
    inventory,
    print_ending,
    print_headline,
    run_runbook,
    say,
    seconds,
)
from hybridops.constants import WorkflowType
from hybridops.contracts.failback import FailbackInput, FailbackResult, RejoinMethod
from hybridops.inventory import Inventory


def print_failback_summary(ending: RunEnding[FailbackResult], inv: Inventory) -> None:
    """A failback's outcome, as far as the run got: a run that found nothing to fail back
    has no home, no rejoin and no write pause, and says only what happened and why."""
    r = ending.result
    print_headline(
        ending, "failback", ("home:", r.home if r else None), ("from", r.old_primary if r else None)
    )
    if r is not None:
        for warning in r.warnings:
            say(f"  [yellow]warning:[/yellow] {escape(warning)}")
        if r.rejoin is not None:
            rejoined = facts(("in", seconds(r.rejoin_seconds)))
            say(f"  home rejoined by {r.rejoin.value}" + (f" {rejoined}" if rejoined else ""))
        caught_up = seconds(r.catch_up_seconds)
        if caught_up is not None:
            say(f"  caught up in {caught_up}")
        if r.moved_aside:
            say(f"  home's old data directory: {escape(r.moved_aside)}")
        switch = facts(
            ("write pause:", seconds(r.write_pause_seconds)), ("switchover:", seconds(r.switchover_seconds))
        )
        if switch:
            say(f"  {switch}")
    print_ending(ending, inv)


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
    inv = inventory()
    inp = FailbackInput(
        home=home,
        require_approval=not no_approval,
        rejoin_method=rejoin,
        reason=reason,
        requested_by=os.environ.get("USER", "cli"),
    )
    wf_id = workflow_id or f"failback-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"

    run_runbook(inv, WorkflowType.FAILBACK, inp, wf_id, FailbackResult, json_out, print_failback_summary)
