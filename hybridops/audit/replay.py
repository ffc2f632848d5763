"""Replay histories against the current workflow code: does today's code still produce the
commands those runs recorded?

A replay that does not match is a workflow change that would break runs of the old code still
open (or replayed for a query): it must be versioned with ``workflow.patched`` instead. Every
history is replayed and reported; one failure never stops the others.

At scale (an audit of every closed run, a directory of a thousand histories) the work is
CPU-bound Python: parsing a history's JSON (``WorkflowHistory.from_json``, about 40 ms for one
of ours) and replaying it in the sandbox (about 55 ms). One replayer handles one history at a
time, so the histories are split across processes, one replayer each over an iterator of its
share, and history files are read in those processes too (``bench/replay.py`` has the figures).

The replayer is handed in (:data:`MakeReplayer`): which workflows, with which interceptors, is
the workers' knowledge (``hybridops/cli/replayer.py``), and this package stays below them.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError, _Definition

from hybridops.audit.histories import HistorySource, load_history_files
from hybridops.client import CORE_MESSAGE

log = logging.getLogger(__name__)

PER_PROCESS = 40
"""Fewer histories than this per process are replayed here: starting a process (importing the
SDK and the workflows) costs about as much as replaying 20 to 30 histories."""

T = TypeVar("T")

MakeReplayer = Callable[[], Replayer]
"""Builds the replayer every history goes through: today's workflows, with the interceptors
the workers run them with. It crosses into the replay processes, so it must pickle: a
module-level function, or a ``functools.partial`` of one."""


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


def workflow_names(workflows: Sequence[type]) -> dict[str, type]:
    names: dict[str, type] = {}
    for cls in workflows:
        defn = _Definition.from_class(cls)
        if defn is not None and defn.name:
            names[defn.name] = cls
    return names


async def replay(
    sources: Sequence[HistorySource], make_replayer: MakeReplayer, processes: int | None = None
) -> list[ReplayReport]:
    """Replay every source through a replayer ``make_replayer`` builds; the reports in the
    order of ``sources``. Many sources are split across ``processes`` (default: one per CPU;
    1 replays here, one at a time)."""
    return await _in_parallel(list(sources), _already_loaded, make_replayer, processes)


async def replay_files(
    paths: Sequence[Path], make_replayer: MakeReplayer, processes: int | None = None
) -> list[ReplayReport]:
    """Read and replay history files (an unreadable one is reported, never raised), in the
    order of ``paths``; read in the replaying processes, since parsing costs about as much as
    replaying (see the module's docstring)."""
    return await _in_parallel([str(p) for p in paths], _load_paths, make_replayer, processes)


async def _in_parallel(
    items: list[T],
    load: Callable[[list[T]], list[HistorySource]],
    make_replayer: MakeReplayer,
    processes: int | None,
) -> list[ReplayReport]:
    wanted = processes if processes is not None else (os.cpu_count() or 1)
    n = max(1, min(wanted, len(items) // PER_PROCESS))
    if n == 1:
        return await _replay_sources(load(items), make_replayer)
    # Round robin, so each process gets a like mix of runbooks (their replays differ in cost).
    shares = [items[i::n] for i in range(n)]
    try:
        done = await _in_processes(shares, load, make_replayer)
    except BrokenProcessPool as err:
        # A process died (killed, out of memory, or a main module without the
        # ``if __name__ == "__main__"`` guard that spawn needs): the same work, here.
        log.warning("replay processes failed (%s); replaying here, one at a time", err)
        return await _replay_sources(load(items), make_replayer)
    reports: list[ReplayReport | None] = [None] * len(items)
    for i, share_reports in enumerate(done):
        reports[i::n] = share_reports
    return [r for r in reports if r is not None]


async def _in_processes(
    shares: list[list[T]], load: Callable[[list[T]], list[HistorySource]], make_replayer: MakeReplayer
) -> list[list[ReplayReport]]:
    # spawn, never fork: the parent may already run the SDK's Rust runtime and its threads.
    with (
        tempfile.TemporaryDirectory(prefix="hybridops-replay-pyc-") as pyc,
        ProcessPoolExecutor(
            len(shares),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_cache_bytecode,
            initargs=(pyc,),
        ) as pool,
    ):
        loop = asyncio.get_running_loop()
        return await asyncio.gather(
            *(loop.run_in_executor(pool, _replay_share, load, share, make_replayer) for share in shares)
        )


def _cache_bytecode(prefix: str) -> None:
    """In a replay process: keep compiled bytecode (in ``prefix``, removed afterwards). The
    sandbox imports the workflow modules afresh for every history; where bytecode is not
    written (``PYTHONDONTWRITEBYTECODE``), each import compiled them from source again, about a
    quarter of a replay."""
    if sys.dont_write_bytecode:
        sys.pycache_prefix = prefix
        sys.dont_write_bytecode = False


def _already_loaded(sources: list[HistorySource]) -> list[HistorySource]:
    return sources


def _load_paths(paths: list[str]) -> list[HistorySource]:
    return load_history_files(Path(p) for p in paths)


def _replay_share(
    load: Callable[[list[T]], list[HistorySource]], share: list[T], make_replayer: MakeReplayer
) -> list[ReplayReport]:
    """One process's share, through one replayer."""
    return asyncio.run(_replay_sources(load(share), make_replayer))


async def _replay_sources(
    sources: Sequence[HistorySource], make_replayer: MakeReplayer
) -> list[ReplayReport]:
    replayer = make_replayer()
    known = workflow_names(replayer.config()["workflows"])
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
        await _replay_all(histories, replayer, to_replay)
    return reports


async def _replay_all(
    histories: list[WorkflowHistory], replayer: Replayer, reports: dict[int, ReplayReport]
) -> None:
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
    found = CORE_MESSAGE.search(text)
    return found.group(1).replace('\\"', '"') if found else text


def all_clean(reports: Sequence[ReplayReport]) -> bool:
    return all(r.outcome == ReplayOutcome.CLEAN for r in reports)
