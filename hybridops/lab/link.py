"""The network between the lab's hosts, as far as detection sees it: a TCP relay per link (one
site agent, the observer, to another site's PostgreSQL server), which ``lab cut`` partitions
and ``lab heal`` restores, one link at a time.

Production runs each site on hosts of its own, and a network partition may cut one observer
off from the primary while the others still reach it. On one machine every process reaches
every address, so each agent's liveness probes of another site's server go through that link's
relay (the inventory's ``sites.<site>.probe_addresses``, :meth:`LabLayout.link_address`), and
cutting the relay cuts that path alone: the other agents, the writer, replication and the
runbooks' own steps are untouched. An agent reaches its own host's server directly.

A cut link models a partition, not a refusal: packets are dropped and nobody is told. Its open
connections stall (nothing is forwarded either way, nothing is closed), and new ones are
accepted (the kernel answers the SYN) but never forwarded, so a client's connect hangs as it
would on a black-holed route, until its own timeout. Healed, the link forwards again what was
held, as TCP retransmits after a partition heals; clients that gave up meanwhile have closed
their end, and the relay closes the other.

All the lab's links are one process (``links``, started by ``lab up`` before the agents):

* ``<lab>/links/links.json``: the links (observer, site, the relay's address, the server's),
  written by the lab before it starts the process;
* ``<lab>/links/cut.json``: which links are cut and a generation the lab bumps on each change;
  the process reads it every :data:`POLL_S`, so a cut survives the process's restart;
* ``<lab>/links/applied.json``: the generation the process applied, so ``cut`` and ``heal``
  return once the relays do as told.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hybridops.errors import ConfigError
from hybridops.lab.layout import SITES, LabLayout
from hybridops.lab.processes import LabError, Processes, wait_until

log = logging.getLogger(__name__)

LINKS_FILE = "links.json"
CUT_FILE = "cut.json"
APPLIED_FILE = "applied.json"
POLL_S = 0.05
"""How often the process reads which links are cut."""
CHUNK = 65536


@dataclass(frozen=True)
class Link:
    """The path from ``observer``'s agent to ``site``'s server."""

    observer: str
    site: str
    listen: tuple[str, int]
    """Where the relay listens: the address the observer's probes of ``site`` go to."""
    upstream: tuple[str, int]
    """``site``'s server."""

    @property
    def name(self) -> str:
        """``observer>site``: how ``cut.json`` and the process's log name it."""
        return f"{self.observer}>{self.site}"


class Relay:
    """One link's relay: bytes both ways while it is open; nothing, and nothing closed, while it
    is cut (see the module's docstring)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self.forwarded = 0
        """Connections it has opened to the server (held ones are not counted until healed)."""

    @property
    def cut(self) -> bool:
        return not self._open.is_set()

    def set_cut(self, cut: bool) -> None:
        """Cut (or heal) the link: takes effect at once on open connections and new ones."""
        if cut:
            self._open.clear()
        else:
            self._open.set()

    async def start(self) -> tuple[str, int]:
        """Listen; returns the address it listens at (its port when the link asked for 0)."""
        host, port = self.link.listen
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        """Stop listening (open connections end with the process, or as their ends close)."""
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._open.wait()  # a cut link holds the new connection: a black hole
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.link.upstream)
            except OSError:
                return  # nothing listens there (a dead server): the client sees its connection end
            self.forwarded += 1
            try:
                pumps = [
                    asyncio.create_task(self._pump(reader, up_writer)),
                    asyncio.create_task(self._pump(up_reader, writer)),
                ]
                # PostgreSQL's protocol never half-closes: either end going ends both.
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                up_writer.close()
        finally:
            writer.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            await self._open.wait()
            data = await src.read(CHUNK)
            if not data:
                return
            await self._open.wait()  # read just as the link was cut: held until it heals
            dst.write(data)
            await dst.drain()


# ---------------------------------------------------------------------- the files


def write_json(path: Path, value: Any) -> None:
    """``value`` as ``path``, replaced at once (never read half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def write_links(links_dir: Path, links: list[Link]) -> None:
    write_json(links_dir / LINKS_FILE, [asdict(link) for link in links])


def read_links(links_dir: Path) -> list[Link]:
    return [
        Link(d["observer"], d["site"], (d["listen"][0], d["listen"][1]), (d["upstream"][0], d["upstream"][1]))
        for d in json.loads((links_dir / LINKS_FILE).read_text())
    ]


def read_cut(links_dir: Path) -> tuple[int, set[str]]:
    """The generation of the cut state and the links cut (by :attr:`Link.name`)."""
    path = links_dir / CUT_FILE
    if not path.exists():
        return 0, set()
    data = json.loads(path.read_text())
    return int(data["generation"]), set(data["cut"])


def write_cut(links_dir: Path, cut: set[str]) -> int:
    """Set which links are cut; returns the new generation (for :func:`applied`)."""
    generation = read_cut(links_dir)[0] + 1
    write_json(links_dir / CUT_FILE, {"generation": generation, "cut": sorted(cut)})
    return generation


def applied(links_dir: Path) -> int:
    """The generation the relays applied (-1 before the process has started them)."""
    path = links_dir / APPLIED_FILE
    return int(json.loads(path.read_text())["generation"]) if path.exists() else -1


# ---------------------------------------------------------------------- the lab's side

LINKS = "links"
"""The lab process that runs every relay."""


class LabLinks:
    """The links of one lab: start and stop their process, cut and heal them, say which are cut."""

    def __init__(self, layout: LabLayout, processes: Processes) -> None:
        self.layout = layout
        self.processes = processes
        self.dir = layout.links_dir

    def links(self) -> list[Link]:
        """A link from every site's agent to every other site's server."""
        return [
            Link(observer, site, self.layout.link_address(observer, site), self.server(site))
            for observer in SITES
            for site in SITES
            if observer != site
        ]

    def server(self, site: str) -> tuple[str, int]:
        return self.layout.ip(site), self.layout.ports.pg

    def start(self) -> None:
        """Start the relays (idempotent), cut as ``cut.json`` says; back once they listen. Not
        among the processes ``stop_code`` restarts: the agents' probes go through it, and a
        lab whose links went away between two test cases would see the primary go silent."""
        if self.processes.pid(LINKS):
            return
        write_links(self.dir, self.links())
        (self.dir / APPLIED_FILE).unlink(missing_ok=True)
        self.processes.spawn(LINKS, [sys.executable, "-m", "hybridops.lab.link", str(self.dir)])
        self._wait_applied(read_cut(self.dir)[0])

    def stop(self) -> None:
        self.processes.stop(LINKS)

    def cut(self, observer: str, site: str | None = None) -> list[str]:
        """Partition ``observer``'s agent from ``site``'s server (every other site's when None);
        back once the relays hold every packet. Returns the links cut now, by name."""
        return self._set(observer, site, cut=True)

    def heal(self, observer: str | None = None, site: str | None = None) -> list[str]:
        """Restore ``observer``'s link to ``site`` (None: every observer, every site)."""
        return self._set(observer, site, cut=False)

    def cut_links(self) -> list[str]:
        """The links cut now, by name (``observer>site``)."""
        return sorted(read_cut(self.dir)[1])

    def status(self) -> str:
        """``running``, with the links cut if any, or ``stopped``."""
        if not self.processes.pid(LINKS):
            return "stopped"
        cut = self.cut_links()
        return f"running, cut: {', '.join(cut)}" if cut else "running"

    def _set(self, observer: str | None, site: str | None, cut: bool) -> list[str]:
        for name in (observer, site):
            if name is not None and name not in SITES:
                raise ConfigError(f"link: unknown site {name!r} (one of {', '.join(SITES)})", site=name)
        if observer is not None and observer == site:
            raise ConfigError(f"link: {observer}'s agent reaches its own server directly: no link to cut")
        chosen = {
            link.name
            for link in self.links()
            if observer in (None, link.observer) and site in (None, link.site)
        }
        running = bool(self.processes.pid(LINKS))
        if cut and not running:
            raise LabError("the lab's links are not running (`hybridops lab up` starts them)")
        now = read_cut(self.dir)[1]
        wanted = now | chosen if cut else now - chosen
        if wanted == now:
            return sorted(now)
        generation = write_cut(self.dir, wanted)
        if running:
            self._wait_applied(generation)
        return self.cut_links()

    def _wait_applied(self, generation: int) -> None:
        what = f"the lab's links to apply cut generation {generation}"
        wait_until(what, lambda: applied(self.dir) >= generation)


# ---------------------------------------------------------------------- the process


async def serve(links_dir: Path, poll_s: float = POLL_S) -> None:
    """Run every link of ``links_dir`` until cancelled, cutting and healing them as
    ``cut.json`` says."""
    relays = {link.name: Relay(link) for link in read_links(links_dir)}
    for relay in relays.values():
        await relay.start()
    (links_dir / APPLIED_FILE).unlink(missing_ok=True)
    done = -1
    try:
        while True:
            generation, cut = read_cut(links_dir)
            if generation != done:
                for name, relay in relays.items():
                    if relay.cut != (name in cut):
                        log.warning("link %s %s", name, "cut" if name in cut else "healed")
                    relay.set_cut(name in cut)
                write_json(links_dir / APPLIED_FILE, {"generation": generation})
                done = generation
            await asyncio.sleep(poll_s)
    finally:
        for relay in relays.values():
            relay.close()


def main() -> None:
    """``python -m hybridops.lab.link LINKS_DIR``: the lab's ``links`` process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(serve(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
