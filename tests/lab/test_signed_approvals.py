"""Signed approvals (issue 20, item 5): with ``approvers.require_signature`` an approval counts
only when signed by an allowed signer's SSH key for this run, this decision and this verdict,
recently, and once. The header identity is a claim. Each refused attempt is recorded and
changes nothing; ``verify_approvals`` re-verifies the run's approvals offline. A break-glass
override of a safety rule is an approval too: signed, or refused and recorded. One lab for the
module, reset between cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from temporalio.testing import WorkflowEnvironment

from hybridops.audit.approvals import verify_approvals
from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
from hybridops.contracts.base import ApprovalInput, ApprovalRecord, Progress, RunStatus, TargetChoice
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.lab import Lab
from hybridops.policy import parse_policy
from hybridops.signing import approval_message
from hybridops.sshkeygen import make_key, sign
from tests.conftest import identified_client, lab_inventory
from tests.lab.helpers import assert_one_writer, dns_points_at, eventually, fenced, role, start
from tests.lab.test_cli_exit_codes import cli


def signed_policy(lab: Lab, **approvers: Any) -> dict[str, Any]:
    """A policy that requires signatures, alice's and bob's lab keys its signers."""
    keys = {name: lab.approver_key(name) for name in ("alice", "bob")}
    return {
        "approvers": {
            "failover": ["ssh:alice", "ssh:bob"],
            "require_signature": True,
            "require_decision_id": True,
            "signature_max_age_s": 600,
            "signers": {
                name: {
                    "key": key.with_name(key.name + ".pub").read_text().strip(),
                    "identities": [f"cert:CN={name},O=corp"],
                }
                for name, key in keys.items()
            },
            **approvers,
        }
    }


async def test_only_a_fresh_signature_by_an_allowed_key_for_this_run_approves(
    temporal_env: WorkflowEnvironment, module_lab: Lab, run_workers: Any
) -> None:
    lab = module_lab
    keys = {name: lab.approver_key(name) for name in ("alice", "bob")}
    mallory_key = lab.root / "mallory-key"
    make_key(mallory_key, "mallory")
    policy_data = signed_policy(lab)
    policy = lab.root / "policy-signed.yaml"
    policy.write_text(yaml.safe_dump(policy_data))
    inv = lab_inventory(lab, policy=policy)
    alice = await identified_client(temporal_env, "cert:CN=alice,O=corp")
    bob = await identified_client(temporal_env, "cert:CN=bob,O=corp")
    mallory_as_bob = await identified_client(temporal_env, "cert:CN=bob,O=corp")
    await run_workers(alice, inv)
    lab.break_site("onprem")
    started = await start(alice, inv, FailoverInput())

    async def gate() -> Progress | None:
        prog = await started.query(PROGRESS_QUERY, result_type=Progress)
        return prog if prog.waiting_for_approval else None

    prog = await eventually("the approval gate", gate, timeout=120)
    assert prog is not None and prog.decision_id
    decision = prog.decision_id
    run = (await started.describe()).run_id

    def signed(key: Any, **changes: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "workflow_id": started.id,
            "run_id": run,
            "decision_id": decision,
            "approve": True,
            "override": None,
            "signed_at": datetime.now(UTC).replace(microsecond=0),
        }
        fields.update(changes)
        return {"signature": sign(approval_message(**fields), key), "signed_at": fields["signed_at"]}

    async def attempt(client: Any, **kw: Any) -> ApprovalRecord:
        inp = ApprovalInput(by=kw.pop("by", "bob"), decision_id=decision, **kw)
        handle = client.get_workflow_handle(started.id)
        record: ApprovalRecord = await handle.execute_update(APPROVE_UPDATE, inp, result_type=ApprovalRecord)
        return record

    alice_sig = signed(keys["alice"])
    expected = [
        # A header claiming bob, without bob's signature.
        (await attempt(mallory_as_bob), "unsigned"),
        # Bob's key, but for another run, another decision, another verdict.
        (await attempt(bob, **signed(keys["bob"], workflow_id="test-failover-other")), "does not verify"),
        (await attempt(bob, **signed(keys["bob"], run_id="another-run")), "does not verify"),
        (await attempt(bob, **signed(keys["bob"], decision_id="dec-0000000000000000")), "does not verify"),
        (await attempt(bob, **signed(keys["bob"], approve=False)), "does not verify"),
        # A key that is not an allowed signer's, and one signed too long ago.
        (await attempt(mallory_as_bob, **signed(mallory_key)), "not in approvers.signers"),
        (
            await attempt(bob, **signed(keys["bob"], signed_at=datetime.now(UTC) - timedelta(hours=1))),
            "expired",
        ),
        # Alice's own signature: she started the run (four eyes knows her by her identities).
        (await attempt(alice, **alice_sig), "four eyes"),
        # The same signature again, by anyone: replayed.
        (await attempt(bob, **alice_sig), "replayed"),
    ]
    for record, why in expected:
        assert record.refused and why in record.refused and not record.approved, (why, record.refused)
        assert record.signer in (None, "ssh:alice")
    # Nothing changed: the run still waits, nothing fenced, DNS where it was.
    assert (await gate()) is not None
    assert not fenced(lab, "onprem") and dns_points_at(lab) == "onprem"

    ok = await attempt(bob, comment="checked", **signed(keys["bob"]))
    assert (
        ok.refused is None and ok.approved and ok.signer == "ssh:bob" and ok.identity == "cert:CN=bob,O=corp"
    )
    result: FailoverResult = await started.result()
    assert result.status == RunStatus.SUCCEEDED
    assert [(a.signer, a.decision_id) for a in result.approvals] == [("ssh:bob", decision)]
    assert len(result.refused_approvals) == len(expected)
    assert assert_one_writer(lab) == result.target
    # The private keys are nowhere in the history: only signatures.
    history = await started.fetch_history()
    assert "PRIVATE KEY" not in history.to_json()

    # Offline, from the history and the policy: the one approval verifies, the refused
    # attempts are reported as refused (the forged ones fail again).
    checks = verify_approvals(history, parse_policy(policy_data))
    assert [(c.signer, c.ok) for c in checks if c.approved] == [("ssh:bob", True)]
    refused = [c for c in checks if not c.approved]
    assert len(refused) == len(expected)
    assert not any(c.ok for c in refused[1:7]), "forged, foreign, expired signatures fail again offline"
    # The same through `hybridops audit verify`: the evidence matches and bob's approval verifies.
    ran = await cli(lab, "audit", "verify", started.id, "--policy", str(policy), "--json")
    assert ran.code == 0, ran.out + ran.err
    verdict = json.loads(ran.out)
    assert verdict["ok"] and [a["signer"] for a in verdict["approvals"] if a["counted"]] == ["ssh:bob"]
    # Against a policy that no longer lists bob's key, his counted approval is a finding: exit 1.
    other = lab.root / "policy-without-bob.yaml"
    del policy_data["approvers"]["signers"]["bob"]
    other.write_text(yaml.safe_dump(policy_data))
    ran = await cli(lab, "audit", "verify", started.id, "--policy", str(other))
    assert ran.code == 1 and "FAILS" in ran.out, ran.out + ran.err


async def test_a_break_glass_override_counts_only_when_signed_for_its_rule(
    temporal_env: WorkflowEnvironment, module_lab: Lab, run_workers: Any
) -> None:
    """gcp does not answer and is not fenced: promoting azure is blocked by ``roles_known``
    until an allowed signer of ``approvers.override`` overrides that rule. Unsigned, signed for
    another rule or as a plain approval, by an unknown key or by someone the override list does
    not name: each refused, recorded, and nothing promoted."""
    lab = module_lab
    keys = {name: lab.approver_key(name) for name in ("alice", "bob")}
    mallory_key = lab.root / "mallory-key"
    make_key(mallory_key, "mallory")
    policy_data = signed_policy(lab, override=["ssh:bob"])
    policy_data["approval"] = {"failover": False}  # no gate before fencing: only break glass
    policy = lab.root / "policy-break-glass.yaml"
    policy.write_text(yaml.safe_dump(policy_data))
    inv = lab_inventory(lab, policy=policy)
    carol = await identified_client(temporal_env, "cert:CN=carol,O=corp")
    alice = await identified_client(temporal_env, "cert:CN=alice,O=corp")
    bob = await identified_client(temporal_env, "cert:CN=bob,O=corp")
    mallory_as_bob = await identified_client(temporal_env, "cert:CN=bob,O=corp")
    await run_workers(carol, inv)
    lab.kill_site("gcp")
    lab.break_site("onprem")
    started = await start(carol, inv, FailoverInput(target=TargetChoice.AZURE))

    async def blocked() -> Progress | None:
        prog = await started.query(PROGRESS_QUERY, result_type=Progress)
        return prog if prog.blocked_by is not None else None

    prog = await eventually("the promotion blocked by a safety rule", blocked, timeout=120)
    assert prog is not None and prog.blocked_by is not None and prog.blocked_by.rule == "roles_known"
    decision, run = prog.decision_id, (await started.describe()).run_id
    why = "gcp's host is powered off (INC-7)"

    def signed(key: Any, **changes: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "workflow_id": started.id,
            "run_id": run,
            "decision_id": decision,
            "approve": True,
            "override": "roles_known",
            "signed_at": datetime.now(UTC).replace(microsecond=0),
        }
        fields.update(changes)
        return {"signature": sign(approval_message(**fields), key), "signed_at": fields["signed_at"]}

    async def attempt(client: Any, **kw: Any) -> ApprovalRecord:
        inp = ApprovalInput(
            by=kw.pop("by", "bob"), decision_id=decision, override="roles_known", comment=why, **kw
        )
        handle = client.get_workflow_handle(started.id)
        record: ApprovalRecord = await handle.execute_update(APPROVE_UPDATE, inp, result_type=ApprovalRecord)
        return record

    expected = [
        (await attempt(mallory_as_bob), "unsigned"),
        # Bob's key, signed to override another rule, or as an approval at the gate.
        (await attempt(bob, **signed(keys["bob"], override="single_writer")), "does not verify"),
        (await attempt(bob, **signed(keys["bob"], override=None)), "does not verify"),
        (await attempt(mallory_as_bob, **signed(mallory_key)), "not in approvers.signers"),
        # Alice's signature verifies, but approvers.override names bob only.
        (await attempt(alice, by="alice", **signed(keys["alice"])), "may not override a safety rule"),
    ]
    for record, why_refused in expected:
        assert record.refused and why_refused in record.refused and not record.approved, (
            why_refused,
            record.refused,
        )
    # Nothing changed: still blocked, azure not promoted, DNS where it was.
    assert (await blocked()) is not None and role(lab, "azure") == "standby"
    assert dns_points_at(lab) == "onprem"

    ok = await attempt(bob, **signed(keys["bob"]))
    assert ok.refused is None and ok.approved and ok.signer == "ssh:bob" and ok.override == "roles_known"
    result: FailoverResult = await started.result()
    assert result.status == RunStatus.SUCCEEDED
    assert [(a.signer, a.override) for a in result.approvals] == [("ssh:bob", "roles_known")]
    assert len(result.refused_approvals) == len(expected)
    gate = next(s for s in result.steps if s.name == "override_roles_known")
    assert "bob" in gate.detail and "INC-7" in gate.detail
    assert assert_one_writer(lab) == "azure"

    # Offline: the override verifies as bob's; the refused attempts are recorded as refused.
    ran = await cli(lab, "audit", "verify", started.id, "--policy", str(policy), "--json")
    assert ran.code == 0, ran.out + ran.err
    verdict = json.loads(ran.out)
    counted = [a for a in verdict["approvals"] if a["counted"]]
    assert verdict["ok"] and [(a["signer"], a["ok"]) for a in counted] == [("ssh:bob", True)]
    assert len([a for a in verdict["approvals"] if not a["counted"]]) == len(expected)
