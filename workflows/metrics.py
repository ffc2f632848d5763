"""Runs started, counted on the workflow side through the SDK's workflow metric meter: it
records nothing while a history is replayed, so a run counts once, when its first workflow
task runs live, and workflow code stays deterministic (no clock, no I/O, no global state).

The counter lands in the SDK's own metrics (the runtime's Prometheus exporter), which the
worker's endpoint serves beside HybridOps' (hybridops/metrics.py): ``hybridops_runs_started_total``.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

with workflow.unsafe.imports_passed_through():
    from hybridops.constants import WorkflowType

LEASE = WorkflowType.LEASE.value
"""Not a runbook: its starts are not runs."""
RUNS_STARTED = "hybridops_runs_started"
"""The counter's name (the exporter adds ``_total``)."""


class RunMetricsInterceptor(Interceptor):
    """Register on the worker that runs HybridOps workflows (the control queue's)."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Inbound


class _Inbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        # Only a run's first execution: a continue-as-new or a reset is the same run going on.
        if info.continued_run_id is None and info.attempt == 1 and info.workflow_type != LEASE:
            counter = workflow.metric_meter().create_counter(RUNS_STARTED, "Runs started, by runbook.")
            counter.add(1, {"runbook": info.workflow_type.removesuffix("Workflow").lower()})
        return await super().execute_workflow(input)
