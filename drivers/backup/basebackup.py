"""The ``basebackup`` driver (the lab): ``pg_basebackup`` into a local repository, WAL from the
servers' own archive.

Repository layout, one entry per backup::

    <repository>/base_000000010000000000000004/     base.tar, backup_manifest
    <repository>/base_000000010000000000000004.json the descriptor: written last, so a backup
                                                    without one is incomplete and not listed
    <repository>/.partial-<uuid>/                   a backup being taken

How the end of a backup reaches the archive: ``pg_basebackup --wal-method=none`` takes no WAL
itself, and the server then makes ``pg_backup_stop`` wait for the archiver, after switching to
a new segment, so the command returns only once the segment holding the end-of-backup record
is archived (on a primary with ``archive_mode = on``). A standby cannot switch segments and
does not archive; for both, :meth:`BaseBackupDriver.backup` then waits, with a deadline, until
that segment is in the archive (the primary's ``archive_timeout`` bounds how long that takes)
and checks the backup against its manifest with ``pg_verifybackup``.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import tarfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from drivers.backup import recovery
from drivers.backup.base import LATEST, BackupDriver
from drivers.backup.errors import BackupNotFound, BackupToolFailed
from drivers.backup.process import run_tool
from drivers.postgres import binaries as pgbin
from drivers.postgres.connect import connect_site
from drivers.progress import report as report_progress
from drivers.secrets import resolve_secret
from hybridops.contracts.backup import BackupInfo, RestoreResult, WalVerifyResult
from hybridops.errors import ConfigError, FatalError, InputError, PreconditionFailed
from hybridops.lsn import parse_lsn

BACKUP_TIMEOUT_S = 6 * 3600.0
ARCHIVE_WAIT_S = 120.0
"""How long a backup waits for its last WAL segment to reach the archive."""
_SEGMENT = re.compile(r"^[0-9A-F]{24}$")


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segment_name(timeline: int, segno: int, segment_size: int) -> str:
    """The WAL file name of segment ``segno`` on ``timeline`` (PostgreSQL's XLogFileName)."""
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def parse_segment(name: str, segment_size: int) -> tuple[int, int]:
    """(timeline, segment number) of a WAL file name."""
    per_id = 0x100000000 // segment_size
    return int(name[:8], 16), int(name[8:16], 16) * per_id + int(name[16:], 16)


class BaseBackupDriver(BackupDriver):
    """Base backups with ``pg_basebackup`` (tar format, no WAL) into ``backup.repository``;
    WAL comes from ``backup.wal_archive``, which the servers' ``archive_command`` fills."""

    backup_timeout_s = BACKUP_TIMEOUT_S
    archive_wait_s = ARCHIVE_WAIT_S

    # ------------------------------------------------------------------ layout

    @property
    def repository(self) -> Path:
        repo = self.inventory.backup.repository
        if repo is None:
            raise ConfigError("backup.repository: required by backup driver 'basebackup'")
        return repo.absolute()

    @property
    def archive(self) -> Path:
        archive = self.inventory.backup.wal_archive
        if archive is None:
            raise ConfigError("backup.wal_archive: required by backup driver 'basebackup'")
        return archive.absolute()

    def _descriptor(self, name: str) -> Path:
        return self.repository / f"{name}.json"

    def _read(self, path: Path) -> tuple[BackupInfo, int] | None:
        """(backup, WAL segment size) from a descriptor; None if unreadable."""
        try:
            data = json.loads(path.read_text())
            return BackupInfo.model_validate(data["backup"]), int(data["wal_segment_size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _all(self) -> list[tuple[BackupInfo, int]]:
        if not self.repository.is_dir():
            return []
        found = [d for p in self.repository.glob("base_*.json") if (d := self._read(p)) is not None]
        found = [d for d in found if (self.repository / d[0].name).is_dir()]
        return sorted(found, key=lambda d: (d[0].started_at or datetime.min.replace(tzinfo=UTC), d[0].name))

    # ------------------------------------------------------------------ backup

    async def _source(self, site: str) -> tuple[bool, int]:
        """(in recovery, WAL segment size) of ``site``; refuses a server that does not archive."""
        conn = await connect_site(self.inventory, site, application_name="hybridops-backup")
        async with conn:
            cur = await conn.execute(
                "SELECT pg_is_in_recovery(), current_setting('archive_mode'),"
                " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')"
            )
            row = await cur.fetchone()
            assert row is not None
        in_recovery, archive_mode, segment_size = row
        if archive_mode == "off":
            raise PreconditionFailed("archive_mode is off: a backup could not be restored", site=site)
        return bool(in_recovery), int(segment_size)

    async def backup(self, site: str) -> BackupInfo:
        """Take a base backup of ``site`` (primary or standby). Not idempotent by nature: each
        call is a new backup; a failed attempt leaves nothing listed. Takes as long as copying
        the data directory, plus up to ``archive_wait_s`` for its WAL to be archived.
        Raises :class:`BackupToolFailed` (retryable), :class:`PreconditionFailed` (the server
        does not archive, or its WAL did not reach the archive in time)."""
        cfg = self.inventory.site(site)
        run_as = self.inventory.postgres.run_as
        in_recovery, segment_size = await self._source(site)
        repo = self.repository
        if not repo.exists():
            repo.mkdir(parents=True)
            repo.chmod(0o700)
            pgbin.chown_to(repo, run_as)
        partial = repo / f".partial-{uuid.uuid4().hex[:12]}"
        bins = pgbin.bin_dir(self.inventory.postgres.bin_dir)
        password = resolve_secret(cfg.password_ref)
        plain = {
            "PGAPPNAME": "hybridops-backup",
            "PGCONNECT_TIMEOUT": str(self.inventory.postgres.libpq_connect_timeout),
        }
        if password:
            plain["PGPASSWORD"] = password
        env = pgbin.tool_env("pg_basebackup", plain)
        started_at = datetime.now(UTC)
        t0 = time.monotonic()
        try:
            await run_tool(
                [
                    str(bins / "pg_basebackup"),
                    "--host",
                    cfg.host,
                    "--port",
                    str(cfg.port),
                    "--username",
                    cfg.user,
                    "--no-password",
                    "--pgdata",
                    str(partial),
                    "--format=tar",
                    "--wal-method=none",
                    "--checkpoint=fast",
                    f"--label=hybridops backup of {site}",
                ],
                timeout=self.backup_timeout_s,
                env=env,
                secrets=[password or ""],
                run_as=run_as,
                ids={"site": site},
            )
            manifest = json.loads((partial / "backup_manifest").read_text())
            ranges = manifest["WAL-Ranges"]
            if len(ranges) != 1:  # a standby whose upstream was promoted during the backup
                raise BackupToolFailed(f"backup spans {len(ranges)} timelines; take it again", site=site)
            timeline = int(ranges[0]["Timeline"])
            start, end = parse_lsn(ranges[0]["Start-LSN"]), parse_lsn(ranges[0]["End-LSN"])
            assert start is not None and end is not None
            first = segment_name(timeline, start // segment_size, segment_size)
            last = segment_name(timeline, max(end - 1, start) // segment_size, segment_size)
            await self._wait_archived(last, site)
            await run_tool(
                [str(bins / "pg_verifybackup"), "--no-parse-wal", "--quiet", str(partial)],
                timeout=self.backup_timeout_s,
                env=env,
                run_as=run_as,
                ids={"site": site},
            )
            name = f"base_{first}"
            if (repo / name).exists() or self._descriptor(name).exists():
                name += "_" + started_at.strftime("%Y%m%dT%H%M%S%fZ")
            partial.rename(repo / name)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        size = sum(p.stat().st_size for p in (repo / name).iterdir())
        info = BackupInfo(
            name=name,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            start_lsn=format_lsn(start),
            end_lsn=format_lsn(end),
            size_bytes=size,
            uncompressed_bytes=size,
            site=site,
            timeline=timeline,
            wal_segment=first,
        )
        descriptor = {
            "backup": info.model_dump(mode="json"),
            "wal_segment_size": segment_size,
            "format": "tar",
            "from_standby": in_recovery,
            "seconds": round(time.monotonic() - t0, 3),
        }
        tmp = self._descriptor(name).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(descriptor, indent=2))
        pgbin.chown_to(tmp, run_as)
        tmp.replace(self._descriptor(name))
        return info

    async def _wait_archived(self, segment: str, site: str) -> None:
        deadline = time.monotonic() + self.archive_wait_s
        while not (self.archive / segment).exists():
            if time.monotonic() > deadline:
                raise PreconditionFailed(
                    f"WAL segment {segment}, which ends the backup, was not archived within"
                    f" {self.archive_wait_s:g}s (is archive_command working?)",
                    site=site,
                )
            report_progress({"waiting_for_archive": segment})
            await asyncio.sleep(0.1)

    # ------------------------------------------------------------------ list, restore

    async def list(self) -> list[BackupInfo]:
        """Every complete backup, oldest first. Read-only."""
        return [info for info, _ in self._all()]

    def _resolve(self, backup: str, target_time: datetime | None) -> BackupInfo:
        backups = [info for info, _ in self._all()]
        if backup == LATEST:
            if target_time is not None:
                # The newest backup that finished before the target: recovery must reach the
                # backup's consistent point before it may stop.
                backups = [b for b in backups if b.finished_at is not None and b.finished_at <= target_time]
            if not backups:
                when = f" finished before {target_time.isoformat()}" if target_time else ""
                raise BackupNotFound(f"no backup{when} in {self.repository}", backup=backup)
            return backups[-1]
        for info in backups:
            if info.name == backup:
                if target_time is not None and info.started_at is not None and target_time < info.started_at:
                    raise InputError(
                        f"target_time {target_time.isoformat()} is before backup {backup} started",
                        backup=backup,
                    )
                return info
        raise BackupNotFound(f"backup {backup!r} does not exist in {self.repository}", backup=backup)

    async def _restore(self, backup: str, data_dir: Path, target_time: datetime | None) -> RestoreResult:
        """Extract ``backup`` into ``data_dir`` (empty or absent; never a site's) and configure
        recovery from the archive (see :mod:`drivers.backup.recovery`). Idempotent: a retry
        after a finished restore returns its result; after an interrupted one, starts over.
        Raises :class:`BackupNotFound` naming the backup, :class:`RestoreTargetNotEmpty`."""
        if target_time is not None:
            recovery.pg_time(target_time)  # a time without a zone is refused before anything
        done = recovery.recorded_restore(data_dir)
        if done is not None and backup in (LATEST, done.backup) and done.target_time == target_time:
            return done
        info = self._resolve(backup, target_time)
        run_as = self.inventory.postgres.run_as
        t0 = time.monotonic()
        target = recovery.prepare_target(self.inventory, data_dir)
        source = self.repository / info.name
        tars = sorted(p.name for p in source.glob("*.tar"))
        if tars != ["base.tar"]:
            raise FatalError(f"backup {info.name} holds {tars}; only base.tar (no tablespaces) is supported")
        extracting = asyncio.ensure_future(asyncio.to_thread(_extract, source / "base.tar", target))
        while not extracting.done():
            await asyncio.wait({extracting}, timeout=5)
            report_progress({"extracting": info.name, "seconds": round(time.monotonic() - t0)})
        extracting.result()
        restore_command = f'cp {shlex.quote(str(self.archive))}/%f "%p"'
        settings = recovery.configure_recovery(self.inventory, target, restore_command, target_time)
        recovery.chown_tree(target, run_as)
        result = RestoreResult(
            backup=info.name,
            data_dir=str(target),
            target_time=target_time,
            fetch_seconds=round(time.monotonic() - t0, 3),
            settings=settings,
        )
        recovery.finish(target, result, run_as)
        return result

    # ------------------------------------------------------------------ WAL archive

    async def verify_wal(self) -> WalVerifyResult:
        """Check that the archive holds every segment from the oldest backup's first to the
        newest archived one, following timeline switches (``<tli>.history``). Read-only."""
        backups = self._all()
        if not backups:
            return WalVerifyResult(ok=False, detail=f"no backup in {self.repository}")
        oldest, segment_size = backups[0]
        if oldest.wal_segment is None:
            return WalVerifyResult(ok=False, detail=f"backup {oldest.name} does not say where its WAL starts")
        return await asyncio.to_thread(_verify_archive, self.archive, oldest.wal_segment, segment_size)


def _extract(tar_path: Path, target: Path) -> None:
    with tarfile.open(tar_path) as tar:
        tar.extractall(target, filter="data")


def _switch_points(archive: Path, timeline: int) -> list[tuple[int, int]]:
    """(parent timeline, LSN where it ended) for each ancestor of ``timeline``, oldest first."""
    history = archive / f"{timeline:08X}.history"
    if timeline == 1 or not history.exists():
        return []
    points = []
    for line in history.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#"):
            lsn = parse_lsn(parts[1])
            if lsn is not None:
                points.append((int(parts[0]), lsn))
    return points


def _verify_archive(archive: Path, first: str, segment_size: int) -> WalVerifyResult:
    names = {p.name for p in archive.iterdir() if _SEGMENT.match(p.name)} if archive.is_dir() else set()
    if not names:
        return WalVerifyResult(ok=False, detail=f"no WAL segment in {archive}")
    parsed = [parse_segment(n, segment_size) for n in names]
    newest_tli = max(t for t, _ in parsed)
    last_segno = max(s for t, s in parsed if t == newest_tli)
    switches = _switch_points(archive, newest_tli)

    def timeline_of(segno: int) -> int:
        # The timeline current at the end of the segment: a segment holding a switch point is
        # archived under the new timeline (the old one keeps it as .partial).
        end = (segno + 1) * segment_size - 1
        for parent, switched_at in switches:
            if end < switched_at:
                return parent
        return newest_tli

    _, first_segno = parse_segment(first, segment_size)
    missing = []
    found = 0
    for segno in range(first_segno, last_segno + 1):
        name = segment_name(timeline_of(segno), segno, segment_size)
        if name in names:
            found += 1
        else:
            missing.append(name)
    last = segment_name(newest_tli, last_segno, segment_size)
    detail = (
        f"{found} segments from {first} to {last}"
        if not missing
        else f"{len(missing)} missing between {first} and {last}: {', '.join(missing[:10])}"
    )
    return WalVerifyResult(
        ok=not missing and first_segno <= last_segno,
        detail=detail,
        first_segment=first,
        last_segment=last,
        segments=found,
        missing=missing,
    )
