"""Progress from drivers (drivers/progress.py) reaches Temporal only through the activity
boundary: a queued activity heartbeats what its drivers report, a local one does not (it has
no heartbeat), and outside any listener a report goes nowhere."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.common import step_activity
from drivers.progress import report, reporting
from hybridops.contracts.base import ActivityResult


class Acts:
    faults: dict[str, str] = {}

    @step_activity("long_step")  # type: ignore[arg-type]
    async def long_step(self) -> ActivityResult:
        report({"done": 1})
        # A driver's helper task and thread report too: the listener follows the context.
        await asyncio.create_task(asyncio.to_thread(report, {"done": 2}))
        return ActivityResult(changed=True)


@pytest.mark.parametrize(("is_local", "expected"), [(False, [{"done": 1}, {"done": 2}]), (True, [])])
async def test_a_queued_activity_heartbeats_its_drivers_progress(is_local: bool, expected: list[Any]) -> None:
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, is_local=is_local)
    env.on_heartbeat = lambda *details: beats.append(details[0])
    result = await env.run(Acts().long_step)
    assert result.changed and result.attempt == env.info.attempt
    assert beats == expected


def test_a_report_without_a_listener_goes_nowhere_and_listeners_nest() -> None:
    report({"lost": True})  # no listener: no error
    outer: list[Any] = []
    inner: list[Any] = []
    with reporting(outer.append):
        report(1)
        with reporting(inner.append):
            report(2)
        report(3)
    report(4)
    assert (outer, inner) == ([1, 3], [2])
