"""``hybridops failover``: start a failover, show its phases as they pass, print RTO, RPO and
the evidence."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError

from hybridops.cli.common import (
    RunEnding,
    facts,
    fail,
    inventory,
    iso_time,
    print_ending,
    print_headline,
    run_runbook,
    say,
    seconds,
)
from hybridops.constants import WorkflowType
from hybridops.contracts.base import TargetChoice
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.contracts.sites import RpoMeasure
from hybridops.inventory import Inventory
from hybridops.report import rto_split_text


def print_summary(ending: RunEnding[FailoverResult], inv: Inventory) -> None:
    """A failover's outcome: where it went, its error, RTO and RPO, as far as the run got."""
    r = ending.result
    print_headline(ending, r.runbook if r else "failover", ("target:", r.target if r else None))
    if r is not None:
        measured = facts(("RTO:", _rto(r)), ("RPO:", _rpo(r.rpo)))
        if measured:
            say(f"  {measured}")
        if r.health:
            verdicts = {True: "pass", False: "[bold red]FAIL[/bold red]", None: "unknown"}
            checks = "; ".join(
                f"{c.id} {c.value if c.value is not None else '-'} ({c.threshold}): {verdicts[c.passed]}"
                for c in r.health
            )
            say(f"  health: {checks}")
    print_ending(ending, inv)


def _rto(r: FailoverResult) -> str | None:
    """``2.345 s (detection 1.2 s, ...; objective 900 s: met)``; None when not reached."""
    if r.rto_seconds is None:
        return None
    notes = [rto_split_text(r.rto_split)] if r.rto_split is not None else []
    if r.rto_objective_s is not None:
        met = "met" if r.rto_seconds <= r.rto_objective_s else "MISSED"
        notes.append(f"objective {r.rto_objective_s:g} s: {met}")
    return f"{seconds(r.rto_seconds)}" + (f" ({'; '.join(notes)})" if notes else "")


def _rpo(rpo: RpoMeasure) -> str | None:
    """``3 transactions, 0.120 s (ledger)``; None when the run measured nothing."""
    lost, secs = rpo.transactions_lost, rpo.seconds
    if lost is None and secs is None:
        return None
    parts = [f"{lost} transactions" if lost is not None else None, seconds(secs)]
    method = rpo.method
    return ", ".join(p for p in parts if p) + (f" ({method})" if method and method != "none" else "")


def failover(
    target: Annotated[TargetChoice, typer.Option(help="azure, gcp or auto")] = TargetChoice.AUTO,
    require_approval: Annotated[bool, typer.Option("--require-approval")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    incident_started_at: Annotated[str | None, typer.Option(help="ISO time the incident began")] = None,
    workflow_id: Annotated[str | None, typer.Option("--id")] = None,
    reason: str = "manual",
    planned: Annotated[
        bool, typer.Option("--planned", help="Fail over even though the primary is healthy (a planned move)")
    ] = False,
    lease_wait_s: Annotated[
        float, typer.Option(help="Wait this long for another runbook holding the lease (0: refuse)")
    ] = 0.0,
    restore_backup: Annotated[
        str, typer.Option(help="Restore mode only: the backup to restore (a name, or LATEST)")
    ] = "LATEST",
    restore_to: Annotated[
        str | None, typer.Option(help="Restore mode only: ISO time to stop replaying the WAL archive at")
    ] = None,
) -> None:
    """Start a failover, show its phases as they pass, and print RTO, RPO and the evidence.
    The policy's approval section may still make it wait for `hybridops approve`."""
    inv = inventory()
    try:
        FailoverInput(restore_backup=restore_backup)
    except ValidationError as err:
        fail(f"--restore-backup: {err.errors()[0]['msg']}")
    inp = FailoverInput(
        target=target,
        require_approval=require_approval,
        incident_started_at=iso_time(incident_started_at, "incident-started-at"),
        reason=reason,
        requested_by=os.environ.get("USER", "cli"),
        only_if_primary_down=not planned,
        lease_wait_s=lease_wait_s,
        restore_backup=restore_backup,
        restore_to=iso_time(restore_to, "restore-to"),
    )
    wf_id = workflow_id or f"failover-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"

    run_runbook(inv, WorkflowType.FAILOVER, inp, wf_id, FailoverResult, json_out, print_summary)
