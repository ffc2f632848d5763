"""The DNS driver interface and its value types.

Shaped to fit Route53, Cloud DNS, Azure DNS and RFC 2136 alike: a zone, records as
(name, type, ttl, values), and one converging write, :meth:`DnsDriver.ensure_record`.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass

from hybridops.capabilities import Capability
from hybridops.errors import CapabilityMissing, DnsRecordInvalid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One record set: a fully qualified name (no trailing dot), a type, a TTL, its values."""

    name: str
    type: str
    ttl: int
    values: tuple[str, ...]


@dataclass(frozen=True)
class RecordChange:
    """What :meth:`DnsDriver.ensure_record` did."""

    changed: bool
    previous: Record | None
    current: Record


@dataclass(frozen=True)
class ZoneProbe:
    """What :meth:`DnsDriver.probe` read: the zone answered an authenticated read."""

    zone: str
    zone_id: str
    """The provider's id of the zone (Route53's hosted zone id, the Azure or Cloud DNS zone's
    resource id or name, the name server's address for RFC 2136)."""
    serial: int | None = None
    """The zone's SOA serial, where the read returns it (RFC 2136)."""
    detail: str = ""


def normalise(name: str) -> str:
    return name.rstrip(".").lower()


class Unread:
    """No record was read (the default of :meth:`DnsDriver.ensure_record`'s ``read``)."""


UNREAD = Unread()


class DnsDriver(abc.ABC):
    """One hosted zone at one provider."""

    capabilities: frozenset[Capability] = frozenset()
    """What this driver can do beyond :meth:`ensure_record` (of the kernel's vocabulary, DNS
    declares only :attr:`Capability.WEIGHTED`); see :meth:`require`."""

    def require(self, capability: Capability) -> None:
        """Raise :class:`CapabilityMissing` (fatal) naming the driver and ``capability`` when
        this driver does not declare it. Callers check before their first change."""
        if capability not in self.capabilities:
            raise CapabilityMissing(
                f"DNS driver {type(self).__name__} has no {capability.value!r} capability",
                driver=type(self).__name__,
                capability=capability.value,
            )

    def __init__(self, zone: str) -> None:
        self.zone = normalise(zone)

    def _check_name(self, name: str) -> str:
        name = normalise(name)
        if name != self.zone and not name.endswith("." + self.zone):
            raise DnsRecordInvalid(f"{name} is not in zone {self.zone}", zone=self.zone, record=name)
        return name

    async def get_record(self, name: str, type: str = "A") -> Record | None:
        """Read-only. The record set ``name``/``type``, or None when it does not exist.
        Raises :class:`DnsZoneNotFound` (fatal) or :class:`DnsError` (retryable)."""
        return await self._get_record(self._check_name(name), type)

    def get_record_sync(self, name: str, type: str = "A") -> Record | None:
        """Read-only, blocking: :meth:`get_record` for synchronous code that polls between
        other work (the lab's writer re-resolves the name when its TTL expires, as a client
        would). The same answer and errors; one request to the provider."""
        return self._get_record_sync(self._check_name(name), type)

    async def probe(self, name: str) -> ZoneProbe:
        """Read-only: one authenticated read of the zone that holds ``name`` (the record the
        runbooks change), small and cheap: Route53 GetHostedZone, Azure DNS Zones Get, Cloud DNS
        managedZones.get, RFC 2136 a TSIG-signed SOA query. Proves the credentials work before a
        cutover needs them; changes nothing. One request (two for Route53 before its zone id is
        known), bounded by the client's timeouts. Raises :class:`DnsAuthError` (fatal) when the
        provider refuses the credentials, :class:`DnsZoneNotFound` (fatal) when it has no such
        zone, :class:`DnsError` (retryable) when it cannot be reached, with the driver and the
        zone in the message, never a secret."""
        self._check_name(name)
        return await self._probe()

    async def ensure_zone(self) -> bool:
        """Create the zone when the provider has none by this name; returns whether it did.
        For the lab, whose DNS server starts empty: production zones belong to their owners
        and no runbook calls this. Idempotent. Raises :class:`DnsError` (retryable)."""
        created = await self._ensure_zone()
        if created:
            log.info("dns zone %s created", self.zone)
        return created

    async def ensure_record(
        self, name: str, type: str, values: list[str], ttl: int, read: Record | Unread | None = UNREAD
    ) -> RecordChange:
        """Make ``name``/``type`` hold exactly ``values`` with ``ttl``. Idempotent: when it
        already does, nothing is sent (``changed`` false). Done when the provider reports
        the change applied (Route53: INSYNC), which may take up to a minute in production.
        ``read``: the record as :meth:`get_record` gave it moments before (a caller that read
        it while it checked something else), instead of a read here."""
        name = self._check_name(name)
        if not values:
            raise DnsRecordInvalid("no values given", zone=self.zone, record=name)
        wanted = Record(name, type, ttl, tuple(sorted(values)))
        previous = await self._get_record(name, type) if isinstance(read, Unread) else read
        if previous is not None and previous.values == wanted.values and previous.ttl == ttl:
            return RecordChange(False, previous, previous)
        log.info("dns %s %s: %s -> %s", name, type, previous and previous.values, wanted.values)
        await self._upsert(wanted)
        return RecordChange(True, previous, wanted)

    async def get_weights(self, name: str, type: str = "A") -> dict[str, tuple[str, int]]:
        """Read-only. The weighted record sets of ``name``/``type``: set identifier to
        (value, weight). Empty when there are none. Needs :attr:`Capability.WEIGHTED`."""
        self.require(Capability.WEIGHTED)
        return await self._get_weights(self._check_name(name), type)

    async def ensure_weights(
        self, name: str, type: str, weights: dict[str, tuple[str, int]], ttl: int
    ) -> bool:
        """Make the weighted record sets of ``name``/``type`` exactly ``weights`` (set
        identifier to (value, weight)), in one atomic change; identifiers not listed are
        removed. Idempotent: returns whether anything changed. Needs
        :attr:`Capability.WEIGHTED`."""
        self.require(Capability.WEIGHTED)
        name = self._check_name(name)
        if not weights:
            raise DnsRecordInvalid("no weighted records given", zone=self.zone, record=name)
        current = await self._get_weights(name, type)
        if current == weights:
            return False
        log.info("dns %s %s weights: %s -> %s", name, type, current, weights)
        await self._set_weights(name, type, current, weights, ttl)
        return True

    # Hooks of drivers that declare WEIGHTED (never called on the others).
    async def _get_weights(self, name: str, type: str) -> dict[str, tuple[str, int]]:
        raise AssertionError(f"{self.__class__.__name__} declares no weighted capability")

    async def _set_weights(
        self,
        name: str,
        type: str,
        current: dict[str, tuple[str, int]],
        wanted: dict[str, tuple[str, int]],
        ttl: int,
    ) -> None:
        raise AssertionError(f"{self.__class__.__name__} declares no weighted capability")

    @abc.abstractmethod
    async def _get_record(self, name: str, type: str) -> Record | None: ...

    @abc.abstractmethod
    def _get_record_sync(self, name: str, type: str) -> Record | None: ...

    @abc.abstractmethod
    async def _ensure_zone(self) -> bool: ...

    @abc.abstractmethod
    async def _probe(self) -> ZoneProbe: ...

    @abc.abstractmethod
    async def _upsert(self, record: Record) -> None:
        """Create or replace the record set and wait until the provider applied it."""
