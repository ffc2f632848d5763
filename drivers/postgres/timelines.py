"""Timelines in the WAL archive: the ones a promotion must not take again.

At promotion PostgreSQL picks its new timeline by probing, through ``restore_command``, for
``<TLI>.history`` files above its recovery target timeline and taking the first number with
none (``findNewestTimeLine`` in ``src/backend/access/transam/timeline.c``). A standby that sees
the archive therefore never reuses a timeline another server promoted onto; one without a
``restore_command`` sees only its own ``pg_wal`` and may. Two servers on one timeline write
WAL segments of the same names into one archive: its history no longer says which is which,
and point-in-time restores and ``pg_rewind`` follow the wrong one. This module reads the
archive; :class:`drivers.postgres.local.LocalPostgresDriver` checks around ``pg_promote``.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from hybridops.errors import TimelineCollision
from hybridops.lsn import parse_lsn

HISTORY_FILE = re.compile(r"^([0-9A-F]{8})\.history$")
"""A timeline history file's name: the timeline in 8 upper-case hex digits."""
ARCHIVE_WAIT_S = 10.0
"""How long a promotion waits for the archiver to copy the new timeline's history file
(immediate in the lab: the archiver is woken for it). Later, the check is left undone and said so."""


def history_name(timeline: int) -> str:
    return f"{timeline:08X}.history"


WAL_SEGMENT = re.compile(r"^([0-9A-F]{8})[0-9A-F]{16}(\.partial)?$")
"""A WAL segment's name (a ``.partial`` one too): its first 8 hex digits are its timeline."""


def followed_history(pg_wal: list[str]) -> str | None:
    """Pure. The history file a standby follows, from the names in its ``pg_wal``: the newest
    one whose timeline ``pg_wal`` also holds a segment of; None when there is none.

    A history file alone is no proof: a standby that follows ``latest`` fetches every newer
    history file the archive offers, a split brain's second writer's too, and stays on its
    parent when that timeline forked before its replay position. A standby that follows a
    timeline, streamed or rewound onto it, holds its WAL."""
    segments = {m.group(1) for name in pg_wal if (m := WAL_SEGMENT.match(name))}
    held = [name for name in pg_wal if (m := HISTORY_FILE.match(name)) and m.group(1) in segments]
    return max(held, default=None)


def replay_timeline(replay_lsn: int, newest: int, history: str, known: int) -> int:
    """Pure. The timeline a standby's replay position ``replay_lsn`` is on: the timeline
    ``newest`` (the newest history file in its ``pg_wal``, its recovery target when it follows
    ``latest``) or the ancestor, on that file's lines (``parent switchpoint reason``), that the
    position had not left. ``known`` is what the server's control data says it reached (its
    last restartpoint's, its minimum recovery point's), a lower bound: when it is not on that
    ancestry the history file is not the one the server follows, and ``known`` is the answer.

    PostgreSQL shows no replay timeline through SQL: the control data lags until a
    restartpoint on the new timeline, and the WAL receiver's timeline is gone when the
    upstream stops (a switchover's paused primary), which is when a failback asks."""
    ancestry: list[tuple[int, int]] = []
    for line in history.splitlines():
        fields = line.split()
        if len(fields) < 2 or line.lstrip().startswith("#"):
            continue
        try:
            switch = parse_lsn(fields[1])
        except ValueError:
            switch = None
        if not fields[0].isdigit() or switch is None:
            return known  # not a history file PostgreSQL writes
        ancestry.append((int(fields[0]), switch))
    if known and known != newest and known not in {t for t, _ in ancestry}:
        return known
    for timeline, switch in ancestry:
        # The replay position is the end of the last record replayed: at the switch point,
        # the last record was the parent's.
        if replay_lsn <= switch:
            return max(timeline, known)
    return max(newest, known)


def archived_timelines(archive: Path) -> dict[int, bytes]:
    """Read-only. The timeline history files the WAL archive directory ``archive`` holds, as
    timeline to file content. Empty when the directory does not exist yet or holds none.
    Other files (segments, backup labels, partial copies under other names) are ignored.
    Raises :class:`OSError` when the directory exists but cannot be read."""
    if not archive.is_dir():
        return {}
    found: dict[int, bytes] = {}
    for path in archive.iterdir():
        match = HISTORY_FILE.match(path.name)
        if match:
            found[int(match.group(1), 16)] = path.read_bytes()
    return found


ARCHIVE_POLL_S = 0.005
"""How often the promote step looks for the new timeline's history file in the archive: the
archiver copies it within milliseconds of the promotion, and every look before is RTO."""


async def confirm_new_timeline(
    site: str, timeline: int, before: dict[int, bytes], archive: Path, pg_wal: Path
) -> str:
    """After ``site`` promoted onto ``timeline``: check that no other server holds it.

    ``before`` is :func:`archived_timelines` read just before the promotion, ``pg_wal`` the
    server's WAL directory. The timeline must be above every one in ``before``, and the
    archive's history file of it must be this server's: the server's content, and archived
    by the server's own archiver (``archive_status/<TLI>.history.done``; two servers that
    promote at the same LSN write identical files, so content alone cannot tell). Polls for
    at most :data:`ARCHIVE_WAIT_S`. Returns a note for the step's detail (which says so when
    nothing was archived in time). Raises :class:`TimelineCollision` (fatal) naming the site
    and the timeline: a number the archive held, another content, or, at the deadline, an
    identical file this server's archiver did not put there."""
    if before and timeline <= max(before):
        raise TimelineCollision(
            f"promoted onto timeline {timeline}, but the WAL archive already held timelines up to"
            f" {max(before)} from another server: two servers now share timeline {timeline}",
            site=site,
            timeline=timeline,
        )
    name = history_name(timeline)
    ours = await asyncio.to_thread((pg_wal / name).read_bytes)
    done = pg_wal / "archive_status" / f"{name}.done"
    deadline = time.monotonic() + ARCHIVE_WAIT_S
    while True:
        try:
            held = await asyncio.to_thread((archive / name).read_bytes)
        except FileNotFoundError:
            held = None
        if held == ours and done.exists():
            return f"timeline {timeline} is new in the WAL archive"
        # cp writes in place: a prefix of ours may be our copy still being written.
        if held is not None and not ours.startswith(held):
            raise TimelineCollision(
                f"the WAL archive's {name} is another server's: two servers share timeline {timeline}",
                site=site,
                timeline=timeline,
            )
        if time.monotonic() > deadline:
            if held is None:
                return f"{name} not archived after {ARCHIVE_WAIT_S:.0f} s: not checked against the archive"
            raise TimelineCollision(
                f"the WAL archive holds a {name} that this server's archiver did not put there"
                f" (not archived after {ARCHIVE_WAIT_S:.0f} s): another server promoted onto timeline"
                f" {timeline} at the same position",
                site=site,
                timeline=timeline,
            )
        await asyncio.sleep(ARCHIVE_POLL_S)
