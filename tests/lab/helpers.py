"""Helpers for lab tests: read the world as an operator would, poll with deadlines."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from temporalio.client import Client, WorkflowHandle

from drivers.dns import make_dns_driver
from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.failover import FailoverResult
from hybridops.inventory import Inventory
from hybridops.lab import Lab

T = TypeVar("T")


def dns_points_at(lab: Lab) -> str | None:
    """The site the lab's DNS record points at."""
    inv = lab.inventory()
    rec = make_dns_driver(inv.dns).get_record_sync(inv.dns.record, "A")
    return inv.site_by_host(rec.values[0]) if rec and rec.values else None


def role(lab: Lab, site: str) -> str:
    """primary, standby or down."""
    return lab.role(site)


def can_write(lab: Lab, site: str) -> bool:
    try:
        with psycopg.connect(
            host=lab.ip(site),
            port=lab.ports.pg,
            user="postgres",
            dbname="app",
            connect_timeout=2,
            autocommit=True,
        ) as conn:
            conn.execute("INSERT INTO hybridops_probe (run_id) VALUES ('test')")
            return True
    except psycopg.Error:
        return False


def timeline(lab: Lab, site: str) -> int:
    with psycopg.connect(host=lab.ip(site), port=lab.ports.pg, user="postgres", dbname="app") as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
        assert row is not None
        return int(row[0][:8], 16)


def fenced(lab: Lab, site: str) -> bool:
    """The fence mark is in place (a restart would come up read-only)."""
    d = lab.data_dir(site)
    return (d / "hybridops.fence.json").exists() and (d / "standby.signal").exists()


async def start(
    client: Client, inv: Inventory, arg: Any, wf_id: str | None = None
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        WorkflowType.FAILOVER.value,
        arg,
        id=wf_id or f"test-failover-{uuid.uuid4().hex[:8]}",
        task_queue=inv.queue(TaskQueue.CONTROL),
        result_type=FailoverResult,
    )


async def eventually(what: str, check: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last
        except Exception as err:
            last = err
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def dns_changes(lab: Lab) -> int:
    """ChangeResourceRecordSets calls moto's server has answered, from its access log."""
    return sum(
        1 for line in lab.log("dns").read_text().splitlines() if '"POST /2013-04-01/hostedzone/' in line
    )


def writable_sites(lab: Lab) -> list[str]:
    """The servers that accept a write now, read from each server (never from DNS)."""
    return [site for site in lab.inventory().sites if can_write(lab, site)]


def assert_one_writer(lab: Lab) -> str:
    """The end state every runbook test asserts: exactly one writable server, and DNS at it."""
    writers = writable_sites(lab)
    assert len(writers) == 1, f"writable servers: {writers}"
    assert dns_points_at(lab) == writers[0], f"DNS points at {dns_points_at(lab)}, the writer is {writers[0]}"
    return writers[0]


def promote_by_hand(lab: Lab, site: str) -> None:
    """A stranger promotes ``site`` (a split brain in the making): ``pg_promote()`` by SQL."""
    with psycopg.connect(
        host=lab.ip(site), port=lab.ports.pg, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute("SELECT pg_promote(true, 60)")


def spawn_worker(lab: Lab) -> subprocess.Popen[bytes]:
    """A worker process on the lab's inventory file, in a session of its own (to kill it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hybridops.cli", "worker"],
        env={**os.environ, **lab.env()},
        stdout=lab.log("worker").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
