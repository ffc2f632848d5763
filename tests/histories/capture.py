"""Capture the stored histories of ``tests/histories/`` from real runs on the lab.

Not collected by a normal ``pytest`` run (the file name does not match ``test_*.py``); run it
by name to refresh the histories after a deliberate workflow change (see README.md here)::

    HYBRIDOPS_TEST_NET=127.102 .venv/bin/pytest tests/histories/capture.py
    HYBRIDOPS_TEST_NET=127.102 .venv/bin/pytest tests/histories/capture.py -k approved

Each scenario is one test: it runs the runbook on a fresh lab with the session's dev server
and in-process workers, then writes ``<scenario>.history.json`` (the history as the server
exports it, the same JSON as an evidence folder's ``history.json`` or the UI's download).
The workflow id of each run is the file's stem, so a replay report names it.
``HYBRIDOPS_CAPTURE_DIR`` writes them elsewhere (to compare before replacing).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowHandle

from hybridops.constants import (
    ALERT_SIGNAL,
    APPROVE_UPDATE,
    PROGRESS_QUERY,
    RETRY_UPDATE,
    TaskQueue,
    WorkflowType,
)
from hybridops.contracts.base import AlertNotice, ApprovalInput, OperatorInput, Phase, Progress, TargetChoice
from hybridops.contracts.bootstrap import BootstrapInput
from hybridops.contracts.burst import BurstInput, BurstState
from hybridops.contracts.drill import DrillInput
from hybridops.contracts.failback import FailbackInput
from hybridops.contracts.failover import FailoverInput
from hybridops.inventory import Placement
from hybridops.lab import Lab
from hybridops.workload import read_ledger
from tests.conftest import lab_inventory
from tests.lab.helpers import can_write, eventually, promote_by_hand, start

HERE = Path(__file__).parent
REPO = HERE.parents[1]
SUFFIX = ".history.json"
REQUESTED_BY = "history-capture"


def capture_dir() -> Path:
    return Path(os.environ.get("HYBRIDOPS_CAPTURE_DIR", HERE))


def scrub(text: str, lab: Lab) -> str:
    """The history with the paths of the machine that captured it replaced: the lab's
    directory (evidence paths in activity results) by ``$LAB``, the virtualenv and the
    checkout (stack traces of failures) by ``$VENV`` and ``$REPO``. Payloads are base64 in
    the JSON, so those are rewritten decoded; replay never compares them."""
    paths = [(str(lab.root), "$LAB"), (sys.prefix, "$VENV"), (str(REPO), "$REPO")]

    def fix(raw: str) -> str:
        for path, name in paths:
            raw = raw.replace(path, name)
        return raw

    def payload(match: re.Match[str]) -> str:
        raw = base64.b64decode(match.group(1)).decode("utf-8", errors="surrogateescape")
        fixed = fix(raw)
        if fixed == raw:
            return match.group(0)
        return f'"data": "{base64.b64encode(fixed.encode("utf-8", errors="surrogateescape")).decode()}"'

    return fix(re.sub(r'"data": "([A-Za-z0-9+/=]+)"', payload, text))


async def save(handle: WorkflowHandle[Any, Any], lab: Lab) -> Path:
    """Wait for the run to close, then store its history as ``<workflow id>.history.json``."""
    try:
        await handle.result()
    except Exception:  # compensated, rejected and held runs fail by design
        pass
    history = await handle.fetch_history()
    out = capture_dir() / f"{handle.id}{SUFFIX}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(scrub(history.to_json(), lab) + "\n")
    return out


async def _waiting(handle: WorkflowHandle[Any, Any]) -> bool:
    prog = await handle.query(PROGRESS_QUERY, result_type=Progress)
    return prog.waiting_for_approval


def _input(**fields: Any) -> FailoverInput:
    return FailoverInput(requested_by=REQUESTED_BY, reason="history capture", **fields)


async def _after_kill(
    client: Client, lab: Lab, run_workers: Any, wf_id: str, target: TargetChoice, **changes: Any
) -> None:
    """onprem killed, then a failover to ``target`` on the lab's inventory with ``changes``."""
    inv = lab_inventory(lab, **changes)
    await run_workers(client, inv)
    at = lab.break_site("onprem")
    await save(await start(client, inv, _input(target=target, incident_started_at=at), wf_id), lab)


async def test_failover_succeeded(client: Client, lab: Lab, run_workers: Any) -> None:
    await _after_kill(client, lab, run_workers, "failover-succeeded", TargetChoice.AZURE)


async def test_failover_succeeded_on_queues(client: Client, lab: Lab, run_workers: Any) -> None:
    """Placement ``queues``: every step a queued activity (scheduled/started/completed)."""
    await _after_kill(
        client, lab, run_workers, "failover-succeeded-queues", TargetChoice.GCP, placement=Placement.QUEUES
    )


async def test_failover_steps_at_once(client: Client, lab: Lab, run_workers: Any) -> None:
    """The patches that run independent steps at once (issue 21): onprem killed, placement
    ``queues`` (signals with assess, readiness with the checkpoint, prepare with the fence)."""
    await _after_kill(
        client, lab, run_workers, "failover-steps-at-once", TargetChoice.GCP, placement=Placement.QUEUES
    )


async def test_failover_steps_at_once_colocated(client: Client, lab: Lab, run_workers: Any) -> None:
    """The same colocated: signals with assess and prepare with the fence as local activities
    at once; the readiness reading before the checkpoint, as before."""
    await _after_kill(
        client,
        lab,
        run_workers,
        "failover-steps-at-once-colocated",
        TargetChoice.AZURE,
        placement=Placement.COLOCATED,
    )


async def test_failover_readiness_with_assess(client: Client, lab: Lab, run_workers: Any) -> None:
    """Patch ``failover-readiness-with-assess``: onprem killed, placement ``queues``; the readiness
    reading (of a failover to each cloud site) with the assessment and the signals, and no
    ``decided`` checkpoint after the decision."""
    await _after_kill(
        client,
        lab,
        run_workers,
        "failover-readiness-with-assess",
        TargetChoice.GCP,
        placement=Placement.QUEUES,
    )


async def test_failover_compensated(client: Client, lab: Lab, run_workers: Any) -> None:
    inv = lab_inventory(lab, faults={"promote_standby": "fail"})
    await run_workers(client, inv)
    handle = await start(
        client, inv, _input(target=TargetChoice.AZURE, only_if_primary_down=False), "failover-compensated"
    )
    await save(handle, lab)


async def test_failover_approved(client: Client, lab: Lab, run_workers: Any) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    at = lab.break_site("onprem")
    handle = await start(
        client, inv, _input(require_approval=True, incident_started_at=at), "failover-approved"
    )
    await eventually("the approval gate", lambda: _waiting(handle))
    await handle.execute_update(APPROVE_UPDATE, ApprovalInput(by="alice", comment="go"))
    await save(handle, lab)


async def test_failover_rejected(client: Client, lab: Lab, run_workers: Any) -> None:
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    handle = await start(
        client, inv, _input(require_approval=True, only_if_primary_down=False), "failover-rejected"
    )
    await eventually("the approval gate", lambda: _waiting(handle))
    await handle.execute_update(APPROVE_UPDATE, ApprovalInput(by="carol", approve=False, comment="not now"))
    await save(handle, lab)


async def test_failover_policy_hold(client: Client, lab: Lab, run_workers: Any, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"constraints": {"min_credits": 10_000}, "budget": {"mode": "enforce"}}))
    inv = lab_inventory(lab, policy=policy)
    await run_workers(client, inv)
    lab.break_site("onprem")
    handle = await start(client, inv, _input(), "failover-policy-hold")
    await save(handle, lab)


async def _alert_started(
    client: Client,
    lab: Lab,
    run_workers: Any,
    inv: Any,
    wf_id: str,
    route: str,
    alertname: str,
    **fields: Any,
) -> WorkflowHandle[Any, Any]:
    """onprem's host killed, then a failover as the alert receiver starts it: ``route`` the
    receiver's route, ``alertname`` the alert that fired."""
    await run_workers(client, inv)
    at = lab.break_site("onprem")
    inp = FailoverInput(
        requested_by=f"alert:{route}",
        reason=f"alert {alertname}",
        incident_started_at=at,
        only_if_primary_down=True,
        **fields,
    )
    return await start(client, inv, inp, wf_id)


async def test_failover_alert_resolved(client: Client, lab: Lab, run_workers: Any) -> None:
    """As the alert receiver starts it, and the ``alert`` signal when the alert resolves."""
    inv = lab_inventory(lab)
    handle = await _alert_started(
        client,
        lab,
        run_workers,
        inv,
        "failover-alert-resolved",
        "postgres-primary-down",
        "PostgresPrimaryDown",
        await_alert_resolve_s=120,
    )

    async def resolving() -> bool:
        prog = await handle.query(PROGRESS_QUERY, result_type=Progress)
        return prog.phase == Phase.AWAIT_RESOLVE

    await eventually("the wait for the alert to resolve", resolving, timeout=60)
    notice = AlertNotice(status="resolved", received_at=datetime.now(UTC), alertnames=["PostgresPrimaryDown"])
    await handle.signal(ALERT_SIGNAL, notice)
    await save(handle, lab)


async def test_failover_isolated_at_once(client: Client, lab: Lab, run_workers: Any) -> None:
    """Patch failover-isolate-with-mark: as the detection alert starts it, onprem's host
    killed, placement ``queues``: onprem isolated at once while its agent's mark runs beside
    the promotion, and ends before the run does."""
    await _detected(client, lab, run_workers, "failover-isolated-at-once")


async def test_failover_plan_with_lease(client: Client, lab: Lab, run_workers: Any) -> None:
    """Patch failover-plan-with-lease: the same, the plan read while the lease is asked for."""
    await _detected(client, lab, run_workers, "failover-plan-with-lease")


async def _detected(client: Client, lab: Lab, run_workers: Any, wf_id: str) -> None:
    inv = lab_inventory(lab, placement=Placement.QUEUES)
    handle = await _alert_started(
        client,
        lab,
        run_workers,
        inv,
        wf_id,
        "primary-not-taking-writes",
        "HybridOpsPrimaryNotTakingWrites",
        target=TargetChoice.GCP,
    )
    await save(handle, lab)


async def test_failover_lease_waited(client: Client, lab: Lab, run_workers: Any) -> None:
    """Patch failover-plan-with-lease: a planned run holds the lease at its approval gate; the
    detection alert's run (onprem's host killed, placement ``queues``) reads the plan while it
    asks, is refused at once, asks again waiting; the first is rejected, and the alert's run
    gets the lease, reads the plan again under it and fails over."""
    inv = lab_inventory(lab, placement=Placement.QUEUES)
    await run_workers(client, inv)
    holder = await start(
        client,
        inv,
        _input(require_approval=True, only_if_primary_down=False),
        "failover-lease-holder",
    )
    await eventually("the holder's approval gate", lambda: _waiting(holder), timeout=60)

    async def started_already(*_: Any) -> None:
        pass

    handle = await _alert_started(
        client,
        lab,
        started_already,
        inv,
        "failover-lease-waited",
        "primary-not-taking-writes",
        "HybridOpsPrimaryNotTakingWrites",
        target=TargetChoice.GCP,
        lease_wait_s=120,
    )

    async def asking_again() -> bool:  # the first ask, the plan, the ask that waits
        history = await handle.fetch_history()
        return sum(1 for e in history.events if e.HasField("activity_task_scheduled_event_attributes")) >= 3

    await eventually("the alert's run waiting for the lease", asking_again, timeout=60)
    await holder.execute_update(
        APPROVE_UPDATE, ApprovalInput(by="carol", approve=False, comment="an alert came")
    )
    await save(handle, lab)


async def test_failover_split_brain_fenced(client: Client, lab: Lab, run_workers: Any) -> None:
    """Two writable servers at the start: the one DNS points at is kept, the other fenced."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    promote_by_hand(lab, "azure")
    await eventually("azure writable", lambda: _true(can_write(lab, "azure")))
    handle = await start(client, inv, _input(only_if_primary_down=False), "failover-split-brain-fenced")
    await save(handle, lab)


async def test_failover_break_glass(client: Client, lab: Lab, run_workers: Any) -> None:
    """gcp unreachable and unfenced blocks the promotion (roles_known) until overridden."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.kill_site("gcp")
    at = lab.break_site("onprem")
    handle = await start(
        client, inv, _input(target=TargetChoice.AZURE, incident_started_at=at), "failover-break-glass"
    )

    async def blocked() -> bool:
        return (await handle.query(PROGRESS_QUERY, result_type=Progress)).blocked_by is not None

    await eventually("the blocked promotion", blocked)
    await handle.execute_update(
        APPROVE_UPDATE, ApprovalInput(by="alice", override="roles_known", comment="gcp's host is off")
    )
    await save(handle, lab)


async def test_failover_dns_repaired(client: Client, lab: Lab, run_workers: Any) -> None:
    """A healthy primary and DNS pointing elsewhere: DNS repaired, nothing failed over."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    await asyncio.to_thread(lab.point_dns, "gcp")
    handle = await start(client, inv, _input(), "failover-dns-repaired")
    await save(handle, lab)


async def _true(value: bool) -> bool:
    return value


async def _run(client: Client, inv: Any, workflow: str, arg: Any, wf_id: str) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(workflow, arg, id=wf_id, task_queue=inv.queue(TaskQueue.CONTROL))


async def test_drill_passed(client: Client, lab: Lab, run_workers: Any) -> None:
    """A drill that takes its backup first, restores it, and passes."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.start_writer()
    await eventually("the writer's rows", lambda: _acked(lab, 100))
    inp = DrillInput(take_backup_first=True, requested_by=REQUESTED_BY, reason="history capture")
    await save(await _run(client, inv, WorkflowType.DRILL.value, inp, "drill-passed"), lab)
    lab.stop_code()


async def test_drill_failed_slo(client: Client, lab: Lab, run_workers: Any) -> None:
    """A drill whose RPO objective is too tight: it fails, and still tears down."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.start_writer()
    await eventually("the writer's rows", lambda: _acked(lab, 100))
    inp = DrillInput(take_backup_first=True, rpo_objective_s=0, requested_by=REQUESTED_BY)
    await save(await _run(client, inv, WorkflowType.DRILL.value, inp, "drill-failed-slo"), lab)
    lab.stop_code()


async def test_failback_approved(client: Client, lab: Lab, run_workers: Any) -> None:
    """A failover to azure, then the failback home, approved."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    at = lab.break_site("onprem")
    await (await start(client, inv, _input(target=TargetChoice.AZURE, incident_started_at=at))).result()
    inp = FailbackInput(requested_by=REQUESTED_BY, reason="history capture")
    handle = await _run(client, inv, WorkflowType.FAILBACK.value, inp, "failback-approved")
    await eventually("the approval gate", lambda: _waiting(handle), timeout=120)
    await handle.execute_update(APPROVE_UPDATE, ApprovalInput(by="alice", comment="home"))
    await save(handle, lab)


async def _acked(lab: Lab, n: int) -> bool:
    return lab.ledger.exists() and len(read_ledger(lab.ledger)) >= n


async def test_burst_scaled_in(client: Client, lab: Lab, run_workers: Any) -> None:
    """A burst that holds for a check while the load is high, then scales in."""
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.set_load(0.9)
    inp = BurstInput(target=TargetChoice.AZURE, check_interval_s=1, requested_by=REQUESTED_BY)
    handle = await _run(client, inv, WorkflowType.BURST.value, inp, "burst-scaled-in")

    async def held() -> bool:
        st = await handle.query("burst_state", result_type=BurstState)
        return st is not None and st.checks >= 2

    await eventually("two load checks", held)
    lab.set_load(0.1)
    await save(handle, lab)


async def test_bootstrap_resumed(client: Client, lab: Lab, run_workers: Any, tmp_path: Path) -> None:
    """A bootstrap (lab stand-ins for the roles) that converges every step."""
    from tests.lab.test_bootstrap import settings

    inv = lab_inventory(lab, bootstrap=settings(tmp_path))
    await run_workers(client, inv)
    inp = BootstrapInput(requested_by=REQUESTED_BY, reason="history capture")
    await save(await _run(client, inv, WorkflowType.BOOTSTRAP.value, inp, "bootstrap-converged"), lab)


async def test_failover_restored(client: Client, lab: Lab, run_workers: Any) -> None:
    """Restore mode: a backup of onprem; gcp's standby stopped (unfit), azure's and onprem's
    hosts killed (their agents too); the run probes the candidates' agents, restores the
    backup onto gcp from the WAL archive and starts it as the primary on a new timeline."""
    from drivers.lazy import Drivers
    from workers.main import build_agent

    inv = lab_inventory(lab)
    await run_workers(client, inv, agents=False)
    agent = build_agent(client, inv, "gcp")
    running = asyncio.create_task(agent.run())
    try:
        await Drivers(lab.inventory()).take_backup("onprem")
        lab.postgres.stop_server("gcp")
        lab.break_site("azure")
        at = lab.break_site("onprem")
        handle = await start(client, inv, _input(incident_started_at=at), "failover-restored")
        await save(handle, lab)
    finally:
        await agent.shutdown()
        running.cancel()


async def test_readiness_checked(client: Client, lab: Lab, run_workers: Any) -> None:
    """A readiness evaluation of a healthy lab with a base backup: read-only steps only.
    ``HYBRIDOPS_CAPTURE_ID`` names the run otherwise: ``readiness-before-more-checks`` was
    captured so, with ``workflows/readiness.py`` of commit 3128281 (before patch
    ``readiness-more-checks``) put back for the capture."""
    from hybridops.contracts.readiness import ReadinessInput

    inv = lab_inventory(lab)
    await run_workers(client, inv)
    await asyncio.to_thread(lab.ensure_backup)
    wf_id = os.environ.get("HYBRIDOPS_CAPTURE_ID", "readiness-checked")
    inp = ReadinessInput(requested_by=REQUESTED_BY)
    await save(await _run(client, inv, WorkflowType.READINESS.value, inp, wf_id), lab)


async def test_readiness_api_checked(client: Client, lab: Lab, run_workers: Any) -> None:
    """Patch ``readiness-api-checks``: the same evaluation with the DNS API probed (on the DNS
    queue) and the Terraform states read (on the infra queue: the lab's driver has none)."""
    from hybridops.contracts.readiness import ReadinessInput

    inv = lab_inventory(lab)
    await run_workers(client, inv)
    await asyncio.to_thread(lab.ensure_backup)
    inp = ReadinessInput(requested_by=REQUESTED_BY)
    await save(await _run(client, inv, WorkflowType.READINESS.value, inp, "readiness-api-checked"), lab)


async def test_failover_synced_and_checked(
    client: Client, lab: Lab, run_workers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Patches failover-gitops-sync and failover-health-check: workloads synced on the
    target's cluster (the argocd driver against the fake Argo CD API) before fencing, and
    monitoring asked after the cutover."""
    from tests.fakes.argocd import TOKEN, FakeArgo, FakeServer, serving
    from tests.lab.test_failover_gitops import TOKEN_ENV, with_argo

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    fake, api = FakeServer(), FakeArgo(settle=2)
    fake.handler = api.handle
    async with serving(fake):
        inv = with_argo(lab, fake.url)
        await run_workers(client, inv)
        at = lab.break_site("onprem")
        handle = await start(
            client,
            inv,
            _input(target=TargetChoice.AZURE, incident_started_at=at),
            "failover-synced-and-checked",
        )
        await save(handle, lab)


async def test_failover_retried(client: Client, lab: Lab, run_workers: Any) -> None:
    """Patch operator-control: repoint_apps fails past the point of no return, the run waits,
    an operator's retry runs it again."""
    inv = lab_inventory(lab, faults={"repoint_apps": "fail:1"})
    await run_workers(client, inv)
    at = lab.break_site("onprem")
    handle = await start(
        client, inv, _input(target=TargetChoice.AZURE, incident_started_at=at), "failover-retried"
    )

    async def waiting() -> bool:
        prog = await handle.query(PROGRESS_QUERY, result_type=Progress)
        return prog.waiting_for_operator is not None and prog.waiting_for_operator.step == "repoint_apps"

    await eventually("the run waiting on repoint_apps", waiting, timeout=120)
    await handle.execute_update(
        RETRY_UPDATE, OperatorInput(by="oncall", step="repoint_apps", comment="fixed")
    )
    await save(handle, lab)


async def test_failover_production_shaped(
    client: Client, lab: Lab, run_workers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production's shape: onprem and azure on site agents, gcp on CloudNativePG (the fake
    Kubernetes API, the lab's real gcp server behind it), Terraform (its fake) preparing gcp's
    cluster, the workloads synced by Flux (its fake API) before fencing, and NetBox's database
    endpoint committed to the GitOps repository (a bare one) and applied by Flux at that commit
    (``app_database.via: gitops``) before DNS moves."""
    from tests.lab.test_production_shape import cnpg_api, flux_gitops, production_shaped, through_gitops

    work = lab.root / "production"  # under the lab's directory: scrubbed from the history
    async with cnpg_api(lab, monkeypatch) as kubeapi, flux_gitops(lab, monkeypatch) as (gitops, _, _):
        inv = production_shaped(lab, kubeapi, work, **through_gitops(gitops))
        await run_workers(client, inv)
        at = lab.break_site("onprem", agent=False)
        handle = await start(
            client,
            inv,
            _input(target=TargetChoice.GCP, incident_started_at=at),
            "failover-production-shaped",
        )
        await save(handle, lab)
