"""The silent primary's shorter deadline (``detection.confirm_timeout_s``): an assessment given
``within_s`` for a server that never answers (a frozen one accepts the connection and says
nothing) reports it unreachable after that deadline, not the connect timeout; one that answers
the protocol in time gets the whole connect timeout for the rest (TLS, authentication); a
process that reads the site's own disk (its agent) keeps the full look. The real psycopg and
libpq connect to a socket that accepts and stays silent, or answers the SSLRequest and then
stays silent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.postgres.connect import SSL_REQUEST, answers
from drivers.postgres.registry import PerSiteDriver
from hybridops.inventory import Inventory, load_inventory
from hybridops.policy import parse_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "runbooks" / "inventory.example.yaml"


async def _tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def _answers_then_stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that answers the SSLRequest ("no TLS") and then never completes the
    authentication: slow, not frozen."""
    if await reader.readexactly(len(SSL_REQUEST)) == SSL_REQUEST:
        writer.write(b"N")
        await writer.drain()
    await asyncio.sleep(30)


def _onprem_at(monkeypatch: pytest.MonkeyPatch, port: int) -> Inventory:
    monkeypatch.setenv("HYBRIDOPS_TEST_PG_PASSWORD", "not-a-real-one")
    inv = load_inventory(EXAMPLE)
    site = inv.site("onprem").model_copy(
        update={"host": "127.0.0.1", "port": port, "password_ref": "env:HYBRIDOPS_TEST_PG_PASSWORD"}
    )
    postgres = inv.postgres.model_copy(update={"connect_timeout_s": 0.8})
    return inv.model_copy(update={"sites": {**inv.sites, "onprem": site}, "postgres": postgres})


@pytest.fixture
async def silent_onprem(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Inventory]:
    server = await asyncio.start_server(_tarpit, "127.0.0.1", 0)
    yield _onprem_at(monkeypatch, server.sockets[0].getsockname()[1])
    server.close()


@pytest.fixture
async def slow_onprem(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Inventory]:
    server = await asyncio.start_server(_answers_then_stalls, "127.0.0.1", 0)
    yield _onprem_at(monkeypatch, server.sockets[0].getsockname()[1])
    server.close()


async def test_a_silent_server_is_given_up_on_at_its_deadline(silent_onprem: Inventory) -> None:
    driver = PerSiteDriver(silent_onprem, local_sites=frozenset())
    state = await driver.assess("onprem", within_s=0.2)
    assert not state.reachable and "no answer within 0.2 s" in state.error, state.error
    # Without a deadline, the connect timeout, as before.
    state = await driver.assess("onprem")
    assert not state.reachable and "no answer within 0.8 s" in state.error, state.error


async def test_a_server_that_answers_in_time_gets_the_connect_timeout(slow_onprem: Inventory) -> None:
    """The deadline is for the server to answer at all (two round trips and a fork), not for
    every round trip of a connect: one that answers is slow, not frozen, and is not taken for
    down at the deadline."""
    started = time.monotonic()
    state = await PerSiteDriver(slow_onprem, local_sites=frozenset()).assess("onprem", within_s=0.2)
    assert not state.reachable and "no answer within 0.8 s" in state.error, state.error
    assert time.monotonic() - started >= 0.8


async def test_the_probe_tells_frozen_from_refused_and_answering(
    silent_onprem: Inventory, slow_onprem: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frozen: no answer. Answering: yes. Refused (nothing listens): an answer here, so that
    the connect after it says what it was in libpq's words, at once."""
    assert not await answers("127.0.0.1", silent_onprem.site("onprem").port, 0.1)
    assert await answers("127.0.0.1", slow_onprem.site("onprem").port, 1.0)
    closed = await asyncio.start_server(_tarpit, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    started = time.monotonic()
    assert await answers("127.0.0.1", port, 1.0)
    assert time.monotonic() - started < 0.5
    inv = _onprem_at(monkeypatch, port)
    state = await PerSiteDriver(inv, local_sites=frozenset()).assess("onprem", within_s=0.2)
    assert not state.reachable and "refused" in state.error, state.error


async def test_the_deadline_never_outlasts_the_connect_timeout(silent_onprem: Inventory) -> None:
    state = await PerSiteDriver(silent_onprem, local_sites=frozenset()).assess("onprem", within_s=5.0)
    assert "no answer within 0.8 s" in state.error, state.error


async def test_the_sites_own_agent_keeps_the_full_look(silent_onprem: Inventory) -> None:
    """Its agent reads the marks from the disk, and is never the one that decides a failover."""
    state = await PerSiteDriver(silent_onprem, local_sites=frozenset({"onprem"})).assess(
        "onprem", within_s=0.2
    )
    assert not state.reachable and "no answer within 0.8 s" in state.error, state.error


def test_a_policy_without_it_digests_as_before() -> None:
    """Added after runs were recorded: at its default it is left out of the digest, in a
    detection section that holds its defaults and in one that does not."""
    assert parse_policy({}).digest() == parse_policy({"detection": {"confirm_timeout_s": 0.25}}).digest()
    tuned = {"detection": {"blip_tolerance_s": 3}}
    assert "confirm_timeout_s" in parse_policy(tuned).later_defaults()["detection"]
    assert (
        parse_policy(tuned).digest()
        != parse_policy({"detection": {**tuned["detection"], "confirm_timeout_s": 1}}).digest()
    )
