"""The ``lab`` infrastructure driver: clusters and apps as files on this machine.

A target "cluster" is a state file (``clusters/<cloud>.json``) saying it is ready and which run
prepared it; an app's database setting is ``apps/<app>.json``, what a ConfigMap or a
Kubernetes secret reference would hold in production. Writes are atomic (rename).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import psutil

from drivers.infra.base import AppDatabase, InfraDriver, IsolateTarget, run_key
from hybridops.capabilities import Capability
from hybridops.contracts.base import Cloud
from hybridops.errors import ConfigError
from hybridops.inventory import InfraSettings


def _write_json(path: Path, data: dict[str, Any]) -> bool:
    """Write ``data`` unless the file already holds it; returns whether it wrote."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


class LabInfraDriver(InfraDriver):
    capabilities = frozenset(
        {
            Capability.PREPARE_CLUSTER,
            Capability.NODE_POOLS,
            Capability.ISOLATE,
            Capability.REPOINT_APPS,
        }
    )

    def __init__(self, settings: InfraSettings) -> None:
        if settings.apps_dir is None:
            raise ConfigError("infra.apps_dir: required by infra driver 'lab'")
        self.root = settings.apps_dir.parent
        self.apps_dir = settings.apps_dir

    def _cluster(self, cloud: Cloud) -> Path:
        return self.root / "clusters" / f"{cloud.value}.json"

    def _pool(self, cloud: Cloud) -> Path:
        return self.root / "clusters" / f"{cloud.value}-burst-pool.json"

    async def _pool_nodes(self, cloud: Cloud) -> int:
        path = self._pool(cloud)
        return int(json.loads(path.read_text())["nodes"]) if path.exists() else 0

    async def _scale_pool(self, cloud: Cloud, nodes: int, run_id: str) -> bool:
        if await self._pool_nodes(cloud) == nodes:
            return False
        return _write_json(self._pool(cloud), {"cloud": cloud.value, "nodes": nodes, "scaled_by": run_id})

    def _sized(self, cloud: Cloud, run_id: str) -> Path:
        """The record of the pool's size before ``run_id`` scaled it up (its compensation's)."""
        return self.root / "clusters" / f"{cloud.value}-sized-by-{run_key(run_id)}.json"

    async def _prepare(self, cloud: Cloud, run_id: str, nodes: int | None) -> bool:
        changed = False
        if nodes is not None:
            before = await self._pool_nodes(cloud)
            record = self._sized(cloud, run_id)
            if nodes > before or record.exists():
                # The size before, recorded first and once (a retry after a crash keeps it).
                if not record.exists():
                    _write_json(record, {"cloud": cloud.value, "nodes_before": before, "run_id": run_id})
                changed |= await self._scale_pool(cloud, max(nodes, before), run_id)
        path = self._cluster(cloud)
        if path.exists():
            return changed  # already ready (by an earlier run, or this one before a crash)
        return _write_json(path, {"cloud": cloud.value, "state": "ready", "prepared_by": run_id}) or changed

    async def _release(self, cloud: Cloud, run_id: str) -> bool:
        changed = False
        record = self._sized(cloud, run_id)
        if record.exists():
            before = int(json.loads(record.read_text())["nodes_before"])
            changed = await self._scale_pool(cloud, before, run_id)
            record.unlink()
        path = self._cluster(cloud)
        if not path.exists() or json.loads(path.read_text()).get("prepared_by") != run_id:
            return changed
        path.unlink()
        return True

    async def _repoint_apps(self, apps: list[str], db: AppDatabase) -> bool:
        changed = False
        for app in apps:
            changed |= _write_json(
                self.apps_dir / f"{app}.json",
                {
                    "app": app,
                    "database": {
                        "site": db.site,
                        "host": db.host,
                        "port": db.port,
                        "dbname": db.dbname,
                    },
                },
            )
        return changed

    async def _isolate(self, target: IsolateTarget, run_id: str) -> str:
        """The lab's "host" of a server is its process: a server that does not answer but
        still runs (hung, partitioned) is killed, so it cannot wake up and write; the record
        says the site is isolated. Its disk is put back only as a replica's: ``standby.signal``
        in its data directory (the fence mark's half that the agent of a dead host could not
        write), so a ``lab up`` brings it back read-only, never as a second writer."""
        killed = ""
        if target.data_dir is not None and (target.data_dir / "PG_VERSION").exists():
            signal_file = target.data_dir / "standby.signal"
            if not signal_file.exists():
                signal_file.write_text("")
        pid_file = target.data_dir / "postmaster.pid" if target.data_dir else None
        if pid_file is not None and pid_file.exists():
            try:
                pid = int(pid_file.read_text().split("\n", 1)[0])
                server = psutil.Process(pid)
                if server.status() != psutil.STATUS_ZOMBIE:
                    # Every process of it, as a host's power cut would: a frozen (SIGSTOPped)
                    # backend outlives its postmaster and keeps its client's connection hung.
                    for proc in [*server.children(recursive=True), server]:
                        try:
                            proc.send_signal(signal.SIGKILL)
                        except psutil.NoSuchProcess:
                            pass
                    killed = f"killed its hung server (pid {pid}) and its processes; "
            except (ValueError, psutil.Error, ProcessLookupError):
                pass
        _write_json(
            self.root / "clusters" / f"{target.site}-isolated.json",
            {"site": target.site, "host": target.host, "isolated_by": run_id},
        )
        return f"{killed}{target.site} isolated (lab)"
