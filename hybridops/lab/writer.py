"""The lab's workload: a writer that commits a numbered row every few milliseconds through
the DNS name, and keeps a ledger of the writes the database acknowledged
(:func:`hybridops.workload.read_ledger` reads it back).

The ledger is how RTO and RPO are measured: an acknowledged write missing on the new primary
is lost data; the first acknowledged write on the new primary ends the outage. The writer
finds the primary as a client would, through DNS. With the lab's BIND (``rfc2136``) it asks
through the DNS protocol with a real stub resolver and its cache (dnspython's), which keeps an
answer for its TTL exactly as a client's resolver does, so the measured outage includes what
a client's DNS adds. With moto's Route53 server, which speaks no DNS, it reads the record
with the inventory's DNS driver and keeps it for the TTL itself.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import dns.exception
import dns.resolver
import psycopg
from psycopg import sql

from drivers.dns import make_dns_driver
from hybridops.errors import HybridOpsError
from hybridops.inventory import DnsKind, Inventory
from hybridops.workload import read_ledger

log = logging.getLogger(__name__)


class ApiResolver:
    """The record read through the DNS driver's API, kept for the inventory's TTL (moto's
    Route53 server answers no DNS queries)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inv = inventory
        self.dns = make_dns_driver(inventory.dns)
        self._answer: str | None = None
        self._at = -math.inf

    def address(self, connected: bool) -> str | None:
        """The record's first value: read again when the TTL expired, or at once when the
        writer has no connection (as the lab's writer always did with this backend)."""
        if not connected or time.monotonic() - self._at > self.inv.dns.ttl:
            rec = self.dns.get_record_sync(self.inv.dns.record, "A")
            self._answer = rec.values[0] if rec and rec.values else None
            self._at = time.monotonic()
        return self._answer


class ProtocolResolver:
    """A stub resolver asking the lab's name server over the DNS protocol, with a cache that
    keeps each answer for its TTL (dnspython's ``Resolver`` and ``Cache``), as a client's
    resolver does: a changed record is seen when the cached answer expires, not before."""

    def __init__(self, inventory: Inventory) -> None:
        settings = inventory.dns
        assert settings.server is not None, "rfc2136 names its server"
        self.name = settings.record
        self.resolver = dns.resolver.Resolver(configure=False)
        self.resolver.nameservers = [settings.server]
        self.resolver.port = settings.port
        self.resolver.lifetime = 1.0
        self.resolver.cache = dns.resolver.Cache()

    def address(self, connected: bool) -> str | None:
        """The first address the name resolves to now: from the cache while its TTL lasts,
        whether or not the writer is connected (a lost connection flushes no client's cache)."""
        try:
            answer = self.resolver.resolve(self.name, "A")
        except dns.exception.DNSException as err:
            raise ConnectionError(f"cannot resolve {self.name}: {err}") from None
        return next((r.to_text() for r in answer), None)


class Writer:
    """Writes numbered rows through the DNS name, forever (until ``max_seconds``)."""

    def __init__(self, inventory: Inventory, ledger: Path, interval_s: float = 0.005) -> None:
        self.inv = inventory
        self.ledger_path = ledger
        self.interval_s = interval_s
        self.resolver: ApiResolver | ProtocolResolver = (
            ProtocolResolver(inventory) if inventory.dns.driver == DnsKind.RFC2136 else ApiResolver(inventory)
        )
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
