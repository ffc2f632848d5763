"""Every stored history replays cleanly with today's workflow code.

This is what makes a breaking workflow change fail CI: a change that makes a runbook issue
other commands than its stored histories recorded must be versioned with
``workflow.patched`` (or, when no run of the old code can exist, the histories recaptured:
tests/histories/README.md). A patch once deprecated retires the histories recorded before it:
they stay in a folder of their own, replayed against the release that made them, not here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hybridops.audit.histories import HISTORY_SUFFIX, find_history_files, load_history_files
from hybridops.audit.replay import PER_PROCESS, ReplayOutcome, replay, replay_files, workflow_names
from hybridops.audit.verify import recorded_evidence
from hybridops.cli.audit import audit_app
from hybridops.cli.replayer import current_workflows, make_replayer
from hybridops.constants import WorkflowType
from hybridops.evidence import manifest_text
from tests.unit.audit_changed_workflow import FailoverWithoutSignals

HISTORIES = Path(__file__).parents[1] / "histories"
SCENARIOS = {
    "succeeded",
    "succeeded-queues",
    "compensated",
    "approved",
    "rejected",
    "policy-hold",
    "restored",
}
RETIRED = HISTORIES / "before-never-two-writers"
"""Histories recorded before the never-two-writers patch. Retired: the patch is deprecated and
its old branch removed, so they no longer replay on today's code; they replay against the
release that made them, tag ``r14-before-deprecate-patch`` = commit 1c9de42
(tests/histories/README.md). Only the current folder is replayed here."""


NO_EVIDENCE = {WorkflowType.READINESS.value}
"""Workflows that change nothing and so leave no evidence folder (workflows/readiness.py)."""


def stored() -> list[Path]:
    """The current histories: the files directly in tests/histories/ (not the retired folder)."""
    return [p for p in find_history_files(HISTORIES) if p.parent == HISTORIES]


def test_only_the_retired_folder_is_left_out() -> None:
    left_out = {p.parent for p in find_history_files(HISTORIES)} - {HISTORIES}
    assert left_out == {RETIRED}, left_out
    assert stored() == sorted(HISTORIES.glob(f"*{HISTORY_SUFFIX}")) != []


def test_the_stored_histories_cover_the_failover_scenarios() -> None:
    names = {p.name.removesuffix(HISTORY_SUFFIX) for p in stored()}
    assert {f"failover-{s}" for s in SCENARIOS} <= names, names


async def test_every_stored_history_replays_cleanly() -> None:
    reports = await replay(load_history_files(stored()), make_replayer)
    assert len(reports) == len(stored()) > 0
    bad = [f"{r.source}: {r.outcome.value}: {r.reason}" for r in reports if r.outcome != ReplayOutcome.CLEAN]
    assert not bad, "stored histories no longer replay (see tests/histories/README.md):\n" + "\n".join(bad)


def test_the_replayer_takes_the_workers_workflows() -> None:
    assert set(workflow_names(current_workflows())) >= {WorkflowType.FAILOVER.value}


# ------------------------------------------------------------------ a breaking change


async def test_a_removed_step_is_reported_as_nondeterministic_with_a_reason() -> None:
    # The changed copy breaks the decide phase, and the SDK names the missing step (of a run
    # whose steps are queued activities: a local one is named by its sequence number only).
    path = HISTORIES / f"failover-succeeded-queues{HISTORY_SUFFIX}"
    [report] = await replay(load_history_files([path]), partial(make_replayer, [FailoverWithoutSignals]))
    assert report.outcome == ReplayOutcome.NONDETERMINISTIC, report
    assert report.workflow_id == "failover-succeeded-queues" and report.workflow_type == "FailoverWorkflow"
    # The reason is the SDK's: which event did not match a command; that event is the
    # scheduling of the step that was removed.
    found = re.search(r"HistoryEvent\(id: (\d+), ActivityTaskScheduled\)", report.reason)
    assert "Nondeterminism" in report.reason and found, report.reason
    [event] = [e for e in json.loads(path.read_text())["events"] if e["eventId"] == found[1]]
    assert event["activityTaskScheduledEventAttributes"]["activityType"]["name"] == "gather_signals"


async def test_every_history_is_reported_never_stopping_at_the_first_failure(tmp_path: Path) -> None:
    good = (HISTORIES / f"failover-approved{HISTORY_SUFFIX}").read_text()
    (tmp_path / f"a-garbage{HISTORY_SUFFIX}").write_text("{not json")
    renamed = good.replace('"name": "FailoverWorkflow"', '"name": "NoSuchWorkflow"')
    assert renamed != good
    (tmp_path / f"b-unknown-type{HISTORY_SUFFIX}").write_text(renamed)
    (tmp_path / "run-1").mkdir()
    (tmp_path / "run-1" / "history.json").write_text(good)  # an evidence folder's export
    (tmp_path / "run-1" / "evidence.json").write_text("{}")  # not a history: not picked up
    (tmp_path / f"c-changed{HISTORY_SUFFIX}").write_text(
        (HISTORIES / f"failover-succeeded{HISTORY_SUFFIX}").read_text()
    )

    reports = await replay(
        load_history_files(find_history_files(tmp_path)), partial(make_replayer, [FailoverWithoutSignals])
    )
    by_source = {
        Path(r.source).name if r.source.endswith(HISTORY_SUFFIX) else Path(r.source).parent.name: r
        for r in reports
    }
    assert len(reports) == 4
    assert by_source[f"a-garbage{HISTORY_SUFFIX}"].outcome == ReplayOutcome.ERROR
    assert "unreadable" in by_source[f"a-garbage{HISTORY_SUFFIX}"].reason
    unknown = by_source[f"b-unknown-type{HISTORY_SUFFIX}"]
    assert unknown.outcome == ReplayOutcome.ERROR and "NoSuchWorkflow" in unknown.reason
    assert by_source[f"c-changed{HISTORY_SUFFIX}"].outcome == ReplayOutcome.NONDETERMINISTIC
    # An evidence folder's export: the step is gone from every failover, so this one diverges
    # too; its id comes from the start event, not from the folder's name.
    assert by_source["run-1"].workflow_id == "failover-approved"
    assert by_source["run-1"].outcome == ReplayOutcome.NONDETERMINISTIC


async def test_in_parallel_every_verdict_is_the_same_and_in_order(tmp_path: Path) -> None:
    """Split across processes (each reading its own files), the reports are those of one
    replayer reading them here, history by history, in the order of the files."""
    kinds = {
        "garbage": "{not json",
        "unknown-type": (HISTORIES / f"failover-approved{HISTORY_SUFFIX}")
        .read_text()
        .replace('"name": "FailoverWorkflow"', '"name": "NoSuchWorkflow"'),
        "changed": (HISTORIES / f"failover-succeeded{HISTORY_SUFFIX}").read_text(),
        "clean": (HISTORIES / f"burst-scaled-in{HISTORY_SUFFIX}").read_text(),
    }
    paths = []
    for i in range(2 * PER_PROCESS):
        kind = list(kinds)[i % len(kinds)]
        paths.append(tmp_path / f"{i:03d}-{kind}{HISTORY_SUFFIX}")
        paths[-1].write_text(kinds[kind])
    replayer = partial(make_replayer, [FailoverWithoutSignals, *current_workflows()[1:]])
    here = await replay_files(paths, replayer, processes=1)
    spread = await replay_files(paths, replayer, processes=2)
    assert [r.model_dump() for r in spread] == [r.model_dump() for r in here]
    assert [Path(r.source).name for r in spread] == [p.name for p in paths]
    kind_of = {str(p): p.name.split("-", 1)[1].removesuffix(HISTORY_SUFFIX) for p in paths}
    outcomes = {(kind_of[r.source], r.outcome) for r in spread}
    assert outcomes == {
        ("garbage", ReplayOutcome.ERROR),
        ("unknown-type", ReplayOutcome.ERROR),
        ("changed", ReplayOutcome.NONDETERMINISTIC),
        ("clean", ReplayOutcome.CLEAN),
    }


def test_cli_replay_exit_code_and_json(tmp_path: Path) -> None:
    runner = CliRunner()
    current = tmp_path / "current"  # the CLI reads a folder with its subfolders: not the retired one
    current.mkdir()
    for path in stored():
        (current / path.name).write_bytes(path.read_bytes())
    ok = runner.invoke(audit_app, ["replay", "--from-dir", str(current), "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["ok"] and data["counts"]["clean"] == len(stored())
    assert all(r["outcome"] == "clean" for r in data["results"])

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / f"x{HISTORY_SUFFIX}").write_text("[]")
    bad = runner.invoke(
        audit_app, ["replay", "--from-dir", str(current), "--from-dir", str(tmp_path / "bad")]
    )
    assert bad.exit_code == 1, bad.output
    assert "replayed cleanly" in bad.output and "error" in bad.output
    assert f"{len(stored())} of {len(stored()) + 1} replayed cleanly" in bad.output

    nothing = runner.invoke(audit_app, ["replay"])
    assert nothing.exit_code == 2 and "--from-dir" in nothing.output


def _texts(node: Any) -> list[str]:
    """Every string of a history's JSON, payloads (base64) decoded."""
    if isinstance(node, dict):
        return [t for k, v in node.items() for t in (_decoded(v) if k == "data" else _texts(v))]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return [node] if isinstance(node, str) else []


def _decoded(value: Any) -> list[str]:
    return [base64.b64decode(value).decode(errors="replace")] if isinstance(value, str) else _texts(value)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_stored_histories_carry_no_machine_paths(scenario: str) -> None:
    """capture.py replaces the lab's directory, the checkout and the virtualenv."""
    data = json.loads((HISTORIES / f"failover-{scenario}{HISTORY_SUFFIX}").read_text())
    repo = str(Path(__file__).parents[2])
    for text in _texts(data):
        for fragment in (repo, sys.prefix, "/tmp/", "/home/"):
            assert fragment not in text, (fragment, text[:200])


def test_the_evidence_step_of_every_stored_history_is_found() -> None:
    """Histories from before the evidence result carried the manifest's digest: it is derived
    from the recorded file digests (the manifest's layout is deterministic)."""
    for src in load_history_files(stored()):
        assert src.history is not None, src.error
        started = src.history.events[0].workflow_execution_started_event_attributes
        if started.workflow_type.name in NO_EVIDENCE:
            continue
        rec = recorded_evidence(src.history)
        assert rec is not None, src.label
        assert "evidence.json" in rec.files and rec.activity.endswith("evidence"), src.label
        digest = hashlib.sha256(manifest_text(rec.files).encode()).hexdigest()
        # Recorded by the evidence step since it carried it; derived for older histories.
        assert rec.manifest_sha256 == digest, src.label
