"""DR readiness (issue 20) on the real lab: a healthy lab is ready; a standby stopped, DNS
pointed elsewhere, a site agent stopped, a DNS worker that cannot read the zone, a held
Terraform state lock each fail their check; nothing in a readiness history
changes the world. One lab for the module, reset between cases; each case ends with one
writable server and DNS at it."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from drivers.terraform.state import lock_info_path, state_path
from hybridops.constants import (
    APPROVE_UPDATE,
    PROGRESS_QUERY,
    READINESS_ID_PREFIX,
    TaskQueue,
    WorkflowType,
)
from hybridops.contracts.base import ApprovalInput, ApprovalRecord, Progress, RunStatus
from hybridops.contracts.failover import FailoverInput, FailoverResult
from hybridops.contracts.readiness import CheckStatus, ReadinessInput, ReadinessResult
from hybridops.drills import create_schedule
from hybridops.inventory import DnsKind, InfraKind, InfraSettings, Inventory, TerraformSettings
from hybridops.lab import Lab
from hybridops.policy import ReadinessOnFail
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    assert_failed_over,
    assert_nothing_promoted,
    assert_one_writer,
    dns_points_at,
    eventually,
    fenced,
    role,
    start,
)
from tests.lab.test_cli_exit_codes import cli
from workers.main import build_agent, build_workers
from workflows.readiness import READ_ONLY

REPO = Path(__file__).resolve().parents[2]


async def readiness(
    client: Client, inv: Inventory, inp: ReadinessInput | None = None
) -> tuple[ReadinessResult, str]:
    """One readiness run: its result and its workflow id."""
    wf_id = f"{READINESS_ID_PREFIX}test-{uuid.uuid4().hex[:8]}"
    result = await client.execute_workflow(
        WorkflowType.READINESS.value,
        inp or ReadinessInput(),
        id=wf_id,
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=ReadinessResult,
    )
    return result, wf_id


def status_of(result: ReadinessResult, check: str) -> CheckStatus:
    found = [c for c in result.checks if c.id == check]
    assert found, f"no check {check}: {[c.id for c in result.checks]}"
    return found[0].status


async def until(
    client: Client,
    inv: Inventory,
    what: str,
    ok: Callable[[ReadinessResult], bool],
    timeout: float = 60,
    inp: ReadinessInput | None = None,
) -> ReadinessResult:
    """Run readiness again until ``ok`` holds of its result, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result, _ = await readiness(client, inv, inp)
        if ok(result):
            return result
        if time.monotonic() > deadline:
            last = result.model_dump_json(indent=1)
            raise AssertionError(f"{what}: not within {timeout:g} s; last: {last}")
        await asyncio.sleep(0.5)


class Running:
    """In-process workers for every queue and an agent per site, each stoppable."""

    def __init__(self, client: Client, inv: Inventory) -> None:
        self.workers = {str(w.task_queue): w for w in build_workers(client, inv)}
        self.workers |= {site: build_agent(client, inv, site) for site in inv.sites}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def __aenter__(self) -> Running:
        self.tasks = {name: asyncio.create_task(w.run()) for name, w in self.workers.items()}
        return self

    async def stop(self, name: str) -> None:
        await self.workers[name].shutdown()
        await self.tasks.pop(name)

    def start(self, worker: Worker) -> None:
        """Run ``worker`` in the place of the stopped one of its queue."""
        name = str(worker.task_queue)
        assert name not in self.tasks, f"{name}: stop its worker first"
        self.workers[name] = worker
        self.tasks[name] = asyncio.create_task(worker.run())

    async def __aexit__(self, *exc: Any) -> None:
        for name in list(self.tasks):
            await self.stop(name)


def activity_types(history: Any) -> set[str]:
    """Every activity type a history scheduled, queued or local (a local activity's marker
    records its type)."""
    out: set[str] = set()
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            out.add(event.activity_task_scheduled_event_attributes.activity_type.name)
        if event.HasField("marker_recorded_event_attributes"):
            data = event.marker_recorded_event_attributes.details.get("data")
            if data is not None and data.payloads:
                out.add(json.loads(data.payloads[0].data)["activity_type"])
    return out


async def test_a_healthy_lab_is_ready_and_reads_only(client: Client, module_lab: Lab) -> None:
    """Without a backup the backup check fails; with one, every check passes but the two a
    fresh lab cannot (no drill has run: unknown; no drill schedule: warn), every runbook is
    ready, the command exits 0 and prints the table; the history holds read-only steps only."""
    lab = module_lab
    inv = lab_inventory(lab)
    async with Running(client, inv):
        first, _ = await readiness(client, inv)
        assert status_of(first, "backups.newest_age") == CheckStatus.FAIL, first.checks
        await asyncio.to_thread(lab.ensure_backup)
        result = await until(client, inv, "every check passing", lambda r: not r.failed)
        wf_id = result.workflow_id
        fresh = {
            "drills.last_passed": CheckStatus.UNKNOWN,
            "temporal.schedules": CheckStatus.WARN,
            # The lab's signals come from no cloud's monitoring: nothing reads a cloud's API.
            "credentials.cloud_api.azure": CheckStatus.UNKNOWN,
            "credentials.cloud_api.gcp": CheckStatus.UNKNOWN,
        }
        assert {c.id: c.status for c in result.checks if c.status != CheckStatus.PASS} == fresh, result.checks
        assert status_of(result, "drills.last_passed") == CheckStatus.UNKNOWN
        assert result.status == CheckStatus.WARN
        expected = {"failover to azure", "failover to gcp", "failback from azure", "drill"}
        assert set(result.runbooks) >= expected, result.runbooks
        ids = {c.id for c in result.checks}
        assert {
            "topology.one_writer",
            "topology.dns_agrees",
            "topology.streaming.azure",
            "topology.lag.gcp",
            "topology.timelines",
            "temporal.queue.control",
            "temporal.queue.agent.azure",
            "capabilities.failover_to_azure",
            "backups.newest_age",
            "backups.wal_continuity",
            "topology.slots.onprem",
            "drills.last_passed",
            "temporal.schedules",
            "decision.target",
            "credentials.dns_api",
        } <= ids, ids
        # The lab's infra driver has no Terraform state: no lock to check.
        assert not [i for i in ids if i.startswith("credentials.terraform_state")], ids
        target = next(c for c in result.checks if c.id == "decision.target")
        assert target.measured.split(" ", 1)[0] in ("azure", "gcp"), target
        assert any(i.startswith("credentials.") for i in ids), ids
        for c in result.checks:
            assert c.measured and c.threshold and c.runbooks, c
        history = await client.get_workflow_handle(wf_id).fetch_history()
        scheduled = activity_types(history)
        assert scheduled and scheduled <= READ_ONLY, scheduled - READ_ONLY
        # No secret in the result: the lab's DNS keys are in this environment.
        text = result.model_dump_json()
        for key, value in lab.env().items():
            if "SECRET" in key or "KEY" in key:
                assert value not in text, key
        ran = await cli(lab, "ready")
        assert ran.code == 0, ran.out + ran.err
        assert "topology.dns_agrees" in ran.out and "failover to azure" in ran.out, ran.out
        ran = await cli(lab, "ready", "--json")
        assert ran.code == 0 and json.loads(ran.out)["status"] == "warn", ran.out + ran.err
        for _ in range(2):  # idempotent
            ran = await cli(lab, "ready", "--schedule")
            assert ran.code == 0 and "hybridops-readiness" in ran.out, ran.out + ran.err
        desc = await client.get_schedule_handle("hybridops-readiness").describe()
        assert desc.schedule.spec.intervals[0].every.total_seconds() == 1800
        await client.get_schedule_handle("hybridops-readiness").delete()
    assert assert_one_writer(lab) == "onprem"


async def test_a_stopped_standby_fails_then_passes(client: Client, module_lab: Lab) -> None:
    lab = module_lab
    inv = lab_inventory(lab)
    async with Running(client, inv):
        await asyncio.to_thread(lab.postgres.stop_server, "gcp")
        result, _ = await readiness(client, inv)
        assert status_of(result, "topology.streaming.gcp") == CheckStatus.FAIL
        assert result.runbooks["failover to gcp"] == CheckStatus.FAIL
        assert status_of(result, "topology.streaming.azure") == CheckStatus.PASS
        ran = await cli(lab, "ready")
        assert ran.code == 1 and "topology.streaming.gcp" in ran.out, ran.out + ran.err
        await asyncio.to_thread(lab.pg_start, "gcp")
        await until(
            client,
            inv,
            "gcp streaming again",
            lambda r: status_of(r, "topology.streaming.gcp") == CheckStatus.PASS,
        )
    assert assert_one_writer(lab) == "onprem"


async def test_dns_pointed_elsewhere_fails(client: Client, module_lab: Lab) -> None:
    lab = module_lab
    inv = lab_inventory(lab)
    async with Running(client, inv):
        await asyncio.to_thread(lab.point_dns, "azure")
        result, _ = await readiness(client, inv)
        dns = next(c for c in result.checks if c.id == "topology.dns_agrees")
        assert dns.status == CheckStatus.FAIL and "(azure)" in dns.measured, dns
        assert status_of(result, "topology.one_writer") == CheckStatus.PASS
        await asyncio.to_thread(lab.point_dns, "onprem")
        result, _ = await readiness(client, inv)
        assert status_of(result, "topology.dns_agrees") == CheckStatus.PASS
    assert assert_one_writer(lab) == "onprem"


async def test_a_stopped_agent_fails_the_temporal_check(client: Client, module_lab: Lab) -> None:
    """The azure agent stops: Temporal's task queue description shows its poller going stale
    (or gone), and the check for its queue fails, naming the queue."""
    lab = module_lab
    inv = lab_inventory(lab)
    async with Running(client, inv) as running:
        result, _ = await readiness(client, inv)
        assert status_of(result, "temporal.queue.agent.azure") == CheckStatus.PASS
        await running.stop("azure")
        result = await until(
            client,
            inv,
            "the azure agent's queue failing",
            lambda r: status_of(r, "temporal.queue.agent.azure") == CheckStatus.FAIL,
            timeout=120,
        )
        check = next(c for c in result.checks if c.id == "temporal.queue.agent.azure")
        assert inv.site_queue("azure") in check.measured, check
        assert status_of(result, "temporal.queue.agent.gcp") == CheckStatus.PASS
    assert assert_one_writer(lab) == "onprem"


def dns_api_broken(inv: Inventory, secret_env: str) -> Inventory:
    """``inv`` with its DNS API out of reach of the DNS worker: the TSIG secret in
    ``$secret_env``, which the server does not take (BIND), or an endpoint where nothing
    listens (Route53 on moto, which takes any key)."""
    if inv.dns.driver == DnsKind.RFC2136:
        dns = inv.dns.model_copy(update={"credentials_ref": f"env:{secret_env}"})
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        dns = inv.dns.model_copy(update={"endpoint_url": f"http://127.0.0.1:{dead}"})
    return inv.model_copy(update={"dns": dns})


async def test_a_dns_worker_that_cannot_read_the_zone_fails_the_dns_api_check(
    client: Client, module_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DNS queue's worker with a wrong TSIG key (BIND) or an unreachable API (Route53):
    credentials.dns_api fails naming why, though every secret reference still resolves and
    the topology (read by the other workers) is fine; the worker put right, it passes."""
    lab = module_lab
    inv = lab_inventory(lab)
    dns_queue = inv.queue(TaskQueue.DNS)
    monkeypatch.setenv(
        "HYBRIDOPS_TEST_WRONG_TSIG", base64.b64encode(b"not the lab's key, 32 bytes!").decode()
    )
    async with Running(client, inv) as running:
        result, _ = await readiness(client, inv)
        assert status_of(result, "credentials.dns_api") == CheckStatus.PASS, result.checks
        await running.stop(dns_queue)
        running.start(
            build_workers(client, dns_api_broken(inv, "HYBRIDOPS_TEST_WRONG_TSIG"), [TaskQueue.DNS])[0]
        )
        result, _ = await readiness(client, inv)
        check = next(c for c in result.checks if c.id == "credentials.dns_api")
        assert check.status == CheckStatus.FAIL, check
        want = "DnsAuthError" if inv.dns.driver == DnsKind.RFC2136 else "DnsError"
        assert want in check.measured and check.detail, check
        assert status_of(result, "topology.dns_agrees") == CheckStatus.PASS
        assert result.runbooks["failover to azure"] == CheckStatus.FAIL
        assert "drill" not in check.runbooks, "a drill never touches production DNS"
        await running.stop(dns_queue)
        running.start(build_workers(client, inv, [TaskQueue.DNS])[0])
        await until(
            client,
            inv,
            "the DNS API answering again",
            lambda r: status_of(r, "credentials.dns_api") == CheckStatus.PASS,
        )
    assert assert_one_writer(lab) == "onprem"


HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX)  # fcntl(F_SETLK), as Terraform's local backend locks its state
print("held", flush=True)
sys.stdin.read()
"""


async def test_a_held_terraform_lock_fails_its_check_and_a_stale_one_warns(
    client: Client, module_lab: Lab
) -> None:
    """The infra worker on the terraform driver (the lab root, local state): free, the check
    passes; a process holding the state's lock with Terraform's lock info fails it naming who;
    the holder gone and its info file left, it warns; the file removed, it passes."""
    lab = module_lab
    inv = lab_inventory(lab)
    config = lab.root / "terraform-config"
    shutil.copytree(REPO / "infra" / "terraform" / "lab", config / "lab", dirs_exist_ok=True)
    terraform = TerraformSettings(
        config_root=config, work_root=lab.root / "terraform-work", targets={"azure": "lab", "gcp": "lab"}
    )
    tf_inv = inv.model_copy(update={"infra": InfraSettings(driver=InfraKind.TERRAFORM, terraform=terraform)})
    state = state_path(config / "lab", terraform.workspace)
    state.parent.mkdir(parents=True, exist_ok=True)
    check_id = "credentials.terraform_state.lab"
    async with Running(client, inv) as running:
        await running.stop(inv.queue(TaskQueue.INFRA))
        running.start(build_workers(client, tf_inv, [TaskQueue.INFRA])[0])
        result, _ = await readiness(client, inv)
        assert status_of(result, check_id) == CheckStatus.PASS, result.checks
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(state)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert (await asyncio.to_thread(holder.stdout.readline)).strip() == "held"
            info = {
                "ID": "7e57",
                "Operation": "OperationTypeApply",
                "Who": "oncall@ops-1",
                "Created": "2026-12-06T03:00:00Z",
            }
            lock_info_path(state).write_text(json.dumps(info))
            result, _ = await readiness(client, inv)
            check = next(c for c in result.checks if c.id == check_id)
            assert check.status == CheckStatus.FAIL and "oncall@ops-1" in check.measured, check
            assert "7e57" in check.measured and result.runbooks["burst"] == CheckStatus.FAIL
        finally:
            holder.kill()
            await asyncio.to_thread(holder.wait)
        result, _ = await readiness(client, inv)
        assert status_of(result, check_id) == CheckStatus.WARN, result.checks
        lock_info_path(state).unlink()
        result, _ = await readiness(client, inv)
        assert status_of(result, check_id) == CheckStatus.PASS, result.checks
    assert assert_one_writer(lab) == "onprem"


async def gcp_failed_readiness(client: Client, inv: Inventory, lab: Lab) -> str:
    """The newest readiness fails ``failover to gcp`` (gcp was stopped while it ran), and gcp
    streams again since: its workflow id."""
    await asyncio.to_thread(lab.postgres.stop_server, "gcp")
    before, wf_id = await readiness(client, inv)
    assert status_of(before, "topology.streaming.gcp") == CheckStatus.FAIL
    await asyncio.to_thread(lab.pg_start, "gcp")

    async def standby() -> bool:
        return await asyncio.to_thread(role, lab, "gcp") == "standby"

    await eventually("gcp a standby again", standby)
    return wf_id


async def test_a_paused_drill_schedule_fails_then_passes_unpaused(client: Client, module_lab: Lab) -> None:
    """A drill schedule of this inventory's queue: running, temporal.schedules passes; paused,
    it fails naming the schedule; unpaused, it passes again."""
    lab = module_lab
    inv = lab_inventory(lab)
    name = f"test-{uuid.uuid4().hex[:8]}"
    # Yearly, on a date no test run reaches: the schedule never starts a drill here.
    sid = await create_schedule(client, inv, name, "0 3 1 1 *")
    handle = client.get_schedule_handle(sid)
    try:
        async with Running(client, inv):

            def schedules(status: CheckStatus) -> Callable[[ReadinessResult], bool]:
                return lambda r: status_of(r, "temporal.schedules") == status

            # Listing schedules is Temporal's visibility: a new one shows after a moment.
            await until(client, inv, "the schedule listed and running", schedules(CheckStatus.PASS))
            await handle.pause(note="test: paused")
            result = await until(client, inv, "the paused schedule failing", schedules(CheckStatus.FAIL))
            check = next(c for c in result.checks if c.id == "temporal.schedules")
            assert sid in check.measured and result.runbooks["drill"] == CheckStatus.FAIL, check
            await handle.unpause(note="test: unpaused")
            await until(client, inv, "the unpaused schedule passing", schedules(CheckStatus.PASS))
    finally:
        await handle.delete()
    assert assert_one_writer(lab) == "onprem"


async def archive_a_segment(lab: Lab) -> str:
    """Write to the primary, end the WAL segment the write went to, and wait until it is
    archived; returns its name. (A switch with nothing written since the last one switches
    nothing, and archive_timeout may have switched just before: the segment is the write's.)"""
    with psycopg.connect(
        host=lab.ip("onprem"), port=lab.ports.pg, user="postgres", dbname="app", autocommit=True
    ) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS readiness_probe (at timestamptz)")
        row = conn.execute(
            "INSERT INTO readiness_probe VALUES (now()) RETURNING pg_walfile_name(pg_current_wal_lsn())"
        ).fetchone()
        assert row is not None
        segment: str = row[0]
        conn.execute("SELECT pg_switch_wal()")

    async def archived() -> bool:
        return (lab.archive / segment).exists()

    await eventually(f"{segment} in the archive", archived)
    return segment


async def test_an_old_backup_and_a_missing_wal_segment_fail(client: Client, module_lab: Lab) -> None:
    """A backup older than the limit fails backups.newest_age; a WAL segment gone from the
    archive between the backup and the newest segment fails backups.wal_continuity, and put
    back it passes."""
    lab = module_lab
    inv = lab_inventory(lab)
    await asyncio.to_thread(lab.ensure_backup)
    async with Running(client, inv):
        result = await until(
            client,
            inv,
            "the WAL archive continuous",
            lambda r: status_of(r, "backups.wal_continuity") == CheckStatus.PASS,
        )
        assert status_of(result, "backups.newest_age") == CheckStatus.PASS
        tiny = ReadinessInput(backup_max_age_h=1e-6)  # 3.6 ms: any backup is older
        result, _ = await readiness(client, inv, tiny)
        assert status_of(result, "backups.newest_age") == CheckStatus.FAIL
        assert result.runbooks["drill"] == CheckStatus.FAIL
        gap = await archive_a_segment(lab)
        newer = await archive_a_segment(lab)
        assert newer > gap
        aside = lab.root / f"{gap}.aside"
        (lab.archive / gap).rename(aside)
        try:
            result, _ = await readiness(client, inv)
            check = next(c for c in result.checks if c.id == "backups.wal_continuity")
            assert check.status == CheckStatus.FAIL and gap in check.detail, check
            assert result.runbooks["drill"] == CheckStatus.FAIL
        finally:
            aside.rename(lab.archive / gap)
        result, _ = await readiness(client, inv)
        assert status_of(result, "backups.wal_continuity") == CheckStatus.PASS
    assert assert_one_writer(lab) == "onprem"


async def test_a_slot_holding_back_wal_fails_its_check(client: Client, module_lab: Lab) -> None:
    """A physical slot nobody consumes, reserving WAL from its creation: under a threshold of
    one byte (and a segment written since) topology.slots.onprem fails naming it; dropped, it
    passes under the default."""
    lab = module_lab
    inv = lab_inventory(lab)

    def sql(statement: str) -> None:
        with psycopg.connect(
            host=lab.ip("onprem"), port=lab.ports.pg, user="postgres", dbname="app", autocommit=True
        ) as conn:
            conn.execute(statement)

    await asyncio.to_thread(sql, "SELECT pg_create_physical_replication_slot('readiness_test', true)")
    try:
        await archive_a_segment(lab)
        async with Running(client, inv):
            tight = ReadinessInput(slot_retained_max_bytes=1)
            result, _ = await readiness(client, inv, tight)
            check = next(c for c in result.checks if c.id == "topology.slots.onprem")
            assert check.status == CheckStatus.FAIL and "readiness_test" in check.detail, check
            await asyncio.to_thread(sql, "SELECT pg_drop_replication_slot('readiness_test')")
            result, _ = await readiness(client, inv)
            check = next(c for c in result.checks if c.id == "topology.slots.onprem")
            assert check.status == CheckStatus.PASS and "readiness_test" not in check.measured, check
    finally:
        await asyncio.to_thread(
            sql,
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = 'readiness_test'",
        )
    assert assert_one_writer(lab) == "onprem"


async def test_a_failover_starts_from_the_readiness_and_a_fail_asks_for_approval(
    client: Client, module_lab: Lab
) -> None:
    """Item 3: gcp was not streaming when readiness last ran; it is repaired, and a failover to
    gcp then records that evaluation in its evidence and, as the policy's default says
    (readiness.on_fail: approve), waits for a human before it fences anything."""
    lab = module_lab
    inv = lab_inventory(lab)
    async with Running(client, inv):
        wf_id = await gcp_failed_readiness(client, inv, lab)
        lab.break_site("onprem")
        handle = await start(client, inv, FailoverInput(target="gcp"))

        async def gate() -> Progress | None:
            prog: Progress = await handle.query(PROGRESS_QUERY, result_type=Progress)
            return prog if prog.waiting_for_approval else None

        prog = await eventually("the approval gate", gate, timeout=120)
        assert not fenced(lab, "onprem"), "nothing fenced before the approval"
        await handle.execute_update(
            APPROVE_UPDATE,
            ApprovalInput(by="bob", comment="gcp streams again", decision_id=prog.decision_id),
            result_type=ApprovalRecord,
        )
        result: FailoverResult = await handle.result()
    assert result.status == RunStatus.SUCCEEDED
    seen = result.readiness
    assert seen is not None and seen.found and seen.workflow_id == wf_id and not seen.stale
    assert seen.runbook == "failover to gcp" and "topology.streaming.gcp" in [c.id for c in seen.failing]
    assert result.evidence_dir is not None
    evidence = json.loads((Path(result.evidence_dir) / "evidence.json").read_text())
    assert evidence["details"]["readiness"]["workflow_id"] == wf_id
    assert_failed_over(lab, "gcp")


@pytest.mark.parametrize("on_fail", [ReadinessOnFail.HOLD, ReadinessOnFail.PROCEED])
async def test_a_readiness_fail_holds_or_proceeds_as_the_policy_says(
    client: Client, module_lab: Lab, on_fail: ReadinessOnFail
) -> None:
    """The same failing evaluation, weighed by ``readiness.on_fail``: ``hold`` stops the run
    before it changes anything (status ``held``, the onprem primary stays down for the next
    case's reset), ``proceed`` records it and fails over without asking anyone."""
    lab = module_lab
    policy_data = yaml.safe_load(lab.policy_file.read_text())  # the lab's: no approval gate
    policy_data["readiness"]["on_fail"] = on_fail.value
    policy = lab.root / f"policy-readiness-{on_fail.value}.yaml"
    policy.write_text(yaml.safe_dump(policy_data))
    inv = lab_inventory(lab, policy=policy)
    async with Running(client, inv):
        wf_id = await gcp_failed_readiness(client, inv, lab)
        lab.break_site("onprem")
        handle = await start(client, inv, FailoverInput(target="gcp"))
        if on_fail == ReadinessOnFail.HOLD:
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
        else:
            result: FailoverResult = await handle.result()
    if on_fail == ReadinessOnFail.HOLD:
        details = failure.value.cause.details[0]  # type: ignore[union-attr]
        assert details["status"] == RunStatus.HELD.value, details["error"]
        assert "readiness.on_fail: hold" in details["error"] and "topology.streaming.gcp" in details["error"]
        assert details["readiness"]["workflow_id"] == wf_id
        assert not details["approvals"] and not details["point_of_no_return_passed"]
        assert not fenced(lab, "onprem") and role(lab, "gcp") == role(lab, "azure") == "standby"
        assert dns_points_at(lab) == "onprem", "held: nothing changed"
        # The end state of a hold during an outage: no second writer made, DNS still at the
        # dead primary, the others standbys (a human decides; zero writers, never two).
        assert_nothing_promoted(lab)
        return
    assert result.status == RunStatus.SUCCEEDED and not result.approvals, "proceed: nobody asked"
    seen = result.readiness
    assert seen is not None and seen.workflow_id == wf_id and not seen.stale
    assert "topology.streaming.gcp" in [c.id for c in seen.failing]
    assert_failed_over(lab, "gcp")
