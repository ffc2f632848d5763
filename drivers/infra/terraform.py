"""The ``terraform`` infrastructure driver: a cloud's burst node pool is the ``node_count`` of
its root configuration (``infra/terraform/<target>``), planned, checked and applied through the
Terraform runner (drivers/terraform), which streams progress into heartbeats and maps
locks, authentication failures and unexpected deletions to clear errors.

Scaling in deletes nodes by design, so only the pool's node addresses may be deleted; a plan
that would delete anything else (the cluster, the network) is refused before it is applied.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from drivers.infra.base import AppDatabase, InfraDriver, run_key
from drivers.terraform import TerraformRunner
from drivers.terraform.state import LockState, StateLock, read_lock
from hybridops.capabilities import Capability
from hybridops.contracts.base import Cloud
from hybridops.errors import ConfigError
from hybridops.inventory import InfraSettings

POOL_NODES = ("*node_pool*", "terraform_data.node[*]")
"""Addresses a scale-in may delete: the pool's nodes (cloud node pools are resized in place)."""


class TerraformInfraDriver(InfraDriver):
    # No isolate yet: cutting off an on-prem host needs its power or network controller,
    # which no module here drives; an unreachable old primary's fence stays unverified.
    # No repoint_apps: apps are repointed through GitOps (their database setting in the GitOps
    # repository), which this driver does not do; a runbook that needs it refuses before it starts.
    capabilities = frozenset({Capability.PREPARE_CLUSTER, Capability.NODE_POOLS})

    def __init__(self, settings: InfraSettings) -> None:
        self.tf = settings.terraform
        root = self.tf.config_root or Path(__file__).resolve().parents[2] / "infra" / "terraform"
        if not root.is_dir():
            raise ConfigError(f"infra.terraform.config_root: {root} is not a directory")
        if self.tf.work_root is None:
            raise ConfigError("infra.terraform.work_root: required by infra driver 'terraform'")
        self.config_root, self.work_root = root, self.tf.work_root

    def _runner(self, cloud: Cloud) -> TerraformRunner:
        target = self.tf.targets.get(cloud.value)
        if target is None:
            raise ConfigError(f"infra.terraform.targets: no root configuration for {cloud.value}")
        return TerraformRunner.for_target(
            self.config_root,
            target,
            self.work_root,
            workspace=self.tf.workspace,
            binary=self.tf.binary,
            secret_env=self.tf.secret_env,
            env=self.tf.env,
            backend_config={**self.tf.backend_config, **self.tf.target_backend_config.get(target, {})},
            allow_delete=POOL_NODES,
        )

    def _variables(self, cloud: Cloud) -> dict[str, str]:
        """The variables of ``cloud``'s root: the shared ones, then its own."""
        target = self.tf.targets.get(cloud.value, "")
        return {**self.tf.variables, **self.tf.target_variables.get(target, {})}

    async def _pool_nodes(self, cloud: Cloud) -> int:
        tf = self._runner(cloud)
        await tf.prepare()
        return int((await tf.output()).get("node_count", 0) or 0)

    async def _scale_pool(self, cloud: Cloud, nodes: int, run_id: str) -> bool:
        tf = self._runner(cloud)
        await tf.prepare()
        plan = await tf.plan({**self._variables(cloud), "node_count": nodes, "run_id": run_id})
        if plan.changes == 0:
            return False
        await tf.apply(plan)
        return True

    def _sized(self, cloud: Cloud, run_id: str) -> Path:
        """The record of the pool's size before ``run_id`` scaled it up: in the work root, on
        the worker's disk, written before the apply, so a compensation after a crash finds it."""
        target = self.tf.targets.get(cloud.value, cloud.value)
        return self.work_root / "prepared" / target / f"{run_key(run_id)}.json"

    async def _prepare(self, cloud: Cloud, run_id: str, nodes: int | None) -> bool:
        """Converge the target's configuration (network, cluster) with its pool at its current
        size, or scaled up to ``nodes``: one plan, checked, applied with Terraform's progress
        as the step's heartbeat. The size before is recorded first, for :meth:`_release`."""
        tf = self._runner(cloud)
        await tf.prepare()
        current = int((await tf.output()).get("node_count", 0) or 0)
        record = self._sized(cloud, run_id)
        want = current if nodes is None else max(nodes, current)
        if want != current and not record.exists():
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"nodes_before": current, "run_id": run_id}) + "\n")
        plan = await tf.plan({**self._variables(cloud), "node_count": want, "run_id": run_id})
        if plan.changes == 0:
            return False
        await tf.apply(plan)
        return True

    async def _release(self, cloud: Cloud, run_id: str) -> bool:
        """Back to the pool's size before ``run_id`` scaled it (when it did). Nothing else is
        ever destroyed: what prepare converged existed (as configured) before the run, or is
        the standing DR footprint."""
        record = self._sized(cloud, run_id)
        if not record.exists():
            return False
        before = int(json.loads(record.read_text())["nodes_before"])
        changed = await self._scale_pool(cloud, before, run_id)
        record.unlink()
        return changed

    async def _repoint_apps(self, apps: list[str], db: AppDatabase) -> bool:
        return False  # never called: no repoint_apps capability

    def _state_locks_sync(self) -> list[StateLock]:
        out = []
        for root in sorted(set(self.tf.targets.values())):
            backend = {**self.tf.backend_config, **self.tf.target_backend_config.get(root, {})}
            try:
                out.append(read_lock(self.config_root / root, self.tf.workspace, backend, name=root))
            except OSError as err:
                out.append(
                    StateLock(
                        root=root,
                        workspace=self.tf.workspace,
                        backend="?",
                        state=LockState.UNKNOWN,
                        note=f"cannot read the state: {err.strerror or err}",
                    )
                )
        return out

    async def _state_locks(self) -> list[StateLock]:
        """One per root configuration of ``infra.terraform.targets``, in the burst workspace."""
        return await asyncio.to_thread(self._state_locks_sync)
