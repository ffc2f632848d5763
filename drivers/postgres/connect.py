"""One way to open a connection to a site's server, for every driver that talks to one (the
PostgreSQL driver, the backup drivers): the inventory's address, the password resolved from
its reference for this connection only, the inventory's connect timeout, autocommit."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

import psycopg

from drivers.secrets import resolve_secret
from hybridops.errors import DatabaseUnreachable
from hybridops.inventory import Inventory

CONNECT_WITHIN: ContextVar[float | None] = ContextVar("hybridops_connect_within", default=None)
"""A shorter deadline than the inventory's connect timeout, for the connections the current
task opens (:meth:`PostgresDriver.assess` sets it for a server the detection found silent)."""


async def connect_site(
    inventory: Inventory, site: str, host: str | None = None, application_name: str = "hybridops"
) -> psycopg.AsyncConnection[Any]:
    """A connection to ``site`` (at ``host`` when given: a scratch or replica address);
    :class:`DatabaseUnreachable` naming the site when the server does not answer."""
    cfg = inventory.site(site)
    timeout = min(inventory.postgres.connect_timeout_s, CONNECT_WITHIN.get() or float("inf"))
    try:
        # Our own deadline: libpq's is whole seconds, never under 2, and a hung server (its
        # port open, its processes stopped) is only told from a busy one by it.
        return await asyncio.wait_for(
            psycopg.AsyncConnection.connect(
                host=host or cfg.host,
                port=cfg.port,
                dbname=cfg.dbname,
                user=cfg.user,
                password=resolve_secret(cfg.password_ref),
                connect_timeout=inventory.postgres.libpq_connect_timeout,
                autocommit=True,
                application_name=application_name,
            ),
            timeout,
        )
    except TimeoutError:
        raise DatabaseUnreachable(f"cannot connect: no answer within {timeout:g} s", site=site) from None
    except psycopg.OperationalError as err:
        raise DatabaseUnreachable(f"cannot connect: {str(err).strip()}", site=site) from None
