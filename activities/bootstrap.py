"""The bootstrap's activity: one converging step of the control node's bring-up, through
Ansible (network validation, RKE2, Jenkins, GitOps enrollment) or Packer (base images)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.common import Activities, apply_fault, step_activity, write_run_evidence
from drivers.ansible import AnsibleRunner
from drivers.lazy import Drivers
from hybridops.constants import ActivityName
from hybridops.contracts.base import EvidenceResult
from hybridops.contracts.bootstrap import (
    BootstrapEvidenceInput,
    BootstrapPlan,
    BootstrapPlanInput,
    BootstrapStep,
    BootstrapStepInput,
    BootstrapStepResult,
)
from hybridops.inventory import Inventory

PLAYBOOKS = {
    BootstrapStep.VALIDATE_NETWORK: "network-validation.yml",
    BootstrapStep.RKE2: "rke2-server.yml",
    BootstrapStep.JENKINS: "jenkins.yml",
    BootstrapStep.GITOPS_ENROLL: "gitops-enroll.yml",
}


class BootstrapActivities(Activities):
    def __init__(
        self, inventory: Inventory, drivers: Drivers | None = None, client: Client | None = None
    ) -> None:
        super().__init__(inventory, drivers, client)
        b = inventory.bootstrap
        self.playbook_dir = b.playbook_dir or Path(__file__).resolve().parents[1] / "infra" / "ansible"

    def all(self) -> list[Callable[..., Any]]:
        return [self.plan_bootstrap, self.bootstrap_step, self.write_bootstrap_evidence]

    @step_activity(ActivityName.PLAN_BOOTSTRAP)
    async def plan_bootstrap(self, inp: BootstrapPlanInput) -> BootstrapPlan:
        """Read-only: where the steps run (the infra queue's workers hold the tools)."""
        inv = self.inventory
        return BootstrapPlan(placement=inv.placement.value, queue_suffix=inv.task_queue_suffix)

    def _endpoints(self) -> list[dict[str, Any]]:
        b = self.inventory.bootstrap
        if b.endpoints:
            return b.endpoints
        return [{"name": n, "host": s.host, "port": s.port} for n, s in self.inventory.sites.items()]

    @step_activity(ActivityName.BOOTSTRAP_STEP)
    async def bootstrap_step(self, inp: BootstrapStepInput) -> BootstrapStepResult:
        """Converge one step (dry run: say what would change)."""
        await apply_fault(self.faults, f"bootstrap_{inp.step.value}")
        b = self.inventory.bootstrap
        if inp.step == BootstrapStep.BUILD_IMAGES:
            return await self._images(inp)
        extravars = {**b.extravars}
        if inp.step == BootstrapStep.VALIDATE_NETWORK:
            extravars["endpoints"] = self._endpoints()
        runner = AnsibleRunner(self.playbook_dir, secret_extravars=b.secret_extravars)
        result = await runner.run_playbook(PLAYBOOKS[inp.step], b.hosts, extravars, check=inp.dry_run)
        hosts = {
            h: r.model_dump(include={"ok", "changed", "failed", "unreachable", "skipped"})
            for h, r in result.hosts.items()
        }
        verb = (
            "would change"
            if inp.dry_run and result.changed
            else ("changed" if result.changed else "unchanged")
        )
        return BootstrapStepResult(
            hosts=hosts, changed=result.changed and not inp.dry_run, detail=f"{PLAYBOOKS[inp.step]}: {verb}"
        )

    async def _images(self, inp: BootstrapStepInput) -> BootstrapStepResult:
        from drivers.packer import PackerRunner

        b = self.inventory.bootstrap
        if b.packer_template is None:
            return BootstrapStepResult(
                skipped=True, detail="no image template configured (bootstrap.packer_template): skipped"
            )
        with tempfile.TemporaryDirectory(prefix="hybridops-packer-") as work:
            packer = PackerRunner(Path(b.packer_template), Path(work), binary=b.packer_binary)
            await packer.init()
            if inp.dry_run:
                await packer.validate(b.packer_vars)
                return BootstrapStepResult(detail="template valid (dry run: nothing built)")
            built = await packer.build(b.packer_vars)
        ids = [i for ids in built.artifact_ids.values() for i in ids]
        return BootstrapStepResult(
            artifacts=ids, changed=bool(ids), detail=f"images: {', '.join(ids) or 'none'}"
        )

    @step_activity(ActivityName.WRITE_BOOTSTRAP_EVIDENCE)
    async def write_bootstrap_evidence(self, inp: BootstrapEvidenceInput) -> EvidenceResult:
        return await write_run_evidence(self.client, Path(self.inventory.output_dir), inp.result)
