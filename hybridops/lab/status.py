"""What ``lab status`` shows: each part running or not, each database's role, where DNS points,
and the warnings an operator must not miss (two writable servers, DNS not at the writer).

Read-only: nothing here changes the lab.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hybridops.lab.dns import DNS, LabDns
from hybridops.lab.layout import RECORD, SITES, LabLayout
from hybridops.lab.monitoring import Monitoring
from hybridops.lab.postgres import LabPostgres, WritableSite
from hybridops.lab.processes import LabError, Processes

FENCE_MARK = "hybridops.fence.json"
"""What the PostgreSQL driver leaves in a fenced server's data directory."""
CORE = ("temporal", "dns", "worker", "writer")
"""The processes every lab runs (monitoring's are listed when it runs)."""


def topology_warnings(writable: list[WritableSite], dns_at: str | None) -> list[str]:
    """Two or more writable servers (named, with their timelines), and DNS pointing elsewhere
    than at the single writable server, each as a sentence that says what to do. Empty when
    all is well."""
    names = ", ".join(f"{w.site} (timeline {w.timeline})" for w in writable) or "none"
    out = []
    if len(writable) > 1:
        out.append(
            f"{len(writable)} writable servers: {names}. Clients writing to more than one make"
            " the databases diverge. Stop the writers (lab writer, apps), keep the one DNS points"
            " at or the one with the data you trust, fence the others and rejoin them as its"
            " standbys: runbooks/failover.md, 'Two writable servers'."
        )
    if dns_at is not None and [w.site for w in writable] != [dns_at]:
        out.append(
            f"DNS ({RECORD}) points at {dns_at}, which is not the single writable server (writable: {names})."
        )
    return out


POLL_FRESH_S = 70.0
"""A worker long-polls for up to a minute: a last poll older than this is a worker gone."""


def agents_status(layout: LabLayout, processes: Processes) -> dict[str, str]:
    """Each site's agent: its process, and whether Temporal sees it polling its queue (the
    task queue's description: what a step scheduled there would meet)."""
    from hybridops.client import connect, queue_pollers
    from hybridops.inventory import load_inventory

    try:
        inv = load_inventory(layout.inventory_file)
    except Exception:  # no lab yet, or an inventory edited into something invalid
        return {f"agent:{site}": "unknown (no valid lab inventory)" for site in SITES}

    async def read() -> dict[str, list[float]]:
        client = await connect(inv.temporal)
        return {
            site: [p.seconds_ago for p in await queue_pollers(client, inv.site_queue(site))] for site in SITES
        }

    def in_own_loop() -> dict[str, list[float]]:
        # A loop of its own in a thread of its own: `lab status` is also called from async
        # code (the tests, `hybridops demo`), where asyncio.run would refuse to start.
        return asyncio.run(asyncio.wait_for(read(), 5))

    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            polls: dict[str, list[float]] | None = pool.submit(in_own_loop).result()
    except Exception:  # Temporal down or not answering: say so, never fail the status
        polls = None
    out = {}
    for site in SITES:
        process = "running" if processes.pid(f"agent-{site}") else "stopped"
        if polls is None:
            seen = "Temporal does not answer"
        elif polls[site]:
            # A killed worker stays listed until its long poll would have ended: the age says it.
            seen = f"{inv.site_queue(site)}: last poll {min(polls[site]):.0f} s ago"
            seen += "" if min(polls[site]) < POLL_FRESH_S else " (gone)"
        else:
            seen = f"{inv.site_queue(site)}: no poller"
        out[f"agent:{site}"] = f"{process}, {seen}"
    return out


DASHBOARDS = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "dashboards"
"""The Grafana dashboards (infra/grafana/build.py writes them)."""
GRAFANA_BINARIES = ("grafana", "grafana-server")


def addresses(layout: LabLayout, processes: Processes, monitoring: Monitoring) -> dict[str, str]:
    """The address of every UI and endpoint the lab serves now, by name (those running)."""
    out: dict[str, str] = {}
    if processes.pid("temporal"):
        out["Temporal UI"] = f"http://127.0.0.1:{layout.ports.ui}"
    if processes.pid("prometheus-global"):
        out["Prometheus"] = monitoring.prometheus_url
    if processes.pid("alertmanager"):
        out["Alertmanager"] = monitoring.alertmanager_url
    if processes.pid("worker"):
        out["worker metrics"] = f"http://{layout.ports.worker_metrics}/metrics"
    for site in SITES:
        if processes.pid(f"agent-{site}"):
            out[f"agent-{site} metrics"] = f"http://{layout.ports.agent_metrics(site)}/metrics"
    if processes.pid("alert-receiver"):
        out["receiver metrics"] = f"http://{monitoring.metrics_address('alert-receiver')}/metrics"
    return out


def grafana_hint(prometheus_url: str) -> str:
    """How to see the dashboards: the lab runs no Grafana (installed here or not)."""
    installed = any(shutil.which(name) for name in GRAFANA_BINARIES)
    where = "Grafana is installed here, but the lab does not run it" if installed else "No Grafana here"
    return (
        f"{where}: in a Grafana, add a Prometheus data source at {prometheus_url}, then import each"
        f" of {DASHBOARDS}/*.json (Dashboards > New > Import) and pick that data source; or run"
        " the compose stack, which provisions them (README, 'The deployable stack')."
    )


def lab_status(
    layout: LabLayout,
    processes: Processes,
    postgres: LabPostgres,
    dns: LabDns,
    monitoring: Monitoring,
    monitored: bool,
) -> dict[str, Any]:
    """Each part by name: ``running``/``stopped``, a database's role (``primary``, ``standby``,
    ``down``, ``unknown (<error>)``, ``(fenced)`` added; ``down: <FATAL line>`` for a server
    whose last start failed), each site agent, the site DNS points at, the ``addresses`` of the
    UIs and endpoints that run (:func:`addresses`), and ``warnings``."""
    out: dict[str, Any] = {"root": str(layout.root), "ports": asdict(layout.ports)}
    for name in CORE:
        out[name] = "running" if processes.pid(name) else "stopped"
    if monitored or any(processes.pid(name) for name in monitoring.process_names()):
        out.update(monitoring.status())
    for site in SITES:
        role = postgres.role(site) if postgres.running(site) else postgres.stopped_state(site)
        if (layout.data_dir(site) / FENCE_MARK).exists():
            role += " (fenced)"
        out[f"pg:{site}"] = role
    out.update(agents_status(layout, processes))
    out["dns record"] = (dns.site() or "?") if processes.pid(DNS) else "stopped"
    out["addresses"] = addresses(layout, processes, monitoring)
    try:
        out["warnings"] = topology_warnings(postgres.writable_sites(), dns.site())
    except LabError as err:  # a server whose role is unknown: said, never counted as down
        out["warnings"] = [str(err)]
    return out
