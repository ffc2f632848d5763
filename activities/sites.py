"""The site steps every runbook uses: plan, assess, prepare and release a target, fence and
unfence, promote, repoint the apps, DNS cutover, verify, RPO, follow, checkpoint.

Failover and failback (and the runbooks after them) schedule these by the same activity names:
they do the same thing in both directions. Methods of one class, handed its drivers (built on
first use: a worker builds only those its queue's steps call, drivers/lazy.py). Each
activity reads the world and converges it (DESIGN.md rule 2); each is declared with
:func:`activities.common.step_activity`, which maps domain errors onto retryable or
non-retryable ``ApplicationError``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity

from activities.common import Activities, result_of, step_activity
from drivers.dns import DnsDriver
from drivers.dns.resolve import ClientResolver, ResolveError
from drivers.infra import AppDatabase, InfraDriver, IsolateTarget
from drivers.postgres import PostgresDriver
from drivers.postgres.timelines import archived_timelines
from drivers.progress import report as report_progress
from drivers.topology import TopologyReader, refuse
from hybridops import metrics
from hybridops.constants import ActivityName
from hybridops.contracts.base import CheckpointInput, CheckpointResult, RuleViolation
from hybridops.contracts.sites import (
    AssessInput,
    AssessResult,
    CheckResult,
    DnsCutoverInput,
    DnsResult,
    FenceInput,
    FenceResult,
    FollowInput,
    FollowResult,
    IsolateInput,
    IsolateResult,
    PickBackupInput,
    PickBackupResult,
    PlanInput,
    PlanResult,
    PrepareInput,
    PrepareResult,
    PromoteInput,
    PromoteResult,
    ReleaseInput,
    ReleaseResult,
    RepointAppsInput,
    RepointAppsResult,
    RestorePrimaryInput,
    RestorePrimaryResult,
    RpoInput,
    RpoMeasure,
    RpoMethod,
    RpoResult,
    SiteInput,
    SiteState,
    Topology,
    UnfenceInput,
    UnfenceResult,
    VerifyInput,
    VerifyResult,
)
from hybridops.decision import plan_of
from hybridops.errors import DatabaseUnreachable, HybridOpsError, PreconditionFailed
from hybridops.inventory import AppsVia, Placement
from hybridops.lsn import format_lsn, parse_lsn
from hybridops.policy import load_policy
from hybridops.topology import Rule, check_dns, check_promotion
from hybridops.workload import Ack, read_ledger_from


def _sized(nodes: int | None) -> str:
    return "" if nodes is None else f", its pool at {nodes} nodes or more (policy failover.nodes)"


WRITER_ALIVE_WINDOW = timedelta(seconds=60)
"""A ledger whose last write elsewhere is older than this before the incident has no live
writer behind it: nobody waits for its first write on the new primary."""


def check_promotion_on(seen: Topology, inp: PromoteInput) -> None:
    """The safety rules of promoting ``inp.site`` on the servers in ``seen``, minus the
    overridden ones; raises ``SafetyRuleViolated`` naming each. A site this run fenced that
    does not answer counts as fenced: its mark may be unreadable from here (a dead host)."""
    fenced = set(inp.fenced)
    seen.servers = [
        s.model_copy(update={"fenced": True}) if s.site in fenced and not s.reachable else s
        for s in seen.servers
    ]
    violations = check_promotion(seen, inp.site, inp.fence, inp.overrides)
    if violations:
        raise refuse(violations, f"promotion of {inp.site}")


def promoted_by_run(state: SiteState | None, run_id: str) -> bool:
    """Whether ``state`` is a server this run promoted already (a retry after a crash)."""
    return (
        state is not None
        and state.reachable
        and state.in_recovery is False
        and bool(run_id)
        and state.promoted_by == run_id
    )


async def restore_rules(topology: TopologyReader, inp: RestorePrimaryInput) -> None:
    """The safety rules of restoring ``inp.site`` as the primary: those of a promotion for
    every other server (none writable; every silent one fenced: a server this run fenced that
    does not answer counts as fenced). The target's own server is replaced, so its role and
    timeline do not count."""
    seen = await topology.read()
    fenced = set(inp.fenced)
    seen.servers = [
        s.model_copy(update={"fenced": True}) if s.site in fenced and not s.reachable else s
        for s in seen.servers
        if s.site != inp.site
    ]
    violations = check_promotion(seen, inp.site, None, inp.overrides)
    if violations:
        raise refuse(violations, f"restore of {inp.site} as the primary")


async def promote_checked(
    pg: PostgresDriver, topology: TopologyReader, inp: PromoteInput, agent: bool = False
) -> PromoteResult:
    """Every promotion (failover's, failback's) goes through here: the safety rules, then the
    driver's promotion, waiting strictly past the fencing proof's LSN when there is one.

    A target this run promoted before a crash skips the rules (its new timeline would break
    ``not_forked``), never the driver: "promoted by this run" is read from the server only once
    its timeline moved past the one it promoted from, and the driver proves that again, with
    the WAL archive, or holds (``PromotionIncomplete``: writable on its old timeline). A site
    ``agent`` sees its own server only: the rules across sites ran right before, as the step's
    guard (workflows/steps.py); here it checks its own server against the fencing proof."""
    # One reading for both: the target's server as the rules' topology has it (one round
    # trip to the target fewer before pg_promote, on the RTO's path).
    seen = await topology.read([inp.site] if agent else None, dns=False)
    if not promoted_by_run(seen.state(inp.site), inp.run_id):
        check_promotion_on(seen, inp)
    wait_for = inp.wait_for_lsn
    if inp.fence is not None:
        # The replay position is the end of the last record replayed: past the shutdown
        # checkpoint means one byte beyond its start.
        wait_for = format_lsn((parse_lsn(inp.fence.lsn) or 0) + 1)
    promoted = await pg.promote(
        inp.site, wait_for, inp.max_catchup_s, inp.run_id, allow_fenced=inp.allow_fenced
    )
    return result_of(PromoteResult, promoted)


class SiteActivities(Activities):
    """The site steps, built once per worker; its drivers are built when a step first needs
    them, so a worker serving one queue holds only that queue's credentials."""

    @property
    def pg(self) -> PostgresDriver:
        return self.drivers.postgres

    @property
    def dns(self) -> DnsDriver:
        return self.drivers.dns

    @property
    def infra(self) -> InfraDriver:
        return self.drivers.infra

    @property
    def topology(self) -> TopologyReader:
        """The topology from the servers and DNS."""
        return self.drivers.topology

    def all(self) -> list[Callable[..., Any]]:
        """Every site step, for worker registration."""
        return [
            self.checkpoint,
            self.plan_sites,
            self.assess_sites,
            self.prepare_target,
            self.release_target,
            self.fence_primary,
            self.unfence_primary,
            self.promote_standby,
            self.probe_agent,
            self.pick_backup,
            self.check_restore,
            self.restore_primary,
            self.check_promotion,
            self.check_unfence,
            self.isolate_site,
            self.repoint_apps,
            self.dns_cutover,
            self.verify_writes,
            self.measure_rpo,
            self.follow_primary,
        ]

    @step_activity(ActivityName.CHECKPOINT)
    async def checkpoint(self, inp: CheckpointInput) -> CheckpointResult:
        """Does nothing: its scheduling is what makes the run so far durable (see
        workflows/steps.py:checkpoint)."""
        return CheckpointResult(detail=inp.name)

    @step_activity(ActivityName.PLAN_SITES)
    async def plan_sites(self, inp: PlanInput) -> PlanResult:
        """Read-only: the sites, and where clients go now (where DNS points). Who the primary
        is, the servers say (the assess step): a DNS record that is missing or points at no
        site is a finding there, not a reason to refuse a failover."""
        inv = self.inventory
        plan = plan_of(inv, await self.drivers.dns_value(), load_policy(inv.policy))
        if inv.placement == Placement.QUEUES:
            plan.site_queues = {site: inv.site_queue(site) for site in inv.sites}
        plan.capabilities, plan.drivers = self.drivers.offered()
        return plan

    @step_activity(ActivityName.ASSESS_SITES)
    async def assess_sites(self, inp: AssessInput) -> AssessResult:
        """Read-only: the state of each site's server, assessed concurrently (a server that
        answers sets its fenced gauge as read: marks an agent made or retired show here too)."""
        states = await self.drivers.assess(inp.sites, inp.deadlines)
        for state in states:
            if state.reachable:
                metrics.SITE_FENCED.labels(state.site).set(1 if state.fenced else 0)
        return AssessResult(states=states)

    @step_activity(ActivityName.PREPARE_TARGET)
    async def prepare_target(self, inp: PrepareInput) -> PrepareResult:
        """Make the target cloud's cluster ready, and check its standby can be promoted."""
        cloud = self.inventory.site(inp.site).cloud
        if cloud is None:
            raise PreconditionFailed("the target must be a cloud site", site=inp.site)
        state = await self.pg.assess(inp.site)
        if state.reachable and state.in_recovery is False and state.promoted_by == inp.run_id:
            # This run got further before a worker died; converged already.
            return PrepareResult(changed=False, detail=f"already promoted by {inp.run_id}")
        if inp.restore:
            # Its server is replaced by the restore: only a primary may not be.
            if state.reachable and state.in_recovery is False:
                raise PreconditionFailed(
                    "target accepts writes: a restore does not replace a primary", site=inp.site
                )
            changed = await self.infra.prepare(cloud, inp.run_id, inp.nodes)
            return PrepareResult(
                changed=changed, detail=f"{cloud.value} cluster ready for a restore{_sized(inp.nodes)}"
            )
        if not state.reachable or not state.in_recovery or state.fenced:
            raise PreconditionFailed(
                f"target is not a healthy standby (reachable={state.reachable},"
                f" in_recovery={state.in_recovery}, fenced={state.fenced})",
                site=inp.site,
            )
        changed = await self.infra.prepare(cloud, inp.run_id, inp.nodes)
        return PrepareResult(changed=changed, detail=f"{cloud.value} cluster ready{_sized(inp.nodes)}")

    @step_activity(ActivityName.RELEASE_TARGET)
    async def release_target(self, inp: ReleaseInput) -> ReleaseResult:
        """Compensation of ``prepare_target``."""
        cloud = self.inventory.site(inp.site).cloud
        changed = cloud is not None and await self.infra.release(cloud, inp.run_id)
        return ReleaseResult(changed=changed)

    @step_activity(ActivityName.FENCE_PRIMARY)
    async def fence_primary(self, inp: FenceInput) -> FenceResult:
        """Fence the server; when it did not answer, the fence is unverified (only its data
        directory is marked) and the infra driver is asked to isolate it for good: here when
        this process holds every driver, else by the run's own ``isolate_site`` step (a site
        agent holds no infra credentials)."""
        result = result_of(FenceResult, await self.pg.fence(inp.site, inp.run_id))
        if result.token is None and self.drivers.local_sites is None:
            result.isolated = await self._isolate(inp.site, inp.run_id)
            result.detail += f"; {result.isolated}"
        metrics.SITE_FENCED.labels(inp.site).set(1)
        return result

    async def _isolate(self, name: str, run_id: str) -> str:
        site = self.inventory.site(name)
        return await self.infra.isolate(
            IsolateTarget(site=name, host=site.host, data_dir=site.data_dir), run_id
        )

    @step_activity(ActivityName.ISOLATE_SITE)
    async def isolate_site(self, inp: IsolateInput) -> IsolateResult:
        """Cut off a site that could not be fenced (its agent did not answer: the host is
        down) through the infra driver's isolate capability, or say why it cannot be."""
        isolated = await self._isolate(inp.site, inp.run_id)
        metrics.SITE_FENCED.labels(inp.site).set(1)
        return IsolateResult(isolated=isolated, changed=True, detail=f"{inp.reason}; {isolated}".lstrip("; "))

    @step_activity(ActivityName.CHECK_PROMOTION)
    async def check_promotion(self, inp: PromoteInput) -> CheckResult:
        """Read-only: the safety rules of a promotion, on every server (the guard of the
        agent's promote step). Converged already (this run promoted it): nothing to check."""
        # One reading of every server (the target's among them), not the target's first, and
        # not of DNS: no promotion rule looks at it (hybridops/topology.py:check_promotion).
        seen = await self.topology.read(dns=False)
        if promoted_by_run(seen.state(inp.site), inp.run_id):
            return CheckResult(detail=f"already promoted by {inp.run_id}")
        check_promotion_on(seen, inp)
        return CheckResult(detail=f"{inp.site} may be promoted")

    @step_activity(ActivityName.CHECK_UNFENCE)
    async def check_unfence(self, inp: UnfenceInput) -> CheckResult:
        """Read-only: the guard of the agent's unfence (no other server accepts writes)."""
        await self._unfence_rules(inp.site)
        return CheckResult(detail=f"{inp.site} may be unfenced")

    async def _unfence_rules(self, site: str) -> None:
        topology = await self.topology.read()
        others = [w for w in topology.writable if w != site]
        state = topology.state(site)
        if others and (state is None or state.fenced or not state.reachable):
            raise refuse(
                [
                    RuleViolation(
                        rule=Rule.SINGLE_WRITER, site=w, detail=f"{w} accepts writes: {site} stays fenced"
                    )
                    for w in others
                ],
                f"unfence {site}",
            )

    @step_activity(ActivityName.UNFENCE_PRIMARY)
    async def unfence_primary(self, inp: UnfenceInput) -> UnfenceResult:
        """Compensation of ``fence_primary``: never while another server accepts writes
        (unfencing would make two writers; the fence then stays, for a human). A site agent
        sees its own server only: its guard step checked the others right before."""
        if not self.drivers.is_agent():
            await self._unfence_rules(inp.site)
        result = UnfenceResult(changed=await self.pg.unfence(inp.site))
        metrics.SITE_FENCED.labels(inp.site).set(0)
        return result

    @step_activity(ActivityName.PROMOTE_STANDBY)
    async def promote_standby(self, inp: PromoteInput) -> PromoteResult:
        """Irreversible. Checked right before: the safety rules (one writer after it, every
        role known, the same cluster, not forked), unless an approver overrode one; then the
        target waits to replay past the old primary's fencing proof."""
        return await promote_checked(self.pg, self.topology, inp, agent=self.drivers.is_agent())

    @step_activity(ActivityName.PROBE_AGENT)
    async def probe_agent(self, inp: SiteInput) -> CheckResult:
        """Read-only, and does nothing: that a site's agent took it says its host is up (a
        restore-mode failover asks before it picks where to restore; a dead host's queue has
        no poller, and the step's schedule-to-start timeout says so)."""
        return CheckResult(detail=f"{inp.site}'s agent answered")

    @step_activity(ActivityName.PICK_BACKUP)
    async def pick_backup(self, inp: PickBackupInput) -> PickBackupResult:
        """Read-only: the backup a restore-mode failover will restore (``LATEST``: the newest
        that finished before the asked time), and the WAL archive's timelines now. A time in
        the future or before the backup is refused here, naming the input's field, before the
        run changes anything."""
        info = await self.drivers.backup.pick(
            inp.backup, inp.target_time, datetime.now(UTC), "restore_backup", "restore_to"
        )
        archive = self.inventory.backup.wal_archive
        timelines = sorted(await asyncio.to_thread(archived_timelines, archive)) if archive else []
        when = info.finished_at.isoformat() if info.finished_at else "?"
        return PickBackupResult(
            backup=info,
            archived_timelines=timelines,
            detail=f"{info.name} (of {info.site or '?'}, finished {when})"
            + (f", to {inp.target_time.isoformat()}" if inp.target_time else ", all archived WAL"),
        )

    @step_activity(ActivityName.CHECK_RESTORE)
    async def check_restore(self, inp: RestorePrimaryInput) -> CheckResult:
        """Read-only: the safety rules of a restore on every server (the guard of the agent's
        ``restore_primary``). Done already (this run restored it): nothing to check."""
        state = await self.pg.assess(inp.site)
        if state.reachable and state.in_recovery is False and state.promoted_by == inp.run_id and inp.run_id:
            return CheckResult(detail=f"already restored by {inp.run_id}")
        await restore_rules(self.topology, inp)
        return CheckResult(detail=f"{inp.site} may be restored")

    @step_activity(ActivityName.RESTORE_PRIMARY)
    async def restore_primary(self, inp: RestorePrimaryInput) -> RestorePrimaryResult:
        """Irreversible: restore mode's point of no return. The safety rules (no other server
        writable, every silent one fenced), then the target's server replaced by the backup
        and started as the primary on a new timeline (drivers/postgres/restore.py). A site
        agent sees its own server only: its guard step checked the others right before."""
        state = await self.pg.assess(inp.site)
        ours = state.reachable and state.in_recovery is False and bool(inp.run_id)
        if not (ours and state.promoted_by == inp.run_id) and not self.drivers.is_agent():
            await restore_rules(self.topology, inp)
        restored = await self.pg.restore_primary(
            inp.site, self.drivers.backup, inp.backup, inp.target_time, inp.run_id
        )
        info = next((b for b in await self.drivers.backup.list() if b.name == restored.backup), None)
        return result_of(
            RestorePrimaryResult,
            restored,
            backup_started_at=info.started_at if info else None,
            backup_finished_at=info.finished_at if info else None,
            backup_site=info.site if info else None,
            backup_end_lsn=info.end_lsn if info else None,
        )

    @step_activity(ActivityName.REPOINT_APPS)
    async def repoint_apps(self, inp: RepointAppsInput) -> RepointAppsResult:
        site = self.inventory.site(inp.site)
        db = AppDatabase(site=inp.site, host=site.host, port=site.port, dbname=site.dbname)
        apps = self.inventory.apps
        if self.inventory.app_database.via == AppsVia.GITOPS and apps:
            from drivers.gitops.appdb import AppDatabaseRepointer

            repointer = AppDatabaseRepointer(
                self.inventory.app_database, self.inventory.gitops, self.drivers.gitops
            )
            committed, synced = await repointer.repoint(apps, db, inp.run_id or "unknown")
            at = synced.revision[:12] if synced.revision else "?"
            return RepointAppsResult(
                changed=synced.changed,
                via=AppsVia.GITOPS.value,
                revision=synced.revision,
                detail=f"{len(apps)} app(s) -> {inp.site} through GitOps at {at}"
                + ("" if committed else " (overlays already committed)"),
            )
        changed = await self.infra.repoint_apps(apps, db)
        return RepointAppsResult(changed=changed, detail=f"{len(apps)} app(s) -> {inp.site}")

    @step_activity(ActivityName.DNS_CUTOVER)
    async def dns_cutover(self, inp: DnsCutoverInput) -> DnsResult:
        """Point the record at the site, once the servers confirm it is the one writer."""
        dns = self.inventory.dns
        host = self.inventory.site(inp.site).host
        # The servers, and the record as it is (for the change), read at once; a rule the
        # servers break is said before any DNS error.
        servers, read = await asyncio.gather(
            self.topology.read(dns=False), self.dns.get_record(dns.record, "A"), return_exceptions=True
        )
        if isinstance(servers, BaseException):
            raise servers
        violations = check_dns(servers, inp.site, inp.overrides)
        if violations:
            if all(v.rule == Rule.TARGET_WRITABLE for v in violations):
                # The new primary may be restarting (a host reboot): worth retrying.
                raise DatabaseUnreachable(violations[0].detail, site=inp.site)
            raise refuse(violations, f"DNS cutover to {inp.site}")
        if isinstance(read, BaseException):
            raise read
        change = await self.dns.ensure_record(dns.record, "A", [host], dns.ttl, read)
        previous = change.previous.values[0] if change.previous and change.previous.values else None
        return DnsResult(changed=change.changed, record=dns.record, value=host, previous=previous)

    @step_activity(ActivityName.VERIFY_WRITES)
    async def verify_writes(self, inp: VerifyInput) -> VerifyResult:
        """Write through the DNS name, resolved as a client resolves it (over the DNS protocol,
        :class:`~drivers.dns.resolve.ClientResolver`), until a write lands on ``site``, or the
        deadline."""
        want = self.inventory.site(inp.site).host
        name = self.inventory.dns.record
        try:
            resolver = ClientResolver(self.inventory.dns)
        except ResolveError as err:
            raise PreconditionFailed(str(err), site=inp.site) from None
        deadline = time.monotonic() + inp.deadline_s
        last_error = "no attempt"
        while time.monotonic() < deadline:
            try:
                host = await resolver.resolve()
            except ResolveError as err:
                host, last_error = None, str(err)
            else:
                if host != want:
                    last_error = f"{name} resolves to {host} ({resolver.how}), not {want}"
            if host == want:
                try:
                    at = await self.pg.write_probe(
                        host,
                        inp.site,
                        self.inventory.workload.probe_table,
                        activity.info().workflow_id or "",
                    )
                    return VerifyResult(
                        resolved_to=host,
                        resolved_via=resolver.how,
                        first_write_at=at,
                        detail=f"{name} resolved to {host} by {resolver.how}; "
                        f"probe write committed on {inp.site}",
                    )
                except HybridOpsError as err:
                    last_error = str(err)
            report_progress(last_error)
            await asyncio.sleep(0.05)
        raise PreconditionFailed(f"no write succeeded through the DNS name: {last_error}", site=inp.site)

    @step_activity(ActivityName.MEASURE_RPO)
    async def measure_rpo(self, inp: RpoInput) -> RpoResult:
        """Acknowledged writes missing on the new primary, from the writer's ledger when the
        inventory has one; otherwise the replication lag at decision time (an estimate)."""
        ledger = self.inventory.workload.ledger
        if ledger is None or not Path(ledger).exists():
            return RpoResult(rpo=RpoMeasure(seconds=inp.fallback_lag_seconds, method=RpoMethod.LAG))
        everything, offset = read_ledger_from(Path(ledger), 0)
        # Every write another server acknowledged must be on the new primary, whenever it was
        # acknowledged: a write acknowledged in the instant between the incident's timestamp
        # and the host's death counts too (a time filter here once hid such a loss).
        acked = [a for a in everything if a.site != inp.site]
        last_ack = acked[-1].acked_at if acked else None
        first_ack = await self._clients_back(inp, Path(ledger), everything, offset, last_ack)
        if not acked:
            return RpoResult(
                rpo=RpoMeasure(transactions_lost=0, seconds=0.0, method=RpoMethod.LEDGER),
                first_ack_at=first_ack,
            )
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
        return RpoResult(
            rpo=RpoMeasure(transactions_lost=len(lost), seconds=seconds, method=RpoMethod.LEDGER),
            last_ack_at=last_ack,
            first_ack_at=first_ack,
        )

    async def _clients_back(
        self, inp: RpoInput, ledger: Path, acks: list[Ack], offset: int, last_ack: datetime | None
    ) -> datetime | None:
        """The workload's first acknowledged write on the new primary after ``last_ack`` (the
        end of the outage its clients saw), waiting up to ``inp.clients_wait_s`` for it when
        the writer was alive at the incident; None when not seen."""
        deadline = time.monotonic() + inp.clients_wait_s
        alive = last_ack is not None and last_ack > inp.incident_started_at - WRITER_ALIVE_WINDOW
        while True:
            back = next(
                (a for a in acks if a.site == inp.site and (last_ack is None or a.acked_at > last_ack)), None
            )
            if back is not None:
                return back.acked_at
            if not alive or time.monotonic() > deadline:
                return None
            report_progress("waiting for the workload's first write on the new primary")
            await asyncio.sleep(0.02)
            acks, offset = read_ledger_from(ledger, offset)

    @step_activity(ActivityName.FOLLOW_PRIMARY)
    async def follow_primary(self, inp: FollowInput) -> FollowResult:
        """Point the remaining standbys at the new primary."""
        changed = False
        for site in inp.sites:
            changed |= await self.pg.follow(site, inp.new_primary)
        return FollowResult(changed=changed, detail=f"{inp.sites} follow {inp.new_primary}")
