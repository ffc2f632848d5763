"""The silent primary's shorter deadline (``detection.confirm_timeout_s``): an assessment given
``within_s`` for a server that never answers (a frozen one accepts the connection and says
nothing) reports it unreachable after that deadline, not the connect timeout; a process that
reads the site's own disk (its agent) keeps the full look. The real psycopg and libpq connect
to a socket that accepts and stays silent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.postgres.registry import PerSiteDriver
from hybridops.inventory import Inventory, load_inventory
from hybridops.policy import parse_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "runbooks" / "inventory.example.yaml"


async def _tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


@pytest.fixture
async def silent_onprem(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Inventory]:
    server = await asyncio.start_server(_tarpit, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HYBRIDOPS_TEST_PG_PASSWORD", "not-a-real-one")
    inv = load_inventory(EXAMPLE)
    site = inv.site("onprem").model_copy(
        update={"host": "127.0.0.1", "port": port, "password_ref": "env:HYBRIDOPS_TEST_PG_PASSWORD"}
    )
    postgres = inv.postgres.model_copy(update={"connect_timeout_s": 0.8})
    yield inv.model_copy(update={"sites": {**inv.sites, "onprem": site}, "postgres": postgres})
    server.close()


async def test_a_silent_server_is_given_up_on_at_its_deadline(silent_onprem: Inventory) -> None:
    driver = PerSiteDriver(silent_onprem, local_sites=frozenset())
    state = await driver.assess("onprem", within_s=0.2)
    assert not state.reachable and "no answer within 0.2 s" in state.error, state.error
    # Without a deadline, the connect timeout, as before.
    state = await driver.assess("onprem")
    assert not state.reachable and "no answer within 0.8 s" in state.error, state.error


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
