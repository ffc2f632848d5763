"""The decide phase in a real run: the policy's decision and its signals in the evidence, a
policy that holds changes nothing, a stale alert changes nothing, and ``hybridops decide``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError

from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.base import RunStatus, TargetChoice
from hybridops.contracts.decision import DecisionType, DrMode
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.inventory import Placement
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    assert_failed_over,
    assert_nothing_promoted,
    assert_one_writer,
    dns_points_at,
    fenced,
    role,
    start,
)


def untouched(lab: Lab) -> None:
    assert dns_points_at(lab) == "onprem"
    assert role(lab, "azure") == "standby" and role(lab, "gcp") == "standby"
    assert not fenced(lab, "onprem")
    assert not (lab.root / "clusters" / "azure.json").exists()
    assert not (lab.root / "clusters" / "gcp.json").exists()
    assert assert_one_writer(lab) == "onprem"


async def failed(handle: Any) -> dict[str, Any]:
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    details: dict[str, Any] = failure.value.cause.details[0]  # type: ignore[union-attr]
    return details


async def test_decision_and_signals_are_in_the_evidence(client: Client, lab: Lab, run_workers) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.break_site("onprem")
    result: FailoverResult = await (await start(client, inv, {})).result()
    assert result.status == RunStatus.SUCCEEDED
    d = result.decision
    assert d is not None and result.signals is not None
    assert d.decision_id.startswith("dec-") and d.dr_mode == DrMode.WARM_PROMOTE and not d.requires_approval
    assert result.target == d.target and {c.site for c in d.candidates} == {"azure", "gcp"}
    # Without monitoring, the budget comes from the inventory's static values; the database's
    # own view (assess) gives standby_up and lag. The cheaper cloud wins on equal lag.
    gcp = next(c for c in result.signals.candidates if c.site == "gcp")
    assert gcp.values["credits"].source == "static" and gcp.values["standby_up"].source == "postgres"
    assert d.target == "gcp", d.rationale
    report = (Path(result.evidence_dir or "") / "report.md").read_text()
    assert "## Decision" in report and d.decision_id in report and "## Signals at" in report
    assert_failed_over(lab, result.target)


async def test_a_policy_that_holds_changes_nothing(
    client: Client, lab: Lab, run_workers, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"constraints": {"min_credits": 10_000}, "budget": {"mode": "enforce"}}))
    inv = lab_inventory(lab, policy=policy)
    await run_workers(client, inv)
    lab.break_site("onprem")
    details = await failed(await start(client, inv, {}))
    assert "PolicyHold" in details["error"] and "credits 5000 < 10000" in details["error"]
    assert details["status"] == "held"  # ended before changing anything: nothing was compensated
    assert details["decision"]["decision_type"] == DecisionType.HOLD.value
    assert details["compensations"] == [] and not details["point_of_no_return_passed"]
    # Read-only steps only; on placement queues the readiness is read with the servers (patch
    # failover-readiness-with-assess).
    assert [s["name"] for s in details["steps"]] == ["plan", "assess", "gather_signals", "readiness"]
    assert dns_points_at(lab) == "onprem" and role(lab, "azure") == "standby"
    assert not (lab.root / "clusters" / "azure.json").exists()
    evidence = json.loads(
        (Path(inv.output_dir) / "failover" / details["workflow_id"] / "evidence.json").read_text()
    )
    assert evidence["decision"]["decision_type"] == "hold"
    assert_nothing_promoted(lab)


@pytest.mark.parametrize(
    ("requested_by", "placement"),
    [("unknown", Placement.COLOCATED), ("alert:primary-not-taking-writes", Placement.QUEUES)],
    ids=["a-page", "the-detection-alert"],
)
async def test_a_stale_alert_finds_the_primary_healthy_and_changes_nothing(
    client: Client, lab: Lab, run_workers: Any, requested_by: str, placement: Placement
) -> None:
    """The detection alert's run gives the primary DNS points at only the policy's
    ``detection.confirm_timeout_s`` to answer: a healthy one does, and the run holds."""
    inv = lab_inventory(lab, placement=placement)
    await run_workers(client, inv)
    inp = FailoverInput(only_if_primary_down=True, requested_by=requested_by)
    details = await failed(await start(client, inv, inp))
    assert "PrimaryHealthy" in details["error"] and "onprem" in details["error"]
    assert details["status"] == "held"
    untouched(lab)
    assert role(lab, "onprem") == "primary" and assert_one_writer(lab) == "onprem"


def test_decide_command_prints_the_decision_and_changes_nothing(lab: Lab) -> None:
    inv = lab_inventory(lab)
    env = {**os.environ, **lab.env(), "HYBRIDOPS_INVENTORY": str(lab.root / "inventory.yaml")}
    hybridops = [sys.executable, "-m", "hybridops.cli"]
    out = subprocess.run(
        [*hybridops, "decide", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["decision"]["decision_type"] == "failover" and data["decision"]["old_primary"] == "onprem"
    assert data["decision"]["target"] in ("azure", "gcp")
    assert {c["site"] for c in data["signals"]["candidates"]} == set(inv.sites)
    table = subprocess.run(
        [*hybridops, "decide", "--target", "azure"], env=env, capture_output=True, text=True, timeout=60
    )
    assert table.returncode == 0, table.stderr
    assert "failover -> azure" in table.stdout and "candidates" in table.stdout
    bad = subprocess.run(
        [*hybridops, "decide", "--type", "hold"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "--type" in bad.stdout
    untouched(lab)
    assert role(lab, "onprem") == "primary"


async def test_a_target_that_already_is_the_primary_is_named_and_held(
    client: Client, lab: Lab, run_workers
) -> None:
    """``failover --target azure`` while azure is the primary holds, and says why."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    planned = FailoverInput(target=TargetChoice.AZURE, only_if_primary_down=False)
    first = await (await start(client, inv, planned)).result()
    assert first.status == RunStatus.SUCCEEDED, first.error
    details = await failed(await start(client, inv, planned))
    assert details["status"] == "held" and details["compensations"] == []
    assert "the requested target azure is already the primary" in details["error"], details["error"]
    assert role(lab, "azure") == "primary" and assert_one_writer(lab) == "azure"
    assert dns_points_at(lab) == "azure"


async def test_a_run_that_begins_late_changes_nothing(client: Client, lab: Lab, run_workers) -> None:
    """A run whose first task comes long after its start (no worker, a crash loop) must not
    act on a world that has moved on: here the start is delayed past max_start_delay_s."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.break_site("onprem")
    handle = await client.start_workflow(
        WorkflowType.FAILOVER.value,
        FailoverInput(max_start_delay_s=1),
        id=f"test-late-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        start_delay=timedelta(seconds=2),
    )
    details = await failed(handle)
    assert "StartedTooLate" in details["error"] and details["steps"] == []
    assert (
        dns_points_at(lab) == "onprem" and role(lab, "azure") == "standby" and role(lab, "gcp") == "standby"
    )
    assert_nothing_promoted(lab)


async def test_a_failed_step_is_recorded_as_failed(client: Client, lab: Lab, run_workers) -> None:
    """A step that fails is in the evidence as failed, with its attempt and the error."""
    inv = lab_inventory(lab, faults={"prepare_target": "fail"})
    await run_workers(client, inv)
    lab.break_site("onprem")
    details = await failed(await start(client, inv, {}))
    step = next(s for s in details["steps"] if s["name"] == "prepare_target")
    assert step["outcome"] == "failed" and step["attempts"] == 1 and step["ended_at"] is not None
    assert "InjectedFault" in step["detail"]
    assert_nothing_promoted(lab)
