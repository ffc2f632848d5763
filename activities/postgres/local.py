"""The ``local`` PostgreSQL driver: servers on this host.

SQL goes through libpq (psycopg); what SQL cannot do (stop, start, mark) goes through
``pg_ctl`` and the data directory. Fencing writes ``standby.signal`` into the data directory:
a server started with it comes up in recovery, read-only, so a fenced primary can never come
back writable, even when it was unreachable when it was fenced.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from temporalio import activity

from activities.postgres.base import PostgresDriver
from hybridops import pgbin
from hybridops.errors import DatabaseError, DatabaseUnreachable, PreconditionFailed
from hybridops.lsn import parse_lsn
from hybridops.models import FenceResult, PromoteResult, SiteState
from hybridops.secrets import resolve_secret

FENCE_MARK = "hybridops.fence.json"
PROMOTE_MARK = "hybridops.promoted.json"
STANDBY_SIGNAL = "standby.signal"


def _heartbeat(*details: Any) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)


class LocalPostgresDriver(PostgresDriver):
    """PostgreSQL servers on this host, controlled with libpq and ``pg_ctl``."""

    # ------------------------------------------------------------------ helpers

    def _data_dir(self, site: str) -> Path:
        data_dir = self.inventory.site(site).data_dir
        assert data_dir is not None  # the inventory validator guarantees it
        return data_dir

    async def _connect(self, site: str, host: str | None = None) -> psycopg.AsyncConnection[Any]:
        cfg = self.inventory.site(site)
        try:
            return await psycopg.AsyncConnection.connect(
                host=host or cfg.host,
                port=cfg.port,
                dbname=cfg.dbname,
                user=cfg.user,
                password=resolve_secret(cfg.password_ref),
                connect_timeout=self.inventory.postgres.connect_timeout_s,
                autocommit=True,
                application_name="hybridops",
            )
        except psycopg.OperationalError as err:
            raise DatabaseUnreachable(f"cannot connect: {str(err).strip()}", site=site) from None

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

    # ------------------------------------------------------------------ hooks

    async def _assess(self, site: str) -> SiteState:
        fenced = self._read_mark(site) is not None
        promoted = self._read_mark(site, PROMOTE_MARK)
        promoted_by = promoted.get("promoted_by") if promoted else None
        try:
            conn = await self._connect(site)
        except DatabaseUnreachable as err:
            return SiteState(
                site=site, reachable=False, fenced=fenced, promoted_by=promoted_by, error=str(err)
            )
        async with conn:
            cur = await conn.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn()::text,"
                " pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(),"
                " (SELECT timeline_id FROM pg_control_checkpoint())"
            )
            row = await cur.fetchone()
            assert row is not None
            in_recovery, receive, replay, replay_at, timeline = row
            current = None
            if not in_recovery:
                cur = await conn.execute(
                    "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())"
                )
                row = await cur.fetchone()
                assert row is not None
                current, walfile = row
                timeline = int(walfile[:8], 16)
        return SiteState(
            site=site,
            reachable=True,
            in_recovery=in_recovery,
            timeline=timeline,
            receive_lsn=receive,
            replay_lsn=replay,
            current_lsn=current,
            last_replay_at=replay_at,
            fenced=fenced,
            promoted_by=promoted_by if not in_recovery else None,
        )

    async def _fence(self, site: str, run_id: str) -> FenceResult:
        data_dir = self._data_dir(site)
        mark = self._read_mark(site)
        conn: psycopg.AsyncConnection[Any] | None
        try:
            conn = await self._connect(site)
        except DatabaseUnreachable:
            conn = None
        changed = False
        fenced_lsn = mark.get("fenced_lsn") if mark else None
        if mark is None:
            # Observe first, then mark, then act: the mark keeps the first observation, so
            # a retry after a crash reports (and the compensation restores) the same state.
            was_read_only = False
            if conn is not None:
                cur = await conn.execute("SHOW default_transaction_read_only")
                row = await cur.fetchone()
                was_read_only = bool(row and row[0] == "on")
            mark = {
                "fenced_by": run_id,
                "fenced_at": datetime.now(UTC).isoformat(),
                "was_running": conn is not None,
                "was_read_only": was_read_only,
                "fenced_lsn": None,
            }
            self._write_file(data_dir / FENCE_MARK, json.dumps(mark))
            changed = True
        if not (data_dir / STANDBY_SIGNAL).exists():
            self._write_file(data_dir / STANDBY_SIGNAL, "")
            changed = True
        if conn is not None:
            async with conn:
                await conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
                await conn.execute("SELECT pg_reload_conf()")
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
                cur = await conn.execute(
                    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
                    " ELSE pg_current_wal_lsn() END::text"
                )
                row = await cur.fetchone()
                fenced_lsn = row[0] if row else None
            mark["fenced_lsn"] = fenced_lsn
            self._write_file(data_dir / FENCE_MARK, json.dumps(mark))
            # A fast shutdown writes a shutdown checkpoint that the standbys receive.
            await self._pg_ctl(site, "stop", "-m", "fast", "-w", "-t", "60")
            changed = True
        return FenceResult(
            changed=changed,
            was_running=bool(mark["was_running"]),
            was_read_only=bool(mark["was_read_only"]),
            fenced_lsn=fenced_lsn,
            detail="stopped and marked" if mark["was_running"] else "unreachable; marked",
        )

    async def _unfence(self, site: str) -> bool:
        data_dir = self._data_dir(site)
        mark = self._read_mark(site)
        if mark is None:
            return False
        (data_dir / STANDBY_SIGNAL).unlink(missing_ok=True)
        if mark["was_running"]:
            try:
                conn = await self._connect(site)
            except DatabaseUnreachable:
                await self._pg_ctl(
                    site, "start", "-w", "-t", "60", "-l", str(data_dir / "log" / "server.log")
                )
                conn = await self._connect(site)
            async with conn:
                if not mark["was_read_only"]:
                    await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
                    await conn.execute("SELECT pg_reload_conf()")
        # The mark goes last: until it is gone, a retry knows what to restore.
        (data_dir / FENCE_MARK).unlink(missing_ok=True)
        return True

    async def _promote(
        self, site: str, wait_for_lsn: str | None, max_catchup_s: float, run_id: str
    ) -> PromoteResult:
        if self._read_mark(site) is not None:
            raise PreconditionFailed("refusing to promote a fenced server", site=site)
        conn = await self._connect(site)
        async with conn:
            state = await self._assess(site)
            if not state.in_recovery:
                return PromoteResult(changed=False, timeline=state.timeline or 0, detail="already primary")
            target = parse_lsn(wait_for_lsn)
            deadline = time.monotonic() + max_catchup_s
            while True:
                receive, replay = parse_lsn(state.receive_lsn), parse_lsn(state.replay_lsn)
                want = max(x for x in (receive, target, replay, 0) if x is not None)
                if replay is not None and replay >= want:
                    break
                if time.monotonic() > deadline:
                    raise PreconditionFailed(
                        f"standby replayed {state.replay_lsn}, needs {wait_for_lsn or state.receive_lsn}"
                        f" after {max_catchup_s}s; not promoting (data would be lost)",
                        site=site,
                    )
                _heartbeat({"catching_up": state.replay_lsn})
                await asyncio.sleep(0.02)
                state = await self._assess(site)
            # The intent is written first, so that whoever looks later (a retry of an earlier
            # step of this run, a second run) can tell this run's promotion from a stranger's.
            self._write_file(
                self._data_dir(site) / PROMOTE_MARK,
                json.dumps({"promoted_by": run_id, "at": datetime.now(UTC).isoformat()}),
            )
            cur = await conn.execute("SELECT pg_promote(true, 60)")
            row = await cur.fetchone()
            if not row or not row[0]:
                raise DatabaseError("pg_promote did not finish within 60s", site=site)
        after = await self._assess(site)
        return PromoteResult(
            changed=True,
            timeline=after.timeline or 0,
            promoted_at=datetime.now(UTC),
            replay_lsn=state.replay_lsn,
            last_replay_at=state.last_replay_at,
            detail=f"promoted at {state.replay_lsn}; timeline {after.timeline}",
        )

    async def _follow(self, site: str, new_primary: str) -> bool:
        primary = self.inventory.site(new_primary)
        conninfo = f"host={primary.host} port={primary.port} user={primary.user} application_name={site}"
        conn = await self._connect(site)
        async with conn:
            cur = await conn.execute("SHOW primary_conninfo")
            row = await cur.fetchone()
            if row and row[0] == conninfo:
                return False
            # primary_conninfo is reloadable since PostgreSQL 13; the WAL receiver restarts
            # and follows the new primary's timeline (recovery_target_timeline = latest).
            await conn.execute(
                sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(conninfo))
            )
            await conn.execute("SELECT pg_reload_conf()")
        return True

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
