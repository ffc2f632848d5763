"""Operator control (issue 20 item 4) on the real dev server and lab: pause and resume a
failover between steps (across a worker killed while paused), and after a step fails past the
point of no return the run waits for an operator's retry or skip instead of ending. Each action
is authorized like an approval: refused attempts (unsigned, forged, foreign, replayed, four
eyes) are recorded and change nothing. One lab for the module, reset between cases; each case
ends with one writable server and DNS at it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from hybridops.constants import PAUSE_UPDATE, PROGRESS_QUERY, RETRY_UPDATE, SKIP_UPDATE
from hybridops.contracts.base import (
    OperatorAction,
    OperatorInput,
    OperatorRecord,
    Phase,
    Progress,
    RunStatus,
    StepOutcome,
)
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.lab import Lab
from hybridops.lab.layout import SITES
from hybridops.signing import operator_message
from hybridops.sshkeygen import make_key, sign
from tests.conftest import identified_client, lab_inventory
from tests.lab.helpers import (
    assert_failed_over,
    dns_points_at,
    eventually,
    polling,
    spawn_agents,
    spawn_worker,
    start,
    stop_processes,
)
from tests.lab.test_cli_exit_codes import cli


async def progress(handle: WorkflowHandle[Any, Any]) -> Progress:
    prog: Progress = await handle.query(PROGRESS_QUERY, result_type=Progress)
    return prog


async def waits_on(handle: WorkflowHandle[Any, Any], step: str, timeout: float = 120) -> Progress:
    """Poll until the run waits for an operator on ``step``."""

    async def waiting() -> Progress | None:
        prog = await progress(handle)
        return prog if prog.waiting_for_operator and prog.waiting_for_operator.step == step else None

    return await eventually(f"the run waiting on {step}", waiting, timeout=timeout)


def evidence_of(result: FailoverResult) -> dict[str, Any]:
    assert result.evidence_dir is not None
    data: dict[str, Any] = json.loads((Path(result.evidence_dir) / "evidence.json").read_text())
    return data


async def test_pause_holds_across_a_worker_kill_and_a_failed_step_waits_for_retry(
    client: Client, module_lab: Lab
) -> None:
    lab = module_lab
    # prepare_target is slow, so the pause lands while it runs; repoint_apps (past the point
    # of no return) fails once in the worker that runs it: the cause is gone for the retry.
    inv = lab_inventory(lab, faults={"prepare_target": "delay:2", "repoint_apps": "fail:1"})
    since = datetime.now(UTC)
    agents = spawn_agents(lab)  # the site agents live on: the control worker dies
    first = spawn_worker(lab)
    second = None
    try:
        await polling(lab, [None, *SITES], since)
        lab.break_site("onprem")
        handle = await start(client, inv, FailoverInput(target="azure"))

        async def preparing() -> bool:
            return (await progress(handle)).phase == Phase.PREPARE_TARGET

        await eventually("the prepare phase", preparing, timeout=60)
        paused = await handle.execute_update(
            PAUSE_UPDATE, OperatorInput(by="alice", comment="checking the target"), result_type=OperatorRecord
        )
        assert paused.refused is None and paused.action == OperatorAction.PAUSE

        async def held() -> Progress | None:
            """Held at a step boundary, and the steps already in flight finished: prepare_target
            runs beside the old primary's fence (patch failover-prepare-with-fence), so the
            pause may land in the fence's branch while prepare_target still runs."""
            prog = await progress(handle)
            last = prog.steps[-1] if prog.steps else None
            if last is None or last.name != "paused" or last.ended_at is not None:
                return None
            return prog if all(s.ended_at is not None for s in prog.steps[:-1]) else None

        prog = await eventually("the run held at a step boundary", held, timeout=60)
        assert prog.paused is not None and prog.paused.by == "alice" and prog.paused.comment
        before = [(s.name, s.outcome) for s in prog.steps]
        assert all(s.ended_at is not None for s in prog.steps[:-1]), "the step in flight finished"
        assert "promote" not in [name for name, _ in before]

        # The worker dies while the run is paused: a new one replays it, still paused, and
        # nothing started meanwhile.
        stop_processes([first])
        second = spawn_worker(lab)
        again = await eventually("a new worker answering", lambda: progress(handle), timeout=60)
        assert again.paused is not None and [(s.name, s.outcome) for s in again.steps] == before
        # A retry while nothing waits is malformed: refused without a trace, exit 2.
        ran = await cli(lab, "retry", handle.id, "--step", "repoint_apps", "--by", "bob")
        assert ran.code == 2 and "no step waits" in ran.out + ran.err, ran.out + ran.err

        ran = await cli(lab, "resume", handle.id, "--by", "bob", "--comment", "target looks fine")
        assert ran.code == 0, ran.out + ran.err
        prog = await waits_on(handle, "repoint_apps")
        assert prog.waiting_for_operator is not None
        assert "fault injected" in prog.waiting_for_operator.error and prog.paused is None
        ran = await cli(lab, "status", handle.id)
        assert "hybridops retry" in ran.out, ran.out
        ran = await cli(lab, "skip", handle.id, "--step", "dns_cutover", "--by", "bob", "--comment", "x")
        assert ran.code == 2 and "waits on repoint_apps" in ran.out + ran.err, ran.out + ran.err
        ran = await cli(lab, "retry", handle.id, "--step", "repoint_apps", "--by", "bob")
        assert ran.code == 0, ran.out + ran.err
        result: FailoverResult = await handle.result()
    finally:
        stop_processes([first, second, *agents])

    assert result.status == RunStatus.SUCCEEDED and result.point_of_no_return_passed
    names = [s.name for s in result.steps]
    pause_rec = next(s for s in result.steps if s.name == "paused")
    assert "alice" in pause_rec.detail and "resumed by bob" in pause_rec.detail
    assert names.index("paused") < names.index("promote"), "nothing started while paused"
    repoints = [s.outcome for s in result.steps if s.name == "repoint_apps"]
    assert repoints[0] == StepOutcome.FAILED and repoints[-1] != StepOutcome.FAILED and len(repoints) == 2
    assert [(a.action, a.by, a.refused) for a in result.operator_actions] == [
        (OperatorAction.PAUSE, "alice", None),
        (OperatorAction.RESUME, "bob", None),
        (OperatorAction.RETRY, "bob", None),
    ]
    evidence = evidence_of(result)
    assert [a["action"] for a in evidence["operator_actions"]] == ["pause", "resume", "retry"]
    report = (Path(result.evidence_dir or "") / "report.html").read_text()
    assert "Operator actions" in report and "checking the target" in report
    assert_failed_over(lab, "azure")


async def test_only_a_signed_retry_or_skip_for_this_run_action_and_step_counts(
    temporal_env: WorkflowEnvironment, module_lab: Lab, run_workers: Any
) -> None:
    lab = module_lab
    keys = {name: lab.approver_key(name) for name in ("alice", "bob")}
    mallory_key = lab.root / "mallory-operator-key"
    if not mallory_key.exists():
        make_key(mallory_key, "mallory")
    policy_data = {
        "approval": {"failover": False},
        "approvers": {
            "failover": ["ssh:alice", "ssh:bob"],
            "require_signature": True,
            "signers": {
                name: {
                    "key": key.with_name(key.name + ".pub").read_text().strip(),
                    "identities": [f"cert:CN={name},O=corp"],
                }
                for name, key in keys.items()
            },
        },
    }
    policy = lab.root / "policy-operator.yaml"
    policy.write_text(yaml.safe_dump(policy_data))
    # repoint_apps fails twice: a retry runs it again (and it fails again), then a skip.
    inv = lab_inventory(lab, policy=policy, faults={"repoint_apps": "fail:2"})
    alice = await identified_client(temporal_env, "cert:CN=alice,O=corp")
    bob = await identified_client(temporal_env, "cert:CN=bob,O=corp")
    mallory_as_bob = await identified_client(temporal_env, "cert:CN=bob,O=corp")
    await run_workers(alice, inv)
    lab.break_site("onprem")
    started = await start(alice, inv, FailoverInput(target="azure"))
    prog = await waits_on(started, "repoint_apps")
    run = (await started.describe()).run_id

    def signed(key: Path, action: str, **changes: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "workflow_id": started.id,
            "run_id": run,
            "action": action,
            "step": "repoint_apps",
            "comment": "",
            "signed_at": datetime.now(UTC).replace(microsecond=0),
        }
        fields.update(changes)
        return {"signature": sign(operator_message(**fields), key), "signed_at": fields["signed_at"]}

    async def act(client: Client, update: str, **kw: Any) -> OperatorRecord:
        inp = OperatorInput(by=kw.pop("by", "bob"), step="repoint_apps", **kw)
        handle = client.get_workflow_handle(started.id)
        record: OperatorRecord = await handle.execute_update(update, inp, result_type=OperatorRecord)
        return record

    alice_sig = signed(keys["alice"], "retry")
    expected = [
        (await act(mallory_as_bob, RETRY_UPDATE), "unsigned"),
        # Bob's key, signed for a skip, another run, another step: sent as this retry.
        (await act(bob, RETRY_UPDATE, **signed(keys["bob"], "skip")), "does not verify"),
        (await act(bob, RETRY_UPDATE, **signed(keys["bob"], "retry", run_id="another")), "does not verify"),
        (await act(bob, RETRY_UPDATE, **signed(keys["bob"], "retry", step="verify")), "does not verify"),
        (await act(mallory_as_bob, RETRY_UPDATE, **signed(mallory_key, "retry")), "not in approvers.signers"),
        # Alice started the run (four eyes); her signature again, by bob: replayed.
        (await act(alice, RETRY_UPDATE, by="alice", **alice_sig), "four eyes"),
        (await act(bob, RETRY_UPDATE, **alice_sig), "replayed"),
    ]
    for record, why in expected:
        assert record.refused and why in record.refused, (why, record.refused)
    # Nothing changed: the same wait, the same steps; azure promoted, and DNS moved beside the
    # apps' failed repoint (patch failover-apps-with-dns): the clients are served meanwhile.
    now = await progress(started)
    assert now.waiting_for_operator == prog.waiting_for_operator and len(now.steps) == len(prog.steps)
    assert dns_points_at(lab) == "azure"

    taken = await act(
        bob,
        RETRY_UPDATE,
        comment="apps config fixed",
        **signed(keys["bob"], "retry", comment="apps config fixed"),
    )
    assert taken.refused is None and taken.signer == "ssh:bob"
    # It fails again (the fault's second call): the run waits again; bob skips it, saying why.
    await eventually(
        "the second wait",
        lambda: _waits_again(started, len(prog.steps)),
        timeout=60,
    )
    why = "apps repointed by hand (INC-42)"
    skipped = await act(bob, SKIP_UPDATE, comment=why, **signed(keys["bob"], "skip", comment=why))
    assert skipped.refused is None and skipped.action == OperatorAction.SKIP
    result: FailoverResult = await started.result()

    assert result.status == RunStatus.SUCCEEDED
    repoints = [s for s in result.steps if s.name == "repoint_apps"]
    assert [s.outcome for s in repoints] == [StepOutcome.FAILED, StepOutcome.SKIPPED]
    assert "skipped by bob" in repoints[-1].detail and why in repoints[-1].detail
    actions = result.operator_actions
    assert len([a for a in actions if a.refused]) == len(expected)
    assert [(a.action, a.signer, a.comment) for a in actions if not a.refused] == [
        (OperatorAction.RETRY, "ssh:bob", "apps config fixed"),
        (OperatorAction.SKIP, "ssh:bob", why),
    ]
    evidence = evidence_of(result)
    assert [a["action"] for a in evidence["operator_actions"] if not a["refused"]] == ["retry", "skip"]
    history = await started.fetch_history()
    assert "PRIVATE KEY" not in history.to_json()
    assert_failed_over(lab, "azure")

    # Offline, from the run's history on the server and the policy: the retry and the skip
    # verify as bob's; every refused attempt is listed as refused, saying why.
    ran = await cli(lab, "audit", "verify", started.id, "--policy", str(policy), "--json")
    assert ran.code == 0, ran.out + ran.err
    verdict = json.loads(ran.out)
    assert verdict["ok"] and not verdict["findings"], verdict["findings"]
    checked = verdict["operator_actions"]
    assert [(c["action"], c["step"], c["signer"], c["verdict"]) for c in checked if c["taken"]] == [
        ("retry", "repoint_apps", "ssh:bob", "valid"),
        ("skip", "repoint_apps", "ssh:bob", "valid"),
    ]
    refused = [c for c in checked if not c["taken"]]
    assert len(refused) == len(expected) and all(c["verdict"] == "refused" for c in refused)
    offline = [c["detail"].split("; offline: ")[1] for c in refused]
    assert offline[0] == "unsigned" and "replayed" in offline[-1], offline
    assert all("does not verify" in d for d in offline[1:4]) and "not in approvers.signers" in offline[4]
    ran = await cli(lab, "audit", "verify", started.id, "--policy", str(policy))
    assert ran.code == 0 and "operator retry repoint_apps by bob" in ran.out, ran.out + ran.err


async def _waits_again(handle: WorkflowHandle[Any, Any], steps_before: int) -> bool:
    prog = await progress(handle)
    return prog.waiting_for_operator is not None and len(prog.steps) > steps_before


async def test_a_run_nobody_retries_ends_in_a_named_state_with_the_steps_to_finish_by_hand(
    client: Client, module_lab: Lab
) -> None:
    """dns_cutover fails past the point of no return and nobody acts within the operator's
    wait: the run ends failed, stopped in ``dns_cutover``, with the exact next steps in its
    result, evidence, error and report; following them (a failover run again once the DNS
    API answers) puts DNS on the new primary."""
    lab = module_lab
    policy = lab.root / "policy-no-operator.yaml"
    policy.write_text(
        yaml.safe_dump({"approval": {"failover": False}, "operator": {"wait_after_failure_s": 1}})
    )
    inv = lab_inventory(lab, policy=policy, faults={"dns_cutover": "fail:1000"})
    since = datetime.now(UTC)
    workers = [*spawn_agents(lab), spawn_worker(lab)]
    try:
        await polling(lab, [None, *SITES], since)
        lab.break_site("onprem")
        handle = await start(client, inv, FailoverInput(target="azure"))
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    finally:
        stop_processes(workers)

    result = FailoverResult.model_validate(failed.value.cause.details[0])  # type: ignore[union-attr]
    assert result.status == RunStatus.FAILED and result.point_of_no_return_passed
    assert result.stopped_in == Phase.DNS_CUTOVER
    assert len(result.by_hand) == 4, result.by_hand
    assert handle.id in result.by_hand[0] and "run `hybridops failover` again" in result.by_hand[1]
    assert "leave onprem fenced" in result.by_hand[-1]
    assert result.error and "in dns_cutover: finish by hand: 1. " in result.error, result.error
    evidence = evidence_of(result)
    assert evidence["stopped_in"] == "dns_cutover" and evidence["by_hand"] == result.by_hand
    report = (Path(result.evidence_dir or "") / "report.html").read_text()
    assert "Finish by hand" in report and "hybridops failover" in report
    assert dns_points_at(lab) == "onprem", "DNS never moved"

    # The by-hand step: the DNS API answers again, the failover runs again and repairs DNS.
    fixed = lab_inventory(lab, policy=policy)
    since = datetime.now(UTC)
    workers = [*spawn_agents(lab), spawn_worker(lab)]
    try:
        await polling(lab, [None, *SITES], since)
        again = await start(client, fixed, FailoverInput(target="azure"))
        with pytest.raises(WorkflowFailureError) as err:
            await again.result()
    finally:
        stop_processes(workers)
    assert "was repaired" in str(err.value.cause), err.value.cause
    assert_failed_over(lab, "azure")
