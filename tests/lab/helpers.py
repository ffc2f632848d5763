"""Helpers for lab tests: read the world as an operator would, poll with deadlines."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from temporalio.client import Client, WorkflowHandle

from drivers.dns import make_dns_driver
from hybridops.client import connect, queue_pollers
from hybridops.constants import TaskQueue, WorkflowType
from hybridops.contracts.failover import FailoverResult
from hybridops.inventory import DnsKind, Inventory
from hybridops.lab import Lab
from hybridops.lab.layout import DNS_KEYS_ENV, SITES

T = TypeVar("T")


def dns_points_at(lab: Lab) -> str | None:
    """The site the lab's DNS record points at."""
    inv = lab.inventory()
    rec = make_dns_driver(inv.dns).get_record_sync(inv.dns.record, "A")
    return inv.site_by_host(rec.values[0]) if rec and rec.values else None


CONNECT_TIMEOUT_S = 2
"""libpq's shortest (it rounds 1 up to 2). A server that is down refuses at once on loopback, so
a timeout is never "down": it leaves the role unknown."""
DOWN_MESSAGES = ("Connection refused", "the database system is ")
"""libpq's words for a server that takes no connection now: nothing listens on its port (killed
or stopped), or the server says it cannot take one (SQLSTATE 57P03: starting up, shutting down,
in recovery after a crash, not yet accepting connections). psycopg gives a failed connection no
SQLSTATE, so its message is what there is to read."""
GONE_MESSAGES = (
    "server closed the connection unexpectedly",
    "Connection reset by peer",
    "terminating connection due to administrator command",
    "terminating connection because of crash of another server process",
)
"""libpq's and the server's words for a connection dropped before the session began: the server
went away between accepting and answering (killed: it resets the connections still in its
listen queue; a fast shutdown or a fence terminating client backends; a crash restart). Like a
connection broken mid-query, it says nothing yet: read again."""
GONE_WITHIN_S = 2.0
"""How long a server may keep dropping connections before its role counts as unknown: a
shutdown or a kill is over well within it, and then the port refuses or the server answers."""
REREAD_S = 0.01


def reads() -> Iterator[None]:
    """Attempts to read a server while it keeps dropping connections: the first at once, then
    one every :data:`REREAD_S` until :data:`GONE_WITHIN_S` has passed."""
    deadline = time.monotonic() + GONE_WITHIN_S
    yield
    while time.monotonic() < deadline:
        time.sleep(REREAD_S)
        yield


class RoleUnknown(AssertionError):
    """A server answered with an error that says nothing of its role: a timeout, too many
    clients, a failed login, a query that failed. Counting it as "not writable" would let a
    safety check pass on a server it never read, so a test that cannot tell fails."""


def refuses_connections(err: psycopg.Error) -> bool:
    """The error is the server refusing connections (down), not one that leaves it unknown."""
    return (
        isinstance(err, psycopg.OperationalError)
        and err.sqlstate is None
        and any(m in str(err) for m in DOWN_MESSAGES)
    )


def went_away(err: psycopg.Error) -> bool:
    """The server dropped the connection before the session began (see :data:`GONE_MESSAGES`)."""
    return (
        isinstance(err, psycopg.OperationalError)
        and err.sqlstate is None
        and any(m in str(err) for m in GONE_MESSAGES)
    )


def ask(lab: Lab, site: str, sql: str, dbname: str = "postgres") -> tuple[Any, ...] | None:
    """``sql``'s first row on ``site``'s server, read on a fresh connection, or None when the
    server is down (:func:`refuses_connections`). A connection the server drops, before the
    session began or mid-query, is read again on a new one. Any other error raises
    :class:`RoleUnknown` naming the site, except the refusal of a write by a read-only server
    (``ReadOnlySqlTransaction``), which is an answer and is raised as it is."""
    for _ in reads():
        try:
            conn = psycopg.connect(
                host=lab.ip(site),
                port=lab.ports.pg,
                user="postgres",
                dbname=dbname,
                connect_timeout=CONNECT_TIMEOUT_S,
                autocommit=True,
            )
        except psycopg.Error as err:
            if refuses_connections(err):
                return None
            if went_away(err):
                continue
            raise RoleUnknown(f"{site}: cannot tell its role: {err}") from err
        with conn:
            try:
                row = conn.execute(sql).fetchone()
                return tuple(row) if row is not None else ()
            except psycopg.errors.ReadOnlySqlTransaction:
                raise
            except psycopg.Error as err:
                if not conn.broken:
                    raise RoleUnknown(f"{site}: cannot tell its role: {err}") from err
    raise RoleUnknown(f"{site}: cannot tell its role: it kept dropping connections for {GONE_WITHIN_S} s")


def role(lab: Lab, site: str) -> str:
    """``primary``, ``standby`` or ``down`` (refusing connections), read from the server;
    :class:`RoleUnknown` when it cannot tell."""
    row = ask(lab, site, "SELECT pg_is_in_recovery()")
    return "down" if row is None else ("standby" if row[0] else "primary")


def can_write(lab: Lab, site: str) -> bool:
    """A write commits on ``site`` now. False when the server refuses it as read-only (a
    standby, a fenced primary) or is down; :class:`RoleUnknown` when it cannot tell."""
    try:
        row = ask(lab, site, "INSERT INTO hybridops_probe (run_id) VALUES ('test') RETURNING true", "app")
    except psycopg.errors.ReadOnlySqlTransaction:
        return False
    return row is not None


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
    """Changes the lab's DNS server applied, from its log: ChangeResourceRecordSets calls
    moto's server answered, or record sets BIND replaced (one ``deleting rrset`` line each)."""
    marker = "deleting rrset at" if lab.dns_kind == DnsKind.RFC2136 else '"POST /2013-04-01/hostedzone/'
    return sum(1 for line in lab.log("dns").read_text().splitlines() if marker in line)


def writable_sites(lab: Lab) -> list[str]:
    """The servers that accept a write now, read from each server (never from DNS)."""
    return [site for site in lab.inventory().sites if can_write(lab, site)]


def assert_one_writer(lab: Lab) -> str:
    """The end state every runbook test asserts: exactly one writable server, and DNS at it."""
    writers = writable_sites(lab)
    assert len(writers) == 1, f"writable servers: {writers}"
    assert dns_points_at(lab) == writers[0], f"DNS points at {dns_points_at(lab)}, the writer is {writers[0]}"
    return writers[0]


def assert_failed_over(lab: Lab, target: str | None, old: str = "onprem") -> str:
    """The end state of a failover that succeeded from a dead ``old`` primary: ``target`` the
    one writable server with DNS at it (:func:`assert_one_writer`), promoted exactly once (one
    new timeline), ``old`` down behind its fence mark, every other site still a standby."""
    assert target is not None, "the run chose no target"
    writer = assert_one_writer(lab)
    assert writer == target, f"the writable server is {writer}, the run's target {target}"
    assert timeline(lab, target) == 2, "promoted exactly once: one new timeline"
    assert role(lab, old) == "down", f"{old} is {role(lab, old)}, not down"
    assert fenced(lab, old), f"{old} has no fence mark"
    others = {s: role(lab, s) for s in lab.inventory().sites if s not in (target, old)}
    assert set(others.values()) <= {"standby"}, others
    return writer


def assert_nothing_promoted(lab: Lab, dead: str = "onprem") -> None:
    """The end state of a run that stopped before promotion while ``dead``, the primary, is
    down: no writable server anywhere, DNS still at ``dead``, every other site a standby."""
    assert writable_sites(lab) == [], f"writable servers: {writable_sites(lab)}"
    assert role(lab, dead) == "down"
    assert dns_points_at(lab) == dead, f"DNS points at {dns_points_at(lab)}"
    others = {s: role(lab, s) for s in lab.inventory().sites if s != dead}
    assert set(others.values()) == {"standby"}, others


def promote_by_hand(lab: Lab, site: str) -> None:
    """A stranger promotes ``site`` (a split brain in the making): ``pg_promote()`` by SQL."""
    with psycopg.connect(
        host=lab.ip(site), port=lab.ports.pg, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute("SELECT pg_promote(true, 60)")


def spawn_worker(lab: Lab, site: str | None = None) -> subprocess.Popen[bytes]:
    """A worker process on the lab's inventory file, in a session of its own (to kill it):
    the control worker (the shared queues), or ``site``'s agent (its queue, no DNS keys)."""
    args = ["--site", site] if site else []
    env = {**os.environ, **lab.env()}
    if site:
        env.pop(DNS_KEYS_ENV, None)
    return subprocess.Popen(
        [sys.executable, "-m", "hybridops.cli", "worker", *args],
        env=env,
        stdout=lab.log(f"agent-{site}" if site else "worker").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def polling(lab: Lab, names: list[str | None], since: datetime, timeout: float = 60) -> None:
    """Wait until each worker started at ``since`` polls its queue (None: the control worker's;
    a site: its agent's), as a supervisor's workers do long before an incident. Without it a
    test races its own start: on a loaded machine an agent still importing when its step is
    scheduled misses the policy's agent start timeout, and the run takes it for a dead host
    (isolates instead of fencing; a crash fault in its step never fires). Temporal keeps a
    killed worker listed for a while, so only a poll after ``since`` counts."""
    inv = lab.inventory()
    client = await connect(inv.temporal)
    for name in names:
        queue = inv.site_queue(name) if name else inv.queue(TaskQueue.CONTROL)

        async def fresh(queue: str = queue) -> bool:
            now = datetime.now(UTC)
            polls = await queue_pollers(client, queue)
            return any(now - timedelta(seconds=p.seconds_ago) >= since for p in polls)

        await eventually(f"{name or 'the control worker'} polling {queue}", fresh, timeout)


def spawn_agents(lab: Lab) -> list[subprocess.Popen[bytes]]:
    """Every site's agent, a process each (as production runs one per database host)."""
    return [spawn_worker(lab, site) for site in SITES]


def stop_processes(procs: list[subprocess.Popen[bytes] | None]) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def scheduled_queues(history: Any) -> dict[str, set[str]]:
    """The task queues each activity type was scheduled on in ``history`` (a
    ``WorkflowHistory``): local activities are not scheduled, so they are not here."""
    out: dict[str, set[str]] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            out.setdefault(attrs.activity_type.name, set()).add(attrs.task_queue.name)
    return out


async def agents_watching(lab: Lab, primary: str = "onprem") -> None:
    """Start every site's agent (the observers), a lab process each, and wait until the global
    Prometheus has each of their views: ``primary`` taking their writes. A kill before that
    would go unseen: an agent that never saw a primary write vouches for none."""
    for site in SITES:
        lab.start_agent(site)

    async def watching() -> bool:
        return await asyncio.to_thread(lab.agents_watching, primary)

    await eventually(f"every agent seeing {primary} take writes, in Prometheus", watching, timeout=60)
