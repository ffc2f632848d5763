"""What the ``hybridops`` command groups share: the console and the exit codes, the inventory
(with the lab's environment), the Temporal connection, starting a runbook and watching it
pass, and the printers of what every run has.

The command modules import this; nothing here imports them or the app (:mod:`hybridops.cli`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar

import typer
from pydantic import BaseModel, TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from hybridops.client import connect as connect_client
from hybridops.client import unreachable_reason
from hybridops.constants import PROGRESS_QUERY, TaskQueue, WorkflowType
from hybridops.contracts.base import Progress, RunStatus
from hybridops.contracts.sites import FindingKind, Topology
from hybridops.errors import RetryableError
from hybridops.inventory import Inventory, TemporalSettings, home, inventory_path, load_inventory

if TYPE_CHECKING:
    from hybridops.lab import Lab

console = Console()
err_console = Console(stderr=True)

EXIT_FAILED = 1
"""The run did not succeed (failed, compensated, held, a drill that did not pass), or what the
command checks is not well (an audit finding, drills overdue, a decision to hold)."""
EXIT_CANNOT = 2
"""The command could not run: bad arguments, input or inventory, Temporal unreachable, no
such run."""


def fail(message: str, code: int = EXIT_CANNOT) -> NoReturn:
    """Print ``error: message`` on one line (never wrapped, markup in it shown as typed) and
    exit with ``code``."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def iso_time(value: str | None, option: str) -> datetime | None:
    """``--option``'s ISO 8601 time (None when not given); anything else fails naming it."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: not an ISO 8601 time")


# ---------------------------------------------------------------------- inventory


def home_lab() -> Lab:
    """The lab under ``$HYBRIDOPS_HOME`` (it may not be up, or exist)."""
    from hybridops.lab import Lab

    return Lab(home() / "lab")


def inventory() -> Inventory:
    """The inventory; when it is the lab's, the lab's environment too (its DNS keys and alert
    token are references to environment variables the lab's own processes get). A missing or
    invalid inventory is a ConfigError naming the file or the key."""
    lab = home_lab()
    if inventory_path() == lab.root / "inventory.yaml" and lab.root.exists():
        for key, value in lab.env().items():
            os.environ.setdefault(key, value)
    return load_inventory()


def ui_link(inv: Inventory, wf_id: str) -> str:
    return f"{inv.temporal.ui_url}/namespaces/{inv.temporal.namespace}/workflows/{wf_id}"


# ---------------------------------------------------------------------- Temporal

_address: str | None = None
"""The Temporal address this process last connected to: a failure later in the command (the
server gone while a run is watched) names it too."""


class TemporalUnreachable(RetryableError):
    """No Temporal server answered at ``address``."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        super().__init__(
            f"cannot reach Temporal at {address} ({reason}): start the lab with 'hybridops lab up',"
            f" or set temporal.address in {inventory_path()}"
        )


def temporal_address() -> str | None:
    """The address :func:`connect` last tried (None: it was not called)."""
    return _address


async def connect(settings: TemporalSettings) -> Client:
    """:func:`hybridops.client.connect`, with a server that does not answer reported as a
    :class:`TemporalUnreachable` that says which address was tried, and what fixes it."""
    global _address
    _address = settings.address
    try:
        return await connect_client(settings)
    except RuntimeError as err:
        reason = unreachable_reason(err)
        if reason is None:
            raise
        raise TemporalUnreachable(settings.address, reason) from None


async def start(
    client: Client, inv: Inventory, workflow: WorkflowType, inp: Any, wf_id: str, result_type: type[Any]
) -> WorkflowHandle[Any, Any]:
    """Start a runbook on the control queue."""
    return await client.start_workflow(
        workflow.value, inp, id=wf_id, task_queue=inv.queue(TaskQueue.CONTROL), result_type=result_type
    )


class RunOutcome(Protocol):
    """What every runbook's result has, and a summary reads of any of them."""

    workflow_id: str
    status: RunStatus
    error: str | None
    evidence_dir: str | None


R = TypeVar("R", bound=RunOutcome)


@dataclass
class RunEnding(Generic[R]):
    """How a run ended, as the command got it: its result, typed (a failed run's failure
    carries the result as its details), or, when the run ended without one (terminated, timed
    out, failed before it had one), only what the server said."""

    workflow_id: str
    result: R | None = None
    reason: str = ""
    """Why the run ended, when there is no result."""

    @property
    def status(self) -> str:
        return "failed" if self.result is None else self.result.status.value

    @property
    def error(self) -> str | None:
        return self.reason if self.result is None else self.result.error

    def data(self) -> dict[str, Any]:
        """The result as JSON data (``--json``); without one, what the server said."""
        if isinstance(self.result, BaseModel):
            return self.result.model_dump(mode="json")
        return {"workflow_id": self.workflow_id, "status": self.status, "error": self.error}


async def watch(handle: WorkflowHandle[Any, Any], result_type: type[R], quiet: bool = False) -> RunEnding[R]:
    """Show the run's steps as they pass; returns how it ended."""
    seen = 0
    phase = ""
    blocked = ""
    while True:
        try:
            prog: Progress = await handle.query(PROGRESS_QUERY, result_type=Progress)
            if not quiet:
                if prog.blocked_by is not None and prog.blocked_by.rule != blocked:
                    blocked = prog.blocked_by.rule
                    console.print(
                        f"[bold red]blocked by safety rule {blocked}[/bold red]: {prog.blocked_by.detail}\n"
                        f"  to override (break glass, recorded): hybridops approve {handle.id} --by NAME"
                        f" --override {blocked} --comment WHY   (or --reject)",
                        highlight=False,
                    )
                if str(prog.phase) != phase:
                    phase = str(prog.phase)
                    if prog.waiting_for_approval:
                        console.print(
                            f"[yellow]waiting for approval:[/yellow] hybridops approve {handle.id} --by NAME"
                        )
                for step in prog.steps[seen:]:
                    if step.ended_at is None:
                        break
                    ms = (step.ended_at - step.started_at).total_seconds() * 1000
                    outcome = step.outcome.value if step.outcome else ""
                    colour = "red" if outcome == "failed" else "green"
                    console.print(
                        f"  [{colour}]{step.name:<20}[/{colour}] {outcome:<10} {ms:7.0f} ms  {step.detail}"
                    )
                    seen += 1
        except Exception:  # the query can fail while a worker restarts; keep watching
            pass
        desc = await handle.describe()
        if desc.status is not None and desc.status.name != "RUNNING":
            break
        await asyncio.sleep(0.1)
    try:
        return RunEnding(handle.id, await handle.result())
    except WorkflowFailureError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
            # A runbook fails with its result as the failure's details (workflows/runbook.py).
            with contextlib.suppress(ValidationError):
                return RunEnding(handle.id, TypeAdapter(result_type).validate_python(cause.details[0]))
        # Terminated, timed out, or failed without a result: what the server says, and where.
        return RunEnding(handle.id, reason=str(cause or err))


def succeeded(ending: RunEnding[Any]) -> bool:
    return ending.status == "succeeded"


def run_runbook(
    inv: Inventory,
    workflow: WorkflowType,
    inp: Any,
    wf_id: str,
    result_type: type[R],
    json_out: bool,
    summary: Callable[[RunEnding[R], Inventory], None],
    passed: Callable[[RunEnding[R]], bool] = succeeded,
) -> None:
    """A runbook's command, start to end: start it and watch it (:func:`run_and_watch`),
    print its ``summary`` (or ``--json``), and exit 1 unless it ``passed``."""
    ending = run_and_watch(inv, workflow, inp, wf_id, result_type, json_out)
    if not json_out:
        summary(ending, inv)
    if not passed(ending):
        raise typer.Exit(EXIT_FAILED)


async def run_state(
    handle: WorkflowHandle[Any, Any], queries: dict[str, tuple[str, type[Any]]]
) -> dict[str, Any]:
    """A run's id and Temporal status, and each query's answer under its key; a run that
    does not answer (a stuck one; closed runs answer too) has ``query_error`` instead."""
    desc = await handle.describe()
    out: dict[str, Any] = {
        "workflow_id": handle.id,
        "temporal_status": desc.status.name if desc.status else None,
    }
    try:
        for key, (query, result_type) in queries.items():
            answer = await handle.query(query, result_type=result_type)
            out[key] = answer.model_dump(mode="json") if answer is not None else None
    except Exception as err:
        out["query_error"] = str(err)
    return out


def run_and_watch(
    inv: Inventory, workflow: WorkflowType, inp: Any, wf_id: str, result_type: type[R], json_out: bool
) -> RunEnding[R]:
    """Start a runbook on the control queue, show its steps as they pass (unless ``json_out``),
    and return how it ended; ``--json`` prints its result."""

    async def main() -> RunEnding[R]:
        handle = await start(await connect(inv.temporal), inv, workflow, inp, wf_id, result_type)
        if not json_out:
            console.print(f"started {wf_id}: {ui_link(inv, wf_id)}")
        return await watch(handle, result_type, quiet=json_out)

    ending = asyncio.run(main())
    if json_out:
        print_json(ending.data())
    return ending


def watch_started(
    inv: Inventory, workflow: WorkflowType, since: datetime, timeout_s: float, result_type: type[R]
) -> RunEnding[R] | None:
    """Wait up to ``timeout_s`` for a run of ``workflow`` that something else started (an
    alert) on the control queue after ``since``, then show its steps as :func:`run_and_watch`
    does; None when none started in time."""

    async def main() -> RunEnding[R] | None:
        client = await connect(inv.temporal)
        query = (
            f'WorkflowType = "{workflow.value}" AND TaskQueue = "{inv.queue(TaskQueue.CONTROL)}"'
            f' AND StartTime > "{since.isoformat()}"'
        )
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            async for found in client.list_workflows(query, limit=1):
                console.print(f"started {found.id}: {ui_link(inv, found.id)}")
                handle = client.get_workflow_handle(found.id, run_id=found.run_id, result_type=result_type)
                return await watch(handle, result_type)
            await asyncio.sleep(0.1)
        return None

    return asyncio.run(main())


# ---------------------------------------------------------------------- printing runs


def seconds(value: Any) -> str | None:
    """``12.345 s``; None when the run did not measure it."""
    return None if value is None else f"{float(value):.3f} s"


def facts(*items: tuple[str, Any]) -> str:
    """``label value`` for each item that has a value, three spaces apart. A run that ended
    early has only some of its figures: a missing one is left out, never printed as None."""
    return "   ".join(f"{label} {value}" for label, value in items if value is not None and value != "")


def say(text: str) -> None:
    """One line of a summary, never wrapped: an error, a path or a link copies whole."""
    console.print(text, highlight=False, soft_wrap=True)


def print_headline(ending: RunEnding[Any], runbook: str, *details: tuple[str, Any]) -> None:
    """``RUNBOOK STATUS  details``, then the run's error when it has one."""
    status = ending.status
    colour = {"succeeded": "green", "held": "yellow"}.get(status, "red")
    known = facts(*details)
    say(f"\n[bold {colour}]{runbook} {status}[/bold {colour}]" + (f"  {escape(known)}" if known else ""))
    print_error(ending)


def print_error(ending: RunEnding[Any]) -> None:
    """The run's error; for a run that stopped past the point of no return, the steps to
    finish it by hand, one a line (the error holds them too, run together)."""
    if ending.error:
        say(f"  error: {escape(ending.error)}")
    todo: list[str] = getattr(ending.result, "by_hand", None) or []
    if todo:
        say(f"  [bold red]finish by hand[/bold red] (stopped in {getattr(ending.result, 'stopped_in', '')}):")
        for n, step in enumerate(todo, 1):
            say(f"    {n}. {escape(step)}")


def print_ending(ending: RunEnding[Any], inv: Inventory) -> None:
    """The lines a run's summary ends with, those it has: its evidence and its page in the UI."""
    evidence_dir = ending.result.evidence_dir if ending.result is not None else None
    if evidence_dir:
        say(f"  evidence: {escape(evidence_dir)}")
    if ending.workflow_id:
        say(f"  in the UI: {ui_link(inv, ending.workflow_id)}")


def print_topology(topology: Topology) -> None:
    """The servers as they said they are, where DNS points, and every finding, loudly."""
    table = Table("server", "role", "writable", "timeline", "LSN", "upstream", "marks", title="topology")
    for s in topology.servers:
        role = "down" if not s.reachable else ("standby" if s.in_recovery else "primary")
        marks = ", ".join(m for m, on in (("fenced", s.fenced), ("read-only", s.read_only)) if on) or "-"
        table.add_row(
            s.site,
            role,
            "[bold green]yes[/bold green]" if s.writable else "no",
            str(s.timeline or "-"),
            s.current_lsn or s.replay_lsn or "-",
            s.upstream or "-",
            marks,
        )
    console.print(table)
    console.print(f"DNS {topology.dns_record} -> {topology.dns_site or topology.dns_value or 'nothing'}")
    for f in topology.findings:
        loud = f.kind in (FindingKind.SPLIT_BRAIN, FindingKind.DNS_DISAGREES, FindingKind.SYSTEM_MISMATCH)
        style = "bold red" if loud else "yellow"
        console.print(f"[{style}]{f.kind.value}[/{style}]: {f.detail}", highlight=False)
