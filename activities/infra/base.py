"""The infrastructure driver interface: target clusters and the apps that run on them."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from hybridops.models import Cloud


@dataclass(frozen=True)
class AppDatabase:
    """Where an app (NetBox and others) finds its database. No credentials: apps keep
    their own secret references."""

    site: str
    host: str
    port: int
    dbname: str


class InfraDriver(abc.ABC):
    """Brings target clusters up and down, and tells apps where their database is."""

    async def prepare(self, cloud: Cloud, run_id: str) -> bool:
        """Make the target cluster in ``cloud`` ready to take the apps. Idempotent: returns
        whether anything changed. Records ``run_id`` so that :meth:`release` undoes only
        what this run did. In production this may take many minutes (Terraform)."""
        return await self._prepare(cloud, run_id)

    async def release(self, cloud: Cloud, run_id: str) -> bool:
        """Compensation of :meth:`prepare`: undo what ``run_id`` prepared, nothing else."""
        return await self._release(cloud, run_id)

    async def repoint_apps(self, apps: list[str], db: AppDatabase) -> bool:
        """Make every app in ``apps`` use ``db``. Idempotent: returns whether any changed."""
        return await self._repoint_apps(apps, db)

    @abc.abstractmethod
    async def _prepare(self, cloud: Cloud, run_id: str) -> bool: ...
    @abc.abstractmethod
    async def _release(self, cloud: Cloud, run_id: str) -> bool: ...
    @abc.abstractmethod
    async def _repoint_apps(self, apps: list[str], db: AppDatabase) -> bool: ...
