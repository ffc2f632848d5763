"""A site agent that dies in a step and comes back late still gets the step (workflows/steps.py).

On the real dev server: a step on a site's agent queue whose agent stops heartbeating (it died
mid-step) is retried by the server; the retry's schedule-to-start timeout is the seconds a dead
host gets (``agent_start_s``). An agent restarting slower than that (a loaded host) made the site
"unreachable" and, past the point of no return, failed a failback. Now the step is run once more
with the restart's wait (``agent_restart_s``), while a step no agent ever took still fails in
``agent_start_s``.

The "dead, then restarting" agent is a worker with one activity slot whose first attempt stops
heartbeating and holds the slot: the server times the attempt out and schedules the retry, which
nobody can take until the test frees the slot, as a supervisor restarts an agent.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ActivityError
from temporalio.worker import Worker

from hybridops.contracts.sites import CheckResult, SiteInput
from tests.lab.helpers import eventually
from workflows import steps


@workflow.defn(name="AgentRestartProbe", sandboxed=False)
class AgentRestartProbe:
    @workflow.run
    async def run(self, agent_queue: str) -> str:
        where = steps.Where(
            "queues", "", {"onprem": agent_queue}, agent_start_s=1.0, heartbeat_s=1.0, agent_restart_s=30.0
        )
        try:
            await steps.run_step(steps.PROBE_AGENT, SiteInput(site="onprem", run_id="probe"), where)
        except ActivityError as err:
            return "absent" if steps.agent_absent(err) else steps.describe_error(err)
        return "taken"


class DyingAgent:
    """``probe_agent`` as an agent that dies in its first attempt: it stops heartbeating and
    keeps its worker's only slot until :attr:`restarted` is set."""

    def __init__(self) -> None:
        self.restarted = asyncio.Event()
        self.attempts: list[int] = []

    @activity.defn(name=steps.PROBE_AGENT.activity.value)
    async def probe(self, inp: SiteInput) -> CheckResult:
        self.attempts.append(activity.info().attempt)
        if activity.info().attempt == 1:
            activity.heartbeat("working")
            await self.restarted.wait()  # no heartbeat: the server counts this attempt dead
        return CheckResult(attempt=activity.info().attempt)


def scheduled(events: list[object]) -> list[timedelta]:
    """Each ActivityTaskScheduled event's schedule-to-start timeout."""
    return [
        e.activity_task_scheduled_event_attributes.schedule_to_start_timeout.ToTimedelta()  # type: ignore[attr-defined]
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED  # type: ignore[attr-defined]
    ]


async def history_of(handle: WorkflowHandle[object, object]) -> list[object]:
    return [e async for e in handle.fetch_history_events()]


async def test_an_agent_that_died_in_a_step_gets_it_again_when_it_is_back(client: Client) -> None:
    suffix = uuid.uuid4().hex[:8]
    control, agent_queue = f"restart-ctl-{suffix}", f"restart-agent-{suffix}"
    agent = DyingAgent()
    async with (
        Worker(client, task_queue=control, workflows=[AgentRestartProbe]),
        Worker(client, task_queue=agent_queue, activities=[agent.probe], max_concurrent_activities=1),
    ):
        handle = await client.start_workflow(
            AgentRestartProbe.run, agent_queue, id=f"wf-{control}", task_queue=control
        )

        async def rerun_waits_for_the_restart() -> bool:
            return len(scheduled(await history_of(handle))) == 2

        # The first attempt's heartbeat times out, its retry finds nobody within 1 s, and the
        # step is scheduled again with the restart's wait: only then does the agent come back.
        await eventually("the step scheduled again", rerun_waits_for_the_restart, timeout=60)
        agent.restarted.set()
        assert await handle.result() == "taken"
    assert scheduled(await history_of(handle)) == [timedelta(seconds=1), timedelta(seconds=30)]
    assert agent.attempts[0] == 1 and len(agent.attempts) == 2


async def test_a_step_no_agent_ever_took_fails_in_the_dead_hosts_seconds(client: Client) -> None:
    suffix = uuid.uuid4().hex[:8]
    control = f"restart-ctl-{suffix}"
    async with Worker(client, task_queue=control, workflows=[AgentRestartProbe]):
        handle = await client.start_workflow(
            AgentRestartProbe.run, f"nobody-{suffix}", id=f"wf-{control}", task_queue=control
        )
        assert await handle.result() == "absent"
    # No earlier attempt: the dead host is not waited for as if restarting.
    assert scheduled(await history_of(handle)) == [timedelta(seconds=1)]
