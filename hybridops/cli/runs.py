"""``hybridops approve``, ``status``, and the operator's ``pause``, ``resume``, ``retry`` and
``skip``: what any runbook's run answers to.

Exit codes (as every command's, hybridops/cli/__init__.py): 0 the run took it; 2 it did not:
refused (not an approver, four eyes, a signature that does not verify; the run records the
attempt), or malformed or pointless now (not paused, no step waits, another step waits, a skip
without a comment: the run records nothing), or Temporal unreachable, no such run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from hybridops.cli.common import connect, console, fail, inventory, print_json, run_state
from hybridops.constants import (
    APPROVE_UPDATE,
    PAUSE_UPDATE,
    PROGRESS_QUERY,
    RESUME_UPDATE,
    RETRY_UPDATE,
    SKIP_UPDATE,
)
from hybridops.contracts.base import (
    ApprovalInput,
    ApprovalRecord,
    OperatorAction,
    OperatorInput,
    OperatorRecord,
    Progress,
)
from hybridops.signing import approval_message, operator_message
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
            run = await first_run_id(handle)
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


async def first_run_id(handle: Any) -> str:
    """The run a signature names: its first run's id (what the workflow checks the message
    against), so a signature for an earlier run under the same workflow id is not one."""
    desc = await handle.describe()
    return str(desc.raw_description.workflow_execution_info.first_run_id or desc.run_id)


SignKey = Annotated[
    Path | None,
    typer.Option(
        "--sign-key",
        help="Your SSH private key: the action is signed for this run, the action, the step and the"
        " comment (ssh-keygen -Y sign); a policy with approvers.require_signature needs it",
    ),
]
By = Annotated[str, typer.Option(help="Who acts")]
StepName = Annotated[
    str, typer.Option("--step", help="The step the run waits on (hybridops status shows it)")
]

_UPDATES = {
    OperatorAction.PAUSE: PAUSE_UPDATE,
    OperatorAction.RESUME: RESUME_UPDATE,
    OperatorAction.RETRY: RETRY_UPDATE,
    OperatorAction.SKIP: SKIP_UPDATE,
}


def _operate(
    action: OperatorAction,
    workflow_id: str,
    by: str,
    step: str | None,
    comment: str,
    sign_key: Path | None,
) -> None:
    """Send one operator action, signed when ``sign_key`` is given; exit 2 when refused."""
    inv = inventory()
    inp = OperatorInput(by=by, step=step, comment=comment)

    async def main() -> OperatorRecord:
        client = await connect(inv.temporal)
        handle = client.get_workflow_handle(workflow_id)
        if sign_key is not None:
            inp.signed_at = datetime.now(UTC).replace(microsecond=0)
            message = operator_message(
                workflow_id, await first_run_id(handle), action.value, step, comment, inp.signed_at
            )
            try:
                inp.signature = sign(message, sign_key)
            except SigningError as err:
                fail(f"{workflow_id}: not signed: {err}")
        record: OperatorRecord = await handle.execute_update(
            _UPDATES[action], inp, result_type=OperatorRecord
        )
        return record

    record = asyncio.run(main())
    who = record.signer or record.identity
    if record.refused:
        fail(f"{workflow_id}: {action.value} refused ({who}): {record.refused}")
    what = {
        OperatorAction.PAUSE: "paused at its next step boundary",
        OperatorAction.RESUME: "resumed",
        OperatorAction.RETRY: f"retrying {step}",
        OperatorAction.SKIP: f"skipping {step}",
    }[action]
    console.print(f"{workflow_id}: {what} by {by} ({who})")


def pause(workflow_id: str, by: By, comment: str = "", sign_key: SignKey = None) -> None:
    """Pause a run at its next step boundary (the step in flight finishes; the next waits)."""
    _operate(OperatorAction.PAUSE, workflow_id, by, None, comment, sign_key)


def resume(workflow_id: str, by: By, comment: str = "", sign_key: SignKey = None) -> None:
    """Let a paused run go on."""
    _operate(OperatorAction.RESUME, workflow_id, by, None, comment, sign_key)


def retry(workflow_id: str, by: By, step: StepName, comment: str = "", sign_key: SignKey = None) -> None:
    """Run again the step a run waits on (it failed past the point of no return), once its
    cause is fixed."""
    _operate(OperatorAction.RETRY, workflow_id, by, step, comment, sign_key)


def skip(
    workflow_id: str,
    by: By,
    step: StepName,
    comment: Annotated[str, typer.Option(help="Why (recorded): required")],
    sign_key: SignKey = None,
) -> None:
    """Go on past the step a run waits on, without it (recorded with who and why)."""
    _operate(OperatorAction.SKIP, workflow_id, by, step, comment, sign_key)


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
    if data.get("paused"):
        p = data["paused"]
        console.print(f"[yellow]paused[/yellow] by {p['by']} at {p['at']}: {p.get('comment') or '-'}")
    if data.get("waiting_for_operator"):
        w = data["waiting_for_operator"]
        console.print(
            f"[yellow]{w['step']} failed past the point of no return[/yellow] ({w['error']}); until"
            f" {w['until']}: hybridops retry {workflow_id} --step {w['step']} --by NAME, or"
            f" hybridops skip {workflow_id} --step {w['step']} --by NAME --comment WHY"
        )
