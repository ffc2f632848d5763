"""A worker killed mid-run: the run completes on a new worker, nothing is done twice."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import UTC, datetime

from temporalio.client import Client

from hybridops.contracts.base import RunStatus
from hybridops.contracts.failover import FailoverInput
from hybridops.lab import Lab
from hybridops.lab.layout import SITES
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    assert_failed_over,
    dns_changes,
    dns_points_at,
    eventually,
    polling,
    spawn_agents,
    spawn_worker,
    start,
    stop_processes,
    timeline,
)


async def test_worker_killed_after_promotion_and_dns(client: Client, lab: Lab) -> None:
    # verify_writes is held for 4 s, so the kill lands after promotion and DNS cutover ran.
    inv = lab_inventory(lab, faults={"verify_writes": "delay:4"})
    before = dns_changes(lab)
    since = datetime.now(UTC)
    agents = spawn_agents(lab)  # the site agents live on: the control worker dies
    first = spawn_worker(lab)
    second: subprocess.Popen[bytes] | None = None
    try:
        await polling(lab, [None, *SITES], since)
        lab.break_site("onprem")
        handle = await start(client, inv, FailoverInput(target="azure"))

        # Seen from outside: DNS moved, so promotion and cutover ran and verify is held.
        # (A query would wait: local activities share the workflow task that answers it.)
        async def dns_moved() -> bool:
            return dns_points_at(lab) == "azure"

        await eventually("the DNS cutover", dns_moved, timeout=60)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        second = spawn_worker(lab)
        result = await handle.result()
    finally:
        stop_processes([first, second, *agents])

    assert result.status == RunStatus.SUCCEEDED
    assert dns_points_at(lab) == "azure"
    assert timeline(lab, "azure") == 2, "promoted exactly once: one new timeline"
    assert dns_changes(lab) - before == 1, "the DNS record was changed exactly once"
    promote = [s for s in result.steps if s.name == "promote"]
    dns = [s for s in result.steps if s.name == "dns_cutover"]
    assert len(promote) == 1 and len(dns) == 1
    # Azure the only writable server (read from the servers), DNS at it, onprem fenced, gcp a
    # standby: the run finished by the second worker left one writer.
    assert result.target == "azure"
    assert_failed_over(lab, "azure")
