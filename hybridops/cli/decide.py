"""``hybridops decide``: what the policy would decide now, on live signals; reads only."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.table import Table

from hybridops.cli.common import EXIT_FAILED, console, fail, inventory, print_topology
from hybridops.contracts.decision import Decision, DecisionRequest, DecisionType, SignalSnapshot
from hybridops.contracts.sites import PlanInput, Topology


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
        fail("--type: hold is an answer, not a question; use failover, burst or failback")
    inv = inventory()

    async def main() -> tuple[Decision, SignalSnapshot, Topology]:
        acts = build_activities(inv)
        plan = await acts.plan_failover(PlanInput())
        # The same reading a run makes: the servers say who the primary is, DNS where clients go.
        topology = await acts.topology.read([s.name for s in plan.sites])
        current = topology.acting_primary or plan.dns_site
        request = DecisionRequest(decision_type=kind, current_primary=current, target=target)
        gathered = await DecideActivities(inv).gather_signals(signal_targets(request, plan.sites))
        return (*run_decide(request, plan.sites, topology.servers, gathered), topology)

    decision, snapshot, topology = asyncio.run(main())
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
        raise typer.Exit(EXIT_FAILED)
