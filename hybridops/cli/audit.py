"""``hybridops audit``: replay histories against today's code; a run's audit report; a run's
evidence folder verified against its history on the server.

Exit codes: 0 all is well; 1 the audit found something (a history that does not replay
cleanly, nothing to replay, evidence changed after the run); 2 the command could not run
(bad arguments, no server, no such run).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from temporalio.converter import PayloadCodec

from hybridops.audit.approvals import (
    OperatorCheck,
    OperatorVerdict,
    verify_approvals,
    verify_operator_actions,
)
from hybridops.audit.histories import (
    HistorySource,
    decrypted,
    fetch_closed_runs,
    fetch_history,
    find_history_files,
    load_history_file,
    load_history_files,
)
from hybridops.audit.replay import (
    ReplayOutcome,
    ReplayReport,
    all_clean,
    replay,
    replay_files,
    workflow_names,
)
from hybridops.audit.report import write_report
from hybridops.audit.verify import Verification, verify_folder
from hybridops.cli.common import EXIT_FAILED, connect, console, fail, inventory
from hybridops.cli.failures import command_group
from hybridops.codec import codec_for
from hybridops.errors import HybridOpsError
from hybridops.inventory import Inventory
from hybridops.policy import load_policy

audit_app = command_group("Audit past runs: replay histories, report a run.")

EXIT_FOUND = EXIT_FAILED
"""The audit found a problem."""


def _codec(inv: Inventory | None) -> PayloadCodec | None:
    """The inventory's payload codec, to read encrypted history files; None without one."""
    return None if inv is None else codec_for(inv.temporal.codec)


def _inventory(required: bool) -> Inventory | None:
    """The inventory; without ``required``, None when there is none (files replay without)."""
    try:
        return inventory()
    except HybridOpsError:
        if required:
            raise
        return None


async def _gather(ids: list[str], all_runs: bool) -> list[HistorySource]:
    """The histories of ``ids`` and, with ``all_runs``, of every closed run, from the server."""
    sources: list[HistorySource] = []
    if ids or all_runs:
        from hybridops.cli.replayer import current_workflows

        inv = _inventory(required=True)
        assert inv is not None
        client = await connect(inv.temporal)
        for wf_id in ids:
            sources.append(await fetch_history(client, wf_id))
        if all_runs:
            sources += await fetch_closed_runs(client, workflow_names(current_workflows()))
    return sources


def _print_replay(reports: list[ReplayReport]) -> None:
    marks = {ReplayOutcome.CLEAN: "[green]ok[/green]", ReplayOutcome.NONDETERMINISTIC: "[red]!![/red]"}
    for r in reports:
        mark = marks.get(r.outcome, "[yellow]??[/yellow]")
        line = f"{mark} {r.outcome.label:<17} {escape(r.workflow_id)} ({escape(r.workflow_type or '?')})"
        console.print(line, highlight=False)
        console.print(f"     [dim]{escape(r.source)}[/dim]", highlight=False)
        if r.reason:
            console.print(f"     {escape(r.reason)}", highlight=False)


@audit_app.command("replay")
def audit_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Workflow ids to fetch from the server")] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every closed run of the known workflow types (visibility)")
    ] = False,
    from_dir: Annotated[
        list[Path] | None,
        typer.Option("--from-dir", help="A directory of history.json / *.history.json files (repeatable)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as JSON")] = False,
) -> None:
    """Replay histories against the current workflow code; exit 0 only if all replay cleanly."""
    ids, dirs = list(ids or []), list(from_dir or [])
    if not (ids or all_runs or dirs):
        fail("name workflow ids, --all, or --from-dir DIR")
    reports = asyncio.run(_replay(ids, all_runs, dirs))
    ok = bool(reports) and all_clean(reports)
    if json_out:
        counts = {o.value: sum(1 for r in reports if r.outcome == o) for o in ReplayOutcome}
        print(
            json.dumps(
                {"ok": ok, "counts": counts, "results": [r.model_dump(mode="json") for r in reports]},
                indent=2,
            )
        )
    else:
        _print_replay(reports)
        clean = sum(1 for r in reports if r.outcome == ReplayOutcome.CLEAN)
        console.print(f"{clean} of {len(reports)} replayed cleanly" if reports else "no histories found")
    if not ok:
        raise typer.Exit(EXIT_FOUND)


async def _replay(ids: list[str], all_runs: bool, dirs: list[Path]) -> list[ReplayReport]:
    """Directories first (their files read and replayed in parallel), then the server's."""
    from hybridops.cli.replayer import make_replayer

    reports: list[ReplayReport] = []
    for d in dirs:
        if not d.exists():
            missing = HistorySource(str(d), d.name, error="no such file or directory")
            reports += await replay([missing], make_replayer)
            continue
        codec = _codec(_inventory(required=False))
        if codec is None:
            reports += await replay_files(find_history_files(d), make_replayer)
        else:  # encrypted payloads: decrypted here, with the inventory's keys, then replayed
            loaded = load_history_files(find_history_files(d))
            reports += await replay([await decrypted(src, codec) for src in loaded], make_replayer)
    return reports + await replay(await _gather(ids, all_runs), make_replayer)


def _server_history(inv: Inventory, workflow_id: str, run_id: str | None) -> HistorySource:
    """A run's history from the server; exits with a clear line when it cannot be had."""

    async def fetch() -> HistorySource:
        return await fetch_history(await connect(inv.temporal), workflow_id, run_id)

    src = asyncio.run(fetch())
    if src.history is None:
        fail(f"{src.label}: {src.error}")
    return src


@audit_app.command("report")
def audit_report(
    workflow_id: Annotated[str, typer.Argument(help="The run's workflow id")],
    history: Annotated[
        Path | None, typer.Option("--history", help="Read the history from this file, not the server")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write report.md and report.html (default: <evidence>/audit/)"),
    ] = None,
    evidence: Annotated[
        Path | None, typer.Option("--evidence", help="The run's evidence folder (default: found)")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="A run other than the latest")] = None,
) -> None:
    """A run's timeline from its history (who started and approved it, each step, the end),
    as report.md and report.html, with its evidence checked against the manifest. Exit 1
    when the evidence was changed after the run."""
    inv = _inventory(required=history is None)
    if history is not None:
        src = asyncio.run(decrypted(load_history_file(history), _codec(inv)))
        if src.history is not None and src.workflow_id != workflow_id:
            console.print(
                f"[yellow]note:[/yellow] {escape(str(history))} is the history of {escape(src.workflow_id)}"
            )
    else:
        assert inv is not None
        src = _server_history(inv, workflow_id, run_id)
    if src.history is None:
        fail(f"{src.label}: {src.error}")
    output_dir = inv.output_dir if inv is not None else Path("output")
    try:
        done = write_report(
            src.history, output_dir, out=out, evidence=evidence, history_file=history, sealed=src.sealed
        )
    except ValueError as err:
        fail(f"{src.label}: {err}")
    tl, check = done.timeline, done.evidence
    console.print(
        f"{escape(tl.workflow_id)}: {escape(done.ending.status)}, {len(tl.steps)} steps, "
        f"{len(tl.approvals)} approvals, {len(tl.signals)} signals",
        highlight=False,
    )
    if check.tampered:
        console.print(f"[bold red]EVIDENCE CHANGED AFTER THE RUN[/bold red] in {escape(str(check.folder))}:")
        for problem in check.problems:
            console.print(f"  - {escape(problem)}", highlight=False)
    elif check.folder is None:
        console.print(f"[yellow]evidence not checked:[/yellow] {escape(check.note)}")
    else:
        console.print(f"evidence intact: {escape(check.folder)}", highlight=False)
    for path in done.files:
        console.print(f"wrote {escape(str(path))}", highlight=False)
    if check.tampered:
        raise typer.Exit(EXIT_FOUND)


@audit_app.command("verify")
def audit_verify(
    workflow_id: Annotated[str, typer.Argument(help="The run's workflow id")],
    folder: Annotated[
        Path | None,
        typer.Option("--dir", help="The evidence folder (default: where the run's history says it wrote it)"),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="A run other than the latest")] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", help="The policy approvals are verified against (default: the inventory's)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON")] = False,
) -> None:
    """Check a run's evidence folder against the digests its evidence step recorded in the
    run's history on the Temporal server (not against the folder's own manifest, which whoever
    edits the folder can rewrite): a rewritten manifest, files changed, added or removed. Then
    verify every approval the run counted again, offline: its SSH signature against the
    policy's allowed signers, its age and that it was not replayed (hybridops/audit/approvals.py),
    and every pause, resume, retry and skip of the run the same way, taken or refused.
    Exit 1 on any finding, or when there is nothing to verify against."""
    inv = _inventory(required=True)
    assert inv is not None
    src = _server_history(inv, workflow_id, run_id)
    assert src.history is not None
    verdict = verify_folder(src.history, folder, run_id or src.run_id)
    try:
        policy = load_policy(policy_file or inv.policy)
    except HybridOpsError as err:
        fail(str(err))
    approvals = verify_approvals(src.history, policy)
    actions = verify_operator_actions(src.history, policy)
    findings = [f"approval {c.update_id}: {c.finding}" for c in approvals if c.finding]
    findings += [f"{c.action.value} {c.update_id}: {c.finding}" for c in actions if c.finding]
    if json_out:
        print(
            json.dumps(
                {
                    "ok": verdict.clean and not findings,
                    **verdict.model_dump(mode="json"),
                    "findings": verdict.findings + findings,
                    "approvals": [c.model_dump(mode="json") for c in approvals],
                    "operator_actions": [c.model_dump(mode="json") for c in actions],
                },
                indent=2,
            )
        )
    else:
        _print_verification(verdict)
        for c in approvals:
            if c.counted:
                state = "[bold red]FAILS[/bold red]" if c.finding else "[green]verified[/green]"
                what = c.finding or (
                    f"signed by {c.signer}" if c.signer else "unsigned (the policy allows it)"
                )
                console.print(f"approval {escape(c.update_id)}: {state} {escape(what)}", highlight=False)
        for a in actions:
            console.print(_operator_line(a), highlight=False)
    if not verdict.clean or findings:
        raise typer.Exit(EXIT_FOUND)


_OPERATOR_STATES = {
    OperatorVerdict.VALID: "[green]verified[/green]",
    OperatorVerdict.UNSIGNED: "[green]verified[/green]",
    OperatorVerdict.INVALID: "[bold red]FAILS[/bold red]",
    OperatorVerdict.REFUSED: "[yellow]refused[/yellow]",
}


def _operator_line(c: OperatorCheck) -> str:
    """One operator action as ``audit verify`` prints it: what, who, the verdict and why."""
    what = c.action.value + (f" {c.step}" if c.step else "")
    if c.verdict == OperatorVerdict.VALID:
        why = f"signed by {c.signer}"
    elif c.verdict == OperatorVerdict.UNSIGNED:
        why = "unsigned (the policy allows it)"
    else:
        why = c.finding or c.detail
    return (
        f"operator {escape(what)} by {escape(c.by)} ({escape(c.update_id)}):"
        f" {_OPERATOR_STATES[c.verdict]} {escape(why)}"
    )


def _print_verification(v: Verification) -> None:
    where = escape(v.folder or "-")
    if v.recorded is None or v.folder is None:
        console.print(
            f"[yellow]not verified:[/yellow] {escape(v.workflow_id)}: {escape(v.note)}", highlight=False
        )
        return
    source = f"event {v.recorded.event_id} ({escape(v.recorded.activity)})"
    if not v.recorded.manifest_recorded:
        source += ", manifest digest derived from the recorded file digests"
    if v.clean:
        console.print(
            f"[green]verified[/green] {where}: {len(v.recorded.files)} files and the manifest match"
            f" the run's history ({source})",
            highlight=False,
        )
        return
    console.print(f"[bold red]EVIDENCE DOES NOT MATCH THE RUN'S HISTORY[/bold red] in {where} ({source}):")
    for finding in v.findings:
        console.print(f"  - {escape(finding)}", highlight=False)
