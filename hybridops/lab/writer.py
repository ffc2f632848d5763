"""The lab's workload: a writer that commits a numbered row every few milliseconds through
the DNS name, and keeps a ledger of the writes the database acknowledged
(:func:`hybridops.workload.read_ledger` reads it back).

The ledger is how RTO and RPO are measured: an acknowledged write missing on the new primary
is lost data; the first acknowledged write on the new primary ends the outage. The writer
finds the primary as a client would, through DNS, read with the inventory's DNS driver.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql

from drivers.dns import make_dns_driver
from hybridops.inventory import Inventory
from hybridops.workload import read_ledger

log = logging.getLogger(__name__)


class Writer:
    """Writes numbered rows through the DNS name, forever (until ``max_seconds``)."""

    def __init__(self, inventory: Inventory, ledger: Path, interval_s: float = 0.005) -> None:
        self.inv = inventory
        self.ledger_path = ledger
        self.interval_s = interval_s
        self.dns = make_dns_driver(inventory.dns)
        self.insert = sql.SQL("INSERT INTO {} (seq) VALUES (%s)").format(
            sql.Identifier(inventory.workload.table)
        )

    def _resolve(self) -> tuple[str, str] | None:
        rec = self.dns.get_record_sync(self.inv.dns.record, "A")
        if rec is None or not rec.values:
            return None
        site = self.inv.site_by_host(rec.values[0])
        return (rec.values[0], site) if site else None

    def _next_seq(self) -> int:
        if not self.ledger_path.exists():
            return 1
        acks = read_ledger(self.ledger_path)
        return acks[-1].seq + 1 if acks else 1

    def run(self, max_seconds: float | None = None) -> None:
        seq = self._next_seq()
        end = time.monotonic() + max_seconds if max_seconds else None
        conn: psycopg.Connection[Any] | None = None
        site = ""
        resolved_at = 0.0
        self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
        with self.ledger_path.open("a", buffering=1) as ledger:
            while end is None or time.monotonic() < end:
                try:
                    # Honour the record's TTL: re-resolve when it expires, as a client would.
                    if conn is None or time.monotonic() - resolved_at > self.inv.dns.ttl:
                        target = self._resolve()
                        resolved_at = time.monotonic()
                        if target is None:
                            raise ConnectionError("DNS name does not resolve to a site")
                        if conn is None or target[1] != site:
                            if conn is not None:
                                conn.close()
                            conn = self._connect(*target)
                            site = target[1]
                    assert conn is not None
                    conn.execute(self.insert, (seq,))
                    self._ack(ledger, seq, site)
                    seq += 1
                except (psycopg.Error, ConnectionError, OSError) as err:
                    log.debug("write %d failed: %s", seq, err)
                    if conn is not None:
                        conn.close()
                    conn = None
                    if isinstance(err, psycopg.errors.UniqueViolation):
                        seq += 1  # acknowledged before a crash of ours; never reuse a number
                time.sleep(self.interval_s)

    def _connect(self, host: str, site: str) -> psycopg.Connection[Any]:
        cfg = self.inv.site(site)
        return psycopg.connect(
            host=host,
            port=cfg.port,
            dbname=cfg.dbname,
            user=cfg.user,
            connect_timeout=1,
            autocommit=True,
            application_name="writer",
        )

    @staticmethod
    def _ack(ledger: TextIO, seq: int, site: str) -> None:
        ledger.write(f"{seq}\t{datetime.now(UTC).isoformat()}\t{site}\n")
