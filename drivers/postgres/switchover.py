"""Failback's planned switchover, for the ``local`` PostgreSQL driver: pause writes on the
primary (read-only, sessions ended, WAL switched), resume them. Waiting for a standby to catch
up is every driver's (:mod:`drivers.postgres.sql`).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from drivers.postgres.server import PAUSE_MARK, LocalServer
from drivers.postgres.types import Paused
from hybridops.errors import DatabaseError, PreconditionFailed


class LocalSwitchover(LocalServer):
    """The ``pause_writes`` and ``resume_writes`` hooks of the local driver
    (:class:`PostgresDriver` states their contracts)."""

    async def _new_sessions_read_only(self, site: str, read_only: bool) -> datetime:
        """Wait until a new session gets ``default_transaction_read_only`` = ``read_only`` (the
        postmaster has reloaded: every later session does too); the server's time then."""
        deadline = time.monotonic() + 10
        while True:
            conn = await self._connect(site)
            async with conn:
                cur = await conn.execute(
                    "SELECT current_setting('default_transaction_read_only'), clock_timestamp()"
                )
                row = await cur.fetchone()
            assert row is not None
            if (row[0] == "on") == read_only:
                at: datetime = row[1]
                return at
            if time.monotonic() > deadline:
                raise DatabaseError(
                    f"new sessions still have default_transaction_read_only={row[0]}", site=site
                )
            await asyncio.sleep(0.005)

    async def _pause_writes(self, site: str, run_id: str) -> Paused:
        conn = await self._connect(site)
        async with conn:
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            row = await cur.fetchone()
            if not row or row[0]:
                raise PreconditionFailed("not a primary: nothing to pause", site=site)
            mark = self._read_mark(site, PAUSE_MARK)
            if mark is None:
                cur = await conn.execute("SHOW default_transaction_read_only")
                row = await cur.fetchone()
                # Dirty pages flushed while writes still flow: the pause stays short, and the
                # last checkpoint before the switch is recent, so rewinding this server
                # afterwards copies little.
                await conn.execute("CHECKPOINT")
                mark = {
                    "paused_by": run_id,
                    "paused_at": datetime.now(UTC).isoformat(),
                    "was_read_only": bool(row and row[0] == "on"),
                }
                self._write_file(self._data_dir(site) / PAUSE_MARK, json.dumps(mark))
            await conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            await conn.execute("SELECT pg_reload_conf()")
            paused_at = await self._new_sessions_read_only(site, True)
            # Sessions older than the reload may still write: end them, and wait until they
            # are gone, so whatever they committed is before the final LSN.
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            row = await cur.fetchone()
            ended = int(row[0]) if row else 0
            # The segment goes to the archive; the standby replays up to the switch.
            cur = await conn.execute("SELECT pg_switch_wal()::text")
            row = await cur.fetchone()
            assert row is not None
            final_lsn: str = row[0]
        return Paused(
            changed=True,
            paused_at=paused_at,
            final_lsn=final_lsn,
            was_read_only=bool(mark["was_read_only"]),
            sessions_ended=ended,
            detail=f"read-only, {ended} session(s) ended, final LSN {final_lsn}",
        )

    async def _resume_writes(self, site: str) -> bool:
        mark = self._read_mark(site, PAUSE_MARK)
        if mark is None:
            return False
        conn = await self._connect(site)
        async with conn:
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            row = await cur.fetchone()
            primary = bool(row and not row[0])
            if primary and not mark["was_read_only"]:
                await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
                await conn.execute("SELECT pg_reload_conf()")
        if primary and not mark["was_read_only"]:
            await self._new_sessions_read_only(site, False)
        # The mark goes last: until it is gone, a retry knows what to restore.
        (self._data_dir(site) / PAUSE_MARK).unlink(missing_ok=True)
        return True
