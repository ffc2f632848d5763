"""What a backup driver reports: a backup, a restore, a WAL check (none carries a secret)."""

from __future__ import annotations

from datetime import datetime

from hybridops.contracts.base import Contract


class BackupInfo(Contract):
    """One base backup, as the backup system lists it."""

    name: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    start_lsn: str | None = None
    end_lsn: str | None = None
    size_bytes: int | None = None
    site: str | None = None
    """The server it was taken from, when known."""
    timeline: int | None = None
    """The timeline the backup started on."""
    wal_segment: str | None = None
    """The WAL file the backup starts in (wal-g's ``wal_file_name``): restoring it needs every
    archived segment from this one on."""
    uncompressed_bytes: int | None = None
    """Size of the data it holds (``size_bytes`` is what the repository stores)."""


class RestoreResult(Contract):
    """A backup fetched into a data directory, with recovery configured (not started)."""

    backup: str
    """The backup's real name (``LATEST`` resolved)."""
    data_dir: str
    target_time: datetime | None = None
    """Recovery stops at this time; ``None``: replays all archived WAL (``latest``)."""
    fetch_seconds: float = 0.0
    settings: dict[str, str] = {}
    """The recovery settings written (``postgresql.auto.conf``), as configuration values."""


class WalVerifyResult(Contract):
    ok: bool
    """No segment is lost between the oldest backup's start and the newest archived one
    (and, for ``walg``, the timeline check did not fail)."""
    detail: str = ""
    first_segment: str | None = None
    last_segment: str | None = None
    segments: int = 0
    """Segments found in that range."""
    missing: list[str] = []
    """Missing segments (or, for ``walg``, ranges with their status)."""
