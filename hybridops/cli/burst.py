"""``hybridops burst start|status|stop``: cloud bursting."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from hybridops.cli.common import connect, console, inventory, print_json, run_state, start, ui_link
from hybridops.cli.failures import command_group
from hybridops.constants import PROGRESS_QUERY, STOP_SIGNAL, WorkflowType
from hybridops.contracts.base import Progress, TargetChoice
from hybridops.contracts.burst import BurstInput, BurstResult, BurstState

burst_app = command_group("Cloud bursting: add cloud capacity while on-prem is busy.")


@burst_app.command("start")
def burst_start(
    target: Annotated[TargetChoice, typer.Option(help="azure, gcp or auto (the policy)")] = TargetChoice.AUTO,
    extra_nodes: Annotated[int, typer.Option(help="Nodes added to the burst pool")] = 3,
    traffic_share: Annotated[int, typer.Option(help="Percent of traffic to the cloud")] = 30,
    scale_in_below: Annotated[float, typer.Option(help="Scale in when load falls below")] = 0.6,
    check_interval_s: Annotated[float, typer.Option(help="Seconds between load checks")] = 60.0,
    budget_cap: Annotated[float | None, typer.Option(help="Scale in at this estimated cost")] = None,
    max_duration_s: Annotated[float, typer.Option(help="Teardown deadline, seconds")] = 4 * 3600.0,
) -> None:
    """Start a burst; it holds until the load falls, a stop, the budget cap or the deadline."""
    inv = inventory()
    inp = BurstInput(
        target=target,
        extra_nodes=extra_nodes,
        traffic_share=traffic_share,
        scale_in_below=scale_in_below,
        check_interval_s=check_interval_s,
        budget_cap=budget_cap,
        max_duration_s=max_duration_s,
        requested_by=os.environ.get("USER", "cli"),
    )
    wf_id = f"burst-{datetime.now(UTC):%Y%m%dT%H%M%S}"

    async def main() -> None:
        await start(await connect(inv.temporal), inv, WorkflowType.BURST, inp, wf_id, BurstResult)

    asyncio.run(main())
    console.print(f"started {wf_id}: {ui_link(inv, wf_id)}")
    console.print(f"  hybridops burst status {wf_id}   |   hybridops burst stop {wf_id}")


@burst_app.command("status")
def burst_status(workflow_id: str, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Phase, target, load checks, peak load and the cost so far."""
    inv = inventory()

    async def main() -> dict[str, Any]:
        handle = (await connect(inv.temporal)).get_workflow_handle(workflow_id)
        return await run_state(
            handle, {"progress": (PROGRESS_QUERY, Progress), "state": ("burst_state", BurstState)}
        )

    data = asyncio.run(main())
    if json_out:
        print_json(data)
        return
    st = data.get("state") or {}
    prog = data.get("progress") or {}
    # Only what the run has: a run that has not checked the load yet has no load to show.
    known = {
        "phase": prog.get("phase"),
        "target": st.get("target"),
        "checks": st.get("checks"),
        "runs": st.get("runs"),
        "load": st.get("last_load"),
        "peak": st.get("peak_load"),
    }
    shown = "".join(f" {k}={v}" for k, v in known.items() if v is not None)
    console.print(f"{workflow_id}: {data['temporal_status']}{shown}", highlight=False)
    if data.get("query_error"):
        console.print(f"  the run did not answer: {data['query_error']}", markup=False, highlight=False)


@burst_app.command("stop")
def burst_stop(workflow_id: str, reason: str = "stopped by hand") -> None:
    """Scale in now, cleanly: traffic back, workloads removed, node pool back."""
    inv = inventory()

    async def main() -> None:
        handle = (await connect(inv.temporal)).get_workflow_handle(workflow_id)
        await handle.signal(STOP_SIGNAL, reason)

    asyncio.run(main())
    console.print(f"{workflow_id}: stop sent; it scales in (hybridops burst status {workflow_id})")
