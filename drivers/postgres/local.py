"""The ``local`` PostgreSQL driver: servers on this host.

SQL goes through libpq (psycopg); what SQL cannot do (stop, start, mark) goes through
``pg_ctl`` and the data directory. Fencing writes ``standby.signal`` into the data directory:
a server started with it comes up in recovery, read-only, so a fenced primary can never come
back writable, even when it was unreachable when it was fenced.

The topology steps (assess, fence, promote, follow, probes) are here; server control is in
:mod:`drivers.postgres.server`, failback's rejoin in :mod:`drivers.postgres.rejoin` and
its switchover in :mod:`drivers.postgres.switchover`.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from drivers.postgres.rejoin import LocalRejoin
from drivers.postgres.server import FENCE_MARK, PROMOTE_MARK, STANDBY_SIGNAL
from drivers.postgres.switchover import LocalSwitchover
from drivers.postgres.timelines import archived_timelines, confirm_new_timeline
from drivers.postgres.types import Fenced, Promoted
from drivers.progress import report as report_progress
from hybridops.capabilities import Capability
from hybridops.contracts.sites import FenceToken, SiteState
from hybridops.errors import DatabaseError, DatabaseUnreachable, PreconditionFailed
from hybridops.lsn import parse_lsn


def _conninfo_host(conninfo: str | None) -> str | None:
    """The ``host`` of a libpq keyword/value connection string (``primary_conninfo``)."""
    for word in (conninfo or "").split():
        key, _, value = word.partition("=")
        if key == "host":
            return value.strip("'")
    return None


class LocalPostgresDriver(LocalRejoin, LocalSwitchover):
    """PostgreSQL servers on this host, controlled with libpq and ``pg_ctl``: the topology
    steps here, failback's rejoin and switchover in their own modules."""

    capabilities = frozenset(
        {
            Capability.PROMOTE,
            Capability.FENCE,
            Capability.FOLLOW,
            Capability.REWIND,
            Capability.RECLONE,
            Capability.SWITCHOVER,
        }
    )

    async def _assess(self, site: str) -> SiteState:
        local = self.is_local(site)
        # This site's agent reads its marks from the data directory, alive or not; any other
        # process asks the server (a server that does not answer keeps its marks to itself).
        mark = self._read_mark(site) if local else None
        promoted = self._read_mark(site, PROMOTE_MARK) if local else None
        try:
            conn = await self._connect(site)
        except DatabaseUnreachable as err:
            return SiteState(
                site=site,
                reachable=False,
                fenced=mark is not None,
                fenced_by=mark.get("fenced_by") if mark else None,
                promoted_by=promoted.get("promoted_by") if promoted else None,
                error=str(err) if local else f"{err} (its marks are read by its agent only)",
            )
        async with conn:
            if not local:
                mark, promoted = await self._marks_over_sql(conn, FENCE_MARK, PROMOTE_MARK)
            fenced = mark is not None
            fenced_by = mark.get("fenced_by") if mark else None
            promoted_by = promoted.get("promoted_by") if promoted else None
            cur = await conn.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn()::text,"
                " pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(),"
                " (SELECT timeline_id FROM pg_control_checkpoint()),"
                " (SELECT system_identifier::text FROM pg_control_system()),"
                " current_setting('default_transaction_read_only') = 'on',"
                " current_setting('primary_conninfo'),"
                " (SELECT status FROM pg_stat_wal_receiver),"
                " (SELECT received_tli FROM pg_stat_wal_receiver)"
            )
            row = await cur.fetchone()
            assert row is not None
            in_recovery, receive, replay, replay_at, timeline, ident, read_only, conninfo, receiver, rtli = (
                row
            )
            # A standby's last restartpoint lags behind a timeline it followed: the timeline
            # of the WAL it receives is the newer one.
            timeline = max(t for t in (timeline, rtli, 0) if t is not None) or None
            current = None
            if not in_recovery:
                cur = await conn.execute(
                    "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())"
                )
                row = await cur.fetchone()
                assert row is not None
                current, walfile = row
                timeline = int(walfile[:8], 16)
            switch = await self._timeline_start(conn, timeline)
        upstream = _conninfo_host(conninfo) if in_recovery else None
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
            fenced_by=fenced_by,
            promoted_by=promoted_by if not in_recovery else None,
            read_only=bool(read_only),
            system_identifier=ident,
            upstream=self.inventory.site_by_host(upstream) if upstream else None,
            streaming=(receiver == "streaming") if in_recovery else None,
            timeline_switch_lsn=switch,
        )

    async def _timeline_start(self, conn: psycopg.AsyncConnection[Any], timeline: int | None) -> str | None:
        """Where ``timeline`` began: the switch point on the last line of its history file.
        Best effort: reading pg_wal needs a superuser (or pg_read_server_files)."""
        if not timeline or timeline <= 1:
            return None
        try:
            cur = await conn.execute("SELECT pg_read_file(%s)", (f"pg_wal/{timeline:08X}.history",))
            row = await cur.fetchone()
        except psycopg.Error:
            return None
        lines = [ln.split() for ln in (row[0] if row else "").splitlines() if ln.strip() and ln[0] != "#"]
        return lines[-1][1] if lines and len(lines[-1]) > 1 else None

    async def _fence(self, site: str, run_id: str) -> Fenced:
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
            # The proof: the shutdown checkpoint, as the stopped server's control file has it.
            # A standby that replayed past it has every write this server acknowledged.
            control = await self._controldata(site)
            mark["token"] = {
                "system_identifier": control.get("Database system identifier", ""),
                "timeline": int(control.get("Latest checkpoint's TimeLineID", "0") or 0),
                "lsn": control.get("Latest checkpoint location") or fenced_lsn or "0/0",
            }
            self._write_file(data_dir / FENCE_MARK, json.dumps(mark))
        token = FenceToken.model_validate(mark["token"]) if mark.get("token") else None
        return Fenced(
            changed=changed,
            was_running=bool(mark["was_running"]),
            was_read_only=bool(mark["was_read_only"]),
            fenced_lsn=fenced_lsn,
            token=token,
            detail=(
                f"stopped and marked; fencing proof: timeline {token.timeline}, checkpoint {token.lsn}"
                if token
                else "unreachable; marked (unverified fence)"
            ),
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
        self, site: str, wait_for_lsn: str | None, max_catchup_s: float, run_id: str, allow_fenced: bool
    ) -> Promoted:
        if self._read_mark(site) is not None and not allow_fenced:
            raise PreconditionFailed("refusing to promote a fenced server", site=site)
        conn = await self._connect(site)
        async with conn:
            state = await self._assess(site)
            if not state.in_recovery:
                return Promoted(changed=False, timeline=state.timeline or 0, detail="already primary")
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
                report_progress({"catching_up": state.replay_lsn})
                await asyncio.sleep(0.02)
                state = await self._assess(site)
            archived = await self._timelines_before_promote(site, conn)
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
        archive_note = await self._timeline_after_promote(site, archived, after.timeline or 0)
        return Promoted(
            changed=True,
            timeline=after.timeline or 0,
            promoted_at=datetime.now(UTC),
            replay_lsn=state.replay_lsn,
            last_replay_at=state.last_replay_at,
            detail=f"promoted at {state.replay_lsn}; timeline {after.timeline}{archive_note}",
        )

    async def _timelines_before_promote(
        self, site: str, conn: psycopg.AsyncConnection[Any]
    ) -> dict[int, bytes] | None:
        """The WAL archive's timelines before ``site`` promotes (None: no archive configured).
        Refuses a standby without ``restore_command``: blind to the archive's timelines, it
        could take one that another server already holds."""
        archive = self.inventory.backup.wal_archive
        if archive is None:
            return None
        try:
            cur = await conn.execute("SHOW restore_command")
        except psycopg.errors.InsufficientPrivilege:
            raise PreconditionFailed(
                "cannot read restore_command (grant pg_read_all_settings): not promoting blind to"
                f" the timelines of the WAL archive {archive}",
                site=site,
            ) from None
        row = await cur.fetchone()
        if not row or not str(row[0]).strip():
            raise PreconditionFailed(
                f"no restore_command: the standby cannot see the timelines of the WAL archive {archive}"
                " and could promote onto one another server holds; set restore_command, then promote",
                site=site,
            )
        return await asyncio.to_thread(archived_timelines, archive)

    async def _timeline_after_promote(
        self, site: str, archived: dict[int, bytes] | None, timeline: int
    ) -> str:
        """Raises :class:`TimelineCollision` when ``timeline`` is another server's; a note else."""
        archive = self.inventory.backup.wal_archive
        if archived is None or archive is None:
            return ""
        pg_wal = self._data_dir(site) / "pg_wal"
        return "; " + await confirm_new_timeline(site, timeline, archived, archive, pg_wal)

    async def _follow(self, site: str, new_primary: str) -> bool:
        conninfo = self._conninfo(site, new_primary)
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

    async def _retire_fence(self, site: str) -> bool:
        if self._read_mark(site) is None:
            return False
        state = await self._assess(site)
        if not state.reachable:
            raise PreconditionFailed("not running: the fence mark stays", site=site)
        if state.in_recovery:
            if not await self._streams_from(site, None):
                raise PreconditionFailed("a standby that does not stream: the fence mark stays", site=site)
        else:
            (self._data_dir(site) / STANDBY_SIGNAL).unlink(missing_ok=True)
        (self._data_dir(site) / FENCE_MARK).unlink(missing_ok=True)
        return True
