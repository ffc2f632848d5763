"""``ScratchServer``: a restored data directory, started on the scratch address, and gone after.

A drill has its own directory under ``backup.scratch_dir``; the backup is restored into its
``data`` subdirectory, started here, read, and torn down whatever happened. Layout::

    <scratch_dir>/<drill>/data/                       the restored data directory
    <scratch_dir>/<drill>/data.hybridops-restoring    while a restore is filling it
    <scratch_dir>/<drill>/server.log                  the scratch server's log

The scratch server listens on ``backup.scratch_host``/``scratch_port`` (refused if that is any
site's address), never archives (the restore set ``archive_mode = off``), and teardown never
touches anything outside the drill's directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from drivers.backup import recovery
from drivers.backup.errors import ScratchServerFailed
from drivers.postgres import binaries as pgbin
from drivers.progress import report as report_progress
from drivers.secrets import resolve_secret
from hybridops.errors import ConfigError, HybridOpsError, PreconditionFailed
from hybridops.inventory import Inventory

START_TIMEOUT_S = 600.0
DATA = "data"
"""The restored data directory, inside the drill's directory."""
LOG_NAME = "server.log"
_RESTORE_BLOCK = "# hybridops restore"


@dataclass(frozen=True)
class TableStats:
    """What a restored table holds: whether it exists, its rows, its newest row's time."""

    present: bool
    rows: int | None = None
    newest_at: datetime | None = None


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class ScratchServer:
    """A PostgreSQL server started from ``directory/data`` (``directory`` is a drill's own,
    under ``backup.scratch_dir``; restore the backup into :attr:`data_dir`) on the scratch
    address. Connects with the on-prem site's user and database (the restored cluster has the
    same roles), unless told otherwise."""

    def __init__(
        self,
        inventory: Inventory,
        directory: Path,
        *,
        dbname: str | None = None,
        user: str | None = None,
        password_ref: str | None = None,
    ) -> None:
        b = inventory.backup
        if b.scratch_dir is None:
            raise ConfigError("backup.scratch_dir: required to start a scratch server")
        self.inventory = inventory
        self.root = b.scratch_dir.resolve()
        self.directory = recovery.check_not_production(inventory, directory)
        if not self.directory.is_relative_to(self.root) or self.directory == self.root:
            raise PreconditionFailed(
                f"{self.directory} is not a directory under backup.scratch_dir ({self.root})",
                directory=str(self.directory),
            )
        self.data_dir = self.directory / DATA
        self.host, self.port = b.scratch_host, b.scratch_port
        for name, site in inventory.sites.items():
            if (site.host, site.port) == (self.host, self.port):
                raise ConfigError(
                    f"backup.scratch_host/scratch_port: {self.host}:{self.port} is site {name}'s address",
                    site=name,
                )
        onprem = next(s for s in inventory.sites.values() if s.cloud is None)
        self.dbname = dbname or onprem.dbname
        self.user = user or onprem.user
        self.password_ref = password_ref if password_ref is not None else onprem.password_ref
        self.usable_at: datetime | None = None
        self.start_seconds: float | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.directory / LOG_NAME

    # ------------------------------------------------------------------ process

    def _postmaster_pid(self) -> int | None:
        """The live postmaster of this data directory, if any."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return pid
        except (OSError, ValueError, psutil.Error):
            return None

    def running(self) -> bool:
        return self._postmaster_pid() is not None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def _pg_ctl(self, *args: str, timeout: float = 120) -> str:
        return await pgbin.arun(
            pgbin.bin_dir(self.inventory.postgres.bin_dir),
            "pg_ctl",
            ["-D", str(self.data_dir), *args],
            self.inventory.postgres.run_as,
            timeout=timeout,
        )

    async def connect(self, dbname: str | None = None) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            host=self.host,
            port=self.port,
            dbname=dbname or self.dbname,
            user=self.user,
            password=resolve_secret(self.password_ref),
            connect_timeout=self.inventory.postgres.libpq_connect_timeout,
            autocommit=True,
            application_name="hybridops-scratch",
        )

    async def _promoted(self) -> bool:
        conn = await self.connect("postgres")
        async with conn:
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            row = await cur.fetchone()
            return bool(row is not None and not row[0])

    async def start(self, timeout: float = START_TIMEOUT_S) -> datetime:
        """Start the server (unless it already runs) and wait until it has finished recovery
        and been promoted: it answers queries and takes writes. Returns when it became usable.
        Idempotent. Raises :class:`PreconditionFailed` (not a hybridops restore, or the address
        is taken), :class:`ScratchServerFailed` with the log's last lines."""
        t0 = time.monotonic()
        auto = self.data_dir / "postgresql.auto.conf"
        if not (self.data_dir / "PG_VERSION").exists() or _RESTORE_BLOCK not in (
            auto.read_text() if auto.exists() else ""
        ):
            # Only a directory a restore configured is safe to start: anything else may archive
            # into production or stream from the primary.
            raise PreconditionFailed(
                f"{self.data_dir} is not a data directory configured by a hybridops restore",
                data_dir=str(self.data_dir),
            )
        if not self.running():
            if _port_open(self.host, self.port):
                raise PreconditionFailed(f"something already listens on {self.address}", address=self.address)
            if not self.log_file.exists():  # pg_ctl opens it as the PostgreSQL user
                self.log_file.touch(mode=0o600)
                pgbin.chown_to(self.log_file, self.inventory.postgres.run_as)
            await self._pg_ctl("start", "-W", "-l", str(self.log_file))
        seen_pid = False
        deadline = t0 + timeout
        last: Exception | None = None
        while True:
            alive = self.running()
            seen_pid = seen_pid or alive
            if not alive and (seen_pid or time.monotonic() - t0 > 15):
                raise ScratchServerFailed(
                    f"the scratch server in {self.data_dir} stopped during recovery:\n{self.log_tail()}",
                    data_dir=str(self.data_dir),
                )
            if alive:
                try:
                    if await self._promoted():
                        break
                except psycopg.Error as err:  # not accepting connections yet
                    last = err
            if time.monotonic() > deadline:
                raise ScratchServerFailed(
                    f"the scratch server in {self.data_dir} did not finish recovery within {timeout:g}s"
                    f" ({last}):\n{self.log_tail()}",
                    data_dir=str(self.data_dir),
                )
            report_progress({"scratch": "recovering", "seconds": round(time.monotonic() - t0)})
            await asyncio.sleep(0.1)
        self.usable_at = datetime.now(UTC)
        self.start_seconds = round(time.monotonic() - t0, 3)
        return self.usable_at

    # ------------------------------------------------------------------ queries

    async def setting(self, name: str) -> str:
        """A setting of the running server (``SHOW``)."""
        conn = await self.connect("postgres")
        async with conn:
            cur = await conn.execute("SELECT current_setting(%s)", (name,))
            row = await cur.fetchone()
            assert row is not None
            return str(row[0])

    async def table_stats(self, table: str, time_column: str = "written_at") -> TableStats:
        """Rows of ``table`` and its newest ``time_column``; ``present=False`` if the table is
        not in the restored database."""
        conn = await self.connect()
        async with conn:
            cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            row = await cur.fetchone()
            if not row or not row[0]:
                return TableStats(present=False)
            cur = await conn.execute(
                sql.SQL("SELECT count(*), max({}) FROM {}").format(
                    sql.Identifier(time_column), sql.Identifier(table)
                )
            )
            row = await cur.fetchone()
            assert row is not None
            return TableStats(present=True, rows=int(row[0]), newest_at=row[1])

    async def newest_row(
        self, table: str, time_column: str = "written_at"
    ) -> tuple[bool, int | None, datetime | None]:
        """(table present, rows, newest row's time): :meth:`table_stats` as a tuple."""
        stats = await self.table_stats(table, time_column)
        return stats.present, stats.rows, stats.newest_at

    # ------------------------------------------------------------------ teardown

    async def teardown(self) -> bool:
        """Stop the server (immediate) and remove the drill's directory. Safe whatever
        happened before (never started, half restored, already gone) and idempotent; touches
        nothing outside the directory. Returns whether there was anything to remove."""
        if not self.directory.exists():
            return False
        pid = self._postmaster_pid()
        if pid is not None:
            try:
                await self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30", timeout=60)
            except HybridOpsError:
                self._kill(pid)
        shutil.rmtree(self.directory, ignore_errors=True)
        if self.directory.exists():
            shutil.rmtree(self.directory)  # a second try, which raises what is in the way
        return True

    def _kill(self, pid: int) -> None:
        """SIGKILL the postmaster and its children, if it is this directory's postmaster."""
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if str(self.data_dir) not in " ".join(proc.cmdline()):
                return  # the pid was reused by something else: not ours to kill
            victims = [proc, *proc.children(recursive=True)]
            for p in victims:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            psutil.wait_procs(victims, timeout=10)
