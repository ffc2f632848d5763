"""Resolving the DNS name as a client does: the lab's writer and the failover's verify step.

A DNS driver reads what the zone holds at its provider. A client is told something else: what
its resolver answers, through caches, forwarders and split horizons. Verify must see the
second, so :class:`ClientResolver` asks over the DNS protocol (dnspython's stub resolver):
the inventory's ``dns.resolvers`` (the ones the apps' clients use), else the ``rfc2136``
primary, else the host's own resolver. Only a provider at a custom ``endpoint_url`` (a
stand-in such as moto, which answers no DNS query) is read through its API, and
:attr:`ClientResolver.how` says so, so the evidence never claims more than was checked.
"""

from __future__ import annotations

import asyncio
import math
import time

import dns.exception
import dns.resolver

from drivers.dns.registry import make_dns_driver
from hybridops.inventory import DnsKind, DnsSettings, Resolution, split_address


class ResolveError(ConnectionError):
    """The name could not be resolved (no resolver answered, or an error answer other than
    "no such name"): a client would fail to connect."""


def name_servers(settings: DnsSettings) -> list[tuple[str, int]] | None:
    """The name servers a client asks: the inventory's resolvers, else the ``rfc2136``
    primary; None for the host's own resolver."""
    if settings.resolvers:
        return [split_address(a) for a in settings.resolvers]
    if settings.driver == DnsKind.RFC2136 and settings.server:
        return [(settings.server, settings.port)]
    return None


def resolution(settings: DnsSettings) -> Resolution:
    """:attr:`Resolution.DNS` or :attr:`Resolution.API`, what ``auto`` comes to."""
    if settings.resolution != Resolution.AUTO:
        return settings.resolution
    if settings.endpoint_url and name_servers(settings) is None:
        return Resolution.API
    return Resolution.DNS


class ClientResolver:
    """The first address ``settings.record`` resolves to, as a client would be told.

    ``cache``: keep each answer for its TTL, as a client's resolver does (the writer: a changed
    record is seen when the cached answer expires, so the measured outage includes what DNS
    caching adds). Without it every call asks again (verify: the moment the change shows)."""

    def __init__(self, settings: DnsSettings, cache: bool = False, lifetime_s: float = 1.0) -> None:
        self.settings = settings
        self.name = settings.record
        self.cache = cache
        self.mode = resolution(settings)
        self._answer: str | None = None
        self._at = -math.inf
        servers = name_servers(settings)
        if self.mode == Resolution.API:
            self._driver = make_dns_driver(settings)
            where = settings.endpoint_url or "the provider"
            self.how = f"{settings.driver.value} API at {where} (no DNS query)"
            return
        try:
            self.resolver = dns.resolver.Resolver(configure=servers is None)
        except dns.resolver.NoResolverConfiguration:
            raise ResolveError(
                f"cannot resolve {self.name}: this host has no resolver configured; "
                "name the clients' resolvers in dns.resolvers"
            ) from None
        if servers is not None:
            self.resolver.nameservers = [ip for ip, _ in servers]
            self.resolver.port = servers[0][1]
            self.how = "DNS query to " + ", ".join(f"{ip}:{port}" for ip, port in servers)
        else:
            asked = ", ".join(map(str, self.resolver.nameservers))
            self.how = f"DNS query to the host's resolver ({asked})"
        self.resolver.lifetime = lifetime_s
        if cache:
            self.resolver.cache = dns.resolver.Cache()

    def address(self, connected: bool = False) -> str | None:
        """The first address, or None when the name does not exist or holds no address.
        ``connected``: the caller still has a working connection (an API read is then kept
        for the TTL; a DNS cache is kept regardless, as a lost connection flushes no
        client's cache). Raises :class:`ResolveError`."""
        if self.mode == Resolution.API:
            if not self.cache or not connected or time.monotonic() - self._at > self.settings.ttl:
                rec = self._driver.get_record_sync(self.name, "A")
                self._answer = rec.values[0] if rec and rec.values else None
                self._at = time.monotonic()
            return self._answer
        try:
            answer = self.resolver.resolve(self.name, "A")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as err:
            raise ResolveError(f"cannot resolve {self.name} ({self.how}): {err}") from None
        return next((r.to_text() for r in answer), None)

    async def resolve(self) -> str | None:
        """:meth:`address` without blocking the event loop (no cache kept across calls
        unless ``cache``)."""
        return await asyncio.to_thread(self.address)
