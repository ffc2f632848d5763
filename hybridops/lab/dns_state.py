"""What the lab's DNS holds, kept across restarts of its DNS server.

moto's Route53 server keeps its zones in memory: stopped or killed, it forgets where the
record pointed. A lab that then pointed it anywhere by default (onprem) would send clients to
a stale primary after a failover. The lab takes a snapshot of the records it knows (the
database's A record, the burst's weighted record sets) through the DNS driver's public
methods, and re-applies exactly the last one when the server starts empty.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from drivers.dns import DnsDriver
from hybridops.capabilities import Capability

T = TypeVar("T")


class DnsSnapshot(BaseModel):
    """The lab's DNS records at one moment."""

    taken_at: datetime
    taken_by: str
    """What took it: ``up``, ``down``, ``reset`` or ``point_dns``. Only ``down`` is taken
    when the server stops; any other means later changes (a failover's cutover) may be lost."""
    record: str
    values: list[str] | None
    """The A record's values; None when it did not exist."""
    ttl: int
    weighted_record: str
    weights: dict[str, tuple[str, int]] = {}
    """The weighted record sets of ``weighted_record``: set identifier to (value, weight)."""
    weighted_ttl: int

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> DnsSnapshot | None:
        """The snapshot kept at ``path``; None when there is none."""
        if not path.exists():
            return None
        return cls.model_validate_json(path.read_text())


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a driver coroutine from the lab's synchronous code, also when called from inside
    an event loop (an async test): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def take(
    dns: DnsDriver, record: str, ttl: int, weighted_record: str, weighted_ttl: int, taken_by: str
) -> DnsSnapshot:
    """Read-only. The A record ``record`` and the weighted sets of ``weighted_record`` (none
    for a driver without weighted records) as the provider holds them now. Raises the
    driver's errors (:class:`DnsError` when it is down)."""
    current = await dns.get_record(record, "A")
    weighted = Capability.WEIGHTED in dns.capabilities
    return DnsSnapshot(
        taken_at=datetime.now(UTC),
        taken_by=taken_by,
        record=record,
        values=list(current.values) if current else None,
        ttl=current.ttl if current else ttl,
        weighted_record=weighted_record,
        weights=await dns.get_weights(weighted_record, "A") if weighted else {},
        weighted_ttl=weighted_ttl,
    )


async def reapply(dns: DnsDriver, snapshot: DnsSnapshot) -> None:
    """Make the provider hold exactly the snapshot's records (idempotent). Weighted sets only
    where the driver has them (a snapshot of moto's server re-applied to BIND has its A record)."""
    if snapshot.values:
        await dns.ensure_record(snapshot.record, "A", snapshot.values, snapshot.ttl)
    if snapshot.weights and Capability.WEIGHTED in dns.capabilities:
        await dns.ensure_weights(snapshot.weighted_record, "A", snapshot.weights, snapshot.weighted_ttl)
