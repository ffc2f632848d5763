"""Never two writers: the primary is established from the servers, not from DNS (issue 9).

Each test starts from a state production is really in (a lab that failed over and was
restarted with stale DNS, two writable servers, a server nobody can reach) and ends with
exactly one writable server and DNS pointing at it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError

from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
from hybridops.contracts.base import ApprovalInput, Progress, RunStatus, TargetChoice
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.contracts.sites import FindingKind
from hybridops.inventory import Inventory
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    assert_one_writer,
    dns_points_at,
    eventually,
    fenced,
    promote_by_hand,
    role,
    start,
    timeline,
    writable_sites,
)


def _evidence(result: FailoverResult) -> dict[str, Any]:
    assert result.evidence_dir is not None
    with open(f"{result.evidence_dir}/evidence.json") as f:
        data: dict[str, Any] = json.load(f)
    return data


async def _failed_over_restarted_stale(client: Client, lab: Lab, run_workers: Any) -> Inventory:
    """A failover to azure, the lab restarted, DNS back at onprem (a restored zone, a record
    edited by hand): the state issue 9 was found in."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.break_site("onprem")
    first = await (await start(client, inv, FailoverInput(target=TargetChoice.AZURE))).result()
    assert first.status == RunStatus.SUCCEEDED and assert_one_writer(lab) == "azure"
    # Outside the event loop: the lab's own calls run their own (asyncio.run).
    await asyncio.to_thread(lab.down)
    await asyncio.to_thread(lab.up, temporal=False, worker=False, writer=False, monitoring=False)
    await asyncio.to_thread(lab.point_dns, "onprem")  # stale: DNS says onprem, azure is the primary
    assert writable_sites(lab) == ["azure"] and dns_points_at(lab) == "onprem"
    return inv


async def test_stale_dns_with_a_healthy_primary_is_repaired_not_failed_over(
    client: Client, lab: Lab, run_workers: Any
) -> None:
    """``{}`` from the UI on that lab: azure is healthy, so nothing fails over; DNS, which
    sent clients to a fenced read-only server, is pointed back at azure."""
    inv = await _failed_over_restarted_stale(client, lab, run_workers)
    with pytest.raises(WorkflowFailureError) as failure:
        await (await start(client, inv, {})).result()
    details = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert "PrimaryHealthy" in details["error"] and "repaired" in details["error"]
    assert details["dns_repaired"] is True
    assert any(f["kind"] == "dns_disagrees" for f in details["findings"])
    # The signals (patch failover-signals-with-assess) and, on placement queues, the readiness
    # (patch failover-readiness-with-assess) are read while the servers are assessed; nothing
    # else ran before the repair.
    names = [s["name"] for s in details["steps"]]
    assert names[0] == "plan" and sorted(names[1:-1]) == ["assess", "gather_signals", "readiness"], names
    assert names[-1] == "dns_repair", names
    assert assert_one_writer(lab) == "azure" and timeline(lab, "azure") == 2


async def test_stale_dns_after_a_restart_does_not_make_a_second_primary(
    client: Client, lab: Lab, run_workers: Any
) -> None:
    """The scenario of issue 9, as a planned failover: the run fails over from azure (the
    writable server), not from onprem (where DNS pointed)."""
    inv = await _failed_over_restarted_stale(client, lab, run_workers)
    handle = await start(client, inv, FailoverInput(only_if_primary_down=False))
    result: FailoverResult = await handle.result()

    assert result.status == RunStatus.SUCCEEDED
    assert result.decision is not None and result.decision.old_primary == "azure"
    assert result.target == "gcp"
    assert assert_one_writer(lab) == "gcp"
    assert role(lab, "azure") == "down" and fenced(lab, "azure")
    assert result.fence is not None and result.fence.token is not None, "azure answered: a verified fence"
    assert result.fence.token.timeline == 2
    assert timeline(lab, "gcp") == 3, "promoted once, onto a timeline nobody else wrote"
    found = [f for f in result.findings if f.kind == FindingKind.DNS_DISAGREES]
    assert found and "onprem" in found[0].detail and "azure" in found[0].detail
    evidence = _evidence(result)
    assert any(f["kind"] == "dns_disagrees" for f in evidence["findings"])
    report = Path(result.evidence_dir or "", "report.md").read_text()
    assert "dns_disagrees" in report and "Topology at the start" in report


async def test_a_split_brain_at_the_start_is_fenced_and_its_writes_recorded(
    client: Client, lab: Lab, run_workers: Any
) -> None:
    """Two writable servers before the run: the policy's default keeps the one DNS points at
    (clients write there), fences the other, records both branches, then fails over."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    promote_by_hand(lab, "azure")
    await eventually("azure writable", lambda: _async(writable_sites(lab) == ["onprem", "azure"]))

    result: FailoverResult = await (
        await start(client, inv, FailoverInput(only_if_primary_down=False))
    ).result()

    assert result.status == RunStatus.SUCCEEDED
    assert result.fenced == ["azure"] and fenced(lab, "azure") and role(lab, "azure") == "down"
    assert {d.site for d in result.diverged} == {"onprem", "azure"}
    branch = next(d for d in result.diverged if d.site == "azure")
    assert branch.timeline == 2 and branch.from_lsn and branch.to_lsn
    assert any(f.kind == FindingKind.SPLIT_BRAIN for f in result.findings)
    assert result.target == "gcp" and assert_one_writer(lab) == "gcp"
    assert timeline(lab, "gcp") == 3, "the archive holds azure's timeline 2: gcp takes 3"


async def test_a_split_brain_holds_when_the_policy_says_so(
    client: Client, lab: Lab, run_workers: Any
) -> None:
    policy = lab.root / "policy-hold.yaml"
    policy.write_text("safety:\n  split_brain: hold\n")
    inv = lab_inventory(lab, policy=policy)
    await run_workers(client, inv)
    promote_by_hand(lab, "azure")
    await eventually("azure writable", lambda: _async(len(writable_sites(lab)) == 2))

    with pytest.raises(WorkflowFailureError) as failure:
        await (await start(client, inv, {})).result()
    details = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert "SplitBrain" in details["error"] and "onprem, azure" in details["error"]
    assert "diverged writes" in details["error"]
    assert not any(s["name"].startswith("fence") for s in details["steps"]), "held: nothing fenced"
    assert writable_sites(lab) == ["onprem", "azure"], "held: nothing changed"
    # The human decides onprem's data wins and stops azure.
    lab.kill_site("azure")
    assert assert_one_writer(lab) == "onprem"


async def test_a_blocked_promotion_waits_for_a_named_override(
    client: Client, lab: Lab, run_workers: Any
) -> None:
    """gcp does not answer and is not fenced: it might be a writer nobody sees, so promoting
    azure is blocked by ``roles_known`` until an approver overrides that rule, saying why."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.kill_site("gcp")
    lab.break_site("onprem")
    handle = await start(client, inv, FailoverInput(target=TargetChoice.AZURE))

    async def blocked() -> Progress | None:
        prog = await handle.query(PROGRESS_QUERY, result_type=Progress)
        return prog if prog.blocked_by is not None else None

    prog = await eventually("the promotion blocked by a safety rule", blocked)
    assert prog.blocked_by is not None and prog.blocked_by.rule == "roles_known"
    assert "gcp" in prog.blocked_by.site and role(lab, "azure") == "standby"

    for bad in (
        ApprovalInput(by="alice", comment="go"),  # approves nothing by name
        ApprovalInput(by="alice", override="single_writer", comment="go"),  # not the blocking rule
        ApprovalInput(by="alice", override="roles_known"),  # no why
    ):
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(APPROVE_UPDATE, bad)
    await handle.execute_update(
        APPROVE_UPDATE, ApprovalInput(by="alice", override="roles_known", comment="gcp's host is powered off")
    )
    result: FailoverResult = await handle.result()
    assert result.status == RunStatus.SUCCEEDED
    assert [(a.by, a.override) for a in result.approvals] == [("alice", "roles_known")]
    assert [b.rule for b in result.blocked_by] == ["roles_known"]
    gate = next(s for s in result.steps if s.name == "override_roles_known")
    assert "alice" in gate.detail and "powered off" in gate.detail
    assert assert_one_writer(lab) == "azure"


async def _async(value: bool) -> bool:
    return value
