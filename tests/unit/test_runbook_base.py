"""The runbook base: every runbook workflow stands on it, with one Phase type for all."""

from __future__ import annotations

import inspect

from temporalio import workflow

from hybridops.constants import APPROVE_UPDATE, PROGRESS_QUERY
from hybridops.contracts.base import Phase
from hybridops.contracts.bootstrap import BootstrapStep
from workflows import runbook
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
        gated = issubclass(w, runbook.GatedRunbook)
        assert (APPROVE_UPDATE in defn.updates) == gated, w


def test_a_runbook_module_holds_only_its_sequence() -> None:
    # The handlers, the gate, the saga and the evidence ending live once, in the base.
    shared = {"progress", "approve", "_validate_approve", "_end", "_saga", "_close_if_promoted"}
    for w in RUNBOOKS:
        own = {n for n, _ in inspect.getmembers(w) if n in vars(w)}
        assert not own & shared, (w.__name__, own & shared)


def test_bootstrap_phases_are_its_steps() -> None:
    assert all(Phase(s.value) for s in BootstrapStep)
