"""The ``local`` PostgreSQL driver's server control: servers on this host, reached with libpq
(psycopg) and controlled with ``pg_ctl`` and their data directory.

What every part of the driver shares (:mod:`drivers.postgres.local` for the topology
steps, :mod:`drivers.postgres.rejoin` and :mod:`drivers.postgres.switchover` for
failback's): connecting (:mod:`drivers.postgres.sql`, with the SQL every driver shares), the
marks the driver leaves in a data directory, starting and stopping a server, waiting for it to
stream, heartbeating through long tool runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import psycopg

from drivers.postgres import binaries as pgbin
from drivers.postgres.sql import SqlSteps
from drivers.progress import report as report_progress
from drivers.secrets import resolve_secret
from hybridops.errors import ConfigError, DatabaseError, DatabaseUnreachable

FENCE_MARK = "hybridops.fence.json"
PROMOTE_MARK = "hybridops.promoted.json"
STANDBY_SIGNAL = "standby.signal"
PAUSE_MARK = "hybridops.pause.json"

T = TypeVar("T")


class LocalServer(SqlSteps):
    """The servers on this host: connections, data directory files, ``pg_ctl``. The hooks are
    implemented by :class:`drivers.postgres.local.LocalPostgresDriver` and its parts."""

    def _data_dir(self, site: str) -> Path:
        if not self.is_local(site):
            raise ConfigError(
                f"this process is not the agent of site {site}: its server and files are out of reach"
                f" (a step that needs them runs on the site's own queue, {self.inventory.site_queue(site)})",
                site=site,
            )
        data_dir = self.inventory.site(site).data_dir
        assert data_dir is not None  # the inventory validator guarantees it
        return data_dir

    async def _marks_over_sql(
        self, conn: psycopg.AsyncConnection[Any], *names: str
    ) -> list[dict[str, Any] | None]:
        """The marks ``names`` in the data directory of the server at the other end of
        ``conn``, read by the server itself (``pg_read_file``: a superuser, or a role granted
        ``pg_read_server_files``), for a process that is not that site's agent. A mark that
        cannot be read is None; a role that may not read files is an error naming the grant."""
        out: list[dict[str, Any] | None] = []
        for name in names:
            try:
                cur = await conn.execute("SELECT pg_read_file(%s, 0, 1048576, true)", (name,))
                row = await cur.fetchone()
            except psycopg.errors.InsufficientPrivilege:
                raise DatabaseError(
                    f"cannot read {name} over SQL (grant pg_read_server_files to the role HybridOps"
                    " connects with): the fence and promotion marks are part of the topology"
                ) from None
            text = row[0] if row else None
            try:
                out.append(json.loads(text) if text else None)
            except ValueError:
                out.append({})  # there, but not readable: it still marks the server
        return out

    def _password_env(self, site: str) -> dict[str, str]:
        """``PGPASSWORD`` for a client tool connecting to ``site`` (its own environment only:
        no tool inherits the worker's)."""
        password = resolve_secret(self.inventory.site(site).password_ref)
        return {"PGPASSWORD": password} if password else {}

    async def _pg_ctl(self, site: str, *args: str) -> str:
        return await pgbin.arun(
            pgbin.bin_dir(self.inventory.postgres.bin_dir),
            "pg_ctl",
            ["-D", str(self._data_dir(site)), *args],
            self.inventory.postgres.run_as,
        )

    def _read_mark(self, site: str, name: str = FENCE_MARK) -> dict[str, Any] | None:
        path = self._data_dir(site) / name
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except FileNotFoundError:
            return None

    def _write_file(self, path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        pgbin.chown_to(tmp, self.inventory.postgres.run_as)
        tmp.replace(path)

    def _conninfo(self, site: str, source: str) -> str:
        """``primary_conninfo`` of ``site`` streaming from ``source`` (no password: a passfile)."""
        primary = self.inventory.site(source)
        return f"host={primary.host} port={primary.port} user={primary.user} application_name={site}"

    def _is_running(self, site: str) -> bool:
        try:
            pid = int((self._data_dir(site) / "postmaster.pid").read_text().split("\n", 1)[0])
            proc = psutil.Process(pid)
            return proc.status() != psutil.STATUS_ZOMBIE and "postgres" in proc.name()
        except (FileNotFoundError, ValueError, psutil.Error):
            return False

    async def _stop_server(self, site: str) -> None:
        if self._is_running(site):
            await self._heartbeating(
                "pg_ctl stop", self._pg_ctl(site, "stop", "-m", "fast", "-w", "-t", "100")
            )

    async def _await_reaped(self, site: str, timeout_s: float = 60.0) -> None:
        """A killed server lingers as a zombie until its parent reaps it (seconds, here), and
        PostgreSQL will not start while the process of its lock file exists: wait for it."""
        try:
            pid = int((self._data_dir(site) / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            if time.monotonic() > deadline:
                raise DatabaseUnreachable(f"the killed server (pid {pid}) is not reaped yet", site=site)
            report_progress({"waiting_for_reap": pid})
            await asyncio.sleep(0.05)

    async def _start_server(self, site: str, *settings: str) -> None:
        """Start the server (``settings``: ``-c`` options for this start only)."""
        await self._await_reaped(site)
        log_dir = self._data_dir(site) / "log"
        if not log_dir.is_dir():
            log_dir.mkdir(mode=0o700)
            pgbin.chown_to(log_dir, self.inventory.postgres.run_as)
        options = ["-o", " ".join(f"-c {s}" for s in settings)] if settings else []
        await self._heartbeating(
            "pg_ctl start",
            self._pg_ctl(site, "start", "-w", "-t", "100", "-l", str(log_dir / "server.log"), *options),
        )

    async def _streams_from(self, site: str, source: str | None) -> bool:
        """``site`` is a standby whose WAL receiver streams from ``source`` (from anyone: None)."""
        try:
            conn = await self._connect(site)
        except DatabaseUnreachable:
            return False
        async with conn:
            cur = await conn.execute(
                "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver),"
                " (SELECT sender_host FROM pg_stat_wal_receiver)"
            )
            row = await cur.fetchone()
        if not row or not row[0] or row[1] != "streaming":
            return False
        return source is None or row[2] == self.inventory.site(source).host

    async def _wait_streaming(self, site: str, source: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not await self._streams_from(site, source):
            if time.monotonic() > deadline:
                return False
            report_progress({"waiting_to_stream": site, "from": source})
            await asyncio.sleep(0.1)
        return True

    async def _heartbeating(self, what: str, coro: Awaitable[T]) -> T:
        """Await ``coro`` (a long tool run), heartbeating meanwhile (DESIGN.md rule 9)."""
        task = asyncio.ensure_future(coro)
        while True:
            done, _ = await asyncio.wait({task}, timeout=5)
            if done:
                return task.result()
            report_progress({"running": what})

    async def _controldata(self, site: str) -> dict[str, str]:
        out = await pgbin.arun(
            pgbin.bin_dir(self.inventory.postgres.bin_dir),
            "pg_controldata",
            [str(self._data_dir(site))],
            self.inventory.postgres.run_as,
        )
        return {k.strip(): v.strip() for k, sep, v in (ln.partition(":") for ln in out.splitlines()) if sep}

    def _copy_owned(self, src: Path, dst: Path) -> None:
        """Copy a file or a tree, owned by the server's user."""
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
            for root, dirs, files in os.walk(dst):
                for name in [*dirs, *files, ""]:
                    pgbin.chown_to(Path(root) / name, self.inventory.postgres.run_as)
        else:
            shutil.copy2(src, dst)
            pgbin.chown_to(dst, self.inventory.postgres.run_as)
