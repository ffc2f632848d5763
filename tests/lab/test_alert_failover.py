"""End to end on real monitoring: the onprem primary stops; the site agents see it take no
write; the global Prometheus raises HybridOpsPrimaryNotTakingWrites; Alertmanager calls
``hybridops serve alerts``; exactly one FailoverWorkflow starts and, under a policy that asks
for approval (production's), waits for it; Alertmanager's resends start nothing new; after
approval it fails over to the target the policy chose, on signals read from Prometheus, and
records the alert's resolution in its evidence."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from temporalio.client import Client, WorkflowExecution

from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY, TaskQueue, WorkflowType
from hybridops.contracts.base import ApprovalInput, Progress, RunStatus, StepOutcome
from hybridops.contracts.failover import FailoverResult
from hybridops.lab import Lab
from hybridops.policy import load_policy
from tests.conftest import lab_inventory
from tests.lab.helpers import agents_watching, assert_one_writer, dns_points_at, eventually, fenced, role


def receiver_lines(lab: Lab, word: str) -> list[str]:
    log = lab.log("alert-receiver")
    return [line for line in log.read_text().splitlines() if word in line] if log.exists() else []


async def test_primary_down_alert_starts_one_failover_that_waits_for_approval(
    client: Client, monitored_lab: Lab, run_workers
) -> None:
    lab = monitored_lab
    policy = load_policy(lab.policy_file)
    policy.approval.failover = True  # as production's policy: a human approves
    policy_file = lab.root / "policy-approval.yaml"
    policy_file.write_text(yaml.safe_dump(policy.model_dump(mode="json")))
    inv = lab_inventory(lab, policy=policy_file)
    await run_workers(client, inv, agents=False)
    await agents_watching(lab)  # the observers: each site's agent, a process of its own
    queue = inv.queue(TaskQueue.CONTROL)
    query = f'WorkflowType = "{WorkflowType.FAILOVER.value}" AND TaskQueue = "{queue}"'

    async def runs() -> list[WorkflowExecution]:
        return [w async for w in client.list_workflows(query)]

    assert await runs() == []
    lab.kill_site("onprem")

    started = await eventually("an alert-started failover", runs, timeout=90)
    handle = client.get_workflow_handle(started[0].id, result_type=FailoverResult)
    assert handle.id.startswith("alert-primary-not-taking-writes-")

    async def waiting() -> bool:
        progress = await handle.query(PROGRESS_QUERY, result_type=Progress)
        return progress.waiting_for_approval

    await eventually("the run waiting for approval", waiting, timeout=30)
    # Nothing irreversible before approval: the target is still a standby, DNS unchanged.
    assert (
        dns_points_at(lab) == "onprem" and role(lab, "azure") == "standby" and role(lab, "gcp") == "standby"
    )

    # Alertmanager keeps resending while the alert fires (repeat_interval 10 s in the lab):
    # each is answered as a duplicate, and still only one run exists.
    async def resent() -> bool:
        return len(receiver_lines(lab, "alert duplicate")) >= 1

    await eventually("a resend answered as a duplicate", resent, timeout=40)
    assert [w.id for w in await runs()] == [handle.id]
    assert len(receiver_lines(lab, "alert started")) == 1

    await handle.execute_update(APPROVE_UPDATE, ApprovalInput(by="oncall", comment="onprem host is gone"))
    result = await handle.result()

    assert result.status == RunStatus.SUCCEEDED
    # The route starts it unattended; the policy asked for the approval.
    assert not result.input.require_approval and result.input.only_if_primary_down
    assert result.decision is not None and result.decision.requires_approval
    assert result.input.requested_by == "alert:primary-not-taking-writes"
    assert [(a.by, a.approved) for a in result.approvals] == [("oncall", True)]
    # The target is the policy's choice, taken on what Prometheus reported.
    decision, signals = result.decision, result.signals
    assert decision is not None and signals is not None and decision.target == result.target
    sources = {s.source for c in signals.candidates for s in c.values.values()}
    assert "prometheus" in sources, signals
    assert not signals.errors, signals.errors
    assert dns_points_at(lab) == result.target and role(lab, result.target or "") == "primary"
    assert fenced(lab, "onprem")
    # With a writable primary again the alert resolved, and the run heard it.
    assert [a.status for a in result.alerts][-1] == "resolved"
    assert result.steps[-1].name == "alert_resolved" and result.steps[-1].outcome == StepOutcome.UNCHANGED
    evidence = json.loads((Path(result.evidence_dir or "") / "evidence.json").read_text())
    assert evidence["details"]["alerts"][-1]["status"] == "resolved"
    # What monitoring said after the cutover, each with its value and threshold: the apps'
    # error rate at the target as Prometheus reports it, within the policy's maximum, and the
    # alert resolved.
    rate, alert = evidence["details"]["health"]
    assert (rate["id"], rate["site"], rate["source"], rate["passed"]) == (
        "apps.error_rate",
        result.target,
        "prometheus",
        True,
    ), rate
    assert (
        isinstance(rate["value"], float) and rate["threshold"] == f"<= {policy.constraints.max_error_rate:g}"
    )
    assert (alert["id"], alert["value"], alert["passed"]) == ("alert.resolved", "resolved", True), alert
    report = (Path(result.evidence_dir or "") / "report.html").read_text()
    assert "Health after the cutover" in report

    # Notifications after the run ended start nothing new.
    assert [w.id for w in await runs()] == [handle.id]
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(monitored_lab)
