"""Running a backup tool (``pg_basebackup``, ``wal-g``) as a child process, safely.

One place does what every call needs: secrets only ever in the child's environment (a secret
found in the command line is refused before anything runs), the command in its own process
group so a timeout or a cancellation kills all of it, heartbeats while it runs, and errors
that carry the command and the last lines of its stderr with every secret redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from drivers.backup.errors import BackupToolFailed, BackupToolTimeout
from drivers.postgres import binaries as pgbin
from drivers.process import (  # shared with every CLI driver; re-exported for this package
    HEARTBEAT_S,
    REDACTED,
    STDERR_LINES,
    describe,
    kill_group,
    redact,
    refuse_secrets,
    tail,
)
from drivers.progress import report as report_progress
from hybridops.errors import ConfigError, HybridOpsError

__all__ = ["HEARTBEAT_S", "REDACTED", "STDERR_LINES", "ToolOutput", "describe", "redact", "run_tool", "tail"]


@dataclass(frozen=True)
class ToolOutput:
    stdout: str
    stderr: str
    """Redacted."""
    seconds: float


def _demote(run_as: str | None) -> dict[str, Any]:
    ids = pgbin.user_ids(run_as)
    if ids is None or os.geteuid() != 0:
        return {}
    return {"user": ids[0], "group": ids[1], "extra_groups": []}


_kill_group = kill_group


async def run_tool(
    argv: list[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    run_as: str | None = None,
    classify: Callable[[str], HybridOpsError | None] | None = None,
    ids: Mapping[str, object] | None = None,
) -> ToolOutput:
    """Run ``argv`` to completion within ``timeout`` seconds and return its output.

    ``env`` is the child's whole environment; ``secrets`` are values that must never show
    (in argv, which is refused, or in errors and output, which are redacted). ``classify``
    may turn a failure's (redacted) stderr into a more precise error, e.g. "backup not found".
    Raises :class:`BackupToolFailed` (non-zero exit), :class:`BackupToolTimeout`.
    """
    secrets = [s for s in secrets if s]
    refuse_secrets(argv, secrets)
    command = describe(argv)
    ids = dict(ids or {})
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd="/",
            start_new_session=True,  # its own process group: a timeout kills all of it
            **_demote(run_as),
        )
    except OSError as err:
        raise ConfigError(f"cannot run {argv[0]}: {err.strerror}", **ids) from None
    communicate = asyncio.ensure_future(proc.communicate())
    deadline = started + timeout
    try:
        while not communicate.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_group(proc)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(communicate, 10)
                raise BackupToolTimeout(f"{command} timed out after {timeout:g}s; killed", **ids)
            await asyncio.wait({communicate}, timeout=min(remaining, HEARTBEAT_S))
            if not communicate.done():
                report_progress({"running": argv[0], "seconds": round(time.monotonic() - started)})
    except asyncio.CancelledError:
        _kill_group(proc)
        communicate.cancel()
        raise
    out_bytes, err_bytes = communicate.result()
    stdout = redact(out_bytes.decode(errors="replace"), secrets)
    stderr = redact(err_bytes.decode(errors="replace"), secrets)
    if proc.returncode != 0:
        precise = classify(stderr) if classify else None
        if precise is not None:
            raise precise
        raise BackupToolFailed(f"{command} exited {proc.returncode}: {tail(stderr) or '(no stderr)'}", **ids)
    return ToolOutput(stdout=stdout, stderr=stderr, seconds=time.monotonic() - started)
