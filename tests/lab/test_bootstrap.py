"""BootstrapWorkflow with real Ansible on this machine: the production network validation
playbook, and lab stand-ins for the RKE2, Jenkins and GitOps roles that converge files (the
real roles install software; they are syntax-checked and linted in tests/unit/test_ansible.py).
A dry run changes nothing; a run failing at Jenkins, started again, completes and shows the
steps that had converged as unchanged. Without a Packer template, building images is skipped.
A bootstrap leaves the database topology as it was."""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.base import StepOutcome
from hybridops.contracts.bootstrap import BootstrapInput, BootstrapResult
from hybridops.inventory import BootstrapSettings
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.lab.helpers import assert_one_writer

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
