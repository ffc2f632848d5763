"""The ``walg`` driver (production): the ``wal-g`` CLI against object storage.

Commands used, as WAL-G documents them: ``backup-push <PGDATA>`` (connection from ``PGHOST``,
``PGPORT``, ``PGUSER``), ``backup-list --json --detail``, ``backup-fetch <dir> <name|LATEST>``,
``wal-fetch <file> <path>`` (the restored server's ``restore_command``) and
``wal-verify integrity timeline --json``.

Secrets: ``backup.walg_env`` maps variable names to secret references, resolved at each call
and handed to wal-g only in its environment; a value is never put in argv (refused), a log, an
error or a result (redacted from wal-g's stderr). A restored server needs the same variables
for ``wal-fetch``: they go into ``hybridops-walg.env`` inside the restored data directory
(mode 0600, the PostgreSQL user's), which ``restore_command`` sources; teardown removes it with
the directory. ``postgresql.auto.conf`` only names the file (see :func:`wal_fetch_command`).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.backup import recovery
from drivers.backup.base import LATEST, BackupDriver, check_backup_name
from drivers.backup.basebackup import format_lsn
from drivers.backup.errors import BackupNotFound
from drivers.backup.process import run_tool
from drivers.postgres import binaries as pgbin
from drivers.postgres.connect import connect_site
from drivers.secrets import resolve_reference, resolve_secret
from hybridops.childenv import child_environment
from hybridops.contracts.backup import BackupInfo, RestoreResult, WalVerifyResult
from hybridops.errors import ConfigError, DatabaseUnreachable, FatalError, HybridOpsError
from hybridops.lsn import parse_lsn
from hybridops.secrets import MIN_SECRET_LEN

ENV_FILE = "hybridops-walg.env"
"""In a restored data directory: the variables ``wal-g wal-fetch`` needs, sourced by
``restore_command``."""
USER_DATA_SITE = "hybridops_site"
"""Key of the site name in the backup's user data (``WALG_SENTINEL_USER_DATA``)."""

_NOT_FOUND = re.compile(r"Backup '([^']*)' does not exist|No backups found")
_WROTE = re.compile(r"Wrote backup with name (\S+)")


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _lsn(value: Any) -> str | None:
    """WAL-G prints LSNs as integers; accept ``X/Y`` too."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return format_lsn(value)
    text = str(value)
    if text.isdigit():
        return format_lsn(int(text))
    return format_lsn(parse_lsn(text) or 0)


def wal_fetch_command(walg_path: str, env_file: Path) -> str:
    """``restore_command`` for a restored server: source the env file, ``wal-g wal-fetch``.

    wal-g exits 74 when a segment is not in the storage (the normal end of the archive) and 1 on
    any other error. PostgreSQL ends recovery on any exit code up to 125 and stops on higher
    ones, so a storage error would silently end recovery early and lose data: the wrapper turns
    every failure but 74 into 255, which stops the server with the error in its log."""
    walg, env = shlex.quote(walg_path), shlex.quote(str(env_file))
    return f'. {env} && {{ {walg} wal-fetch "%f" "%p"; rc=$?; case $rc in 0|74) exit $rc;; esac; exit 255; }}'


def backup_info(entry: Mapping[str, Any]) -> BackupInfo:
    """One entry of ``backup-list --json --detail`` as a :class:`BackupInfo`."""
    wal = entry.get("wal_file_name") or None
    user_data = entry.get("user_data")
    site = user_data.get(USER_DATA_SITE) if isinstance(user_data, dict) else None
    return BackupInfo(
        name=str(entry["backup_name"]),
        started_at=_parse_time(entry.get("start_time")) or _parse_time(entry.get("time")),
        finished_at=_parse_time(entry.get("finish_time")) or _parse_time(entry.get("time")),
        start_lsn=_lsn(entry.get("start_lsn")),
        end_lsn=_lsn(entry.get("finish_lsn")),
        size_bytes=entry.get("compressed_size"),
        uncompressed_bytes=entry.get("uncompressed_size"),
        site=site if isinstance(site, str) else None,
        timeline=int(wal[:8], 16) if wal and len(wal) == 24 else None,
        wal_segment=wal,
    )


class WalgBackupDriver(BackupDriver):
    """Backups with the ``wal-g`` CLI (``backup.walg_path``), configured by ``backup.walg_env``."""

    push_timeout_s = 6 * 3600.0
    fetch_timeout_s = 6 * 3600.0
    list_timeout_s = 300.0
    verify_timeout_s = 1800.0

    # ------------------------------------------------------------------ running wal-g

    def _walg_env(self) -> dict[str, str]:
        """The wal-g variables, resolved now (never kept beyond the call)."""
        resolved = {}
        for name, ref in self.inventory.backup.walg_env.items():
            try:
                # wal-g's variables mix secrets and settings (WALG_COMPRESSION_METHOD=lz4): no
                # length floor here; only values of a secret's length are redacted.
                value = resolve_reference(ref)
            except ConfigError as err:
                raise ConfigError(f"backup.walg_env.{name}: {err}") from None
            resolved[name] = value or ""
        return resolved

    def _pg_env(self, site: str) -> dict[str, str]:
        cfg = self.inventory.site(site)
        env = {
            "PGHOST": cfg.host,
            "PGPORT": str(cfg.port),
            "PGUSER": cfg.user,
            "PGDATABASE": cfg.dbname,
            "PGCONNECT_TIMEOUT": str(self.inventory.postgres.libpq_connect_timeout),
        }
        password = resolve_secret(cfg.password_ref)
        if password:
            env["PGPASSWORD"] = password
        return env

    async def _walg(
        self,
        args: list[str],
        timeout: float,
        *,
        site: str | None = None,
        extra: Mapping[str, str] | None = None,
        as_pg_user: bool = False,
        backup: str | None = None,
    ) -> tuple[str, str]:
        walg_env = self._walg_env()
        # Only what wal-g is configured with: the worker's own credentials stay with the worker
        # (AWS_* from an instance role too: map them in backup.walg_env when wal-g needs them).
        env = child_environment({**walg_env, **(extra or {}), **(self._pg_env(site) if site else {})})
        secrets = [v for v in walg_env.values() if len(v) >= MIN_SECRET_LEN]
        if env.get("PGPASSWORD"):
            secrets.append(env["PGPASSWORD"])

        def classify(stderr: str) -> HybridOpsError | None:
            m = _NOT_FOUND.search(stderr)
            if m is None:
                return None
            name = m.group(1) or backup or LATEST
            return BackupNotFound(f"backup {name!r} does not exist in wal-g's storage", backup=name)

        out = await run_tool(
            [self.inventory.backup.walg_path, *args],
            timeout=timeout,
            env=env,
            secrets=secrets,
            run_as=self.inventory.postgres.run_as if as_pg_user else None,
            classify=classify,
            ids={"site": site, "backup": backup},
        )
        return out.stdout, out.stderr

    # ------------------------------------------------------------------ the interface

    async def backup(self, site: str) -> BackupInfo:
        """``wal-g backup-push`` of ``site``'s data directory, as the PostgreSQL user, with the
        site's connection in ``PGHOST``/``PGPORT``/``PGUSER``. Each call is a new backup. Raises
        :class:`BackupToolFailed` / :class:`BackupToolTimeout` (retryable)."""
        data_dir = self.inventory.site(site).data_dir
        if data_dir is None:
            raise ConfigError(f"sites.{site}.data_dir: required by backup driver 'walg'", site=site)
        extra = {}
        if "WALG_SENTINEL_USER_DATA" not in self.inventory.backup.walg_env:
            extra["WALG_SENTINEL_USER_DATA"] = json.dumps({USER_DATA_SITE: site})
        _, stderr = await self._walg(
            ["backup-push", "--", str(data_dir)], self.push_timeout_s, site=site, extra=extra, as_pg_user=True
        )
        backups = await self.list()
        if not backups:
            raise FatalError("wal-g backup-push succeeded but backup-list shows no backup", site=site)
        wrote = _WROTE.search(stderr)
        info = next((b for b in backups if wrote and b.name == wrote.group(1)), backups[-1])
        return info if info.site else info.model_copy(update={"site": site})

    async def list(self) -> list[BackupInfo]:
        """``wal-g backup-list --json --detail``, oldest first. Read-only."""
        stdout, _ = await self._walg(["backup-list", "--json", "--detail"], self.list_timeout_s)
        text = stdout.strip()
        if not text or text == "null":  # "No backups found" goes to stderr
            return []
        try:
            entries = json.loads(text)
            backups = [backup_info(e) for e in entries]
        except (ValueError, KeyError, TypeError) as err:
            raise FatalError(f"wal-g backup-list --json --detail: unexpected output ({err})") from None
        never = datetime.min.replace(tzinfo=UTC)
        return sorted(backups, key=lambda b: (b.started_at or b.finished_at or never, b.name))

    async def _resolve(self, backup: str, target_time: datetime | None) -> str:
        if backup != LATEST:
            return backup  # backup-fetch says whether it exists
        backups = await self.list()
        if target_time is not None:
            backups = [b for b in backups if b.finished_at is not None and b.finished_at <= target_time]
        if not backups:
            when = f" finished before {target_time.isoformat()}" if target_time else ""
            raise BackupNotFound(f"no backup{when} in wal-g's storage", backup=backup)
        return backups[-1].name

    async def _restore(self, backup: str, data_dir: Path, target_time: datetime | None) -> RestoreResult:
        """``wal-g backup-fetch`` into ``data_dir`` (as the PostgreSQL user), then recovery
        with ``restore_command`` running ``wal-g wal-fetch``. Idempotent like the interface
        says. Raises :class:`BackupNotFound` naming the backup."""
        if target_time is not None:
            recovery.pg_time(target_time)
        done = recovery.recorded_restore(data_dir)
        if done is not None and backup in (LATEST, done.backup) and done.target_time == target_time:
            return done
        name = await self._resolve(backup, target_time)
        run_as = self.inventory.postgres.run_as
        t0 = time.monotonic()
        target = recovery.prepare_target(self.inventory, data_dir)
        try:
            await self._walg(
                ["backup-fetch", "--", str(target), check_backup_name(name)],
                self.fetch_timeout_s,
                as_pg_user=True,
                backup=name,
            )
        except BackupNotFound:
            if not any(target.iterdir()):  # nothing fetched: leave nothing behind
                target.rmdir()
                recovery.in_progress_mark(target).unlink(missing_ok=True)
            raise
        env_file = target / ENV_FILE
        env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in self._walg_env().items()))
        env_file.chmod(0o600)
        pgbin.chown_to(env_file, run_as)
        restore_command = wal_fetch_command(self.inventory.backup.walg_path, env_file)
        settings = recovery.configure_recovery(self.inventory, target, restore_command, target_time)
        recovery.chown_tree(target, run_as)
        result = RestoreResult(
            backup=name,
            data_dir=str(target),
            target_time=target_time,
            fetch_seconds=round(time.monotonic() - t0, 3),
            settings=settings,
        )
        recovery.finish(target, result, run_as)
        return result

    async def _primary(self) -> str:
        """The site that is primary now (wal-verify compares the storage with it); the on-prem
        site when none answers."""
        for name in self.inventory.sites:
            try:
                conn = await connect_site(self.inventory, name, application_name="hybridops-backup")
            except DatabaseUnreachable:
                continue
            async with conn:
                cur = await conn.execute("SELECT pg_is_in_recovery()")
                row = await cur.fetchone()
                if row is not None and not row[0]:
                    return name
        return next(n for n, s in self.inventory.sites.items() if s.cloud is None)

    async def verify_wal(self) -> WalVerifyResult:
        """``wal-g wal-verify integrity timeline --json`` against the current primary. ``ok``
        unless a check reports ``FAILURE`` (lost segments, or a storage timeline beyond the
        cluster's); ``WARNING`` (segments probably still uploading) is in the detail."""
        primary = await self._primary()
        stdout, _ = await self._walg(
            ["wal-verify", "integrity", "timeline", "--json"], self.verify_timeout_s, site=primary
        )
        try:
            report = json.loads(stdout)
            integrity = report["integrity"]
            ranges = integrity.get("details") or []
            timeline = report.get("timeline") or {}
        except (ValueError, KeyError, TypeError) as err:
            raise FatalError(f"wal-g wal-verify --json: unexpected output ({err})") from None
        i_status, t_status = str(integrity.get("status")), str(timeline.get("status", "OK"))
        missing = [
            f"{r['start_segment']}-{r['end_segment']} ({r['status']}, {r['segments_count']})"
            for r in ranges
            if r.get("status") != "FOUND"
        ]
        t_details = timeline.get("details") or {}
        detail = f"integrity {i_status}; timeline {t_status}"
        if t_details:
            detail += (
                f" (cluster timeline {t_details.get('current_timeline_id')},"
                f" highest in storage {t_details.get('highest_storage_timeline_id')})"
            )
        if missing:
            detail += "; not found: " + ", ".join(missing[:10])
        return WalVerifyResult(
            ok=i_status in ("OK", "WARNING") and t_status in ("OK", "WARNING"),
            detail=detail,
            first_segment=ranges[0]["start_segment"] if ranges else None,
            last_segment=ranges[-1]["end_segment"] if ranges else None,
            segments=sum(int(r.get("segments_count", 0)) for r in ranges if r.get("status") == "FOUND"),
            missing=missing,
        )
