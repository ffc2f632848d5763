"""The approval gate: an Update with a validator, carrying who approved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
from hybridops.contracts.base import ApprovalInput, ApprovalRecord, Progress
from hybridops.contracts.failover import FailoverInput
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    assert_failed_over,
    assert_nothing_promoted,
    assert_one_writer,
    can_write,
    dns_points_at,
    eventually,
    fenced,
    role,
    start,
)


async def _waiting(handle) -> bool:  # type: ignore[no-untyped-def]
    prog = await handle.query(PROGRESS_QUERY, result_type=Progress)
    return prog.waiting_for_approval


async def test_gate_waits_then_proceeds_on_approval(client: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.break_site("onprem")
    handle = await start(client, inv, FailoverInput(require_approval=True))
    await eventually("the approval gate", lambda: _waiting(handle))

    # Waiting: nothing touched yet (the gate comes before fencing), not promoted, DNS not moved.
    assert not fenced(lab, "onprem")
    assert role(lab, "azure") == "standby" and role(lab, "gcp") == "standby"
    assert dns_points_at(lab) == "onprem"

    # The validator refuses an approval that names nobody; it leaves no trace.
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(APPROVE_UPDATE, ApprovalInput(by="  "))
    assert await _waiting(handle)
    # An approval out of bounds is refused as the update's failure (never a failed workflow
    # task), naming the field.
    for bad, field in (({"by": "x" * 201}, "by"), ({"by": "ann", "comment": "x" * 1001}, "comment")):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(APPROVE_UPDATE, bad)
        assert field in str(refused.value.cause)
    assert await _waiting(handle)

    record = await handle.execute_update(
        APPROVE_UPDATE, ApprovalInput(by="alice", comment="go"), result_type=ApprovalRecord
    )
    assert record.by == "alice" and record.approved
    result = await handle.result()
    assert result.status == "succeeded"
    assert [(a.by, a.approved) for a in result.approvals] == [("alice", True)]
    gate = next(s for s in result.steps if s.name == "approval")
    assert gate.detail == "approved by alice"

    # Approving a run that is no longer waiting is refused.
    with pytest.raises(Exception, match=r"not waiting|completed|not found"):
        await handle.execute_update(APPROVE_UPDATE, ApprovalInput(by="bob"))
    # The end state: the target the one writable server, DNS at it, onprem fenced.
    assert_failed_over(lab, result.target)


async def test_rejection_compensates(client: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    handle = await start(client, inv, FailoverInput(require_approval=True, only_if_primary_down=False))
    await eventually("the approval gate", lambda: _waiting(handle))
    # The gate comes before fencing: a healthy primary keeps serving while the run waits.
    assert role(lab, "onprem") == "primary" and not fenced(lab, "onprem") and can_write(lab, "onprem")
    await handle.execute_update(APPROVE_UPDATE, ApprovalInput(by="carol", approve=False, comment="not now"))
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert failure.value.cause.details[0]["status"] == "rejected"  # type: ignore[union-attr]
    assert role(lab, "onprem") == "primary" and not fenced(lab, "onprem")
    assert dns_points_at(lab) == "onprem"
    assert assert_one_writer(lab) == "onprem"


async def test_approval_timeout_holds(temporal_env: WorkflowEnvironment, lab: Lab, run_workers) -> None:
    """An hour-long gate, skipped through with the dev server's time skipping. The gate comes
    before the first change, so the run ends ``held``: nothing to undo."""
    inv = lab_inventory(lab)
    client = temporal_env.client  # stamps time skipping on the workflows it starts
    plain = await temporal_env.connect_client(data_converter=pydantic_data_converter)
    await run_workers(plain, inv)
    lab.break_site("onprem")
    handle = await start(client, inv, FailoverInput(require_approval=True, approval_timeout_s=3600))
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    details = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert details["status"] == "held" and details["compensations"] == []
    assert "ApprovalTimeout" in details["error"]
    gate = next(s for s in details["steps"] if s["name"] == "approval")
    assert gate["outcome"] == "failed" and "no approval within 3600 s" in gate["detail"]
    assert not fenced(lab, "onprem") and dns_points_at(lab) == "onprem"
    evidence = json.loads((Path(inv.output_dir) / "failover" / handle.id / "evidence.json").read_text())
    assert evidence["status"] == "held"
    # Nothing promoted: the dead primary stays the only one, and no server is writable.
    assert_nothing_promoted(lab)
