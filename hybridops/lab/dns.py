"""The lab's DNS on loopback (``net.53``): moto's Route53 server (``route53``, the default) or
a real BIND taking TSIG-signed dynamic updates (``rfc2136``, :mod:`hybridops.lab.bind`), used
through the DNS driver the inventory names (:func:`drivers.dns.make_dns_driver`) and its
public methods only.

moto keeps its zone in memory; :mod:`hybridops.lab.dns_state` keeps a snapshot of the
records, which a fresh server gets back, so a restart never sends clients to a stale primary.
BIND keeps its zone in its journal, and the same snapshot is taken of it all the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from drivers.dns import DnsDriver, make_dns_driver
from hybridops.errors import HybridOpsError
from hybridops.inventory import DnsKind, Inventory
from hybridops.lab.bind import LabBind
from hybridops.lab.dns_state import DnsSnapshot, reapply, run_sync, take
from hybridops.lab.layout import RECORD, LabLayout
from hybridops.lab.processes import LabError, Processes, answers, wait_until

DNS = "dns"
"""The DNS server's process name."""


@dataclass(frozen=True)
class DnsStart:
    """What :meth:`LabDns.start` did with the records."""

    note: str
    """Kept, re-applied (from which snapshot), or first start, in a sentence for the operator."""
    stale: bool
    """Whether it re-applied a snapshot older than the DNS server's end (killed, not stopped)."""


class LabDns:
    """The lab's DNS server and its records."""

    def __init__(self, layout: LabLayout, processes: Processes, inventory: Callable[[], Inventory]) -> None:
        self.layout = layout
        self.processes = processes
        self.inventory = inventory

    def driver(self) -> DnsDriver:
        """The inventory's DNS driver, with the lab's keys in this process's environment."""
        os.environ.update(self.layout.env())
        return make_dns_driver(self.inventory().dns)

    def start(self) -> DnsStart:
        """Start the server (unless running), make the zone, and bring the records back: kept
        when the server was running, the last snapshot when it starts empty, the A record at
        onprem when there never was one. Takes a snapshot after."""
        kind = self.inventory().dns.driver
        running = bool(self.processes.pid(DNS))
        if not running:
            if kind == DnsKind.RFC2136:
                LabBind(self.layout, self.processes).spawn(DNS)
            else:
                ip, port = self.layout.dns_ip, self.layout.ports.dns
                self.processes.spawn(DNS, [sys.executable, "-m", "moto.server", "-H", ip, "-p", str(port)])
                wait_until("moto's Route53 server", lambda: answers(f"{self.layout.dns_url}/moto-api/"))
        dns = self.driver()
        if kind == DnsKind.RFC2136:
            # BIND serves the zone from its file: ready when it answers for it with the key.
            wait_until("BIND to serve the lab's zone", lambda: self._serving(dns))
        else:
            run_sync(dns.ensure_zone())
        kept = DnsSnapshot.load(self.layout.dns_file)
        stale = False
        if dns.get_record_sync(RECORD, "A") is not None:
            why = "the server was running" if running else "BIND kept it in its zone journal"
            note = f"DNS kept: {RECORD} -> {self.site()} ({why})"
        elif kept is None or not kept.values:
            # Only a lab that never had a record (first up, or after reset) starts at onprem.
            run_sync(dns.ensure_record(RECORD, "A", [self.layout.ip("onprem")], 1))
            note = f"DNS first start: {RECORD} -> onprem"
        else:
            run_sync(reapply(dns, kept))
            stale = kept.taken_by != "down"
            weights = "".join(
                f", {kept.weighted_record} {k} {w}" for k, (_, w) in sorted(kept.weights.items())
            )
            note = (
                f"DNS re-applied the snapshot of {kept.taken_at:%Y-%m-%d %H:%M:%S} UTC (lab {kept.taken_by}):"
                f" {RECORD} -> {self.site()}{weights}"
            )
            if stale:
                note += (
                    ". The DNS server had stopped without `lab down`: changes made after the snapshot"
                    " (a failover's cutover) are lost; check `hybridops lab status`."
                )
        self.snapshot("up")
        return DnsStart(note=note, stale=stale)

    def _serving(self, dns: DnsDriver) -> bool:
        """BIND answers for the zone; :class:`LabError` at once when ``named`` exited."""
        if not self.processes.pid(DNS):
            tail = self.processes.log(DNS).read_text(errors="replace").splitlines()[-5:]
            raise LabError("named exited: " + " | ".join(tail))
        return run_sync(dns.ensure_zone()) is False

    def point(self, site: str) -> None:
        """Make the A record point at ``site``; snapshot."""
        run_sync(self.driver().ensure_record(RECORD, "A", [self.layout.ip(site)], 1))
        self.snapshot("point_dns")

    def snapshot(self, taken_by: str) -> DnsSnapshot:
        """Keep what the DNS server holds now in the layout's ``dns_file``; raises when it does
        not answer (the last snapshot stays)."""
        inv = self.inventory()
        snap = run_sync(
            take(
                self.driver(),
                RECORD,
                1,
                inv.burst.record or f"app.{inv.dns.zone}",
                inv.burst.ttl,
                taken_by,
            )
        )
        snap.save(self.layout.dns_file)
        return snap

    def site(self) -> str | None:
        """The site the A record points at (its value when no site listens there); None when
        there is no record or the DNS server does not answer."""
        try:
            rec = self.driver().get_record_sync(RECORD, "A")
        except HybridOpsError:
            return None
        if rec is None or not rec.values:
            return None
        return self.inventory().site_by_host(rec.values[0]) or rec.values[0]

    def stop(self) -> None:
        """Snapshot the records (when the server answers), then stop it."""
        if self.processes.pid(DNS):
            try:
                self.snapshot("down")
            except HybridOpsError:
                pass  # it does not answer: the last snapshot stays
        self.processes.stop(DNS)
