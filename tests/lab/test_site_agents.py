"""Site agents: a dead host has no agent, and a run says so in seconds; a site whose agent
lives on after its server died is fenced by it. Each case ends with one writer and DNS at it."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.failback import FailbackActivities
from drivers.lazy import Drivers
from hybridops.contracts.base import RunStatus, StepOutcome
from hybridops.contracts.failback import ResumeInput
from hybridops.contracts.failover import FailoverInput
from hybridops.contracts.sites import FindingKind
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    ask,
    assert_failed_over,
    assert_one_writer,
    can_write,
    fenced,
    role,
    scheduled_queues,
    start,
    timeline,
    writable_sites,
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


async def test_resuming_writes_is_guarded_where_every_server_is_read(lab: Lab) -> None:
    """A failback's compensation resumes writes on the paused primary. Its agent sees its own
    server only (production gives it no other server's credentials: here the others' port is
    closed to it), so it does not judge the others: the guard step does, on the reader, and
    refuses while another server takes writes. Once that server is gone, the agent resumes."""
    inv = lab_inventory(lab)
    reader = FailbackActivities(inv, Drivers(inv))
    blind = inv.model_copy(
        update={
            "sites": {
                s: c.model_copy(update={"port": 9}) if s != "onprem" else c for s, c in inv.sites.items()
            }
        }
    )
    agent = FailbackActivities(blind, Drivers(blind, local_sites=frozenset({"onprem"})))
    env = ActivityEnvironment()
    await Drivers(inv).postgres.pause_writes("onprem", "run-resume-guard")
    assert not can_write(lab, "onprem")
    # A second writer: gcp promoted behind the run's back.
    ask(lab, "gcp", "SELECT pg_promote(true)")
    with pytest.raises(ApplicationError, match="gcp accepts writes: onprem stays paused") as refused:
        await env.run(reader.check_resume, ResumeInput(site="onprem"))
    assert refused.value.type == "SafetyRuleViolated" and refused.value.non_retryable
    assert writable_sites(lab) == ["gcp"]
    # gcp's server stops; the guard passes, and the agent resumes its own server's writes.
    lab.break_site("gcp", agent=False)
    await env.run(reader.check_resume, ResumeInput(site="onprem"))
    resumed = await env.run(agent.resume_writes, ResumeInput(site="onprem"))
    assert resumed.changed
    assert assert_one_writer(lab) == "onprem"
