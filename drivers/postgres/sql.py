"""What every PostgreSQL driver does through libpq alone, whoever controls the server (the
agent on its host, CloudNativePG in Kubernetes): connect, the workload's probes, waiting for a
standby to catch up. A driver inherits these hooks and implements the ones that control the
server (:class:`PostgresDriver` states each contract)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from drivers.postgres.base import PostgresDriver
from drivers.postgres.connect import connect_site
from drivers.postgres.types import CaughtUp
from drivers.progress import report as report_progress
from hybridops.errors import DatabaseError, DatabaseUnreachable, PreconditionFailed
from hybridops.lsn import parse_lsn


class SqlSteps(PostgresDriver):
    """The ``write_probe``, ``surviving`` and ``catch_up`` hooks, over the inventory's address of
    each site (``host``/``port``)."""

    async def _connect(self, site: str, host: str | None = None) -> psycopg.AsyncConnection[Any]:
        return await connect_site(self.inventory, site, host)

    async def _write_probe(self, host: str, site: str, table: str, run_id: str) -> datetime:
        conn = await self._connect(site, host=host)
        async with conn:
            try:
                cur = await conn.execute(
                    sql.SQL("INSERT INTO {} (run_id) VALUES (%s) RETURNING written_at").format(
                        sql.Identifier(table)
                    ),
                    (run_id,),
                )
            except psycopg.errors.ReadOnlySqlTransaction as err:
                raise DatabaseUnreachable(f"read-only: {err}", site=site, host=host) from None
            except psycopg.Error as err:
                raise DatabaseError(f"probe write failed: {err}", site=site, host=host) from None
            row = await cur.fetchone()
            assert row is not None
            written_at: datetime = row[0]
            return written_at

    async def _surviving(self, site: str, table: str, seqs: list[int]) -> set[int]:
        conn = await self._connect(site)
        async with conn:
            cur = await conn.execute(
                sql.SQL("SELECT seq FROM {} WHERE seq = ANY(%s)").format(sql.Identifier(table)),
                (seqs,),
            )
            return {r[0] for r in await cur.fetchall()}

    async def _catch_up(
        self, site: str, source: str, max_lag_bytes: int, timeout_s: float, target_lsn: str | None
    ) -> CaughtUp:
        started = time.monotonic()
        target = parse_lsn(target_lsn)
        async with contextlib.AsyncExitStack() as stack:
            conn = await stack.enter_async_context(await self._connect(site))
            src = None if target is not None else await stack.enter_async_context(await self._connect(source))
            while True:
                want_txt = target_lsn
                if src is not None:
                    cur = await src.execute("SELECT pg_current_wal_lsn()::text")
                    row = await cur.fetchone()
                    want_txt = row[0] if row else None
                cur = await conn.execute("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
                row = await cur.fetchone()
                if not row or not row[0]:
                    raise PreconditionFailed("not a standby", site=site)
                replay = parse_lsn(row[1]) or 0
                lag = max(0, (parse_lsn(want_txt) or 0) - replay)
                waited = round(time.monotonic() - started, 3)
                if lag <= max_lag_bytes:
                    return CaughtUp(
                        replay_lsn=row[1],
                        target_lsn=want_txt,
                        lag_bytes=lag,
                        waited_s=waited,
                        detail=f"replayed {row[1]} of {want_txt} ({lag} bytes behind) in {waited:.3f} s",
                    )
                if time.monotonic() - started > timeout_s:
                    raise PreconditionFailed(
                        f"replayed {row[1]}, {lag} bytes short of {want_txt} (at most {max_lag_bytes})"
                        f" after {timeout_s:.0f} s",
                        site=site,
                    )
                report_progress({"replay_lsn": row[1], "lag_bytes": lag})
                await asyncio.sleep(0.02)
