"""Liveness by writes: a site agent's view of which server is the primary and how long it has
taken no write.

Every site agent is an observer. Every ``probe_interval_s`` it writes one row to every site's
server (``INSERT ... ON CONFLICT`` on :data:`TABLE`, ``synchronous_commit = local`` so a dead
synchronous standby cannot stall it). A standby, or a fenced primary, refuses the write as
read-only; the primary takes it. The observer's primary is the site whose write succeeded
last, and its silence is the time since then. A port that answers is not health: a primary
whose processes are frozen (SIGSTOP, a stuck disk) accepts the TCP connection and never
answers, and here it counts as silent from its last write, as a dead one does.

Nothing waits on a server that does not answer: a write or connect that takes longer than
``probe_timeout_s`` is given up (its connection dropped, a new one opened next round), and the
silence is read from the clock at each scrape, so it grows while a probe hangs.

The views are metrics (:class:`LivenessCollector`), read by the global Prometheus from every
agent; the alert ``HybridOpsPrimaryNotTakingWrites`` (infra/prometheus/rules/hybridops.yml)
fires when a majority of the observers has seen the same primary silent past the policy's
``detection.blip_tolerance_s``. One observer cut off from the primary is one view: it starts
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily, Metric
from psycopg import errors as pgerrors
from psycopg import sql

from drivers.secrets import resolve_secret
from hybridops.inventory import Inventory
from hybridops.metrics import LIVENESS_METRICS
from hybridops.policy import Detection

log = logging.getLogger(__name__)

TABLE = "hybridops_liveness"
"""One row per observer: the last write it made on the primary."""
WRITE = sql.SQL(
    "INSERT INTO {} (observer, written_at) VALUES (%s, clock_timestamp())"
    " ON CONFLICT (observer) DO UPDATE SET written_at = excluded.written_at"
).format(sql.Identifier(TABLE))
CREATE = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (observer text PRIMARY KEY, written_at timestamptz NOT NULL)"
).format(sql.Identifier(TABLE))

SILENT_METRIC, LAST_WRITE_METRIC, TOLERANCE_METRIC = LIVENESS_METRICS


@dataclass
class SiteSeen:
    """What one observer knows of one site's server."""

    last_write: float | None = None
    """Wall-clock time of the last write it took (None: none since the observer started)."""
    last_answer: float | None = None
    """Of the last answer of any kind (a write, or a read-only refusal)."""
    read_only: bool = False
    """Its last answer was a refusal: a standby, or a fenced primary."""
    error: str = ""
    """Why the last probe got no answer ("" when it got one)."""


@dataclass(frozen=True)
class View:
    """An observer's view: the primary it sees (the site whose write succeeded last) and how
    long that primary has taken no write."""

    observer: str
    primary: str
    silent_s: float


class LivenessProbe:
    """One observer (the agent at ``observer``) probing every site of the inventory."""

    def __init__(
        self,
        inventory: Inventory,
        observer: str,
        detection: Detection,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inventory = inventory
        self.observer = observer
        self.detection = detection
        self.clock = clock
        self.seen: dict[str, SiteSeen] = {site: SiteSeen() for site in inventory.sites}
        self._conns: dict[str, psycopg.AsyncConnection[Any]] = {}
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._reported: str | None = None
        """The primary whose silence past the tolerance was logged (once per silence)."""

    @property
    def threshold_s(self) -> float:
        """The silence past which this observer counts its primary as dead or hung: the blip
        tolerance plus two probe intervals. A write is due one interval after the last that
        succeeded, and a freeze may begin just before it: with the slack, a freeze of exactly
        the tolerance is ridden out whatever its phase against the probes."""
        return self.detection.blip_tolerance_s + 2 * self.detection.probe_interval_s

    def view(self, now: float | None = None) -> View | None:
        """The primary as this observer sees it, or None before any site took its write."""
        written = {site: s.last_write for site, s in self.seen.items() if s.last_write is not None}
        if not written:
            return None
        primary = max(written, key=lambda site: written[site])
        now = self.clock() if now is None else now
        return View(self.observer, primary, max(0.0, now - written[primary]))

    async def run(self) -> None:
        """Probe every site until cancelled."""
        log.info(
            "liveness: %s observes %s every %g s (tolerance %g s)",
            self.observer,
            ", ".join(self.seen),
            self.detection.probe_interval_s,
            self.detection.blip_tolerance_s,
        )
        try:
            await asyncio.gather(*(self._loop(site) for site in self.seen))
        finally:
            for conn in self._conns.values():
                await conn.close()

    async def _loop(self, site: str) -> None:
        interval = self.detection.probe_interval_s
        while True:
            began = time.monotonic()
            await self.probe(site)
            self._log_view()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))

    async def probe(self, site: str) -> SiteSeen:
        """One probe of ``site``: a write, a read-only refusal, or no answer in time."""
        seen = self.seen[site]
        try:
            await self._bounded(site, self._write(site))
        except pgerrors.ReadOnlySqlTransaction:
            seen.last_answer, seen.read_only, seen.error = self.clock(), True, ""
        except Exception as err:  # no answer, whatever the reason: the silence says so
            seen.error = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            await self._drop(site)
        else:
            seen.last_write = seen.last_answer = self.clock()
            seen.read_only, seen.error = False, ""
        return seen

    async def _bounded(self, site: str, work: Any) -> None:
        """``work`` within the probe timeout. One that overruns is left to finish on its own
        (psycopg waits for a frozen server to answer its cancel) with its connection dropped,
        so the next round starts afresh instead of queueing behind it."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=self.detection.probe_timeout_s)
        if task in done:
            return task.result()
        conn = self._conns.pop(site, None)
        self._abandoned.add(task)

        def finished(t: asyncio.Task[Any]) -> None:
            self._abandoned.discard(t)
            if not t.cancelled():
                t.exception()  # retrieved: a late error is expected, not "never retrieved"
            if conn is not None:
                closing = asyncio.ensure_future(conn.close())
                self._abandoned.add(closing)  # held until done: the loop keeps tasks weakly
                closing.add_done_callback(self._abandoned.discard)

        task.add_done_callback(finished)
        task.cancel()
        raise TimeoutError(f"no answer within {self.detection.probe_timeout_s:g} s")

    async def _write(self, site: str) -> None:
        conn = self._conns.get(site)
        if conn is None:
            conn = await self._connect(site)
            self._conns[site] = conn
        try:
            await conn.execute(WRITE, (self.observer,))
        except pgerrors.UndefinedTable:
            await conn.execute(CREATE)
            await conn.execute(WRITE, (self.observer,))

    async def _connect(self, site: str) -> psycopg.AsyncConnection[Any]:
        cfg = self.inventory.site(site)
        host, port = self.inventory.probe_address(site, self.observer)
        conn = await psycopg.AsyncConnection.connect(
            host=host,
            port=port,
            dbname=cfg.dbname,
            user=cfg.user,
            password=resolve_secret(cfg.password_ref),
            autocommit=True,
            application_name=f"hybridops-liveness-{self.observer}",
            options="-c synchronous_commit=local -c statement_timeout=0",
        )
        return conn

    async def _drop(self, site: str) -> None:
        conn = self._conns.pop(site, None)
        if conn is not None and not conn.closed:
            try:
                await asyncio.wait_for(conn.close(), self.detection.probe_timeout_s)
            except (TimeoutError, psycopg.Error, OSError):
                pass

    def _log_view(self) -> None:
        view = self.view()
        if view is None:
            return
        silent = view.silent_s > self.threshold_s
        if silent and self._reported != view.primary:
            self._reported = view.primary
            errors = self.seen[view.primary].error
            log.warning(
                "liveness: %s sees %s take no write for %.2f s (tolerates %g s): %s",
                self.observer,
                view.primary,
                view.silent_s,
                self.threshold_s,
                errors or "no error",
            )
        elif not silent and self._reported is not None:
            log.info("liveness: %s sees %s take writes again", self.observer, view.primary)
            self._reported = None


class LivenessCollector:
    """The probes' views as metrics, computed at each scrape (so a silence grows while a
    probe hangs)."""

    def __init__(self, probes: list[LivenessProbe]) -> None:
        self.probes = probes

    def collect(self) -> Iterator[Metric]:
        silent = GaugeMetricFamily(
            SILENT_METRIC,
            "Seconds since the primary this observer sees (the site that took its last write) took"
            " a write: under the probe interval while it takes them.",
            labels=["observer", "site"],
        )
        last = GaugeMetricFamily(
            LAST_WRITE_METRIC,
            "When each site last took this observer's probe write.",
            labels=["observer", "site"],
        )
        tolerance = GaugeMetricFamily(
            TOLERANCE_METRIC,
            "The silence this observer tolerates: the policy's detection.blip_tolerance_s plus"
            " two probe intervals, its measure's resolution.",
            labels=["observer"],
        )
        for probe in self.probes:
            now = probe.clock()
            tolerance.add_metric([probe.observer], probe.threshold_s)
            view = probe.view(now)
            if view is not None:
                silent.add_metric([probe.observer, view.primary], view.silent_s)
            for site, seen in probe.seen.items():
                if seen.last_write is not None:
                    last.add_metric([probe.observer, site], seen.last_write)
        yield silent
        yield last
        yield tolerance
