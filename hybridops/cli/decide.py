"""``hybridops decide``: what the policy would decide now, on live signals; reads only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, NamedTuple

import typer
from rich.table import Table

from hybridops.cli.common import EXIT_FAILED, console, fail, inventory, print_topology
from hybridops.contracts.base import TargetChoice
from hybridops.contracts.decision import (
    Decision,
    DecisionRequest,
    DecisionType,
    SignalsInput,
    SignalSnapshot,
    SignalsResult,
)
from hybridops.contracts.sites import AssessInput, AssessResult, FindingKind, PlanInput, PlanResult, Topology
from hybridops.decision import (
    CANDIDATE_COLUMNS,
    candidate_rows,
    plan_of,
    policy_in_force,
    signal_rows,
    signal_targets,
    topology_of,
)
from hybridops.decision import decide as decide_on
from hybridops.policy import SplitBrainAction, load_policy
from hybridops.topology import keep_writer


class DecideSteps(NamedTuple):
    """The decide phase's read-only steps, as a failover runs them (``plan_failover``,
    ``assess_sites``, ``gather_signals``)."""

    plan: Callable[[PlanInput], Awaitable[PlanResult]]
    assess: Callable[[AssessInput], Awaitable[AssessResult]]
    gather: Callable[[SignalsInput], Awaitable[SignalsResult]]


def live_steps() -> DecideSteps:
    """The steps' readings, here: the same driver calls (``drivers.lazy.Drivers``) and the same
    kernel function of the plan (:func:`hybridops.decision.plan_of`) as the steps
    ``plan_failover``, ``assess_sites`` and ``gather_signals`` make."""
    from drivers.lazy import Drivers

    inv = inventory()
    drivers = Drivers(inv)

    async def plan(_: PlanInput) -> PlanResult:
        return plan_of(inv, await drivers.dns_value(), load_policy(inv.policy))

    async def assess(inp: AssessInput) -> AssessResult:
        return AssessResult(states=await drivers.assess(inp.sites))

    async def gather(inp: SignalsInput) -> SignalsResult:
        return SignalsResult(snapshot=await drivers.gather_signals(inp.sites), policy=load_policy(inv.policy))

    return DecideSteps(plan, assess, gather)


async def decide_phase(
    kind: DecisionType, target: TargetChoice, steps: DecideSteps
) -> tuple[Decision, SignalSnapshot, Topology]:
    """A failover's decide phase without its changes: the same steps with the same inputs, and
    the same functions on their results (``hybridops.decision``). A split brain is shown as a
    run settles it (keeping the writer DNS points at, unless the policy holds), on the servers
    as they are: a run fences the other writers first."""
    plan = await steps.plan(PlanInput())
    assessed = await steps.assess(AssessInput(sites=[s.name for s in plan.sites]))
    topology = topology_of(plan, assessed.states)
    split_brain = topology.has(FindingKind.SPLIT_BRAIN)
    current = "" if split_brain else topology.acting_primary
    if current is None:
        fail(
            "cannot establish the current primary: no server accepts writes, no standby names its"
            " upstream and DNS points at no site; " + "; ".join(f.detail for f in topology.findings)
        )
    request = DecisionRequest(decision_type=kind, current_primary=current, target=target)
    gathered = await steps.gather(signal_targets(request, plan.sites))
    if split_brain:
        policy = policy_in_force(plan, gathered)
        keep = None if policy.safety.split_brain == SplitBrainAction.HOLD else keep_writer(topology)
        if keep is None:
            fail(
                f"split brain: {', '.join(topology.writable)} accept writes; a run holds (DNS points at"
                " none of them, or safety.split_brain is hold): runbooks/failover.md, Split brain",
                EXIT_FAILED,
            )
        request = request.model_copy(update={"current_primary": keep})
    decision, snapshot = decide_on(request, plan, assessed.states, gathered)
    return decision, snapshot, topology


def decide(
    target: Annotated[TargetChoice, typer.Option(help="azure, gcp or auto")] = TargetChoice.AUTO,
    kind: Annotated[
        DecisionType, typer.Option("--type", help="failover, burst or failback")
    ] = DecisionType.FAILOVER,
    json_out: Annotated[bool, typer.Option("--json", help="Print the decision as JSON")] = False,
) -> None:
    """What the policy would decide now, on live signals: the same steps, inputs and decision
    as a failover's decide phase. Reads only; changes nothing."""
    if kind == DecisionType.HOLD:
        fail("--type: hold is an answer, not a question; use failover, burst or failback")
    decision, snapshot, topology = asyncio.run(decide_phase(kind, target, live_steps()))
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
