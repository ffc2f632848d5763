"""``BootstrapWorkflow``: the control node's zero-touch bring-up.

validate the network -> build base images -> RKE2 -> Jenkins -> GitOps enrollment -> evidence.

Every step converges (Ansible roles, Packer images), so there is nothing to compensate: a run
that fails stops there, and the next run goes through the steps again, the converged ones
reporting ``unchanged``. ``dry_run`` asks each tool what it would change and changes nothing.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from hybridops.constants import PROGRESS_QUERY, WorkflowType
    from hybridops.contracts.base import EvidenceResult, Progress, RunStatus, StepRecord
    from hybridops.contracts.bootstrap import (
        BootstrapEvidenceInput,
        BootstrapInput,
        BootstrapPlan,
        BootstrapPlanInput,
        BootstrapResult,
        BootstrapStepInput,
        BootstrapStepResult,
    )
    from workflows import steps


@workflow.defn(name=WorkflowType.BOOTSTRAP.value, failure_exception_types=[ValidationError])
class BootstrapWorkflow:
    def __init__(self) -> None:
        self._phase = "pending"
        self._status = RunStatus.RUNNING
        self._steps: list[StepRecord] = []

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> Progress:
        return Progress(phase=self._phase, status=self._status, steps=self._steps)

    @workflow.run
    async def run(self, inp: BootstrapInput) -> BootstrapResult:
        info = workflow.info()
        res = BootstrapResult(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            status=RunStatus.RUNNING,
            input=inp,
            started_at=workflow.now(),
        )
        plan = await steps.run_step(steps.BOOTSTRAP_PLAN, BootstrapPlanInput(), BootstrapPlan, "colocated")
        placement, suffix = plan.placement, plan.queue_suffix
        try:
            for step in inp.steps:
                self._phase = step.value
                await steps.record_step(
                    self._steps,
                    step.value,
                    steps.BOOTSTRAP_STEP,
                    BootstrapStepInput(step=step, dry_run=inp.dry_run),
                    BootstrapStepResult,
                    placement,
                    suffix,
                )
            res.status = RunStatus.SUCCEEDED
        except Exception as err:
            res.status, res.error = RunStatus.FAILED, steps.describe_error(err)
        self._status = res.status
        res.steps, res.ended_at = self._steps, workflow.now()
        self._phase = "evidence"
        ev = await steps.run_step(
            steps.BOOTSTRAP_EVIDENCE, BootstrapEvidenceInput(result=res), EvidenceResult, placement, suffix
        )
        res.evidence_dir = ev.path
        self._phase = "done"
        if res.status != RunStatus.SUCCEEDED:
            raise ApplicationError(
                f"bootstrap failed: {res.error} (run it again: converged steps are kept)",
                res.model_dump(mode="json"),
                type="BootstrapFailed",
                non_retryable=True,
            )
        return res
