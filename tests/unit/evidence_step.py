"""A failover's evidence folder written as a worker writes it: the evidence step
(``FailoverActivities.write_evidence``), with a client that answers the history fetch."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.testing import ActivityEnvironment

from activities.failover import FailoverActivities
from hybridops.contracts.base import EvidenceResult
from hybridops.contracts.failover import EvidenceInput, FailoverResult
from hybridops.inventory import load_inventory

EXAMPLE = Path(__file__).parents[2] / "runbooks" / "inventory.example.yaml"


class _Handle:
    def __init__(self, history: WorkflowHistory) -> None:
        self.history = history

    async def fetch_history(self) -> WorkflowHistory:
        return self.history


class HistoryClient:
    """The one thing the evidence step asks of its Temporal client: the run's history."""

    def __init__(self, history: WorkflowHistory) -> None:
        self.history = history

    def get_workflow_handle(self, workflow_id: str, run_id: str | None = None) -> _Handle:
        return _Handle(self.history)


async def write_failover_evidence(
    output_dir: Path, result: FailoverResult, history: WorkflowHistory | None = None
) -> EvidenceResult:
    """Write ``result``'s evidence under ``output_dir`` (``failover/<workflow id>/``, with
    ``history`` as its history.json when given); returns the step's result (its ``path``)."""
    inventory = load_inventory(EXAMPLE).model_copy(update={"output_dir": output_dir})
    client = HistoryClient(history) if history is not None else None
    step = FailoverActivities(inventory, client=client).write_evidence  # type: ignore[arg-type]
    # The step runs in the SDK's test activity context, as a worker would run it.
    result_of_step: EvidenceResult = await ActivityEnvironment().run(step, EvidenceInput(result=result))
    return result_of_step
