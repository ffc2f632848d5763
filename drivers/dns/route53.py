"""The Route53 driver (boto3). The lab points it at moto's Route53 server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from drivers.dns.base import DnsDriver, Record, ZoneProbe, normalise
from drivers.secrets import resolve_secret
from hybridops.capabilities import Capability
from hybridops.errors import DnsAuthError, DnsError, DnsRecordInvalid, DnsZoneNotFound
from hybridops.inventory import DnsSettings

# Route53 error codes, mapped onto the shared errors.
_FATAL: dict[str, type[DnsError | DnsRecordInvalid | DnsZoneNotFound | DnsAuthError]] = {
    "InvalidChangeBatch": DnsRecordInvalid,
    "InvalidInput": DnsRecordInvalid,
    "NoSuchHostedZone": DnsZoneNotFound,
    "AccessDenied": DnsAuthError,
    "AccessDeniedException": DnsAuthError,
    "InvalidClientTokenId": DnsAuthError,
    "SignatureDoesNotMatch": DnsAuthError,
    "ExpiredToken": DnsAuthError,
    "UnrecognizedClientException": DnsAuthError,
}
INSYNC_WAIT_S = 120
"""How long a change may take to reach every Route53 server (AWS says within 60 s)."""


class Route53Driver(DnsDriver):
    """A Route53 hosted zone, found by name."""

    capabilities = frozenset({Capability.WEIGHTED})

    def __init__(self, settings: DnsSettings) -> None:
        super().__init__(settings.zone)
        creds: dict[str, str] = {}
        secret = resolve_secret(settings.credentials_ref)
        if secret:
            key_id, _, key = secret.partition(":")
            creds = {"aws_access_key_id": key_id, "aws_secret_access_key": key}
        self._client: Any = boto3.client(  # type: ignore[call-overload]
            "route53", endpoint_url=settings.endpoint_url, region_name=settings.region, **creds
        )
        self._zone_id: str | None = None

    def _call(self, op: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, op)(**kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            fatal = _FATAL.get(code)
            if fatal is not None:
                raise fatal(f"route53 {op}: {code}: {err}", zone=self.zone) from None
            raise DnsError(f"route53 {op}: {code}: {err}", zone=self.zone) from None
        except BotoCoreError as err:
            raise DnsError(f"route53 {op}: {err}", zone=self.zone) from None

    def _in_zone(self, op: str, **kwargs: Any) -> Any:
        """``op`` on the zone. A zone deleted and created again (a restored zone, the lab's
        restarted server) has a new id: the cached one is dropped and looked up once more."""
        cached = self._zone_id is not None
        try:
            return self._call(op, HostedZoneId=self._zone(), **kwargs)
        except DnsZoneNotFound:
            if not cached:
                raise
            self._zone_id = None
            return self._call(op, HostedZoneId=self._zone(), **kwargs)

    def _zone(self) -> str:
        if self._zone_id is None:
            page = self._call("list_hosted_zones_by_name", DNSName=self.zone + ".")
            for zone in page.get("HostedZones", []):
                if normalise(zone["Name"]) == self.zone:
                    self._zone_id = zone["Id"].split("/")[-1]
                    break
            else:
                raise DnsZoneNotFound(f"no hosted zone {self.zone}", zone=self.zone)
        return self._zone_id

    def _get_record_sync(self, name: str, type: str) -> Record | None:
        page = self._in_zone(
            "list_resource_record_sets",
            StartRecordName=name + ".",
            StartRecordType=type,
            MaxItems="1",
        )
        for rrset in page.get("ResourceRecordSets", []):
            if normalise(rrset["Name"]) == name and rrset["Type"] == type:
                values = tuple(sorted(r["Value"] for r in rrset.get("ResourceRecords", [])))
                return Record(name, type, int(rrset.get("TTL", 0)), values)
        return None

    def _upsert_sync(self, record: Record) -> None:
        change = self._in_zone(
            "change_resource_record_sets",
            ChangeBatch={
                "Comment": "hybridops",
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": record.name + ".",
                            "Type": record.type,
                            "TTL": record.ttl,
                            "ResourceRecords": [{"Value": v} for v in record.values],
                        },
                    }
                ],
            },
        )
        self._wait_insync(change)

    def _wait_insync(self, change: Any) -> None:
        """Until the change is INSYNC, through boto3's ``resource_record_sets_changed``
        waiter (GetChange every second here, for :data:`INSYNC_WAIT_S`)."""
        change_id = change["ChangeInfo"]["Id"]
        if change["ChangeInfo"]["Status"] == "INSYNC":
            return
        waiter = self._client.get_waiter("resource_record_sets_changed")
        try:
            waiter.wait(Id=change_id, WaiterConfig={"Delay": 1, "MaxAttempts": INSYNC_WAIT_S})
        except WaiterError as err:
            last = (err.last_response or {}).get("Error", {}).get("Code", "")
            if last in _FATAL:
                raise _FATAL[last](f"route53 get_change {change_id}: {last}", zone=self.zone) from None
            raise DnsError(
                f"change {change_id} not INSYNC after {INSYNC_WAIT_S}s: {err}", zone=self.zone
            ) from None

    async def _get_record(self, name: str, type: str) -> Record | None:
        return await asyncio.to_thread(self._get_record_sync, name, type)

    def _weighted_sync(self, name: str, type: str) -> dict[str, Any]:
        page = self._in_zone(
            "list_resource_record_sets",
            StartRecordName=name + ".",
            StartRecordType=type,
            MaxItems="100",
        )
        return {
            rrset["SetIdentifier"]: rrset
            for rrset in page.get("ResourceRecordSets", [])
            if normalise(rrset["Name"]) == name and rrset["Type"] == type and "SetIdentifier" in rrset
        }

    async def _get_weights(self, name: str, type: str) -> dict[str, tuple[str, int]]:
        sets = await asyncio.to_thread(self._weighted_sync, name, type)
        return {
            k: (v["ResourceRecords"][0]["Value"], int(v.get("Weight", 0))) for k, v in sorted(sets.items())
        }

    def _set_weights_sync(self, name: str, type: str, wanted: dict[str, tuple[str, int]], ttl: int) -> None:
        existing = self._weighted_sync(name, type)
        changes: list[dict[str, Any]] = [
            {"Action": "DELETE", "ResourceRecordSet": rrset}
            for sid, rrset in existing.items()
            if sid not in wanted
        ]
        for sid, (value, weight) in wanted.items():
            rrset = {
                "Name": name + ".",
                "Type": type,
                "SetIdentifier": sid,
                "Weight": weight,
                "TTL": ttl,
                "ResourceRecords": [{"Value": value}],
            }
            changes.append({"Action": "UPSERT", "ResourceRecordSet": rrset})
        change = self._in_zone(
            "change_resource_record_sets",
            ChangeBatch={"Comment": "hybridops weights", "Changes": changes},
        )
        self._wait_insync(change)

    async def _set_weights(
        self,
        name: str,
        type: str,
        current: dict[str, tuple[str, int]],
        wanted: dict[str, tuple[str, int]],
        ttl: int,
    ) -> None:
        await asyncio.to_thread(self._set_weights_sync, name, type, wanted, ttl)

    async def _upsert(self, record: Record) -> None:
        await asyncio.to_thread(self._upsert_sync, record)

    def _ensure_zone_sync(self) -> bool:
        try:
            self._zone()
            return False
        except DnsZoneNotFound:
            zone = self._call("create_hosted_zone", Name=self.zone + ".", CallerReference=self.zone)
            self._zone_id = str(zone["HostedZone"]["Id"].split("/")[-1])
            return True

    async def _ensure_zone(self) -> bool:
        return await asyncio.to_thread(self._ensure_zone_sync)

    def _probe_sync(self) -> ZoneProbe:
        # GetHostedZone names the zone ``Id``, not ``HostedZoneId``: no ``_in_zone`` here; a
        # cached id gone stale (the zone made again) is looked up once more, as there.
        cached = self._zone_id is not None
        try:
            zone = self._call("get_hosted_zone", Id=self._zone())["HostedZone"]
        except DnsZoneNotFound:
            if not cached:
                raise
            self._zone_id = None
            zone = self._call("get_hosted_zone", Id=self._zone())["HostedZone"]
        count = zone.get("ResourceRecordSetCount")
        return ZoneProbe(
            self.zone,
            str(zone["Id"]).split("/")[-1],
            detail=f"GetHostedZone: {count} record sets" if count is not None else "GetHostedZone",
        )

    async def _probe(self) -> ZoneProbe:
        return await asyncio.to_thread(self._probe_sync)
