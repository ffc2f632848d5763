"""A deliberately changed copy of ``FailoverWorkflow``, under the same workflow name, for the
replay tests: what a careless edit would do. In a module of its own so the workflow sandbox
only re-imports this (the test module imports the CLI)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from hybridops.constants import WorkflowType
    from hybridops.contracts.base import StepRecord
    from hybridops.contracts.failover import FailoverInput, FailoverResult
    from workflows import steps
    from workflows.failover import FailoverWorkflow


@workflow.defn(name=WorkflowType.FAILOVER.value, failure_exception_types=[ValidationError])
class FailoverWithoutSignals(FailoverWorkflow):
    """The runbook with one step removed: the decide phase no longer gathers signals (it
    decides on the database's view alone)."""

    @workflow.run
    async def run(self, inp: FailoverInput) -> FailoverResult:
        return await super().run(inp)

    async def _step(
        self, name: str, step: steps.Step[Any, Any], arg: BaseModel, into: list[StepRecord] | None = None
    ) -> Any:
        if step is steps.SIGNALS:
            return step.result()  # the step that was removed
        return await super()._step(name, step, arg, into)
