"""The chaos matrix of failover (issue 9, "Never two writers"), on the real lab.

One lab for the module, reset before each case. Each case runs the writer, a worker process
(restarted whenever it dies) and the 20 ms sampler, and ends in ``assert_one_writer``: exactly
one writable server, DNS at it, one promotion at most, no acknowledged write lost that the
evidence does not count, the evidence folder in place.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from temporalio.client import Client

from activities.sites import promote_checked
from drivers.lazy import Drivers
from drivers.postgres.timelines import archived_timelines
from hybridops.constants import Runbook
from hybridops.contracts.base import RunStatus, TargetChoice
from hybridops.contracts.failover import FailoverInput
from hybridops.contracts.sites import FenceToken, PromoteInput
from hybridops.errors import PromotionIncomplete
from hybridops.lab import Lab
from hybridops.lsn import parse_lsn
from tests.conftest import lab_inventory
from tests.lab.chaos import (
    FAILOVER_STEPS,
    PROMOTE_MARK,
    assert_case,
    assert_starting_topology,
    finish,
    freeze_dns,
    highest_timeline,
    interrupt_promotion,
    kept_worker,
    reboot_site,
    start_run,
    thaw_dns,
    writable_now,
    writes_on,
)
from tests.lab.helpers import ask, assert_one_writer, can_write, eventually, role, timeline
from tests.lab.sampler import WritableSampler


async def _mark(lab: Lab, site: str) -> bool:
    return (lab.data_dir(site) / PROMOTE_MARK).exists()


@pytest.mark.parametrize("step", FAILOVER_STEPS)
async def test_worker_killed_after_each_step(client: Client, module_lab: Lab, step: str) -> None:
    """The worker SIGKILLs itself once ``step`` did its work, before the result is recorded;
    a new worker takes the run over and finishes it."""
    lab = module_lab
    assert_starting_topology(lab)
    inv = lab_inventory(lab, faults={step: "crash"})
    with WritableSampler(lab) as sampler:
        async with kept_worker(lab) as workers:
            lab.start_writer()
            await writes_on(lab, "onprem")
            start_tl = highest_timeline(lab)
            at = lab.break_site("onprem")
            handle = await start_run(
                client,
                inv,
                Runbook.FAILOVER,
                FailoverInput(target=TargetChoice.AZURE, incident_started_at=at),
            )
            run = await finish(handle, Runbook.FAILOVER)
    assert workers.deaths == [-9], f"the crash fault after {step} fired {workers.deaths}"
    out = assert_case(lab, inv, [run], start_tl, sampler)
    assert out is not None and out.writer == "azure"


async def test_dns_api_unreachable_during_cutover(client: Client, module_lab: Lab) -> None:
    """Moto is frozen (SIGSTOP) from the promotion to a few seconds past the cutover's start,
    then let go: the cutover waits for it, the record lands, moto's zone is intact."""
    lab = module_lab
    assert_starting_topology(lab)
    # Repointing is held 1 s, so the freeze that follows the promotion mark covers the cutover.
    inv = lab_inventory(lab, faults={"repoint_apps": "delay:1"})
    with WritableSampler(lab) as sampler:
        async with kept_worker(lab):
            lab.start_writer()
            await writes_on(lab, "onprem")
            start_tl = highest_timeline(lab)
            at = lab.break_site("onprem")
            handle = await start_run(
                client,
                inv,
                Runbook.FAILOVER,
                FailoverInput(target=TargetChoice.AZURE, incident_started_at=at),
            )
            await eventually("the promotion", lambda: _mark(lab, "azure"), timeout=90)
            freeze_dns(lab)
            try:
                await asyncio.sleep(4)  # the outage itself, not a wait for a condition
                ended_while_frozen = (await handle.describe()).close_time is not None
            finally:
                thaw_dns(lab)
            run = await finish(handle, Runbook.FAILOVER)
    assert not ended_while_frozen, "the run ended while the DNS API was unreachable"
    assert_case(lab, inv, [run], start_tl, sampler)
    dns = [s for s in run.result["steps"] if s["name"] == "dns_cutover"]
    assert len(dns) == 1 and dns[0]["outcome"] == "changed", dns


async def test_target_killed_during_promotion(client: Client, module_lab: Lab) -> None:
    """The target's server is killed the moment the promotion begins (its mark is written just
    before ``pg_promote``) and started again a moment later, as a rebooted host. Where the kill
    lands is a race: before the standby left recovery (it comes back a standby and is promoted
    again), after the timeline switch (promoted), or in between, where it comes back writable on
    its old timeline. Never may the run succeed with a writer on the old timeline: it ends
    promoted exactly once (the interrupted promotion repaired), or holds naming the site and
    the timeline (the cases below make each ending deterministically)."""
    lab = module_lab
    assert_starting_topology(lab)
    inv = lab_inventory(lab)
    with WritableSampler(lab) as sampler:
        async with kept_worker(lab):
            lab.start_writer()
            await writes_on(lab, "onprem")
            start_tl = highest_timeline(lab)
            at = lab.break_site("onprem")
            handle = await start_run(
                client,
                inv,
                Runbook.FAILOVER,
                FailoverInput(target=TargetChoice.AZURE, incident_started_at=at),
            )
            await eventually("the promotion to begin", lambda: _mark(lab, "azure"), timeout=90)
            lab.kill_site("azure")
            await asyncio.sleep(1)  # the host is down for a moment
            await asyncio.to_thread(reboot_site, lab, "azure")
            run = await finish(handle, Runbook.FAILOVER)
    if run.status == "succeeded":
        out = assert_case(lab, inv, [run], start_tl, sampler)
        assert out is not None and out.writer == "azure" and out.timeline == start_tl + 1
    else:
        # Held: azure writable on the old timeline, which the run refused to call promoted.
        assert "PromotionIncomplete" in run.error or "did not complete" in run.error, run.error
        assert f"azure is writable on timeline {start_tl}" in run.error, run.error
        assert writable_now(lab) == ("azure",) and timeline(lab, "azure") == start_tl


async def _interrupted(lab: Lab, run_id: str) -> tuple[Drivers, FenceToken]:
    """onprem fenced by ``run_id`` (stopped cleanly: its fencing proof), azure caught up past
    it and then left in the window of an interrupted promotion (:func:`interrupt_promotion`):
    writable on timeline 1 with ``run_id``'s promote mark."""
    drivers = Drivers(lab_inventory(lab))
    fenced = await drivers.postgres.fence("onprem", run_id)
    token = fenced.token
    assert token is not None and token.timeline == 1

    async def replayed() -> bool:
        row = ask(lab, "azure", "SELECT pg_last_wal_replay_lsn()::text")
        return row is not None and (parse_lsn(str(row[0])) or 0) > (parse_lsn(token.lsn) or 0)

    await eventually("azure past onprem's shutdown checkpoint", replayed)
    await asyncio.to_thread(interrupt_promotion, lab, "azure", run_id)
    assert writable_now(lab) == ("azure",) and timeline(lab, "azure") == 1
    assert not (lab.archive / "00000002.history").exists()
    return drivers, token


def _promote_input(run_id: str, token: FenceToken) -> PromoteInput:
    return PromoteInput(site="azure", run_id=run_id, fence=token, max_catchup_s=30)


async def test_interrupted_promotion_is_repaired_when_nothing_was_written(module_lab: Lab) -> None:
    """Writable on its old timeline with this run's mark, and nothing written since it left
    recovery: the promote step puts it back to a standby and promotes it onto a new timeline,
    above every one the archive holds; a retry of the step proves it again and changes nothing."""
    lab = module_lab
    assert_starting_topology(lab)
    run_id = "test-interrupted-repaired"
    drivers, token = await _interrupted(lab, run_id)
    state = await drivers.postgres.assess("azure")
    assert state.writable and state.timeline == 1 and state.promoted_by is None, state

    result = await promote_checked(drivers.postgres, drivers.topology, _promote_input(run_id, token))

    assert result.changed and result.timeline == 2 == timeline(lab, "azure"), result
    assert "interrupted promotion repaired" in result.detail and "timeline 2 is new" in result.detail
    history = (lab.data_dir("azure") / "pg_wal" / "00000002.history").read_bytes()
    assert archived_timelines(lab.archive) == {2: history}
    state = await drivers.postgres.assess("azure")
    assert state.promoted_by == run_id and state.timeline == 2

    again = await promote_checked(drivers.postgres, drivers.topology, _promote_input(run_id, token))
    assert not again.changed and again.timeline == 2 and f"already promoted by {run_id}" in again.detail

    await asyncio.to_thread(lab.point_dns, "azure")  # the runbook's cutover, after the promotion
    assert assert_one_writer(lab) == "azure" and role(lab, "gcp") == "standby"


async def test_interrupted_promotion_that_took_writes_holds(module_lab: Lab) -> None:
    """The same window, but a client wrote on azure while it was writable on timeline 1: the
    step cannot prove the server is the standby it was, so it holds (fatal, naming the site
    and the timeline) and leaves azure as it found it; the run's mark is never taken as proof."""
    lab = module_lab
    assert_starting_topology(lab)
    run_id = "test-interrupted-held"
    drivers, token = await _interrupted(lab, run_id)
    assert can_write(lab, "azure")  # a client's write on the old primary's timeline

    with pytest.raises(PromotionIncomplete) as err:
        await promote_checked(drivers.postgres, drivers.topology, _promote_input(run_id, token))

    assert not err.value.retryable and err.value.ids == {"site": "azure", "timeline": 1}
    message = str(err.value)
    assert "azure is writable on timeline 1, the timeline it was a standby on" in message
    assert "collide" in message and "it took writes" in message, message
    assert writable_now(lab) == ("azure",) and timeline(lab, "azure") == 1, "left as found"
    assert archived_timelines(lab.archive) == {}
    state = await drivers.postgres.assess("azure")
    assert state.promoted_by is None

    # A stranger's run finds the same server: held too, never "already primary".
    with pytest.raises(PromotionIncomplete):
        await promote_checked(drivers.postgres, drivers.topology, _promote_input("another-run", token))
    assert writable_now(lab) == ("azure",) and timeline(lab, "azure") == 1


async def test_stale_dns(client: Client, module_lab: Lab) -> None:
    """Issue 9's incident: a lab failed over to azure, onprem back up (fenced, as ``lab up``
    starts it), DNS pointed back at onprem by hand, then a failover with ``{}``. DNS is only
    where clients go: the run must not promote a second primary."""
    lab = module_lab
    assert_starting_topology(lab)
    inv = lab_inventory(lab)
    with WritableSampler(lab) as sampler:
        async with kept_worker(lab):
            lab.start_writer()
            await writes_on(lab, "onprem")
            at = lab.break_site("onprem")
            first = await finish(
                await start_run(
                    client,
                    inv,
                    Runbook.FAILOVER,
                    FailoverInput(target=TargetChoice.AZURE, incident_started_at=at),
                ),
                Runbook.FAILOVER,
            )
            assert first.status == RunStatus.SUCCEEDED, first.error
            await writes_on(lab, "azure")
            await asyncio.to_thread(reboot_site, lab, "onprem")
            await asyncio.to_thread(lab.point_dns, "onprem")
            start_tl = highest_timeline(lab)
            second = await finish(await start_run(client, inv, Runbook.FAILOVER, {}), Runbook.FAILOVER)
    assert_case(lab, inv, [first, second], start_tl, sampler, promoted=None, succeeded=False)


async def test_two_writable_at_the_start(client: Client, module_lab: Lab) -> None:
    """A split brain before the run: azure promoted by hand while onprem still serves. The
    run must end with exactly one writable server, DNS at it, no acknowledged write lost
    uncounted; the staged pair is the only overlap the sampler tolerates, until the run ends."""
    lab = module_lab
    assert_starting_topology(lab)
    inv = lab_inventory(lab)
    async with kept_worker(lab):
        lab.start_writer()
        await writes_on(lab, "onprem")
        with psycopg.connect(
            host=lab.ip("azure"), port=lab.ports.pg, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("SELECT pg_promote(true, 60)")
        assert set(writable_now(lab)) == {"onprem", "azure"}
        start_tl = highest_timeline(lab)
        with WritableSampler(lab) as sampler:
            run = await finish(await start_run(client, inv, Runbook.FAILOVER, {}), Runbook.FAILOVER)
            ended = datetime.now(UTC)
            await asyncio.sleep(0.2)  # a few more instants after the end: they must show one writer
    assert_case(
        lab,
        inv,
        [run],
        start_tl,
        sampler,
        promoted=None,
        succeeded=False,
        premise=frozenset({"onprem", "azure"}),
        until=ended,
    )


async def test_control_worker_and_target_agent_killed_together(client: Client, module_lab: Lab) -> None:
    """Both the control worker and the target's agent die the moment the promotion begins
    (the agent's step in flight, the workflow's worker with it); the keeper brings both back,
    and the run completes with one promotion, one writer, DNS at it."""
    lab = module_lab
    assert_starting_topology(lab)
    inv = lab_inventory(lab)
    with WritableSampler(lab) as sampler:
        async with kept_worker(lab) as workers:
            lab.start_writer()
            await writes_on(lab, "onprem")
            start_tl = highest_timeline(lab)
            at = lab.break_site("onprem")
            handle = await start_run(
                client,
                inv,
                Runbook.FAILOVER,
                FailoverInput(target=TargetChoice.AZURE, incident_started_at=at),
            )
            await eventually("the promotion to begin", lambda: _mark(lab, "azure"), timeout=90)
            workers.kill()
            workers.kill("azure")
            run = await finish(handle, Runbook.FAILOVER)
    assert sorted(workers.deaths) == [-9, -9], workers.deaths
    out = assert_case(lab, inv, [run], start_tl, sampler)
    assert out is not None and out.writer == "azure"
