"""The lab's workload: a writer that commits a numbered row every few milliseconds through
the DNS name, and keeps a ledger of the writes the database acknowledged
(:func:`hybridops.workload.read_ledger` reads it back).

The ledger is how RTO and RPO are measured: an acknowledged write missing on the new primary
is lost data; the first acknowledged write on the new primary ends the outage. The writer
finds the primary as a client would, through DNS (:class:`drivers.dns.resolve.ClientResolver`
with its cache): with the lab's BIND (``rfc2136``) it asks over the DNS protocol with a real
stub resolver whose cache keeps an answer for its TTL exactly as a client's does, so the
measured outage includes what a client's DNS adds. With moto's Route53 server, which speaks
no DNS, it reads the record through the API and keeps it for the TTL itself.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql

from drivers.dns.resolve import ClientResolver
from hybridops.errors import HybridOpsError
from hybridops.inventory import Inventory
from hybridops.workload import read_ledger

log = logging.getLogger(__name__)


class Writer:
    """Writes numbered rows through the DNS name, forever (until ``max_seconds``)."""

    def __init__(self, inventory: Inventory, ledger: Path, interval_s: float = 0.005) -> None:
        self.inv = inventory
        self.ledger_path = ledger
        self.interval_s = interval_s
        self.resolver = ClientResolver(inventory.dns, cache=True)
        self.insert = sql.SQL("INSERT INTO {} (seq) VALUES (%s)").format(
            sql.Identifier(inventory.workload.table)
        )

    def _resolve(self, connected: bool) -> tuple[str, str] | None:
        address = self.resolver.address(connected)
        if address is None:
            return None
        site = self.inv.site_by_host(address)
        return (address, site) if site else None

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
        self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
        with self.ledger_path.open("a", buffering=1) as ledger:
            while end is None or time.monotonic() < end:
                try:
                    # Resolve before each write; the resolver keeps its answer for the TTL,
                    # so the name is asked again only when that expires, as a client's would.
                    target = self._resolve(conn is not None)
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
                except (psycopg.Error, ConnectionError, OSError, HybridOpsError) as err:
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


def main(seconds: float | None = None) -> None:
    """Run the writer on the inventory the environment names (``hybridops lab writer``; the lab
    starts it as ``python -m hybridops.lab.writer``, which skips the whole command line's
    imports: a second less before the first write)."""
    from hybridops.inventory import load_inventory

    inv = load_inventory()
    if inv.workload.ledger is None:
        raise SystemExit("workload.ledger: the inventory names no ledger for the writer")
    Writer(inv, inv.workload.ledger).run(seconds)


if __name__ == "__main__":
    main()
