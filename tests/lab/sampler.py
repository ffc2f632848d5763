"""Which servers a client could write to, every 20 ms, from a background thread.

A server is writable when it answers and says ``pg_is_in_recovery()`` false and
``transaction_read_only`` off. The sampler keeps a connection per site (reconnecting, with a
short timeout, when it breaks: a killed server refuses at once on loopback) and records every
instant at which two or more were writable.

A server that refuses connections (killed, stopped, starting up: what the chaos cases do to
servers) is not writable; one that drops the connection (going away just then) is read again
on a new one (tests/lab/helpers.py:reads). Any other error (a timeout, too many clients, a
failed query) leaves the site's role unknown at that instant: it is recorded, and
:meth:`WritableSampler.check` fails on it, since an instant the sampler could not read is no
evidence of a single writer.

The sites of one instant are read one after another, never at once, so the order matters: a
correct switchover makes the old writer read-only *before* the new one becomes writable. Each
instant reads first the sites that were not writable at the previous instant, then those that
were. A site that became writable in a correct run is then read before the old writer, which
was already read-only by then, so a correct run never shows two; a real overlap that an
instant falls into does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from hybridops.lab import Lab
from hybridops.lab.layout import SITES
from tests.lab.helpers import GONE_WITHIN_S, RoleUnknown, reads, refuses_connections, went_away

INTERVAL_S = 0.02
"""The issue's 20 ms."""
CONNECT_TIMEOUT_S = 2
"""libpq's shortest (it rounds 1 up to 2); a loopback server that is down refuses at once, so a
timeout leaves the role unknown."""
QUERY = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"


@dataclass(frozen=True)
class Violation:
    """An instant at which more than one server was writable."""

    at: datetime
    writable: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.at.isoformat(timespec='milliseconds')}: {', '.join(self.writable)} writable"


@dataclass(frozen=True)
class Unknown:
    """An instant at which a site's role could not be read (the error that hid it)."""

    at: datetime
    site: str
    error: str

    def __str__(self) -> str:
        return f"{self.at.isoformat(timespec='milliseconds')}: {self.site} unknown ({self.error})"


@dataclass
class WritableSampler:
    """Use as a context manager around a chaos case; see the module docstring."""

    lab: Lab
    sites: tuple[str, ...] = tuple(SITES)
    interval_s: float = INTERVAL_S
    instants: int = 0
    violations: list[Violation] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)
    """Every site and instant whose role could not be read (see the module docstring)."""
    seen_writable: set[str] = field(default_factory=set)
    last: tuple[str, ...] = ()
    """The writable sites of the latest instant."""
    _conns: dict[str, psycopg.Connection[Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _writable(self, site: str, at: datetime) -> bool:
        """Writable now; False when down, and when unknown (recorded in :attr:`unknown`)."""
        for _ in reads():
            conn = self._conns.get(site)
            try:
                if conn is None or conn.closed:
                    conn = self._conns[site] = psycopg.connect(
                        host=self.lab.ip(site),
                        port=self.lab.ports.pg,
                        user="postgres",
                        dbname="postgres",
                        connect_timeout=CONNECT_TIMEOUT_S,
                        autocommit=True,
                        application_name="hybridops-sampler",
                    )
            except psycopg.Error as err:
                if refuses_connections(err):
                    return False
                if went_away(err):
                    continue  # dropped before the session began (see helpers.GONE_MESSAGES)
                self.unknown.append(Unknown(at, site, str(err)))
                return False
            try:
                row = conn.execute(QUERY).fetchone()
                return bool(row is not None and row[0] is False and row[1] == "off")
            except psycopg.Error as err:
                self._drop(site)
                if not conn.broken:
                    self.unknown.append(Unknown(at, site, str(err)))
                    return False
                # The server broke the connection mid-query (killed, stopped): ask a new one.
        self.unknown.append(Unknown(at, site, f"kept dropping connections for {GONE_WITHIN_S} s"))
        return False

    def _drop(self, site: str) -> None:
        conn = self._conns.pop(site, None)
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def sample(self) -> tuple[str, ...]:
        """Read every site once (see the module docstring for the order) and record it."""
        at = datetime.now(UTC)
        order = [s for s in self.sites if s not in self.last] + [s for s in self.sites if s in self.last]
        writable = tuple(s for s in order if self._writable(s, at))
        self.instants += 1
        self.seen_writable.update(writable)
        self.last = writable
        if len(writable) > 1:
            self.violations.append(Violation(at, tuple(sorted(writable))))
        return writable

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sample()
            next_at += self.interval_s
            # Behind (a slow connect)? Start the next instant now rather than bunching them.
            next_at = max(next_at, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        self.close()

    def close(self) -> None:
        """Close the connections (the thread does it when it stops)."""
        for site in list(self._conns):
            self._drop(site)

    def __enter__(self) -> WritableSampler:
        self._thread = threading.Thread(target=self._run, name="writable-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def check(self, premise: frozenset[str] = frozenset(), until: datetime | None = None) -> None:
        """Fail naming every instant with two writable servers (and how many instants ran), and
        every instant at which a site's role was unknown.

        ``premise``, ``until``: a case that *starts* with those servers writable (a split brain
        staged before the run) tolerates exactly that pair until the run's end, never another
        one, and nothing after."""
        assert self.instants > 0, "the sampler never ran"
        bad = [
            v
            for v in self.violations
            if not (premise and until is not None and v.at <= until and set(v.writable) == premise)
        ]
        failures = []
        if bad:
            failures.append(f"{len(bad)} of {self.instants} instants had two writable servers: {_shown(bad)}")
        if self.unknown:
            failures.append(f"{len(self.unknown)} reads left a role unknown: {_shown(self.unknown)}")
        if failures:
            raise AssertionError("; ".join(failures))

    def check_known(self) -> None:
        """Fail naming every instant at which a site's role could not be read."""
        if self.unknown:
            raise RoleUnknown(f"{len(self.unknown)} reads left a role unknown: {_shown(self.unknown)}")


def _shown(items: list[Violation] | list[Unknown]) -> str:
    """The first ten, and how many more."""
    more = f" (and {len(items) - 10} more)" if len(items) > 10 else ""
    return "; ".join(str(i) for i in items[:10]) + more
