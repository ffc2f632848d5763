"""The lab on a real BIND (``dns: rfc2136``): the rfc2136 driver's TSIG updates and
authoritative reads, the lab's zone kept across a stopped and a killed ``named``, the key
runbook cases of the other modules run again here on BIND (the module's ``LAB_DNS`` makes
their ``lab`` and ``module_lab`` BIND labs), with the writer resolving the name through the
DNS protocol, and a burst refused before any change because RFC 2136 has no weighted records.

Other lab modules run on BIND with ``HYBRIDOPS_LAB_DNS=rfc2136`` (not the burst's: it needs
weighted records).
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError

from drivers.dns import make_dns_driver
from drivers.dns.resolve import ClientResolver
from drivers.dns.rfc2136 import Rfc2136Driver
from drivers.infra.lab import LabInfraDriver
from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.base import Cloud, RunStatus, TargetChoice
from hybridops.contracts.burst import BurstInput, BurstResult
from hybridops.contracts.failover import FailoverInput
from hybridops.errors import CapabilityMissing, DnsAuthError, DnsError, DnsRecordInvalid
from hybridops.inventory import DnsKind
from hybridops.lab import Lab
from hybridops.lab.processes import wait_until
from hybridops.workload import read_ledger
from tests.conftest import lab_inventory
from tests.lab.helpers import (
    assert_failed_over,
    assert_one_writer,
    dns_changes,
    dns_points_at,
    eventually,
    start,
)

# The other modules' key cases, run here on BIND (collected again under this module).
from tests.lab.test_chaos_failover import test_dns_api_unreachable_during_cutover  # noqa: F401
from tests.lab.test_failback import test_full_cycle_with_the_writer_running  # noqa: F401
from tests.lab.test_failover import test_failover_to_each_target  # noqa: F401

LAB_DNS = DnsKind.RFC2136


def _driver(lab: Lab, **changes: object) -> Rfc2136Driver:
    settings = lab.inventory().dns.model_copy(update=changes)
    driver = make_dns_driver(settings)
    assert isinstance(driver, Rfc2136Driver)
    return driver


async def test_the_driver_updates_with_tsig_and_reads_by_query(module_lab: Lab) -> None:
    """A change is one signed update, served at once under a new SOA serial; the same call
    again sends nothing; a wrong key is an auth error that never shows the secret; a name
    outside the zone is refused before anything is sent; weighted records are declared
    missing, naming the driver."""
    lab = module_lab
    dns = _driver(lab)
    record = lab.inventory().dns.record
    serial, changes = dns.serial(), dns_changes(lab)

    change = await dns.ensure_record(record, "A", [lab.ip("gcp")], 1)
    assert change.changed and change.previous is not None and change.previous.values == (lab.ip("onprem"),)
    assert dns.get_record_sync(record) == change.current
    assert dns.serial() > serial and dns_changes(lab) == changes + 1

    serial = dns.serial()
    again = await dns.ensure_record(record, "A", [lab.ip("gcp")], 1)
    assert not again.changed and dns.serial() == serial and dns_changes(lab) == changes + 1

    wrong = tmp_secret(lab)
    with pytest.raises(DnsAuthError) as err:
        await _driver(lab, credentials_ref=f"env:{wrong[0]}").ensure_record(record, "A", [lab.ip("azure")], 1)
    assert not err.value.retryable
    assert wrong[1] not in str(err.value) and lab.tsig_file.read_text().strip() not in str(err.value)
    assert dns_points_at(lab) == "gcp"

    with pytest.raises(DnsRecordInvalid):
        await dns.ensure_record("db.elsewhere.example", "A", [lab.ip("azure")], 1)
    with pytest.raises(CapabilityMissing) as missing:
        await dns.get_weights("app.corp.example.com")
    assert missing.value.ids == {"driver": "Rfc2136Driver", "capability": "weighted"}

    await dns.ensure_record(record, "A", [lab.ip("onprem")], 1)
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


def tmp_secret(lab: Lab) -> tuple[str, str]:
    """A well-formed TSIG secret the server does not know, in an environment variable of the
    test's own: (variable, secret)."""
    import base64

    name, secret = f"HYBRIDOPS_TEST_WRONG_TSIG_{os.getpid()}", base64.b64encode(b"w" * 32).decode()
    os.environ[name] = secret
    return name, secret


async def test_a_client_resolver_asks_bind_and_sees_a_change_at_once(module_lab: Lab) -> None:
    """Verify's resolver asks BIND over the DNS protocol (no API), and without a cache sees a
    change the moment the server applied it; the writer's, with a cache, keeps the old answer
    for the record's TTL (1 s in the lab) and then follows."""
    lab = module_lab
    settings = lab.inventory().dns
    record = settings.record
    verify, writer = ClientResolver(settings), ClientResolver(settings, cache=True)
    assert verify.how == f"DNS query to {settings.server}:{settings.port}"
    assert await verify.resolve() == writer.address() == lab.ip("onprem")
    await _driver(lab).ensure_record(record, "A", [lab.ip("gcp")], 1)
    try:
        assert await verify.resolve() == lab.ip("gcp")
        gcp = lab.ip("gcp")
        await eventually("the cached answer to expire", lambda: _is(writer.address(), gcp), timeout=10)
    finally:
        await _driver(lab).ensure_record(record, "A", [lab.ip("onprem")], 1)


async def _is(value: str | None, want: str) -> bool:
    return value == want


async def test_an_unreachable_server_is_retryable(module_lab: Lab) -> None:
    lab = module_lab
    dns = _driver(lab, port=lab.ports.dns + 1 if lab.ports.dns < 65535 else 1, timeout_s=0.5)
    with pytest.raises(DnsError) as err:
        await dns.get_record(lab.inventory().dns.record)
    assert err.value.retryable
    assert_one_writer(lab)


def test_bind_keeps_the_zone_across_down_up_and_a_kill(module_lab: Lab) -> None:
    """BIND writes each update to its journal before it answers: a stopped and a killed
    ``named`` come back with the record where it was, without the lab's snapshot."""
    lab = module_lab
    lab.point_dns("azure")
    lab.dns.stop()
    assert lab.pid("dns") is None
    lab.dns_file.unlink()  # not the snapshot: BIND's own journal
    lab.start_dns()
    assert lab.dns_site() == "azure" and "journal" in lab.dns_note, lab.dns_note

    pid = lab.pid("dns")
    assert pid is not None
    lab.point_dns("gcp")
    os.killpg(pid, signal.SIGKILL)
    wait_until("named to die", lambda: lab.pid("dns") is None)
    lab.dns_file.unlink()
    lab.start_dns()
    assert lab.pid("dns") not in (None, pid)
    assert lab.dns_site() == "gcp" and not lab.dns_stale
    lab.point_dns("onprem")
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)


async def test_the_writer_resolves_through_dns_and_follows_the_failover(
    client: Client, module_lab: Lab, run_workers
) -> None:
    """The writer asks BIND with a stub resolver and its cache: after the cutover it writes on
    the new primary once the cached answer's TTL ran out; the outage it saw is the run's RTO."""
    lab = module_lab
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    lab.start_writer()

    async def on(site: str) -> bool:
        acks = read_ledger(lab.ledger) if lab.ledger.exists() else []
        return sum(1 for a in acks if a.site == site) >= 100

    await eventually("writes on onprem", lambda: on("onprem"), timeout=60)
    at = lab.break_site("onprem")
    handle = await start(client, inv, FailoverInput(target=TargetChoice.AZURE, incident_started_at=at))
    result = await handle.result()
    assert result.status == RunStatus.SUCCEEDED
    await eventually("writes on azure through DNS", lambda: on("azure"), timeout=60)
    assert result.rto_seconds is not None and result.rto_seconds > 0
    # The writer's log says how it resolved: never through the Route53 API.
    assert "route53" not in lab.log("writer").read_text(errors="replace").lower()
    lab.processes.stop("writer")
    assert_failed_over(lab, "azure")


async def test_a_burst_refuses_before_any_change_naming_the_driver(
    client: Client, module_lab: Lab, run_workers
) -> None:
    """RFC 2136 has no weighted records: the burst's plan step fails it, fatal, naming the
    driver and the capability, before the pool, the workloads or DNS changed."""
    lab = module_lab
    inv = lab_inventory(lab)
    await run_workers(client, inv)
    infra = LabInfraDriver(inv.infra)
    pools = {c: await infra.pool_nodes(c) for c in Cloud}
    changes = dns_changes(lab)
    handle = await client.start_workflow(
        WorkflowType.BURST.value,
        BurstInput(max_duration_s=3600.0, budget_cap=1e7),
        id=f"test-burst-bind-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=BurstResult,
    )
    try:
        result = await asyncio.wait_for(handle.result(), 120)
        failure = " ".join(s.error or "" for s in result.steps if s.error) + str(result)
        assert result.status != RunStatus.SUCCEEDED, result
    except WorkflowFailureError as err:
        failure = str(err.cause) + repr(err.cause)
    assert "Rfc2136Driver" in failure and "weighted" in failure, failure
    assert {c: await infra.pool_nodes(c) for c in Cloud} == pools
    assert dns_changes(lab) == changes and dns_points_at(lab) == "onprem"
    # The end state of every runbook test: exactly one writable server, and DNS at it.
    assert_one_writer(lab)
