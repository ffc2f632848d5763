"""The whole lab: bring it up, down, back to the start, break a site, say how it is.

Each part lives in a module of its own (:mod:`~hybridops.lab.processes`,
:mod:`~hybridops.lab.postgres`, :mod:`~hybridops.lab.dns`, :mod:`~hybridops.lab.temporal`,
:mod:`~hybridops.lab.monitoring`, :mod:`~hybridops.lab.config`, :mod:`~hybridops.lab.status`);
:class:`Lab` puts them together in order. State and logs under ``<root>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from hybridops.constants import TaskQueue
from hybridops.errors import ConfigError
from hybridops.inventory import DnsKind, Inventory, write_inventory
from hybridops.lab.config import lab_inventory, write_policy
from hybridops.lab.dns import DNS, LabDns
from hybridops.lab.dns_state import DnsSnapshot
from hybridops.lab.layout import DEFAULT_PORTS, DNS_KEYS_ENV, LAB_DNS_ENV, SITES, LabLayout, LabPorts
from hybridops.lab.link import LabLinks
from hybridops.lab.monitoring import Monitoring
from hybridops.lab.postgres import LabPostgres, WritableSite
from hybridops.lab.processes import Processes
from hybridops.lab.status import lab_status, topology_warnings
from hybridops.lab.temporal import TEMPORAL, start_temporal
from hybridops.workload import workload_ddl

CODE = ("writer", "worker", *(f"agent-{site}" for site in SITES), "alert-receiver")
"""The processes that run HybridOps code (see :meth:`Lab.stop_code`)."""
CONTROL_QUEUES = (TaskQueue.CONTROL, TaskQueue.DB, TaskQueue.INFRA, TaskQueue.DNS)
"""What the lab's control worker serves: everything but the site agents' queues."""


def agent_name(site: str) -> str:
    """The lab process that is ``site``'s agent."""
    return f"agent-{site}"


class Lab(LabLayout):
    """One lab, rooted at ``root`` (``.hybridops/lab`` for the demo)."""

    def __init__(self, root: Path, ports: LabPorts = DEFAULT_PORTS, queue_suffix: str = "") -> None:
        super().__init__(root, ports)
        self.queue_suffix = queue_suffix
        self.processes = Processes(self.root)
        self.postgres = LabPostgres(self)
        self.dns = LabDns(self, self.processes, self.inventory)
        self.links = LabLinks(self, self.processes)
        """The relays between each agent and the other sites' servers (:mod:`hybridops.lab.link`)."""
        self.dns_note = ""
        """What the last :meth:`start_dns` did with the records (kept, re-applied, first start)."""
        self.dns_stale = False
        """Whether it re-applied a snapshot older than the DNS server's end (killed, not stopped)."""

    # ------------------------------------------------------------------ what it is

    @property
    def state_file(self) -> Path:
        return self.processes.state_file

    def log(self, name: str) -> Path:
        return self.processes.log(name)

    def pid(self, name: str) -> int | None:
        return self.processes.pid(name)

    @property
    def monitoring(self) -> Monitoring:
        """The lab's Prometheus servers, Alertmanager and exporters."""
        return Monitoring(self, self.processes)

    @property
    def dns_kind(self) -> DnsKind:
        """The lab's DNS backend: what the last ``up`` chose (kept in the state file), else
        :data:`LAB_DNS_ENV`, else ``route53``."""
        chosen = self.processes.read_state().get("dns") or os.environ.get(LAB_DNS_ENV) or DnsKind.ROUTE53
        try:
            return DnsKind(chosen)
        except ValueError:
            raise ConfigError(f"lab dns: {chosen!r} is not one of {[k.value for k in DnsKind]}") from None

    @property
    def monitored(self) -> bool:
        """Whether the last ``up`` started monitoring (kept in the state file)."""
        return bool(self.processes.read_state().get("monitoring", False))

    def inventory(self) -> Inventory:
        """The inventory that describes this lab (:func:`hybridops.lab.config.lab_inventory`)."""
        return lab_inventory(
            self, self.queue_suffix, self.monitoring if self.monitored else None, self.dns_kind
        )

    def write_policy(self) -> None:
        write_policy(self)

    def set_load(self, load: float) -> None:
        if not 0 <= load <= 1:
            raise ConfigError(f"load: {load} is not between 0 and 1")
        tmp = self.load_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"load": load}) + "\n")
        tmp.replace(self.load_file)

    def ensure_gitops_repo(self) -> None:
        if not (self.gitops_repo / "HEAD").exists():
            subprocess.run(
                ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(self.gitops_repo)],
                check=True,
                capture_output=True,
            )

    # ------------------------------------------------------------------ parts

    def start_temporal(self) -> None:
        start_temporal(self, self.processes)

    def start_dns(self) -> None:
        started = self.dns.start()
        self.dns_note, self.dns_stale = started.note, started.stale

    def point_dns(self, site: str) -> None:
        self.dns.point(site)

    def snapshot_dns(self, taken_by: str) -> DnsSnapshot:
        """Keep what the DNS server holds now in :attr:`dns_file`; raises when it does not answer
        (the last snapshot stays)."""
        return self.dns.snapshot(taken_by)

    def dns_site(self) -> str | None:
        """The site the A record points at (its value when no site listens there); None when
        there is no record or the DNS server does not answer."""
        return self.dns.site()

    @property
    def sites_down(self) -> dict[str, str]:
        """The servers the last start could not start, each with why (its log's FATAL line)."""
        return dict(self.postgres.down)

    def start_postgres(self) -> None:
        """Create (first time) and start the primary and both standbys."""
        wl = self.inventory().workload
        self.postgres.start(workload_ddl(wl.table, wl.probe_table))

    def pg_start(self, site: str) -> None:
        self.postgres.start_server(site)

    def stop_postgres(self, mode: str = "fast") -> None:
        self.postgres.stop(mode)

    def kill_site(self, site: str) -> datetime:
        """The disaster: SIGKILL the server and all its processes, as a host would die."""
        return self.postgres.kill(site)

    def monitoring_running(self) -> bool:
        """Whether the lab's monitoring is up: its global Prometheus runs."""
        return bool(self.processes.read_state().get("monitoring")) and bool(self.pid("prometheus-global"))

    def agents_watching(self, primary: str) -> bool:
        """Read-only. Whether the global Prometheus has every site agent's liveness view, each
        seeing ``primary`` take its writes (drivers/postgres/liveness.py)."""
        expr = f'count(hybridops_liveness_primary_silent_seconds{{site="{primary}"}} < 1)'
        try:
            return self.monitoring.query_scalar(expr) == len(SITES)
        except OSError:
            return False

    def freeze_site(self, site: str) -> datetime:
        """A hung primary: every process of ``site``'s server stopped (SIGSTOP); its port still
        accepts connections, nothing answers. :meth:`thaw_site` wakes it."""
        return self.postgres.freeze(site)

    def thaw_site(self, site: str) -> datetime:
        return self.postgres.thaw(site)

    def cut(self, observer: str, site: str | None = None) -> list[str]:
        """A partition: ``observer``'s agent reaches ``site``'s server (every other site's when
        None) no more, while every other path stays up; returns the links cut now. Back once the
        relay holds every packet (:mod:`hybridops.lab.link`). :meth:`heal` restores."""
        return self.links.cut(observer, site)

    def heal(self, observer: str | None = None, site: str | None = None) -> list[str]:
        """Restore the links :meth:`cut` cut (all of them by default); returns those still cut."""
        return self.links.heal(observer, site)

    def stop_scratch(self) -> None:
        """Stop the scratch servers of drills whose teardown did not run (their files stay)."""
        self.postgres.stop_scratch()

    def start_writer(self) -> None:
        if not self.pid("writer"):
            self.processes.spawn("writer", [sys.executable, "-m", "hybridops.lab.writer"], self.env())

    def start_worker(self) -> None:
        """The control worker, and a site agent per site (as production runs one on each
        database host), each a process of its own."""
        if not self.pid("worker"):
            queues = [arg for q in CONTROL_QUEUES for arg in ("--queue", q.value)]
            metrics = ["--metrics-listen", self.ports.worker_metrics]
            self.processes.spawn("worker", [sys.executable, "-m", "workers", *queues, *metrics], self.env())
        for site in SITES:
            self.start_agent(site)

    def start_agent(self, site: str) -> None:
        """``site``'s agent: its queue only, and none of the lab's DNS keys (an agent holds its
        own server's credentials, nothing else)."""
        name = agent_name(site)
        if not self.pid(name):
            env = {k: v for k, v in self.env().items() if k != DNS_KEYS_ENV}
            metrics = ["--metrics-listen", self.ports.agent_metrics(site)]
            argv = [sys.executable, "-m", "workers", "--site", site, *metrics]
            self.processes.spawn(name, argv, env, without=(DNS_KEYS_ENV,))

    def stop_code(self) -> None:
        """Stop the processes that run HybridOps code (writer, worker, alert receiver), so the
        next ``up`` starts them on the code as it is now. A long-lived worker that re-imports
        workflow code changed on disk, next to drivers it imported before, is a mismatch."""
        for name in CODE:
            self.processes.stop(name)

    # ------------------------------------------------------------------ whole lab

    def up(
        self,
        temporal: bool = True,
        worker: bool = True,
        writer: bool = True,
        monitoring: bool | None = None,
        first_backup: bool = False,
        dns: DnsKind | None = None,
    ) -> Inventory:
        """Bring every part up (idempotent); returns the inventory it wrote. ``monitoring``:
        ``None`` starts it when its binaries are installed. ``first_backup``: take a base
        backup when there is none, so a drill started with ``{}`` has one to restore. A server
        that cannot start does not stop the rest: :attr:`sites_down` names it, with why.
        ``dns``: ``route53`` or ``rfc2136`` (:attr:`dns_kind` when None); a lab whose DNS runs
        keeps its backend (``lab down`` first to change it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        monitoring = Monitoring.wanted(monitoring)
        kind = self.dns_kind if dns is None else DnsKind(dns)
        if kind != self.dns_kind and self.pid(DNS):
            raise ConfigError(
                f"lab dns: the lab runs {self.dns_kind.value}; `lab down` before choosing {kind.value}"
            )
        state = self.processes.read_state()
        state["monitoring"] = monitoring
        state["dns"] = kind.value
        self.processes.write_state(state)
        inv = self.inventory()
        write_inventory(inv, self.inventory_file)
        self.write_policy()
        if temporal:
            self.start_temporal()
        self.start_postgres()
        self.links.start()  # before the agents: their probes of the other sites go through it
        self.start_dns()
        self.ensure_gitops_repo()
        if first_backup and not self.sites_down:  # a backup of a server that is down would fail
            self.ensure_backup()
        if monitoring:
            self.monitoring.start()
        if worker:
            self.start_worker()
        if writer:
            self.start_writer()
        return inv

    def ensure_backup(self) -> None:
        """A base backup of the primary (where DNS points), unless there is one already."""
        import asyncio

        from drivers.lazy import Drivers

        drivers = Drivers(self.inventory())

        async def take() -> None:
            if not await drivers.backup.list():
                await drivers.take_backup(None)

        env = {k: v for k, v in self.env().items() if k not in os.environ}
        os.environ.update(env)  # the DNS keys the plan reads with
        try:
            asyncio.run(take())
        finally:
            for key in env:
                os.environ.pop(key, None)

    def down(self) -> None:
        """Stop everything; nothing is left running."""
        for name in ("writer", "worker", *(agent_name(s) for s in SITES)):
            self.processes.stop(name)
        self.monitoring.stop()
        self.links.stop()
        self.stop_postgres()
        self.stop_scratch()
        self.dns.stop()
        self.processes.stop(TEMPORAL)

    def reset(self) -> None:
        """Back to the starting topology: onprem primary, two standbys, DNS at onprem.
        The databases are created anew (the first time; later resets copy that first one, a
        few seconds less each: a test module that resets before every case counts them);
        Temporal and its history are kept. The site agents are stopped for it and started
        again after: they watch the primary, and a lab with no server up for seconds, then a
        new onprem, is not an incident (their alert would start a failover)."""
        writer = bool(self.pid("writer"))
        self.processes.stop("writer")
        # Every site's agent comes back with the starting topology, a dead host's too.
        agents = list(SITES) if any(self.pid(agent_name(site)) for site in SITES) else []
        for site in agents:
            self.processes.stop(agent_name(site))
        self.stop_postgres(mode="immediate")
        for path in (
            self.root / "pg",
            self.archive,
            self.root / "backups",  # backups of the old databases: their WAL is gone
            self.root / "apps",
            self.root / "clusters",
            self.ledger.parent,
            self.incident_file,
            self.load_file,
            self.gitops_repo,
            self.faults_dir,
        ):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        self.dns_file.unlink(missing_ok=True)  # the new databases' lab starts at onprem
        self.links.heal()  # no partition either
        wl = self.inventory().workload
        self.postgres.recreate(workload_ddl(wl.table, wl.probe_table))
        self.start_dns()
        self.ensure_gitops_repo()
        self.point_dns("onprem")
        self.snapshot_dns("reset")
        for site in agents:
            self.start_agent(site)
        if writer:
            self.start_writer()

    def break_site(self, site: str, agent: bool = True) -> datetime:
        """Kill ``site``'s server, and its agent (the host died) unless ``agent`` is False (the
        server alone died); the time is kept as the incident's start."""
        if agent:
            self.processes.kill(agent_name(site))
        at = self.kill_site(site)
        self.incident_file.write_text(json.dumps({"site": site, "at": at.isoformat()}))
        return at

    def incident(self) -> datetime | None:
        if not self.incident_file.exists():
            return None
        return datetime.fromisoformat(json.loads(self.incident_file.read_text())["at"])

    # ------------------------------------------------------------------ how it is

    def role(self, site: str) -> str:
        """``primary``, ``standby``, or ``down`` when the server does not answer."""
        return self.postgres.role(site)

    def writable_sites(self) -> list[WritableSite]:
        """Read-only. The servers that accept writes now: running, answering, not in recovery,
        ``default_transaction_read_only`` off. More than one is a split brain."""
        return self.postgres.writable_sites()

    def warnings(self) -> list[str]:
        """Read-only. What an operator must not miss about the lab's topology
        (:func:`hybridops.lab.status.topology_warnings`). Empty when all is well."""
        return topology_warnings(self.writable_sites(), self.dns_site())

    def status(self) -> dict[str, Any]:
        """Each part: running or not, and for databases their role; where DNS points, and the
        :meth:`warnings`."""
        out = lab_status(self, self.processes, self.postgres, self.dns, self.monitoring, self.monitored)
        out["links"] = self.links.status()
        return out
