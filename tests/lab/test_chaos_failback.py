"""The chaos matrix of failback (issue 9, "Never two writers"), on the real lab.

Each case fails over to azure first, then fails back home with the worker SIGKILLed once after
the first call of one failback step (the fault is disarmed during the failover, whose steps of
the same name would otherwise fire it); the worker is restarted whenever it dies. The sampler
watches the whole case (the switchover pauses azure before onprem is promoted: never two
writers), which ends in ``assert_one_writer`` with onprem the one writable server.
"""

from __future__ import annotations

import pytest
from temporalio.client import Client

from activities.common import crash_mark
from hybridops.constants import Runbook
from hybridops.contracts.base import RunStatus, TargetChoice
from hybridops.contracts.failback import FailbackInput
from hybridops.contracts.failover import FailoverInput
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.chaos import (
    FAILBACK_STEPS,
    assert_case,
    assert_starting_topology,
    finish,
    highest_timeline,
    kept_worker,
    start_run,
    writes_on,
)
from tests.lab.sampler import WritableSampler


@pytest.mark.parametrize("step", FAILBACK_STEPS)
async def test_worker_killed_after_each_step(client: Client, module_lab: Lab, step: str) -> None:
    lab = module_lab
    assert_starting_topology(lab)
    inv = lab_inventory(lab, faults={step: "crash"})
    mark = crash_mark(lab.faults_dir, step)
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text("disarmed during the failover\n")  # as if it had fired
    with WritableSampler(lab) as sampler:
        async with kept_worker(lab) as workers:
            lab.start_writer()
            await writes_on(lab, "onprem")
            at = lab.break_site("onprem")
            failover = await finish(
                await start_run(
                    client,
                    inv,
                    Runbook.FAILOVER,
                    FailoverInput(target=TargetChoice.AZURE, incident_started_at=at),
                ),
                Runbook.FAILOVER,
            )
            assert failover.status == RunStatus.SUCCEEDED, failover.error
            await writes_on(lab, "azure")
            assert workers.deaths == []
            mark.unlink()  # armed: the failback's first call of the step fires it
            start_tl = highest_timeline(lab)
            failback = await finish(
                await start_run(client, inv, Runbook.FAILBACK, FailbackInput(require_approval=False)),
                Runbook.FAILBACK,
            )
    assert workers.deaths == [-9], f"the crash fault after {step} fired {workers.deaths}"
    out = assert_case(lab, inv, [failover, failback], start_tl, sampler)
    assert out is not None and out.writer == "onprem"
