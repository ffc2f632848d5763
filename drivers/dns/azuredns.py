"""The Azure DNS driver (``azure-mgmt-dns`` with ``azure-identity``).

Credentials: a service principal's client secret from a secret reference (with the inventory's
tenant and client ids), or ``DefaultAzureCredential`` (workload identity on AKS, a managed
identity, the environment) when the inventory names no secret. azure-core's bearer policy asks
the credential for a token before each request and a new one when the old is near its expiry:
the driver never holds a token itself.

A change is conditional on the record set's etag: replaced only if it is still the set the
driver read (``If-Match``), created only if there is none (``If-None-Match: *``), so a
concurrent edit is never overwritten (412: read again, retryable). Azure DNS applies a record
set synchronously: done when the PUT answers, no waiting.

Azure DNS has no weighted record sets (Traffic Manager does that, outside DNS zones): the
driver declares none, and a burst on it refuses before its first change, naming the driver.
"""

from __future__ import annotations

import asyncio
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError
from azure.mgmt.dns import DnsManagementClient
from azure.mgmt.dns.models import AaaaRecord, ARecord, RecordSet, Zone

from drivers.azure_auth import azure_credential
from drivers.dns.base import DnsDriver, Record, ZoneProbe
from drivers.secrets import resolve_secret
from hybridops.errors import ConfigError, DnsAuthError, DnsError, DnsRecordInvalid, DnsZoneNotFound
from hybridops.inventory import DnsSettings

ZONE_MISSING = ("ParentResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound")
"""ARM's codes for a 404 about the zone (or what holds it), not about the record set."""


class AzureDnsDriver(DnsDriver):
    """An Azure DNS zone in a resource group."""

    capabilities = frozenset()  # see the module's docstring

    def __init__(self, settings: DnsSettings) -> None:
        super().__init__(settings.zone)
        if not settings.subscription_id or not settings.resource_group:
            raise ConfigError("dns.subscription_id, dns.resource_group: the azuredns driver needs both")
        self.resource_group = settings.resource_group
        secret = resolve_secret(settings.credentials_ref)
        if secret is not None and not (settings.tenant_id and settings.client_id):
            raise ConfigError("dns.tenant_id and dns.client_id: a client secret needs both")
        credential = azure_credential(settings.tenant_id, settings.client_id, secret, settings.authority_host)
        base = {"base_url": settings.endpoint_url} if settings.endpoint_url else {}
        self._client = DnsManagementClient(credential, settings.subscription_id, **base)

    def _relative(self, name: str) -> str:
        return "@" if name == self.zone else name[: -len(self.zone) - 1]

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn`` with Azure's errors mapped onto the shared ones."""
        try:
            return fn(*args, **kwargs)
        except CredentialUnavailableError as err:
            raise DnsAuthError(f"azuredns {what}: no credential: {err.message}", zone=self.zone) from None
        except ClientAuthenticationError as err:
            if _unreachable(err):
                # No answer from the token endpoint (down, a network cut): nothing was refused,
                # so retryable, as an unreachable ARM is.
                raise DnsError(
                    f"azuredns {what}: the token endpoint could not be reached: {_summary(err)}",
                    zone=self.zone,
                ) from None
            # 401/403 from ARM, or the token endpoint refusing the client (its message names
            # the client and tenant, never the secret).
            raise DnsAuthError(f"azuredns {what}: {_summary(err)}", zone=self.zone) from None
        except ResourceNotFoundError as err:
            raise DnsZoneNotFound(f"azuredns {what}: {_summary(err)}", zone=self.zone) from None
        except (ResourceModifiedError, ResourceExistsError) as err:
            # The etag no longer matches: someone changed the set since the read. Read again.
            raise DnsError(
                f"azuredns {what}: changed concurrently: {_summary(err)}", zone=self.zone
            ) from None
        except HttpResponseError as err:
            if err.status_code == 400:
                raise DnsRecordInvalid(f"azuredns {what}: {_summary(err)}", zone=self.zone) from None
            raise DnsError(f"azuredns {what}: {_summary(err)}", zone=self.zone) from None
        except (ServiceRequestError, OSError) as err:
            raise DnsError(f"azuredns {what}: {err}", zone=self.zone) from None

    def _record_set(self, name: str, type: str) -> RecordSet | None:
        try:
            return self._client.record_sets.get(self.resource_group, self.zone, self._relative(name), type)
        except ResourceNotFoundError as err:
            if _code(err) in ZONE_MISSING:
                raise DnsZoneNotFound(f"azuredns get {name}: {_summary(err)}", zone=self.zone) from None
            return None

    def _get_sync(self, name: str, type: str) -> tuple[Record | None, str | None]:
        rs = self._call(f"get {name}", self._record_set, name, type)
        if rs is None:
            return None, None
        values = [r.ipv4_address for r in rs.a_records or []] + [
            r.ipv6_address for r in rs.aaaa_records or []
        ]
        return Record(name, type, int(rs.ttl or 0), tuple(sorted(values))), rs.etag

    def _get_record_sync(self, name: str, type: str) -> Record | None:
        return self._get_sync(name, type)[0]

    def _upsert_sync(self, record: Record) -> None:
        if record.type == "A":
            rs = RecordSet(ttl=record.ttl, a_records=[ARecord(ipv4_address=v) for v in record.values])
        elif record.type == "AAAA":
            rs = RecordSet(ttl=record.ttl, aaaa_records=[AaaaRecord(ipv6_address=v) for v in record.values])
        else:
            raise DnsRecordInvalid(f"azuredns: record type {record.type} not handled", zone=self.zone)
        _, etag = self._get_sync(record.name, record.type)
        condition = {"if_match": etag} if etag else {"if_none_match": "*"}
        self._call(
            f"put {record.name}",
            self._client.record_sets.create_or_update,
            self.resource_group,
            self.zone,
            self._relative(record.name),
            record.type,
            rs,
            **condition,
        )

    async def _get_record(self, name: str, type: str) -> Record | None:
        return await asyncio.to_thread(self._get_record_sync, name, type)

    async def _upsert(self, record: Record) -> None:
        await asyncio.to_thread(self._upsert_sync, record)

    def _ensure_zone_sync(self) -> bool:
        try:
            self._call("get zone", self._client.zones.get, self.resource_group, self.zone)
            return False
        except DnsZoneNotFound:
            self._call(
                "create zone",
                self._client.zones.create_or_update,
                self.resource_group,
                self.zone,
                Zone(location="global"),
                if_none_match="*",
            )
            return True

    async def _ensure_zone(self) -> bool:
        return await asyncio.to_thread(self._ensure_zone_sync)

    def _probe_sync(self) -> ZoneProbe:
        zone = self._call("get zone", self._client.zones.get, self.resource_group, self.zone)
        sets = getattr(zone, "number_of_record_sets", None)
        return ZoneProbe(
            self.zone,
            str(zone.id or zone.name or self.zone),
            detail="Zones Get" + (f": {sets} record sets" if sets is not None else ""),
        )

    async def _probe(self) -> ZoneProbe:
        return await asyncio.to_thread(self._probe_sync)


def _unreachable(err: ClientAuthenticationError) -> bool:
    """Whether azure-identity's auth error is a transport failure reaching the token endpoint
    (no response, a connection error behind it) rather than a refusal."""
    if err.response is not None:
        return False
    cause: BaseException | None = err.__cause__ or err.__context__
    for _ in range(5):  # the chain azure-identity builds is short; never loop on a cycle
        if cause is None:
            return False
        if isinstance(cause, (ServiceRequestError, ServiceResponseError, OSError)):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _code(err: HttpResponseError) -> str:
    return str(getattr(err.error, "code", "") or "")


def _summary(err: HttpResponseError | ClientAuthenticationError) -> str:
    status = getattr(err, "status_code", None)
    code = _code(err) if isinstance(err, HttpResponseError) else ""
    message = getattr(getattr(err, "error", None), "message", None) or err.message
    return " ".join(str(p) for p in (status, code, message) if p)
