"""The approval identity with the workflow modules passed through the sandbox (workflows/registry.py):
``workflows.identity``'s ``ContextVar`` is then one object for every run a worker holds, and
still each update sees its own caller, for as long as its handler runs: two runs' updates in
flight at once on one worker, each answered with the identity that sent it."""

from __future__ import annotations

import uuid

from temporalio.client import WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import identified_client
from tests.unit.identity_probe_workflow import IdentityProbe
from workflows.identity import IdentityInterceptor
from workflows.registry import workflow_runner


async def test_each_runs_update_sees_its_own_caller(temporal_env: WorkflowEnvironment) -> None:
    alice = await identified_client(temporal_env, "alice")
    bob = await identified_client(temporal_env, "bob")
    queue = f"identity-{uuid.uuid4().hex[:8]}"
    async with Worker(
        alice,
        task_queue=queue,
        workflows=[IdentityProbe],
        workflow_runner=workflow_runner(),
        interceptors=[IdentityInterceptor()],
    ):
        runs = [
            await alice.start_workflow(IdentityProbe.run, id=f"{queue}-{n}", task_queue=queue) for n in (1, 2)
        ]
        # Each update accepted (its handler started and waiting) before either may end.
        asked = [
            await client.get_workflow_handle(run.id).start_update(
                "who", wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=str
            )
            for client, run in zip((alice, bob), runs, strict=True)
        ]
        for run in runs:
            await run.signal("go")
        answers = [await a.result() for a in asked]
        for run in runs:
            await run.result()
    assert answers == ["alice|alice", "bob|bob"]
