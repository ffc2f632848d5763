"""A failover's restore mode for the ``local`` driver: a site's server replaced by a backup
restored from the backup driver and the WAL archive, started as the primary on a new timeline.

How it stays safe when the worker dies anywhere in it (DESIGN.md rule 2):

1. The backup driver restores into ``<data_dir>.hybridops-restore``, a fresh directory beside
   the site's (never into it): a half-fetched copy sits where no ``pg_ctl`` of the site looks,
   and the backup driver's own marks make a retried fetch start over or find it finished.
2. The copy is configured as the site's server (the site's own configuration files, recovery
   from the archive to the end or to the asked time, then promote) and marked with the run
   (:data:`RESTORE_MARK`, and the promote mark that :meth:`assess` reads as ``promoted_by``
   only once the server left the archive's newest timeline).
3. Only then is the site's server (the unfit standby) stopped, its directory moved aside
   (``<data_dir>.replaced-<time>``, never deleted) and the copy renamed into place: two
   renames; a retry between them finds no data directory and renames the finished copy.
4. Started, it replays the archive in recovery: read-only, never taken for a primary. At the
   end of recovery PostgreSQL takes a timeline above every one whose history file the archive
   holds (its ``restore_command`` reads them), which is checked again against the archive,
   as after a promotion (:func:`drivers.postgres.timelines.confirm_new_timeline`).

A retry that finds the site's data directory marked by its own run starts the server if it is
down, waits for the end of recovery, and proves the result (timeline past the archive's
newest, the archive's history file the server's own) instead of restoring again. A mark of
another run is refused.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.postgres import binaries as pgbin
from drivers.postgres import promotion
from drivers.postgres.server import PROMOTE_MARK, STANDBY_SIGNAL, LocalServer
from drivers.postgres.timelines import archived_timelines, confirm_new_timeline
from drivers.postgres.types import Restored
from drivers.progress import report as report_progress
from hybridops.errors import DatabaseError, DatabaseUnreachable, PreconditionFailed, TimelineCollision

if TYPE_CHECKING:
    from drivers.backup.base import BackupDriver

RESTORE_MARK = "hybridops.restore-primary.json"
"""In a restored site's data directory: which run restored it, from which backup."""
STAGING_SUFFIX = ".hybridops-restore"
"""``<data_dir>.hybridops-restore``: where the backup is fetched, beside the data directory."""
RECOVERY_TIMEOUT_S = 6 * 3600.0
"""How long the archive's replay may take (the step's own timeout is the same)."""
RECOVERY_POLL_S = 0.05
CONFIG_FILES = ("postgresql.conf", "pg_hba.conf", "pg_ident.conf")
"""The site's own configuration: the restored server is this site's server (its address,
archiving, access), not the one the backup was taken from."""
RECOVERY_KEYS = {
    "restore_command",
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_xid",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "recovery_target_action",
    "primary_conninfo",
    "primary_slot_name",
    "listen_addresses",
    "port",
    "archive_mode",
    "archive_command",
    "cluster_name",
    "unix_socket_directories",
    "logging_collector",
    "hot_standby",
    "default_transaction_read_only",
    "synchronous_standby_names",
}
"""Keys the restore sets itself; any other line of the site's ``postgresql.auto.conf`` stays."""
_KEY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=|\s|$)")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _without(text: str, keys: set[str]) -> list[str]:
    return [ln for ln in text.splitlines() if not ((m := _KEY.match(ln)) and m.group(1).lower() in keys)]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'").replace("\\\\", "\\")
    return value


class LocalRestore(LocalServer):
    """Restore mode of the ``local`` driver (see the module's docstring)."""

    def _staging(self, site: str) -> Path:
        data_dir = self._data_dir(site)
        return data_dir.with_name(data_dir.name + STAGING_SUFFIX)

    async def _restore_primary(
        self,
        site: str,
        backups: BackupDriver,
        backup: str,
        target_time: datetime | None,
        run_id: str,
    ) -> Restored:
        t0 = time.monotonic()
        mark = self._read_mark(site, RESTORE_MARK)
        if mark is not None:
            if mark.get("run_id") != run_id or not run_id:
                raise PreconditionFailed(
                    f"{site}'s server was restored by run {mark.get('run_id')!r}, not this one: not"
                    " restoring over it",
                    site=site,
                )
            return await self._finish_restore(site, mark, t0, changed=False)
        if self._is_running(site):
            state = await self._assess(site)
            if state.reachable and state.in_recovery is False:
                raise PreconditionFailed(
                    f"{site} accepts writes: a restore replaces only a server that is not a primary",
                    site=site,
                )
        staging = self._staging(site)
        ready = self._staged_mark(staging)
        if ready is not None:
            # A retry after the copy was complete and marked: swap it in as it is (the site's
            # own configuration may be in the moved-aside directory by now).
            if ready.get("run_id") != run_id or not run_id:
                raise PreconditionFailed(
                    f"{staging} holds a restore of run {ready.get('run_id')!r}, not this one: remove it"
                    " or finish that run",
                    site=site,
                )
            return await self._swap_in(site, staging, ready, t0)
        archive = self.inventory.backup.wal_archive
        archived = await asyncio.to_thread(archived_timelines, archive) if archive is not None else {}
        report_progress({"phase": "fetching", "backup": backup})
        fetched = await backups.restore(backup, staging, target_time)
        report_progress({"phase": "configuring", "backup": fetched.backup})
        newest = max(archived, default=1)
        mark = {
            "run_id": run_id,
            "backup": fetched.backup,
            "target_time": target_time.isoformat() if target_time else None,
            "archived_timelines": sorted(archived),
            "fetch_seconds": fetched.fetch_seconds,
            "started_at": datetime.now(UTC).isoformat(),
        }
        self._configure_as_site(site, staging, fetched.settings.get("restore_command", ""), target_time)
        self._write_file(staging / PROMOTE_MARK, json.dumps(promotion.promote_mark(run_id, newest, None)))
        self._write_file(staging / RESTORE_MARK, json.dumps(mark))  # last: the copy is complete
        return await self._swap_in(site, staging, mark, t0)

    @staticmethod
    def _staged_mark(staging: Path) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((staging / RESTORE_MARK).read_text())
            return data
        except FileNotFoundError:
            return None

    async def _swap_in(self, site: str, staging: Path, mark: dict[str, Any], t0: float) -> Restored:
        """Stop the site's server, move its data directory aside, rename the complete copy into
        its place; then start it. A retry between the two renames finds no data directory."""
        data_dir = self._data_dir(site)
        report_progress({"phase": "swapping", "backup": mark.get("backup")})
        await self._stop_server(site)
        await self._await_reaped(site)
        if data_dir.exists():
            replaced = data_dir.with_name(f"{data_dir.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
            await asyncio.to_thread(data_dir.rename, replaced)
            mark["replaced"] = str(replaced)
            self._write_file(staging / RESTORE_MARK, json.dumps(mark))
        await asyncio.to_thread(staging.rename, data_dir)
        return await self._finish_restore(site, mark, t0, changed=True)

    def _configure_as_site(
        self, site: str, staging: Path, restore_command: str, target_time: datetime | None
    ) -> None:
        """Make the fetched copy this site's server: its configuration files, recovery from the
        archive to the end (or ``target_time``) and promote, streaming from nobody."""
        data_dir = self._data_dir(site)
        for name in CONFIG_FILES:
            own = data_dir / name
            if own.exists():
                self._write_file(staging / name, own.read_text())
            elif name == "postgresql.conf":
                raise PreconditionFailed(
                    f"{site} keeps no postgresql.conf in its data directory ({data_dir}): the restored"
                    " server would run with the backup source's configuration",
                    site=site,
                )
        # The backup driver's restore_command names the copy's own path (wal-g's env file):
        # after the swap it lives at the site's.
        command = _unquote(restore_command).replace(str(staging), str(data_dir))
        if not command:
            raise PreconditionFailed("the backup driver set no restore_command", site=site)
        auto = data_dir / "postgresql.auto.conf"
        kept = _without(auto.read_text(), RECOVERY_KEYS) if auto.exists() else []
        settings = {
            "restore_command": _quote(command),
            "recovery_target": "''",
            "recovery_target_lsn": "''",
            "recovery_target_xid": "''",
            "recovery_target_name": "''",
            "recovery_target_time": _quote(target_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00"))
            if target_time
            else "''",
            "recovery_target_inclusive": "on",
            "recovery_target_timeline": "'latest'",
            "recovery_target_action": "'promote'",
            "primary_conninfo": "''",
            "primary_slot_name": "''",
        }
        block = ["# hybridops restore_primary: recover from the archive, then promote"]
        block += [f"{k} = {v}" for k, v in settings.items()]
        self._write_file(staging / "postgresql.auto.conf", "\n".join([*kept, *block]) + "\n")
        (staging / STANDBY_SIGNAL).unlink(missing_ok=True)
        # The backup source's server log came along: not this server's.
        shutil.rmtree(staging / "log", ignore_errors=True)
        self._write_file(staging / "recovery.signal", "")

    async def _finish_restore(self, site: str, mark: dict[str, Any], t0: float, changed: bool) -> Restored:
        """Start the restored server if it is down, wait for the end of its recovery, and
        prove its timeline new in the archive."""
        r0 = time.monotonic()
        if not self._is_running(site):
            await self._await_reaped(site)
            log_dir = self._data_dir(site) / "log"
            if not log_dir.is_dir():
                log_dir.mkdir(mode=0o700)
                pgbin.chown_to(log_dir, self.inventory.postgres.run_as)
            report_progress({"phase": "starting"})
            # -w: until it accepts connections, which a hot standby does once consistent (the
            # backup's end); the rest of the archive is replayed while the loop below watches.
            await self._heartbeating(
                "pg_ctl start",
                self._pg_ctl(
                    site, "start", "-w", "-t", str(int(RECOVERY_TIMEOUT_S)), "-l", str(log_dir / "server.log")
                ),
            )
        replayed = await self._await_end_of_recovery(site)
        after = await self._assess(site)
        timeline = after.timeline or 0
        archived = [int(t) for t in mark.get("archived_timelines", [])]
        promote = self._read_mark(site, PROMOTE_MARK)
        if after.read_only or not promotion.completed(promote, timeline):
            raise PreconditionFailed(
                f"{site} left recovery on timeline {timeline}, not above the archive's"
                f" {max(archived, default=1)}, or is read-only: not taken as the restored primary",
                site=site,
                timeline=timeline,
            )
        note = await self._timeline_held(site, timeline, {t: b"" for t in archived} if changed else None)
        return Restored(
            changed=changed,
            backup=str(mark.get("backup")),
            target_time=mark.get("target_time"),
            timeline=timeline,
            replayed_to_lsn=after.timeline_switch_lsn or replayed,
            archived_timelines=archived,
            fetch_seconds=float(mark.get("fetch_seconds") or 0.0),
            recovery_seconds=round(time.monotonic() - r0, 3),
            restore_seconds=round(time.monotonic() - t0, 3),
            promoted_at=datetime.now(UTC),
            replaced=mark.get("replaced"),
            detail=(
                f"restored {mark.get('backup')}"
                + (f" to {mark['target_time']}" if mark.get("target_time") else " with all archived WAL")
                + f"; primary on timeline {timeline} from {after.timeline_switch_lsn or replayed}; {note}"
                if changed
                else f"already restored by {mark.get('run_id')} ({mark.get('backup')}): primary on"
                f" timeline {timeline}; {note}"
            ),
        )

    async def _await_end_of_recovery(self, site: str) -> str | None:
        """Wait until the restored server accepts writes, heartbeating the WAL it replayed.
        Returns the last replay position seen. Raises :class:`DatabaseError` when the server
        exits (its log's last lines say why)."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        replayed: str | None = None
        while True:
            try:
                conn = await self._connect(site)
                async with conn:
                    cur = await conn.execute("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
                    row = await cur.fetchone()
                if row is not None and row[0] is False:
                    return replayed
                replayed = row[1] if row else replayed
                report_progress({"phase": "replaying", "replay_lsn": replayed})
            except DatabaseUnreachable:
                if not self._is_running(site):
                    raise DatabaseError(
                        f"the restored server exited during recovery: {self._log_tail(site)}", site=site
                    ) from None
                report_progress({"phase": "recovering"})
            if time.monotonic() > deadline:
                raise DatabaseError(f"recovery did not end within {RECOVERY_TIMEOUT_S:g} s", site=site)
            await asyncio.sleep(RECOVERY_POLL_S)

    def _log_tail(self, site: str) -> str:
        try:
            lines = (self._data_dir(site) / "log" / "server.log").read_text().splitlines()
        except OSError:
            return "no server log"
        return " | ".join(ln for ln in lines[-5:] if "FATAL" in ln or "PANIC" in ln or "LOG" in ln)[-600:]

    async def _timeline_held(self, site: str, timeline: int, before: dict[int, bytes] | None = None) -> str:
        """``site`` is writable on ``timeline`` (a promotion or a restore): its timeline above
        every other one the WAL archive holds (``before``: as read before the change, else
        now), and the archive's history file of it the server's own. A note for the detail;
        raises :class:`TimelineCollision`."""
        archive = self.inventory.backup.wal_archive
        if archive is None:
            return "no local WAL archive to check the timeline against"
        archived = await asyncio.to_thread(archived_timelines, archive)
        newer = sorted(t for t in archived if t > timeline)
        if newer:
            raise TimelineCollision(
                f"{site} is on timeline {timeline}, but the WAL archive holds timeline {newer[-1]},"
                " promoted by another server since: its promotion is not the newest history",
                site=site,
                timeline=timeline,
            )
        if before is None:
            before = {t: content for t, content in archived.items() if t < timeline}
        pg_wal = self._data_dir(site) / "pg_wal"
        return await confirm_new_timeline(site, timeline, before, archive, pg_wal)
