"""The lab's link relay (hybridops/lab/link.py) against an echo server on loopback: bytes flow
both ways; cut, an open connection stalls and a new one is held, nothing closed and nothing
reaching the server; healed, what was held goes through. And the lab's side: which links a cut
names, and the process applying a cut through its files."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from hybridops.cli import app
from hybridops.errors import ConfigError
from hybridops.inventory import Inventory
from hybridops.lab import Lab, LabPorts
from hybridops.lab.link import Link, Relay, applied, read_cut, serve, write_cut, write_links
from hybridops.lab.processes import LabError

SILENCE_S = 0.3
"""How long a stalled connection must stay silent: many round trips on loopback."""


class Echo:
    """An upstream server that echoes what it reads, counting its connections."""

    def __init__(self) -> None:
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def relayed() -> AsyncIterator[tuple[Relay, Echo, tuple[str, int]]]:
    echo = Echo()
    upstream = await echo.start()
    relay = Relay(Link("azure", "onprem", ("127.0.0.1", 0), upstream))
    listen = await relay.start()
    try:
        yield relay, echo, listen
    finally:
        relay.close()
        assert echo.server is not None
        echo.server.close()


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def stays_silent(reader: asyncio.StreamReader) -> bool:
    """Nothing arrives (and the connection is not closed) for :data:`SILENCE_S`."""
    try:
        await asyncio.wait_for(reader.read(1), SILENCE_S)
    except TimeoutError:
        return True
    return False


async def test_bytes_flow_both_ways_through_an_open_link() -> None:
    async with relayed() as (relay, echo, listen):
        reader, writer = await asyncio.open_connection(*listen)
        assert await roundtrip(reader, writer, b"hello") == b"hello"
        assert await roundtrip(reader, writer, b"x" * 200_000) == b"x" * 200_000
        assert (echo.accepted, relay.forwarded) == (1, 1)
        writer.close()


async def test_a_cut_stalls_open_connections_and_holds_new_ones_until_healed() -> None:
    async with relayed() as (relay, echo, listen):
        reader, writer = await asyncio.open_connection(*listen)
        assert await roundtrip(reader, writer, b"before") == b"before"
        relay.set_cut(True)
        # The open connection: what is sent is never answered, and nothing tells the client.
        writer.write(b"during")
        await writer.drain()
        assert await stays_silent(reader)
        # A new one: the connect succeeds (the kernel answers), nothing reaches the server.
        new_reader, new_writer = await asyncio.open_connection(*listen)
        new_writer.write(b"new")
        await new_writer.drain()
        assert await stays_silent(new_reader)
        assert (echo.accepted, relay.forwarded) == (1, 1)
        # Healed: what was held goes through, as TCP retransmits after a partition heals.
        relay.set_cut(False)
        assert await asyncio.wait_for(reader.readexactly(6), 5) == b"during"
        assert await asyncio.wait_for(new_reader.readexactly(3), 5) == b"new"
        assert await roundtrip(reader, writer, b"after") == b"after"
        assert (echo.accepted, relay.forwarded) == (2, 2)
        writer.close()
        new_writer.close()


async def test_a_server_that_is_gone_ends_the_clients_connection() -> None:
    async with relayed() as (relay, echo, listen):
        assert echo.server is not None
        echo.server.close()
        await echo.server.wait_closed()
        reader, writer = await asyncio.open_connection(*listen)
        assert await asyncio.wait_for(reader.read(1), 5) == b""  # closed, not hung
        assert relay.forwarded == 0
        writer.close()


async def test_the_process_applies_cut_and_heal_from_its_files(tmp_path: Path) -> None:
    echo = Echo()
    upstream = await echo.start()
    links_dir = tmp_path / "links"
    # A free port for the relay: bind, read it, let it go (the relay takes it at once).
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    write_links(links_dir, [Link("azure", "onprem", ("127.0.0.1", port), upstream)])
    task = asyncio.create_task(serve(links_dir, poll_s=0.01))
    try:

        async def generation_applied(generation: int) -> None:
            async with asyncio.timeout(5):
                while applied(links_dir) < generation:
                    await asyncio.sleep(0.01)

        await generation_applied(0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await roundtrip(reader, writer, b"up") == b"up"
        await generation_applied(write_cut(links_dir, {"azure>onprem"}))
        writer.write(b"cut")
        await writer.drain()
        assert await stays_silent(reader)
        await generation_applied(write_cut(links_dir, set()))
        assert await asyncio.wait_for(reader.readexactly(3), 5) == b"cut"
        writer.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert echo.server is not None
        echo.server.close()


def test_a_cut_names_the_observers_links_and_never_its_own_server(tmp_path: Path) -> None:
    lab = Lab(tmp_path, LabPorts(net="127.90.249"))
    links = {link.name: link for link in lab.links.links()}
    assert sorted(links) == [
        "azure>gcp",
        "azure>onprem",
        "gcp>azure",
        "gcp>onprem",
        "onprem>azure",
        "onprem>gcp",
    ]
    # Each link its own address on the lab's net, to the site's server.
    assert len({link.listen for link in links.values()}) == 6
    assert links["azure>onprem"].upstream == (lab.ip("onprem"), lab.ports.pg)
    inv = lab.inventory()
    assert inv.probe_address("onprem", "azure") == links["azure>onprem"].listen
    assert inv.probe_address("onprem", "onprem") == (lab.ip("onprem"), lab.ports.pg)
    with pytest.raises(ConfigError, match="its own server"):
        lab.cut("azure", "azure")
    with pytest.raises(ConfigError, match="unknown site 'aws'"):
        lab.cut("aws")
    # With no process running, a heal is recorded (the next start applies it), a cut refused.
    assert lab.heal() == []
    with pytest.raises(LabError, match="links are not running"):
        lab.cut("azure", "onprem")
    assert read_cut(lab.links_dir)[1] == set()


def test_the_cli_names_what_it_cannot_cut_and_heals_nothing_quietly(tmp_path: Path) -> None:
    env = {"HYBRIDOPS_HOME": str(tmp_path)}
    same = CliRunner().invoke(app, ["lab", "cut", "azure", "azure"], env=env)
    assert same.exit_code == 2 and "azure's agent reaches its own server directly" in same.output
    down = CliRunner().invoke(app, ["lab", "cut", "azure", "onprem"], env=env)
    assert down.exit_code == 2 and "links are not running" in down.output
    healed = CliRunner().invoke(app, ["lab", "heal"], env=env)
    assert healed.exit_code == 0 and "no link cut" in healed.output
    assert not (tmp_path / "lab" / "links").exists()  # nothing to change: nothing written


def test_a_probe_address_for_a_site_the_inventory_lacks_is_refused(tmp_path: Path) -> None:
    data = Lab(tmp_path, LabPorts(net="127.90.249")).inventory().model_dump(mode="json")
    for observer in ("aws", "onprem"):  # no such site; the server's own site
        bad = copy.deepcopy(data)
        bad["sites"]["onprem"]["probe_addresses"][observer] = {"host": "127.0.0.9", "port": 5432}
        with pytest.raises(ValidationError, match=f"probe_addresses.{observer}: not another site"):
            Inventory.model_validate(bad)
