"""The failover runbook's activities: methods of one class, handed its drivers.

Each activity reads the world and converges it (DESIGN.md rule 2); each is declared with
:func:`activities.common.step_activity`, which maps domain errors onto retryable or
non-retryable ``ApplicationError``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities.common import step_activity, write_run_evidence
from activities.dns import DnsDriver
from activities.infra import AppDatabase, InfraDriver
from activities.postgres import PostgresDriver
from hybridops import evidence
from hybridops.errors import HybridOpsError, PreconditionFailed
from hybridops.inventory import Inventory
from hybridops.models import (
    ActivityResult,
    AssessInput,
    AssessResult,
    CheckpointInput,
    DnsCutoverInput,
    DnsResult,
    EvidenceInput,
    EvidenceResult,
    FenceResult,
    FollowInput,
    PlanInput,
    PlanResult,
    PrepareResult,
    PromoteInput,
    PromoteResult,
    RepointAppsInput,
    RpoInput,
    RpoMeasure,
    RpoResult,
    SiteInput,
    SiteRef,
    VerifyInput,
    VerifyResult,
)
from hybridops.workload import read_ledger


class FailoverActivities:
    """Activities of ``FailoverWorkflow``. Built once per worker with its drivers."""

    def __init__(
        self,
        inventory: Inventory,
        postgres: PostgresDriver,
        dns: DnsDriver,
        infra: InfraDriver,
        client: Client | None = None,
    ) -> None:
        self.inventory = inventory
        self.pg = postgres
        self.dns = dns
        self.infra = infra
        self.client = client
        self.faults = inventory.faults

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of the runbook, for worker registration."""
        return [
            self.plan_failover,
            self.assess_sites,
            self.prepare_target,
            self.release_target,
            self.fence_primary,
            self.unfence_primary,
            self.promote_standby,
            self.repoint_apps,
            self.dns_cutover,
            self.verify_writes,
            self.measure_rpo,
            self.follow_primary,
            self.write_evidence,
            self.checkpoint,
        ]

    @step_activity("checkpoint")
    async def checkpoint(self, inp: CheckpointInput) -> ActivityResult:
        """Does nothing: its scheduling is what makes the run so far durable (see
        workflows/steps.py:checkpoint)."""
        return ActivityResult(detail=inp.name)

    @step_activity("plan_failover")
    async def plan_failover(self, inp: PlanInput) -> PlanResult:
        """Read-only: the sites, and which one clients use now (where DNS points)."""
        inv = self.inventory
        record = await self.dns.get_record(inv.dns.record, "A")
        if record is None or not record.values:
            raise PreconditionFailed(f"DNS record {inv.dns.record} does not exist", record=inv.dns.record)
        current = inv.site_by_host(record.values[0])
        if current is None:
            raise PreconditionFailed(
                f"DNS record {inv.dns.record} points at {record.values[0]}, which is no site"
                " of the inventory",
                record=inv.dns.record,
            )
        return PlanResult(
            sites=[SiteRef(name=n, cloud=s.cloud) for n, s in inv.sites.items()],
            dns_record=inv.dns.record,
            current_primary=current,
            placement=inv.placement.value,
            queue_suffix=inv.task_queue_suffix,
        )

    @step_activity("assess_sites")
    async def assess_sites(self, inp: AssessInput) -> AssessResult:
        """Read-only: the state of each site's server, assessed concurrently."""
        states = await asyncio.gather(*(self.pg.assess(s) for s in inp.sites))
        return AssessResult(states=list(states))

    @step_activity("prepare_target")
    async def prepare_target(self, inp: SiteInput) -> PrepareResult:
        """Make the target cloud's cluster ready, and check its standby can be promoted."""
        cloud = self.inventory.site(inp.site).cloud
        if cloud is None:
            raise PreconditionFailed("the target must be a cloud site", site=inp.site)
        state = await self.pg.assess(inp.site)
        if state.reachable and state.in_recovery is False and state.promoted_by == inp.run_id:
            # This run got further before a worker died; converged already.
            return PrepareResult(changed=False, detail=f"already promoted by {inp.run_id}")
        if not state.reachable or not state.in_recovery or state.fenced:
            raise PreconditionFailed(
                f"target is not a healthy standby (reachable={state.reachable},"
                f" in_recovery={state.in_recovery}, fenced={state.fenced})",
                site=inp.site,
            )
        changed = await self.infra.prepare(cloud, inp.run_id)
        return PrepareResult(changed=changed, detail=f"{cloud.value} cluster ready")

    @step_activity("release_target")
    async def release_target(self, inp: SiteInput) -> ActivityResult:
        """Compensation of ``prepare_target``."""
        cloud = self.inventory.site(inp.site).cloud
        changed = cloud is not None and await self.infra.release(cloud, inp.run_id)
        return ActivityResult(changed=changed)

    @step_activity("fence_primary")
    async def fence_primary(self, inp: SiteInput) -> FenceResult:
        return await self.pg.fence(inp.site, inp.run_id)

    @step_activity("unfence_primary")
    async def unfence_primary(self, inp: SiteInput) -> ActivityResult:
        """Compensation of ``fence_primary``."""
        return ActivityResult(changed=await self.pg.unfence(inp.site))

    @step_activity("promote_standby")
    async def promote_standby(self, inp: PromoteInput) -> PromoteResult:
        return await self.pg.promote(inp.site, inp.wait_for_lsn, inp.max_catchup_s, inp.run_id)

    @step_activity("repoint_apps")
    async def repoint_apps(self, inp: RepointAppsInput) -> ActivityResult:
        site = self.inventory.site(inp.site)
        db = AppDatabase(site=inp.site, host=site.host, port=site.port, dbname=site.dbname)
        changed = await self.infra.repoint_apps(self.inventory.apps, db)
        return ActivityResult(changed=changed, detail=f"{len(self.inventory.apps)} app(s) -> {inp.site}")

    @step_activity("dns_cutover")
    async def dns_cutover(self, inp: DnsCutoverInput) -> DnsResult:
        dns = self.inventory.dns
        host = self.inventory.site(inp.site).host
        change = await self.dns.ensure_record(dns.record, "A", [host], dns.ttl)
        previous = change.previous.values[0] if change.previous and change.previous.values else None
        return DnsResult(changed=change.changed, record=dns.record, value=host, previous=previous)

    @step_activity("verify_writes")
    async def verify_writes(self, inp: VerifyInput) -> VerifyResult:
        """Write through the DNS name until a write lands on ``site``, or the deadline."""
        want = self.inventory.site(inp.site).host
        deadline = time.monotonic() + inp.deadline_s
        last_error = "no attempt"
        while time.monotonic() < deadline:
            record = await self.dns.get_record(self.inventory.dns.record, "A")
            host = record.values[0] if record and record.values else None
            if host is None or host != want:
                last_error = f"{self.inventory.dns.record} resolves to {host}, not {want}"
            else:
                try:
                    at = await self.pg.write_probe(
                        host,
                        inp.site,
                        self.inventory.workload.probe_table,
                        activity.info().workflow_id or "" if activity.in_activity() else "script",
                    )
                    return VerifyResult(
                        resolved_to=host,
                        first_write_at=at,
                        detail=f"probe write committed on {inp.site}",
                    )
                except HybridOpsError as err:
                    last_error = str(err)
            if activity.in_activity():
                activity.heartbeat(last_error)
            await asyncio.sleep(0.05)
        raise PreconditionFailed(f"no write succeeded through the DNS name: {last_error}", site=inp.site)

    @step_activity("measure_rpo")
    async def measure_rpo(self, inp: RpoInput) -> RpoResult:
        """Acknowledged writes missing on the new primary, from the writer's ledger when the
        inventory has one; otherwise the replication lag at decision time (an estimate)."""
        ledger = self.inventory.workload.ledger
        if ledger is None or not Path(ledger).exists():
            return RpoResult(rpo=RpoMeasure(seconds=inp.fallback_lag_seconds, method="lag"))
        # Every write another server acknowledged must be on the new primary, whenever it was
        # acknowledged: a write acknowledged in the instant between the incident's timestamp
        # and the host's death counts too (a time filter here once hid such a loss).
        acked = [a for a in read_ledger(Path(ledger)) if a.site != inp.site]
        if not acked:
            return RpoResult(rpo=RpoMeasure(transactions_lost=0, seconds=0.0, method="ledger"))
        # Writes are sequential; only the recent tail can be missing. Look at the last 10 000.
        tail = acked[-10000:]
        present = await self.pg.surviving(inp.site, self.inventory.workload.table, [a.seq for a in tail])
        lost = [a for a in tail if a.seq not in present]
        seconds: float | None = 0.0
        if lost:
            # The window of acknowledged writes lost: from the last one kept before the first
            # loss to the last one lost (unknown when none was kept before it in the tail: a
            # contract holds no nan).
            kept_before = [a.acked_at for a in tail if a.seq in present and a.acked_at <= lost[0].acked_at]
            seconds = round((lost[-1].acked_at - kept_before[-1]).total_seconds(), 3) if kept_before else None
        return RpoResult(rpo=RpoMeasure(transactions_lost=len(lost), seconds=seconds, method="ledger"))

    @step_activity("follow_primary")
    async def follow_primary(self, inp: FollowInput) -> ActivityResult:
        """Point the remaining standbys at the new primary."""
        changed = False
        for site in inp.sites:
            changed |= await self.pg.follow(site, inp.new_primary)
        return ActivityResult(changed=changed, detail=f"{inp.sites} follow {inp.new_primary}")

    @step_activity("write_evidence")
    async def write_evidence(self, inp: EvidenceInput) -> EvidenceResult:
        """Write the run's evidence folder; the history is fetched from the server."""
        return await write_run_evidence(
            self.client, Path(self.inventory.output_dir), inp.result, evidence.render_report(inp.result)
        )
