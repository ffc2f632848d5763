"""Running a command-line tool as a child process, safely: shared by every driver that wraps a
CLI (``wal-g``, ``pg_basebackup``, ``terraform``).

What every call needs, in one place: secrets only ever in the child's environment (a secret
found in the command line is refused before anything runs), the command in its own process
group so that stopping it stops all of it, output and errors with every secret redacted, and
a way to stop a tool that must be asked first (``terraform`` releases its state lock on
SIGINT) before it is killed.

:func:`stream_tool` runs a tool whose standard output is a stream of lines to act on as they
come (``terraform -json``); :func:`drivers.backup.process.run_tool` runs one to completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hybridops.childenv import child_environment
from hybridops.errors import ConfigError, HybridOpsError
from hybridops.secrets import MIN_SECRET_LEN, redaction_list

REDACTED = "[REDACTED]"
STDERR_LINES = 20
"""How many of the last stderr lines an error carries."""
HEARTBEAT_S = 5.0
"""How often a running tool is reported alive when it prints nothing."""
LINE_LIMIT = 16 * 1024 * 1024
"""Longest stdout line read (``terraform show -json`` prints a whole plan on one line)."""


@dataclass(frozen=True)
class StreamedOutput:
    """How a streamed tool ended."""

    returncode: int
    stderr: str
    """Redacted."""
    seconds: float


def tool_environment(
    inherited: Iterable[str], plain: Mapping[str, str], secret_refs: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """A tool's whole environment (:func:`hybridops.childenv.child_environment`: ``SAFE_ENV``
    and ``inherited`` from the worker's, then ``plain``), then the secret references resolved
    now; and the secret values, to redact."""
    from drivers.secrets import resolve_secret

    resolved = {name: v for name, ref in secret_refs.items() if (v := resolve_secret(ref)) is not None}
    env = child_environment({**plain, **resolved}, inherited)
    return env, [v for v in resolved.values() if len(v) >= MIN_SECRET_LEN]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, in every form it may show (whole, JSON-escaped,
    and line by line for a PEM block or JSON credentials: :func:`hybridops.secrets.secret_forms`),
    longest first, so none is left half-shown."""
    for form in redaction_list(secrets):
        text = text.replace(form, REDACTED)
    return text


def describe(argv: list[str]) -> str:
    """The command as a shell would show it (it never holds a secret: :func:`refuse_secrets`)."""
    return " ".join(shlex.quote(a) for a in argv)


def tail(text: str, lines: int = STDERR_LINES) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-lines:])


def refuse_secrets(argv: list[str], secrets: Iterable[str]) -> None:
    """Raise :class:`ConfigError` when a secret is in ``argv`` (where ``ps`` shows it)."""
    forms = redaction_list(secrets)
    if any(form in arg for form in forms for arg in argv):
        raise ConfigError(f"refusing to run {argv[0]}: a secret would be in its command line")


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the process group ``proc`` leads (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def stop(proc: asyncio.subprocess.Process, grace: float) -> None:
    """Stop ``proc``: SIGINT first and up to ``grace`` seconds for it to finish cleanly (a tool
    holding a lock releases it), then SIGKILL for its whole group, whatever is left of it.

    A second cancellation while waiting cuts the wait short; the kill still happens.
    """
    try:
        if grace > 0 and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
    finally:
        kill_group(proc)


async def stream_tool(
    argv: list[str],
    *,
    on_line: Callable[[str], None],
    env: Mapping[str, str],
    cwd: Path | str = "/",
    secrets: Iterable[str] = (),
    timeout: float | None = None,
    interrupt_grace: float = 0.0,
    on_idle: Callable[[float], None] | None = None,
    on_timeout: Callable[[str], HybridOpsError],
    ids: Mapping[str, object] | None = None,
) -> StreamedOutput:
    """Run ``argv`` and hand each line of its standard output (redacted) to ``on_line`` as it
    comes; return its exit code and (redacted) stderr. A non-zero exit is not an error here: the
    caller knows what the tool's failures mean.

    ``env`` is the child's whole environment; ``secrets`` must never show (in argv: refused;
    in output: redacted). ``on_idle(seconds)`` is called every :data:`HEARTBEAT_S` while the
    tool prints nothing. Past ``timeout`` seconds, or when the calling task is cancelled, the
    tool is stopped with :func:`stop` (``interrupt_grace`` seconds to exit after SIGINT); then
    ``on_timeout(message)`` is raised, or the cancellation goes on.
    """
    secrets = [s for s in secrets if s]
    refuse_secrets(argv, secrets)
    ids = dict(ids or {})
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,  # its own process group: stopping it stops its children too
            limit=LINE_LIMIT,
        )
    except OSError as err:
        raise ConfigError(f"cannot run {argv[0]}: {err.strerror}", **ids) from None
    assert proc.stdout is not None and proc.stderr is not None
    stderr_task = asyncio.ensure_future(proc.stderr.read())
    stdout = proc.stdout

    async def pump() -> None:
        while line := await stdout.readline():
            on_line(redact(line.decode(errors="replace").rstrip("\n"), secrets))
        await proc.wait()

    pumping = asyncio.ensure_future(pump())
    deadline = None if timeout is None else started + timeout
    try:
        while not pumping.done():
            wait = HEARTBEAT_S if deadline is None else min(HEARTBEAT_S, deadline - time.monotonic())
            if wait <= 0:
                pumping.cancel()
                await stop(proc, interrupt_grace)
                stderr_task.cancel()
                raise on_timeout(f"{describe(argv)} timed out after {timeout:g}s; stopped")
            await asyncio.wait({pumping}, timeout=wait)
            if not pumping.done() and on_idle is not None:
                on_idle(time.monotonic() - started)
        pumping.result()  # a callback's exception surfaces here
    except asyncio.CancelledError:
        pumping.cancel()
        await stop(proc, interrupt_grace)
        stderr_task.cancel()
        raise
    except BaseException:
        await stop(proc, 0)
        stderr_task.cancel()
        raise
    stderr = redact((await stderr_task).decode(errors="replace"), secrets)
    kill_group(proc)  # whatever it left behind (plugins), now that it has exited
    assert proc.returncode is not None
    return StreamedOutput(returncode=proc.returncode, stderr=stderr, seconds=time.monotonic() - started)
