"""The Google Cloud DNS driver (``google-cloud-dns``).

Credentials: a service account's JSON key from a secret reference, or Application Default
Credentials (workload identity on GKE, the metadata server, ``gcloud auth``) when the inventory
names none. google-auth fetches the access token from the key's ``token_uri`` and fetches a
new one when it expires, or when the API answers 401 with it (a token revoked or expired
mid-run): the driver never holds a token itself.

A change is one Cloud DNS change: the current record set deleted and the new one added,
applied atomically, and refused (412) when the deletion no longer matches what the zone holds,
so a concurrent edit is never overwritten. Done when the change's status is ``done``: the
library has no waiter, so the driver reads the change again with a deadline.

Weighted records are not declared: the library's record sets carry no routing policy, and a
Cloud DNS weighted round-robin policy has items without identifiers, while the burst's
weighted sets are keyed by set identifier; the burst refuses on this driver before any change.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import google.auth
import google.auth.exceptions
from google.api_core import exceptions as gexc
from google.cloud.dns import Client as DnsClient
from google.oauth2 import service_account

from drivers.dns.base import DnsDriver, Record, ZoneProbe, normalise
from drivers.secrets import resolve_secret
from hybridops.errors import ConfigError, DnsAuthError, DnsError, DnsRecordInvalid, DnsZoneNotFound
from hybridops.inventory import DnsSettings

SCOPES = ("https://www.googleapis.com/auth/ndev.clouddns.readwrite",)
DONE_WITHIN_S = 120.0
"""How long a change may stay ``pending`` (Cloud DNS applies most within seconds)."""
POLL_S = 0.5


class CloudDnsDriver(DnsDriver):
    """A Cloud DNS managed zone, named by its resource name."""

    capabilities = frozenset()  # see the module's docstring

    def __init__(self, settings: DnsSettings) -> None:
        super().__init__(settings.zone)
        if not settings.managed_zone:
            raise ConfigError("dns.managed_zone: the clouddns driver needs the managed zone's name")
        credentials: Any
        project = settings.project
        key = resolve_secret(settings.credentials_ref)
        try:
            if key is not None:
                try:
                    info = json.loads(key)
                except ValueError:
                    raise ConfigError(
                        f"dns.credentials_ref {settings.credentials_ref!r}: not a service account's JSON key"
                    ) from None
                credentials = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
                project = project or info.get("project_id")
            else:
                credentials, found = google.auth.default(scopes=SCOPES)
                project = project or found
        except (google.auth.exceptions.DefaultCredentialsError, ValueError) as err:
            # A malformed key's message can quote it: name the reference only.
            raise DnsAuthError(
                f"clouddns credentials ({settings.credentials_ref or 'application default'}): "
                f"{type(err).__name__}",
                zone=self.zone,
            ) from None
        if not project:
            raise ConfigError("dns.project: no project named and none in the credentials")
        options = {"api_endpoint": settings.endpoint_url} if settings.endpoint_url else None
        self._client = DnsClient(project=project, credentials=credentials, client_options=options)
        self._zone_api = self._client.zone(settings.managed_zone, self.zone + ".")
        self._path = f"/projects/{project}/managedZones/{settings.managed_zone}"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn`` with the provider's errors mapped onto the shared ones."""
        try:
            return fn(*args, **kwargs)
        except (gexc.Unauthorized, gexc.Forbidden) as err:
            raise DnsAuthError(f"clouddns {what}: {err.code} {err.message}", zone=self.zone) from None
        except google.auth.exceptions.RefreshError as err:
            raise DnsAuthError(
                f"clouddns {what}: the token endpoint refused: {err.args[0]}", zone=self.zone
            ) from None
        except gexc.NotFound as err:
            raise DnsZoneNotFound(f"clouddns {what}: {err.message}", zone=self.zone) from None
        except gexc.BadRequest as err:
            raise DnsRecordInvalid(f"clouddns {what}: {err.message}", zone=self.zone) from None
        except gexc.GoogleAPICallError as err:
            # 409, 412 (the zone changed under us: read again), 429, 5xx
            raise DnsError(f"clouddns {what}: {err.code} {err.message}", zone=self.zone) from None
        except (google.auth.exceptions.TransportError, OSError) as err:
            raise DnsError(f"clouddns {what}: {err}", zone=self.zone) from None

    def _rrset(self, name: str, type: str) -> dict[str, Any] | None:
        """The record set as the API returns it (filtered by name and type on the server,
        through the library's authenticated connection: its iterator takes no filter)."""
        page = self._call(
            f"list rrsets {name}",
            self._client._connection.api_request,
            method="GET",
            path=f"{self._path}/rrsets",
            query_params={"name": name + ".", "type": type},
        )
        for rrset in page.get("rrsets", []):
            if normalise(rrset["name"]) == name and rrset["type"] == type:
                return dict(rrset)
        return None

    def _get_record_sync(self, name: str, type: str) -> Record | None:
        rrset = self._rrset(name, type)
        if rrset is None:
            return None
        return Record(name, type, int(rrset.get("ttl", 0)), tuple(sorted(rrset.get("rrdatas", []))))

    def _upsert_sync(self, record: Record) -> None:
        changes = self._zone_api.changes()
        current = self._rrset(record.name, record.type)
        if current is not None:
            changes.delete_record_set(
                self._zone_api.resource_record_set(
                    current["name"],
                    current["type"],
                    int(current.get("ttl", 0)),
                    list(current.get("rrdatas", [])),
                )
            )
        changes.add_record_set(
            self._zone_api.resource_record_set(
                record.name + ".", record.type, record.ttl, list(record.values)
            )
        )
        self._call(f"change {record.name}", changes.create)
        deadline = time.monotonic() + DONE_WITHIN_S
        while changes.status != "done":
            if time.monotonic() > deadline:
                raise DnsError(
                    f"clouddns change {changes.name} still {changes.status} after {DONE_WITHIN_S}s",
                    zone=self.zone,
                    record=record.name,
                )
            time.sleep(POLL_S)
            self._call(f"change {changes.name}", changes.reload)

    async def _get_record(self, name: str, type: str) -> Record | None:
        return await asyncio.to_thread(self._get_record_sync, name, type)

    async def _upsert(self, record: Record) -> None:
        await asyncio.to_thread(self._upsert_sync, record)

    def _ensure_zone_sync(self) -> bool:
        if self._call("get zone", self._zone_api.exists):
            return False
        self._call("create zone", self._zone_api.create)
        return True

    async def _ensure_zone(self) -> bool:
        return await asyncio.to_thread(self._ensure_zone_sync)

    def _probe_sync(self) -> ZoneProbe:
        # managedZones.get through the library's authenticated connection (``Zone.reload``
        # would also rewrite the local zone object).
        zone = self._call("get zone", self._client._connection.api_request, method="GET", path=self._path)
        return ZoneProbe(
            self.zone,
            str(zone.get("id") or zone.get("name") or self._path),
            detail=f"managedZones.get: {zone.get('name', '')}",
        )

    async def _probe(self) -> ZoneProbe:
        return await asyncio.to_thread(self._probe_sync)
