"""What every driver does to a freshly fetched data directory before it may be started.

A restored data directory is a copy of production: started as it is, it would archive WAL
into the production archive, stream from the primary, listen on the production address, and
(with ``data_directory`` in its configuration) even open the production data directory. So
before anything starts it, :func:`configure_recovery` neutralises all of that and configures
point-in-time recovery. The settings go last into ``postgresql.auto.conf`` (read after
``postgresql.conf``, so they win); the keys that name other files are commented out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from drivers.backup.errors import RestoreTargetNotEmpty
from drivers.postgres import binaries as pgbin
from hybridops.contracts.backup import RestoreResult
from hybridops.errors import InputError, PreconditionFailed
from hybridops.inventory import Inventory

RESTORE_MARK = "hybridops.restored.json"
"""Written last by a restore: what was restored, so a retried restore is a no-op."""
IN_PROGRESS_SUFFIX = ".hybridops-restoring"
"""``<data_dir>.hybridops-restoring``, beside the data directory (``wal-g backup-fetch`` wants
the directory itself empty): written first by a restore, removed last. While it is there, the
data directory is ours to wipe and fill again."""
SCRATCH_CLUSTER_NAME = "hybridops-scratch"

_FILE_KEYS = {
    "data_directory",
    "hba_file",
    "ident_file",
    "external_pid_file",
    "include",
    "include_dir",
    "include_if_exists",
}
"""Keys of a restored ``postgresql.conf`` that point at files outside the data directory: on
a production host they may name the production server's own files."""

_KEY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=|\s|$)")


def guc_quote(value: str) -> str:
    """``value`` as a quoted string of a PostgreSQL configuration file."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def pg_time(at: datetime) -> str:
    """A time as ``recovery_target_time`` wants it: UTC, with its offset."""
    if at.tzinfo is None:
        raise InputError(f"target_time {at.isoformat()} has no time zone; give one (e.g. +00:00)")
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _site_dirs(inventory: Inventory) -> list[Path]:
    return [s.data_dir.resolve() for s in inventory.sites.values() if s.data_dir is not None]


def check_not_production(inventory: Inventory, path: Path) -> Path:
    """``path`` resolved; :class:`PreconditionFailed` if it is, holds or lies in a site's data
    directory (a restore or a teardown there would destroy production)."""
    resolved = path.resolve()
    for site_dir in _site_dirs(inventory):
        if resolved == site_dir or site_dir.is_relative_to(resolved) or resolved.is_relative_to(site_dir):
            raise PreconditionFailed(
                f"{resolved} overlaps the data directory of a production site ({site_dir})",
                data_dir=str(resolved),
            )
    return resolved


def _write(path: Path, text: str, run_as: str | None, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    pgbin.chown_to(tmp, run_as)
    tmp.replace(path)


def chown_tree(root: Path, run_as: str | None) -> None:
    """Give everything under ``root`` to the PostgreSQL user (when running as root)."""
    if pgbin.user_ids(run_as) is None or os.geteuid() != 0:
        return
    pgbin.chown_to(root, run_as)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            if not p.is_symlink():
                pgbin.chown_to(p, run_as)


def recorded_restore(data_dir: Path) -> RestoreResult | None:
    """The result a finished restore into ``data_dir`` recorded, if any."""
    try:
        return RestoreResult.model_validate_json((data_dir / RESTORE_MARK).read_text())
    except FileNotFoundError:
        return None


def in_progress_mark(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + IN_PROGRESS_SUFFIX)


def prepare_target(inventory: Inventory, data_dir: Path) -> Path:
    """Make ``data_dir`` an empty directory owned by the PostgreSQL user, mode 0700, marked as
    a restore in progress. Refuses a site's data directory and any non-empty directory this
    module did not start filling."""
    data_dir = check_not_production(inventory, data_dir)
    run_as = inventory.postgres.run_as
    if data_dir.exists():
        if not data_dir.is_dir():
            raise RestoreTargetNotEmpty(f"{data_dir} exists and is not a directory", data_dir=str(data_dir))
        entries = list(data_dir.iterdir())
        if entries and not in_progress_mark(data_dir).exists():
            raise RestoreTargetNotEmpty(
                f"{data_dir} is not empty and holds no restore of ours; refusing to overwrite it",
                data_dir=str(data_dir),
            )
        for entry in entries:  # an interrupted restore of ours: start again
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    else:
        if not data_dir.parent.exists():
            data_dir.parent.mkdir(parents=True)
            data_dir.parent.chmod(0o755)  # the PostgreSQL user must traverse it
        data_dir.mkdir()
    data_dir.chmod(0o700)
    pgbin.chown_to(data_dir, run_as)
    in_progress_mark(data_dir).write_text(datetime.now(UTC).isoformat())
    return data_dir


def _strip_keys(path: Path, keys: set[str], comment: bool) -> str:
    """The file's text without the lines setting ``keys`` (commented out, or dropped)."""
    if not path.exists():
        return ""
    out = []
    for line in path.read_text().splitlines():
        m = _KEY.match(line)
        if m and m.group(1).lower() in keys:
            if comment:
                out.append(f"# disabled by hybridops restore: {line}")
            continue
        out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def recovery_settings(
    inventory: Inventory, restore_command: str, target_time: datetime | None
) -> dict[str, str]:
    """The settings a restored server runs with, as configuration-file values: recover from
    the archive to ``target_time`` (or to its end) and promote, on the scratch address, and
    never touch production (no archiving, no streaming, no synchronous standbys)."""
    b = inventory.backup
    return {
        "restore_command": guc_quote(restore_command),
        "recovery_target": "''",
        "recovery_target_lsn": "''",
        "recovery_target_xid": "''",
        "recovery_target_name": "''",
        "recovery_target_time": guc_quote(pg_time(target_time)) if target_time else "''",
        "recovery_target_inclusive": "on",
        "recovery_target_timeline": "'latest'",
        "recovery_target_action": "'promote'",
        "archive_mode": "off",
        "archive_command": "''",
        "primary_conninfo": "''",
        "primary_slot_name": "''",
        "synchronous_standby_names": "''",
        "default_transaction_read_only": "off",
        "hot_standby": "on",
        "listen_addresses": guc_quote(b.scratch_host),
        "port": str(b.scratch_port),
        "unix_socket_directories": "''",
        "cluster_name": guc_quote(SCRATCH_CLUSTER_NAME),
        "logging_collector": "off",
    }


def configure_recovery(
    inventory: Inventory,
    data_dir: Path,
    restore_command: str,
    target_time: datetime | None,
) -> dict[str, str]:
    """Turn the fetched ``data_dir`` into one that recovers on its own and touches nothing of
    production; returns the settings written. Idempotent."""
    run_as = inventory.postgres.run_as
    # Files of the source server that must not come along: its pid, its standby signal (a
    # scratch server promotes), the fencing and promotion marks of hybridops, and the
    # pre-12 recovery.conf, which PostgreSQL now refuses to start with.
    for name in ("postmaster.pid", "postmaster.opts", "standby.signal", "recovery.conf"):
        (data_dir / name).unlink(missing_ok=True)
    for mark in data_dir.glob("hybridops.*.json"):
        mark.unlink()
    conf = data_dir / "postgresql.conf"
    if conf.exists():
        _write(conf, _strip_keys(conf, _FILE_KEYS, comment=True), run_as)
    else:  # the source kept its configuration outside the data directory (Debian style)
        _write(conf, "# written by hybridops restore: the backup had no postgresql.conf\n", run_as)
    hba = data_dir / "pg_hba.conf"
    if not hba.exists():
        host = inventory.backup.scratch_host
        _write(hba, f"# written by hybridops restore\nhost all all {host}/32 trust\n", run_as)
    settings = recovery_settings(inventory, restore_command, target_time)
    auto = data_dir / "postgresql.auto.conf"
    kept = _strip_keys(auto, set(settings), comment=False)
    lines = [f"{k} = {v}" for k, v in settings.items()]
    block = "\n".join(["# hybridops restore: recovery, and nothing that reaches production", *lines])
    _write(auto, kept + block + "\n", run_as)
    _write(data_dir / "recovery.signal", "", run_as)
    return settings


def finish(data_dir: Path, result: RestoreResult, run_as: str | None) -> None:
    """Record the finished restore and drop the in-progress mark (the mark goes last)."""
    _write(data_dir / RESTORE_MARK, json.dumps(result.model_dump(mode="json")), run_as)
    in_progress_mark(data_dir).unlink(missing_ok=True)
