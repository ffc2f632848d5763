"""The burst runbook's activities: the node pool (infra driver), the workloads (GitOps), the
traffic share (weighted DNS), the on-prem load, the evidence."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.common import Activities, step_activity, write_run_evidence
from drivers.dns import DnsDriver
from drivers.infra import InfraDriver
from drivers.lazy import Drivers
from hybridops import metrics
from hybridops.capabilities import Capability
from hybridops.constants import ActivityName
from hybridops.contracts.base import EvidenceResult
from hybridops.contracts.burst import (
    BurstEvidenceInput,
    BurstPlan,
    BurstPlanInput,
    DeployWorkloadsInput,
    DeployWorkloadsResult,
    LoadInput,
    LoadResult,
    PoolInput,
    PoolResult,
    RemoveWorkloadsInput,
    RemoveWorkloadsResult,
    WeightsInput,
    WeightsResult,
)
from hybridops.contracts.sites import SiteRef, Topology
from hybridops.errors import ConfigError, HybridOpsError
from hybridops.inventory import Inventory


class BurstActivities(Activities):
    def __init__(
        self,
        inventory: Inventory,
        drivers: Drivers | None = None,
        client: Client | None = None,
        gitops: Any = None,
    ) -> None:
        super().__init__(inventory, drivers, client)
        self.gitops = gitops
        """The GitOps driver (drivers/gitops); ``None`` when the inventory names none."""

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.plan_burst,
            self.scale_pool,
            self.deploy_workloads,
            self.remove_workloads,
            self.set_traffic,
            self.read_load,
            self.write_burst_evidence,
        ]

    @property
    def infra(self) -> InfraDriver:
        return self.drivers.infra

    @property
    def dns(self) -> DnsDriver:
        return self.drivers.dns

    @step_activity(ActivityName.PLAN_BURST)
    async def plan_burst(self, inp: BurstPlanInput) -> BurstPlan:
        """Read-only: what the burst works with. A DNS driver without weighted records fails
        it here, before the first change (DESIGN.md rule 14)."""
        inv, b = self.inventory, self.inventory.burst
        self.dns.require(Capability.WEIGHTED)
        home = next(n for n, s in inv.sites.items() if s.cloud is None)
        return BurstPlan(
            placement=inv.placement.value,
            queue_suffix=inv.task_queue_suffix,
            sites=[SiteRef(name=n, cloud=s.cloud) for n, s in inv.sites.items()],
            home=home,
            apps=b.apps,
            record=b.record or f"app.{inv.dns.zone}",
            ttl=b.ttl,
            endpoints={n: b.endpoints.get(n, s.host) for n, s in inv.sites.items()},
            price_per_node_hour=b.price_per_node_hour,
            budget_cap=b.budget_cap,
            topology=await self._topology(),
        )

    async def _topology(self) -> Topology | None:
        """The database's topology, from the servers; None when this worker cannot read
        them (no database driver configured)."""
        try:
            topology = self.drivers.topology
        except HybridOpsError:
            return None
        return await topology.read()

    @step_activity(ActivityName.SCALE_POOL)
    async def scale_pool(self, inp: PoolInput) -> PoolResult:
        """Set the cloud's burst pool to ``nodes`` (reads only when None)."""
        before = await self.infra.pool_nodes(inp.cloud)
        if inp.nodes is None:
            return PoolResult(nodes_before=before, nodes=before, detail=f"{before} nodes")
        changed = await self.infra.scale_pool(inp.cloud, inp.nodes, inp.run_id)
        metrics.BURST_NODES.labels(inp.cloud.value).set(inp.nodes)
        return PoolResult(
            nodes_before=before,
            nodes=inp.nodes,
            changed=changed,
            detail=f"{inp.cloud.value} pool {before} -> {inp.nodes}",
        )

    def _gitops(self) -> Any:
        """The GitOps driver, built on first use: a worker that never bursts needs none."""
        if self.gitops is None:
            settings = getattr(self.inventory, "gitops", None)
            if settings is None:
                raise ConfigError("gitops: no GitOps driver configured (inventory key 'gitops')")
            from drivers.gitops import make_gitops_driver

            self.gitops = make_gitops_driver(settings)
        return self.gitops

    @step_activity(ActivityName.DEPLOY_WORKLOADS)
    async def deploy_workloads(self, inp: DeployWorkloadsInput) -> DeployWorkloadsResult:
        res = await self._gitops().deploy(inp.apps, inp.cloud.value, inp.run_id)
        return DeployWorkloadsResult(
            changed=res.changed, detail=f"{inp.apps} on {inp.cloud.value} at {res.revision}"
        )

    @step_activity(ActivityName.REMOVE_WORKLOADS)
    async def remove_workloads(self, inp: RemoveWorkloadsInput) -> RemoveWorkloadsResult:
        res = await self._gitops().undeploy(inp.apps, inp.cloud.value, inp.run_id)
        return RemoveWorkloadsResult(
            changed=res.changed, detail=f"{inp.apps} off {inp.cloud.value} at {res.revision}"
        )

    @step_activity(ActivityName.SET_TRAFFIC)
    async def set_traffic(self, inp: WeightsInput) -> WeightsResult:
        before = await self.dns.get_weights(inp.record)
        changed = await self.dns.ensure_weights(inp.record, "A", inp.weights, inp.ttl)
        total = sum(w for _, w in inp.weights.values())
        for site, (_, weight) in inp.weights.items():
            metrics.BURST_TRAFFIC_SHARE.labels(site).set(weight / total if total else 0.0)
        shares = ", ".join(f"{k} {w}" for k, (_, w) in sorted(inp.weights.items()))
        return WeightsResult(before=before, changed=changed, detail=f"{inp.record}: {shares}")

    @step_activity(ActivityName.READ_LOAD)
    async def read_load(self, inp: LoadInput) -> LoadResult:
        """The on-prem load (0..1): the lab's file, or the inventory's PromQL."""
        b = self.inventory.burst
        if b.load_file is not None:
            path = Path(b.load_file)
            if not path.exists():
                return LoadResult(load=None, detail=f"{path} does not exist")
            data = json.loads(await asyncio.to_thread(path.read_text))
            return LoadResult(load=float(data["load"]), detail="lab load file")
        if b.load_query:
            from drivers.signals import make_signal_drivers
            from hybridops.inventory import SignalsKind

            source = next(
                (s for s in self.inventory.signals.sources if s.driver == SignalsKind.PROMETHEUS), None
            )
            if source is None:
                raise ConfigError("burst.load_query: needs a prometheus source in signals.sources")
            from datetime import UTC, datetime

            from hybridops.contracts.decision import SignalName

            driver = make_signal_drivers(self.inventory.signals.model_copy(update={"sources": [source]}))[0]
            driver.source = source.model_copy(update={"queries": {SignalName.LOAD: b.load_query}})
            reading = await driver.collect([SiteRef(name="load")], datetime.now(UTC))
            sig = reading.values.get("load", {}).get(SignalName.LOAD)
            return LoadResult(
                load=None if sig is None else sig.value, detail="; ".join(reading.errors) or "prometheus"
            )
        raise ConfigError("burst.load_file or burst.load_query: one is needed to read the load")

    @step_activity(ActivityName.WRITE_BURST_EVIDENCE)
    async def write_burst_evidence(self, inp: BurstEvidenceInput) -> EvidenceResult:
        return await write_run_evidence(self.client, Path(self.inventory.output_dir), inp.result)
