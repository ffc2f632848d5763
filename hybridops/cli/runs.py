"""``hybridops approve`` and ``hybridops status``: what any runbook's run answers to."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from hybridops.cli.common import connect, console, fail, inventory, print_json, run_state
from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
from hybridops.contracts.base import ApprovalInput, ApprovalRecord, Progress
from hybridops.signing import approval_message
from hybridops.sshkeygen import SigningError, sign


def approve(
    workflow_id: str,
    by: Annotated[str, typer.Option(help="Who approves")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead: the run compensates")] = False,
    comment: str = "",
    override: Annotated[
        str | None,
        typer.Option(help="Break glass: the safety rule to override (the run names it); --comment says why"),
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key",
            help="Your SSH private key (as for git's ssh signing): the approval is signed for this run,"
            " decision and verdict (ssh-keygen -Y sign); a policy with approvers.require_signature needs it",
        ),
    ] = None,
) -> None:
    """Approve (or reject) a run waiting at its approval gate, or override the safety rule
    that blocks it (break glass: recorded with who and why)."""
    inv = inventory()

    async def main() -> ApprovalRecord:
        client = await connect(inv.temporal)
        handle = client.get_workflow_handle(workflow_id)
        # The approval names the decision it approves: the one shown here, now.
        prog: Progress = await handle.query(PROGRESS_QUERY, result_type=Progress)
        if prog.decision_id:
            console.print(f"{workflow_id}: decision {prog.decision_id}, target {prog.target or '-'}")
        inp = ApprovalInput(
            by=by, approve=not reject, comment=comment, override=override, decision_id=prog.decision_id
        )
        if sign_key is not None:
            # The run is named by its first run's id (what the workflow checks the message
            # against), so a signature for an earlier run under the same workflow id is not one.
            desc = await handle.describe()
            run = desc.raw_description.workflow_execution_info.first_run_id or desc.run_id
            inp.signed_at = datetime.now(UTC).replace(microsecond=0)
            message = approval_message(
                workflow_id, run, inp.decision_id, inp.approve, override, inp.signed_at
            )
            try:
                inp.signature = sign(message, sign_key)
            except SigningError as err:
                fail(f"{workflow_id}: not signed: {err}")
        record: ApprovalRecord = await handle.execute_update(APPROVE_UPDATE, inp, result_type=ApprovalRecord)
        return record

    record = asyncio.run(main())
    if record.refused:
        fail(f"{workflow_id}: refused ({record.signer or record.identity}): {record.refused}")
    console.print(
        f"{workflow_id}: {'rejected' if reject else 'approved'} by {by} ({record.signer or record.identity})"
    )


def status(workflow_id: str, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A run's status, phase and steps."""
    inv = inventory()

    async def main() -> dict[str, Any]:
        handle = (await connect(inv.temporal)).get_workflow_handle(workflow_id)
        return await run_state(handle, {"progress": (PROGRESS_QUERY, Progress)})

    data = asyncio.run(main())
    data.update(data.pop("progress", None) or {})  # the progress's fields beside the status
    if json_out:
        print_json(data)
        return
    console.print(
        f"{workflow_id}: {data.get('temporal_status')} phase={data.get('phase')} target={data.get('target')}"
    )
    for s in data.get("steps", []):
        console.print(f"  {s['name']:<20} {s.get('outcome') or 'running':<10} {s.get('detail', '')}")
