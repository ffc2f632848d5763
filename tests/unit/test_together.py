"""Two steps at once (workflows/steps.py ``together``), on the dev server: both run at the same
time, and a failure of one is raised only once the other ended, so no step outlives the phase
that started it (a failover's compensation must not start while its fence still runs)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Worker

from tests.lab.helpers import eventually
from workflows import steps

ONCE = RetryPolicy(maximum_attempts=1)
TIMEOUT = timedelta(seconds=30)


class Pair:
    """``first`` ends only once ``second`` has started (so they ran at once), failing when
    asked to; ``second`` ends when the test lets it."""

    def __init__(self) -> None:
        self.second_started = asyncio.Event()
        self.let_second_end = asyncio.Event()

    @activity.defn(name="together-first")
    async def first(self, fail: bool) -> str:
        await self.second_started.wait()
        if fail:
            raise ApplicationError("first failed", non_retryable=True)
        return "first"

    @activity.defn(name="together-second")
    async def second(self) -> str:
        self.second_started.set()
        await self.let_second_end.wait()
        return "second"


@workflow.defn(name="TogetherProbe", sandboxed=False)
class TogetherProbe:
    @workflow.run
    async def run(self, fail: bool) -> str:
        first = workflow.execute_activity(
            "together-first", fail, result_type=str, start_to_close_timeout=TIMEOUT, retry_policy=ONCE
        )
        second = workflow.execute_activity(
            "together-second", result_type=str, start_to_close_timeout=TIMEOUT, retry_policy=ONCE
        )
        try:
            a, b = await steps.together(first, second)
        except ActivityError as err:
            return f"raised: {err.cause}"
        return f"{a}+{b}"


async def run_probe(client: Client, fail: bool) -> tuple[str, list[str]]:
    queue = f"together-{uuid.uuid4().hex[:8]}"
    pair = Pair()
    async with Worker(
        client, task_queue=queue, workflows=[TogetherProbe], activities=[pair.first, pair.second]
    ):
        handle = await client.start_workflow(TogetherProbe.run, fail, id=f"wf-{queue}", task_queue=queue)

        async def first_ended() -> bool:
            ended = {"EVENT_TYPE_ACTIVITY_TASK_COMPLETED", "EVENT_TYPE_ACTIVITY_TASK_FAILED"}
            return bool(ended & set(await events_of(handle)))

        # The first ends (or fails) while the second still runs: the workflow must wait for it.
        await eventually("the first step's end in the history", first_ended)
        pair.let_second_end.set()
        result = await handle.result()
    return result, await events_of(handle)


async def events_of(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]


async def test_both_steps_run_at_once_and_both_results_come_back(client: Client) -> None:
    result, events = await run_probe(client, fail=False)
    assert result == "first+second"
    assert events.count("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED") == 2
    assert events.count("EVENT_TYPE_ACTIVITY_TASK_COMPLETED") == 2


async def test_a_failure_is_raised_only_once_the_other_step_ended(client: Client) -> None:
    result, events = await run_probe(client, fail=True)
    assert result == "raised: first failed"
    # The second step's completion is in the history before the run closed: the workflow
    # waited for it after the first failed.
    assert "EVENT_TYPE_ACTIVITY_TASK_COMPLETED" in events
    assert events.index("EVENT_TYPE_ACTIVITY_TASK_FAILED") < events.index(
        "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"
    )
