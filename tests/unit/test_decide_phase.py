"""One decide phase: ``hybridops decide`` and the failover workflow give the same decision on
the same recorded inputs.

Each stored failover history recorded what its decide phase read (the results of
``plan_failover``, ``assess_sites`` and ``gather_signals``) and what the workflow decided (its
result, or its failure's details). The command is run on those recorded results in place of
live steps, and must ask the same (the inputs it passes, where the history recorded them) and
print the same decision, to its digest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from typer.testing import CliRunner

import hybridops.cli.decide as decide_cli
from hybridops.audit.histories import HISTORY_SUFFIX
from hybridops.cli import app
from hybridops.client import DATA_CONVERTER
from hybridops.constants import ActivityName
from hybridops.contracts.decision import SignalsInput, SignalsResult
from hybridops.contracts.failover import FailoverInput
from hybridops.contracts.sites import AssessInput, AssessResult, PlanInput, PlanResult

HISTORIES = Path(__file__).parents[1] / "histories"

# Every stored failover that decided. Not here: ``dns-repaired`` (a healthy primary: the run
# ends before deciding) and ``split-brain-fenced`` (the run fences the other writer, assesses
# again and decides on that; the command changes nothing, so it decides on the servers as
# they were).
DECIDED = [
    "alert-resolved",
    "approved",
    "break-glass",
    "compensated",
    "policy-hold",
    "rejected",
    "succeeded",
    "succeeded-queues",
]

TYPES: dict[str, type] = {
    ActivityName.PLAN_SITES: PlanResult,
    ActivityName.ASSESS_SITES: AssessResult,
    ActivityName.GATHER_SIGNALS: SignalsResult,
}


def decode(payload: Payload, kind: type | None = None) -> Any:
    [value] = DATA_CONVERTER.payload_converter.from_payloads([payload], [kind] if kind else None)
    return value


class Recorded:
    """What a stored failover's decide phase read and decided."""

    def __init__(self, name: str) -> None:
        path = HISTORIES / f"failover-{name}{HISTORY_SUFFIX}"
        events = WorkflowHistory.from_json(name, path.read_text()).events
        started = events[0].workflow_execution_started_event_attributes
        self.input: FailoverInput = decode(started.input.payloads[0], FailoverInput)
        self.results: dict[str, Any] = {}
        self.inputs: dict[str, Any] = {}
        """The inputs of the steps that ran as queued activities (a local one's is not recorded)."""
        scheduled: dict[int, tuple[str, Payload]] = {}
        for e in events:
            if e.HasField("activity_task_scheduled_event_attributes"):
                a = e.activity_task_scheduled_event_attributes
                scheduled[e.event_id] = (a.activity_type.name, a.input.payloads[0])
            elif e.HasField("activity_task_completed_event_attributes"):
                c = e.activity_task_completed_event_attributes
                name, given = scheduled[c.scheduled_event_id]
                self._keep(name, c.result.payloads[0], given)
            elif e.HasField("marker_recorded_event_attributes"):
                m = e.marker_recorded_event_attributes
                if m.marker_name == "core_local_activity" and "result" in m.details:
                    meta = json.loads(m.details["data"].payloads[0].data)
                    self._keep(meta["activity_type"], m.details["result"].payloads[0], None)
        last = events[-1]
        if last.HasField("workflow_execution_completed_event_attributes"):
            result = decode(last.workflow_execution_completed_event_attributes.result.payloads[0])
        else:
            failure = last.workflow_execution_failed_event_attributes.failure
            result = decode(failure.application_failure_info.details.payloads[0])
        self.decision: dict[str, Any] = result["decision"]

    def _keep(self, name: str, result: Payload, given: Payload | None) -> None:
        if name in TYPES and name not in self.results:  # the first: a look again comes later
            self.results[name] = decode(result, TYPES[name])
            if given is not None:
                self.inputs[name] = json.loads(given.data)


LATER: dict[str, Any] = {"deadlines": {}}
"""Input fields added after the stored histories were recorded, with their defaults."""


@pytest.mark.parametrize("name", DECIDED)
def test_the_command_decides_as_the_workflow_did(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = Recorded(name)
    assert set(recorded.results) == set(TYPES), recorded.results.keys()
    asked: dict[str, Any] = {}

    def step(activity: ActivityName) -> Any:
        async def run(inp: PlanInput | AssessInput | SignalsInput) -> Any:
            asked[activity] = inp.model_dump(mode="json")
            return recorded.results[activity]

        return run

    steps = decide_cli.DecideSteps(*(step(ActivityName(a)) for a in TYPES))
    monkeypatch.setattr(decide_cli, "live_steps", lambda: steps)
    out = CliRunner().invoke(app, ["decide", "--json", "--target", recorded.input.target.value])
    assert out.exit_code == 0, out.output
    decision = json.loads(out.output)["decision"]
    assert decision == recorded.decision
    assert decision["decision_id"].startswith("dec-")
    assert set(asked) == set(TYPES)
    for activity, given in recorded.inputs.items():
        # A field added after the history was recorded, at its default, was not there to record.
        mine = {k: v for k, v in asked[activity].items() if k in given or k not in LATER or LATER[k] != v}
        assert mine == given, activity
    if name == "succeeded-queues":
        assert {ActivityName.ASSESS_SITES, ActivityName.GATHER_SIGNALS} <= set(recorded.inputs)
