"""Site agents: a dead host has no agent, and a run says so in seconds; a site whose agent
lives on after its server died is fenced by it. Each case ends with one writer and DNS at it."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHistory

from hybridops.contracts.base import RunStatus, StepOutcome
from hybridops.contracts.failover import FailoverInput
from hybridops.contracts.sites import FindingKind
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    assert_failed_over,
    assert_one_writer,
    fenced,
    role,
    scheduled_queues,
    start,
    timeline,
)
from workers.main import build_agent, build_workers


async def test_a_dead_host_has_no_agent_and_is_isolated(client: Client, lab: Lab) -> None:
    """onprem's host is dead: its server and its agent. The fence step waits the policy's
    agent_start_timeout_s for an agent nobody runs, then the control worker isolates the site
    (the lab's isolation puts standby.signal on its disk) and the run goes on: one writer,
    DNS at it, and onprem comes back read-only."""
    inv = lab_inventory(lab)
    workers = build_workers(client, inv) + [build_agent(client, inv, s) for s in ("azure", "gcp")]
    lab.break_site("onprem")
    for w in workers:
        await w.__aenter__()
    try:
        handle = await start(client, inv, FailoverInput(target="azure"))
        result = await handle.result()
    finally:
        for w in workers:
            await w.__aexit__(None, None, None)
    assert result.status == RunStatus.SUCCEEDED, result.error
    fence = next(s for s in result.steps if s.name == "fence_old_primary")
    assert fence.outcome == StepOutcome.SKIPPED, fence
    assert fence.detail == "onprem's agent did not answer within 2 s: its host is down"
    isolate = next(s for s in result.steps if s.name == "isolate_old_primary")
    assert isolate.outcome == StepOutcome.CHANGED and "agent did not answer within 2 s" in (
        isolate.detail or ""
    )
    unverified = [f for f in result.findings if f.kind == FindingKind.FENCE_UNVERIFIED]
    assert unverified and "its agent did not answer" in unverified[0].detail
    assert (
        result.fence is not None
        and result.fence.token is None
        and "isolated (lab)" in (result.fence.isolated or "")
    )
    assert not fenced(lab, "onprem"), "nobody could write the fence mark of a dead host"
    assert assert_one_writer(lab) == "azure" and timeline(lab, "azure") == 2
    assert role(lab, "onprem") == "down" and role(lab, "gcp") == "standby"
    # The host comes back: its disk holds standby.signal, so it starts read-only.
    lab.pg_start("onprem")
    assert role(lab, "onprem") == "standby"
    assert assert_one_writer(lab) == "azure"


async def test_an_agent_fences_its_own_dead_server(client: Client, lab: Lab, run_workers: Any) -> None:
    """onprem's server died but its host (and agent) lives: the agent marks the data
    directory; the control worker isolates the site (the agent holds no infra credentials)."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.break_site("onprem", agent=False)
    handle = await start(client, inv, FailoverInput(target="gcp"))
    result = await handle.result()
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert fenced(lab, "onprem")
    history = WorkflowHistory.from_json(handle.id, (await handle.fetch_history()).to_json())
    queues = scheduled_queues(history)
    assert queues["fence_primary"] == {inv.site_queue("onprem")}
    assert queues["promote_standby"] == {inv.site_queue("gcp")}
    assert_failed_over(lab, "gcp")
