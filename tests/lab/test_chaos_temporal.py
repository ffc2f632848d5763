"""The Temporal server killed (SIGKILL) and restarted mid-run (issue 9's chaos matrix).

This needs a server that keeps its state on disk, so not the session's in-memory one: the lab
starts its own dev server (``Lab.start_temporal``: SQLite file under the lab's root, a port of
its own), and the same file is reopened after the kill.
"""

from __future__ import annotations

import asyncio
import os
import signal

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from hybridops.constants import Runbook
from hybridops.contracts.base import TargetChoice
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.chaos import (
    assert_case,
    assert_starting_topology,
    finish,
    highest_timeline,
    kept_worker,
    start_run,
    writes_on,
)
from tests.lab.helpers import dns_points_at, eventually
from tests.lab.sampler import WritableSampler


async def _connect(lab: Lab) -> Client:
    return await Client.connect(f"127.0.0.1:{lab.ports.temporal}", data_converter=pydantic_data_converter)


async def test_temporal_killed_and_restarted_mid_run(persistent_lab: Lab) -> None:
    lab = persistent_lab
    assert_starting_topology(lab)
    assert (lab.root / "temporal.db").exists(), "the lab's Temporal keeps its state in SQLite"
    # verify_writes is held 4 s: the kill lands after promotion and cutover, inside a step.
    inv = lab_inventory(lab, faults={"verify_writes": "delay:4"})
    client = await _connect(lab)
    with WritableSampler(lab) as sampler:
        async with kept_worker(lab):
            lab.start_writer()
            await writes_on(lab, "onprem")
            start_tl = highest_timeline(lab)
            at = lab.break_site("onprem")
            handle = await start_run(
                client,
                inv,
                Runbook.FAILOVER,
                FailoverInput(target=TargetChoice.AZURE, incident_started_at=at),
            )

            async def dns_moved() -> bool:
                return dns_points_at(lab) == "azure"

            await eventually("the DNS cutover", dns_moved, timeout=90)
            pid = lab.pid("temporal")
            assert pid is not None
            os.killpg(pid, signal.SIGKILL)
            await eventually("Temporal to die", lambda: asyncio.sleep(0, lab.pid("temporal") is None))
            await asyncio.sleep(2)  # the server stays down a moment, across the held step's end
            lab.start_temporal()
            assert lab.pid("temporal") not in (None, pid)
            client = await _connect(lab)
            run = await finish(
                client.get_workflow_handle(handle.id, result_type=FailoverResult), Runbook.FAILOVER
            )
    out = assert_case(lab, inv, [run], start_tl, sampler)
    assert out is not None and out.writer == "azure"
    assert [s["name"] for s in run.result["steps"]].count("promote") == 1
