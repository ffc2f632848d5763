"""The worker's side of :mod:`hybridops.identity`: the identity header of a start or an update,
handed to the workflow (:func:`caller`, :func:`starter`). Deterministic: headers are part of
the history (the start event, the update's accepted event), so a replay sees the same."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

with workflow.unsafe.imports_passed_through():
    from hybridops.identity import read_identity

_caller: ContextVar[str | None] = ContextVar("hybridops_caller", default=None)
STARTER_ATTR = "_hybridops_starter"


def caller() -> str | None:
    """The identity of the update being validated or handled now (None: none was sent)."""
    return _caller.get()


def starter() -> str | None:
    """The identity that started this run (None: none was sent, e.g. a schedule)."""
    return getattr(workflow.instance(), STARTER_ATTR, None)


class IdentityInterceptor(Interceptor):
    """Register on every worker that runs HybridOps workflows."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Inbound


class _Inbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        setattr(workflow.instance(), STARTER_ATTR, read_identity(input.headers))
        return await super().execute_workflow(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        token = _caller.set(read_identity(input.headers))
        try:
            super().handle_update_validator(input)
        finally:
            _caller.reset(token)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        token = _caller.set(read_identity(input.headers))
        try:
            return await super().handle_update_handler(input)
        finally:
            _caller.reset(token)
