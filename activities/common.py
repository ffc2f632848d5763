"""The activity boundary: one decorator that every step goes through.

It does three things once, so no activity has to: applies lab faults (chaos, tests), turns
domain errors into ``ApplicationError`` with the right ``non_retryable`` flag (a workflow
never loops on a bug), and stamps the attempt number on the result for the evidence.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from hybridops import evidence
from hybridops.errors import ConfigError, HybridOpsError, InjectedFault
from hybridops.models import ActivityResult, EvidenceResult

P = ParamSpec("P")
R = TypeVar("R", bound=ActivityResult)


_calls: dict[tuple[int, str], int] = {}
"""Calls per (faults table, step), for ``fail:N``."""


def apply_fault(faults: dict[str, str], step: str) -> Awaitable[None]:
    """Run the fault the lab inventory injects into ``step``, if any."""

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
        raise ConfigError(f"faults.{step}: unknown fault {spec!r} (use 'fail', 'fail:N' or 'delay:S')")

    return _run()


def step_activity(
    name: str,
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """Declare a method of an activities class as the activity ``name``.

    The class must have a ``faults`` attribute (``dict[str, str]``).
    """

    def wrap(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(fn)
        async def run(self: Any, *args: Any) -> R:
            # Outside an activity (the bench's plain-script baseline) it is attempt 1.
            attempt = activity.info().attempt if activity.in_activity() else 1
            try:
                await apply_fault(getattr(self, "faults", {}), name)
                result = await fn(self, *args)
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


async def write_run_evidence(
    client: Client | None, output_dir: Path, result: Any, report: str
) -> EvidenceResult:
    """Every runbook's evidence step: ``output_dir/<runbook>/<workflow id>/`` with the result,
    its report, the run's history (fetched from the server) and the manifest. The result
    carries every file's SHA-256 and the manifest's own, so the run's history (not only the
    folder) says what the folder held."""
    history_json: str | None = None
    if client is not None:
        handle = client.get_workflow_handle(result.workflow_id, run_id=result.run_id)
        history_json = (await handle.fetch_history()).to_json()
    folder = Path(output_dir) / result.runbook / result.workflow_id
    files = await asyncio.to_thread(evidence.write_folder, folder, result, report, history_json)
    manifest = await asyncio.to_thread(evidence.sha256, folder / evidence.MANIFEST)
    return EvidenceResult(path=str(folder), files=files, manifest_sha256=manifest, changed=True)
