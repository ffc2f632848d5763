"""Invalid runbook inputs, generated (hypothesis), started as real workflows on the session's dev
server with a real worker and lab: each fails at once naming the field, with no failed workflow
task (no retry loop), no activity, and nothing in the lab changed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle

from hybridops.constants import TaskQueue
from hybridops.lab import Lab
from tests.conftest import lab_inventory
from tests.fuzz import WORKFLOW_INPUTS, encoded, input_objects, named_fields
from tests.lab.helpers import assert_one_writer, dns_changes, dns_points_at, fenced, role

PER_WORKFLOW = 6
"""Invalid inputs started per workflow type (the rest of the generated ones are only validated)."""
EXAMPLES = 60


def invalid_samples() -> tuple[int, dict[str, list[tuple[dict[str, Any], list[str]]]]]:
    """Generate objects for every workflow's input and keep invalid ones (with the fields their
    errors name), preferring a variety of named fields. Returns how many were tried too."""
    tried = 0
    found: dict[str, list[tuple[dict[str, Any], list[str]]]] = {t: [] for t in WORKFLOW_INPUTS}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        nonlocal tried
        for wf_type, model in WORKFLOW_INPUTS.items():
            obj = data.draw(input_objects(model), label=wf_type)
            tried += 1
            raw = encoded(obj)
            if raw is None:
                continue
            fields = _refused(model, raw, obj)
            seen = {f for _, fs in found[wf_type] for f in fs}
            if fields and len(found[wf_type]) < PER_WORKFLOW and not set(fields) <= seen:
                found[wf_type].append((obj, fields))

    one()
    return tried, found


def _refused(model: type[BaseModel], raw: bytes, obj: dict[str, Any]) -> list[str]:
    try:
        model.model_validate_json(raw)
    except ValidationError as err:
        return named_fields(err, obj)
    return []


async def test_invalid_inputs_fail_at_once_naming_the_field(
    client: Client, lab: Lab, run_workers: Any, record_property: Any
) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv, (TaskQueue.CONTROL,))
    dns_before = dns_changes(lab)
    tried, found = await asyncio.to_thread(invalid_samples)

    async def start(wf_type: str, obj: dict[str, Any]) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(
            wf_type, obj, id=f"fuzz-{wf_type}-{uuid.uuid4().hex[:8]}", task_queue=inv.queue(TaskQueue.CONTROL)
        )

    cases = [(wf_type, obj, fields) for wf_type, objs in found.items() for obj, fields in objs]
    handles = await asyncio.gather(*(start(t, obj) for t, obj, _ in cases))
    for (wf_type, obj, fields), handle in zip(cases, handles, strict=True):
        try:
            await asyncio.wait_for(handle.result(), timeout=30)
            raise AssertionError(f"{wf_type} {obj!r}: the run did not fail")
        except WorkflowFailureError as failure:
            message = str(failure.cause)
        assert any(f in message for f in fields), (wf_type, obj, message)
        assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
        events = [e async for e in handle.fetch_history_events()]
        assert not any(e.HasField("workflow_task_failed_event_attributes") for e in events), (wf_type, obj)
        assert not any(
            e.HasField("activity_task_scheduled_event_attributes")
            or e.HasField("marker_recorded_event_attributes")
            or e.HasField("timer_started_event_attributes")
            for e in events
        ), (wf_type, obj)

    # Nothing in the lab changed.
    assert dns_changes(lab) == dns_before and dns_points_at(lab) == "onprem"
    assert role(lab, "onprem") == "primary" and not fenced(lab, "onprem")
    assert role(lab, "azure") == "standby" and role(lab, "gcp") == "standby"
    assert assert_one_writer(lab) == "onprem"
    assert not (lab.root / "clusters").exists() or not any((lab.root / "clusters").iterdir())
    assert not Path(inv.output_dir).exists() or not any(Path(inv.output_dir).rglob("evidence.json"))

    per_type = {t: len(objs) for t, objs in found.items()}
    assert all(n >= 3 for n in per_type.values()), per_type
    record_property("inputs_tried", tried)
    record_property("invalid_runs_started", len(cases))
    print(f"runbook inputs: {tried} tried, {len(cases)} invalid ones started as workflows {per_type}")
