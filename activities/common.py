"""The activity boundary: one decorator that every step goes through.

It does three things once, so no activity has to: applies lab faults (chaos, tests), turns
domain errors into ``ApplicationError`` with the right ``non_retryable`` flag (a workflow
never loops on a bug), and stamps the attempt number on the result for the evidence.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from drivers.lazy import Drivers
from drivers.progress import reporting
from hybridops import evidence, metrics
from hybridops.constants import FAULTS_DIR_ENV, ActivityName
from hybridops.contracts.base import ActivityResult, EvidenceResult
from hybridops.contracts.evidence import AnyRunbookResult, evidence_of
from hybridops.errors import ConfigError, HybridOpsError, InjectedFault, SafetyRuleViolated
from hybridops.inventory import Inventory

P = ParamSpec("P")
R = TypeVar("R", bound=ActivityResult)


_calls: dict[tuple[int, str], int] = {}
"""Calls per (faults table, step), for ``fail:N``."""


CRASH_POINTS = ("after", "before")
"""Where a ``crash`` fault kills the worker: ``after`` the step did its work and before its
result is reported (done but not recorded, the nastiest boundary; ``crash`` alone), or
``before`` it starts; ``at-PHASE``: in the middle, when the step's driver reports progress
``{"phase": PHASE}`` (a restore's ``swapping``: the copy complete, not yet in place)."""
AT_PHASE = "at-"


def _crash_point(step: str, spec: str) -> str:
    _, _, arg = spec.partition(":")
    point = arg or "after"
    if point not in CRASH_POINTS and not (point.startswith(AT_PHASE) and len(point) > len(AT_PHASE)):
        raise ConfigError(
            f"faults.{step}: unknown crash point {spec!r} (use 'crash', 'crash:after', 'crash:before'"
            " or 'crash:at-PHASE')"
        )
    return point


def crashing_at_phase(
    faults: dict[str, str], step: str, listener: Callable[..., None] | None
) -> Callable[..., None] | None:
    """``listener``, wrapped to kill the worker once when the driver reports the phase a
    ``crash:at-PHASE`` fault of ``step`` names (unchanged without one)."""
    spec = faults.get(step, "")
    if spec.partition(":")[0] != "crash" or not _crash_point(step, spec).startswith(AT_PHASE):
        return listener
    phase = _crash_point(step, spec).removeprefix(AT_PHASE)

    def report(*details: Any) -> None:
        if any(isinstance(d, dict) and d.get("phase") == phase for d in details):
            crash_once(step)
        if listener is not None:
            listener(*details)

    return report


def _faults_dir(step: str) -> Path:
    folder = os.environ.get(FAULTS_DIR_ENV)
    if not folder:
        raise ConfigError(f"faults.{step}: a crash fault needs {FAULTS_DIR_ENV} (the lab sets it)", step=step)
    return Path(folder)


def crash_mark(folder: Path, step: str) -> Path:
    """The file whose existence means ``step``'s crash fault has fired (or is disarmed)."""
    return folder / f"crash-{step}"


def crash_once(step: str) -> None:
    """SIGKILL this process, the first time only: a mark in ``$HYBRIDOPS_FAULTS_DIR`` (made
    before the kill, durably) keeps the restarted worker alive when it runs the step again.

    Raises :class:`ConfigError` naming the step when the directory is not configured: without
    the mark a crash fault would kill every worker that ever runs the step."""
    folder = _faults_dir(step)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(crash_mark(folder, step), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return  # fired already, in this worker or a previous one
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def apply_fault(faults: dict[str, str], step: str) -> Awaitable[None]:
    """Run the fault the lab inventory injects into ``step`` before it runs, if any."""

    async def _run() -> None:
        spec = faults.get(step)
        if not spec:
            return
        kind, _, arg = spec.partition(":")
        if kind == "fail":
            # fail:N fails the first N calls of the step in this process (a compensation that
            # calls the same activity then succeeds); fail alone fails every call.
            calls = _calls[(id(faults), step)] = _calls.get((id(faults), step), 0) + 1
            if not arg or calls <= int(arg):
                raise InjectedFault(f"fault injected into step {step}", step=step)
            return
        if kind == "delay":
            await asyncio.sleep(float(arg or "1"))
            return
        if kind == "block" and arg:
            # As a safety rule blocks a guarded step: the run offers the override by name.
            raise SafetyRuleViolated(
                f"{step} blocked by safety rules: {arg} (lab): fault injected", rules=arg, sites="lab"
            )
        if kind == "crash":
            _faults_dir(step)  # a missing directory fails the step before it does anything
            if _crash_point(step, spec) == "before":
                crash_once(step)
            return
        kinds = "'fail', 'fail:N', 'delay:S', 'block:RULE', 'crash' or 'crash:before'"
        raise ConfigError(f"faults.{step}: unknown fault {spec!r} (use {kinds})")

    return _run()


def apply_fault_after(faults: dict[str, str], step: str) -> None:
    """The fault that strikes once ``step`` did its work (``crash``, ``crash:after``)."""
    spec = faults.get(step, "")
    if spec.partition(":")[0] == "crash" and _crash_point(step, spec) == "after":
        crash_once(step)


class KeepAlive:
    """A queued step's heartbeats: each progress report a driver makes, and, between them, the
    last one again every quarter of the heartbeat timeout, so a step that works quietly (a
    ``pg_ctl stop``, a DNS change's wait) is known alive, and a worker that died is known dead
    within the heartbeat timeout (workflows/steps.py), not at the step's whole timeout."""

    def __init__(self, timeout: timedelta | None) -> None:
        self.every = timeout.total_seconds() / 4 if timeout else None
        self.last: tuple[Any, ...] = ()

    def report(self, *details: Any) -> None:
        self.last = details
        activity.heartbeat(*details)

    async def beat(self) -> None:
        assert self.every is not None
        while True:
            await asyncio.sleep(self.every)
            activity.heartbeat(*self.last)


@contextlib.contextmanager
def keeping(alive: KeepAlive | None) -> Iterator[None]:
    """Heartbeat ``alive`` in the background while the block runs (nothing for a local step)."""
    task = asyncio.get_running_loop().create_task(alive.beat()) if alive and alive.every else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()


def step_activity(
    activity_name: ActivityName,
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """Declare a method of an activities class as the activity ``activity_name``.

    The class must have a ``faults`` attribute (``dict[str, str]``).
    """
    name = str(activity_name)  # the plain string: fault tables and logs key on it

    def wrap(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(fn)
        async def run(self: Any, *args: Any) -> R:
            info = activity.info()
            attempt = info.attempt
            # Drivers report progress (drivers/progress.py); a queued activity heartbeats it. A
            # local activity has no heartbeat (the SDK warns on each): its worker keeps it alive.
            alive = None if info.is_local else KeepAlive(info.heartbeat_timeout)
            try:
                faults = getattr(self, "faults", {})
                listener = crashing_at_phase(faults, name, alive.report if alive else None)
                with reporting(listener), keeping(alive):
                    await apply_fault(getattr(self, "faults", {}), name)
                    result = await fn(self, *args)
                apply_fault_after(getattr(self, "faults", {}), name)
            except HybridOpsError as err:
                activity.logger.warning("%s failed on attempt %d: %s", name, attempt, err)
                raise ApplicationError(
                    str(err),
                    {"attempt": attempt, **{k: str(v) for k, v in err.ids.items()}},
                    type=type(err).__name__,
                    non_retryable=not err.retryable,
                ) from err
            result.attempt = attempt
            return result

        return cast(Callable[..., Awaitable[R]], activity.defn(name=name)(run))

    return wrap


class Activities(abc.ABC):
    """Base of every activities class, built once per worker: the inventory, the drivers
    (built on first use, shared by every class of one worker; a test hands in fakes), the
    Temporal client (the evidence steps fetch the run's history; None outside a worker) and
    the inventory's injected faults, which :func:`step_activity` reads."""

    def __init__(
        self, inventory: Inventory, drivers: Drivers | None = None, client: Client | None = None
    ) -> None:
        self.inventory = inventory
        self.drivers = drivers or Drivers(inventory)
        self.client = client
        self.faults = inventory.faults

    @abc.abstractmethod
    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this class, for worker registration."""


def result_of(result: type[R], answer: BaseModel, **extra: Any) -> R:
    """A step's result from its driver's answer (the same fields, by name) and what only the
    step knows (``extra``): drivers return their own value types, never a runbook's."""
    return result.model_validate({**answer.model_dump(), **extra})


def activity_name(fn: Callable[..., Any]) -> str:
    """The name ``fn`` is registered under (its ``activity.defn``)."""
    # The SDK's own reading of the definition, so a test's plain @activity.defn counts too.
    name = activity._Definition.must_from_callable(fn).name
    if name is None:
        raise ConfigError(f"{fn!r} is a dynamic activity: it has no name a step schedules")
    return name


async def write_run_evidence(
    client: Client | None, output_dir: Path, result: AnyRunbookResult
) -> EvidenceResult:
    """Every runbook's evidence step: ``output_dir/<runbook>/<workflow id>/`` (made path-safe
    and contained: :func:`hybridops.evidence.evidence_folder`) with the run's evidence (the one
    shape every runbook shares, built from its result: :func:`evidence_of`), its reports
    rendered from that evidence (:mod:`hybridops.report`), the run's history (fetched from
    the server) and the manifest. The result carries every file's SHA-256 and the manifest's
    own, so the run's history (not only the folder) says what the folder held."""
    history_json: str | None = None
    if client is not None:
        handle = client.get_workflow_handle(result.workflow_id, run_id=result.run_id)
        history_json = (await handle.fetch_history()).to_json()
    folder = evidence.evidence_folder(Path(output_dir), result.runbook, result.workflow_id)
    record = evidence_of(result)
    files = await asyncio.to_thread(evidence.write_folder, folder, record, history_json)
    manifest = await asyncio.to_thread(evidence.sha256, folder / evidence.MANIFEST)
    # The run's end into this worker's metrics, once the evidence is written (hybridops/metrics.py).
    metrics.record_run(record)
    return EvidenceResult(path=str(folder), files=files, manifest_sha256=manifest, changed=True)
