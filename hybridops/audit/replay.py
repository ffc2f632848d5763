"""Replay histories against the current workflow code: does today's code still produce the
commands those runs recorded?

A replay that does not match is a workflow change that would break runs of the old code still
open (or replayed for a query): it must be versioned with ``workflow.patched`` instead. Every
history is replayed and reported; one failure never stops the others.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from enum import StrEnum

from pydantic import BaseModel
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError, _Definition

from hybridops.audit.histories import HistorySource
from hybridops.client import DATA_CONVERTER

_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


class ReplayOutcome(StrEnum):
    """How one history replayed."""

    CLEAN = "clean"
    """Replayed cleanly: the current code makes the same commands."""
    NONDETERMINISTIC = "nondeterministic"
    """The current code diverges from the history (the reason says where)."""
    ERROR = "error"
    """Not replayed: unreadable, an unknown workflow type, or the replay itself failed."""

    @property
    def label(self) -> str:
        return "replayed cleanly" if self is ReplayOutcome.CLEAN else self.value


class ReplayReport(BaseModel):
    """The verdict on one history."""

    source: str
    workflow_id: str
    run_id: str = ""
    workflow_type: str = ""
    outcome: ReplayOutcome
    reason: str = ""


def current_workflows() -> list[type]:
    """The workflow classes the workers register today (``workers.main.WORKFLOWS``), so a new
    runbook is replayed as soon as a worker serves it."""
    from workers.main import WORKFLOWS

    return list(WORKFLOWS)


def workflow_names(workflows: Sequence[type]) -> dict[str, type]:
    names: dict[str, type] = {}
    for cls in workflows:
        defn = _Definition.from_class(cls)
        if defn is not None and defn.name:
            names[defn.name] = cls
    return names


async def replay(
    sources: Sequence[HistorySource], workflows: Sequence[type] | None = None
) -> list[ReplayReport]:
    """Replay every source with ``workflows`` (default: :func:`current_workflows`)."""
    workflows = list(workflows) if workflows is not None else current_workflows()
    known = workflow_names(workflows)
    reports: list[ReplayReport] = []
    to_replay: dict[int, ReplayReport] = {}
    histories: list[WorkflowHistory] = []
    for src in sources:
        rep = ReplayReport(
            source=src.label,
            workflow_id=src.workflow_id,
            run_id=src.run_id,
            workflow_type=src.workflow_type,
            outcome=ReplayOutcome.ERROR,
            reason=src.error,
        )
        reports.append(rep)
        if src.history is None:
            continue
        if rep.workflow_type not in known:
            rep.reason = f"unknown workflow type {rep.workflow_type!r} (this code has {sorted(known)})"
            continue
        to_replay[id(src.history)] = rep
        histories.append(src.history)
    if histories:
        await _replay_all(histories, workflows, to_replay)
    return reports


async def _replay_all(
    histories: list[WorkflowHistory], workflows: Sequence[type], reports: dict[int, ReplayReport]
) -> None:
    replayer = Replayer(workflows=list(workflows), data_converter=DATA_CONVERTER)

    async def each() -> AsyncIterator[WorkflowHistory]:
        for h in histories:
            yield h

    async with replayer.workflow_replay_iterator(each()) as results:
        async for result in results:
            rep = reports[id(result.history)]
            failure = result.replay_failure
            if failure is None:
                rep.outcome, rep.reason = ReplayOutcome.CLEAN, ""
            elif isinstance(failure, NondeterminismError):
                rep.outcome, rep.reason = ReplayOutcome.NONDETERMINISTIC, core_message(str(failure))
            else:
                rep.outcome, rep.reason = ReplayOutcome.ERROR, f"replay failed: {failure}"


def core_message(text: str) -> str:
    """The message sdk-core put in its failure ("[TMPRL1100] Nondeterminism error: Activity type
    of recorded marker 'x' does not match ..."), out of the debug dump that wraps it."""
    found = _CORE_MESSAGE.search(text)
    return found.group(1).replace('\\"', '"') if found else text


def all_clean(reports: Sequence[ReplayReport]) -> bool:
    return all(r.outcome == ReplayOutcome.CLEAN for r in reports)
