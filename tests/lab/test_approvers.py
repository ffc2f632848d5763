"""Approvals are authorization (issue 10, item 4): the caller's identity comes from its client,
never from what it types; the policy names who may approve; whoever started a run may not
approve it; an approval names the decision it approves. Refused attempts are recorded."""

from __future__ import annotations

import base64
import json
from typing import Any

from temporalio.testing import WorkflowEnvironment

from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
from hybridops.contracts.base import ApprovalInput, ApprovalRecord, Progress, RunStatus
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.lab import Lab
from tests.conftest import identified_client, lab_inventory
from tests.lab.helpers import assert_one_writer, eventually, start

POLICY = """
approvers:
  failover: ["group:sre"]
  groups:
    sre: ["cert:CN=alice,O=corp", "cert:CN=bob,O=corp"]
  allow_self_approval: false
  accept_unauthenticated: false
  require_decision_id: true
"""


async def test_only_a_listed_other_identity_naming_the_decision_approves(
    temporal_env: WorkflowEnvironment, lab: Lab, run_workers: Any
) -> None:
    policy = lab.root / "policy-approvers.yaml"
    policy.write_text(POLICY)
    inv = lab_inventory(lab, policy=policy)
    alice = await identified_client(temporal_env, "cert:CN=alice,O=corp")
    bob = await identified_client(temporal_env, "cert:CN=bob,O=corp")
    mallory = await identified_client(temporal_env, "cert:CN=mallory,O=corp")
    laptop = await identified_client(temporal_env, "os:bob@laptop")
    await run_workers(alice, inv)
    lab.break_site("onprem")
    started = await start(alice, inv, FailoverInput())  # the policy asks approval for {} itself

    async def gate() -> Progress | None:
        prog = await started.query(PROGRESS_QUERY, result_type=Progress)
        return prog if prog.waiting_for_approval else None

    prog = await eventually("the approval gate", gate)
    assert prog is not None and prog.decision_id
    decision = prog.decision_id

    async def attempt(client: Any, **kw: Any) -> ApprovalRecord:
        handle = client.get_workflow_handle(started.id)
        inp = ApprovalInput(by=kw.pop("by", "someone"), **kw)
        record: ApprovalRecord = await handle.execute_update(APPROVE_UPDATE, inp, result_type=ApprovalRecord)
        return record

    # Typing a name proves nothing: mallory typing "bob" is still mallory.
    refused = [
        await attempt(mallory, by="bob", decision_id=decision),
        await attempt(alice, by="alice", decision_id=decision),  # she started it: four eyes
        await attempt(laptop, by="bob", decision_id=decision),  # no certificate: unauthenticated
        await attempt(bob, by="bob", decision_id="0000000000000000"),  # another decision
        await attempt(bob, by="bob"),  # names no decision
    ]
    assert all(r.refused and not r.approved for r in refused)
    assert "mallory" in (refused[0].refused or "") and "approvers.failover" in (refused[0].refused or "")
    assert "four eyes" in (refused[1].refused or "")
    assert "not authenticated" in (refused[2].refused or "")
    assert "decision_id" in (refused[3].refused or "") and "decision_id" in (refused[4].refused or "")
    assert (await gate()) is not None, "refused attempts do not open the gate"

    ok = await attempt(bob, by="bob", comment="onprem is gone, checked", decision_id=decision)
    assert ok.refused is None and ok.approved and ok.identity == "cert:CN=bob,O=corp"
    result: FailoverResult = await started.result()
    assert result.status == RunStatus.SUCCEEDED
    assert [(a.identity, a.decision_id) for a in result.approvals] == [("cert:CN=bob,O=corp", decision)]
    assert [r.identity for r in result.refused_approvals] == [
        "cert:CN=mallory,O=corp",
        "cert:CN=alice,O=corp",
        "os:bob@laptop",
        "cert:CN=bob,O=corp",
        "cert:CN=bob,O=corp",
    ]
    # The refusals are in Temporal's history too (accepted updates, with their results).
    history = _payload_text(json.loads((await started.fetch_history()).to_json()))
    assert "four eyes" in history and "mallory" in history
    assert assert_one_writer(lab) == result.target


def _payload_text(node: Any) -> str:
    """Every payload's data in a history (base64 in its JSON form), decoded and joined."""
    if isinstance(node, dict):
        own = (
            [base64.b64decode(node["data"]).decode(errors="replace")]
            if isinstance(node.get("data"), str)
            else []
        )
        return "\n".join(own + [_payload_text(v) for k, v in node.items() if k != "data"])
    if isinstance(node, list):
        return "\n".join(_payload_text(v) for v in node)
    return ""
