"""What ``lab status`` shows: each part running or not, each database's role, where DNS points,
and the warnings an operator must not miss (two writable servers, DNS not at the writer).

Read-only: nothing here changes the lab.
"""

from __future__ import annotations

from dataclasses import asdict
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
    whose last start failed), the site DNS points at, and ``warnings``."""
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
    out["dns record"] = (dns.site() or "?") if processes.pid(DNS) else "stopped"
    try:
        out["warnings"] = topology_warnings(postgres.writable_sites(), dns.site())
    except LabError as err:  # a server whose role is unknown: said, never counted as down
        out["warnings"] = [str(err)]
    return out
