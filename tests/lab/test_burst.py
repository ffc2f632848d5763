"""BurstWorkflow on the real dev server with time skipping (its hold loop waits minutes between
load checks), against the lab: the node pool (lab infra driver), the workloads (the git GitOps
driver on the lab's repository), the traffic share (weighted Route53 records on moto)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from drivers.dns.route53 import Route53Driver
from drivers.infra.lab import LabInfraDriver
from hybridops.constants import STOP_SIGNAL, TaskQueue, WorkflowType
from hybridops.contracts.base import Cloud, RunStatus
from hybridops.contracts.burst import BurstInput, BurstResult, BurstState
from hybridops.inventory import Inventory
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import assert_one_writer, eventually

# Long enough that neither ends a test by surprise while time is skipped.
LONG = {"max_duration_s": 30 * 24 * 3600.0, "budget_cap": 1e7}


async def start(client: Client, inv: Inventory, **fields: Any) -> WorkflowHandle[Any, BurstResult]:
    return await client.start_workflow(
        WorkflowType.BURST.value,
        BurstInput(**{**LONG, **fields}),
        id=f"test-burst-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=BurstResult,
    )


async def state_of(handle: WorkflowHandle[Any, Any]) -> BurstState | None:
    try:
        result: BurstState | None = await handle.query("burst_state", result_type=BurstState)
    except Exception:  # between runs of a continue-as-new
        return None
    return result


async def checks_at_least(handle: WorkflowHandle[Any, Any], n: int) -> bool:
    st = await state_of(handle)
    return st is not None and st.checks >= n


async def world(inv: Inventory) -> dict[str, Any]:
    """The burst's footprint: pool sizes, the weighted record, the desired state in git."""
    from drivers.gitops import make_gitops_driver

    infra = LabInfraDriver(inv.infra)
    dns = Route53Driver(inv.dns)
    gitops = make_gitops_driver(inv.gitops)
    status = {c.value: await gitops.status(inv.burst.apps, c.value) for c in Cloud}
    return {
        "pools": {c.value: await infra.pool_nodes(c) for c in Cloud},
        "weights": await dns.get_weights(inv.burst.record or f"app.{inv.dns.zone}"),
        "deployed": {c: [a.name for a in s.apps if a.synced] for c, s in status.items()},
    }


@pytest.fixture
async def skipping(temporal_env: WorkflowEnvironment) -> Client:
    """A client whose workflows skip time while they wait on timers."""
    return temporal_env.client


@pytest.fixture
async def plain(temporal_env: WorkflowEnvironment) -> Client:
    return await temporal_env.connect_client(data_converter=pydantic_data_converter)


async def test_holds_while_load_is_high_and_scales_in_when_it_drops(
    skipping: Client, plain: Client, lab: Lab, run_workers
) -> None:
    inv = lab_inventory(lab)
    await run_workers(plain, inv)
    lab.set_load(0.9)
    before = await world(inv)
    handle = await start(skipping, inv, target="azure", extra_nodes=3, traffic_share=30)
    await eventually("three load checks", lambda: checks_at_least(handle, 3), timeout=60)
    during = await world(inv)
    assert during["pools"]["azure"] == before["pools"]["azure"] + 3
    assert {k: w for k, (_, w) in during["weights"].items()} == {"onprem": 70, "azure": 30}
    assert set(during["deployed"]["azure"]) == set(inv.burst.apps)

    lab.set_load(0.2)
    result = await handle.result()
    assert result.status == RunStatus.SUCCEEDED and result.ended_because.startswith("load: 0.2 < 0.6")
    assert result.checks >= 4 and result.peak_load == 0.9
    assert result.node_hours > 0 and result.cost_estimate == pytest.approx(result.node_hours * 0.5, rel=1e-3)
    assert [c.name for c in result.compensations] == ["traffic_back", "remove_workloads", "pool_back"]
    after = await world(inv)
    assert after["pools"] == before["pools"] and after["deployed"]["azure"] == []
    assert {k: w for k, (_, w) in after["weights"].items()} == {"onprem": 100}
    assert assert_one_writer(lab) == "onprem"  # a burst never touches the database


async def test_stop_signal_scales_in(skipping: Client, plain: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(plain, inv)
    lab.set_load(0.95)
    handle = await start(skipping, inv)
    await eventually("a load check", lambda: checks_at_least(handle, 1), timeout=60)
    await handle.signal(STOP_SIGNAL, "traffic peak is over")
    result = await handle.result()
    assert result.ended_because == "stopped: traffic peak is over"
    assert result.status == RunStatus.SUCCEEDED and len(result.compensations) == 3
    assert (await world(inv))["pools"][result.target or ""] == 0
    assert assert_one_writer(lab) == "onprem"


async def test_budget_cap_scales_in(skipping: Client, plain: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(plain, inv)
    lab.set_load(0.95)
    # 3 nodes at 0.50 an hour: 0.05 is reached after 2 minutes, at the second or third check.
    handle = await start(skipping, inv, target="azure", budget_cap=0.05, check_interval_s=60)
    result = await handle.result()
    assert result.ended_because.startswith("budget: estimated cost") and result.cost_estimate >= 0.05
    assert result.checks <= 4 and result.status == RunStatus.SUCCEEDED
    assert (await world(inv))["pools"]["azure"] == 0
    assert assert_one_writer(lab) == "onprem"


async def test_a_dns_failure_compensates_everything(
    skipping: Client, plain: Client, lab: Lab, run_workers
) -> None:
    inv = lab_inventory(lab, faults={"set_traffic": "fail:1"})
    await run_workers(plain, inv)
    lab.set_load(0.95)
    before = await world(inv)
    handle = await start(skipping, inv, target="gcp")
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    details: dict[str, Any] = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert details["status"] == "compensated" and "InjectedFault" in details["error"]
    assert [s["name"] for s in details["steps"]][-1] == "shift_traffic"
    assert [c["name"] for c in details["compensations"]] == ["traffic_back", "remove_workloads", "pool_back"]
    after = await world(inv)
    assert after["pools"] == before["pools"] and after["deployed"]["gcp"] == []
    assert {k: w for k, (_, w) in after["weights"].items()} == {"onprem": 100}
    assert assert_one_writer(lab) == "onprem"


async def test_a_long_burst_keeps_its_history_bounded(
    skipping: Client, plain: Client, lab: Lab, run_workers
) -> None:
    inv = lab_inventory(lab)
    await run_workers(plain, inv)
    lab.set_load(0.9)
    handle = await start(skipping, inv, target="azure", checks_per_run=4, check_interval_s=300)

    async def runs_at_least(n: int) -> bool:
        st = await state_of(handle)
        return st is not None and st.runs >= n

    await eventually("three runs (continue-as-new)", lambda: runs_at_least(3), timeout=90)
    lab.set_load(0.1)
    latest = plain.get_workflow_handle(handle.id, result_type=BurstResult)
    result = await latest.result()
    assert result.runs >= 3 and result.checks >= 9 and result.status == RunStatus.SUCCEEDED
    # Each run's history is bounded by checks_per_run, however long the burst.
    first = plain.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    lengths = [len((await h.fetch_history()).events) for h in (first, latest)]
    assert all(n < 120 for n in lengths), lengths
    # The last run undid what the first did: its saga is built from the state carried over.
    assert [c.name for c in result.compensations] == ["traffic_back", "remove_workloads", "pool_back"]
    after = await world(inv)
    assert after["pools"]["azure"] == 0 and after["deployed"]["azure"] == []
    assert {k: w for k, (_, w) in after["weights"].items()} == {"onprem": 100}
    # Every run's plan is a recorded step, the first run's before the scale-out.
    names = [s.name for s in result.steps]
    assert names[:2] == ["plan", "gather_signals"] and names.count("plan") == result.runs, names
    assert assert_one_writer(lab) == "onprem"


def forged_state(**fields: Any) -> BurstState:
    """A state that, at scale-in, would point the application's record at an address of the
    starter's choosing and size the pool as it says."""
    return BurstState(
        started_at=datetime.now(UTC),
        target="azure",
        cloud=Cloud.AZURE,
        pool_before=7,
        pool_after=50,
        weights_before={"onprem": ("203.0.113.66", 100)},
        **fields,
    )


async def assert_refused_for_state(handle: WorkflowHandle[Any, BurstResult]) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=60)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InputError" and cause.non_retryable
    assert cause.message.startswith("state: "), cause.message


async def test_a_start_with_state_is_refused_and_changes_nothing(
    skipping: Client, plain: Client, lab: Lab, run_workers
) -> None:
    inv = lab_inventory(lab)
    await run_workers(plain, inv)
    lab.set_load(0.1)  # a burst that was let in would scale in at its first check
    before = await world(inv)
    handle = await start(skipping, inv, target="azure", state=forged_state())
    await assert_refused_for_state(handle)
    events = [e.event_type for e in (await handle.fetch_history()).events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events
    assert EventType.EVENT_TYPE_MARKER_RECORDED not in events  # no local activity either
    assert await world(inv) == before
    assert not (inv.output_dir / "burst").exists()
    assert assert_one_writer(lab) == "onprem"


async def test_a_burst_that_needs_approval_waits_before_scaling(
    client: Client, lab: Lab, run_workers
) -> None:
    """The policy's approvals hold in every runbook (issue 10): a burst that requires approval
    scales nothing until it is approved; rejected, it ends with nothing to undo."""
    from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
    from hybridops.contracts.base import ApprovalInput, Progress

    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.set_load(0.9)
    before = await world(inv)
    handle = await start(client, inv, target="azure", require_approval=True)

    async def waiting() -> bool:
        return (await handle.query(PROGRESS_QUERY, result_type=Progress)).waiting_for_approval

    await eventually("the burst's approval gate", waiting)
    assert await world(inv) == before, "nothing scaled while it waits"
    await handle.execute_update(APPROVE_UPDATE, ApprovalInput(by="erin", approve=False, comment="not today"))
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert await world(inv) == before
    assert assert_one_writer(lab) == "onprem"
