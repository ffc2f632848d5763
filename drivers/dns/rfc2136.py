"""The RFC 2136 driver (dnspython): dynamic updates signed with TSIG, sent to the zone's
primary name server (BIND, PowerDNS, Knot), and reads by query of the same server.

A read asks the primary itself, not a resolver: its answer is authoritative (the AA flag) and
never a cached one, so the driver sees a change the moment the server applied it. An update
replaces the record set in one message (delete the set, add the values: atomic on the
server); done means the server answered NOERROR and then serves the new values under a new
SOA serial. The lab points it at its own BIND on loopback.

RFC 2136 has no weighted record sets, so the driver declares none: a burst refuses before its
first change, naming the driver (DESIGN.md rule 14).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from drivers.dns.base import DnsDriver, Record, ZoneProbe
from drivers.secrets import resolve_secret
from hybridops.errors import ConfigError, DnsAuthError, DnsError, DnsRecordInvalid, DnsZoneNotFound
from hybridops.inventory import DnsSettings

log = logging.getLogger(__name__)

APPLIED_WITHIN_S = 5.0
"""How long the primary may take, after answering NOERROR, to serve the change: it answers
after writing its journal, so on the primary this is at once; the deadline is for a server
that applies updates asynchronously (PowerDNS with a cache in front)."""

# Response codes, mapped onto the shared errors. An update the server's policy does not allow
# (REFUSED) or a key it does not take (NOTAUTH) is an auth failure; a name outside the zones
# it serves (NOTZONE) is an invalid record.
_UPDATE_ERRORS: dict[int, type[DnsError | DnsAuthError | DnsRecordInvalid | DnsZoneNotFound]] = {
    dns.rcode.REFUSED: DnsAuthError,
    dns.rcode.NOTAUTH: DnsAuthError,
    dns.rcode.NOTZONE: DnsRecordInvalid,
    dns.rcode.FORMERR: DnsRecordInvalid,
    dns.rcode.SERVFAIL: DnsError,
}


class Rfc2136Driver(DnsDriver):
    """One zone on a name server that takes dynamic updates (RFC 2136) signed with TSIG."""

    capabilities = frozenset()  # no weighted record sets in RFC 2136

    def __init__(self, settings: DnsSettings) -> None:
        super().__init__(settings.zone)
        if not settings.server:
            raise ConfigError("dns.server: the rfc2136 driver needs the primary name server's address")
        self.server = settings.server
        self.port = settings.port
        self.timeout = settings.timeout_s
        self._origin = dns.name.from_text(self.zone)
        self._key: dns.tsig.Key | None = None
        secret = resolve_secret(settings.credentials_ref)
        if secret is not None or settings.tsig_key is not None:
            if secret is None or settings.tsig_key is None:
                raise ConfigError(
                    "dns.tsig_key and dns.credentials_ref: a TSIG key needs both its name and secret"
                )
            try:
                base64.b64decode(secret.strip(), validate=True)
            except (binascii.Error, ValueError):
                # The reference, never the value (it is a secret however malformed).
                raise ConfigError(
                    f"dns.credentials_ref {settings.credentials_ref!r}: the TSIG secret is not base64"
                ) from None
            self._key = dns.tsig.Key(settings.tsig_key, secret.strip(), settings.tsig_algorithm)

    # ------------------------------------------------------------------ the wire

    def _where(self) -> str:
        return f"{self.server}:{self.port}"

    def _ask(self, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        """One query of the primary (UDP, TCP when truncated), signed when there is a key.
        Raises :class:`DnsAuthError` when the server rejects the key, :class:`DnsError` when it
        does not answer in time."""
        query = dns.message.make_query(name + ".", rdtype)
        query.flags &= ~dns.flags.RD  # ask the authority, not its resolver
        if self._key is not None:
            query.use_tsig(self._key)
        try:
            response, _ = dns.query.udp_with_fallback(
                query, self.server, timeout=self.timeout, port=self.port
            )
        except dns.tsig.PeerError as err:
            raise DnsAuthError(
                f"rfc2136 query {name}: the server rejected the TSIG key: {err!r}", zone=self.zone
            ) from None
        except (dns.exception.DNSException, OSError) as err:
            raise DnsError(f"rfc2136 query {name} at {self._where()}: {err!r}", zone=self.zone) from None
        return response

    def serial(self) -> int:
        """Read-only. The zone's SOA serial as the primary serves it now. Raises
        :class:`DnsZoneNotFound` when the server is not authoritative for the zone."""
        response = self._ask(self.zone, dns.rdatatype.SOA)
        if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA:
            raise DnsZoneNotFound(
                f"{self._where()} is not authoritative for {self.zone}"
                f" ({dns.rcode.to_text(response.rcode())})",
                zone=self.zone,
            )
        try:
            rrset = response.find_rrset(response.answer, self._origin, dns.rdataclass.IN, dns.rdatatype.SOA)
        except KeyError:
            raise DnsZoneNotFound(f"{self._where()} has no SOA for {self.zone}", zone=self.zone) from None
        return int(rrset[0].serial)

    def _get_record_sync(self, name: str, type: str) -> Record | None:
        rdtype = dns.rdatatype.from_text(type)
        response = self._ask(name, rdtype)
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN and response.flags & dns.flags.AA:
            return None
        if rcode != dns.rcode.NOERROR:
            error = DnsZoneNotFound if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH) else DnsError
            raise error(
                f"rfc2136 query {name} {type} at {self._where()}: {dns.rcode.to_text(rcode)}",
                zone=self.zone,
                record=name,
            )
        if not response.flags & dns.flags.AA:
            raise DnsZoneNotFound(f"{self._where()} is not authoritative for {self.zone}", zone=self.zone)
        try:
            rrset = response.find_rrset(response.answer, dns.name.from_text(name), dns.rdataclass.IN, rdtype)
        except KeyError:
            return None  # the name exists with other types only
        return Record(name, type, int(rrset.ttl), tuple(sorted(r.to_text() for r in rrset)))

    def _upsert_sync(self, record: Record) -> None:
        before = self.serial()
        update = dns.update.UpdateMessage(self._origin)
        if self._key is not None:
            update.use_tsig(self._key)
        # One message: delete the set and add the values, applied atomically by the server.
        update.replace(dns.name.from_text(record.name), record.ttl, record.type, *record.values)
        try:
            response = dns.query.tcp(update, self.server, timeout=self.timeout, port=self.port)
        except dns.tsig.PeerError as err:
            raise DnsAuthError(
                f"rfc2136 update {record.name}: the server rejected the TSIG key: {err!r}",
                zone=self.zone,
                record=record.name,
            ) from None
        except (dns.exception.DNSException, OSError) as err:
            raise DnsError(
                f"rfc2136 update {record.name} at {self._where()}: {err!r}",
                zone=self.zone,
                record=record.name,
            ) from None
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            error = _UPDATE_ERRORS.get(rcode, DnsError)
            raise error(
                f"rfc2136 update {record.name} at {self._where()}: {dns.rcode.to_text(rcode)}",
                zone=self.zone,
                record=record.name,
            )
        self._confirm(record, before)

    def _confirm(self, record: Record, before: int) -> None:
        """Until the primary serves ``record`` under a serial other than ``before`` (polling
        with the :data:`APPLIED_WITHIN_S` deadline). :class:`DnsError` when it never does."""
        deadline = time.monotonic() + APPLIED_WITHIN_S
        while True:
            served = self._get_record_sync(record.name, record.type)
            serial = self.serial()
            if served is not None and served.values == record.values and served.ttl == record.ttl:
                log.info("dns %s: zone serial %d -> %d", self.zone, before, serial)
                return
            if time.monotonic() > deadline:
                raise DnsError(
                    f"rfc2136 update {record.name}: answered NOERROR but not served after"
                    f" {APPLIED_WITHIN_S}s (serial {before} -> {serial}, serves {served and served.values})",
                    zone=self.zone,
                    record=record.name,
                )
            time.sleep(0.05)

    # ------------------------------------------------------------------ the hooks

    async def _get_record(self, name: str, type: str) -> Record | None:
        return await asyncio.to_thread(self._get_record_sync, name, type)

    async def _upsert(self, record: Record) -> None:
        await asyncio.to_thread(self._upsert_sync, record)

    async def _ensure_zone(self) -> bool:
        """RFC 2136 cannot create a zone: the server's configuration declares it (the lab
        writes it). False when the server serves it; :class:`DnsZoneNotFound` otherwise."""
        await asyncio.to_thread(self.serial)
        return False

    async def _probe(self) -> ZoneProbe:
        """The zone's SOA from the primary, the query signed with the TSIG key (dnspython
        checks the answer's signature too): a key the server does not take is a
        :class:`DnsAuthError`, a server that does not answer a :class:`DnsError`."""
        serial = await asyncio.to_thread(self.serial)
        signed = "TSIG-signed" if self._key is not None else "unsigned (no key configured)"
        return ZoneProbe(self.zone, self._where(), serial=serial, detail=f"SOA query, {signed}")
