"""Failback's rejoin of a server as a standby, for the ``local`` PostgreSQL driver.

The cheapest way that works: a standby that has not diverged follows the new primary; else
the server is stopped and ``pg_rewind`` brings it onto the new primary's timeline; else a
fresh base backup replaces its data directory, the old one moved aside, never deleted. The
site's own files (configuration, logs, fence mark) are saved first and put back after.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from drivers.postgres import binaries as pgbin
from drivers.postgres.server import FENCE_MARK, STANDBY_SIGNAL, LocalServer
from drivers.postgres.types import Rejoined
from hybridops.contracts.sites import RejoinMethod, RejoinOutcome
from hybridops.errors import DatabaseError, DatabaseUnreachable, HybridOpsError, PreconditionFailed

SITE_CONFIG = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf")
"""A site's own configuration, which pg_rewind and a base backup overwrite with the source's."""
SAVED_DONE = "saved.json"
FOLLOW_GRACE_S = 10.0
"""How long a standby told to follow a new primary may take to stream before it is rewound."""
STREAM_TIMEOUT_S = 120.0
REWIND_TIMEOUT_S = 3600.0
RECLONE_TIMEOUT_S = 6 * 3600.0


class LocalRejoin(LocalServer):
    """The ``rewind`` hook of the local driver (:meth:`PostgresDriver.rewind` states its contract)."""

    async def _rewind(self, site: str, source: str, run_id: str, method: RejoinMethod) -> Rejoined:
        started = time.monotonic()
        if await self._streams_from(site, source):
            return Rejoined(outcome=RejoinOutcome.UNCHANGED, detail=f"already streams from {source}")
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
                    return Rejoined(
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
        return Rejoined(
            changed=True,
            outcome=outcome,
            moved_aside=str(moved) if moved else None,
            saved_config=str(saved),
            fallback_reason=reason,
            seconds=round(time.monotonic() - started, 3),
            detail=f"{outcome.value} ({how}), streams from {source}{aside}",
        )

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
