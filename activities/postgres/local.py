"""The ``local`` PostgreSQL driver: servers on this host.

SQL goes through libpq (psycopg); what SQL cannot do (stop, start, mark) goes through
``pg_ctl`` and the data directory. Fencing writes ``standby.signal`` into the data directory:
a server started with it comes up in recovery, read-only, so a fenced primary can never come
back writable, even when it was unreachable when it was fenced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
import psycopg
from psycopg import sql
from temporalio import activity

from activities.postgres.base import PostgresDriver
from activities.postgres.timelines import archived_timelines, confirm_new_timeline
from hybridops import pgbin
from hybridops.contracts.failback import CatchUpResult, PauseResult, RejoinMethod, RejoinOutcome, RejoinResult
from hybridops.contracts.sites import FenceResult, FenceToken, PromoteResult, SiteState
from hybridops.errors import DatabaseError, DatabaseUnreachable, HybridOpsError, PreconditionFailed
from hybridops.lsn import parse_lsn
from hybridops.secrets import resolve_secret

FENCE_MARK = "hybridops.fence.json"
PROMOTE_MARK = "hybridops.promoted.json"
STANDBY_SIGNAL = "standby.signal"
PAUSE_MARK = "hybridops.pause.json"
SITE_CONFIG = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf")
"""A site's own configuration, which pg_rewind and a base backup overwrite with the source's."""
SAVED_DONE = "saved.json"
FOLLOW_GRACE_S = 10.0
"""How long a standby told to follow a new primary may take to stream before it is rewound."""
STREAM_TIMEOUT_S = 120.0
REWIND_TIMEOUT_S = 3600.0
RECLONE_TIMEOUT_S = 6 * 3600.0

T = TypeVar("T")


def _conninfo_host(conninfo: str | None) -> str | None:
    """The ``host`` of a libpq keyword/value connection string (``primary_conninfo``)."""
    for word in (conninfo or "").split():
        key, _, value = word.partition("=")
        if key == "host":
            return value.strip("'")
    return None


def _heartbeat(*details: Any) -> None:
    # A local activity has no heartbeat (the SDK warns on each): its worker keeps the task alive.
    if activity.in_activity() and not activity.info().is_local:
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

    # ------------------------------------------------------------------ hooks

    async def _assess(self, site: str) -> SiteState:
        mark = self._read_mark(site)
        fenced = mark is not None
        fenced_by = mark.get("fenced_by") if mark else None
        promoted = self._read_mark(site, PROMOTE_MARK)
        promoted_by = promoted.get("promoted_by") if promoted else None
        try:
            conn = await self._connect(site)
        except DatabaseUnreachable as err:
            return SiteState(
                site=site,
                reachable=False,
                fenced=fenced,
                fenced_by=fenced_by,
                promoted_by=promoted_by,
                error=str(err),
            )
        async with conn:
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
        return FenceResult(
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
    ) -> PromoteResult:
        if self._read_mark(site) is not None and not allow_fenced:
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
        return PromoteResult(
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

    # ------------------------------------------------------------------ failback

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
            _heartbeat({"waiting_for_reap": pid})
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
            _heartbeat({"waiting_to_stream": site, "from": source})
            await asyncio.sleep(0.1)
        return True

    async def _heartbeating(self, what: str, coro: Awaitable[T]) -> T:
        """Await ``coro`` (a long tool run), heartbeating meanwhile (DESIGN.md rule 9)."""
        task = asyncio.ensure_future(coro)
        while True:
            done, _ = await asyncio.wait({task}, timeout=5)
            if done:
                return task.result()
            _heartbeat({"running": what})

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

    def _save_site_files(self, site: str, run_id: str) -> Path:
        """Save what belongs to the site itself, and that pg_rewind or a base backup would
        replace with the source's: its configuration (listen address, cluster name), its
        logs, its fence mark. Beside the data directory, once per run: a retry after a
        half-done rewind must not save the source's configuration as the site's."""
        data_dir = self._data_dir(site)
        tag = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id) or f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
        saved = data_dir.with_name(f"{data_dir.name}.rejoin-{tag}")
        if (saved / SAVED_DONE).exists():
            return saved
        saved.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in (*SITE_CONFIG, FENCE_MARK):
            if (data_dir / name).is_file():
                shutil.copy2(data_dir / name, saved / name)
        if (data_dir / "log").is_dir():
            shutil.copytree(data_dir / "log", saved / "log", dirs_exist_ok=True)
        (saved / SAVED_DONE).write_text(json.dumps({"site": site, "saved_at": datetime.now(UTC).isoformat()}))
        return saved

    def _restore_site_files(self, site: str, saved: Path, config_only: bool = False) -> None:
        data_dir = self._data_dir(site)
        for name in SITE_CONFIG:
            if (saved / name).is_file():
                self._copy_owned(saved / name, data_dir / name)
        if config_only:
            return
        # Marks copied from the source describe the source; the site keeps its own fence mark
        # (retired separately, once the site has its role back). A pause is over.
        for mark in data_dir.glob("hybridops.*"):
            if mark.is_file():
                mark.unlink()
        if (saved / FENCE_MARK).is_file():
            self._copy_owned(saved / FENCE_MARK, data_dir / FENCE_MARK)
        if (saved / "log").is_dir():
            shutil.rmtree(data_dir / "log", ignore_errors=True)  # the source's logs, copied
            self._copy_owned(saved / "log", data_dir / "log")

    def _configure_standby(self, site: str, source: str, saved: Path) -> None:
        """The site's own files back, then: a standby (``standby.signal``) streaming from
        ``source``, without the read-only default fencing or pausing left (a standby is
        read-only anyway, and must come up writable if it is promoted one day)."""
        data_dir = self._data_dir(site)
        self._restore_site_files(site, saved)
        auto = data_dir / "postgresql.auto.conf"
        kept = [
            line
            for line in (auto.read_text().splitlines() if auto.exists() else [])
            if line.split("=", 1)[0].strip() not in ("primary_conninfo", "default_transaction_read_only")
        ]
        conninfo = self._conninfo(site, source).replace("'", "''")
        self._write_file(auto, "\n".join([*kept, f"primary_conninfo = '{conninfo}'", ""]))
        (data_dir / "recovery.signal").unlink(missing_ok=True)
        self._write_file(data_dir / STANDBY_SIGNAL, "")

    async def _pg_rewind(self, site: str, source: str, saved: Path) -> str:
        """pg_rewind ``site`` (stopped) onto ``source``'s timeline; its output."""
        data_dir = self._data_dir(site)
        if not (data_dir / "PG_VERSION").exists():
            raise DatabaseError("no data directory to rewind", site=site)
        control = await self._controldata(site)
        conn = await self._connect(source)
        async with conn:
            cur = await conn.execute("SELECT system_identifier::text FROM pg_control_system()")
            row = await cur.fetchone()
        ident = control.get("Database system identifier")
        if row is None or row[0] != ident:
            raise DatabaseError(
                f"no common ancestor: system identifier {ident} is not the source's {row[0] if row else '?'}",
                site=site,
            )
        self._restore_site_files(site, saved, config_only=True)  # after a half-done rewind
        if control.get("Database cluster state") not in ("shut down", "shut down in recovery"):
            # It crashed. pg_rewind's own crash recovery runs in single-user mode, which refuses
            # standby.signal, and lifting the fence even for a moment could let a stale primary
            # come up writable: recover it as the standby the fence makes it, stop it cleanly.
            # On its own timeline, streaming from nobody: a diverged server cannot follow the
            # source's newer timeline (which the archive offers), and must not try.
            if not (data_dir / STANDBY_SIGNAL).exists():
                self._write_file(data_dir / STANDBY_SIGNAL, "")
            await self._start_server(site, "recovery_target_timeline=current", "primary_conninfo=")
            await self._stop_server(site)
        src = self.inventory.site(source)
        conninfo = f"host={src.host} port={src.port} user={src.user} dbname={src.dbname}"
        return await self._heartbeating(
            "pg_rewind",
            pgbin.arun(
                pgbin.bin_dir(self.inventory.postgres.bin_dir),
                "pg_rewind",
                [f"--target-pgdata={data_dir}", f"--source-server={conninfo}", "--restore-target-wal"],
                self.inventory.postgres.run_as,
                timeout=REWIND_TIMEOUT_S,
                env=self._password_env(source),
            ),
        )

    async def _reclone(self, site: str, source: str) -> Path | None:
        """A fresh base backup of ``source`` into the site's data directory; the old one is
        moved aside (timestamped), never deleted. Returns where it went."""
        data_dir = self._data_dir(site)
        moved = None
        if data_dir.exists() and any(data_dir.iterdir()):
            moved = data_dir.with_name(f"{data_dir.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
            data_dir.rename(moved)
        data_dir.mkdir(mode=0o700, exist_ok=True)
        data_dir.chmod(0o700)
        pgbin.chown_to(data_dir, self.inventory.postgres.run_as)
        src = self.inventory.site(source)
        await self._heartbeating(
            "pg_basebackup",
            pgbin.arun(
                pgbin.bin_dir(self.inventory.postgres.bin_dir),
                "pg_basebackup",
                [
                    *("-h", src.host, "-p", str(src.port), "-U", src.user, "-D", str(data_dir)),
                    *("-X", "stream", "--checkpoint=fast", "-d", f"application_name={site}"),
                ],
                self.inventory.postgres.run_as,
                timeout=RECLONE_TIMEOUT_S,
                env=self._password_env(source),
            ),
        )
        return moved

    async def _rewind(self, site: str, source: str, run_id: str, method: RejoinMethod) -> RejoinResult:
        started = time.monotonic()
        if await self._streams_from(site, source):
            return RejoinResult(outcome=RejoinOutcome.UNCHANGED, detail=f"already streams from {source}")
        src = await self._assess(source)
        if not src.reachable:
            raise DatabaseUnreachable(f"the source does not answer: {src.error}", site=source)
        if src.in_recovery:
            raise PreconditionFailed("the source is not a primary", site=source)
        reason = ""
        if method == RejoinMethod.AUTO and self._is_running(site):
            state = await self._assess(site)
            if state.reachable and state.in_recovery:
                await self._follow(site, source)
                conn = await self._connect(site)
                async with conn:
                    await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
                    await conn.execute("SELECT pg_reload_conf()")
                if await self._wait_streaming(site, source, FOLLOW_GRACE_S):
                    return RejoinResult(
                        changed=True,
                        outcome=RejoinOutcome.FOLLOWED,
                        seconds=round(time.monotonic() - started, 3),
                        detail=f"follows {source}",
                    )
                reason = f"did not stream {FOLLOW_GRACE_S:.0f} s after following {source} (diverged)"
        saved = self._save_site_files(site, run_id)
        await self._stop_server(site)
        outcome, moved, how = None, None, ""
        if method != RejoinMethod.RECLONE:
            try:
                out = await self._pg_rewind(site, source, saved)
                outcome = RejoinOutcome.REWOUND
                how = "no rewind required" if "no rewind required" in out else "pg_rewind"
            except HybridOpsError as err:
                if method == RejoinMethod.REWIND:
                    raise
                reason = (f"{reason}; " if reason else "") + f"rewind impossible: {err}"
        if outcome is None:
            moved = await self._reclone(site, source)
            outcome, how = RejoinOutcome.RECLONED, "pg_basebackup"
        self._configure_standby(site, source, saved)
        await self._start_server(site)
        if not await self._wait_streaming(site, source, STREAM_TIMEOUT_S):
            raise DatabaseError(
                f"started, but not streaming from {source} after {STREAM_TIMEOUT_S:.0f} s", site=site
            )
        aside = f"; old data directory moved to {moved}" if moved else ""
        aside += f"; {reason}" if reason else ""
        return RejoinResult(
            changed=True,
            outcome=outcome,
            moved_aside=str(moved) if moved else None,
            saved_config=str(saved),
            fallback_reason=reason,
            seconds=round(time.monotonic() - started, 3),
            detail=f"{outcome.value} ({how}), streams from {source}{aside}",
        )

    async def _catch_up(
        self, site: str, source: str, max_lag_bytes: int, timeout_s: float, target_lsn: str | None
    ) -> CatchUpResult:
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
                    return CatchUpResult(
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
                _heartbeat({"replay_lsn": row[1], "lag_bytes": lag})
                await asyncio.sleep(0.02)

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

    async def _pause_writes(self, site: str, run_id: str) -> PauseResult:
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
        return PauseResult(
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
