"""Reading the topology: every server asked what it is, and DNS asked where clients go.

One reader for every runbook, ``hybridops lab status`` and ``hybridops decide``: the servers
are assessed concurrently (each at most the connect timeout), DNS is read once, and
:func:`hybridops.topology.establish` makes the topology of it. Read-only.
"""

from __future__ import annotations

import asyncio

from drivers.dns import DnsDriver
from drivers.postgres import PostgresDriver
from hybridops.contracts.base import RuleViolation
from hybridops.contracts.sites import FindingKind, Topology
from hybridops.errors import HybridOpsError, PreconditionFailed, SafetyRuleViolated
from hybridops.inventory import Inventory
from hybridops.topology import establish


class TopologyReader:
    """Reads the topology of the inventory's sites. ``dns`` may be None (a worker that holds
    no DNS credentials): the topology then says nothing of DNS."""

    def __init__(self, inventory: Inventory, postgres: PostgresDriver, dns: DnsDriver | None) -> None:
        self.inventory = inventory
        self.pg = postgres
        self.dns = dns

    async def read(self, sites: list[str] | None = None, dns: bool = True) -> Topology:
        """The topology of ``sites`` (every site of the inventory when None). Never raises for
        an unreachable server or a DNS error: they are in the states and the findings.
        ``dns`` False: DNS is not asked (a check that only needs the servers, such as a
        promotion's rules, spares the DNS API's round trip); the topology then says nothing
        of DNS, as on a worker without a DNS driver."""
        names = sites if sites is not None else list(self.inventory.sites)
        states, (value, dns_error) = await asyncio.gather(
            asyncio.gather(*(self.pg.assess(s) for s in names)),
            self._dns() if dns else _no_dns(),
        )
        record = self.inventory.dns.record
        site = self.inventory.site_by_host(value) if value else None
        topology = establish(list(states), record, value, site)
        if dns_error:
            for f in topology.findings:
                if f.kind == FindingKind.DNS_NOT_A_SITE:
                    f.detail = f"{record} could not be read: {dns_error}"
        return topology

    async def primary(self) -> str:
        """The one writable server, established from the servers (DNS may be stale). A split
        brain, or no writable server, raises :class:`PreconditionFailed` with the findings."""
        topology = await self.read()
        if topology.primary is None:
            raise PreconditionFailed(
                "no single writable primary: " + "; ".join(f.detail for f in topology.findings)
            )
        return topology.primary

    async def _dns(self) -> tuple[str | None, str]:
        if self.dns is None:
            return None, "no DNS driver on this worker"
        try:
            rec = await self.dns.get_record(self.inventory.dns.record, "A")
        except HybridOpsError as err:
            return None, str(err)
        return (rec.values[0] if rec and rec.values else None), ""


async def _no_dns() -> tuple[str | None, str]:
    return None, "DNS not asked"


def refuse(violations: list[RuleViolation], step: str) -> SafetyRuleViolated:
    """The error a step blocked by safety rules raises: the rules and sites as ids (so the
    workflow can offer the override by name), each violation in the message."""
    return SafetyRuleViolated(
        f"{step} blocked by safety rules: "
        + "; ".join(f"{v.rule} ({v.site}): {v.detail}" for v in violations),
        rules=",".join(dict.fromkeys(v.rule for v in violations)),
        sites=",".join(dict.fromkeys(v.site for v in violations)),
    )
