"""BootstrapWorkflow with real Ansible on this machine: the production network validation
playbook, and lab stand-ins for the RKE2, Jenkins and GitOps roles that converge files (the
real roles install software; they are syntax-checked and linted in tests/unit/test_ansible.py).
A dry run changes nothing; a run failing at Jenkins, started again, completes and shows the
steps that had converged as unchanged. Without a Packer template, building images is skipped.
A bootstrap leaves the database topology as it was."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from hybridops.constants import PROGRESS_QUERY, TaskQueue, WorkflowType
from hybridops.contracts.base import Phase, Progress, StepOutcome
from hybridops.contracts.bootstrap import BootstrapInput, BootstrapResult
from hybridops.evidence import evidence_folder
from hybridops.inventory import BootstrapSettings, Placement
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import assert_one_writer, eventually
from workers.main import build_workers

INFRA = Path(__file__).resolve().parents[2] / "infra" / "ansible"

STAND_IN = """- name: {title} (lab stand-in)
  hosts: all
  gather_facts: false
  tasks:
    - name: The {name} directory
      ansible.builtin.file:
        path: "{{{{ lab_root }}}}/{name}"
        state: directory
        mode: "0755"
    - name: The {name} configuration
      ansible.builtin.copy:
        dest: "{{{{ lab_root }}}}/{name}/config.yaml"
        content: "{name}: converged\\n"
        mode: "0644"
"""


def playbooks(tmp: Path) -> Path:
    d = tmp / "playbooks"
    d.mkdir()
    shutil.copy(INFRA / "network-validation.yml", d)
    for file, name, title in (
        ("rke2-server.yml", "rke2", "RKE2 server"),
        ("jenkins.yml", "jenkins", "Jenkins"),
        ("gitops-enroll.yml", "gitops", "GitOps enrollment"),
    ):
        (d / file).write_text(STAND_IN.format(name=name, title=title))
    return d


async def run(client: Client, inv: Any, inp: BootstrapInput) -> Any:
    return await client.start_workflow(
        WorkflowType.BOOTSTRAP.value,
        inp,
        id=f"test-bootstrap-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=BootstrapResult,
    )


def outcomes(steps: list[Any]) -> dict[str, str]:
    return {
        s["name"] if isinstance(s, dict) else s.name: (s["outcome"] if isinstance(s, dict) else s.outcome)
        for s in steps
    }


def settings(tmp_path: Path) -> BootstrapSettings:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return BootstrapSettings(
        playbook_dir=playbooks(tmp_path),
        hosts={"all": {"hosts": {"localhost": local}}},
        extravars={"lab_root": str(tmp_path / "ctrl-01")},
    )


async def test_a_dry_run_changes_nothing(client: Client, lab: Lab, run_workers, tmp_path: Path) -> None:
    inv = lab_inventory(lab, bootstrap=settings(tmp_path))
    await run_workers(client, inv)
    dry: BootstrapResult = await (await run(client, inv, BootstrapInput(dry_run=True))).result()
    assert [s.name for s in dry.steps] == [
        "validate_network",
        "build_images",
        "rke2",
        "jenkins",
        "gitops_enroll",
    ]
    # No Packer template in the settings: there are no images to build, so the step is skipped.
    assert {s.name: s.outcome for s in dry.steps} == {
        "validate_network": StepOutcome.UNCHANGED,
        "build_images": StepOutcome.SKIPPED,
        "rke2": StepOutcome.UNCHANGED,
        "jenkins": StepOutcome.UNCHANGED,
        "gitops_enroll": StepOutcome.UNCHANGED,
    }
    assert "would change" in next(s.detail for s in dry.steps if s.name == "rke2")
    assert not (tmp_path / "ctrl-01").exists(), "a dry run changes nothing"
    assert assert_one_writer(lab) == "onprem"


async def test_a_failed_bootstrap_run_again_resumes(
    client: Client, lab: Lab, run_workers, tmp_path: Path
) -> None:
    root = tmp_path / "ctrl-01"
    # Jenkins fails on its first call only: the second run gets past it.
    inv = lab_inventory(lab, bootstrap=settings(tmp_path), faults={"bootstrap_jenkins": "fail:1"})
    await run_workers(client, inv)

    with pytest.raises(WorkflowFailureError) as failure:
        await (await run(client, inv, BootstrapInput())).result()
    first = failure.value.cause.details[0]  # type: ignore[union-attr]
    assert outcomes(first["steps"]) == {
        "validate_network": "unchanged",
        "build_images": "skipped",
        "rke2": "changed",
        "jenkins": "failed",
    }
    assert (root / "rke2" / "config.yaml").exists() and not (root / "jenkins").exists()

    again: BootstrapResult = await (await run(client, inv, BootstrapInput())).result()
    assert outcomes([s.model_dump(mode="json") for s in again.steps]) == {
        "validate_network": "unchanged",
        "build_images": "skipped",
        "rke2": "unchanged",
        "jenkins": "changed",
        "gitops_enroll": "changed",
    }
    assert (root / "jenkins" / "config.yaml").exists() and (root / "gitops" / "config.yaml").exists()
    report = (Path(again.evidence_dir or "") / "report.md").read_text()
    assert "| rke2 | unchanged |" in report and "| build_images | skipped |" in report
    assert assert_one_writer(lab) == "onprem"


async def test_a_cancelled_bootstrap_writes_its_evidence(
    client: Client, lab: Lab, run_workers, tmp_path: Path
) -> None:
    """The cancellation that reaches the workflow as itself (``asyncio.CancelledError``, not
    an activity's failure): it arrives in the same workflow task as the result of the step
    it interrupts. Made so here: the workflows' worker is stopped while RKE2 runs on the infra
    worker, the run is cancelled, RKE2 completes, and a new worker takes both at once."""
    inv = lab_inventory(
        lab, bootstrap=settings(tmp_path), placement=Placement.QUEUES, faults={"bootstrap_rke2": "delay:5"}
    )
    await run_workers(client, inv, tuple(q for q in TaskQueue if q != TaskQueue.CONTROL))
    [control] = build_workers(client, inv, [TaskQueue.CONTROL])
    serving = asyncio.create_task(control.run())
    handle = await run(client, inv, BootstrapInput())

    async def at_rke2() -> bool:
        return (await handle.query(PROGRESS_QUERY, result_type=Progress)).phase == Phase.RKE2

    await eventually("the rke2 step", at_rke2)
    await control.shutdown()
    await serving
    await handle.cancel()

    async def rke2_done() -> bool:
        events = [e async for e in handle.fetch_history_events()]
        return sum(e.HasField("activity_task_completed_event_attributes") for e in events) == 3

    await eventually("rke2 to complete with no workflow worker", rke2_done, timeout=60)
    [control] = build_workers(client, inv, [TaskQueue.CONTROL])
    serving = asyncio.create_task(control.run())
    try:
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert isinstance(failure.value.cause, CancelledError), failure.value.cause
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    finally:
        await control.shutdown()
        await serving

    # Evidence of the run as far as it got, written before the cancellation ended it.
    folder = evidence_folder(inv.output_dir, "bootstrap", handle.id)
    evidence = json.loads((folder / "evidence.json").read_text())
    assert evidence["status"] == "failed" and "CancelledError" in evidence["error"], evidence
    assert [s["name"] for s in evidence["steps"]] == ["validate_network", "build_images", "rke2"]
    assert (folder / "report.md").exists() and (folder / "manifest.json").exists()
    assert assert_one_writer(lab) == "onprem"
