"""One way to open a connection to a site's server, for every driver that talks to one (the
PostgreSQL driver, the backup drivers): the inventory's address, the password resolved from
its reference for this connection only, the inventory's connect timeout, autocommit."""

from __future__ import annotations

import asyncio
import struct
from contextvars import ContextVar
from typing import Any

import psycopg

from drivers.secrets import resolve_secret
from hybridops.errors import DatabaseUnreachable
from hybridops.inventory import Inventory

CONNECT_WITHIN: ContextVar[float | None] = ContextVar("hybridops_connect_within", default=None)
"""A deadline for the server to answer at all, shorter than the inventory's connect timeout,
for the connections the current task opens (:meth:`PostgresDriver.assess` sets it for a server
the detection found silent). It bounds :func:`answers`, not the whole connect."""

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
"""PostgreSQL's SSLRequest: a server process answers it with one byte (``S`` or ``N``) before
any authentication."""


async def answers(host: str, port: int, within_s: float) -> bool:
    """Whether the server at ``host:port`` answers the protocol within ``within_s``: its reply
    to an SSLRequest, sent by the backend forked for the connection before any authentication
    (two round trips and a fork; no credentials, no TLS or SCRAM round trips). A frozen server
    (its processes stopped, a stuck host) has the kernel accept the connection and never
    answers: False. Refused, reset or closed count as an answer here: the connect that follows
    says what it was, in libpq's words. A server without TLS logs nothing for a client that
    leaves after the reply; one with ``ssl=on`` logs one failed handshake."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(within_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(SSL_REQUEST)
            await writer.drain()
            await reader.read(1)
    except TimeoutError:
        return False
    except OSError:
        pass
    finally:
        if writer is not None:
            writer.close()
    return True


async def connect_site(
    inventory: Inventory, site: str, host: str | None = None, application_name: str = "hybridops"
) -> psycopg.AsyncConnection[Any]:
    """A connection to ``site`` (at ``host`` when given: a scratch or replica address);
    :class:`DatabaseUnreachable` naming the site when the server does not answer."""
    cfg = inventory.site(site)
    timeout = inventory.postgres.connect_timeout_s
    within = CONNECT_WITHIN.get()
    if within is not None and within < timeout:
        # The deadline is for the server to answer, not for every round trip of a connect
        # (TLS, SCRAM: several across regions). A Unix socket has no round trips to spare.
        if (host or cfg.host).startswith("/"):
            timeout = within
        elif not await answers(host or cfg.host, cfg.port, within):
            raise DatabaseUnreachable(f"cannot connect: no answer within {within:g} s", site=site)
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
