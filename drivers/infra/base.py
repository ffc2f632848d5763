"""The infrastructure driver interface: target clusters and the apps that run on them."""

from __future__ import annotations

import abc
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from drivers.terraform.state import StateLock
from hybridops.capabilities import Capability, require
from hybridops.contracts.base import Cloud


@dataclass(frozen=True)
class IsolateTarget:
    """The server an isolation is about: its site, address and (local servers) data directory."""

    site: str
    host: str
    data_dir: Path | None = None


@dataclass(frozen=True)
class AppDatabase:
    """Where an app (NetBox and others) finds its database. No credentials: apps keep
    their own secret references."""

    site: str
    host: str
    port: int
    dbname: str


def run_key(run_id: str) -> str:
    """``run_id`` as a file name: its safe characters, and a digest so that two ids that
    differ only in the others never share one."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:80]
    return f"{safe}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


class InfraDriver(abc.ABC):
    """Brings target clusters up and down, and tells apps where their database is."""

    capabilities: frozenset[Capability] = frozenset()
    """What this driver can do (prepare a cluster, node pools, isolate, repoint apps)."""

    async def isolate(self, target: IsolateTarget, run_id: str) -> str:
        """Make sure the unreachable server ``target`` can never serve again, even if its host
        comes back (the fence mark only holds while its disk does). Idempotent; returns what
        was done, or why nothing could be (no :attr:`Capability.ISOLATE`). Never raises
        for a missing capability: a fence is then left unverified, and the evidence says so."""
        if Capability.ISOLATE not in self.capabilities:
            return f"infra driver {type(self).__name__} cannot isolate a server (no 'isolate' capability)"
        return await self._isolate(target, run_id)

    async def _isolate(self, target: IsolateTarget, run_id: str) -> str:
        return "not isolated"

    async def prepare(self, cloud: Cloud, run_id: str, nodes: int | None = None) -> bool:
        """Make the target cluster in ``cloud`` ready to take the apps, its pool scaled up to
        ``nodes`` when given (never down). Idempotent: returns whether anything changed.
        Records ``run_id`` and the pool's size before it, durably and before changing
        anything, so that :meth:`release` undoes only what this run did, even after a crash.
        In production this may take many minutes (Terraform)."""
        if nodes is not None and nodes < 0:
            raise ValueError(f"nodes: {nodes} < 0")
        require(self, Capability.PREPARE_CLUSTER)
        return await self._prepare(cloud, run_id, nodes)

    async def release(self, cloud: Cloud, run_id: str) -> bool:
        """Compensation of :meth:`prepare`: undo what ``run_id`` prepared (the pool back to its
        size before the run), nothing else."""
        return await self._release(cloud, run_id)

    async def repoint_apps(self, apps: list[str], db: AppDatabase) -> bool:
        """Make every app in ``apps`` use ``db``. Idempotent: returns whether any changed."""
        if not apps:
            return False  # nothing to repoint: no capability needed
        require(self, Capability.REPOINT_APPS)
        return await self._repoint_apps(apps, db)

    async def pool_nodes(self, cloud: Cloud) -> int:
        """Read-only: how many nodes the burst node pool of ``cloud``'s cluster has."""
        require(self, Capability.NODE_POOLS)
        return await self._pool_nodes(cloud)

    async def scale_pool(self, cloud: Cloud, nodes: int, run_id: str) -> bool:
        """Make the burst node pool of ``cloud`` have ``nodes`` nodes (Terraform in
        production). Idempotent: returns whether anything changed."""
        if nodes < 0:
            raise ValueError(f"nodes: {nodes} < 0")
        require(self, Capability.NODE_POOLS)
        return await self._scale_pool(cloud, nodes, run_id)

    async def state_locks(self) -> list[StateLock]:
        """Read-only: the lock of each Terraform state this driver plans and applies against,
        one per root configuration (:func:`drivers.terraform.state.read_lock`); empty for a
        driver with no Terraform state (the lab's). Quick (no Terraform run, no backend
        call); never raises: a state that cannot be read is an ``unknown`` entry saying why."""
        return await self._state_locks()

    async def _state_locks(self) -> list[StateLock]:
        return []  # no Terraform state

    async def _pool_nodes(self, cloud: Cloud) -> int:
        return 0  # never called without the node_pools capability

    async def _scale_pool(self, cloud: Cloud, nodes: int, run_id: str) -> bool:
        return False  # never called without the node_pools capability

    @abc.abstractmethod
    async def _prepare(self, cloud: Cloud, run_id: str, nodes: int | None) -> bool: ...
    @abc.abstractmethod
    async def _release(self, cloud: Cloud, run_id: str) -> bool: ...
    @abc.abstractmethod
    async def _repoint_apps(self, apps: list[str], db: AppDatabase) -> bool: ...
