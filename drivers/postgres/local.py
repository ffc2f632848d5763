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

from drivers.postgres import binaries as pgbin
from drivers.postgres import promotion
from drivers.postgres.rejoin import LocalRejoin
from drivers.postgres.restore import LocalRestore
from drivers.postgres.server import FENCE_MARK, PROMOTE_MARK, STANDBY_SIGNAL
from drivers.postgres.switchover import LocalSwitchover
from drivers.postgres.timelines import (
    archived_timelines,
    confirm_new_timeline,
    followed_history,
    history_name,
    replay_timeline,
)
from drivers.postgres.types import Fenced, Promoted
from drivers.progress import report as report_progress
from hybridops.capabilities import Capability
from hybridops.contracts.sites import FenceToken, ReplicationSlot, SiteState
from hybridops.errors import (
    DatabaseError,
    DatabaseUnreachable,
    PreconditionFailed,
    PromotionIncomplete,
)
from hybridops.lsn import parse_lsn

PROMOTE_TIMEOUT_S = 60.0
"""How long a promotion may take to leave recovery (its end-of-recovery checkpoint included)."""
PROMOTE_POLL_S = 0.003
"""How often the promote step looks whether the server left recovery."""


def _conninfo_host(conninfo: str | None) -> str | None:
    """The ``host`` of a libpq keyword/value connection string (``primary_conninfo``)."""
    for word in (conninfo or "").split():
        key, _, value = word.partition("=")
        if key == "host":
            return value.strip("'")
    return None


async def _slots(conn: psycopg.AsyncConnection[Any]) -> list[ReplicationSlot] | None:
    """A primary's replication slots and the WAL each holds back; None when they cannot be
    read (the last query of an assessment, so a refusal spoils nothing before it)."""
    try:
        cur = await conn.execute(
            "SELECT slot_name, slot_type, active,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
            " FROM pg_replication_slots ORDER BY slot_name"
        )
        rows = await cur.fetchall()
    except psycopg.Error:
        return None
    return [
        ReplicationSlot(name=name, slot_type=kind, active=bool(active), retained_bytes=retained)
        for name, kind, active, retained in rows
    ]


class LocalPostgresDriver(LocalRejoin, LocalSwitchover, LocalRestore):
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
            Capability.RESTORE_PRIMARY,
        }
    )

    def _local_marks(self, site: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The fence and promote marks of a site this process controls, from its data
        directory (None, None for another site: its server is asked, see :meth:`_state_on`)."""
        if not self.is_local(site):
            return None, None
        return self._read_mark(site), self._read_mark(site, PROMOTE_MARK)

    async def _assess(self, site: str) -> SiteState:
        local = self.is_local(site)
        # This site's agent reads its marks from the data directory, alive or not; any other
        # process asks the server (a server that does not answer keeps its marks to itself).
        mark, promoted = self._local_marks(site)
        try:
            conn = await self._connect(site)
        except DatabaseUnreachable as err:
            # Whether its promotion completed, only the running server can say.
            return SiteState(
                site=site,
                reachable=False,
                fenced=mark is not None,
                fenced_by=mark.get("fenced_by") if mark else None,
                error=str(err) if local else f"{err} (its marks are read by its agent only)",
            )
        async with conn:
            return await self._state_on(site, conn, mark, promoted)

    async def _state_on(
        self,
        site: str,
        conn: psycopg.AsyncConnection[Any],
        mark: dict[str, Any] | None = None,
        promoted: dict[str, Any] | None = None,
    ) -> SiteState:
        """:meth:`_assess` on an open connection to ``site``'s server (the promote step reads
        and promotes on one); the marks are read over it unless this process controls the site
        (then they are given, read from its data directory)."""
        local = self.is_local(site)
        if not local:
            mark, promoted = await self._marks_over_sql(conn, FENCE_MARK, PROMOTE_MARK)
        fenced = mark is not None
        fenced_by = mark.get("fenced_by") if mark else None
        cur = await conn.execute(
            "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn()::text,"
            " pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(),"
            " (SELECT timeline_id FROM pg_control_checkpoint()),"
            " (SELECT system_identifier::text FROM pg_control_system()),"
            " current_setting('default_transaction_read_only') = 'on',"
            " current_setting('primary_conninfo'),"
            " (SELECT status FROM pg_stat_wal_receiver),"
            " (SELECT received_tli FROM pg_stat_wal_receiver),"
            " (SELECT min_recovery_end_timeline FROM pg_control_recovery())"
        )
        row = await cur.fetchone()
        assert row is not None
        in_recovery, receive, replay, replay_at, timeline, ident, read_only, conninfo, receiver = row[:9]
        received_tli, min_recovery_tli = row[9:]
        # A standby's control data lags behind a timeline it followed: its last
        # restartpoint's timeline until the next restartpoint, and its minimum recovery
        # point's can too (both said 1 on a home pg_rewind had just put on timeline 2,
        # from a source promoted moments before). The WAL it receives is on the newer one, but no WAL
        # receiver runs once its upstream stopped (a switchover's paused primary): then the
        # history file of the timeline it follows says where its replay position is. Read
        # lagging, a rejoined home looked older than the primary it replayed to the end,
        # and failback's promotion was refused as a fork (not_forked), waiting for an
        # override with writes paused.
        timeline = max(t for t in (timeline, received_tli, min_recovery_tli, 0) if t is not None) or None
        if in_recovery:
            timeline = await self._replayed_timeline(conn, replay, timeline)
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
        slots = None if in_recovery else await _slots(conn)
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
            # The mark is an intent written before pg_promote: proof only once the server's
            # timeline moved past the one it promoted from (drivers/postgres/promotion.py).
            promoted_by=(
                promoted.get("promoted_by")
                if promoted and not in_recovery and promotion.completed(promoted, timeline)
                else None
            ),
            read_only=bool(read_only),
            system_identifier=ident,
            upstream=self.inventory.site_by_host(upstream) if upstream else None,
            streaming=(receiver == "streaming") if in_recovery else None,
            timeline_switch_lsn=switch,
            slots=slots,
        )

    async def _replayed_timeline(
        self, conn: psycopg.AsyncConnection[Any], replay_lsn: str | None, known: int | None
    ) -> int | None:
        """A standby's replay timeline (:func:`replay_timeline`) on the newest history file in
        its ``pg_wal`` whose timeline it holds a segment of; ``known`` when it has none or
        cannot be read (best effort: listing and reading pg_wal needs a superuser, or
        pg_monitor and pg_read_server_files)."""
        replay = parse_lsn(replay_lsn)
        if replay is None:
            return known
        try:
            listing = await conn.execute("SELECT name FROM pg_ls_waldir()")
            name = followed_history([str(r[0]) for r in await listing.fetchall()])
            if name is None:
                return known
            cur = await conn.execute("SELECT pg_read_file(%s)", (f"pg_wal/{name}",))
            row = await cur.fetchone()
        except psycopg.Error:
            return known
        if row is None:
            return known
        newest = int(name.split(".", 1)[0], 16)
        return replay_timeline(replay, newest, str(row[0] or ""), known or 0) or known

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
        # One connection for the whole step: the look before, the catch-up, pg_promote, the
        # wait until the server leaves recovery and the look after (each look opened its own
        # before, a few ms apiece on loopback and more across sites, all in the RTO).
        conn = await self._connect(site)
        try:
            state = await self._state_on(site, conn, *self._local_marks(site))
            repaired = ""
            if not state.in_recovery:
                mark = self._read_mark(site, PROMOTE_MARK)
                timeline = state.timeline or 0
                if not promotion.incomplete(mark, timeline):
                    return await self._already_writable(site, timeline, mark)
                assert mark is not None
                if mark.get("promoted_by") != run_id or not run_id:
                    raise PromotionIncomplete(
                        promotion.incomplete_detail(site, timeline, mark), site=site, timeline=timeline
                    )
                # The server is restarted as a standby: no session of ours may hold it up.
                await conn.close()
                repaired = await self._back_to_standby(site, timeline, mark)
                conn = await self._connect(site)
                state = await self._state_on(site, conn, *self._local_marks(site))
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
                state = await self._state_on(site, conn, *self._local_marks(site))
            archived = await self._timelines_before_promote(site, conn)
            # The intent is written first, so that whoever looks later (a retry of an earlier
            # step of this run, a second run) can tell this run's promotion from a stranger's;
            # with the timeline it leaves, so that it proves nothing until the server left it.
            # The timeline assess read includes the minimum recovery point's (see _assess).
            mark = promotion.promote_mark(run_id, state.timeline or 0, state.replay_lsn)
            self._write_file(self._data_dir(site) / PROMOTE_MARK, json.dumps(mark))
            await self._promote_and_wait(site, conn, PROMOTE_TIMEOUT_S)
            # The timeline it writes on now (what assess reads for a primary), alone: the rest
            # of a full look is not needed here, and the clients are waiting.
            cur = await conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())")
            row = await cur.fetchone()
            after = int(row[0][:8], 16) if row else None
        finally:
            await conn.close()  # the one open now (a repair opened another)
        if not promotion.completed(mark, after):
            raise PromotionIncomplete(
                promotion.incomplete_detail(site, after or 0, mark),
                site=site,
                timeline=after,
            )
        archive_note = await self._timeline_after_promote(site, archived, after or 0)
        return Promoted(
            changed=True,
            timeline=after or 0,
            promoted_at=datetime.now(UTC),
            replay_lsn=state.replay_lsn,
            last_replay_at=state.last_replay_at,
            detail=f"{repaired}promoted at {state.replay_lsn}; timeline {after}{archive_note}",
        )

    async def _promote_and_wait(self, site: str, conn: Any, timeout_s: float) -> None:
        """Signal the promotion, then watch the server leave recovery every few ms.
        ``pg_promote(wait => true)`` sleeps 100 ms between its own looks, a floor on every
        failover's RTO; this wait ends within ``PROMOTE_POLL_S`` of the server's switch."""
        cur = await conn.execute("SELECT pg_promote(false)")
        row = await cur.fetchone()
        if not row or not row[0]:
            raise DatabaseError("pg_promote could not signal the promotion", site=site)
        deadline = time.monotonic() + timeout_s
        while True:
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            row = await cur.fetchone()
            if row is not None and row[0] is False:
                return
            if time.monotonic() > deadline:
                raise DatabaseError(f"the promotion did not finish within {timeout_s:g} s", site=site)
            await asyncio.sleep(PROMOTE_POLL_S)

    async def _already_writable(self, site: str, timeline: int, mark: dict[str, Any] | None) -> Promoted:
        """A target that accepts writes already: a promotion that completed (this run's before
        a crash, or a stranger's), proven by the server's timeline and the WAL archive, never by
        the mark alone. Raises :class:`PreconditionFailed` for a server writable on a timeline no
        promotion switched it onto, :class:`TimelineCollision` when the archive holds its
        timeline from another server or a newer one."""
        if promotion.completed(mark, timeline):
            by = f"already promoted by {(mark or {}).get('promoted_by')} (timeline {timeline}"
            by += f" from {promotion.from_timeline(mark)})"
        elif await asyncio.to_thread((self._data_dir(site) / "pg_wal" / history_name(timeline)).exists):
            by = f"already primary on timeline {timeline}, promoted by someone else"
        else:
            # No promote mark that proves it and no history file of its own timeline: it never
            # switched timeline (timeline 1, or the one it followed as a standby).
            raise PreconditionFailed(
                f"{site} is writable on timeline {timeline} and no promotion onto it is recorded (no"
                f" promote mark, no {history_name(timeline)} in its pg_wal): it may be the old primary's"
                " timeline, where a second writer collides in the WAL archive; not taking it as promoted",
                site=site,
                timeline=timeline,
            )
        held = await self._timeline_held(site, timeline)
        return Promoted(changed=False, timeline=timeline, detail=by + "; " + held)

    async def _back_to_standby(self, site: str, timeline: int, mark: dict[str, Any]) -> str:
        """Repair this run's interrupted promotion (``site`` writable on the timeline the mark
        says it promoted from), only when the server provably wrote nothing since: stopped, its
        first record after the WAL it had replayed is its own end-of-recovery checkpoint, and no
        transaction id was assigned after it. Then ``standby.signal`` goes back and it starts
        as the standby it was. Otherwise it is started again as found and
        :class:`PromotionIncomplete` holds the step for a human. Returns a note for the detail."""
        await self._stop_server(site)
        reason = await self._wrote_since(site, timeline, mark)
        if reason:
            await self._start_server(site)
            raise PromotionIncomplete(
                promotion.incomplete_detail(site, timeline, mark) + f" Not repaired: {reason}.",
                site=site,
                timeline=timeline,
            )
        self._write_file(self._data_dir(site) / STANDBY_SIGNAL, "")
        await self._start_server(site)
        return (
            f"interrupted promotion repaired (writable on timeline {timeline} with nothing written since"
            f" {mark.get('replay_lsn')}: back to a standby); "
        )

    async def _wrote_since(self, site: str, timeline: int, mark: dict[str, Any]) -> str:
        """Why the stopped ``site`` cannot be proven to have written nothing since the end of
        the WAL it replayed as a standby (the mark's ``replay_lsn``); empty when it is proven."""
        replay_lsn = mark.get("replay_lsn")
        if not replay_lsn:
            return "the promote mark does not say where its replay ended"
        control = await self._controldata(site)
        if control.get("Database cluster state") != "shut down":
            return f"it did not stop cleanly ({control.get('Database cluster state')})"
        checkpoint_tli = control.get("Latest checkpoint's TimeLineID")
        if checkpoint_tli != str(timeline):
            return f"its last checkpoint is on timeline {checkpoint_tli}"
        try:
            first = await pgbin.arun(
                pgbin.bin_dir(self.inventory.postgres.bin_dir),
                "pg_waldump",
                [
                    f"--path={self._data_dir(site) / 'pg_wal'}",
                    f"--timeline={timeline}",
                    f"--start={replay_lsn}",
                    "--limit=1",
                ],
                self.inventory.postgres.run_as,
            )
        except DatabaseError as err:
            return f"its WAL after {replay_lsn} cannot be read: {err}"
        return promotion.writes_after_recovery(first, control.get("Latest checkpoint's NextXID", ""))

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
