"""Shared fixtures: one real Temporal dev server for the session, a fresh lab per test.

Every lab test gets its own loopback /24, its own DNS port, its own task queues and its own
directory, so no test depends on another's leftovers, and none meets the demo lab.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from hybridops.constants import TaskQueue
from hybridops.identity import IdentityClientInterceptor, local_identity
from hybridops.inventory import DnsKind, Inventory, Placement, TemporalSettings, write_inventory
from hybridops.lab import Lab, LabPorts
from tests.evidence_schema import assert_evidence_conforms
from workers.main import build_agent, build_workers

_counter = itertools.count(1)


def _test_net() -> str:
    base = os.environ.get("HYBRIDOPS_TEST_NET", "127.88")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under ``pytest -n N``
    if not worker:
        return base
    first, _, second = base.partition(".")
    return f"{first}.{int(second) + int(worker.removeprefix('gw'))}"


TEST_NET = _test_net()
"""The /16 the test labs take their /24s from; set it apart to run two test sessions at once.
Each pytest-xdist worker takes the next /16 (``make test`` runs the suite on two), so two
workers' labs never share an address."""


# No test meets the developer's own lab: with HYBRIDOPS_HOME unset, a command run in-process
# (CliRunner) or as a subprocess without an inventory of its own found the lab that `make demo`
# left under ./.hybridops, read its inventory and set its variables in this process (after
# `make demo`, every unit test after `audit replay`'s failed the environment guard).
os.environ["HYBRIDOPS_HOME"] = tempfile.mkdtemp(prefix="hybridops-test-home-")
atexit.register(shutil.rmtree, os.environ["HYBRIDOPS_HOME"], True)
ENV_AT_START = dict(os.environ)
"""This process's environment before any lab: a lab's variables are put back to it."""


@contextlib.contextmanager
def lab_environment(lab: Lab) -> Iterator[None]:
    """The lab's variables (:meth:`Lab.env`) in this process's environment while a test uses the
    lab, since in-process workers read the lab's DNS keys and alert token from it; put back as
    they were afterwards, so that none leaks into a test without a lab (the unit tests)."""
    env = lab.env()
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def temporal_port() -> int:
    return free_port()


@pytest_asyncio.fixture(scope="session")
async def temporal_env(temporal_port: int) -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (the venv's ``temporal``), with per-workflow time skipping."""
    temporal = Path(sys.executable).parent / "temporal"
    env = await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=str(temporal),
        port=temporal_port,
        data_converter=pydantic_data_converter,
        # The SDK's 5 s default fails a whole module on a loaded machine (seen at load 5).
        dev_server_startup_timeout=timedelta(seconds=60),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
            "--dynamic-config-value",
            "system.enableActivityEagerExecution=true",
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture
async def client(temporal_env: WorkflowEnvironment) -> Client:
    """A plain client (no time skipping): timers run in real time. It carries its identity
    as every HybridOps client does (``os:user@host``: the lab's policy accepts it)."""
    return await identified_client(temporal_env, local_identity(TemporalSettings()))


async def identified_client(temporal_env: WorkflowEnvironment, identity: str) -> Client:
    """A client that says it is ``identity`` (an approver, a starter) on what it sends."""
    return await temporal_env.connect_client(
        data_converter=pydantic_data_converter,
        identity=identity,
        interceptors=[IdentityClientInterceptor(identity)],
    )


def _fresh_lab(
    temporal_port: int, monitoring: bool, own_temporal: bool = False, dns: DnsKind | None = None
) -> Iterator[Lab]:
    """A lab on its own /24 and directory. ``own_temporal``: the lab's own dev server (SQLite
    file under the lab's root, on a port of its own) instead of the session's in-memory one.
    ``dns``: its DNS backend; None for ``$HYBRIDOPS_LAB_DNS``, else moto's Route53 server."""
    # A /24 each, taken round from the /16 (the suite makes more labs than a /16 has /24s;
    # each lab is down before the one that takes its /24 again, 250 labs later).
    seq = next(_counter)
    n = (seq - 1) % 250 + 1
    root = Path(tempfile.mkdtemp(prefix="hybridops-lab-"))
    root.chmod(0o755)  # the PostgreSQL user must traverse it
    port = free_port() if own_temporal else temporal_port
    ui = free_port() if own_temporal else 0
    ports = LabPorts(net=f"{TEST_NET}.{n}", pg=15432, dns=free_port(), temporal=port, ui=ui)
    the_lab = Lab(root, ports, queue_suffix=f"-t{seq}-{os.getpid()}")  # queues never taken round
    try:
        # The lab itself puts its DNS keys in the environment whenever it reads its DNS (its
        # down too, which snapshots the records): everything runs inside the restoring scope.
        with lab_environment(the_lab):
            try:
                the_lab.up(temporal=own_temporal, worker=False, writer=False, monitoring=monitoring, dns=dns)
                yield the_lab
                # Whatever the test asserted, the evidence its runs wrote has the one shape.
                assert_evidence_conforms(root / "output")
            finally:
                the_lab.down()
    finally:
        if os.environ.get("KEEP_LAB") is None:
            shutil.rmtree(root, ignore_errors=True)


def lab_dns(request: pytest.FixtureRequest) -> DnsKind | None:
    """The DNS backend a test module asks for with a module-level ``LAB_DNS`` (a module that
    imports other modules' tests to run them on BIND); None for the default."""
    return getattr(request.module, "LAB_DNS", None)


@pytest.fixture
def lab(temporal_port: int, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A fresh lab: PostgreSQL onprem primary + azure and gcp standbys, DNS at onprem.
    No worker, no writer and no monitoring unless the test starts them."""
    yield from _fresh_lab(temporal_port, monitoring=False, dns=lab_dns(request))


@pytest.fixture
def monitored_lab(temporal_env: WorkflowEnvironment, temporal_port: int) -> Iterator[Lab]:
    """A fresh lab with its monitoring: exporters, a Prometheus per site, the global one,
    Alertmanager and the alert receiver (hybridops/lab/monitoring.py), which connects to the
    session's Temporal server. Needs the Debian packages prometheus, prometheus-alertmanager
    and prometheus-postgres-exporter."""
    yield from _fresh_lab(temporal_port, monitoring=True)


@pytest.fixture(scope="module")
def _one_lab_per_module(temporal_port: int, request: pytest.FixtureRequest) -> Iterator[Lab]:
    yield from _fresh_lab(temporal_port, monitoring=False, dns=lab_dns(request))


@pytest.fixture(scope="module")
def persistent_lab(temporal_port: int) -> Iterator[Lab]:
    """A lab with its own Temporal dev server, which keeps its state in SQLite
    (``<root>/temporal.db``), for a test that kills the server and starts it again."""
    yield from _fresh_lab(temporal_port, monitoring=False, own_temporal=True)


_module_cases = itertools.count(1)


@pytest.fixture
def module_lab(_one_lab_per_module: Lab) -> Iterator[Lab]:
    """The module's one lab, reset to the starting topology before each case (onprem primary,
    azure and gcp streaming from it, DNS at onprem, no writer, no fault marks), with task
    queues of the case's own, so a run a failed case left behind never meets the next case.
    Cheaper than ``lab`` for a matrix: a reset costs a few seconds, a lab up more."""
    the_lab = _one_lab_per_module
    base = the_lab.queue_suffix.split("-c", 1)[0]
    if the_lab.queue_suffix != base:  # not the module's first case
        the_lab.reset()
    the_lab.queue_suffix = f"{base}-c{next(_module_cases)}"
    try:
        with lab_environment(the_lab):
            yield the_lab
    finally:
        the_lab.stop_code()


def lab_inventory(lab: Lab, **changes: object) -> Inventory:
    """The lab's inventory with test changes (faults, placement), written where the lab's
    processes read it, and with the evidence under the lab's directory."""
    inv = lab.inventory().model_copy(update={"output_dir": lab.root / "output", **changes})
    write_inventory(inv, lab.root / "inventory.yaml")
    return inv


@pytest_asyncio.fixture
async def run_workers() -> AsyncIterator[object]:
    """Start in-process workers for an inventory: ``await run_workers(client, inv)``."""
    running: list[Worker] = []
    tasks: list[asyncio.Task[None]] = []

    async def start(
        client: Client, inv: Inventory, queues: tuple[TaskQueue, ...] = tuple(TaskQueue), agents: bool = True
    ) -> None:
        workers = build_workers(client, inv, queues)
        if agents and inv.placement == Placement.QUEUES:
            # Each site's agent, as production runs one beside each server.
            workers += [build_agent(client, inv, site) for site in inv.sites]
        for w in workers:
            running.append(w)
            tasks.append(asyncio.create_task(w.run()))

    yield start
    for w in running:
        await w.shutdown()
    for t in tasks:
        t.cancel()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fuzz tests' counts (their ``inputs_tried`` property), shown with or without ``-s``."""
    seen: dict[str, object] = {}
    for key in ("passed", "failed"):
        for report in terminalreporter.stats.get(key, []):
            props = dict(getattr(report, "user_properties", []))
            if "inputs_tried" in props:
                seen[report.nodeid] = props["inputs_tried"]
    if seen:
        terminalreporter.section("fuzz: inputs tried")
        for nodeid, n in seen.items():
            terminalreporter.write_line(f"{nodeid}: {n}")
