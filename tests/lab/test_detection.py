"""Detection end to end on real monitoring: the site agents (processes of their own, as on
their hosts) write to the primary four times a second; the global Prometheus scrapes their
views; HybridOpsPrimaryNotTakingWrites fires when most of them have seen the primary take no
write past the policy's 2 s blip tolerance; the alert receiver starts the failover.

A frozen primary (every process SIGSTOPped: its port still accepts connections) is told from a
2 s blip; a hung one is failed over and its server isolated (killed, so it cannot wake and
write); a dead one is failed over, and the run's RTO is the writer's own outage; a dead host
(its agent gone too) is failed over on its two peers' views. One agent cut off from the
primary (its link's relay partitioned: hybridops/lab/link.py) is one view: it starts nothing,
whatever the length of the cut, and reaches people as HybridOpsAgentCutOff."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime

from temporalio.client import Client, WorkflowExecution

from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.base import RunStatus
from hybridops.contracts.decision import SignalName
from hybridops.contracts.failover import FailoverResult
from hybridops.errors import HybridOpsError
from hybridops.lab import Lab
from hybridops.policy import load_policy
from hybridops.workload import read_ledger
from tests.conftest import lab_inventory
from tests.lab.helpers import agents_watching, assert_one_writer, dns_points_at, eventually, role

ROUTE_PREFIX = "alert-primary-not-taking-writes-"


async def runs(client: Client, lab: Lab) -> list[WorkflowExecution]:
    queue = lab_inventory(lab).queue(TaskQueue.CONTROL)
    query = f'WorkflowType = "{WorkflowType.FAILOVER.value}" AND TaskQueue = "{queue}"'
    return [w async for w in client.list_workflows(query)]


async def watched(client: Client, lab: Lab, run_workers: object) -> None:
    """Control workers in this process; the agents (the observers) and the writer as the lab's
    processes; back once every agent sees onprem take its writes, and the writer writes."""
    await run_workers(client, lab_inventory(lab), agents=False)  # type: ignore[operator]
    lab.start_writer()
    await agents_watching(lab)
    await eventually("the writer's first writes", lambda: _acked(lab, 50), timeout=30)


async def _acked(lab: Lab, n: int) -> bool:
    return lab.ledger.exists() and len(read_ledger(lab.ledger)) >= n


async def the_one_run(client: Client, lab: Lab) -> FailoverResult:
    started = await eventually("an alert-started failover", lambda: runs(client, lab), timeout=60)
    assert len(started) == 1, [w.id for w in started]
    assert started[0].id.startswith(ROUTE_PREFIX), started[0].id
    result = await client.get_workflow_handle(started[0].id, result_type=FailoverResult).result()
    assert result.input.requested_by == "alert:primary-not-taking-writes"
    # The run's reason records what each agent that answered saw when the alert fired.
    assert "the agents' views:" in result.input.reason and "sees onprem silent" in result.input.reason
    return result


async def test_a_two_second_freeze_starts_nothing(
    client: Client, monitored_lab: Lab, run_workers: object
) -> None:
    lab = monitored_lab
    await watched(client, lab, run_workers)
    lab.freeze_site("onprem")
    began = time.monotonic()
    try:
        await asyncio.sleep(2.0)  # the fault's length, not a wait for a condition
    finally:
        lab.thaw_site("onprem")
    frozen = time.monotonic() - began
    # Long enough for an alert to have fired and a run to have started, had the blip counted:
    # the agents' views, a scrape and an evaluation (250 ms each), the receiver.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        assert await runs(client, lab) == [], f"a {frozen:.2f} s freeze started a failover"
        await asyncio.sleep(0.25)
    assert role(lab, "onprem") == "primary" and dns_points_at(lab) == "onprem"
    assert assert_one_writer(lab) == "onprem"


async def test_a_hung_primary_is_failed_over_once_and_its_server_isolated(
    client: Client, monitored_lab: Lab, run_workers: object
) -> None:
    lab = monitored_lab
    await watched(client, lab, run_workers)
    lab.freeze_site("onprem")
    try:
        result = await the_one_run(client, lab)
    finally:
        try:
            lab.thaw_site("onprem")
        except HybridOpsError:
            pass  # isolated: its server was killed, as it must be
    assert result.status == RunStatus.SUCCEEDED, result.error
    # The assessment gave the frozen server the policy's confirm deadline, not the connect
    # timeout: the agents had found it silent already.
    assert result.topology is not None
    frozen = result.topology.state("onprem")
    assert frozen is not None and not frozen.reachable, frozen
    deadline = load_policy(lab.inventory().policy).detection.confirm_timeout_s
    assert f"no answer within {deadline:g} s" in frozen.error, frozen.error
    assert result.fence is not None and result.fence.isolated, result.fence
    assert "isolated at once" in result.fence.detail, result.fence.detail
    # Isolated at once, beside its agent's mark (which cannot connect to a frozen server):
    # the isolation did not wait for the mark, the promotion waited for the isolation, and
    # the mark ended before the run did.
    step = {s.name: s for s in result.steps}
    isolate, mark, promote = step["isolate_old_primary"], step["fence_old_primary"], step["promote"]
    assert mark.ended_at is not None and isolate.ended_at is not None
    assert isolate.started_at < mark.ended_at, (isolate, mark)
    assert promote.started_at >= isolate.ended_at, (isolate, promote)
    assert role(lab, "onprem") == "down"
    # Isolated as a host is: no process of the frozen server is left to wake and write, or to
    # hold a client's connection hung (the writer moves to the new primary).
    target = result.target

    async def writer_moved() -> bool:
        return any(a.site == target for a in read_ledger(lab.ledger))

    await eventually("the writer's first write on the new primary", writer_moved)
    assert [w.id for w in await runs(client, lab)] == [result.workflow_id]
    writer = assert_one_writer(lab)
    assert writer == result.target and dns_points_at(lab) == writer


async def test_a_killed_primary_is_failed_over_once_and_the_rto_is_the_writers_outage(
    client: Client, monitored_lab: Lab, run_workers: object
) -> None:
    lab = monitored_lab
    await watched(client, lab, run_workers)
    lab.kill_site("onprem")
    result = await the_one_run(client, lab)
    assert result.status == RunStatus.SUCCEEDED, result.error
    target = result.target
    # The target's own agent agreed: it saw onprem take none of its writes past the tolerance.
    assert result.signals is not None and target is not None
    own = next(c for c in result.signals.candidates if c.site == target).values[SignalName.PRIMARY_SILENT_S]
    assert own.value > load_policy(lab.inventory().policy).detection.blip_tolerance_s, own

    async def back_on_target() -> bool:
        return any(a.site == target for a in read_ledger(lab.ledger))

    await eventually("the writer's first write on the new primary", back_on_target)
    acks = read_ledger(lab.ledger)
    last = max(a.acked_at for a in acks if a.site == "onprem")
    back = min(a.acked_at for a in acks if a.site == target)
    outage = (back - last).total_seconds()
    assert result.rto_seconds is not None and "ledger" in result.rto_counted_from, result.rto_counted_from
    assert abs(result.rto_seconds - outage) <= 0.1, (result.rto_seconds, outage)
    print(f"kill: writer outage {outage:.3f} s, run RTO {result.rto_seconds:.3f} s, {result.rto_split}")
    assert [w.id for w in await runs(client, lab)] == [result.workflow_id]
    writer = assert_one_writer(lab)
    assert writer == result.target and dns_points_at(lab) == writer


async def test_a_dead_host_is_failed_over_once_its_agent_counted_in_the_quorum(
    client: Client, monitored_lab: Lab, run_workers: object
) -> None:
    """The primary's host dies, its agent with it: the two agents left are two of the three the
    liveness job scrapes (the dead one's ``up`` is 0, its view gone), a majority: one run. The
    quorum counts every agent, not only those that answer (one view is never a majority)."""
    lab = monitored_lab
    await watched(client, lab, run_workers)
    lab.break_site("onprem")
    result = await the_one_run(client, lab)
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert "onprem sees" not in result.input.reason, result.input.reason
    assert "azure sees onprem" in result.input.reason and "gcp sees onprem" in result.input.reason
    assert lab.monitoring.query_scalar('count(up{job="liveness"})') == 3
    assert lab.monitoring.query_scalar('count(up{job="liveness"} == 1)') == 2
    assert [w.id for w in await runs(client, lab)] == [result.workflow_id]
    writer = assert_one_writer(lab)
    assert writer == result.target and dns_points_at(lab) == writer


def view(lab: Lab, observer: str, of: str = "onprem") -> float | None:
    """``observer``'s view in the global Prometheus: how long ``of`` has taken none of its writes."""
    expr = f'hybridops_liveness_primary_silent_seconds{{observer="{observer}", site="{of}"}}'
    return lab.monitoring.query_scalar(expr)


def cut_off(lab: Lab, of: str = "onprem") -> list[str]:
    """The agents Alertmanager says are cut off from ``of`` (HybridOpsAgentCutOff, active)."""
    flt = urllib.parse.urlencode({"filter": 'alertname="HybridOpsAgentCutOff"', "active": "true"})
    with urllib.request.urlopen(f"{lab.monitoring.alertmanager_url}/api/v2/alerts?{flt}", timeout=2) as resp:
        alerts = json.loads(resp.read())
    return sorted(a["labels"]["observer"] for a in alerts if a["labels"].get("site") == of)


async def test_one_agent_cut_off_from_the_primary_starts_no_failover(
    client: Client, monitored_lab: Lab, run_workers: object
) -> None:
    lab = monitored_lab
    await watched(client, lab, run_workers)
    tolerance = load_policy(lab.inventory().policy).detection.blip_tolerance_s
    cut_at = datetime.now(UTC)
    assert lab.cut("azure", "onprem") == ["azure>onprem"]
    began = time.monotonic()
    try:
        # The finding, where detection keeps the observers' views: azure sees onprem silent past
        # what it tolerates (its agent logs it too); onprem's and gcp's agents see it take writes.
        threshold = lab.monitoring.query_scalar('hybridops_liveness_tolerance_seconds{observer="azure"}')
        assert threshold is not None and threshold > tolerance, threshold

        async def azure_sees_onprem_silent() -> bool:
            silent = await asyncio.to_thread(view, lab, "azure")
            return silent is not None and silent > threshold

        await eventually("azure's view: onprem silent past tolerance", azure_sees_onprem_silent, timeout=30)
        # Three times the tolerance cut off at least: time enough for an alert to fire and a run
        # to start many times over, had one view counted (detection takes about 2.5 s after a
        # kill); and until the finding reaches people (HybridOpsAgentCutOff, after 5 s).
        found: list[str] = []
        while time.monotonic() - began < 3 * tolerance or not found:
            assert time.monotonic() - began < 60, "no HybridOpsAgentCutOff in Alertmanager within 60 s"
            assert await runs(client, lab) == [], "one agent cut off from the primary started a failover"
            for observer in ("onprem", "gcp"):
                seen = await asyncio.to_thread(view, lab, observer)
                assert seen is not None and seen < 1, (observer, seen)
            found = found or await asyncio.to_thread(cut_off, lab)
            await asyncio.sleep(0.25)
        assert found == ["azure"], found
        silent = await asyncio.to_thread(view, lab, "azure")
        assert silent is not None and silent > 2 * tolerance, silent
        log = lab.log("agent-azure").read_text()
        assert "liveness: azure sees onprem take no write for" in log
    finally:
        assert lab.heal() == []
    healed_at = datetime.now(UTC)

    async def azure_sees_onprem_again() -> bool:
        silent = await asyncio.to_thread(view, lab, "azure")
        return silent is not None and silent < 1

    await eventually("azure's view: onprem taking its writes again", azure_sees_onprem_again, timeout=30)
    assert await runs(client, lab) == [], "a failover started"
    # The writer, which never went through the cut link, kept writing to onprem all along.
    during = [a for a in read_ledger(lab.ledger) if cut_at <= a.acked_at <= healed_at]
    assert during and {a.site for a in during} == {"onprem"}
    gaps = [(b.acked_at - a.acked_at).total_seconds() for a, b in itertools.pairwise(during)]
    assert max(gaps, default=0.0) < tolerance, max(gaps)
    assert role(lab, "onprem") == "primary" and dns_points_at(lab) == "onprem"
    assert assert_one_writer(lab) == "onprem"
