"""The runbook base: every runbook workflow stands on it, with one Phase type for all."""

from __future__ import annotations

import inspect

from temporalio import workflow

from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
from hybridops.contracts.base import Phase
from hybridops.contracts.bootstrap import BootstrapStep
from workflows import approval, runbook, saga
from workflows.registry import WORKFLOWS

RUNBOOKS = [w for w in WORKFLOWS if issubclass(w, runbook.RunbookBase)]


def test_every_runbook_workflow_is_a_runbook() -> None:
    names = {w.__name__ for w in RUNBOOKS}
    assert names == {
        "FailoverWorkflow",
        "FailbackWorkflow",
        "DrillWorkflow",
        "BurstWorkflow",
        "BootstrapWorkflow",
    }


def test_every_runbook_answers_progress_and_the_gated_ones_approve() -> None:
    for w in RUNBOOKS:
        defn = workflow._Definition.from_class(w)
        assert defn is not None and PROGRESS_QUERY in defn.queries, w
        gated = issubclass(w, approval.ApprovalGate)
        assert (APPROVE_UPDATE in defn.updates) == gated, w


def test_the_parts_stand_on_their_own_and_each_runbook_takes_the_ones_it_needs() -> None:
    # Each part needs only the base: none is built on another part (break glass is an
    # approval gate that also overrides safety rules).
    parts = [approval.ApprovalGate, saga.LeasedSaga]
    for part in parts:
        assert issubclass(part, runbook.RunbookBase)
        assert not any(issubclass(part, other) for other in parts if other is not part), part
    assert issubclass(approval.BreakGlass, approval.ApprovalGate)
    uses = {
        w.__name__: {
            p.__name__
            for p in (approval.ApprovalGate, approval.BreakGlass, saga.LeasedSaga)
            if issubclass(w, p)
        }
        for w in RUNBOOKS
    }
    assert uses == {
        "FailoverWorkflow": {"ApprovalGate", "BreakGlass", "LeasedSaga"},
        "FailbackWorkflow": {"ApprovalGate", "BreakGlass", "LeasedSaga"},
        "BurstWorkflow": {"ApprovalGate"},
        "DrillWorkflow": set(),
        "BootstrapWorkflow": set(),
    }


def test_a_runbook_module_holds_only_its_sequence() -> None:
    # The handlers, the gate, break glass, the saga and the evidence ending live once, in the
    # base and its parts.
    shared = {
        "progress",
        "approve",
        "_validate_approve",
        "_approval_gate",
        "_guarded",
        "_override_gate",
        "_step",
        "_undo",
        "_end",
        "_saga",
        "_close_if_promoted",
    }
    for w in RUNBOOKS:
        own = {n for n, _ in inspect.getmembers(w) if n in vars(w)}
        assert not own & shared, (w.__name__, own & shared)


def test_bootstrap_phases_are_its_steps() -> None:
    assert all(Phase(s.value) for s in BootstrapStep)
