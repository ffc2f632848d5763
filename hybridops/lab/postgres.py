"""The lab's PostgreSQL servers: an ``onprem`` primary made with initdb, ``azure`` and ``gcp``
streaming standbys made with pg_basebackup, a WAL archive; each server on its own loopback
address. Starting, stopping and killing them, and reading who is writable.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from drivers.postgres import binaries as pgbin
from hybridops.errors import ConfigError, HybridOpsError
from hybridops.lab.layout import DBNAME, SITES, LabLayout
from hybridops.lab.processes import LabError, wait_until

DOWN_MESSAGES = ("Connection refused", "the database system is ")
"""libpq's words for a server that takes no connection now: nothing listens on its port, or
it is starting up or shutting down (psycopg gives a failed connection no SQLSTATE). Any other
error leaves the role unknown, never "down"."""
_STARTUP_EXITED = re.compile(r"startup process \(PID (\d+)\) (exited|was terminated)")


def ensure_run_as_user(run_as: str | None) -> None:
    """Create the unprivileged system user ``run_as`` (no home, no shell) unless it exists;
    None (not root) creates nothing. The lab's servers and bench/patroni.py's run as it."""
    if run_as is None:
        return
    try:
        pgbin.user_ids(run_as)
    except ConfigError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", run_as],
            check=True,
            capture_output=True,
        )


class SiteDown(LabError):
    """A lab server that could not be started; the message says why (its log's FATAL line)."""


def _refused(err: psycopg.Error) -> bool:
    return (
        isinstance(err, psycopg.OperationalError)
        and err.sqlstate is None
        and any(m in str(err) for m in DOWN_MESSAGES)
    )


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


@dataclass(frozen=True)
class WritableSite:
    """A server that accepts writes (see :meth:`LabPostgres.writable_sites`)."""

    site: str
    timeline: int


class LabPostgres:
    """The lab's three servers (and the scratch servers drills leave behind)."""

    def __init__(self, layout: LabLayout) -> None:
        self.layout = layout
        self.bins = pgbin.bin_dir()
        self.down: dict[str, str] = {}
        """The servers the last :meth:`start` could not start, each with why."""

    def _connect(self, site: str, dbname: str = "postgres", **options: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.layout.ip(site), port=self.layout.ports.pg, user="postgres", dbname=dbname, **options
        )

    def _pg(self, tool: str, *args: str, timeout: float = 120) -> str:
        return pgbin.run(self.bins, tool, list(args), self.layout.run_as, timeout=timeout)

    def _owned_dir(self, path: Path, mode: int = 0o700) -> None:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        pgbin.chown_to(path, self.layout.run_as)

    def _conf(self, site: str) -> str:
        return "\n".join(
            [
                "",
                "# hybridops lab",
                f"listen_addresses = '{self.layout.ip(site)}'",
                f"port = {self.layout.ports.pg}",
                "unix_socket_directories = ''",
                "wal_level = replica",
                "max_wal_senders = 10",
                "hot_standby = on",
                "wal_keep_size = '256MB'",
                "archive_mode = on",
                # A restore from the archive loses at most this much; 5 s keeps the RPO of a
                # drill small and measurable without a segment file per second.
                "archive_timeout = '5s'",
                f"archive_command = 'test ! -f {self.layout.archive}/%f && cp %p {self.layout.archive}/%f'",
                f"restore_command = 'cp {self.layout.archive}/%f %p'",
                "shared_buffers = '32MB'",
                "max_connections = 60",
                "wal_receiver_status_interval = '1s'",
                f"cluster_name = '{site}'",
                "",
            ]
        )

    def start_server(self, site: str) -> None:
        """Start ``site``'s server (made already) and wait until it accepts connections.
        Raises :class:`SiteDown` with its log's FATAL line when it does not: ``pg_ctl start -w``
        exits 0 ("server shut down because of recovery target settings") when the startup
        process fails with a FATAL (the postmaster then exits with code 3), as a fenced old
        primary whose WAL went past the new timeline's fork does ("requested timeline 2 does
        not contain minimum recovery point"), and a server can fail after it opened too."""
        d = self.layout.data_dir(site)
        # A killed server lingers as a zombie until it is reaped (seconds, here), and
        # PostgreSQL will not start while the process of its lock file exists.
        wait_until(
            f"{site}'s killed server to be reaped", lambda: not self._lock_holder_exists(site), timeout=60
        )
        try:
            self._pg("pg_ctl", "-D", str(d), "-l", str(d / "log" / "server.log"), "-w", "-t", "60", "start")
        except HybridOpsError as err:
            raise self._did_not_start(site, _first_line(err)) from None
        deadline = time.monotonic() + 60
        while (role := self.role(site)) == "down":
            if not self.running(site):
                raise self._did_not_start(site, "it exited")
            if time.monotonic() > deadline:
                raise SiteDown(f"{site} started but accepts no connection after 60 s", site=site)
            time.sleep(0.05)
        if role.startswith("unknown"):
            raise SiteDown(f"{site} started but cannot tell its role: {role}", site=site)

    def _did_not_start(self, site: str, otherwise: str) -> SiteDown:
        return SiteDown(f"{site} did not start: {self.last_fatal(site) or otherwise}", site=site)

    def last_fatal(self, site: str) -> str | None:
        """The FATAL (or PANIC) that ended ``site``'s last start, from its server log: the
        startup process's when the log says it exited, else the last one of a start that never
        became ready. None when the last start ended no such way (a clean stop, still running)."""
        log = self.layout.data_dir(site) / "log" / "server.log"
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            return None
        starts = [i for i, line in enumerate(lines) if "starting PostgreSQL" in line]
        stops = [i for i, line in enumerate(lines) if "database system is shut down" in line]
        if stops and (not starts or stops[-1] > starts[-1]):
            # After the last stop: a start that failed before it logged its start (its
            # configuration: "configuration file ... contains errors").
            early = [line for line in lines[stops[-1] + 1 :] if " FATAL: " in line]
            if early:
                return early[-1][early[-1].index(" FATAL: ") + 1 :].strip()
        section = lines[starts[-1] :] if starts else lines
        fatal = [line for line in section if " FATAL: " in line or " PANIC: " in line]
        exited = next((m for line in reversed(section) if (m := _STARTUP_EXITED.search(line))), None)
        if exited is not None:
            own = [line for line in fatal if f"[{exited.group(1)}]" in line]
            fatal = own or fatal
        elif any("ready to accept" in line for line in section):
            return None
        if not fatal:
            return None
        line = fatal[-1]
        return line[
            line.index(" FATAL: ") + 1 if " FATAL: " in line else line.index(" PANIC: ") + 1 :
        ].strip()

    def _lock_holder_exists(self, site: str) -> bool:
        try:
            pid = int((self.layout.data_dir(site) / "postmaster.pid").read_text().split("\n", 1)[0])
            proc = psutil.Process(pid)
            return proc.status() == psutil.STATUS_ZOMBIE or "postgres" in proc.name()
        except (FileNotFoundError, ValueError, psutil.Error):
            return False

    def start(self, ddl: list[sql.Composed]) -> None:
        """Create (first time) and start the primary and both standbys. A server that cannot
        start does not stop the others: :attr:`down` names it, with why."""
        ensure_run_as_user(self.layout.run_as)
        for p in (self.layout.root, self.layout.root / "pg"):
            p.mkdir(parents=True, exist_ok=True)
            p.chmod(0o755)
        self._owned_dir(self.layout.archive)
        primary = self.layout.data_dir("onprem")
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
        self.down = {}
        try:
            if not self.running("onprem"):
                self.start_server("onprem")
        except SiteDown as err:
            self.down["onprem"] = str(err)
        fenced = True  # onprem down: leave the schema alone, wait for no streaming
        if "onprem" not in self.down:
            with self._connect("onprem", autocommit=True) as conn:
                # After a failover onprem is fenced (read-only): bring it up as it is, and leave
                # the schema to the primary of the day. `lab reset` makes the starting topology.
                fenced = bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]
                if (
                    not fenced
                    and not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DBNAME,)).fetchone()
                ):
                    conn.execute(f"CREATE DATABASE {DBNAME}")
        if not fenced:
            with self._connect("onprem", DBNAME, autocommit=True) as conn:
                for stmt in ddl:
                    conn.execute(stmt)
        for site in ("azure", "gcp"):
            d = self.layout.data_dir(site)
            if not (d / "PG_VERSION").exists():
                self._owned_dir(d)
                self._pg(
                    "pg_basebackup",
                    "-h",
                    self.layout.ip("onprem"),
                    "-p",
                    str(self.layout.ports.pg),
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
            if not self.running(site):
                try:
                    self.start_server(site)
                except SiteDown as err:
                    self.down[site] = str(err)
        if not fenced and not self.down:  # the starting topology: the standbys stream (a promoted one, not)
            wait_until("the standbys streaming", self._standbys_streaming)

    def running(self, site: str) -> bool:
        """Whether ``site``'s server process runs (answering or not)."""
        pid_file = self.layout.data_dir(site) / "postmaster.pid"
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
            with self._connect(site, connect_timeout=2) as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)"
                ).fetchone()
            if row is None or (row[0] and row[1] != "streaming"):
                return False
        return True

    def stop_server(self, site: str, mode: str = "fast") -> None:
        """Stop ``site``'s server (``pg_ctl`` ``mode``) and wait for it, at most 30 s;
        :class:`HybridOpsError` when it did not stop."""
        self._pg("pg_ctl", "-D", str(self.layout.data_dir(site)), "-m", mode, "-w", "-t", "30", "stop")

    def stop(self, mode: str = "fast") -> None:
        """Stop every server (``pg_ctl`` ``mode``), killing one that does not stop in 30 s. A
        frozen one (``lab freeze``) is thawed first: stopped processes would not hear pg_ctl's
        signal, and ``lab down`` or ``reset`` would wait those 30 s and then kill it."""
        for site in SITES:
            if self.running(site):
                with contextlib.suppress(HybridOpsError):
                    self.thaw(site)
                try:
                    self.stop_server(site, mode)
                except HybridOpsError:
                    self.kill(site)

    def kill(self, site: str) -> datetime:
        """The disaster: SIGKILL the server and all its processes, as a host would die."""
        pid_file = self.layout.data_dir(site) / "postmaster.pid"
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
            wait_until(f"{site} to die", lambda: not self.running(site), timeout=10, interval=0.005)
        return at

    def freeze(self, site: str, sig: int = signal.SIGSTOP) -> datetime:
        """A hung server: every process of it stopped (SIGSTOP), as a stuck disk or a paused VM
        leaves it. Its port still accepts connections (the kernel's backlog); nothing answers.
        :meth:`thaw` (SIGCONT) wakes it."""
        pid_file = self.layout.data_dir(site) / "postmaster.pid"
        at = datetime.now(UTC)
        try:
            proc = psutil.Process(int(pid_file.read_text().split("\n", 1)[0]))
            for p in [proc, *proc.children(recursive=True)]:
                p.send_signal(sig)
        except (OSError, ValueError, psutil.NoSuchProcess):
            raise HybridOpsError(f"{site}'s server is not running: nothing to freeze or thaw") from None
        return at

    def thaw(self, site: str) -> datetime:
        """The frozen server's processes continued (SIGCONT)."""
        return self.freeze(site, signal.SIGCONT)

    def stop_scratch(self) -> None:
        """Stop the scratch servers of drills whose teardown did not run (their files stay)."""
        for pid_file in (self.layout.root / "scratch").glob("*/data/postmaster.pid"):
            try:
                self._pg("pg_ctl", "-D", str(pid_file.parent), "-m", "immediate", "-w", "-t", "30", "stop")
            except HybridOpsError:
                pass

    @property
    def pristine(self) -> Path:
        """A copy of the three data directories as the first reset made them (servers stopped
        cleanly), so later resets copy instead of running initdb and two base backups."""
        return self.layout.root / "pg.pristine"

    def _pristine_current(self) -> bool:
        try:
            return all(
                self._conf(site) in (self.pristine / site / "postgresql.conf").read_text() for site in SITES
            )
        except OSError:
            return False

    def recreate(self, ddl: list[sql.Composed]) -> None:
        """The starting topology anew in an emptied ``<root>/pg``: copied from :attr:`pristine`,
        which the first call makes (initdb, two base backups, a clean stop)."""
        pg = self.layout.root / "pg"
        if self.pristine.is_dir() and not self._pristine_current():
            shutil.rmtree(self.pristine)  # made by other code (another configuration): remake it
        if self.pristine.is_dir():
            # cp -a keeps the owner (the servers' user when the lab runs as root) and modes.
            subprocess.run(["cp", "-a", str(self.pristine), str(pg)], check=True)
            self.start(ddl)
        else:
            self.start(ddl)
            self.stop(mode="fast")  # a clean shutdown: the copy needs no recovery
            subprocess.run(["cp", "-a", str(pg), str(self.pristine)], check=True)
            self.start(ddl)

    def role(self, site: str) -> str:
        """``primary``, ``standby``, ``down`` when the server refuses connections (not running,
        starting, stopping), or ``unknown (<error>)`` when it answered with anything else."""
        try:
            with self._connect(site, connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                return "standby" if row and row[0] else "primary"
        except psycopg.Error as err:
            return "down" if _refused(err) else f"unknown ({_first_line(err)})"

    def stopped_state(self, site: str) -> str:
        """What ``lab status`` says of a server that does not run: ``down: <FATAL line>`` when
        its last start failed, else ``stopped``."""
        fatal = self.last_fatal(site)
        return f"down: {fatal}" if fatal else "stopped"

    def writable_sites(self) -> list[WritableSite]:
        """Read-only. The servers that accept writes now: running, answering, not in recovery,
        ``default_transaction_read_only`` off. More than one is a split brain. Raises
        :class:`LabError` naming a running server that answers with an error: whether it
        accepts writes is unknown, and it is never counted as down."""
        found = []
        for site in SITES:
            if not self.running(site):
                continue
            try:
                with self._connect(site, connect_timeout=2) as conn:
                    row = conn.execute(
                        "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only'),"
                        " CASE WHEN NOT pg_is_in_recovery() THEN pg_walfile_name(pg_current_wal_lsn()) END"
                    ).fetchone()
            except psycopg.Error as err:
                if _refused(err):
                    continue
                raise LabError(f"cannot tell whether {site} accepts writes: {_first_line(err)}") from None
            if row is not None and not row[0] and row[1] == "off":
                found.append(WritableSite(site=site, timeline=int(row[2][:8], 16)))
        return found
