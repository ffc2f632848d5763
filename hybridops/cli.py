"""The ``hybridops`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from hybridops.client import connect
from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY, TaskQueue, WorkflowType
from hybridops.contracts.base import ApprovalInput, ApprovalRecord, Progress, TargetChoice
from hybridops.contracts.decision import Decision, DecisionRequest, DecisionType, SignalSnapshot
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.contracts.sites import FindingKind, PlanInput, Topology
from hybridops.errors import HybridOpsError
from hybridops.inventory import Inventory, home, inventory_path, load_inventory

app = typer.Typer(
    help="HybridOps: DR and cloud-bursting runbooks as Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
lab_app = typer.Typer(help="The embedded lab on this machine.", no_args_is_help=True)
app.add_typer(lab_app, name="lab")
signals_app = typer.Typer(help="The lab's fake cloud signals (billing, capacity, app metrics).")
lab_app.add_typer(signals_app, name="signals")
serve_app = typer.Typer(help="Long-running services.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
console = Console()
err_console = Console(stderr=True)


def _lab() -> Any:
    from hybridops.lab import Lab

    return Lab(home() / "lab")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except HybridOpsError as err:
        _fail(str(err))


# ---------------------------------------------------------------------- lab


@lab_app.command("up")
def lab_up(
    writer: bool = True,
    monitoring: Annotated[
        bool | None,
        typer.Option("--monitoring/--no-monitoring", help="Prometheus, Alertmanager; default: if installed"),
    ] = None,
) -> None:
    """Start Temporal, PostgreSQL (primary + 2 standbys), DNS, monitoring, a worker and the writer."""
    lab = _lab()
    try:
        inv = lab.up(writer=writer, monitoring=monitoring, first_backup=True)
    except HybridOpsError as err:
        _fail(str(err))
    console.print(f"lab up; inventory {lab.root / 'inventory.yaml'}")
    if lab.monitored:
        mon = lab.monitoring
        console.print(f"Prometheus: {mon.prometheus_url}  Alertmanager: {mon.alertmanager_url}")
    console.print(f"Temporal UI: {inv.temporal.ui_url}")
    if lab.dns_stale:
        err_console.print(f"[yellow]{lab.dns_note}[/yellow]")
    else:
        console.print(lab.dns_note)
    # The lab is up (exit 0), but a split brain must be impossible to miss.
    _print_lab_warnings(lab.warnings())


def _print_lab_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err_console.print(f"[bold red]WARNING:[/bold red] [red]{warning}[/red]")


@lab_app.command("down")
def lab_down() -> None:
    """Stop everything the lab started."""
    _lab().down()
    console.print("lab down")


@lab_app.command("status")
def lab_status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each part of the lab, and the role of each database."""
    status = _lab().status()
    if json_out:
        print(json.dumps(status, indent=2))
        return
    table = Table("part", "state")
    for k, v in status.items():
        if k not in ("root", "ports", "warnings"):
            table.add_row(k, str(v))
    console.print(table)
    if status.get("dns") == "running":
        # The same reading the runbooks make: every server asked, DNS asked, findings named.
        from workers.main import build_activities

        os.environ.update(_lab().env())
        print_topology(_run(build_activities(_lab().inventory(), client=None).topology.read()))
    _print_lab_warnings(status["warnings"])


@lab_app.command("break")
def lab_break(site: str) -> None:
    """The disaster: kill SITE's database server (as if its host died)."""
    lab = _lab()
    if site not in ("onprem", "azure", "gcp"):
        _fail(f"site: unknown site {site!r} (onprem, azure or gcp)")
    at = lab.break_site(site)
    console.print(f"{site} killed at {at.isoformat()}")


@lab_app.command("load")
def lab_load(load: Annotated[float, typer.Argument(help="The on-prem load a burst reads, 0..1")]) -> None:
    """Set the lab's on-prem load (what a burst's hold loop reads)."""
    try:
        _lab().set_load(load)
    except HybridOpsError as err:
        _fail(str(err))
    console.print(f"on-prem load: {load:g}")


@lab_app.command("reset")
def lab_reset() -> None:
    """Back to the starting topology (onprem primary, two standbys, DNS at onprem)."""
    _lab().reset()
    console.print("lab reset: onprem primary, azure and gcp standbys")


@signals_app.command("set")
def lab_signals_set(
    cloud: str,
    values: Annotated[list[str], typer.Argument(help="KEY=VALUE ..., e.g. credits=0 latency_ms=250")],
) -> None:
    """Change CLOUD's values; the lab's cloud exporter serves them from its next scrape."""
    parsed: dict[str, float] = {}
    for item in values:
        key, sep, value = item.partition("=")
        try:
            parsed[key] = float(value) if sep else float("nan")
        except ValueError:
            parsed[key] = float("nan")
        if parsed[key] != parsed[key]:
            _fail(f"{item!r}: expected KEY=NUMBER")
    try:
        now = _lab().monitoring.set_signals(cloud, parsed)
    except HybridOpsError as err:
        _fail(str(err))
    console.print(f"{cloud}: " + ", ".join(f"{k}={v:g}" for k, v in now.items()))


@signals_app.command("show")
def lab_signals_show() -> None:
    """The values the lab's cloud exporter serves."""
    lab = _lab()
    if not lab.monitoring.signals_file.exists():
        _fail("no cloud signals yet: the lab has not run with monitoring (hybridops lab up --monitoring)")
    print(json.dumps(lab.monitoring.read_signals(), indent=2))


@lab_app.command("writer", hidden=True)
def lab_writer(seconds: float = 0.0) -> None:
    """Run the workload writer in the foreground."""
    from hybridops.workload import Writer

    inv = load_inventory()
    assert inv.workload.ledger is not None
    Writer(inv, inv.workload.ledger).run(seconds or None)


# ---------------------------------------------------------------------- worker


@app.command()
def worker(
    queue: Annotated[list[str] | None, typer.Option(help="Task queue(s) to serve; all by default")] = None,
) -> None:
    """Run a worker serving the task queues."""
    from workers.main import run_workers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        queues = [TaskQueue(q) for q in queue] if queue else list(TaskQueue)
    except ValueError:
        _fail(f"queue: one of {[q.value for q in TaskQueue]}")
    inv = _inventory()

    async def main() -> None:
        client = await connect(inv.temporal)
        await run_workers(client, inv, queues)

    _run(main())


# ---------------------------------------------------------------------- serve


@serve_app.command("alerts")
def serve_alerts(
    listen: Annotated[str | None, typer.Option(help="HOST:PORT (default: alerts.listen)")] = None,
) -> None:
    """The Alertmanager webhook receiver: starts runbooks from alerts (one run per incident)."""
    from hybridops.alerts.receiver import serve_alerts as serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _run(serve(_inventory(), listen))


@serve_app.command("codec")
def serve_codec(
    listen: Annotated[str | None, typer.Option(help="HOST:PORT (default: temporal.codec.listen)")] = None,
) -> None:
    """The codec server for the Temporal UI and CLI: decrypts payloads for bearer-token holders."""
    from hybridops.codec_server import serve_codec as serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _run(serve(_inventory(), listen))


# ---------------------------------------------------------------------- runbooks


def _inventory() -> Inventory:
    """The inventory; when it is the lab's, the lab's environment too (its DNS keys and alert
    token are references to environment variables the lab's own processes get)."""
    lab = _lab()
    if inventory_path() == lab.root / "inventory.yaml" and lab.root.exists():
        for key, value in lab.env().items():
            os.environ.setdefault(key, value)
    try:
        return load_inventory()
    except HybridOpsError as err:
        _fail(str(err))
        raise


def _ui_link(inv: Inventory, wf_id: str) -> str:
    return f"{inv.temporal.ui_url}/namespaces/{inv.temporal.namespace}/workflows/{wf_id}"


async def watch(handle: WorkflowHandle[Any, Any], quiet: bool = False) -> dict[str, Any]:
    """Show the run's steps as they pass; returns the result (or failure details) as data."""
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
        result = await handle.result()
        data: dict[str, Any] = result.model_dump(mode="json") if hasattr(result, "model_dump") else result
        return data
    except WorkflowFailureError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
            failed: dict[str, Any] = cause.details[0]
            return failed
        return {"status": "failed", "error": str(cause or err)}


def print_summary(data: dict[str, Any], inv: Inventory) -> None:
    status = data.get("status")
    colour = "green" if status == "succeeded" else "red"
    console.print(
        f"\n[bold {colour}]{data.get('runbook', 'failover')} {status}[/bold {colour}]"
        f"  target: {data.get('target')}"
    )
    if data.get("error"):
        console.print(f"  error: {data['error']}")
    rpo = data.get("rpo") or {}
    console.print(
        f"  RTO: {data.get('rto_seconds')} s   RPO: {rpo.get('transactions_lost')} transactions,"
        f" {rpo.get('seconds')} s ({rpo.get('method')})"
    )
    console.print(f"  evidence: {data.get('evidence_dir')}")
    console.print(f"  in the UI: {_ui_link(inv, data.get('workflow_id', ''))}")


def run_and_watch(
    inv: Inventory, workflow: WorkflowType, inp: Any, wf_id: str, result_type: type[Any], json_out: bool
) -> dict[str, Any]:
    """Start a runbook on the control queue, show its steps as they pass (unless ``json_out``),
    and return its result (or its failure's details) as data; ``--json`` prints it."""

    async def main() -> dict[str, Any]:
        client = await connect(inv.temporal)
        handle = await client.start_workflow(
            workflow.value, inp, id=wf_id, task_queue=inv.queue(TaskQueue.CONTROL), result_type=result_type
        )
        if not json_out:
            console.print(f"started {wf_id}: {_ui_link(inv, wf_id)}")
        return await watch(handle, quiet=json_out)

    data: dict[str, Any] = _run(main())
    if json_out:
        print(json.dumps(data, indent=2))
    return data


async def start_failover(
    client: Client, inv: Inventory, inp: FailoverInput, wf_id: str
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        WorkflowType.FAILOVER.value,
        inp,
        id=wf_id,
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=FailoverResult,
    )


@app.command()
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
) -> None:
    """Start a failover, show its phases as they pass, and print RTO, RPO and the evidence.
    The policy's approval section may still make it wait for `hybridops approve`."""
    inv = _inventory()
    incident = None
    if incident_started_at:
        try:
            incident = datetime.fromisoformat(incident_started_at)
        except ValueError:
            _fail("incident-started-at: not an ISO 8601 time")
    try:
        inp = FailoverInput(
            target=target,
            require_approval=require_approval,
            incident_started_at=incident,
            reason=reason,
            requested_by=os.environ.get("USER", "cli"),
            only_if_primary_down=not planned,
            lease_wait_s=lease_wait_s,
        )
    except ValidationError as err:
        _fail(str(err))
        return
    wf_id = workflow_id or f"failover-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"

    async def main() -> dict[str, Any]:
        client = await connect(inv.temporal)
        handle = await start_failover(client, inv, inp, wf_id)
        if not json_out:
            console.print(f"started {wf_id}: {_ui_link(inv, wf_id)}")
        return await watch(handle, quiet=json_out)

    data = _run(main())
    if json_out:
        print(json.dumps(data, indent=2))
    else:
        print_summary(data, inv)
    if data.get("status") != "succeeded":
        raise typer.Exit(1)


@app.command()
def decide(
    target: Annotated[str, typer.Option(help="auto, or a site or cloud to ask for")] = "auto",
    kind: Annotated[
        DecisionType, typer.Option("--type", help="failover, burst or failback")
    ] = DecisionType.FAILOVER,
    json_out: Annotated[bool, typer.Option("--json", help="Print the decision as JSON")] = False,
) -> None:
    """What the policy would decide now, on live signals: the same engine and inputs as a
    failover's decide phase. Reads only; changes nothing."""
    from activities.decide import DecideActivities
    from hybridops.decision import CANDIDATE_COLUMNS, candidate_rows, signal_rows, signal_targets
    from hybridops.decision import decide as run_decide
    from workers.main import build_activities

    if kind == DecisionType.HOLD:
        _fail("--type: hold is an answer, not a question; use failover, burst or failback")
    inv = _inventory()

    async def main() -> tuple[Decision, SignalSnapshot, Topology]:
        acts = build_activities(inv, client=None)
        plan = await acts.plan_failover(PlanInput())
        # The same reading a run makes: the servers say who the primary is, DNS where clients go.
        topology = await acts.topology.read([s.name for s in plan.sites])
        current = topology.acting_primary or plan.current_primary
        request = DecisionRequest(decision_type=kind, current_primary=current, target=target)
        gathered = await DecideActivities(inv).gather_signals(signal_targets(request, plan.sites))
        return (*run_decide(request, plan.sites, topology.servers, gathered), topology)

    decision, snapshot, topology = _run(main())
    if json_out:
        print(
            json.dumps(
                {
                    "decision": decision.model_dump(mode="json"),
                    "signals": snapshot.model_dump(mode="json"),
                    "topology": topology.model_dump(mode="json"),
                },
                indent=2,
            )
        )
        return
    print_topology(topology)
    approval = "requires approval" if decision.requires_approval else "no approval needed"
    console.print(
        f"[bold]{decision.decision_type.value}[/bold] -> {decision.target or '-'}"
        f" ({decision.target_cloud.value}), mode {decision.dr_mode.value}, {approval}"
        f", id {decision.decision_id}",
        markup=True,
    )
    for reason in decision.rationale:
        console.print(f"  - {reason}", markup=False, highlight=False)
    table = Table(*CANDIDATE_COLUMNS, title="candidates")
    for row in candidate_rows(decision):
        table.add_row(*row)
    console.print(table)
    header, rows = signal_rows(snapshot)
    sig = Table(*header, title=f"signals at {snapshot.taken_at:%H:%M:%S}")
    for row in rows:
        sig.add_row(*row)
    console.print(sig)
    if decision.decision_type == DecisionType.HOLD:
        raise typer.Exit(1)


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


@app.command()
def approve(
    workflow_id: str,
    by: Annotated[str, typer.Option(help="Who approves")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead: the run compensates")] = False,
    comment: str = "",
    override: Annotated[
        str | None,
        typer.Option(help="Break glass: the safety rule to override (the run names it); --comment says why"),
    ] = None,
) -> None:
    """Approve (or reject) a run waiting at its approval gate, or override the safety rule
    that blocks it (break glass: recorded with who and why)."""
    inv = _inventory()

    async def main() -> ApprovalRecord:
        client = await connect(inv.temporal)
        handle = client.get_workflow_handle(workflow_id)
        # The approval names the decision it approves: the one shown here, now.
        prog: Progress = await handle.query(PROGRESS_QUERY, result_type=Progress)
        if prog.decision_id:
            console.print(f"{workflow_id}: decision {prog.decision_id}, target {prog.target or '-'}")
        record: ApprovalRecord = await handle.execute_update(
            APPROVE_UPDATE,
            ApprovalInput(
                by=by, approve=not reject, comment=comment, override=override, decision_id=prog.decision_id
            ),
            result_type=ApprovalRecord,
        )
        return record

    try:
        record = asyncio.run(main())
    except Exception as err:
        _fail(f"{workflow_id}: {getattr(err, 'message', None) or err}")
    if record.refused:
        _fail(f"{workflow_id}: refused ({record.identity}): {record.refused}")
    console.print(f"{workflow_id}: {'rejected' if reject else 'approved'} by {by} ({record.identity})")


@app.command()
def status(workflow_id: str, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A run's status, phase and steps."""
    inv = _inventory()

    async def main() -> dict[str, Any]:
        client = await connect(inv.temporal)
        handle = client.get_workflow_handle(workflow_id)
        desc = await handle.describe()
        out: dict[str, Any] = {
            "workflow_id": workflow_id,
            "temporal_status": desc.status.name if desc.status else None,
        }
        try:
            prog = await handle.query(PROGRESS_QUERY, result_type=Progress)
            out.update(prog.model_dump(mode="json"))
        except Exception as err:
            out["query_error"] = str(err)
        return out

    data = _run(main())
    if json_out:
        print(json.dumps(data, indent=2))
        return
    console.print(
        f"{workflow_id}: {data.get('temporal_status')} phase={data.get('phase')} target={data.get('target')}"
    )
    for s in data.get("steps", []):
        console.print(f"  {s['name']:<20} {s.get('outcome') or 'running':<10} {s.get('detail', '')}")


@app.command()
def demo(keep: bool = True) -> None:
    """The main job on the embedded lab: up, writer running, onprem killed, failover, summary."""
    import time

    lab = _lab()
    console.print("[bold]1. lab up[/bold] (Temporal, PostgreSQL onprem + azure + gcp, DNS, worker, writer)")
    if (lab.root / "pg").exists():  # a lab from an earlier run: back to the starting topology,
        lab.stop_code()  # with this checkout's code
        lab.reset()
    try:
        inv = lab.up(first_backup=True)
    except HybridOpsError as err:
        _fail(str(err))
    os.environ["HYBRIDOPS_INVENTORY"] = str(lab.root / "inventory.yaml")
    from hybridops.lab.processes import wait_until
    from hybridops.workload import read_ledger

    wait_until(
        "the writer's first 200 writes",
        lambda: lab.ledger.exists() and len(read_ledger(lab.ledger)) >= 200,
        timeout=60,
    )
    console.print(f"   writer running: {len(read_ledger(lab.ledger))} writes acknowledged on onprem")
    console.print("[bold]2. disaster[/bold]: hybridops lab break onprem")
    at = lab.break_site("onprem")
    console.print(f"   onprem killed at {at.isoformat()}")
    console.print("[bold]3. failover[/bold] (target auto)")
    wf_id = f"failover-demo-{datetime.now(UTC):%Y%m%dT%H%M%S}"

    async def main() -> dict[str, Any]:
        client = await connect(inv.temporal)
        handle = await start_failover(
            client,
            inv,
            FailoverInput(incident_started_at=at, reason="demo: onprem killed", requested_by="make demo"),
            wf_id,
        )
        console.print(f"   started {wf_id}")
        return await watch(handle)

    data = _run(main())
    time.sleep(0)
    print_summary(data, inv)
    console.print("\nThe lab is still running: explore the run in the Temporal UI.")
    console.print(
        "  hybridops lab status   |   hybridops lab reset   |   hybridops lab down   (or make down)"
    )
    if data.get("status") != "succeeded":
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    # `python -m hybridops.cli` (the lab's writer, worker and receiver) runs this file as
    # __main__, a second copy of the module. The sub-command modules below import the helpers
    # from `hybridops.cli`, so run that importable module instead of registering them here.
    from hybridops.cli import main as _main

    _main()
    sys.exit(0)

# Sub-commands that live in their own modules (they use the helpers above).
from hybridops.audit.cli import audit_app  # noqa: E402
from hybridops.cli_bootstrap import bootstrap  # noqa: E402
from hybridops.cli_burst import burst_app  # noqa: E402
from hybridops.cli_drill import backup_app, drill_app  # noqa: E402
from hybridops.cli_failback import failback  # noqa: E402

app.add_typer(drill_app, name="drill")
app.add_typer(backup_app, name="backup")
app.add_typer(audit_app, name="audit")
app.add_typer(burst_app, name="burst")
app.command()(failback)
app.command()(bootstrap)
