"""One runbook changes the database's topology at a time: the lease (issue 10, item 1).

An alert-started run waits at its gate; meanwhile an operator's run must not promote another
standby. Every ending of the holder gives the lease back, and a holder that cannot (it was
terminated) loses it at the lease's next look.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from hybridops.constants import APPROVE_UPDATE, LEASE_QUERY, PROGRESS_QUERY, TaskQueue, WorkflowType
from hybridops.contracts.base import ApprovalInput, Progress, RunStatus, TargetChoice
from hybridops.contracts.failback import FailbackInput
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.contracts.lease import LeaseHolder
from hybridops.inventory import Inventory, LeaseSettings
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import assert_one_writer, dns_points_at, eventually, role, start


async def _holder(client: Client, inv: Inventory) -> LeaseHolder | None:
    return await client.get_workflow_handle(inv.lease_id()).query(LEASE_QUERY, result_type=LeaseHolder | None)


async def _at_gate(handle: WorkflowHandle[Any, Any]) -> None:
    async def waiting() -> bool:
        return (await handle.query(PROGRESS_QUERY, result_type=Progress)).waiting_for_approval

    await eventually("the approval gate", waiting)


async def test_a_second_run_is_refused_while_the_first_waits(
    client: Client, lab: Lab, run_workers: Any
) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.break_site("onprem")
    first = await start(client, inv, FailoverInput(require_approval=True, requested_by="alert"))
    await _at_gate(first)
    holder = await _holder(client, inv)
    assert holder is not None and holder.workflow_id == first.id and holder.runbook == "failover"

    # The operator's run, while the alert's waits: refused, naming the holder; nothing changed.
    second = await start(client, inv, FailoverInput(target=TargetChoice.GCP))
    with pytest.raises(WorkflowFailureError) as failure:
        await second.result()
    details = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert "LeaseHeld" in details["error"] and first.id in details["error"]
    assert details["lease"]["granted"] is False
    # It read the plan while it asked for the lease (patch failover-plan-with-lease), no more.
    assert [(s["name"], s["outcome"]) for s in details["steps"]] == [("plan", "unchanged")]
    assert role(lab, "gcp") == "standby" and role(lab, "azure") == "standby"

    # A failback is refused too: one lease for every runbook that changes the topology.
    back = await client.start_workflow(
        WorkflowType.FAILBACK.value,
        FailbackInput(require_approval=False),
        id=f"{first.id}-failback",
        task_queue=inv.queue(TaskQueue.CONTROL),
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await back.result()
    assert "LeaseHeld" in failure.value.cause.details[0]["error"]  # type: ignore[union-attr]

    await first.execute_update(APPROVE_UPDATE, ApprovalInput(by="alice", comment="go"))
    result: FailoverResult = await first.result()
    assert result.status == RunStatus.SUCCEEDED and result.lease is not None and result.lease.granted
    assert await _holder(client, inv) is None, "released when the run ended"
    assert assert_one_writer(lab) == result.target and dns_points_at(lab) == result.target


async def test_every_ending_releases_the_lease(client: Client, lab: Lab, run_workers: Any) -> None:
    """Rejection (compensation), cancellation, and a holder terminated without a chance to
    release: the next run gets the lease each time."""
    inv = lab_inventory(lab, lease=LeaseSettings(check_s=1))
    await run_workers(client, inv)
    planned = FailoverInput(require_approval=True, only_if_primary_down=False)

    rejected = await start(client, inv, planned)
    await _at_gate(rejected)
    await rejected.execute_update(APPROVE_UPDATE, ApprovalInput(by="bob", approve=False, comment="no"))
    with pytest.raises(WorkflowFailureError):
        await rejected.result()
    assert await _holder(client, inv) is None

    cancelled = await start(client, inv, planned)
    await _at_gate(cancelled)
    await cancelled.cancel()
    with pytest.raises(WorkflowFailureError):
        await cancelled.result()
    assert await _holder(client, inv) is None

    terminated = await start(client, inv, planned)
    await _at_gate(terminated)
    await terminated.terminate("a human pulled the plug")
    # The next run waits for the lease; the lease notices its holder is gone (check_s: 1 s).
    waiting = await start(client, inv, planned.model_copy(update={"lease_wait_s": 60}))

    async def holds() -> bool:
        h = await _holder(client, inv)
        return h is not None and h.workflow_id == waiting.id

    await eventually("the waiting run to get the lease", holds, timeout=60)
    await _at_gate(waiting)
    await waiting.execute_update(APPROVE_UPDATE, ApprovalInput(by="carol", approve=False, comment="done"))
    with pytest.raises(WorkflowFailureError) as failure:
        await waiting.result()
    # Its plan, read while the lease was held by another, was read again under the lease.
    steps = [s["name"] for s in failure.value.cause.details[0]["steps"]]  # type: ignore[union-attr]
    assert steps[:2] == ["plan", "plan"], steps
    assert await _holder(client, inv) is None
    assert assert_one_writer(lab) == "onprem" and dns_points_at(lab) == "onprem"
