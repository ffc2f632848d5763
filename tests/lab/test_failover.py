"""FailoverWorkflow on the real dev server against the real lab (PostgreSQL, Route53 API)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHistory

from drivers.infra import make_infra_driver
from hybridops.cli.replayer import make_replayer
from hybridops.constants import TaskQueue
from hybridops.contracts.base import Cloud, RunStatus, StepOutcome, TargetChoice
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.evidence import verify_manifest
from hybridops.inventory import DnsKind
from hybridops.lab import Lab
from hybridops.policy import load_policy
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    assert_one_writer,
    can_write,
    dns_points_at,
    fenced,
    role,
    scheduled_queues,
    start,
    timeline,
)
from workflows.failover import FailoverWorkflow


@pytest.mark.parametrize("target", ["azure", "gcp"])
async def test_failover_to_each_target(client: Client, lab: Lab, run_workers, target: str) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    at = lab.break_site("onprem")

    handle = await start(client, inv, FailoverInput(target=TargetChoice(target), incident_started_at=at))
    result: FailoverResult = await handle.result()

    assert result.status == RunStatus.SUCCEEDED
    assert result.target == target
    assert dns_points_at(lab) == target
    assert role(lab, target) == "primary" and can_write(lab, target)
    assert timeline(lab, target) == 2
    assert fenced(lab, "onprem") and role(lab, "onprem") == "down"
    other = "gcp" if target == "azure" else "azure"
    assert role(lab, other) == "standby"
    assert result.point_of_no_return_passed and result.rto_seconds is not None and result.rto_seconds > 0
    names = [s.name for s in result.steps]
    # onprem's server is dead, its agent (its host) alive: the agent marks its data directory
    # (an unverified fence), and the control worker isolates it (the agent holds no infra
    # credentials). The readiness it starts from is read with the servers on placement queues
    # (patch failover-readiness-with-assess; none ran here).
    assert names[:8] == [
        "plan",
        "assess",
        "gather_signals",
        "readiness",
        "prepare_target",
        "fence_old_primary",
        "isolate_old_primary",
        "promote",
    ]
    assert result.readiness is not None and not result.readiness.found
    # Verify resolved the name as a client does: over the DNS protocol on BIND, through the
    # API only on moto's Route53, which answers no DNS query (and says so).
    verify = next(s for s in result.steps if s.name == "verify")
    how = "DNS query to " if inv.dns.driver == DnsKind.RFC2136 else "route53 API at http://"
    assert f"resolved to {lab.ip(target)} by {how}" in verify.detail, verify.detail
    # Monitoring after the cutover: no source reports the apps' error rate in a lab without
    # monitoring, and no alert started this run: both recorded, as unknown, not as passed.
    assert [(c.id, c.site, c.passed) for c in result.health] == [
        ("apps.error_rate", target, None),
        ("alert.resolved", None, None),
    ]
    assert result.health[0].detail.startswith(f"no source reports error_rate for {target}")
    health = next(s for s in result.steps if s.name == "check_health")
    assert health.detail.startswith(f"apps.error_rate: no source reports error_rate for {target}"), health
    assert result.fence is not None and result.fence.token is None and result.fence.isolated
    assert all(s.outcome != StepOutcome.FAILED for s in result.steps)
    assert all(s.attempts >= 1 and s.ended_at is not None for s in result.steps)

    # Evidence: every file, a manifest that matches, and a history that replays cleanly.
    folder = Path(inv.output_dir) / "failover" / handle.id
    assert {p.name for p in folder.iterdir()} >= {
        "evidence.json",
        "report.md",
        "report.html",
        "history.json",
        "manifest.json",
    }
    assert verify_manifest(folder) == []
    evidence = json.loads((folder / "evidence.json").read_text())
    for key in ("status", "target", "decision", "steps", "compensations", "approvals", "rto", "rpo"):
        assert key in evidence, key
    assert evidence["status"] == "succeeded" and evidence["rpo"]["method"] in ("ledger", "lag")
    # The RTO: against the policy's objective, split into detection, decision, execution and
    # reconnect, which add up to it (no writer here: it counts from the incident).
    rto = evidence["rto"]
    assert rto["objective_s"] is not None and rto["passed"] == (rto["seconds"] <= rto["objective_s"])
    assert datetime.fromisoformat(rto["since"]) == at
    split = rto["split"]
    assert split["execution_s"] > 0 and split["reconnect_s"] == 0
    assert abs(sum(v for v in split.values() if v is not None) - rto["seconds"]) <= 0.005, split
    assert evidence["rpo"]["objective_s"] is not None
    history = WorkflowHistory.from_json(handle.id, (folder / "history.json").read_text())
    await make_replayer([FailoverWorkflow]).replay_workflow(history)
    # Each step that touches a server ran on that site's agent; the safety rules across sites
    # on the control worker's reader queue right before.
    queues = scheduled_queues(history)
    assert queues["fence_primary"] == {inv.site_queue("onprem")}
    assert queues["promote_standby"] == {inv.site_queue(target)}
    assert queues["check_promotion"] == {inv.queue(TaskQueue.DB)}
    assert queues["isolate_site"] == {inv.queue(TaskQueue.INFRA)}
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


async def test_empty_input_as_from_the_ui(client: Client, lab: Lab, run_workers) -> None:
    """``{}`` as the UI sends it: every field defaulted; target auto picks a standby."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.break_site("onprem")
    handle = await start(client, inv, {})
    result = await handle.result()
    assert result.status == RunStatus.SUCCEEDED
    assert result.input == FailoverInput()
    assert result.target in ("azure", "gcp") and dns_points_at(lab) == result.target
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


@pytest.mark.parametrize(
    ("arg", "field"),
    [
        ({"target": "aws"}, "target"),
        ({"require_approval": "perhaps"}, "require_approval"),
        ({"approval_timeout_s": "soon"}, "approval_timeout_s"),
        # Past any sane gate: timedelta(seconds=1e15) would overflow at the gate, after fencing.
        ({"require_approval": True, "approval_timeout_s": 1e15}, "approval_timeout_s"),
        ({"reason": "x" * 5000}, "reason"),
        ({"tagret": "azure"}, "tagret"),
    ],
)
async def test_bad_input_fails_at_once_and_changes_nothing(
    client: Client, lab: Lab, run_workers, arg: dict[str, object], field: str
) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    handle = await start(client, inv, arg)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert field in str(failure.value.cause)
    desc = await handle.describe()
    assert desc.status == WorkflowExecutionStatus.FAILED
    # Failed as a workflow on its first task: no retry loop of failing workflow tasks.
    events = [e async for e in handle.fetch_history_events()]
    assert sum(1 for e in events if e.HasField("workflow_task_failed_event_attributes")) == 0
    assert not any(
        e.HasField("activity_task_scheduled_event_attributes")
        or e.HasField("marker_recorded_event_attributes")
        for e in events
    )
    assert dns_points_at(lab) == "onprem" and role(lab, "onprem") == "primary"
    assert not fenced(lab, "onprem")
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


async def test_failure_before_promotion_compensates(client: Client, lab: Lab, run_workers) -> None:
    """Planned failover from a live primary, its target's pool scaled up for it (the policy's
    failover.nodes); promotion fails: everything is undone, the pool back to its size."""
    policy = load_policy(lab.policy_file)
    policy.failover.nodes = {"azure": 3}
    policy_file = lab.root / "policy-failover-nodes.yaml"
    policy_file.write_text(yaml.safe_dump(policy.model_dump(mode="json")))
    infra = make_infra_driver(lab.inventory().infra)
    assert await infra.pool_nodes(Cloud.AZURE) == 0
    inv = lab_inventory(lab, policy=policy_file, faults={"promote_standby": "fail"})
    await run_workers(client, inv)
    handle = await start(client, inv, FailoverInput(target=TargetChoice.AZURE, only_if_primary_down=False))
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    details = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert details["status"] == "compensated"
    assert "InjectedFault" in details["error"]
    assert [c["name"] for c in details["compensations"]] == ["unfence_primary", "release_target"]
    assert all(c["outcome"] == "changed" for c in details["compensations"])
    # The lab is as it was: onprem running, writable, unmarked; DNS at onprem; azure a standby.
    assert dns_points_at(lab) == "onprem"
    assert role(lab, "onprem") == "primary" and can_write(lab, "onprem")
    assert not (lab.data_dir("onprem") / "hybridops.fence.json").exists()
    assert not (lab.data_dir("onprem") / "standby.signal").exists()
    assert role(lab, "azure") == "standby"
    assert not (lab.root / "clusters" / "azure.json").exists()
    prepare = next(s for s in details["steps"] if s["name"] == "prepare_target")
    assert "its pool at 3 nodes or more" in prepare["detail"], prepare
    assert await infra.pool_nodes(Cloud.AZURE) == 0, "the pool back to its size before the run"
    assert list((lab.root / "clusters").glob("azure-sized-by-*")) == []
    evidence = json.loads((Path(inv.output_dir) / "failover" / handle.id / "evidence.json").read_text())
    assert evidence["status"] == "compensated"
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)
