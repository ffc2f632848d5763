"""The workload's ledger: the writes the database acknowledged, and the tables the writer and
the verify probe write to (the lab's writer itself is ``hybridops/lab/writer.py``).

The ledger is how RTO and RPO are measured: an acknowledged write missing on the new primary
is lost data; the first acknowledged write on the new primary ends the outage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from psycopg import sql

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ack:
    """One acknowledged write: its sequence number, when the commit returned, and where."""

    seq: int
    acked_at: datetime
    site: str


def read_ledger(path: Path) -> list[Ack]:
    """Every acknowledged write in the ledger, in order. A torn last line is skipped."""
    return read_ledger_from(path, 0)[0]


def read_ledger_from(path: Path, offset: int) -> tuple[list[Ack], int]:
    """The acknowledged writes from byte ``offset`` on, and the offset after the last whole
    line (a line still being written is read on the next call)."""
    acks = []
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].decode(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        try:
            acks.append(Ack(int(parts[0]), datetime.fromisoformat(parts[1]), parts[2]))
        except ValueError:
            continue
    return acks, offset + end


def workload_ddl(table: str, probe_table: str) -> list[sql.Composed]:
    """Tables the workload and the verify probe write to (created on the primary)."""
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (seq bigint PRIMARY KEY,"
            " written_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ).format(sql.Identifier(table)),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, run_id text NOT NULL,"
            " written_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ).format(sql.Identifier(probe_table)),
    ]
