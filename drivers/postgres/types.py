"""What the PostgreSQL driver reports: its own value types, not any runbook's results.

An activity turns each into its step's result (adding what only it knows: the attempt, the
infra driver's isolation). Each carries ``changed`` (this call changed the server) and a
``detail`` for people, as every driver answer does.
"""

from __future__ import annotations

from datetime import datetime

from hybridops.contracts.base import Contract
from hybridops.contracts.sites import FenceToken, RejoinOutcome


class DriverAnswer(Contract):
    """What every changing call of the driver answers besides its own fields."""

    changed: bool = False
    """True when this call changed the server; False when it was already as wanted."""
    detail: str = ""


class Fenced(DriverAnswer):
    """A server fenced (:meth:`PostgresDriver.fence`)."""

    was_running: bool
    was_read_only: bool = False
    fenced_lsn: str | None = None
    """The server's last WAL position when it was fenced while alive."""
    token: FenceToken | None = None
    """The fencing proof, when the server answered; None: only its data directory is marked."""


class Promoted(DriverAnswer):
    """A standby promoted, or found a primary already (:meth:`PostgresDriver.promote`)."""

    timeline: int
    promoted_at: datetime | None = None
    replay_lsn: str | None = None
    last_replay_at: datetime | None = None


class Rejoined(DriverAnswer):
    """A site made a streaming standby of a primary (:meth:`PostgresDriver.rewind`)."""

    outcome: RejoinOutcome
    moved_aside: str | None = None
    """The old data directory's new name, when it was recloned."""
    saved_config: str | None = None
    """Where the site's configuration, logs and marks were saved before a rewind or reclone."""
    fallback_reason: str = ""
    """Why a cheaper method was not enough (follow did not stream, pg_rewind failed)."""
    seconds: float = 0.0


class CaughtUp(DriverAnswer):
    """A standby that replayed far enough (:meth:`PostgresDriver.catch_up`)."""

    replay_lsn: str | None = None
    target_lsn: str | None = None
    lag_bytes: int = 0
    waited_s: float = 0.0


class Paused(DriverAnswer):
    """A primary made read-only for a switchover (:meth:`PostgresDriver.pause_writes`)."""

    paused_at: datetime
    """Server time when every new session became read-only."""
    final_lsn: str
    """The last WAL position once client sessions were ended and the segment switched."""
    was_read_only: bool = False
    sessions_ended: int = 0


class Restored(DriverAnswer):
    """A site's server replaced by a restored backup and started as the primary
    (:meth:`PostgresDriver.restore_primary`), or found so already."""

    backup: str
    target_time: datetime | None = None
    timeline: int
    replayed_to_lsn: str | None = None
    """Where the archive's replay ended: the new timeline begins here."""
    archived_timelines: list[int] = []
    """The WAL archive's timelines before the restore (the new one is above them all)."""
    fetch_seconds: float = 0.0
    recovery_seconds: float = 0.0
    restore_seconds: float = 0.0
    promoted_at: datetime | None = None
    replaced: str | None = None
    """Where the site's previous data directory went (moved aside, never deleted)."""
