"""``BootstrapWorkflow``: the control node's zero-touch bring-up.

validate the network -> build base images -> RKE2 -> Jenkins -> GitOps enrollment -> evidence.

Every step converges (Ansible roles, Packer images), so there is nothing to compensate: a run
that fails stops there, and the next run goes through the steps again, the converged ones
reporting ``unchanged``. ``dry_run`` asks each tool what it would change and changes nothing.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from hybridops.constants import WorkflowType
    from hybridops.contracts.base import Phase, RunStatus
    from hybridops.contracts.bootstrap import (
        BootstrapInput,
        BootstrapPlanInput,
        BootstrapResult,
        BootstrapStepInput,
    )
    from workflows import steps
    from workflows.runbook import RunbookBase


@workflow.defn(name=WorkflowType.BOOTSTRAP.value, failure_exception_types=[ValidationError])
class BootstrapWorkflow(RunbookBase):
    """Converge the on-prem site step by step (network, images, RKE2, Jenkins, GitOps)."""

    RUNBOOK = "bootstrap"
    EVIDENCE = steps.BOOTSTRAP_EVIDENCE
    FAILURE_HINT = " (run it again: converged steps are kept)"

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
        failure: BaseException | None = None
        try:
            plan = await steps.run_step(steps.BOOTSTRAP_PLAN, BootstrapPlanInput(), self._where)
            self._placed(plan.placement, plan.queue_suffix)
            for step in inp.steps:
                self._phase = Phase(step.value)
                await self._step(
                    step.value, steps.BOOTSTRAP_STEP, BootstrapStepInput(step=step, dry_run=inp.dry_run)
                )
            res.status = RunStatus.SUCCEEDED
        except (Exception, asyncio.CancelledError) as err:
            # A cancelled run too writes its evidence (then the cancellation goes on).
            failure = err
            res.status, res.error = RunStatus.FAILED, steps.describe_error(err)
        res.steps = self._steps  # nothing to compensate: every step converges
        res.operator_actions = self._operator
        return await self._end(res, failure)
