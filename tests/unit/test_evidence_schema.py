"""One evidence shape for every runbook: the schema in the repository is the model's, and the
evidence of every stored run (both history folders) conforms to it with the same meaning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from hybridops.audit.histories import find_history_files, load_history_files
from hybridops.audit.timeline import build_timeline
from hybridops.audit.verify import first_value
from hybridops.constants import Runbook
from hybridops.contracts.bootstrap import BootstrapResult
from hybridops.contracts.burst import BurstResult
from hybridops.contracts.drill import DrillResult
from hybridops.contracts.evidence import (
    AnyRunbookResult,
    Details,
    Evidence,
    evidence_of,
    schema_text,
)
from hybridops.contracts.failback import FailbackResult
from hybridops.contracts.failover import FailoverResult
from tests.evidence_schema import SCHEMA, assert_evidence_conforms, schema_errors
from tests.unit.evidence_step import write_failover_evidence

HISTORIES = Path(__file__).parents[1] / "histories"
RESULTS: dict[str, type[AnyRunbookResult]] = {
    Runbook.FAILOVER: FailoverResult,
    Runbook.FAILBACK: FailbackResult,
    Runbook.DRILL: DrillResult,
    Runbook.BURST: BurstResult,
    Runbook.BOOTSTRAP: BootstrapResult,
}
NO_EVIDENCE = "readiness"
"""ReadinessWorkflow changes nothing and leaves no evidence: its stored histories are not runs
of a runbook here."""


def stored_results() -> list[tuple[str, AnyRunbookResult]]:
    """Every stored history's result, and every evidence input its history recorded (a queued
    evidence step's input; a local activity's is not in the history)."""
    out: list[tuple[str, AnyRunbookResult]] = []
    for src in load_history_files(find_history_files(HISTORIES)):
        assert src.history is not None, src.error
        tl = build_timeline(src.history)
        if tl.runbook == NO_EVIDENCE:
            continue
        kind = RESULTS[tl.runbook]
        label = str(Path(src.label).relative_to(HISTORIES))
        out.append((f"{label} (result)", kind.model_validate(tl.result)))
        for event in src.history.events:
            if not event.HasField("activity_task_scheduled_event_attributes"):
                continue
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name.endswith("evidence"):
                recorded = first_value(attrs.input)["result"]
                out.append((f"{label} (evidence input)", kind.model_validate(recorded)))
    return out


STORED = stored_results()


def test_the_schema_file_is_the_models() -> None:
    assert SCHEMA.read_text() == schema_text(), "runbooks/evidence.schema.json is stale: make evidence-schema"


def test_every_runbook_and_an_evidence_input_are_stored() -> None:
    assert {r.runbook for _, r in STORED} == set(Runbook)
    assert any(label.endswith("(evidence input)") for label, _ in STORED)


@pytest.mark.parametrize(("label", "result"), STORED, ids=[label for label, _ in STORED])
def test_the_evidence_of_every_stored_run_conforms(label: str, result: AnyRunbookResult) -> None:
    ev = evidence_of(result)
    data = json.loads(ev.model_dump_json())
    assert schema_errors(data) == [], label
    assert Evidence.model_validate(data) == ev
    # The same fields mean the same in every runbook.
    assert [data[k] for k in ("runbook", "workflow_id", "status", "requested_by")] == [
        result.runbook,
        result.workflow_id,
        result.status,
        result.input.requested_by,
    ]
    assert data["input"] == result.input.model_dump(mode="json")
    assert [s["name"] for s in data["steps"]] == [s.name for s in result.steps]
    assert all(s["seconds"] is None or s["seconds"] >= 0 for s in data["steps"])
    assert data["details"]["runbook"] == result.runbook


def _by_runbook(runbook: Runbook) -> list[Any]:
    return [r for _, r in STORED if r.runbook == runbook]


def test_rto_and_rpo_are_one_shape() -> None:
    for fo in _by_runbook(Runbook.FAILOVER):
        ev = evidence_of(fo)
        assert (
            ev.rto is not None and ev.rto.seconds == fo.rto_seconds and ev.rto.since == fo.incident_started_at
        )
        assert ev.rpo is not None and ev.rpo.method.value == fo.rpo.method
        assert (ev.rpo.transactions_lost, ev.rpo.seconds) == (fo.rpo.transactions_lost, fo.rpo.seconds)
    for dr in _by_runbook(Runbook.DRILL):
        ev = evidence_of(dr)
        assert ev.rto is not None and ev.rpo is not None
        assert (ev.rto.seconds, ev.rpo.seconds) == (dr.rto_seconds, dr.rpo_seconds)
        slo = {c.name: c for c in dr.slo}
        assert (ev.rto.passed, ev.rpo.passed) == (slo["rto"].passed, slo["rpo"].passed)
        assert ev.rpo.objective_s == slo["rpo"].objective_s
    for fb in _by_runbook(Runbook.FAILBACK):
        ev = evidence_of(fb)
        assert (
            ev.rto is not None and ev.rto.seconds == fb.write_pause_seconds and ev.rto.since == fb.paused_at
        )
        assert ev.rpo is not None and ev.rpo.transactions_lost == 0  # the stored failback switched over
    for other in _by_runbook(Runbook.BURST) + _by_runbook(Runbook.BOOTSTRAP):
        ev = evidence_of(other)
        assert ev.rto is None and ev.rpo is None and ev.point_of_no_return_passed is None


async def test_the_written_file_conforms(tmp_path: Path) -> None:
    label, result = next((label, r) for label, r in STORED if r.runbook == Runbook.FAILOVER)
    assert isinstance(result, FailoverResult)
    folder = Path((await write_failover_evidence(tmp_path, result)).path)
    data = json.loads((folder / "evidence.json").read_text())
    assert schema_errors(data) == [] and data["evidence_dir"] == str(folder), label


def test_the_lab_check_finds_a_bad_file(tmp_path: Path) -> None:
    """The check every lab fixture runs on its output folder when its test ends."""
    _, result = STORED[0]
    good = tmp_path / result.runbook / "run-1"
    good.mkdir(parents=True)
    (good / "evidence.json").write_text(evidence_of(result).model_dump_json())
    assert_evidence_conforms(tmp_path)
    bad = tmp_path / "drill" / "old-run"
    bad.mkdir(parents=True)
    (bad / "evidence.json").write_text(result.model_dump_json())  # a result as the old evidence was
    with pytest.raises(AssertionError, match=r"drill/old-run/evidence.json breaks"):
        assert_evidence_conforms(tmp_path)


def test_the_old_drifts_are_refused() -> None:
    """A drill's old top-level ``rpo_seconds``, a missing field, a section of another runbook."""
    drill = json.loads(evidence_of(_by_runbook(Runbook.DRILL)[0]).model_dump_json())
    assert any("rpo_seconds" in e for e in schema_errors({**drill, "rpo_seconds": 1.0}))
    assert any(
        "'rto' is a required property" in e
        for e in schema_errors({k: v for k, v in drill.items() if k != "rto"})
    )
    burst = json.loads(evidence_of(_by_runbook(Runbook.BURST)[0]).model_dump_json())
    assert schema_errors({**burst, "details": {**burst["details"], "passed": True}})
    swapped = {**drill, "details": burst["details"]}
    assert schema_errors(swapped) == ["details/runbook: 'drill' was expected"]
    with pytest.raises(ValidationError, match="details: a burst section in drill evidence"):
        Evidence.model_validate(swapped)


def test_the_schema_names_no_secret() -> None:
    """Evidence carries references (``*_ref``), never a secret's value."""

    def names(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [*node.get("properties", {}), *(n for v in node.values() for n in names(v))]
        return [n for v in node for n in names(v)] if isinstance(node, list) else []

    bad = ("password", "secret", "api_key", "private_key", "credential")
    assert not [n for n in names(json.loads(SCHEMA.read_text())) if any(b in n.lower() for b in bad)]


RENAMED: dict[str, set[str]] = {
    Runbook.FAILOVER: {
        "runbook",
        "rto_seconds",
        "rto_since",
        "rto_counted_from",
        "rto_split",
        "rto_objective_s",
        "rpo_objective_s",
    },
    Runbook.FAILBACK: {"runbook", "home", "write_pause_seconds", "paused_at"},
    Runbook.DRILL: {"runbook", "rto_seconds", "rpo_seconds"},
    Runbook.BURST: {"runbook"},
    Runbook.BOOTSTRAP: {"runbook"},
}
"""Result fields the evidence holds under another name (``rto.seconds``, ``target``, ...)."""


@pytest.mark.parametrize("runbook", list(Runbook))
def test_no_result_field_is_left_out(runbook: Runbook) -> None:
    """Fields are carried by name (a details field is its result's field of the same name):
    a field added to a result must appear in the evidence, or be named here as mapped."""
    union, _ = get_args(Details)
    sections = {m.model_fields["runbook"].default: m for m in get_args(union)}
    result_fields = set(RESULTS[runbook].model_fields)
    section = set(sections[runbook].model_fields) - {"runbook"}
    assert section <= result_fields, section - result_fields
    carried = result_fields & (set(Evidence.model_fields) | section)
    assert result_fields - carried - RENAMED[runbook] == set(), "result fields the evidence does not hold"
